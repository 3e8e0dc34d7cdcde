"""A fast CIFAR-10 network in the style of the speed-run record holders, registered under ``model``.

Registry names: ``fast_net``.

After Page's ResNet-9 "bag of tricks", hlb-CIFAR10 and Jordan's airbench: a frozen patch-whitening
first layer (a 2x2 convolution whose filters are the training patches' principal components, scaled
to unit variance; a filter is, in the notes' words, "essentially a feature detector", and these are
computed instead of learned), then three groups of conv -> pool -> norm -> act -> conv -> norm -> act,
a global max pool and a linear classifier whose logits are scaled down. Batch-norm weights stay fixed
at 1 and the batch-norm biases train with a larger learning rate (:meth:`FastNet.param_groups`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnpl.errors import CnnplError, yaml_word
from cnnpl.factory import LayerFactory
from cnnpl.models._util import (
    DEFAULT_CONV,
    DEFAULT_NORM,
    DEFAULT_POOL,
    build_with_preferences,
    building,
    has_chosen_kernel,
    trace_shapes,
)
from cnnpl.registry import register

DEFAULT_GELU = LayerFactory("act", "gelu")


class PatchWhitening(nn.Conv2d):
    """A ``k x k`` convolution to ``2 * C * k * k`` channels that whitens image patches.

    :meth:`init_from_data` sets the filters to the eigenvectors of the patches' covariance, each
    divided by the square root of its eigenvalue (plus ``eps``), and their negatives; the filters then
    stay frozen (the bias trains). Until it runs, the layer is a random convolution.
    """

    def __init__(self, in_channels: int = 3, kernel_size: int = 2, eps: float = 5e-4) -> None:
        dim = in_channels * kernel_size * kernel_size
        super().__init__(in_channels, 2 * dim, kernel_size, padding=0, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Whiten the patches of ``images`` (normalised ``(N, C, H, W)`` training images)."""
        c, k = self.in_channels, self.kernel_size[0]
        patches = F.unfold(images.double(), k).transpose(1, 2).reshape(-1, c * k * k)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        filters = (eigenvectors.T / (eigenvalues.clamp_min(0) + self.eps).sqrt().unsqueeze(1)).flip(0)
        filters = filters.reshape(-1, c, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))
        self.bias.zero_()
        self.initialised.fill_(True)


