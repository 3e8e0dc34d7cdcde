"""Convolution layers, registered under ``conv``.

Registry names: ``conv2d``, ``true_conv2d``, ``pointwise``, ``depthwise_separable``, ``grouped``,
``dilated``, ``conv3d_channels``, ``locally_connected``, ``tiled``.

A conv factory is called by architectures as
``conv(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)``
and returns a module mapping ``(N, C_in, H, W) -> (N, C_out, H', W')``. ``padding`` is an int (zeros on
each side), a (height, width) pair of ints, or one of ``"valid"``, ``"same"`` (``ceil(n / stride)``
outputs for any stride) or ``"full"`` (``n + d(f - 1)`` outputs at stride 1); see :mod:`cnnpl.geometry`.
Every layer has ``output_shape((C, H, W)) -> (C', H', W')``. Variants whose weight is not
``(C_out, C_in, f, f)`` also have ``filter_bank()``: a representative 4-D set of kernels, for filter
pictures. A variant that cannot honour an argument it is given (``groups=4`` for ``locally_connected``,
``kernel_size=3`` for ``pointwise``) raises :class:`GeometryError` naming itself and the argument when
it is built.
docs/convolution.md compares them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnpl.errors import GeometryError, yaml_word
from cnnpl.geometry import (
    Padding,
    axis_padding,
    check_count,
    check_padding,
    full_padding,
    output_size,
    padding_amounts,
    pair,
)
from cnnpl.registry import register

IntPair = int | tuple[int, int]
ConvPadding = Padding | tuple[int, int]  # an int or a mode for both axes, or (height, width) ints


def _check_geometry(
    variant: str,
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair | Sequence[int],
    stride: IntPair | Sequence[int],
    padding: ConvPadding,
    dilation: IntPair | Sequence[int],
) -> None:
    """Build-time checks shared by every variant; each message names the variant and the numbers."""
    _check_count(variant, "in_channels", in_channels)
    _check_count(variant, "out_channels", out_channels)
    for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
        if min(pair(value, f"{variant}: {name}")) < 1:  # type: ignore[arg-type]
            raise GeometryError(f"{variant}: {name} must be >= 1, got {value}")
    check_padding(padding, what=f"{variant}: padding")


def _check_count(variant: str, name: str, value: object) -> None:
    check_count(value, f"{variant}: {name}")


def _check_groups(variant: str, groups: int, in_channels: int, out_channels: int) -> None:
    _check_count(variant, "groups", groups)
    if in_channels % groups or out_channels % groups:
        # helper-140: conv=grouped conv.groups=4 meant "4 groups where they fit", which is cardinality
        hint = (
            f"; for up to {groups} groups in each layer, as its channels allow, drop conv.groups and give "
            f"conv.cardinality={groups}"
            if variant == Grouped.variant
            else ""
        )
        raise GeometryError(
            f"{variant}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}{hint}"
        )


def _refuse(variant: str, argument: str, value: Any, why: str) -> GeometryError:
    return GeometryError(f"{variant} cannot honour {argument}={value!r}: {why}")


class _Geometry:
    """Padding and output sizes from ``kernel_size``, ``stride``, ``dilation`` (pairs) and ``padding_rule``."""

    in_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding_rule: ConvPadding
    variant: str

    def _pads(self, h: int, w: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` zeros for an ``h x w`` input, as ``F.pad`` takes them."""
        pad_h, pad_w = axis_padding(self.padding_rule)
        top, bottom = padding_amounts(h, self.kernel_size[0], self.stride[0], pad_h, self.dilation[0])
        left, right = padding_amounts(w, self.kernel_size[1], self.stride[1], pad_w, self.dilation[1])
        return left, right, top, bottom

    def _spatial_out(self, h: int, w: int) -> tuple[int, int]:
        left, right, top, bottom = self._pads(h, w)
        return (
            _axis_out(h, self.kernel_size[0], self.stride[0], top, bottom, self.dilation[0]),
            _axis_out(w, self.kernel_size[1], self.stride[1], left, right, self.dilation[1]),
        )

    def _check_channels(self, channels: int) -> None:
        if channels != self.in_channels:
            raise GeometryError(f"{self.variant} was built for {self.in_channels} input channels, got {channels}")


