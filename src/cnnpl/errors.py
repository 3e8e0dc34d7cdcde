"""Exceptions cnnpl raises for problems a user can fix.

Every :class:`CnnplError` carries a one-line message that says what was wrong and how to fix it.
The command line prints that line alone (``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Sequence
from typing import NoReturn


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


class NeedsMoreMemory(CnnplError):
    """A network, or one batch's activations, larger than the machine's memory: not a component's fault."""


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed: ``MemoryError``, torch's ``OutOfMemoryError`` (CUDA) or its
    CPU allocator's ``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory")."""
    import torch

    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        words in text
        for words in ("can't allocate memory", "not enough memory", "out of memory", "DefaultCPUAllocator")
    )


def os_error_in(err: BaseException, codes: Collection[int] = ()) -> OSError | None:
    """The first ``OSError`` in ``err``'s chain that says why (its ``strerror``), of one of ``codes`` (``errno``
    values) where they are given; None when there is none (torch.save raises a RuntimeError over the OSError)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror and (not codes or seen.errno in codes):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def say(line: str) -> None:
    """Print ``line`` on stderr, and write it to the run's ``cnnpl.log`` (:func:`to_run_log`); a progress bar a
    stopped run left open is closed first, so that the line starts a line of its own (helper-137: the NaN
    message followed "Epoch 0:   0%|" on the same line)."""
    close_progress_bars()
    print(line, file=sys.stderr)
    to_run_log(line)


def close_progress_bars() -> None:
    """Close the tqdm bars still open (Lightning's, when a run stopped with an error): each ends its line."""
    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(tqdm, "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # a bar of another thread, half torn down: its line is not ours to mend
            continue
    sys.stdout.flush()


def to_run_log(line: str, error: BaseException | None = None) -> None:
    """Write ``line``, printed on stderr, to the run's ``cnnpl.log`` too (Hydra's file handler; nothing outside
    ``python -m cnnpl``): the log says why a run stopped, as the console did; with ``error``'s traceback below."""
    import logging

    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    record = logging.LogRecord("cnnpl", logging.ERROR, __file__, 0, line, None, exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message that holds anything, stripped; "" for a message of none."""
    return next((line.strip() for line in str(err).splitlines() if line.strip()), "")


def first_few(names: Sequence[str], shown: int = 3, what: str = "") -> str:
    """The first ``shown`` of ``names`` for a message, and how many more: ``a, b, c and 4 more``
    (``what``: ``and 4 more sizes``)."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more{' ' + what if what else ''}" if more > 0 else "")


def yaml_word(value: object) -> str:
    """``value`` for a message, with null, true and false as the command line writes them, also inside a list, a
    tuple or a mapping (``[1, null]``, ``(1, true)``, ``{'a': true}``); ``repr`` otherwise. A config node is read
    without resolving its interpolations (``${x}`` stays as written). Never raises: a value it cannot read is
    shown as ``repr`` shows it."""
    try:
        return _yaml_word(value, set())
    except Exception:  # a __repr__ that fails, or an odd config node: what Python itself would say
        return object.__repr__(value)


def _yaml_word(value: object, seen: set[int]) -> str:
    if (getattr(type(value), "__module__", None) or "").startswith("omegaconf"):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value) and value._is_none():  # type: ignore[attr-defined]  # DictConfig(None)
            value = None
        elif OmegaConf.is_config(value):  # a DictConfig or ListConfig
            value = OmegaConf.to_container(value)  # type: ignore[arg-type]
        elif hasattr(value, "_value"):  # a leaf node (AnyNode, BooleanNode, ...)
            value = value._value()
    if value is None or isinstance(value, bool):
        return str(value).lower().replace("none", "null")
    if isinstance(value, list | tuple | dict):
        if id(value) in seen:  # a list that holds itself
            return "[...]" if isinstance(value, list) else "(...)" if isinstance(value, tuple) else "{...}"
        seen = seen | {id(value)}
        if isinstance(value, dict):
            return "{" + ", ".join(f"{_yaml_word(k, seen)}: {_yaml_word(v, seen)}" for k, v in value.items()) + "}"
        items = ", ".join(_yaml_word(item, seen) for item in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' * (len(value) == 1)})"
    return repr(value)


def shown_cause(err: BaseException) -> BaseException | None:
    """What to chain a one-line :class:`CnnplError` to (``raise ... from shown_cause(err)``): ``err`` under
    ``HYDRA_FULL_ERROR=1``, whose traceback should then reach the code that failed (a bug in a user's own
    data module), else None (the line alone)."""
    return err if os.environ.get("HYDRA_FULL_ERROR") == "1" else None


def run_command(main: Callable[[], int | None]) -> NoReturn:
    """Run a command line's ``main`` and exit with its status. A reader that stops early
    (``python -m cnnpl.summary model=resnet50 | head``, ``python -m cnnpl --help | head``) ends it quietly, with
    status 1, as Python's documentation of ``SIGPIPE`` does it: no traceback for output nobody reads. (What
    Hydra prints itself, ``--cfg job``, Hydra reports.)"""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit fails no more
        sys.exit(1)
    sys.exit(status)
