"""Grad-CAM heat maps over a fixed set of validation images (test images without a validation split).

Registry name (family ``callback``): ``gradcam``.

Tag: ``gradcam/<layer>``: a grid with one row per image: the image, then the heat map blended over it
(``jet``: red = the regions that raised the explained class score most). Logged after every
``every_n_epochs`` epochs, outside validation (gradients are needed; parameter ``.grad`` fields are
not touched) and with the network in eval mode for the call.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from cnnpl import viz
from cnnpl.callbacks.base import ImageSampleCallback, one_name
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register

TARGETS = ("pred", "true")


class GradCAMCallback(ImageSampleCallback):
    """Log Grad-CAM of ``layer`` (default: :func:`cnnpl.viz.cam_layer`) for ``num_images`` fixed images.

    ``target="pred"`` explains the predicted class, ``"true"`` the labelled one. ``scale`` enlarges
    the pictures (CIFAR's 32x32 is small on screen).
    """

    name = "gradcam"

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 8,
        layer: str | int | None = None,
        target: str | bool = "pred",
        alpha: float = 0.5,
        scale: int = 3,
    ) -> None:
        super().__init__(every_n_epochs, num_images)
        if target is True:  # `callbacks.gradcam.target=true`: Hydra reads the documented word as a bool
            target = "true"
        if target not in TARGETS:
            raise CnnplError(
                f"callbacks.{self.name}.target must be one of {', '.join(TARGETS)}, got {yaml_word(target)}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise CnnplError(f"callbacks.{self.name}.alpha must be a number in [0, 1], got {yaml_word(alpha)}")
        if layer is not None:
            layer = one_name(layer, f"callbacks.{self.name}.layer", "the network's last conv layer or block")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise CnnplError(f"callbacks.{self.name}.scale must be an integer >= 1, got {yaml_word(scale)}")
        self.layer, self.target, self.alpha, self.scale = layer, target, alpha, scale

    def _layer(self, net: nn.Module) -> str:
        layer = self.layer if self.layer is not None else viz.cam_layer(net)
        if layer is None:
            raise CnnplError(
                f"callbacks.{self.name}: {type(net).__name__} has no conv layer; set callbacks.{self.name}.layer"
            )
        return layer

    def check_network(self, pl_module: L.LightningModule, input_shape: tuple[int, int, int] | None = None) -> None:
        net = self.network(pl_module)
        layer = self._layer(net)
        self.check_layers(net, [layer], what="layer")
        self.check_maps(net, [layer], input_shape, what="layer")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = self.network(pl_module)
        self.layer = self._layer(net)
        self.check_layers(net, [self.layer], what="layer")
        self.check_maps(net, [self.layer], self.input_shape(trainer), what="layer")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        target = self.labels if self.target == "true" else None
        cams, _ = viz.grad_cam(self.network(pl_module), self.images, str(self.layer), target)
        overlay = viz.grad_cam_overlay(self.pixels, cams, self.alpha)
        pixels = self.pixels if self.pixels.shape[1] == 3 else self.pixels.expand(-1, 3, -1, -1)
        cells = viz.upscale(torch.stack([pixels, overlay], dim=1), self.scale)  # (N, 2, 3, H, W)
        self.experiment.add_image(f"gradcam/{self.layer}", viz.tile(cells, pad=2), trainer.global_step)


register("callback", "gradcam", GradCAMCallback)
