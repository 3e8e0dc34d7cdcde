"""What the validation predictions say: confusion matrix, per-class accuracy, mistakes, PR curves.

Registry names (family ``callback``): ``confusion_matrix``, ``per_class_accuracy``, ``misclassified``,
``pr_curves``.

Tags: ``diagnostics/confusion_matrix`` (figure), ``per_class_acc/<class>`` (scalars),
``diagnostics/misclassified`` (figure, each image titled ``true -> predicted``) and
``pr_curves/<class>`` (TensorBoard PR curves, one-vs-rest).

These callbacks reuse the logits the validation step already computed (``validation_step`` returns
them in cnnpl's ImageClassifier; for a module that returns something else they run the network on
the batch). They collect on global rank zero only, without any collective: under DDP they describe
the validation images rank zero evaluates (its ``1 / world_size`` shard), so the other ranks do no
extra work and cannot wait on rank zero.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from cnnpl import viz
from cnnpl.callbacks.base import VisualCallback
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register


class ValidationPredictionsCallback(VisualCallback):
    """Base: on due epochs, gather ``(logits, labels)`` of the validation batches on rank zero.

    Subclasses implement :meth:`collect` (per batch) and :meth:`log_epoch` (at the end of validation).
    The sanity-check validation before training is skipped.
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs)
        self.active = False
        self.class_names: list[str] = []

    def due(self, trainer: L.Trainer) -> bool:
        """Whether this validation draws: when a due epoch (:class:`VisualCallback`) fell since the
        previous validation, or when no later epoch validates.

        With validation every epoch (``trainer.check_val_every_n_epoch=1``, the default) that is the due
        epochs themselves. With validation every ``n`` epochs, a validation stands for the ``n`` epochs
        since the one before, so ``every_n_epochs=3`` with ``n=2`` still draws. The run's last
        validation draws too, also when ``max_steps`` cuts the epoch after it short (Lightning does
        not validate that one). Early stopping decides after these pictures are drawn: a run it ends
        has them from its last due epoch.
        """
        n = trainer.check_val_every_n_epoch
        n = n if isinstance(n, int) and n > 1 else 1  # None: validation by steps only
        epoch, final = trainer.current_epoch, self.final_epoch(trainer, complete=True)
        since_previous = range(max(epoch - n + 1, 0), epoch + 1)
        no_later = final is not None and epoch + n > final
        return any((e + 1) % self.every_n_epochs == 0 for e in since_previous) or no_later

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = trainer.is_global_zero and not trainer.sanity_checking and self.due(trainer)
        if self.active:
            self.reset()

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.active:
            return
        images, labels = batch[0], batch[1]
        logits = outputs if isinstance(outputs, torch.Tensor) and outputs.dim() == 2 else None
        if logits is None or len(logits) != len(labels):
            with torch.no_grad():
                logits = pl_module(images)
        self.collect(images, labels.detach().cpu(), logits.detach().float().cpu(), trainer)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            dm = trainer.datamodule
            self.class_names = list(getattr(dm, "class_names", []) or [])
            self.log_epoch(trainer, pl_module)
            self.reset()
            self.active = False

    def names_for(self, num_classes: int) -> list[str]:
        if len(self.class_names) == num_classes:
            return self.class_names
        return [str(i) for i in range(num_classes)]

    def reset(self) -> None:
        raise NotImplementedError

    def collect(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, trainer: L.Trainer) -> None:
        raise NotImplementedError

    def log_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError


class _ConfusionBase(ValidationPredictionsCallback):
    """Accumulates a confusion matrix (cheap: one ``bincount`` per batch)."""

    def reset(self) -> None:
        self.cm: torch.Tensor | None = None

    def collect(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, trainer: L.Trainer) -> None:
        cm = viz.confusion_matrix(logits.argmax(1), labels, logits.shape[1])
        self.cm = cm if self.cm is None else self.cm + cm


