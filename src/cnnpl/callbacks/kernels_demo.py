"""The notes' "effect of different types of filters" on sample images, logged once.

Registry name (family ``callback``): ``kernels_demo``.

Tag: ``kernels_demo`` (a figure: a row per validation image; columns: the image, then its response
to each classic kernel of :mod:`cnnpl.kernels`: blur, sharpen, edge, vertical and horizontal lines),
logged when training starts. The kernels are fixed, so once is enough.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from cnnpl import viz
from cnnpl.callbacks.base import ImageSampleCallback, as_names
from cnnpl.errors import CnnplError
from cnnpl.registry import register


class KernelsDemoCallback(ImageSampleCallback):
    """Log :func:`cnnpl.viz.kernels_demo_figure` for ``num_images`` fixed validation images, once."""

    name = "kernels_demo"

    def __init__(self, num_images: int = 3, kernels: str | Sequence[str] = viz.DEMO_KERNELS) -> None:
        super().__init__(every_n_epochs=1, num_images=num_images)
        from cnnpl import kernels as kernel_bank

        self.kernels = as_names(kernels, f"callbacks.{self.name}.kernels")
        for name in self.kernels:
            try:
                kernel_bank.kernel(name)  # an unknown name fails here, listing the known ones
            except CnnplError as err:
                raise CnnplError(f"callbacks.{self.name}.kernels: {err}") from None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start_picture(trainer, "kernels_demo"):
            fig = viz.kernels_demo_figure(self.pixels, self.kernels)
            self.experiment.add_image("kernels_demo", viz.figure_to_tensor(fig), trainer.global_step)


register("callback", "kernels_demo", KernelsDemoCallback)
