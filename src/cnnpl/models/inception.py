"""Inception v3 (Szegedy et al., 2016), registered under ``model``.

Registry names: ``inception_v3``.

Module names follow torchvision's ``Inception3`` (``Conv2d_1a_3x3.conv``, ``Mixed_5b.branch1x1.bn``,
``AuxLogits.fc``, ``fc``...), so a torchvision state dict loads without renaming.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from cnnpl.errors import CnnplError, GeometryError, yaml_word
from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_ACT,
    DEFAULT_CONV,
    DEFAULT_NORM,
    DEFAULT_POOL,
    build_with_preferences,
    building,
    has_chosen_kernel,
    size_layout,
    trace_path,
)
from cnnpl.pretrained import apply_pretrained
from cnnpl.registry import accepts_var_kwargs, get_registry, parameters_of, register

BN_EPS = 1e-3  # the reference's batch-norm epsilon (torchvision and Keras alike)
IMAGENET_STEM_MIN = 75  # pixels: the smallest side the reference stem and blocks fit (3 x 3 before Mixed_7a)
Kernel = int | tuple[int, int]


FOLLOW_POOL = "pool"  # model.branch_pool=pool: the A/C/E blocks' stride-1 pooling branches are pool='s


class Factories:
    """The layer factories one Inception network builds from (``branch_pool`` for the 3x3 stride-1 branches)."""

    def __init__(
        self, conv: LayerFactory, pool: LayerFactory, branch_pool: LayerFactory, norm: LayerFactory, act: LayerFactory
    ) -> None:
        self.conv, self.pool, self.branch_pool, self.norm, self.act = conv, pool, branch_pool, norm, act


class ConvBN(nn.Module):
    """conv (no bias) -> norm -> act: torchvision's ``BasicConv2d``. ``padding`` is an int or ``"same"``."""

    def __init__(
        self,
        f: Factories,
        in_channels: int,
        out_channels: int,
        kernel_size: Kernel,
        stride: int = 1,
        padding: int | str = 0,
    ) -> None:
        super().__init__()
        self.conv = f.conv(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            bias=False,
        )
        self.bn = build_with_preferences(f.norm, {"eps": BN_EPS}, num_features=out_channels)
        self.act = f.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        return trace_path(self.named_children(), input_shape)


class _Mixed(nn.Module):
    """A block of parallel branches concatenated along channels; ``paths`` lists each branch's layers."""

    paths: tuple[tuple[str, ...], ...]

    def _branch(self, x: torch.Tensor, names: Iterable[str]) -> torch.Tensor:
        for name in names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._branch(x, path) for path in self.paths], 1)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        shapes = [trace_path(((n, getattr(self, n)) for n in path), input_shape) for path in self.paths]
        if len({s[1:] for s in shapes}) > 1:
            raise GeometryError(
                f"its branches give different sizes {[s[1:] for s in shapes]}; they cannot be concatenated"
            )
        return (sum(s[0] for s in shapes), *shapes[0][1:])