class ConvGroup(nn.Sequential):
    """conv 3x3 -> pool 2x2 -> norm -> act -> conv 3x3 -> norm -> act."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        conv: LayerFactory,
        pool: LayerFactory,
        norm: LayerFactory,
        act: LayerFactory,
        norm_momentum: float,
        norm_eps: float,
    ) -> None:
        def bn() -> nn.Module:  # momentum and eps for the norms that take them (not norm=identity)
            return build_with_preferences(norm, {"momentum": norm_momentum, "eps": norm_eps}, num_features=c_out)

        super().__init__(
            OrderedDict(
                conv1=conv(in_channels=c_in, out_channels=c_out, kernel_size=3, padding="same", bias=False),
                pool=pool(kernel_size=2, stride=2, channels=c_out),
                norm1=bn(),
                act1=act(),
                conv2=conv(in_channels=c_out, out_channels=c_out, kernel_size=3, padding="same", bias=False),
                norm2=bn(),
                act2=act(),
            )
        )


@register("model", "fast_net")
class FastNet(nn.Module):
    """Patch whitening -> 3 conv groups (``widths``) -> global max pool -> linear x ``logit_scale``.

    The default widths (64, 256, 256) are airbench94's (1,972,792 parameters for CIFAR-10, 1,440 of
    them frozen: the 288 whitening weights and the 1,152 batch-norm scales, fixed at 1);
    ``experiment=fast_cifar10`` uses (32, 128, 128) on the CPU.
    ``conv``, ``pool``, ``norm`` and ``act`` build every layer of their kind (``act`` defaults to GELU
    here). Convolutions start as partial identities (``dirac``) when they are plain convolutions.
    ``param_groups`` gives batch-norm biases ``bias_lr_scale`` x the learning rate and
    ``1 / bias_lr_scale`` x the weight decay (so their decay per step is unchanged).
    ``(N, C, H, W) -> (N, num_classes)`` logits.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: Sequence[int] = (32, 32),
        conv: LayerFactory = DEFAULT_CONV,
        pool: LayerFactory = DEFAULT_POOL,
        norm: LayerFactory = DEFAULT_NORM,
        act: LayerFactory = DEFAULT_GELU,
        widths: Sequence[int] = (64, 256, 256),
        whiten_kernel: int = 2,
        logit_scale: float = 1 / 9,
        norm_momentum: float = 0.4,
        norm_eps: float = 1e-12,
        bias_lr_scale: float = 64.0,
    ) -> None:
        super().__init__()
        counts = all(isinstance(w, int) and not isinstance(w, bool) for w in widths)  # [1,null]: '<' on None
        if len(widths) < 1 or not counts or any(w < 1 for w in widths):
            raise CnnplError(
                f"model.widths must be a non-empty list of positive channel counts, got {yaml_word(list(widths))}"
            )
        if bias_lr_scale <= 0:
            raise CnnplError(f"model.bias_lr_scale must be > 0, got {yaml_word(bias_lr_scale)}")
        # helper-140: whiten_kernel=-1 was torch's "negative dimension" traceback, logit_scale=0 trained nothing, and
        # norm_eps=-1 was refused as norm.eps
        if isinstance(whiten_kernel, bool) or not isinstance(whiten_kernel, int) or whiten_kernel < 1:
            raise CnnplError(
                "model.whiten_kernel must be an int >= 1 (the side of a whitened patch), "
                f"got {yaml_word(whiten_kernel)}"
            )
        if not math.isfinite(logit_scale) or logit_scale == 0:  # (a negative scale trains: the head learns the sign)
            raise CnnplError(
                "model.logit_scale must be a finite number other than 0 (it multiplies the logits), "
                f"got {yaml_word(logit_scale)}"
            )
        if not math.isfinite(norm_eps) or norm_eps <= 0:
            raise CnnplError(f"model.norm_eps must be a number > 0, got {yaml_word(norm_eps)}")
        if not 0 <= norm_momentum <= 1:
            raise CnnplError(f"model.norm_momentum must be between 0 and 1, got {yaml_word(norm_momentum)}")
        self.whiten = PatchWhitening(in_channels, whiten_kernel)
        blocks: OrderedDict[str, nn.Module] = OrderedDict(whiten=self.whiten, whiten_act=act())
        c_in = self.whiten.out_channels
        for i, width in enumerate(widths, start=1):
            with building(f"features.group{i}"):  # a component's refusal names the group
                blocks[f"group{i}"] = ConvGroup(c_in, width, conv, pool, norm, act, norm_momentum, norm_eps)
            c_in = width
        self.features = nn.Sequential(blocks)
        self.stages = [f"features.group{i}" for i in range(1, len(widths) + 1)]
        trace_shapes(self.features, (in_channels, *input_size), prefix="features.")
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes, bias=False)
        self.logit_scale = logit_scale
        self.bias_lr_scale = bias_lr_scale
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        for module in self.features.modules():
            plain = type(module) is not PatchWhitening and isinstance(module, nn.Conv2d) and module.groups == 1
            if plain and not has_chosen_kernel(module):
                nn.init.dirac_(module.weight[: module.in_channels])  # the first in_channels filters pass x on
            if isinstance(module, nn.BatchNorm2d) and module.weight is not None:  # none under norm.scale=false
                module.weight.requires_grad_(False)  # fixed at 1: the following conv sets the scale

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening filters from normalised training images (the system calls this once)."""
        self.whiten.init_from_data(images)

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups: norm biases (faster, less decay), then every other trainable parameter."""
        norm_biases = [
            m.bias
            for m in self.modules()
            if isinstance(m, nn.BatchNorm2d) and m.bias is not None and m.bias.requires_grad
        ]
        ids = {id(p) for p in norm_biases}
        others = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        scale = self.bias_lr_scale
        return [
            {"params": norm_biases, "lr_scale": scale, "weight_decay_scale": 1 / scale},
            {"params": others},
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x) * self.logit_scale
