"""``ModelCheckpoint`` with ``last.ckpt`` written at every save point, as before Lightning 2.6.

Since Lightning 2.6 ``ModelCheckpoint(monitor=..., save_top_k=1, save_last=True)`` rewrites
``last.ckpt`` at an epoch's end only when a top-k checkpoint was saved at the same step, i.e. only
when the monitored metric improved. A run whose ``val/acc`` stalls then keeps an old ``last.ckpt``,
and ``ckpt_path=last`` silently trains the epochs since again. cnnpl's checkpoint callback (the
``callbacks.checkpoint`` of ``conf/callbacks/default.yaml`` and ``minimal.yaml``) writes it at the
end of every epoch again, whether or not the best checkpoint changed, and also at the end of an epoch
without validation (``check_val_every_n_epoch=2``), where Lightning's saves nothing at all.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint``; with ``save_last``, ``last.ckpt`` follows every epoch's end."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # an epoch that ends without validation (check_val_every_n_epoch=2) saves nothing in Lightning
        due = not self._should_skip_saving_checkpoint(trainer) and (
            self._should_save_on_train_epoch_end(trainer) or not _validates_after(trainer)
        )
        super().on_train_epoch_end(trainer, pl_module)
        if due:
            self._ensure_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        due = not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer)
        super().on_validation_end(trainer, pl_module)
        if due:
            self._ensure_last(trainer)

    def _ensure_last(self, trainer: L.Trainer) -> None:
        # Lightning saves last.ckpt whenever it saved any checkpoint at this step: none saved, none written
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def _validates_after(trainer: L.Trainer) -> bool:
    """Whether validation runs at the end of this training epoch (assumed so when it runs by steps)."""
    every = trainer.check_val_every_n_epoch
    return every is None or (trainer.current_epoch + 1) % every == 0