class InceptionA(_Mixed):
    """35x35 block: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3 stride-1 pool -> 1x1."""

    paths = (
        ("branch1x1",),
        ("branch5x5_1", "branch5x5_2"),
        ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
        ("pool", "branch_pool"),
    )

    def __init__(self, f: Factories, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(f, in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(f, in_channels, 48, 1)
        self.branch5x5_2 = ConvBN(f, 48, 64, 5, padding="same")
        self.branch3x3dbl_1 = ConvBN(f, in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(f, 64, 96, 3, padding="same")
        self.branch3x3dbl_3 = ConvBN(f, 96, 96, 3, padding="same")
        self.pool = f.branch_pool(kernel_size=3, stride=1, padding=1, channels=in_channels)
        self.branch_pool = ConvBN(f, in_channels, pool_features, 1)


class InceptionB(_Mixed):
    """Grid reduction 35 -> 17: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | 3x3 stride-2 pool."""

    paths = (("branch3x3",), ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), ("pool",))

    def __init__(self, f: Factories, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(f, in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(f, in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN(f, 64, 96, 3, padding="same")
        self.branch3x3dbl_3 = ConvBN(f, 96, 96, 3, stride=2)
        self.pool = f.pool(kernel_size=3, stride=2, channels=in_channels)


class InceptionC(_Mixed):
    """17x17 block with factorised 7x7 convs (1x7 and 7x1)."""

    paths = (
        ("branch1x1",),
        ("branch7x7_1", "branch7x7_2", "branch7x7_3"),
        ("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"),
        ("pool", "branch_pool"),
    )

    def __init__(self, f: Factories, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(f, in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(f, in_channels, c7, 1)
        self.branch7x7_2 = ConvBN(f, c7, c7, (1, 7), padding="same")
        self.branch7x7_3 = ConvBN(f, c7, 192, (7, 1), padding="same")
        self.branch7x7dbl_1 = ConvBN(f, in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN(f, c7, c7, (7, 1), padding="same")
        self.branch7x7dbl_3 = ConvBN(f, c7, c7, (1, 7), padding="same")
        self.branch7x7dbl_4 = ConvBN(f, c7, c7, (7, 1), padding="same")
        self.branch7x7dbl_5 = ConvBN(f, c7, 192, (1, 7), padding="same")
        self.pool = f.branch_pool(kernel_size=3, stride=1, padding=1, channels=in_channels)
        self.branch_pool = ConvBN(f, in_channels, 192, 1)


class InceptionD(_Mixed):
    """Grid reduction 17 -> 8: 1x1 -> 3x3 stride 2 | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 | 3x3 stride-2 pool."""

    paths = (
        ("branch3x3_1", "branch3x3_2"),
        ("branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
        ("pool",),
    )

    def __init__(self, f: Factories, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(f, in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(f, 192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(f, in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN(f, 192, 192, (1, 7), padding="same")
        self.branch7x7x3_3 = ConvBN(f, 192, 192, (7, 1), padding="same")
        self.branch7x7x3_4 = ConvBN(f, 192, 192, 3, stride=2)
        self.pool = f.pool(kernel_size=3, stride=2, channels=in_channels)


class InceptionE(_Mixed):
    """8x8 block with expanded filter banks: the 3x3 branches split into parallel 1x3 and 3x1 convs."""

    paths = (
        ("branch1x1",),
        ("branch3x3_1", "branch3x3_2a"),
        ("branch3x3_1", "branch3x3_2b"),
        ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a"),
        ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3b"),
        ("pool", "branch_pool"),
    )

    def __init__(self, f: Factories, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(f, in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(f, in_channels, 384, 1)
        self.branch3x3_2a = ConvBN(f, 384, 384, (1, 3), padding="same")
        self.branch3x3_2b = ConvBN(f, 384, 384, (3, 1), padding="same")
        self.branch3x3dbl_1 = ConvBN(f, in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN(f, 448, 384, 3, padding="same")
        self.branch3x3dbl_3a = ConvBN(f, 384, 384, (1, 3), padding="same")
        self.branch3x3dbl_3b = ConvBN(f, 384, 384, (3, 1), padding="same")
        self.pool = f.branch_pool(kernel_size=3, stride=1, padding=1, channels=in_channels)
        self.branch_pool = ConvBN(f, in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the shared 1x1 (and 1x1 -> 3x3) stems run once, not once per split branch
        b3 = self.branch3x3_1(x)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(bd),
                self.branch3x3dbl_3b(bd),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


class InceptionAux(nn.Module):
    """The auxiliary classifier on the 17x17 grid: 5x5 stride-3 average pool -> 1x1 -> 5x5 -> global pool -> dense.

    Its two pooling layers are fixed (they size the input of a classifier, they are not feature pooling).
    """

    def __init__(self, f: Factories, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=5, stride=3)
        self.conv0 = ConvBN(f, in_channels, 128, 1)
        self.conv1 = ConvBN(f, 128, 768, 5)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.conv1(self.conv0(self.pool(x))))
        return self.fc(torch.flatten(x, 1))


# (name, output channels, kernel size, stride, padding) of each stem layer; maxpool stride 0: no pooling
STEM_PLANS: dict[str, tuple[tuple[str, int, int, int, int | str], ...]] = {
    "imagenet": (
        ("Conv2d_1a_3x3", 32, 3, 2, 0),
        ("Conv2d_2a_3x3", 32, 3, 1, 0),
        ("Conv2d_2b_3x3", 64, 3, 1, 1),
        ("maxpool1", 0, 3, 2, 0),
        ("Conv2d_3b_1x1", 80, 1, 1, 0),
        ("Conv2d_4a_3x3", 192, 3, 1, 0),
        ("maxpool2", 0, 3, 2, 0),
    ),
    "cifar": (  # small inputs: keep the resolution through the stem, downsample once
        ("Conv2d_1a_3x3", 32, 3, 1, 1),
        ("Conv2d_2a_3x3", 32, 3, 1, 1),
        ("Conv2d_2b_3x3", 64, 3, 1, 1),
        ("maxpool1", 0, 3, 0, 0),
        ("Conv2d_3b_1x1", 80, 1, 1, 0),
        ("Conv2d_4a_3x3", 192, 3, 1, 1),
        ("maxpool2", 0, 3, 2, 1),
    ),
}
STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2")
MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")
MIXED_7 = ("Mixed_7a", "Mixed_7b", "Mixed_7c")


def _windowed(pool: Callable[..., Any]) -> bool:
    """Whether ``pool`` takes a window: ``kernel_size``, or ``**kwargs`` (a plugin's; helper-142)."""
    return "kernel_size" in parameters_of(pool) or accepts_var_kwargs(pool)


@register("model", "inception_v3")
class InceptionV3(nn.Module):
    """Inception v3: conv stem -> 3 x A (35x35) -> B -> 4 x C (17x17) -> D -> 2 x E (8x8) -> global pool -> dense.

    At 299x299 with 1000 classes: 23,834,568 parameters with ``aux_logits=False`` (the default) and
    27,161,264 with ``aux_logits=True``, exactly torchvision's ``inception_v3(aux_logits=...)``.
    ``aux_logits=True`` adds torchvision's auxiliary classifier (``AuxLogits``) so its weights load,
    but ``forward`` returns the main logits only: cnnpl's system has no auxiliary loss term, so that
    head receives no gradient. ``stem="imagenet"`` is the reference stem (299 -> 35 before ``Mixed_5b``,
    needs at least 75x75); ``stem="cifar"`` (the default for inputs up to 64 px, or with a side
    under 75) uses stride 1 and
    "same" padding in the stem convs and keeps only the second pool, so 32 -> 16 -> 7 -> 3.
    ``conv`` builds every conv, ``norm`` every batch norm (torchvision's ``eps=1e-3`` when the norm
    takes ``eps``; a config value wins), ``act`` every activation, ``pool`` the stem's two max pools
    and the stride-2 pooling branches of ``Mixed_6a`` / ``Mixed_7a``. The stride-1 pooling branches of
    the A, C and E blocks use ``branch_pool`` (``"avg"``, as the reference; ``"pool"`` or None: whatever
    ``pool`` is; on the command line ``model.branch_pool=pool``, since null there means the default).
    The global average pool before ``fc`` is fixed. ``(N, C, H, W) -> (N, num_classes)``.
    """

    head_prefixes = ("fc.", "AuxLogits.fc.")

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
        branch_pool: str | None = "avg",
        aux_logits: bool = False,
        dropout: float = 0.5,
        pretrained: str | None = None,
        new_head: bool | None = None,
        freeze_features: bool = False,
    ) -> None:
        super().__init__()
        self.stem = size_layout(stem, input_size, what="model.stem", imagenet_min=IMAGENET_STEM_MIN)
        follows = branch_pool in (None, FOLLOW_POOL)
        registry = get_registry("pool")  # the pools with a window: the branches pool 3x3 (helper-140: global_avg
        pools = [name for name in registry.names() if _windowed(registry.get(name))]  # was blamed on pool=)
        if not follows and branch_pool not in pools:
            raise CnnplError(
                f"model.branch_pool must be the name of a pool with a window ({', '.join(pools)}) or {FOLLOW_POOL} "
                f"(whatever pool= is), got {yaml_word(branch_pool)}"
            )
        f = Factories(conv, pool, pool if follows else LayerFactory("pool", str(branch_pool)), norm, act)
        c_in = in_channels
        for name, c_out, kernel_size, stride, padding in STEM_PLANS[self.stem]:
            with building(name):
                if name.startswith("maxpool"):
                    layer = (
                        nn.Identity()
                        if stride == 0
                        else pool(kernel_size=kernel_size, stride=stride, padding=padding, channels=c_in)
                    )
                else:
                    layer = ConvBN(f, c_in, c_out, kernel_size, stride=stride, padding=padding)
            setattr(self, name, layer)
            c_in = c_out or c_in
        for name, block, args in (
            ("Mixed_5b", InceptionA, (192, 32)),
            ("Mixed_5c", InceptionA, (256, 64)),
            ("Mixed_5d", InceptionA, (288, 64)),
            ("Mixed_6a", InceptionB, (288,)),
            ("Mixed_6b", InceptionC, (768, 128)),
            ("Mixed_6c", InceptionC, (768, 160)),
            ("Mixed_6d", InceptionC, (768, 160)),
            ("Mixed_6e", InceptionC, (768, 192)),
            ("Mixed_7a", InceptionD, (768,)),
            ("Mixed_7b", InceptionE, (1280,)),
            ("Mixed_7c", InceptionE, (2048,)),
        ):
            with building(name):
                setattr(self, name, block(f, *args))
            if name == "Mixed_6e":  # torchvision's place, by its input; Mixed_7c's convs stay the last defined
                with building("AuxLogits"):
                    self.AuxLogits = InceptionAux(f, 768, num_classes) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        self.pretrained_ignore = () if aux_logits else ("AuxLogits.",)
        self.stages = ["Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"]
        self.cam_layer = "Mixed_7c"  # Grad-CAM's: all four branches (the last conv defined is one branch's)

        shape = trace_path(((n, getattr(self, n)) for n in STEM + MIXED), (in_channels, *input_size))
        if self.AuxLogits is not None:
            aux = [("AuxLogits.pool", self.AuxLogits.pool), ("AuxLogits.conv0", self.AuxLogits.conv0),
                   ("AuxLogits.conv1", self.AuxLogits.conv1)]  # fmt: skip
            try:
                trace_path(aux, shape)
            except GeometryError as err:  # its 5x5 conv needs Mixed_6e's 17 x 17, as at 299 px
                raise GeometryError(
                    f"{err}; model.aux_logits=true needs inputs of about torchvision's 299 px "
                    f"(Mixed_6e gives {tuple(shape[1:])} here), or set model.aux_logits=false"
                ) from None
        trace_path(((n, getattr(self, n)) for n in MIXED_7), shape)
        self._init_weights()
        apply_pretrained(self, pretrained, new_head=new_head, freeze_features=freeze_features)

    @torch.no_grad()
    def _init_weights(self) -> None:
        # torchvision's initialisation: N(0, 0.1) truncated to [-2, 2] for convs and dense layers. The cut
        # sits at 20 standard deviations, so normal_ + clamp_ draws the same distribution, ~50x faster.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not has_chosen_kernel(m):
                nn.init.normal_(m.weight, 0.0, 0.1).clamp_(-2, 2)
            elif isinstance(m, nn.BatchNorm2d):
                if m.weight is not None:  # norm.scale=false has none
                    nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.AuxLogits is not None:  # the auxiliary head starts smaller, as in torchvision
            for m, std in ((self.AuxLogits.conv1.conv, 0.01), (self.AuxLogits.fc, 0.001)):
                if isinstance(getattr(m, "weight", None), torch.Tensor):
                    nn.init.normal_(m.weight, 0.0, std).clamp_(-2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x))))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))
