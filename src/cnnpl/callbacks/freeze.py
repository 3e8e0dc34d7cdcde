"""Freeze parameters after some epochs, registered under ``callback``.

Registry names: ``freeze``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from cnnpl.callbacks.base import as_names
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register


class FreezeAfter(L.Callback):
    """Train the named parameters for the first ``epochs`` epochs, then freeze them.

    ``parameters`` are names as ``LightningModule.named_parameters()`` gives them (for
    ``model=fast_net``'s whitening bias: ``net.whiten.bias``) or as ``named_modules()`` does, which
    names all of a module's parameters (``net.features.group1``: the first conv group, frozen for the
    fast recipe's last epochs as in FreezeOut). From epoch ``epochs`` on the optimizer
    leaves them alone: no step, no momentum, no weight decay. On a single device their
    ``requires_grad`` is switched off for those epochs, so the backward pass no longer computes what
    only they needed (for ``fast_net``'s whitening bias: the first convolution's input gradient and
    everything before it, about 10% of a training step on a 2-core CPU), and switched back to what it
    was when training ends. Under DDP (and any other strategy that wraps the model), whose gradient
    reduction expects the same parameters every step, their gradients are instead dropped just
    before each optimizer step. airbench trains its whitening layer's bias for 3 epochs this way.
    Weight averaging (``callbacks.lookahead``) still blends them with their averaged copies. Resuming
    past ``epochs`` keeps them frozen.
    """

    name = "freeze"  # the registry name; error messages use it (a run names them by its config's key)

    def __init__(self, parameters: str | Sequence[str], epochs: int) -> None:
        if not parameters:
            raise CnnplError(f"callbacks.{self.name}.parameters must name at least one parameter")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise CnnplError(f"callbacks.{self.name}.epochs must be an integer >= 0, got {yaml_word(epochs)}")
        self.parameters = as_names(parameters, f"callbacks.{self.name}.parameters")
        self.epochs = epochs
        self._frozen: list[torch.nn.Parameter] = []
        self._requires_grad: list[bool] = []  # each parameter's flag before training, restored after it
        self._switched_off = False

    def check_network(self, pl_module: L.LightningModule, max_epochs: int | None = None) -> None:
        """Refuse names the module does not have, or that name no parameters, or every parameter that trains
        where the run goes on past ``epochs`` (``max_epochs``, the trainer's; unknown: taken to) (``cnnpl.train``
        asks before training, a dry run too; ``setup`` again)."""
        names = dict(pl_module.named_parameters())
        modules = dict(pl_module.named_modules())
        missing = [name for name in self.parameters if name not in names and not (name and name in modules)]
        if missing:
            known = ", ".join(list(names)[:8])
            known_modules = ", ".join([name for name in modules if name.count(".") in (1, 2)][:6])
            raise CnnplError(
                f"callbacks.{self.name}.parameters: {', '.join(missing)} not in the model; name parameters "
                f"like {known}, ... or modules (all their parameters) like {known_modules}, ...; or drop the "
                f"callback with ~callbacks.{self.name}"
            )
        empty = [name for name in self.parameters if name not in names and not list(modules[name].parameters())]
        if empty:
            raise CnnplError(
                f"callbacks.{self.name}.parameters: {', '.join(empty)} has no parameters to freeze; name a module "
                "that has some, or one of its parameters"
            )
        named = {
            id(parameter)
            for name in self.parameters
            for parameter in ([names[name]] if name in names else modules[name].parameters())
        }
        goes_on = not (isinstance(max_epochs, int) and 0 <= max_epochs <= self.epochs)  # (helper-138: it ends there)
        if goes_on and all(id(parameter) in named for parameter in names.values() if parameter.requires_grad):
            # helper-137: "element 0 of tensors does not require grad" at the first step of that epoch
            raise CnnplError(
                f"callbacks.{self.name}.parameters: {', '.join(self.parameters)} holds every parameter that trains, "
                f"so from epoch {self.epochs} on nothing would; freeze a part of the model, or end the run there "
                f"(trainer.max_epochs={self.epochs})"
            )

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.check_network(pl_module, getattr(trainer, "max_epochs", None))
        names, modules = dict(pl_module.named_parameters()), dict(pl_module.named_modules())
        frozen: dict[int, torch.nn.Parameter] = {}
        for name in self.parameters:
            for parameter in [names[name]] if name in names else modules[name].parameters():
                frozen.setdefault(id(parameter), parameter)
        self._frozen = list(frozen.values())
        # recorded before any freezing, so that callbacks freezing the same parameter all restore this
        self._requires_grad = [parameter.requires_grad for parameter in self._frozen]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.epochs and self._single_device(trainer) and not self._switched_off:
            self._switched_off = True
            for parameter in self._frozen:
                parameter.requires_grad_(False)
                parameter.grad = None

    @staticmethod
    def _single_device(trainer: L.Trainer) -> bool:
        # DDP's reducer (even in one process) waits for a gradient of every parameter it was built with
        return isinstance(trainer.strategy, SingleDeviceStrategy)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if trainer.current_epoch >= self.epochs:
            for parameter in self._frozen:
                parameter.grad = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._switched_off:
            for parameter, requires_grad in zip(self._frozen, self._requires_grad, strict=True):
                parameter.requires_grad_(requires_grad)
        self._switched_off = False


register("callback", "freeze", FreezeAfter)
