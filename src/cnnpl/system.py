"""The LightningModule: an image classifier system around any network.

The network, the optimizer and the schedule come in from outside (the network built from the
registry, the optimizer as a partial ``params -> Optimizer``), so the system never names an
architecture and never reads a config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnpl.distributed import lr_scale
from cnnpl.errors import CnnplError

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], Optimizer]
ScheduleFactory = Callable[..., LRScheduler]  # (optimizer, total_steps=...) -> LRScheduler

ADAM = partial(Adam, lr=1e-3)  # the notes' optimizer with Keras' default learning rate


class ImageClassifier(L.LightningModule):
    """Trains ``net`` (``(N, C, H, W) -> (N, num_classes)`` logits) with cross-entropy.

    Logs ``{train,val,test}/loss`` and ``{train,val,test}/acc`` (top-1), plus ``val/acc_top5`` and
    ``test/acc_top5`` when there are more than 5 classes. ``schedule`` is stepped every optimizer
    step and called as ``schedule(optimizer, total_steps=...)``. ``tta_flip`` evaluates each image
    and its mirror image and averages the logits (validation and test).

    Under DDP (several processes) validation and test metrics are computed over the whole split:
    accuracies and losses are summed over the processes (torchmetrics), so they equal what one
    process computes. ``lr_scaling`` (``none``, ``linear``, ``sqrt``) multiplies the optimizer's
    learning rate by the world size or its square root, before the schedule is built.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory = ADAM,
        schedule: ScheduleFactory | None = None,
        label_smoothing: float = 0.0,
        tta_flip: bool = False,
        lr_scaling: str = "none",
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise CnnplError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if num_classes < 2:
            raise CnnplError(f"num_classes must be >= 2, got {num_classes}")
        lr_scale(lr_scaling, 1)  # rejects an unknown rule here, not after the processes have started
        self.save_hyperparameters(ignore=["net", "optimizer", "schedule"])
        self.net = net
        self.optimizer_factory = optimizer
        self.schedule_factory = schedule
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.lr_scaling = lr_scaling
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # batch-size weighted means whose sums are reduced over processes: exact over the split under DDP
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.top5 = num_classes > 5
        if self.top5:
            self.val_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")
            self.test_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.train_acc(logits.detach(), labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        if self.tta_flip:  # test-time augmentation: average with the mirrored images' logits
            logits = (logits + self(images.flip(3))) / 2
        loss = F.cross_entropy(logits, labels)
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss(loss, weight=len(labels))
        acc = getattr(self, f"{stage}_acc")
        acc(logits, labels)
        self.log(f"{stage}/loss", mean_loss, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True)
        if self.top5:
            acc5 = getattr(self, f"{stage}_acc5")
            acc5(logits, labels)
            self.log(f"{stage}/acc_top5", acc5, on_epoch=True)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test")

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:
            # seed_everything gave every process the same seed: offset it by rank so augmentation
            # and dropout draw different numbers in each process (as on one device, per image)
            torch.manual_seed(torch.initial_seed() + self.trainer.global_rank)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        factor = lr_scale(self.lr_scaling, self.trainer.world_size)
        if factor != 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= factor
        if self.schedule_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = self.schedule_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
