"""Helpers shared by the architectures: default factories and build-time shape checks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from cnnpl.errors import CnnplError, GeometryError
from cnnpl.factory import LayerFactory
from cnnpl.geometry import infer_output_shape

DEFAULT_CONV = LayerFactory("conv", "conv2d")
DEFAULT_POOL = LayerFactory("pool", "max")
DEFAULT_NORM = LayerFactory("norm", "batch")
DEFAULT_ACT = LayerFactory("act", "relu")


def trace_shapes(module: nn.Module, input_shape: Sequence[int], *, prefix: str = "") -> tuple[int, ...]:
    """Walk ``module``'s children in order and return the final output shape (batch axis dropped).

    Any layer whose geometry cannot work raises :class:`GeometryError` naming that layer, its input
    shape and the reason, so a bad combination fails when the model is built, not mid-training.
    Only plain ``nn.Sequential`` containers are walked into; other modules are treated as one layer.
    """
    shape = tuple(input_shape)
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            shape = trace_shapes(child, shape, prefix=f"{full}.")
            continue
        try:
            shape = infer_output_shape(child, shape)
        except CnnplError as err:
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {err}") from None
        except RuntimeError as err:
            reason = str(err).splitlines()[0]
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {reason}") from None
    return shape
