"""Pooling layers, registered under ``pool``.

Registry names: ``max``, ``avg``.

A pool factory is called by architectures as ``pool(kernel_size=..., stride=..., padding=...)``
(plus ``channels=C`` for strategies that learn per-channel parameters; the factory drops it for
those that do not take it) and returns a module mapping ``(N, C, H, W) -> (N, C, H', W')`` with the
same output size rule as max pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from cnnpl.geometry import output_size, pair
from cnnpl.registry import register


class _PoolShape:
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int]
    padding: int | tuple[int, int]

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = input_shape
        k, s, p = pair(self.kernel_size), pair(self.stride), pair(self.padding)
        return c, output_size(h, k[0], s[0], p[0]), output_size(w, k[1], s[1], p[1])


@register("pool", "max")
class MaxPool(_PoolShape, nn.MaxPool2d):
    """Max pooling: the largest activation of each ``kernel_size`` window. ``stride`` defaults to the kernel."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(kernel_size, stride, padding)


@register("pool", "avg")
class AvgPool(_PoolShape, nn.AvgPool2d):
    """Average pooling: the mean of each window. Zero padding counts toward the mean, as in Keras."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(kernel_size, stride, padding)
