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
from cnnpl.errors import CnnplError
from cnnpl.registry import register


class HistogramsCallback(VisualCallback):
    """Log histograms of every parameter (``weights=True``) and gradient (``gradients=True``)."""

    name = "histograms"

    def __init__(self, every_n_epochs: int = 1, weights: bool = True, gradients: bool = True) -> None:
        super().__init__(every_n_epochs)
        if not weights and not gradients:  # helper-130: a callback that draws nothing, accepted
            raise CnnplError(
                f"callbacks.{self.name}.weights=false and callbacks.{self.name}.gradients=false leave it nothing to "
                f"draw; turn one on, or drop the callback with ~callbacks.{self.name}"
            )
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
        scale = gradient_scale(trainer, optimizer)
        for name, param in pl_module.named_parameters():
            if param.grad is not None:
                grad = param.grad.detach().float() / scale if scale != 1.0 else param.grad.detach()
                self.experiment.add_histogram(f"gradients/{name}", grad.cpu(), trainer.global_step)

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.weights:  # the gradients of a training step cannot be drawn after it
            for name, param in pl_module.named_parameters():
                self.experiment.add_histogram(f"weights/{name}", param.detach().cpu(), trainer.global_step)


def gradient_scale(trainer: L.Trainer, optimizer: torch.optim.Optimizer) -> float:
    """What the gradients are still multiplied by before ``optimizer``'s step: the loss scale of
    ``trainer.precision=16-mixed`` when a fused optimizer unscales them inside its step (Lightning
    unscales them before ``on_before_optimizer_step`` for any other), else 1."""
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    if scaler is None or not getattr(optimizer, "_step_supports_amp_scaling", False) or not scaler.is_enabled():
        return 1.0
    return float(scaler.get_scale())


register("callback", "histograms", HistogramsCallback)
