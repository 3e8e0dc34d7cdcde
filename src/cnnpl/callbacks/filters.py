"""Learned filters of conv layers, logged to TensorBoard as the notes plot them.

Registry name (family ``callback``): ``filters``.

Tags: ``filters/<layer>`` (grayscale, one row per filter, one column per input channel, blank outside
a grouped filter's group) and, for the layer that reads the image's colours
(:func:`cnnpl.viz.reads_rgb`), ``filters/<layer>/rgb`` (one colour tile per filter). Both are logged when
training starts (the random initialisation, at its global step) and after every ``every_n_epochs``
epochs, so TensorBoard's step slider shows the filters learning.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from torch import nn

from cnnpl import viz
from cnnpl.callbacks.base import VisualCallback, as_names
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register


class FiltersCallback(VisualCallback):
    """Log the weights of ``layers`` (default: the first conv layer) normalised to [0, 1] per layer.

    A layer name may be a conv layer or a block holding one (``features.block2``: its first conv).
    ``max_filters`` and ``max_channels`` cap the rows and columns shown; ``scale`` enlarges each
    kernel pixel to a ``scale x scale`` block.
    """

    name = "filters"

    def __init__(
        self,
        every_n_epochs: int = 1,
        layers: str | int | Sequence[str | int] | None = None,
        max_filters: int = 32,
        max_channels: int = 16,
        scale: int = 8,
        rgb: bool = True,
    ) -> None:
        super().__init__(every_n_epochs)
        for key, value in (("max_filters", max_filters), ("max_channels", max_channels), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CnnplError(f"callbacks.{self.name}.{key} must be an integer >= 1, got {yaml_word(value)}")
        self.layers = (
            None
            if layers is None
            else as_names(layers, f"callbacks.{self.name}.layers", "the first conv layer that learns")
        )
        self.max_filters, self.max_channels, self.scale, self.rgb = max_filters, max_channels, scale, rgb

    def check_network(self, pl_module: L.LightningModule) -> None:
        net = self.network(pl_module)
        for name in self.layers or [None]:
            try:
                viz.conv_weight(net, name)
            except CnnplError as err:
                raise CnnplError(f"callbacks.{self.name}.layers: {err}") from None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = self.network(pl_module)
        self.check_network(pl_module)
        if self.layers is None:  # the first conv layer whose filters learn: fast_net's whitening ones are fixed
            convs = viz.conv_layers(net)
            self.layers = ([c for c in convs if _filters_learn(viz.find_layer(net, c))] or convs)[:1]

    def log_filters(self, pl_module: L.LightningModule, step: int) -> None:
        net = self.network(pl_module)
        drawn: set[str] = set()  # helper-139: layers=[features.block1,features.block1.conv] drew its conv twice
        for name in self.layers or [None]:
            layer, weight = viz.conv_weight(net, name)
            if layer in drawn:
                continue
            drawn.add(layer)
            groups = viz.conv_groups(net, layer)
            image = viz.filters_grid(weight, self.max_filters, self.max_channels, self.scale, groups=groups)
            self.experiment.add_image(f"filters/{layer}", image, step)
            if self.rgb and viz.reads_rgb(net, layer):
                self.experiment.add_image(
                    f"filters/{layer}/rgb", viz.filters_rgb(weight, self.max_filters, self.scale), step
                )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.new_run(trainer):  # the random initialisation
            self.log_filters(pl_module, trainer.global_step)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_filters(pl_module, trainer.global_step)


def _filters_learn(layer: nn.Module) -> bool:
    weight = getattr(layer, "weight", None)
    if isinstance(weight, nn.Parameter):
        return weight.requires_grad
    return any(p.requires_grad for p in layer.parameters())  # a layer that keeps its filters otherwise


register("callback", "filters", FiltersCallback)