def _axis_out(n: int, kernel_size: int, stride: int, before: int, after: int, dilation: int) -> int:
    """Outputs along one axis with ``before`` and ``after`` zeros (equal but for an odd "same" total)."""
    if before == after:  # output_size takes padding per side, and its error then names the input and padding
        return output_size(n, kernel_size, stride, before, dilation)
    return output_size(n + before + after, kernel_size, stride, 0, dilation)  # "same": the kernel always fits


def _uniform_(tensor: torch.Tensor, fan_in: int) -> None:
    """PyTorch's default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases alike."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


# -- weight-shared convolutions built on nn.Conv2d --------------------------------------------------


@register("conv", "conv2d")
class Conv2d(_Geometry, nn.Conv2d):
    """Cross-correlation, the deep-learning "convolution" the notes' worked examples compute.

    ``padding="same"`` keeps ``ceil(n / stride)`` outputs for any stride (TensorFlow's rule: an odd
    total puts the extra zero after); ``"full"`` gives ``n + d(f - 1)`` outputs at stride 1.
    ``init=<kernel name>`` fills the weights from :mod:`cnnpl.kernels` (the kernel over the mean of the
    input channels, for every filter; bias zero: see :func:`cnnpl.kernels.init_conv_weight_`);
    ``freeze=True`` stops the weights and bias from training.
    """

    variant = "conv2d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        init: str | None = None,
        freeze: bool = False,
    ) -> None:
        _check_geometry(self.variant, in_channels, out_channels, kernel_size, stride, padding, dilation)
        _check_groups(self.variant, groups, in_channels, out_channels)
        k, d = pair(kernel_size), pair(dilation)
        static: int | tuple[int, int] = 0 if padding in ("valid", "same") else axis_padding(padding)  # type: ignore[assignment]
        if padding == "full":
            static = (full_padding(k[0], d[0]), full_padding(k[1], d[1]))
        super().__init__(in_channels, out_channels, k, pair(stride), static, d, groups, bias)
        self.padding_rule = padding  # "same" pads at run time: the amount depends on the input size
        self.init = init
        self.freeze = freeze
        if init is not None:
            # imported here: at module level `import cnnpl` would load cnnpl.kernels, and
            # `python -m cnnpl.kernels` would then warn that runpy found it already imported
            from cnnpl.kernels import init_conv_weight_

            init_conv_weight_(self.weight, init, what=self.variant)
            if self.bias is not None:
                nn.init.zeros_(self.bias)
        if freeze:
            self.requires_grad_(False)

    def _same_pad(self, h: int, w: int) -> tuple[int, int, int, int]:
        return self._pads(h, w)

    def extra_repr(self) -> str:
        text = super().extra_repr()  # torch's shows the static padding, (0, 0) for "same": name the rule instead
        return f"{text}, padding='{self.padding_rule}'" if self.padding_rule in ("same", "valid") else text

    def _conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        padding = self.padding
        if self.padding_rule == "same":
            left, right, top, bottom = self._same_pad(x.shape[-2], x.shape[-1])
            if (left, top) == (right, bottom):
                padding = (top, left)  # even: the convolution pads itself, without a padded copy of x
            else:
                x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x, self.weight)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C_in, H, W) -> (C_out, H', W')``; raises :class:`GeometryError` if the kernel cannot fit."""
        _, h, w = input_shape
        return (self.out_channels, *self._spatial_out(h, w))


@register("conv", "true_conv2d")
class TrueConv2d(Conv2d):
    """Mathematical convolution: the kernel is flipped (rows and columns) before it slides.

    The notes: "convolution means to flip the 3x3 filter first". Same parameters and cost as
    ``conv2d``; the stored ``weight`` is the kernel *before* flipping, so ``init=sobel_x`` computes
    ``scipy.signal.convolve2d`` with Sobel x (which is cross-correlation with the mirrored kernel).
    """

    variant = "true_conv2d"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the flip is what makes this convolution rather than cross-correlation
        return self._conv(x, self.weight.flip(-2, -1))


