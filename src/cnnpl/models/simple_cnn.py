"""The course notes' Keras CIFAR-10 network, registered under ``model``.

Registry names: ``simple_cnn``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_ACT,
    DEFAULT_CONV,
    DEFAULT_POOL,
    building,
    check_conv_widths,
    dense_head,
    trace_shapes,
)
from cnnpl.registry import register


@register("model", "simple_cnn")
class SimpleCNN(nn.Module):
    """Conv 3x3 32 -> pool -> conv 3x3 64 -> pool -> conv 3x3 128 -> pool -> dense 256 -> 128 -> classes.

    Valid padding and ReLU, exactly the notes' Keras model: 258,762 parameters for 32x32x3 inputs
    and 10 classes (the softmax lives in the loss). ``conv``, ``pool`` and ``act`` build every layer
    of their kind; ``pool`` is asked for 2x2 windows. ``(N, C, H, W) -> (N, num_classes)`` logits.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (32, 32),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        act: LayerFactory = DEFAULT_ACT,
        channels: Sequence[int] = (32, 64, 128),
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_conv_widths(channels, model="simple_cnn")
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(channels, start=1):
            with building(f"features.block{i}.conv"):  # a component's refusal names the layer
                layer = conv(in_channels=c_in, out_channels=c_out, kernel_size=3, padding="valid")
            with building(f"features.block{i}.pool"):
                pooling = pool(kernel_size=2, stride=2, channels=c_out)  # the notes: 2x2, stride 2
            blocks[f"block{i}"] = nn.Sequential(OrderedDict(conv=layer, act=act(), pool=pooling))
            c_in = c_out
        self.features = nn.Sequential(blocks)
        self.stages = [f"features.{name}" for name in blocks]  # where feature maps are worth looking at
        feature_shape = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        self.classifier = dense_head(math.prod(feature_shape), hidden, num_classes, act, dropout, model="simple_cnn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
