"""cnnpl: convolutional neural networks from the course notes, on PyTorch Lightning.

Public API: :func:`register`, :func:`build`, :func:`list_components`, :class:`LayerFactory`,
:func:`compose` and :func:`train`. Importing the package registers the built-in components; the
callbacks by name only (:data:`cnnpl.registry.BUILTIN_CALLBACKS`), since their modules import
Lightning: each is imported when a run builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnpl import layers, models  # noqa: F401  (registers the built-ins; cnnpl.registry the callbacks' names)
from cnnpl.errors import CnnplError, DuplicateComponentError, GeometryError, UnknownComponentError
from cnnpl.factory import LayerFactory, factory
from cnnpl.registry import FAMILIES, Registry, build, get_registry, list_components, register

if TYPE_CHECKING:
    from omegaconf import DictConfig

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "CnnplError",
    "DuplicateComponentError",
    "GeometryError",
    "LayerFactory",
    "Registry",
    "UnknownComponentError",
    "build",
    "compose",
    "factory",
    "get_registry",
    "list_components",
    "load_plugins",
    "register",
    "train",
]


def compose(overrides: list[str] | str | None = None, output_dir: str | None = None) -> DictConfig:
    """The command line's config, composed in Python (``overrides`` as on the command line: a list, or one)."""
    from cnnpl.config import compose as _compose

    return _compose(overrides or [], output_dir=output_dir)


# Bind the submodule now: importing ``cnnpl.train`` later would replace the function below with it.
from cnnpl import train as _train_module  # noqa: E402,F401


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run what ``python -m cnnpl`` runs on a composed config; returns the final metrics."""
    from cnnpl.train import train as _train

    return _train(cfg)


# Last, because it loads the installed plugins, which import cnnpl (docs/plugins.md).
from cnnpl.plugins import load_plugins as load_plugins  # noqa: E402
