"""Normalisation layers, registered under ``norm``.

Registry names: ``batch``, ``identity``. A norm factory is called as ``norm(num_features)``.
"""

from __future__ import annotations

from torch import nn

from cnnpl.errors import GeometryError, yaml_word
from cnnpl.registry import register


@register("norm", "batch")
class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation over ``(N, H, W)`` per channel.

    ``scale=False`` learns no scale (gamma), only the shift (beta), as Keras' ``BatchNormalization(scale=False)``,
    which its Inception V3 uses: worth it where a linear layer (or a convolution) follows, which can scale.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, scale: bool = True) -> None:
        # torch takes any eps and momentum here and fails at the first batch (eps < 0), or lets the
        # running statistics run away (momentum outside [0, 1])
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise GeometryError(f"batch norm: norm.eps must be a number > 0 (1e-5 is usual), got {yaml_word(eps)}")
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1
        ):
            raise GeometryError(
                "batch norm: norm.momentum must be in [0, 1] (0.1 is usual; null leaves it to the architecture), "
                f"got {yaml_word(momentum)}"
            )
        if not isinstance(scale, bool):
            raise GeometryError(f"batch norm: norm.scale must be true or false, got {yaml_word(scale)}")
        super().__init__(num_features, eps=eps, momentum=momentum)
        if not scale:
            self.weight = None  # F.batch_norm then scales by 1; the state dict has no 'weight'


@register("norm", "identity")
class NoNorm(nn.Identity):
    """No normalisation (for ablations)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
