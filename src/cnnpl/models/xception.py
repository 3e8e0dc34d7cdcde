"""Xception (Chollet, 2017) in the Keras Applications layout, registered under ``model``.

Registry names: ``xception``.

Module names follow Keras' layer names (``block2_sepconv1``, ``block2_sepconv1_bn``...), grouped
per block. There is no torchvision Xception to load weights from; Keras weights are TensorFlow
tensors, which this package does not convert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnpl.errors import GeometryError
from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_ACT,
    DEFAULT_CONV,
    DEFAULT_NORM,
    DEFAULT_POOL,
    build_with_preferences,
    building,
    depthwise_conv,
    size_layout,
    trace_path,
)
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import register

BN_EPS = 1e-3  # Keras' BatchNormalization epsilon
MIDDLE_BLOCKS = 8  # blocks 5-12: the middle flow, repeated at 19x19x728
# (output channels of the two separable convs, whether the first is preceded by an activation)
ENTRY_BLOCKS = ((128, 128, False), (256, 256, True), (728, 728, True))


class SeparableConv(nn.Module):
    """Keras' ``SeparableConv2D`` without bias: a depthwise 3x3 (``groups=C_in``) then a pointwise 1x1.

    Both are built by the ``conv`` factory, so ``conv=`` swaps them; a conv that cannot do
    ``groups=C_in`` is refused at build time.
    """

    def __init__(self, conv: LayerFactory, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = depthwise_conv(conv, in_channels, layer="depthwise", kernel_size=3, padding=1, bias=False)
        with building("pointwise"):
            self.pointwise = conv(in_channels=in_channels, out_channels=out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        return trace_path(self.named_children(), input_shape)


class XceptionBlock(nn.Module):
    """[act] -> sepconv -> bn (-> act -> sepconv -> bn)... [-> 3x3 stride-2 pool] + shortcut.

    The shortcut is the identity (middle flow) or a 1x1 stride-2 conv + bn (entry and exit flows).
    ``names`` are the Keras layer names of the main path, in order.
    """

    def __init__(
        self,
        name: str,
        in_channels: int,
        widths: Sequence[int],
        *,
        first_act: bool,
        downsample: bool,
        conv: LayerFactory,
        pool: LayerFactory,
        norm: LayerFactory,
        act: LayerFactory,
    ) -> None:
        super().__init__()
        self.names: list[str] = []
        c_in = in_channels
        for i, c_out in enumerate(widths, start=1):
            if i > 1 or first_act:
                self._add(f"{name}_sepconv{i}_act", act() if i > 1 else out_of_place(act()))
            with building(f"{name}_sepconv{i}"):
                self._add(f"{name}_sepconv{i}", SeparableConv(conv, c_in, c_out))
            self._add(f"{name}_sepconv{i}_bn", build_with_preferences(norm, {"eps": BN_EPS}, num_features=c_out))
            c_in = c_out
        self.shortcut: nn.Module | None = None
        if downsample:
            with building(f"{name}_pool"):
                self._add(f"{name}_pool", pool(kernel_size=3, stride=2, padding=1, channels=c_in))
            with building("shortcut"):
                self.shortcut = nn.Sequential(
                    conv(in_channels=in_channels, out_channels=c_in, kernel_size=1, stride=2, bias=False),
                    build_with_preferences(norm, {"eps": BN_EPS}, num_features=c_in),
                )

    def _add(self, name: str, module: nn.Module) -> None:
        self.add_module(name, module)
        self.names.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.names:
            out = getattr(self, name)(out)
        return out + (x if self.shortcut is None else self.shortcut(x))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        main = trace_path(((n, getattr(self, n)) for n in self.names), input_shape)
        short = tuple(input_shape) if self.shortcut is None else trace_path([("shortcut", self.shortcut)], input_shape)
        if main != short:
            raise GeometryError(f"main branch gives {main} but the shortcut gives {short}; they cannot be added")
        return main


def out_of_place(module: nn.Module) -> nn.Module:
    """``module`` with its ``inplace`` switched off (``act.inplace=true``), as timm's Xception does.

    A block's first activation reads the block's input, which the shortcut reads too: in place, it
    would overwrite what the shortcut adds (relu(x) instead of x) or projects.
    """
    if getattr(module, "inplace", False):
        module.inplace = False
    return module


@register("model", "xception")
class Xception(nn.Module):
    """Xception: entry flow (2 convs + 3 downsampling blocks) -> middle flow (8 blocks) -> exit flow -> dense.

    Keras Applications' ``Xception`` layer for layer: at 299x299 with 1000 classes 22,910,480
    parameters counting batch-norm running statistics as Keras does (22,855,952 learnable), and the
    same feature-map sizes (299 -> 149 -> 147 -> 74 -> 37 -> 19 -> 10). ``stem="imagenet"`` is the
    reference (3x3 stride-2 then 3x3 valid conv); ``stem="cifar"`` (the default for inputs up to 64 px)
    makes both convs stride 1 with padding 1, so 32 -> 16 -> 8 -> 4 (middle flow) -> 2. ``conv`` builds
    every conv: the two stem convs, the depthwise (``groups=C``) and pointwise halves of all 34
    separable convs and the four 1x1 shortcut projections. ``pool`` builds the four 3x3 stride-2
    pooling layers (blocks 2, 3, 4 and 13; padding 1 gives Keras' "same" sizes), ``norm`` every batch
    norm (``eps=1e-3`` as Keras when the norm takes it), ``act`` every activation. The global average
    pool before ``fc`` is fixed. ``(N, C, H, W) -> (N, num_classes)``.
    """

    head_prefixes = ("fc.",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (299, 299),
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
        first_stride, first_padding, second_padding = (2, 0, 0) if self.stem == "imagenet" else (1, 1, 1)

        def bn(c: int) -> nn.Module:
            return build_with_preferences(norm, {"eps": BN_EPS}, num_features=c)

        with building("block1"):
            self.block1 = self._stem(in_channels, first_stride, first_padding, second_padding, conv, bn, act)
        factories = {"conv": conv, "pool": pool, "norm": norm, "act": act}
        c_in, index = 64, 2
        for w1, w2, first_act in ENTRY_BLOCKS:
            with building(f"block{index}"):
                block = XceptionBlock(
                    f"block{index}", c_in, (w1, w2), first_act=first_act, downsample=True, **factories
                )
            setattr(self, f"block{index}", block)
            c_in, index = w2, index + 1
        for _ in range(MIDDLE_BLOCKS):
            with building(f"block{index}"):
                block = XceptionBlock(f"block{index}", c_in, (728,) * 3, first_act=True, downsample=False, **factories)
            setattr(self, f"block{index}", block)
            index += 1
        with building("block13"):
            self.block13 = XceptionBlock("block13", 728, (728, 1024), first_act=True, downsample=True, **factories)
        with building("block14"):
            self.block14 = self._exit(conv, bn, act)
        self.blocks = [f"block{i}" for i in range(1, 15)]
        self.stages = ["block1", "block2", "block3", "block4", "block12", "block13", "block14"]
        self.cam_layer = "block14"  # Grad-CAM's: the exit flow's output, after its last norm and activation
        trace_path(((n, getattr(self, n)) for n in self.blocks), (in_channels, *input_size))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    @staticmethod
    def _stem(
        in_channels: int, stride: int, padding1: int, padding2: int, conv: LayerFactory, bn: Callable[[int], nn.Module],
        act: LayerFactory,
    ) -> nn.Sequential:  # fmt: skip
        block = nn.Sequential()
        for name, module in (
            ("block1_conv1", conv(in_channels=in_channels, out_channels=32, kernel_size=3, stride=stride,
                                  padding=padding1, bias=False)),
            ("block1_conv1_bn", bn(32)),
            ("block1_conv1_act", act()),
            ("block1_conv2", conv(in_channels=32, out_channels=64, kernel_size=3, padding=padding2, bias=False)),
            ("block1_conv2_bn", bn(64)),
            ("block1_conv2_act", act()),
        ):  # fmt: skip
            block.add_module(name, module)
        return block

    @staticmethod
    def _exit(conv: LayerFactory, bn: Callable[[int], nn.Module], act: LayerFactory) -> nn.Sequential:
        block = nn.Sequential()
        for name, width_in, width_out in (("block14_sepconv1", 1024, 1536), ("block14_sepconv2", 1536, 2048)):
            with building(name):
                block.add_module(name, SeparableConv(conv, width_in, width_out))
            block.add_module(f"{name}_bn", bn(width_out))
            block.add_module(f"{name}_act", act())
        return block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.blocks:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))
