"""A callback, registered under ``callback`` as ``epoch_timer``: ``callbacks=[default,epoch_timer]``.

It logs each training epoch's wall time as ``time/epoch_seconds``. The registered object is a
function that imports Lightning when it is called, so loading the plugin (which every
``python -m cnnpl --help`` does) stays as fast as cnnpl's own start-up.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import cnnpl


@functools.cache  # one class, built on first use
def _timer_class() -> type:
    from lightning.pytorch import Callback

    class EpochTimer(Callback):
        """Logs ``time/epoch_seconds`` at the end of every ``every_n_epochs``-th training epoch."""

        def __init__(self, every_n_epochs: int) -> None:
            self.every_n_epochs = every_n_epochs
            self._start = 0.0
            self.seconds: list[float] = []  # every epoch's time, also the ones not logged

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.seconds.append(time.perf_counter() - self._start)
            if (trainer.current_epoch + 1) % self.every_n_epochs == 0:  # epochs N, 2N, ... (counting from 1)
                # every rank measures its own epoch; the logged value is their mean
                pl_module.log("time/epoch_seconds", self.seconds[-1], on_epoch=True, sync_dist=True)

    return EpochTimer


@cnnpl.register("callback", "epoch_timer")
def epoch_timer(every_n_epochs: int = 1) -> Any:
    """A Lightning callback timing training epochs; raises :class:`cnnpl.CnnplError` for ``every_n_epochs < 1``."""
    if every_n_epochs < 1:
        raise cnnpl.CnnplError(f"epoch_timer every_n_epochs must be >= 1, got {every_n_epochs}")
    return _timer_class()(every_n_epochs)
