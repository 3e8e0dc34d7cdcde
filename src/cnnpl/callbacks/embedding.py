"""The penultimate-layer embedding of validation images, for TensorBoard's projector.

Registry name (family ``callback``): ``embedding``.

Tag: ``embedding`` in the Projector tab (one point per image, coloured by class name, each drawn as
its image from a sprite). The files go to ``<log dir>/<global step>/embedding/``. The images are a
fixed, class-balanced set of the validation split (:func:`cnnpl.viz.pick_images`; the test split without one).

TensorBoard lists a log folder's embeddings in its ``projector_config.pbtxt``, which
``SummaryWriter.add_embedding`` rewrites with the ones that writer added; the callback keeps the
entries an earlier writer listed there (a resumed run's first part), so the Projector still offers them.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from torch import nn

from cnnpl import viz
from cnnpl.callbacks.base import ImageSampleCallback, one_name
from cnnpl.errors import CnnplError
from cnnpl.registry import register


class EmbeddingCallback(ImageSampleCallback):
    """Log the input of ``layer`` (default: the last linear layer) for ``num_images`` validation images."""

    name = "embedding"

    def __init__(self, every_n_epochs: int = 5, num_images: int = 500, layer: str | int | None = None) -> None:
        super().__init__(every_n_epochs, num_images)
        # a number names a child of an nn.Sequential (layer=1), as the other picture callbacks read it
        self.layer = (
            None if layer is None else one_name(layer, f"callbacks.{self.name}.layer", "the last linear layer's input")
        )

    def _layer(self, net: nn.Module) -> str:
        if self.layer is not None:
            return self.layer
        try:
            return viz.last_linear(net)
        except CnnplError as err:
            raise CnnplError(f"callbacks.{self.name}: {err} (callbacks.{self.name}.layer)") from None

    def check_network(self, pl_module: L.LightningModule) -> None:
        net = self.network(pl_module)
        self.check_layers(net, [self._layer(net)], what="layer")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        net = self.network(pl_module)
        self.layer = self._layer(net)
        self.check_layers(net, [self.layer], what="layer")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        features = viz.embedding(self.network(pl_module), self.images, self.layer)
        metadata = [self.class_names[int(c)] for c in self.labels]
        config = Path(self.experiment.get_logdir()) / PROJECTOR_CONFIG
        earlier = read_projector_config(config)
        self.experiment.add_embedding(
            features, metadata=metadata, label_img=self.pixels, global_step=trainer.global_step, tag="embedding"
        )
        merged = read_projector_config(config)
        listed = {e.tensor_path for e in merged.embeddings}
        missing = [e for e in earlier.embeddings if e.tensor_path not in listed]
        if missing:
            merged.embeddings.extend(missing)
            merged.embeddings.sort(key=lambda e: e.tensor_path)  # "<global step, 5 digits>/<tag>/...": in step order
            config.write_text(text_format.MessageToString(merged))


PROJECTOR_CONFIG = "projector_config.pbtxt"


def read_projector_config(path: Path) -> ProjectorConfig:
    """The embeddings a log folder lists for TensorBoard's Projector (none when there is no file)."""
    config = ProjectorConfig()
    if path.is_file():
        text_format.Parse(path.read_text(), config)
    return config


register("callback", "embedding", EmbeddingCallback)