@register("conv", "pointwise")
class Pointwise(Conv2d):
    """1x1 convolution: mixes channels at each pixel, ``H x W x D -> H x W x N`` (the notes' section 4).

    ``kernel_size`` must be 1; conf/conv/pointwise.yaml sets it (config values win over the
    architecture's), together with ``padding: 0``, which gives the same output size as ``"same"``
    for a 1x1 kernel at any stride.
    """

    variant = "pointwise"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 1,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        if pair(kernel_size, f"{self.variant}: kernel_size") != (1, 1):
            raise _refuse(
                self.variant,
                "kernel_size",
                kernel_size,
                "it is a 1x1 convolution; set conv.kernel_size=1 or use conv2d",
            )
        super().__init__(in_channels, out_channels, 1, stride, padding, dilation, groups, bias)


@register("conv", "grouped")
class Grouped(Conv2d):
    """Grouped convolution (AlexNet, ResNeXt): channels split into groups, each convolved on its own.

    Parameters: ``C_out (C_in / g) f^2 + C_out`` for ``g`` groups. ``cardinality`` is the number of groups
    wanted in every layer the architecture leaves ungrouped (``groups=1``); a layer whose channel counts
    it does not divide uses the largest divisor of both that is not above it (the 3-channel stem of a
    network becomes g=1), so ``conv=grouped`` works as a drop-in everywhere. A layer for which the
    architecture asks ``groups > 1`` (a depthwise conv) keeps exactly that. ``self.groups`` is what the
    layer uses. For one exact value that fails loudly instead, use ``conv=conv2d conv.groups=G``.
    """

    variant = "grouped"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        init: str | None = None,
        freeze: bool = False,
        cardinality: int = 2,
    ) -> None:
        if isinstance(cardinality, bool) or not isinstance(cardinality, int) or cardinality < 1:
            raise GeometryError(f"{self.variant}: cardinality must be an int >= 1, got {yaml_word(cardinality)}")
        if groups == 1:
            common = math.gcd(in_channels, out_channels) if in_channels >= 1 and out_channels >= 1 else 1
            groups = max(g for g in range(1, min(cardinality, common) + 1) if common % g == 0)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, init, freeze)
        self.cardinality = cardinality

    @classmethod
    def _check_config(cls, params: Mapping[str, Any]) -> None:
        """``conv.groups=1`` would be read as every layer the architecture leaves ungrouped: cardinality's."""
        if params.get("groups") == 1:
            raise GeometryError(
                "conv=grouped conv.groups=1: grouped gives every ungrouped layer conv.cardinality groups; for none, "
                "set conv.cardinality=1 or choose conv=conv2d"
            )


