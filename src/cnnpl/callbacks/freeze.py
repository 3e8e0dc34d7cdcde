"""Freeze parameters after some epochs, registered under ``callback``.

Registry names: ``freeze``.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from cnnpl.errors import CnnplError
from cnnpl.registry import register


class FreezeAfter(L.Callback):
    """Train the named parameters for the first ``epochs`` epochs, then freeze them.

    ``parameters`` are names as ``LightningModule.named_parameters()`` gives them (for
    ``model=fast_net``'s whitening bias: ``net.whiten.bias``). A frozen parameter gets no gradient,
    so the optimizer leaves it alone: no step, no momentum, no weight decay. airbench trains its
    whitening layer's bias for 3 epochs this way. Resuming past ``epochs`` freezes them again.
    """

    def __init__(self, parameters: Sequence[str], epochs: int) -> None:
        if not parameters:
            raise CnnplError("callbacks.freeze.parameters must name at least one parameter")
        if epochs < 0:
            raise CnnplError(f"callbacks.freeze.epochs must be >= 0, got {epochs}")
        self.parameters = list(parameters)
        self.epochs = epochs

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        names = dict(pl_module.named_parameters())
        missing = [name for name in self.parameters if name not in names]
        if missing:
            known = ", ".join(list(names)[:8])
            raise CnnplError(
                f"callbacks.freeze.parameters: {', '.join(missing)} not in the model; its parameters "
                f"are named like {known}, ..."
            )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train = trainer.current_epoch < self.epochs
        names = dict(pl_module.named_parameters())
        for name in self.parameters:
            names[name].requires_grad_(train)


register("callback", "freeze", FreezeAfter)
