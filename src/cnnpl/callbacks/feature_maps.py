"""Feature maps of a fixed set of validation images (test images without a validation split) at each stage.

Registry name (family ``callback``): ``feature_maps``.

Tags: ``feature_maps/input`` (the chosen images, once, at the start of training) and
``feature_maps/<layer>/image<i>`` (the activations of image ``i`` at ``layer``, one tile per channel,
each normalised to [0, 1] on its own), after every ``every_n_epochs`` epochs. Near the input the maps
keep fine detail; deeper ones are coarser and more abstract, as the notes show for VGG16.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from cnnpl import viz
from cnnpl.callbacks.base import ImageSampleCallback, as_names
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register


class FeatureMapsCallback(ImageSampleCallback):
    """Log the outputs of ``layers`` (default: the model's ``stages``) for ``num_images`` fixed images.

    ``max_channels`` caps the tiles per picture, ``cell_size`` is the smallest tile side in pixels
    (small maps are enlarged by an integer factor), ``cmap`` a matplotlib colormap or None for grayscale.
    """

    name = "feature_maps"

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 2,
        layers: str | int | Sequence[str | int] | None = None,
        max_channels: int = 32,
        cell_size: int = 32,
        cmap: str | None = "viridis",
    ) -> None:
        super().__init__(every_n_epochs, num_images)
        if isinstance(max_channels, bool) or not isinstance(max_channels, int) or max_channels < 1:
            raise CnnplError(
                f"callbacks.{self.name}.max_channels must be an integer >= 1, got {yaml_word(max_channels)}"
            )
        if isinstance(cell_size, bool) or not isinstance(cell_size, int) or cell_size < 1:
            raise CnnplError(f"callbacks.{self.name}.cell_size must be an integer >= 1, got {yaml_word(cell_size)}")
        if cmap is not None:  # an unknown colormap fails here, not mid-training, naming the setting
            try:
                viz.apply_colormap(torch.zeros(1, 1), cmap)
            except CnnplError as err:
                raise CnnplError(f"callbacks.{self.name}.cmap={cmap}: {err}") from None
        self.layers = None if layers is None else as_names(layers, f"callbacks.{self.name}.layers", "every stage")
        self.max_channels, self.cell_size, self.cmap = max_channels, cell_size, cmap

    def _layers(self, net: nn.Module) -> list[str]:
        if self.layers is not None:
            return self.layers
        stages = getattr(net, "stages", None)
        if not stages:
            names = ", ".join(n for n, _ in net.named_modules() if n)
            raise CnnplError(
                f"callbacks.{self.name}: {type(net).__name__} lists no `stages`; name the layers to show with "
                f"callbacks.{self.name}.layers=[...]. Layers: {names}"
            )
        return list(stages)

    def _where(self, net: nn.Module) -> str | None:
        """What a bad layer is blamed on: the model's ``stages`` where no setting named the layers (helper-136:
        a plugin model's stage was reported as callbacks.feature_maps.layers, which the user never set)."""
        if self.layers is not None:
            return None
        return (
            f"the {type(net).__name__} model's `stages` (what callbacks.{self.name} draws while "
            f"callbacks.{self.name}.layers=null)"
        )

    def check_network(self, pl_module: L.LightningModule, input_shape: tuple[int, int, int] | None = None) -> None:
        net = self.network(pl_module)
        layers, where = self._layers(net), self._where(net)
        self.check_layers(net, layers, where=where)
        self.check_maps(net, layers, input_shape, where=where)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = self.network(pl_module)
        where = self._where(net)
        self.layers = self._layers(net)
        self.check_layers(net, self.layers, where=where)
        self.check_maps(net, self.layers, self.input_shape(trainer), where=where)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start_picture(trainer, "feature_maps/input"):
            self.experiment.add_image("feature_maps/input", viz.grid(self.pixels, pad=2), trainer.global_step)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        maps = viz.feature_maps(self.network(pl_module), self.images.to(pl_module.device), self.layers or [])
        for layer, fmap in maps.items():
            for i in range(len(fmap)):
                image = viz.feature_map_grid(fmap[i], self.max_channels, cell_size=self.cell_size, cmap=self.cmap)
                self.experiment.add_image(f"feature_maps/{layer}/image{i}", image, trainer.global_step)


register("callback", "feature_maps", FeatureMapsCallback)
