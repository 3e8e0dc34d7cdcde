"""ResNet (He et al., 2016), registered under ``model``.

Registry names: ``resnet50`` (bottleneck blocks, the notes' ResNet50) and ``resnet18`` (basic blocks:
the compact ResNet, about half the parameters (11.2 M against 23.5 M) and 0.43 of the multiply-adds of
``resnet50`` at CIFAR size, so residual learning can be tried on a CPU).

Module names follow torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ``fc``...), so a
torchvision state dict loads without renaming. The blocks are torchvision's "v1.5": a bottleneck
downsamples in its 3x3 conv.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnpl.errors import GeometryError
from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_ACT,
    DEFAULT_CONV,
    DEFAULT_NORM,
    DEFAULT_POOL,
    building,
    has_chosen_kernel,
    size_layout,
    trace_path,
)
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import register

STAGE_WIDTHS = (64, 128, 256, 512)  # "planes" of layer1..layer4; bottlenecks output 4x as many channels


class _Residual(nn.Module):
    """A residual block: ``act(path(x) + shortcut(x))``; ``path`` names the layers of the main branch."""

    path: tuple[str, ...]
    downsample: nn.Module | None

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        main = trace_path(((n, getattr(self, n)) for n in self.path), input_shape)
        short = (
            tuple(input_shape)
            if self.downsample is None
            else trace_path([("downsample", self.downsample)], input_shape)
        )
        if main != short:
            raise GeometryError(f"main branch gives {main} but the shortcut gives {short}; they cannot be added")
        return main


class BasicBlock(_Residual):
    """Two 3x3 convs; the first carries the stride. ``(N, C, H, W) -> (N, planes, H / s, W / s)``."""

    expansion = 1
    path = ("conv1", "bn1", "act1", "conv2", "bn2")

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        conv: LayerFactory,
        norm: LayerFactory,
        act: LayerFactory,
    ) -> None:
        super().__init__()
        self.conv1 = conv(
            in_channels=inplanes, out_channels=planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = norm(num_features=planes)
        self.act1 = act()
        self.conv2 = conv(in_channels=planes, out_channels=planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = norm(num_features=planes)
        self.downsample = downsample
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act2(out + shortcut)


class Bottleneck(_Residual):
    """1x1 reduce -> 3x3 (with the stride) -> 1x1 expand to ``4 * planes`` channels."""

    expansion = 4
    path = ("conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "bn3")

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int,
        downsample: nn.Module | None,
        conv: LayerFactory,
        norm: LayerFactory,
        act: LayerFactory,
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = conv(in_channels=inplanes, out_channels=planes, kernel_size=1, bias=False)
        self.bn1 = norm(num_features=planes)
        self.act1 = act()
        self.conv2 = conv(in_channels=planes, out_channels=planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(num_features=planes)
        self.act2 = act()
        self.conv3 = conv(in_channels=planes, out_channels=out, kernel_size=1, bias=False)
        self.bn3 = norm(num_features=out)
        self.downsample = downsample
        self.act3 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act3(out + shortcut)


class ResNet(nn.Module):
    """Stem -> four stages of residual blocks (stages 2-4 halve the size) -> global average pool -> dense.

    ``stem="imagenet"``: 7x7 stride-2 conv and a 3x3 stride-2 pooling layer (built by ``pool``): 224 ->
    56 before ``layer1``, 7x7 after ``layer4``. ``stem="cifar"`` (the default for inputs up to 64 px):
    one 3x3 stride-1 conv and no pooling (He et al.'s CIFAR setting), so 32x32 inputs reach ``layer4``
    at 4x4. ``conv`` builds every conv (stem, blocks, 1x1 projection shortcuts), ``norm`` every batch
    norm, ``act`` every activation. The global average pool before ``fc`` is fixed: it makes the head
    independent of the input size, which is not a choice a pooling strategy should change.
    ``(N, C, H, W) -> (N, num_classes)``.
    """

    block: type[BasicBlock | Bottleneck] = Bottleneck
    depths: tuple[int, int, int, int] = (3, 4, 6, 3)
    head_prefixes = ("fc.",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (224, 224),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        norm: LayerFactory = DEFAULT_NORM,
        act: LayerFactory = DEFAULT_ACT,
        stem: str | None = None,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        self.stem = size_layout(stem, input_size, what="model.stem")
        k, s, p = (7, 2, 3) if self.stem == "imagenet" else (3, 1, 1)
        with building("conv1"):
            self.conv1 = conv(in_channels=in_channels, out_channels=64, kernel_size=k, stride=s, padding=p, bias=False)
        with building("maxpool"):
            # registered before bn1 and act1 (torchvision registers it after them, and the forward pass runs it
            # after them): a stem pool with parameters (pool=mixed_learned, gated) comes before bn1's in the
            # optimizer's state, which a checkpoint holds by position. The summary lists it in its run order.
            self.maxpool: nn.Module = (
                pool(kernel_size=3, stride=2, padding=1, channels=64) if self.stem == "imagenet" else nn.Identity()
            )
        self.bn1 = norm(num_features=64)
        self.act1 = act()
        inplanes = 64
        for i, (planes, depth) in enumerate(zip(STAGE_WIDTHS, self.depths, strict=True), start=1):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 1 and j == 0 else 1
                downsample = None
                with building(f"layer{i}.{j}"):
                    if stride != 1 or inplanes != planes * self.block.expansion:
                        downsample = nn.Sequential(
                            conv(
                                in_channels=inplanes,
                                out_channels=planes * self.block.expansion,
                                kernel_size=1,
                                stride=stride,
                                bias=False,
                            ),
                            norm(num_features=planes * self.block.expansion),
                        )
                    blocks.append(self.block(inplanes, planes, stride, downsample, conv, norm, act))
                inplanes = planes * self.block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.stages = ["act1", "layer1", "layer2", "layer3", "layer4"]
        self.cam_layer = "layer4"  # Grad-CAM's usual layer: the last block's output, after its residual sum
        names = ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4")
        trace_path(((n, getattr(self, n)) for n in names), (in_channels, *input_size))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self._init_weights()
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    def _init_weights(self) -> None:
        # torchvision's initialisation (He normal, fan-out, for convs; unit-scale batch norms)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not has_chosen_kernel(m):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                if m.weight is not None:  # norm.scale=false has none
                    nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register("model", "resnet50")
class ResNet50(ResNet):
    """ResNet-50: bottleneck blocks, 3-4-6-3. 25,557,032 parameters at 224x224 with 1000 classes."""

    block = Bottleneck
    depths = (3, 4, 6, 3)


@register("model", "resnet18")
class ResNet18(ResNet):
    """ResNet-18: basic blocks, 2-2-2-2. 11,689,512 parameters at 224x224 with 1000 classes."""

    block = BasicBlock
    depths = (2, 2, 2, 2)