@register("conv", "dilated")
class Dilated(Conv2d):
    """Dilated (atrous) convolution that keeps the architecture's output sizes.

    The kernel's taps are ``dilation`` pixels apart (an int, or a (height, width) pair), so a 3x3 kernel
    at dilation 2 sees 5x5 with 9 weights. Unlike ``conv2d conv.dilation=2``, an int ``padding`` p grows by
    the span the dilation adds, ``p + (d - 1)(f - 1) / 2`` along each axis, so the layer gives the output
    size the architecture planned for the undilated kernel: "3x3, padding 1" keeps its size
    (``p * d``, DeepLab's rule) and a valid "3x3, padding 0" still shrinks by 2, not 4. Where
    ``(d - 1)(f - 1)`` is odd (an even kernel at dilation 2), half of it is rounded down and the output
    is one pixel smaller than planned. ``"valid"`` and ``"full"`` are planned sizes too (padding 0 and
    ``f - 1``, then grown the same way); ``"same"`` keeps the size at any dilation and is kept. For a
    dilated layer without this rule, use ``conv=conv2d conv.dilation=2``.
    """

    variant = "dilated"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 2,
        groups: int = 1,
        bias: bool = True,
        init: str | None = None,
        freeze: bool = False,
    ) -> None:
        d = pair(dilation, f"{self.variant}: dilation")
        if min(d) < 1:
            raise GeometryError(f"{self.variant}: dilation must be >= 1, got {dilation}")
        check_padding(padding, what=f"{self.variant}: padding")
        f = pair(kernel_size, f"{self.variant}: kernel_size")
        planned = (
            {"valid": (0, 0), "full": (f[0] - 1, f[1] - 1)}.get(padding, padding)
            if isinstance(padding, str)
            else padding
        )
        scaled = (
            planned  # "same": torch pads for the dilated span itself
            if isinstance(planned, str)
            else tuple(p + (di - 1) * (fi - 1) // 2 for p, di, fi in zip(axis_padding(planned), d, f, strict=True))
        )
        super().__init__(in_channels, out_channels, kernel_size, stride, scaled, dilation, groups, bias, init, freeze)


@register("conv", "depthwise_separable")
class DepthwiseSeparable(_Geometry, nn.Module):
    """A depthwise conv (one ``kernel_size`` filter per input channel) followed by a pointwise 1x1 conv.

    Xception's and MobileNet's building block: ``C_in f^2 m + C_in m C_out + C_out`` parameters against
    ``C_in f^2 C_out + C_out`` for ``conv2d`` (``m`` = ``depth_multiplier``). Stride, padding and
    dilation apply to the depthwise step; the bias sits after the pointwise step only (as in Keras'
    SeparableConv2D). It is already grouped as far as it goes, so ``groups`` other than 1 raises.
    """

    variant = "depthwise_separable"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        depth_multiplier: int = 1,
    ) -> None:
        super().__init__()
        _check_geometry(self.variant, in_channels, out_channels, kernel_size, stride, padding, dilation)
        if groups != 1:
            raise _refuse(
                self.variant, "groups", groups, "it is a depthwise conv then a pointwise conv; use conv2d for groups"
            )
        _check_count(self.variant, "depth_multiplier", depth_multiplier)
        mid = in_channels * depth_multiplier
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding_rule = padding
        self.depthwise = Conv2d(
            in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels, bias=False
        )
        self.pointwise = Conv2d(mid, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.is_contiguous():
            # on CPU, oneDNN's depthwise and 1x1 kernels are much faster channels-last (benchmarks/bench_conv.py:
            # about 0.65x of conv2d's time against 1.0x without); the result goes back to the caller's layout
            x = x.contiguous(memory_format=torch.channels_last)
            return self.pointwise(self.depthwise(x)).contiguous()
        return self.pointwise(self.depthwise(x))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        _, h, w = input_shape
        return (self.out_channels, *self._spatial_out(h, w))


@register("conv", "conv3d_channels")
class Conv3dChannels(_Geometry, nn.Module):
    """The notes' "3D convolution": a kernel shallower than the input slides over height, width *and* channels.

    Each 3-D filter is ``kernel_depth x f x f`` (one weight per tap, shared along the channel axis) and
    moves ``depth_stride`` channels at a time without channel padding, so it yields a volume of
    ``D' = floor((C_in - kernel_depth) / depth_stride) + 1`` feature maps. To be a drop-in conv with
    ``out_channels`` maps, the layer has ``F = ceil(out_channels / D')`` filters; their volumes are
    stacked filter-major (map ``f * D' + d`` is filter ``f`` at depth position ``d``) and the first
    ``out_channels`` maps are kept (at most ``D' - 1`` maps of the last filter are dropped). A layer
    with fewer input channels than ``kernel_depth`` uses ``kernel_depth = C_in`` (then ``D' = 1``: an
    ordinary conv with ``out_channels`` filters). Parameters: ``F (kernel_depth f^2 + 1)`` with bias.
    Height and width follow the usual stride, padding and dilation; ``groups`` other than 1 raises.
    """

    variant = "conv3d_channels"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        kernel_depth: int = 3,
        depth_stride: int = 1,
    ) -> None:
        super().__init__()
        _check_geometry(self.variant, in_channels, out_channels, kernel_size, stride, padding, dilation)
        if groups != 1:
            raise _refuse(self.variant, "groups", groups, "its filters already slide along the channels")
        _check_count(self.variant, "kernel_depth", kernel_depth)
        _check_count(self.variant, "depth_stride", depth_stride)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding_rule = padding
        self.kernel_depth = min(kernel_depth, in_channels)
        self.depth_stride = depth_stride
        self.depth_out = (in_channels - self.kernel_depth) // depth_stride + 1  # D'
        self.filters = math.ceil(out_channels / self.depth_out)  # F
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(self.filters, 1, self.kernel_depth, kh, kw))
        self.bias = nn.Parameter(torch.empty(self.filters)) if bias else None
        fan_in = self.kernel_depth * kh * kw
        _uniform_(self.weight, fan_in)
        if self.bias is not None:
            _uniform_(self.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # more channels would only add depth positions, and the maps kept would come from the wrong filters
        self._check_channels(x.shape[-3])
        h, w = x.shape[-2:]
        volume = F.pad(x, self._pads(h, w)).unsqueeze(1)  # (N, 1, C_in, H, W): channels become depth
        out = F.conv3d(
            volume,
            self.weight,
            self.bias,
            stride=(self.depth_stride, *self.stride),
            dilation=(1, *self.dilation),
        )  # (N, F, D', H', W')
        return out.flatten(1, 2)[:, : self.out_channels]

    def filter_bank(self) -> torch.Tensor:
        """The filters as ``(F, kernel_depth, f, f)``, the 4-D layout filter pictures expect (depth as channels)."""
        return self.weight.detach()[:, 0]

    @property
    def filters_by_input_channel(self) -> bool:
        """Whether :meth:`filter_bank`'s second axis is the input channels, as a conv's is: only when each
        filter spans all of them (``D' = 1``); otherwise its taps slide along them (for :func:`cnnpl.viz.reads_rgb`)."""
        return self.kernel_depth == self.in_channels

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = input_shape
        self._check_channels(c)
        return (self.out_channels, *self._spatial_out(h, w))


# -- unshared convolutions --------------------------------------------------------------------------


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (so the bmm backward stays fast)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


@register("conv", "locally_connected")
class LocallyConnected(_Geometry, nn.Module):
    """Unshared convolution: conv connectivity, but a separate kernel (and bias) at every output position.

    Parameters: ``H' W' (C_out C_in f^2 + C_out)``, which depends on the input size, so the layer needs
    it: pass ``input_size=(H, W)``, or let the first ``output_shape((C, H, W))`` call (architectures
    make one while they build, through ``trace_shapes``) or the first forward pass fix it; until then the
    weights are uninitialised (``torch.nn.UninitializedParameter``). After that, other input sizes raise
    :class:`GeometryError`. ``groups`` other than 1 raises. Weight layout: ``(H' W', C_out, C_in f^2)``
    in ``F.unfold``'s order; bias ``(C_out, H', W')``.
    """

    variant = "locally_connected"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        input_size: IntPair | None = None,
    ) -> None:
        super().__init__()
        _check_geometry(self.variant, in_channels, out_channels, kernel_size, stride, padding, dilation)
        if groups != 1:
            raise _refuse(self.variant, "groups", groups, "grouped unshared convolutions are not implemented")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding_rule = padding
        self.input_size: tuple[int, int] | None = None
        self.out_size: tuple[int, int] | None = None
        self.weight: nn.Parameter = nn.UninitializedParameter()
        self.bias: nn.Parameter | None = nn.UninitializedParameter() if bias else None
        if input_size is not None:
            self.materialize(pair(input_size, f"{self.variant}: input_size"))  # type: ignore[arg-type]

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def materialize(self, input_size: tuple[int, int]) -> None:
        """Create the weights for ``input_size``; a no-op if already built for it, else :class:`GeometryError`."""
        h, w = int(input_size[0]), int(input_size[1])
        if self.input_size is not None:
            if (h, w) != self.input_size:
                raise GeometryError(
                    f"{self.variant} was built for {self.input_size[0]}x{self.input_size[1]} inputs (one kernel per "
                    f"output position), got {h}x{w}"
                )
            return
        out_h, out_w = self._spatial_out(h, w)
        self.weight.materialize((out_h * out_w, self.out_channels, self.fan_in))
        _uniform_(self.weight, self.fan_in)
        if self.bias is not None:
            self.bias.materialize((self.out_channels, out_h, out_w))
            _uniform_(self.bias, self.fan_in)
        self.input_size, self.out_size = (h, w), (out_h, out_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        self._check_channels(c)
        self.materialize((h, w))
        out_h, out_w = self.out_size  # type: ignore[misc]
        cols = F.unfold(F.pad(x, self._pads(h, w)), self.kernel_size, dilation=self.dilation, stride=self.stride)
        # one (C_in f^2) x C_out matrix per position: a batched matmul over positions, (L, N, K) @ (L, K, C_out);
        # .contiguous() matters: bmm on the permuted view falls back to a path ~30x slower on CPU
        out = torch.bmm(cols.permute(2, 0, 1).contiguous(), self.weight.transpose(1, 2))
        out = _ContiguousGrad.apply(out).permute(1, 2, 0)  # and so does the gradient coming back
        out = out.reshape(n, self.out_channels, out_h, out_w)
        return out if self.bias is None else out + self.bias

    def filter_bank(self) -> torch.Tensor:
        """The kernels at the central output position as ``(C_out, C_in, f, f)`` (for filter pictures)."""
        if self.out_size is None:
            raise GeometryError(f"{self.variant} has no weights yet: build it with input_size or run it once")
        out_h, out_w = self.out_size
        centre = (out_h // 2) * out_w + out_w // 2
        return self.weight.detach()[centre].reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = input_shape
        self._check_channels(c)
        self.materialize((h, w))
        return (self.out_channels, *self._spatial_out(h, w))

    # a checkpoint of a materialised layer loads into a fresh, lazy one
    def get_extra_state(self) -> Any:
        return {"input_size": self.input_size}

    def set_extra_state(self, state: Any) -> None:
        if state and state.get("input_size") is not None:
            self.materialize(tuple(state["input_size"]))

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        extra = state_dict.get(prefix + "_extra_state")
        if isinstance(extra, dict) and extra.get("input_size") is not None:
            self.materialize(tuple(extra["input_size"]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[arg-type]


@register("conv", "tiled")
class Tiled(_Geometry, nn.Module):
    """Tiled convolution: ``tiles x tiles`` kernels, the one at output position ``(i, j)`` being number
    ``(i mod t, j mod t)`` (Goodfellow et al., section 9.5).

    ``tiles=1`` is ``conv2d``; ``tiles`` equal to the output size is ``locally_connected``. Each kernel
    has its own bias. Parameters: ``t^2 (C_out (C_in / groups) f^2 + C_out)``, whatever the input size
    (kernels beyond the output size are never used). Computed as ``t^2`` native strided convolutions,
    one per tile offset, interleaved into the output: the same arithmetic as one ``conv2d``.
    Weight layout: ``(t, t, C_out, C_in / groups, f, f)``.
    """

    variant = "tiled"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair = 3,
        stride: IntPair = 1,
        padding: ConvPadding = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        tiles: IntPair = 2,
    ) -> None:
        super().__init__()
        _check_geometry(self.variant, in_channels, out_channels, kernel_size, stride, padding, dilation)
        _check_groups(self.variant, groups, in_channels, out_channels)
        if min(pair(tiles, f"{self.variant}: tiles")) < 1:  # type: ignore[arg-type]
            raise GeometryError(f"{self.variant}: tiles must be >= 1, got {tiles}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding_rule = padding
        self.tiles = pair(tiles)  # type: ignore[arg-type]
        th, tw = self.tiles
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        self.weight = nn.Parameter(torch.empty(th, tw, out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(th, tw, out_channels)) if bias else None
        _uniform_(self.weight, fan_in)
        if self.bias is not None:
            _uniform_(self.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        out_h, out_w = self._spatial_out(h, w)
        x = F.pad(x, self._pads(h, w))
        (sh, sw), (th, tw) = self.stride, self.tiles
        out = x.new_zeros(n, self.out_channels, out_h, out_w)
        # one strided conv per tile offset (a, b): it produces exactly the outputs (a + m t, b + m' t)
        for a in range(min(th, out_h)):
            for b in range(min(tw, out_w)):
                y = F.conv2d(
                    x[:, :, a * sh :, b * sw :],
                    self.weight[a, b],
                    None if self.bias is None else self.bias[a, b],
                    stride=(sh * th, sw * tw),
                    dilation=self.dilation,
                    groups=self.groups,
                )
                out[:, :, a::th, b::tw] = y
        return out

    def filter_bank(self) -> torch.Tensor:
        """The first tile's kernels, ``(C_out, C_in / groups, f, f)`` (for filter pictures)."""
        return self.weight.detach()[0, 0]

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        _, h, w = input_shape
        return (self.out_channels, *self._spatial_out(h, w))
