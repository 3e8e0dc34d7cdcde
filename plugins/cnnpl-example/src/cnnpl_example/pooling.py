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
from cnnpl.geometry import output_size
from cnnpl.layers.pooling import check_window
from torch import nn


@register("pool", "softpool")
class SoftPool(nn.Module):
    """Softmax-weighted average pooling: ``(N, C, H, W) -> (N, C, H', W')``, the same sizes as max pooling.

    ``kernel_size``, ``stride`` and ``padding`` are ints or (height, width) pairs, checked as the built-in
    pools check them; ``stride`` defaults to the kernel size. Padded positions get no weight (they do not
    dilute the average). Raises :class:`cnnpl.CnnplError` for ``beta < 0``, and
    :class:`cnnpl.GeometryError` for a kernel or stride below 1, negative padding or padding over half
    the kernel.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        if beta < 0:
            raise CnnplError(f"softpool beta must be >= 0 (0 is average pooling), got {beta}")
        self.kernel_size, self.stride, self.padding = check_window(kernel_size, stride, padding)
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        windows = F.unfold(x, k, padding=p, stride=s).view(n, c, k[0] * k[1], -1)  # (N, C, window, positions)
        logits = self.beta * windows
        if any(p):  # padded positions are not activations: no weight at all, rather than a weight on zero
            inside = F.unfold(x.new_ones(1, 1, h, w), k, padding=p, stride=s).view(1, 1, k[0] * k[1], -1) > 0
            logits = logits.masked_fill(~inside, float("-inf"))
        pooled = (torch.softmax(logits, dim=2) * windows).sum(dim=2)  # softmax: stable for any beta * a
        return pooled.view(n, c, output_size(h, k[0], s[0], p[0]), output_size(w, k[1], s[1], p[1]))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C, H, W) -> (C, H', W')``; raises :class:`cnnpl.GeometryError` if the window cannot fit."""
        c, h, w = input_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        return c, output_size(h, k[0], s[0], p[0]), output_size(w, k[1], s[1], p[1])
