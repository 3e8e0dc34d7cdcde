"""Freeze parameters after some epochs, registered under ``callback``.

Registry names: ``freeze``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch

from cnnpl.errors import CnnplError
from cnnpl.registry import register


class FreezeAfter(L.Callback):
    """Train the named parameters for the first ``epochs`` epochs, then freeze them.

    ``parameters`` are names as ``LightningModule.named_parameters()`` gives them (for
    ``model=fast_net``'s whitening bias: ``net.whiten.bias``). From epoch ``epochs`` on, their
    gradients are dropped just before each optimizer step, so the optimizer leaves them alone: no
    step, no momentum, no weight decay. (``requires_grad`` is left as it is: switching it off would
    break DDP's gradient reduction, and switching it on could train a layer frozen on purpose.)
    airbench trains its whitening layer's bias for 3 epochs this way. Weight averaging
    (``callbacks.lookahead``) still blends them with their averaged copies. Resuming past ``epochs``
    keeps them frozen.
    """

    def __init__(self, parameters: Sequence[str], epochs: int) -> None:
        if not parameters:
            raise CnnplError("callbacks.freeze.parameters must name at least one parameter")
        if epochs < 0:
            raise CnnplError(f"callbacks.freeze.epochs must be >= 0, got {epochs}")
        self.parameters = list(parameters)
        self.epochs = epochs
        self._frozen: list[torch.nn.Parameter] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        names = dict(pl_module.named_parameters())
        missing = [name for name in self.parameters if name not in names]
        if missing:
            known = ", ".join(list(names)[:8])
            raise CnnplError(
                f"callbacks.freeze.parameters: {', '.join(missing)} not in the model; its parameters "
                f"are named like {known}, ..."
            )
        self._frozen = [names[name] for name in self.parameters]

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if trainer.current_epoch >= self.epochs:
            for parameter in self._frozen:
                parameter.grad = None


register("callback", "freeze", FreezeAfter)
