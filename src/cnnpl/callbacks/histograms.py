"""Histograms of the weights and of their gradients.

Registry name (family ``callback``): ``histograms``.

Tags: ``weights/<parameter>`` after every ``every_n_epochs`` epochs, and ``gradients/<parameter>``
at the first optimizer step of those epochs (the gradients the optimizer is about to apply: already
averaged over DDP ranks and unscaled under mixed precision).
"""

from __future__ import annotations

import lightning as L
import torch

from cnnpl.callbacks.base import VisualCallback
from cnnpl.registry import register


class HistogramsCallback(VisualCallback):
    """Log histograms of every parameter (``weights=True``) and gradient (``gradients=True``)."""

    name = "histograms"

    def __init__(self, every_n_epochs: int = 1, weights: bool = True, gradients: bool = True) -> None:
        super().__init__(every_n_epochs)
        self.weights, self.gradients = weights, gradients
        self._grads_pending = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._grads_pending = self.gradients and trainer.is_global_zero and self.due(trainer)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self._grads_pending:
            return
        self._grads_pending = False
        for name, param in pl_module.named_parameters():
            if param.grad is not None:
                self.experiment.add_histogram(f"gradients/{name}", param.grad.detach().cpu(), trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.weights and trainer.is_global_zero and self.due(trainer):
            for name, param in pl_module.named_parameters():
                self.experiment.add_histogram(f"weights/{name}", param.detach().cpu(), trainer.global_step)


register("callback", "histograms", HistogramsCallback)
