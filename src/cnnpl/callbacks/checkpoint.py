"""``ModelCheckpoint`` with ``last.ckpt`` written at every save point, as before Lightning 2.6.

Since Lightning 2.6 ``ModelCheckpoint(monitor=..., save_top_k=1, save_last=True)`` rewrites
``last.ckpt`` at an epoch's end only when a top-k checkpoint was saved at the same step, i.e. only
when the monitored metric improved. A run whose ``val/acc`` stalls then keeps an old ``last.ckpt``,
and ``ckpt_path=last`` silently trains the epochs since again. cnnpl's checkpoint callback (the
``callbacks.checkpoint`` of ``conf/callbacks/default.yaml`` and ``minimal.yaml``) writes it at the
end of every epoch again, whether or not the best checkpoint changed, and also at the end of an epoch
without validation (``check_val_every_n_epoch=2``), where Lightning's saves nothing at all.

A run directory moved or copied since its checkpoints were written (``cp -r outputs/run1 outputs/run2``,
then a resume there) keeps its best checkpoint: Lightning restores the callback's record of the best
and last checkpoints only from the folder it wrote them in, and would test a worse checkpoint, write
``last-v1.ckpt``, or test the file in the old folder. cnnpl's reads the record in the folder it has
now, when every checkpoint the record names is there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint``; with ``save_last``, ``last.ckpt`` follows every epoch's end (with
    ``save_last=link`` too: a file where no checkpoint of that step exists to link to)."""

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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(moved_record(state_dict, self.dirpath))

    def _ensure_last(self, trainer: L.Trainer) -> None:
        # Lightning saves last.ckpt whenever it saved any checkpoint at this step: none saved, none written
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            # save_last=link links last.ckpt to the newest top-k file, which is of an earlier step here: a file then
            link, self.save_last = self.save_last, True
            try:
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            finally:
                self.save_last = link


def _validates_after(trainer: L.Trainer) -> bool:
    """Whether validation runs at the end of this training epoch (assumed so when it runs by steps)."""
    every = trainer.check_val_every_n_epoch
    return every is None or (trainer.current_epoch + 1) % every == 0


RECORDED_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")


def moved_record(state: dict[str, Any], dirpath: str | None) -> dict[str, Any]:
    """``state`` (a ``ModelCheckpoint``'s ``state_dict``) with the checkpoints it names in ``dirpath``,
    when it was written in another folder and ``dirpath`` holds each of them under the same name: the
    run directory was moved or copied. Otherwise ``state`` itself (continuing another run's
    checkpoint in a new folder: Lightning's rules)."""
    old = state.get("dirpath")
    if not old or not dirpath or Path(old) == Path(dirpath):
        return state
    named = [state.get(key) for key in RECORDED_PATHS] + list(state.get("best_k_models") or {})
    named = [path for path in named if path]
    if not named or not all(
        Path(path).parent == Path(old) and (Path(dirpath) / Path(path).name).is_file() for path in named
    ):
        return state

    def here(path: Any) -> Any:
        return str(Path(dirpath) / Path(path).name) if path else path

    moved = {key: here(state.get(key)) for key in RECORDED_PATHS if key in state}
    if "best_k_models" in state:
        moved["best_k_models"] = {here(path): score for path, score in state["best_k_models"].items()}
    return {**state, **moved, "dirpath": dirpath}
