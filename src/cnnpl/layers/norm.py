"""Normalisation layers, registered under ``norm``.

Registry names: ``batch``, ``identity``. A norm factory is called as ``norm(num_features)``.
"""

from __future__ import annotations

from torch import nn

from cnnpl.registry import register


@register("norm", "batch")
class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation over ``(N, H, W)`` per channel."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)


@register("norm", "identity")
class NoNorm(nn.Identity):
    """No normalisation (for ablations)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
