"""CoordConv (Liu et al., 2018), registered under ``conv`` as ``coord_conv2d``.

A convolution is translation-equivariant: the notes' parameter sharing means a kernel cannot tell
where in the image it is. CoordConv gives it the answer by appending two channels holding each
pixel's row and column coordinate (scaled to [-1, 1]), and optionally a third holding the distance
from the centre, before an ordinary ``conv2d`` (built through the registry, so it keeps every
padding rule of the built-in).
"""

from __future__ import annotations

from collections.abc import Sequence

import cnnpl
import torch
from cnnpl import CnnplError
from torch import nn


@cnnpl.register("conv", "coord_conv2d")
class CoordConv2d(nn.Module):
    """``(N, C_in, H, W) -> (N, C_out, H', W')``; ``H'``, ``W'`` as for ``conv2d`` with the same settings.

    The inner convolution (``self.conv``) reads ``C_in + 2`` channels (``+ 3`` with ``with_radius``).
    Raises :class:`cnnpl.CnnplError` for ``groups != 1``: the coordinate channels belong to every group.
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
        with_radius: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1:
            raise CnnplError(f"coord_conv2d supports groups=1 only, got groups={groups}; use conv=conv2d here")
        self.with_radius = with_radius
        self.extra_channels = 3 if with_radius else 2
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = cnnpl.build(
            "conv",
            "conv2d",
            in_channels=in_channels + self.extra_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        )

    # the geometry others read from a conv layer (summaries, shape checks) is the inner conv's
    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.conv.kernel_size

    @property
    def stride(self) -> tuple[int, int]:
        return self.conv.stride

    @property
    def dilation(self) -> tuple[int, int]:
        return self.conv.dilation

    def coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """The extra channels for a batch like ``x``: ``(N, 2 or 3, H, W)``, rows then columns (then radius)."""
        n, _, h, w = x.shape
        rows = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        cols = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        maps = [rows, cols]
        if self.with_radius:
            maps.append(torch.sqrt(rows**2 + cols**2))
        return torch.cat(maps, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, self.coordinates(x)], dim=1))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C_in, H, W) -> (C_out, H', W')``; raises :class:`cnnpl.GeometryError` if the kernel cannot fit."""
        c, h, w = input_shape
        return tuple(self.conv.output_shape((c + self.extra_channels, h, w)))  # type: ignore[return-value]
