"""VGG (Simonyan & Zisserman, 2015): one class and a dict of layer plans, registered under ``model``.

Registry names: ``vgg16``, ``vgg19``.

Module names follow torchvision's ``VGG`` (``features.<i>``, ``classifier.<i>``), so a torchvision
state dict loads without renaming (``model.pretrained=/path/vgg16.pth``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_ACT,
    DEFAULT_CONV,
    DEFAULT_POOL,
    building,
    has_chosen_kernel,
    size_layout,
    trace_shapes,
)
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import register

# Output channels of each 3x3 "same" conv; "M" is a 2x2 stride-2 pooling layer (the notes' description).
PLANS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

IMAGENET_GRID = 7  # the reference classifier reads a 7x7x512 volume (25,088 features)
IMAGENET_WIDTH = 4096  # dense units of the reference classifier
CIFAR_WIDTH = 512  # dense units of the small-input classifier


class VGG(nn.Module):
    """VGG: the ``plan``'s 3x3 convs (stride 1, "same" padding) + act, 2x2 stride-2 pools, then a classifier.

    ``head="imagenet"``: adaptive average pooling to 7x7 (fixed: it only adapts the grid to the
    reference classifier, as torchvision does), then dense 4096 -> 4096 -> classes with dropout:
    138,357,544 (vgg16) and 143,667,240 (vgg19) parameters at 224x224 with 1000 classes, as torchvision.
    ``head="cifar"`` (the default for inputs up to 64 px): flatten the last feature map (1x1x512 at
    32x32) into dense 512 -> 512 -> classes with dropout. ``conv`` builds all 13 / 16 convs, ``pool``
    all five pooling layers, ``act`` every activation. ``(N, C, H, W) -> (N, num_classes)``.
    """

    head_prefixes = ("classifier.",)

    plan: Sequence[int | str] = PLANS["vgg16"]

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (224, 224),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        act: LayerFactory = DEFAULT_ACT,
        head: str | None = None,
        dropout: float = 0.5,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        self.head = size_layout(head, input_size, what="model.head")
        layers: list[nn.Module] = []
        self.stages: list[str] = []
        c_in = in_channels
        for item in self.plan:
            with building(f"features.{len(layers)}"):
                if item == "M":
                    self.stages.append(f"features.{len(layers) - 1}")  # the block's last activation
                    layers.append(pool(kernel_size=2, stride=2, channels=c_in))
                else:
                    # "same", as the notes say VGG pads: 1 for its 3x3 kernels (inside the conv, no padded copy),
                    # and what keeps the size for conv.kernel_size=5 or conv.dilation=2 too (padding 1 shrank it)
                    layers += [conv(in_channels=c_in, out_channels=int(item), kernel_size=3, padding="same"), act()]
                    c_in = int(item)
        self.features = nn.Sequential(*layers)
        feature_shape = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        if self.head == "imagenet":
            self.avgpool: nn.Module = nn.AdaptiveAvgPool2d(IMAGENET_GRID)
            width, hidden = c_in * IMAGENET_GRID**2, IMAGENET_WIDTH
        else:
            self.avgpool = nn.Identity()
            width, hidden = math.prod(feature_shape), CIFAR_WIDTH
        self.classifier = nn.Sequential(
            nn.Linear(width, hidden),
            act(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            act(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    def _init_weights(self) -> None:
        # torchvision's initialisation: He for convs, N(0, 0.01) for dense layers, zero biases
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not has_chosen_kernel(m):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register("model", "vgg16")
class VGG16(VGG):
    """VGG with 13 convs and 3 dense layers (:data:`PLANS` ``"vgg16"``)."""

    plan = PLANS["vgg16"]


@register("model", "vgg19")
class VGG19(VGG):
    """VGG with 16 convs and 3 dense layers (:data:`PLANS` ``"vgg19"``)."""

    plan = PLANS["vgg19"]
