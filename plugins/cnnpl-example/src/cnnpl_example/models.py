"""A small architecture, registered under ``model`` as ``tiny_net``.

Two (by default) blocks of conv 3x3 ("same") -> norm -> act -> pool 2x2, then global average
pooling and one linear layer. Small enough to train in seconds on ``data=shapes``; every conv,
norm, act and pool layer comes from the factories it receives, so ``conv=``, ``pool=``, ``norm=`` and
``act=`` swap them all. The head's global average pooling stays fixed: it is what lets the
network take any input size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import cnnpl
import torch
from cnnpl import CnnplError, LayerFactory
from cnnpl.models._util import trace_shapes
from torch import nn


@cnnpl.register("model", "tiny_net")
class TinyNet(nn.Module):
    """``(N, C, H, W) -> (N, num_classes)`` logits; block ``i`` has ``width * 2**i`` channels.

    Raises :class:`cnnpl.GeometryError` naming the layer when the input is too small for ``blocks``
    poolings, and :class:`cnnpl.CnnplError` for ``width < 1`` or ``blocks < 1``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (32, 32),
        conv: LayerFactory = cnnpl.factory("conv", "conv2d"),  # noqa: B008  (immutable)
        pool: LayerFactory = cnnpl.factory("pool", "max"),  # noqa: B008
        norm: LayerFactory = cnnpl.factory("norm", "batch"),  # noqa: B008
        act: LayerFactory = cnnpl.factory("act", "relu"),  # noqa: B008
        width: int = 16,
        blocks: int = 2,
    ) -> None:
        super().__init__()
        if width < 1 or blocks < 1:
            raise CnnplError(f"tiny_net needs width >= 1 and blocks >= 1, got width={width}, blocks={blocks}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i in range(blocks):
            c_out = width * 2**i
            layers[f"block{i + 1}"] = nn.Sequential(
                OrderedDict(
                    conv=conv(in_channels=c_in, out_channels=c_out, kernel_size=3, padding="same", bias=False),
                    norm=norm(num_features=c_out),
                    act=act(),
                    pool=pool(kernel_size=2, stride=2, channels=c_out),
                )
            )
            c_in = c_out
        self.features = nn.Sequential(layers)
        self.stages = [f"features.{name}" for name in layers]  # where feature maps are worth looking at
        channels = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")[0]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
