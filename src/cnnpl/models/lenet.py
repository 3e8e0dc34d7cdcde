"""LeNet-5 (LeCun et al., 1998), registered under ``model``.

Registry names: ``lenet5``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnpl.factory import LayerFactory
from cnnpl.models._util import DEFAULT_ACT, DEFAULT_CONV, DEFAULT_POOL, building, trace_shapes
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import register


@register("model", "lenet5")
class LeNet5(nn.Module):
    """conv 5x5 6 -> pool 2x2 -> conv 5x5 16 -> pool 2x2 -> dense 120 -> 84 -> classes.

    Valid convolutions on 32x32 inputs give 28x28x6 -> 14x14x6 -> 10x10x16 -> 5x5x16 = 400 features.
    The modern reading: every C3 map sees all six S2 maps, F6 is a plain dense layer and the output is
    logits (not RBF units): 61,706 parameters for 32x32x1 and 10 classes, 62,006 for 32x32x3.
    ``conv``, ``pool`` and ``act`` build every layer of their kind; the 1998 network is
    ``act=tanh pool=avg``. ``(N, C, H, W) -> (N, num_classes)``.
    """

    head_prefixes = ("classifier.",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        input_size: Sequence[int] = (32, 32),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        act: LayerFactory = DEFAULT_ACT,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        with building("features.c1"):
            c1 = conv(in_channels=in_channels, out_channels=6, kernel_size=5, padding="valid")
        with building("features.s2"):
            s2 = pool(kernel_size=2, stride=2, channels=6)
        with building("features.c3"):
            c3 = conv(in_channels=6, out_channels=16, kernel_size=5, padding="valid")
        with building("features.s4"):
            s4 = pool(kernel_size=2, stride=2, channels=16)
        self.features = nn.Sequential(OrderedDict(c1=c1, act1=act(), s2=s2, c3=c3, act3=act(), s4=s4))
        self.stages = ["features.act1", "features.act3"]
        feature_shape = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                c5=nn.Linear(math.prod(feature_shape), 120),
                act5=act(),
                f6=nn.Linear(120, 84),
                act6=act(),
                output=nn.Linear(84, num_classes),
            )
        )
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
