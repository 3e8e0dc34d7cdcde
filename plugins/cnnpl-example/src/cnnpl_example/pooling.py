"""SoftPool (Stergiou, Poppe & Kalliatakis, 2021), registered under ``pool`` as ``softpool``.

Each window's activations are averaged with softmax weights: ``s = sum_i w_i a_i`` with
``w_i = exp(beta a_i) / sum_j exp(beta a_j)``. ``beta`` moves it between the two poolings that the
notes' mixed pooling mixes: ``beta -> 0`` is average pooling, ``beta -> inf`` is max pooling.
Unlike max pooling, every activation of the window receives a gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from cnnpl import CnnplError, register
from cnnpl.geometry import output_size, pair
from torch import nn


@register("pool", "softpool")
class SoftPool(nn.Module):
    """Softmax-weighted average pooling: ``(N, C, H, W) -> (N, C, H', W')``, the same sizes as max pooling.

    ``stride`` defaults to the kernel size; zero ``padding`` does not dilute the average (padded
    positions get no weight). Raises :class:`cnnpl.CnnplError` for ``beta < 0``.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0, beta: float = 1.0) -> None:
        super().__init__()
        if beta < 0:
            raise CnnplError(f"softpool beta must be >= 0 (0 is average pooling), got {beta}")
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # exp(beta (a - m)) with m the per-map maximum: the same weights, without overflow
        peak = x.detach().amax(dim=(-2, -1), keepdim=True)
        weights = torch.exp(self.beta * (x - peak))
        pool = {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}
        # both averages count the same window size, so their ratio is the weighted mean; padded zeros
        # add nothing to either sum
        return F.avg_pool2d(weights * x, **pool) / F.avg_pool2d(weights, **pool).clamp_min(1e-12)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C, H, W) -> (C, H', W')``; raises :class:`cnnpl.GeometryError` if the window cannot fit."""
        c, h, w = input_shape
        k, s, p = pair(self.kernel_size), pair(self.stride), pair(self.padding)
        return c, output_size(h, k[0], s[0], p[0]), output_size(w, k[1], s[1], p[1])
