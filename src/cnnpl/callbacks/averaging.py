"""Lookahead weight averaging (Zhang et al., 2019, as airbench uses it), registered under ``callback``.

Registry names: ``lookahead``. (For a plain exponential moving average, Lightning's own
``lightning.pytorch.callbacks.EMAWeightAveraging`` works as a cnnpl callback too.)
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register


class Lookahead(L.Callback):
    """Every ``every`` optimizer steps, pull slow weights toward the trained ones and reset to them.

    ``slow <- decay * slow + (1 - decay) * fast`` then ``fast <- slow``, for every floating-point
    tensor of the module's state (parameters and batch-norm statistics). ``decay`` ramps up as
    ``decay * (step / total_steps) ** ramp_power``, so early training is barely slowed and the last
    steps average strongly; after the last step the module keeps the slow weights, so the final
    checkpoint holds them, and so does the test when it takes that checkpoint (without a validation
    split; with one it takes the best by ``val/acc``, perhaps an earlier epoch's). The slow weights are
    saved in checkpoints (resume continues; a checkpoint loads onto the CPU, so they follow the module
    to its device at the next update).
    """

    name = "lookahead"  # the registry name; error messages use it (a run names them by its config's key)

    def __init__(self, every: int = 5, decay: float = 0.95**5, ramp_power: float = 3.0) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise CnnplError(f"callbacks.{self.name}.every must be an integer >= 1, got {yaml_word(every)}")
        for key, value, rule, holds in (
            ("decay", decay, "in [0, 1)", lambda v: 0.0 <= v < 1.0),
            ("ramp_power", ramp_power, ">= 0", lambda v: v >= 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not holds(value):
                raise CnnplError(f"callbacks.{self.name}.{key} must be a number {rule}, got {yaml_word(value)}")
        self.every = every
        self.decay = decay
        self.ramp_power = ramp_power
        self.slow: dict[str, torch.Tensor] | None = None
        self._last_step = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # cnnpl.train refuses such a run before this (naming the settings); a Trainer of one's own gets here
        if stage == "fit" and trainer.max_epochs == -1 and trainer.max_steps == -1:
            raise CnnplError(
                f"callbacks.{self.name} ramps its decay over the whole run, which has no end (trainer.max_epochs=-1, "
                "or null with trainer.max_time); set trainer.max_epochs or +trainer.max_steps"
            )

    def _fast(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        """The module's floating-point state, each tensor once: a module registered under two names
        (fast_net's ``whiten`` is also ``features.whiten``) would be averaged twice a step."""
        fast, seen = {}, set()
        for name, t in pl_module.state_dict().items():
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
            if t.is_floating_point() and key not in seen:
                seen.add(key)
                fast[name] = t
        return fast

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, total = trainer.global_step, int(trainer.estimated_stepping_batches)
        if step == self._last_step or (step % self.every and step < total):
            return
        self._last_step = step
        fast = self._fast(pl_module)
        if self.slow is None:  # first update: start from the weights as they are now
            self.slow = {name: t.detach().clone() for name, t in fast.items()}
        if self.slow.keys() != fast.keys():  # a checkpoint of before: one slow copy per tensor, not per name
            self.slow = {name: slow for name, slow in self.slow.items() if name in fast}
        if any(slow.device != fast[name].device for name, slow in self.slow.items()):  # resumed on a GPU
            self.slow = {name: slow.to(fast[name].device) for name, slow in self.slow.items()}
        decay = 1.0 if step >= total else self.decay * (step / total) ** self.ramp_power
        for name, slow in self.slow.items():
            slow.lerp_(fast[name], 1.0 - decay)
            fast[name].copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.slow = state_dict["slow"]
        self._last_step = state_dict["last_step"]


register("callback", "lookahead", Lookahead)
