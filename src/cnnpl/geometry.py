"""Shape arithmetic shared by every convolution and pooling layer.

The one formula (the course notes'): an ``n``-wide input, kernel ``f``, padding ``p`` on each side,
stride ``s`` and dilation ``d`` gives ``floor((n + 2p - d(f - 1) - 1) / s) + 1`` outputs, which is
``floor((n + 2p - f) / s) + 1`` at ``d = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnnpl.errors import GeometryError

Padding = int | str

PADDING_MODES = ("valid", "same", "full")


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis (padding on each side).

    Raises :class:`GeometryError` when the (dilated) kernel does not fit the padded input, or a
    stride, padding or dilation is out of range.

    >>> output_size(32, 3)  # valid 3x3 conv on CIFAR
    30
    >>> output_size(7, 3, stride=2)  # the notes' strided example
    3
    """
    if stride < 1:
        raise GeometryError(f"stride must be >= 1, got {stride}")
    if padding < 0:
        raise GeometryError(f"padding must be >= 0, got {padding}")
    if dilation < 1 or kernel_size < 1:
        raise GeometryError(f"kernel_size and dilation must be >= 1, got {kernel_size} and {dilation}")
    span = dilation * (kernel_size - 1) + 1
    if span > n + 2 * padding:
        raise GeometryError(
            f"kernel {kernel_size} (span {span} with dilation {dilation}) is larger than the input "
            f"{n} padded by {padding} on each side"
        )
    return (n + 2 * padding - span) // stride + 1


def same_padding(n: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding that makes the output ``ceil(n / stride)`` long, for any stride.

    When the total is odd the extra zero goes after, as TensorFlow does.
    """
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + dilation * (kernel_size - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def full_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding on each side for a "full" convolution: output ``n + f - 1`` at stride 1."""
    return dilation * (kernel_size - 1)


def infer_output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Output shape (without the batch axis) of ``module`` for one input of ``input_shape``.

    Uses the module's own ``output_shape`` when it has one, else one forward pass of zeros in
    eval mode (so stochastic layers do not draw and no running statistics change).
    """
    if hasattr(module, "output_shape"):
        return tuple(module.output_shape(tuple(input_shape)))
    was_training = module.training
    module.eval()
    try:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            out = module(torch.zeros(1, *input_shape, device=device))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])