class ConfusionMatrixCallback(_ConfusionBase):
    """Log the validation confusion matrix as a figure (rows = true class, cells = row fractions)."""

    name = "confusion_matrix"

    def __init__(self, every_n_epochs: int = 1, normalize: bool = True) -> None:
        super().__init__(every_n_epochs)
        self.normalize = normalize

    def log_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.cm is None:
            return
        fig = viz.confusion_matrix_figure(self.cm, self.names_for(len(self.cm)), self.normalize)
        self.experiment.add_image("diagnostics/confusion_matrix", viz.figure_to_tensor(fig), trainer.global_step)


class PerClassAccuracyCallback(_ConfusionBase):
    """Log each class's validation accuracy (recall) as the scalar ``per_class_acc/<class>``."""

    name = "per_class_accuracy"

    def log_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.cm is None:
            return
        accuracy = viz.per_class_accuracy(self.cm)
        for name, acc in zip(self.names_for(len(self.cm)), accuracy.tolist(), strict=True):
            if not math.isnan(acc):
                self.experiment.add_scalar(f"per_class_acc/{name}", acc, trainer.global_step)


class MisclassifiedCallback(ValidationPredictionsCallback):
    """Log the first ``num_images`` misclassified validation images, titled ``true -> predicted``."""

    name = "misclassified"

    def __init__(self, every_n_epochs: int = 1, num_images: int = 16, ncol: int = 8) -> None:
        super().__init__(every_n_epochs)
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise CnnplError(f"callbacks.{self.name}.num_images must be an integer >= 1, got {yaml_word(num_images)}")
        if isinstance(ncol, bool) or not isinstance(ncol, int) or ncol < 1:
            raise CnnplError(f"callbacks.{self.name}.ncol must be an integer >= 1, got {yaml_word(ncol)}")
        self.num_images, self.ncol = num_images, ncol

    def reset(self) -> None:
        self.images: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.preds: list[torch.Tensor] = []
        self.count = 0
        self.num_classes = 0  # the logits' width: the names to title with, whichever classes the mistakes show

    def collect(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, trainer: L.Trainer) -> None:
        if self.count >= self.num_images:
            return
        self.num_classes = logits.shape[1]
        preds = logits.argmax(1)
        wrong = (preds != labels).nonzero().flatten()[: self.num_images - self.count]
        if len(wrong):
            picked = images[wrong.to(images.device)].detach()
            dm = trainer.datamodule
            pixels = dm.denormalize(picked) if hasattr(dm, "denormalize") else viz.normalize_01(picked)
            self.images.append(pixels.float().cpu())
            self.labels.append(labels[wrong])
            self.preds.append(preds[wrong])
            self.count += len(wrong)

    def log_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.images:
            return
        labels, preds = torch.cat(self.labels), torch.cat(self.preds)
        names = self.names_for(self.num_classes)
        fig = viz.misclassified_figure(torch.cat(self.images), labels, preds, names, self.ncol)
        self.experiment.add_image("diagnostics/misclassified", viz.figure_to_tensor(fig), trainer.global_step)


class PRCurvesCallback(ValidationPredictionsCallback):
    """Log a one-vs-rest precision-recall curve per class (TensorBoard's PR curves tab)."""

    name = "pr_curves"

    def __init__(self, every_n_epochs: int = 1, num_thresholds: int = 127) -> None:
        super().__init__(every_n_epochs)
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds < 2:
            raise CnnplError(
                f"callbacks.{self.name}.num_thresholds must be an integer >= 2, got {yaml_word(num_thresholds)}"
            )
        self.num_thresholds = num_thresholds

    def reset(self) -> None:
        self.probs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def collect(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, trainer: L.Trainer) -> None:
        self.probs.append(logits.softmax(1))
        self.labels.append(labels)

    def log_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.probs:
            return
        probs, labels = torch.cat(self.probs), torch.cat(self.labels)
        for c, name in enumerate(self.names_for(probs.shape[1])):
            self.experiment.add_pr_curve(
                f"pr_curves/{name}", labels == c, probs[:, c], trainer.global_step, num_thresholds=self.num_thresholds
            )


register("callback", "confusion_matrix", ConfusionMatrixCallback)
register("callback", "per_class_accuracy", PerClassAccuracyCallback)
register("callback", "misclassified", MisclassifiedCallback)
register("callback", "pr_curves", PRCurvesCallback)
