"""The course notes' own networks, registered under ``model``.

Registry names: ``simple_cnn_bn`` (the notes' batch-normalised Keras network) and ``notes_example``
(the notes' "simple convolutional network example", 39x39x3 -> 37x37x10 -> 17x17x20 -> 7x7x40).
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
    DEFAULT_NORM,
    DEFAULT_POOL,
    building,
    check_conv_widths,
    dense_head,
    trace_shapes,
)
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import register


@register("model", "simple_cnn_bn")
class SimpleCNNBN(nn.Module):
    """The notes' second Keras network: [norm] -> 3 x (conv 3x3 valid -> act -> norm -> pool 2x2) -> dense.

    Exactly the notes' layer order (Keras ``Conv2D(..., activation='relu')`` then
    ``BatchNormalization`` then ``MaxPooling2D(2, 2)``), including the batch norm on the raw input
    (``input_norm``). Convs 32/64/128, dense 512/256/128, then ``num_classes`` logits (the softmax
    lives in the loss). The notes train it on 64x64x3 images with 2 classes: 2,618,446 parameters
    counting batch-norm running statistics as Keras does, 2,617,992 learnable ones.
    ``conv``, ``pool``, ``norm`` and ``act`` build every layer of their kind.
    ``(N, C, H, W) -> (N, num_classes)``.
    """

    head_prefixes = ("classifier.",)

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (32, 32),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        norm: LayerFactory = DEFAULT_NORM,
        act: LayerFactory = DEFAULT_ACT,
        channels: Sequence[int] = (32, 64, 128),
        hidden: Sequence[int] = (512, 256, 128),
        input_norm: bool = True,
        dropout: float = 0.0,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        check_conv_widths(channels, model="simple_cnn_bn")
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        if input_norm:
            blocks["input_norm"] = norm(num_features=in_channels)
        c_in = in_channels
        for i, c_out in enumerate(channels, start=1):
            with building(f"features.block{i}"):
                blocks[f"block{i}"] = nn.Sequential(
                    OrderedDict(
                        conv=conv(in_channels=c_in, out_channels=c_out, kernel_size=3, padding="valid"),
                        act=act(),
                        norm=norm(num_features=c_out),
                        pool=pool(kernel_size=2, stride=2, channels=c_out),
                    )
                )
            c_in = c_out
        self.features = nn.Sequential(blocks)
        self.stages = [f"features.block{i}" for i in range(1, len(channels) + 1)]
        feature_shape = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        self.classifier = dense_head(math.prod(feature_shape), hidden, num_classes, act, dropout, model="simple_cnn_bn")
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("model", "notes_example")
class NotesExample(nn.Module):
    """The notes' "simple convolutional network example", with the middle layer the notes leave out.

    The notes give 39x39x3 -> (10 filters 3x3, stride 1, no padding) -> 37x37x10 -> ... -> 7x7x40 ->
    1960 features -> classifier. The layers between are 5x5 convolutions with stride 2 and no padding
    (20, then 40 filters), as in the course's example (Ng's): a choice that gives the stated shapes,
    ``floor((37 - 5) / 2) + 1 = 17`` and ``floor((17 - 5) / 2) + 1 = 7`` (4x4 with stride 2, or 7x7
    with stride 2 and padding 1, would too). The classifier is one dense layer 1960 -> ``num_classes``.
    There is no pooling layer (so ``pool=`` changes nothing); ``conv`` and ``act`` build every conv
    and activation. 44,950 parameters at 39x39x3 with 10 classes.
    """

    head_prefixes = ("classifier.",)

    # (filters, kernel_size, stride) of each conv; padding is "valid" throughout
    PLAN: tuple[tuple[int, int, int], ...] = ((10, 3, 1), (20, 5, 2), (40, 5, 2))

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (39, 39),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        act: LayerFactory = DEFAULT_ACT,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, (c_out, k, s) in enumerate(self.PLAN, start=1):
            with building(f"features.conv{i}"):
                layer = conv(in_channels=c_in, out_channels=c_out, kernel_size=k, stride=s, padding="valid")
            blocks[f"conv{i}"] = nn.Sequential(OrderedDict(conv=layer, act=act()))
            c_in = c_out
        self.features = nn.Sequential(blocks)
        self.stages = [f"features.{name}" for name in blocks]
        self.feature_shape = trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.feature_shape), num_classes))
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
