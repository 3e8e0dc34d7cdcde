"""Convolution layers, registered under ``conv``.

Registry names: ``conv2d``.

A conv factory is called by architectures as
``conv(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True)``
and returns a module mapping ``(N, C_in, H, W) -> (N, C_out, H', W')``. ``padding`` is an int or one
of ``"valid"``, ``"same"`` or ``"full"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnpl.errors import GeometryError
from cnnpl.geometry import PADDING_MODES, full_padding, output_size, pair, same_padding
from cnnpl.registry import register


def _check_padding(padding: int | str) -> None:
    if isinstance(padding, str) and padding not in PADDING_MODES:
        raise GeometryError(f"padding must be an int or one of {', '.join(PADDING_MODES)}; got {padding!r}")
    if isinstance(padding, int) and padding < 0:
        raise GeometryError(f"padding must be >= 0, got {padding}")


@register("conv", "conv2d")
class Conv2d(nn.Conv2d):
    """Cross-correlation, the deep-learning "convolution" the notes' worked examples compute.

    ``padding="same"`` keeps ``ceil(n / stride)`` outputs for any stride (TensorFlow's rule: an odd
    total puts the extra zero after); ``"full"`` gives ``n + f - 1`` outputs at stride 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        _check_padding(padding)
        for name, value in (("stride", stride), ("dilation", dilation), ("kernel_size", kernel_size)):
            if min(pair(value)) < 1:
                raise GeometryError(f"conv2d {name} must be >= 1, got {value}")
        k, d = pair(kernel_size), pair(dilation)
        static: int | tuple[int, int] = 0 if padding in ("valid", "same") else padding  # type: ignore[assignment]
        if padding == "full":
            static = (full_padding(k[0], d[0]), full_padding(k[1], d[1]))
        super().__init__(in_channels, out_channels, k, pair(stride), static, d, groups, bias)
        self.padding_rule = padding  # "same" pads at run time: the amount depends on the input size

    def _same_pad(self, h: int, w: int) -> tuple[int, int, int, int]:
        top, bottom = same_padding(h, self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(w, self.kernel_size[1], self.stride[1], self.dilation[1])
        return left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_rule == "same":
            x = F.pad(x, self._same_pad(x.shape[-2], x.shape[-1]))
        return super().forward(x)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C_in, H, W) -> (C_out, H', W')``; raises :class:`GeometryError` if the kernel cannot fit."""
        _, h, w = input_shape
        pads = (
            (sum(self._same_pad(h, w)[2:]), sum(self._same_pad(h, w)[:2]))
            if self.padding_rule == "same"
            else (2 * self.padding[0], 2 * self.padding[1])  # type: ignore[index]
        )
        # output_size takes padding per side; an odd "same" total is split unevenly, so fold it in n
        sizes = tuple(
            output_size(n + pad, f, s, 0, d)
            for n, pad, f, s, d in zip((h, w), pads, self.kernel_size, self.stride, self.dilation, strict=True)
        )
        return (self.out_channels, *sizes)
