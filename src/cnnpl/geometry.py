"""Shape and parameter arithmetic shared by every convolution and pooling layer.

The one formula (the course notes'): an ``n``-wide input, kernel ``f``, padding ``p`` on each side,
stride ``s`` and dilation ``d`` gives ``floor((n + 2p - d(f - 1) - 1) / s) + 1`` outputs, which is
``floor((n + 2p - f) / s) + 1`` at ``d = 1``.

Padding is an int (zeros on each side) or a mode: ``"valid"`` (none), ``"same"`` (output
``ceil(n / s)`` for any stride; an odd total puts the extra zero after, as TensorFlow does) or
``"full"`` (``d(f - 1)`` on each side: output ``n + d(f - 1)`` at stride 1, ``n + f - 1`` undilated).
:func:`padding_amounts` turns either into (before, after) zeros; :func:`output_size` accepts both.

:func:`pixel_uses` counts how many outputs each pixel takes part in (the edges fewer, without padding).

Also here: the receptive field of a stack of layers (:func:`receptive_field`) and the parameter
counts behind the notes' "Why convolutions?" (:func:`conv_parameters`, :func:`dense_parameters`,
:func:`why_convolutions`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnpl.errors import GeometryError, yaml_word

Padding = int | str

PADDING_MODES = ("valid", "same", "full")


def as_int(value: object) -> int | None:
    """``value`` as an int if it is an integer (numpy and torch integers too), else None; a bool is none."""
    if isinstance(value, bool):
        return None
    if getattr(value, "ndim", 0) != 0:  # an array or tensor of one element is no integer here
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def check_count(value: object, what: str) -> int:
    """``value`` as an int >= 1 (numpy and torch integers too), else :class:`GeometryError` naming ``what``."""
    count = as_int(value)
    if count is None or count < 1:
        raise GeometryError(f"{what} must be an int >= 1, got {yaml_word(value)}")
    return count


def _sized(value: object) -> bool:
    return not isinstance(value, (str, bytes, Mapping)) and hasattr(value, "__len__") and hasattr(value, "__getitem__")


def _two_items(value: object) -> bool:
    """A list, tuple, ListConfig, ``torch.Size``, array or tensor of two items."""
    try:
        return _sized(value) and len(value) == 2  # type: ignore[arg-type]
    except TypeError:  # a 0-d array or tensor has no len()
        return False


def pair(value: int | Sequence[int], what: str = "size") -> tuple[int, int]:
    """``value`` as a (height, width) pair: an int for both axes, or two ints.

    Raises :class:`GeometryError` naming ``what`` for anything else (``1.5``, ``[3, 1.5]``, ``(3, 3, 3)``),
    so that a size is never rounded or cut silently.
    """
    whole = as_int(value)
    if whole is not None:
        return whole, whole
    if _two_items(value):
        a, b = as_int(value[0]), as_int(value[1])  # type: ignore[index]
        if a is not None and b is not None:
            return a, b
    shown = value.tolist() if hasattr(value, "tolist") else list(value) if _sized(value) else value
    raise GeometryError(f"{what} must be an int or a (height, width) pair of ints, got {yaml_word(shown)}")


def output_size(n: int, kernel_size: int, stride: int = 1, padding: Padding = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis.

    ``padding`` is zeros on each side, or ``"valid"``, ``"same"`` or ``"full"`` (see the module docstring).
    Raises :class:`GeometryError` when the (dilated) kernel does not fit the padded input, or a
    stride, padding or dilation is out of range.

    >>> output_size(32, 3)  # valid 3x3 conv on CIFAR
    30
    >>> output_size(7, 3, stride=2)  # the notes' strided example
    3
    >>> output_size(7, 3, stride=2, padding="same")  # ceil(7 / 2)
    4
    """
    for value, what in ((n, "n"), (kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")):
        if as_int(value) is None:  # (5.5 gave 3.0; one axis: a pair is pair()'s to split)
            raise GeometryError(f"{what} must be an int for one axis, got {yaml_word(value)}")
    if isinstance(padding, str):
        before, after = padding_amounts(n, kernel_size, stride, padding, dilation)
        return output_size(n + before + after, kernel_size, stride, 0, dilation)
    if as_int(padding) is None:  # (1, 1) raised "'<' not supported between tuple and int"
        raise GeometryError(
            f"padding must be an int or one of {', '.join(PADDING_MODES)} for one axis, got {yaml_word(padding)}"
        )
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


def pixel_uses(n: int, kernel_size: int, stride: int = 1, padding: Padding = 0, dilation: int = 1) -> list[list[int]]:
    """How many outputs each pixel of an ``n x n`` image takes part in, for an ``f x f`` filter
    (``kernel_size``): the notes' reason for padding, that the pixels at the edges are used less than those in
    the middle. A pixel's count is the product of its row's and its column's counts along one axis.

    >>> pixel_uses(6, 3)[0]  # the top row: only the corners are used once
    [1, 2, 3, 3, 2, 1]
    >>> pixel_uses(6, 3, padding=1)[0]  # padding evens them out, but not fully
    [4, 6, 6, 6, 6, 4]
    """
    before, _ = padding_amounts(n, kernel_size, stride, padding, dilation)
    axis = [0] * n
    for start in range(output_size(n, kernel_size, stride, padding, dilation)):
        for tap in range(kernel_size):
            pixel = start * stride + tap * dilation - before
            if 0 <= pixel < n:
                axis[pixel] += 1
    return [[row * column for column in axis] for row in axis]


def full_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding on each side for a "full" convolution: output ``n + d(f - 1)`` at stride 1 (``n + f - 1`` at ``d = 1``).

    >>> full_padding(3), full_padding(3, dilation=2)
    (2, 4)
    """
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


def check_padding(padding: Padding | Sequence[int], *, what: str = "padding") -> None:
    """Raise :class:`GeometryError` unless ``padding`` is an int >= 0, a (height, width) pair of them,
    or one of :data:`PADDING_MODES`."""
    if isinstance(padding, (list, tuple)) and len(padding) == 2:
        for value in padding:
            if isinstance(value, bool) or not isinstance(value, int):
                raise GeometryError(f"{what} pair must hold two ints, got {yaml_word(tuple(padding))}")
            if value < 0:
                raise GeometryError(f"{what} must be >= 0, got {tuple(padding)}")
        return
    if isinstance(padding, bool) or not isinstance(padding, (int, str)):
        raise GeometryError(f"{what} must be an int or one of {', '.join(PADDING_MODES)}; got {yaml_word(padding)}")
    if isinstance(padding, str) and padding not in PADDING_MODES:
        raise GeometryError(f"{what} must be an int or one of {', '.join(PADDING_MODES)}; got {yaml_word(padding)}")
    if isinstance(padding, int) and padding < 0:
        raise GeometryError(f"{what} must be >= 0, got {padding}")


def axis_padding(padding: Padding | Sequence[int]) -> tuple[Padding, Padding]:
    """``(height, width)`` padding: a mode or an int applies to both axes, a pair is per axis."""
    if isinstance(padding, (list, tuple)):
        return int(padding[0]), int(padding[1])
    return padding, padding


def padding_amounts(
    n: int, kernel_size: int, stride: int = 1, padding: Padding = 0, dilation: int = 1
) -> tuple[int, int]:
    """(before, after) zeros along one axis for an int padding or a padding mode.

    >>> padding_amounts(32, 3, padding="same"), padding_amounts(32, 3, 2, "same"), padding_amounts(5, 3, padding="full")
    ((1, 1), (0, 1), (2, 2))
    """
    check_padding(padding)
    if stride < 1:
        raise GeometryError(f"stride must be >= 1, got {stride}")
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return same_padding(n, kernel_size, stride, dilation)
    if padding == "full":
        p = full_padding(kernel_size, dilation)
        return p, p
    return int(padding), int(padding)


# -- receptive field -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceptiveField:
    """After a layer: ``size`` input pixels seen by one output unit, ``jump`` input pixels between neighbours."""

    size: int
    jump: int


def receptive_fields(stack: Iterable[Sequence[int]]) -> list[ReceptiveField]:
    """Receptive field after each layer of ``stack``, a sequence of ``(kernel_size, stride[, dilation])``.

    ``r_out = r_in + d (f - 1) j_in`` and ``j_out = j_in s``, starting from ``r = j = 1`` (one pixel).
    Padding moves the field but does not change its size.
    """
    size, jump = 1, 1
    out = []
    for i, layer in enumerate(stack):
        if len(layer) not in (2, 3):
            raise GeometryError(f"layer {i} of the stack must be (kernel_size, stride[, dilation]), got {tuple(layer)}")
        f, s, d = (*layer, 1) if len(layer) == 2 else layer
        if f < 1 or s < 1 or d < 1:
            raise GeometryError(f"layer {i}: kernel_size, stride and dilation must be >= 1, got {f}, {s}, {d}")
        size += d * (f - 1) * jump
        jump *= s
        out.append(ReceptiveField(size, jump))
    return out


def receptive_field(stack: Iterable[Sequence[int]]) -> int:
    """Side of the input window one output unit of ``stack`` depends on.

    >>> receptive_field([(3, 1), (3, 1)])  # two 3x3 convs see 5x5, as one 5x5 does (VGG's argument)
    5
    >>> receptive_field([(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)])  # simple_cnn's features
    22
    """
    fields = receptive_fields(stack)
    return fields[-1].size if fields else 1


# -- parameter counts: the notes' "Why convolutions?" ---------------------------------------------


def conv_parameters(
    in_channels: int, out_channels: int, kernel_size: int | Sequence[int], *, bias: bool = True, groups: int = 1
) -> int:
    """Learnable numbers of a conv layer: ``out (in / groups) f_h f_w`` weights plus ``out`` biases.

    Independent of the input size: that is parameter sharing.

    >>> conv_parameters(3, 6, 5)  # the notes' 6 filters of 5x5x3
    456
    """
    kh, kw = pair(kernel_size, "kernel_size")  # type: ignore[arg-type]
    groups = check_count(groups, "groups")
    if in_channels % groups or out_channels % groups:
        raise GeometryError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def dense_parameters(in_features: int, out_features: int, *, bias: bool = True) -> int:
    """Learnable numbers of a fully connected layer: ``in * out`` weights plus ``out`` biases.

    >>> dense_parameters(32 * 32 * 3, 28 * 28 * 6, bias=False)  # the notes' 3072 x 4704
    14450688
    """
    return in_features * out_features + (out_features if bias else 0)


@dataclass(frozen=True)
class ConvVsDense:
    """One conv layer and the fully connected layer between the same input and output volumes."""

    input_shape: tuple[int, int, int]  # (C, H, W)
    output_shape: tuple[int, int, int]  # (C', H', W')
    conv: int  # parameters of the conv layer
    dense: int  # parameters of the fully connected layer
    dense_weights: int  # its weights alone (the notes' 3072 x 4704)

    @property
    def ratio(self) -> float:
        return self.dense / self.conv


def why_convolutions(
    input_shape: Sequence[int] = (3, 32, 32),
    filters: int = 6,
    kernel_size: int = 5,
    stride: int = 1,
    padding: Padding = 0,
    *,
    bias: bool = True,
) -> ConvVsDense:
    """The notes' comparison: ``filters`` convs of ``kernel_size`` on a ``(C, H, W)`` volume versus a
    fully connected layer from the same input volume to the same output volume.

    >>> w = why_convolutions()
    >>> w.output_shape, w.conv, w.dense_weights
    ((6, 28, 28), 456, 14450688)
    """
    if not _sized(input_shape) or len(input_shape) != 3:
        raise GeometryError(f"input_shape must be a (C, H, W) volume, got {yaml_word(input_shape)}")
    c, h, w = (check_count(v, "each of input_shape's (C, H, W)") for v in input_shape)
    filters = check_count(filters, "filters")  # (0 built, and its ratio divided by zero)
    out = (filters, output_size(h, kernel_size, stride, padding), output_size(w, kernel_size, stride, padding))
    n_in, n_out = c * h * w, math.prod(out)
    return ConvVsDense(
        input_shape=(c, h, w),
        output_shape=out,
        conv=conv_parameters(c, filters, kernel_size, bias=bias),
        dense=dense_parameters(n_in, n_out, bias=bias),
        dense_weights=n_in * n_out,
    )
