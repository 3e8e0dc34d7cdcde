"""Exceptions cnnpl raises for problems a user can fix.

Every :class:`CnnplError` carries a one-line message that says what was wrong and how to fix it.
The command line prints that line alone (``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations


class CnnplError(ValueError):
    """A problem with the user's input: a config value, a component name, a data folder."""


class UnknownComponentError(CnnplError, LookupError):
    """A name that no registry holds."""


class DuplicateComponentError(CnnplError):
    """A name registered twice without ``override=True``."""


class GeometryError(CnnplError):
    """A layer whose kernel, stride and padding cannot fit the input it receives."""


class DataError(CnnplError):
    """A dataset that is missing, truncated or malformed."""
