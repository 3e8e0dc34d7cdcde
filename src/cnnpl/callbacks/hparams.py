"""The run's hyperparameters, with its final metrics, in TensorBoard's HParams tab.

Registry name (family ``callback``): ``hparams``.

When training starts, the hyperparameters (``params``: in ``conf/callbacks/*.yaml`` they are Hydra
interpolations of the run's config, plus the LightningModule's own ``hparams``) are written together
with the list of ``metrics`` tags. TensorBoard shows, for each metric, the last value the run logged
under that tag, so the table holds the final ``val/acc`` and, once the test has run, ``test/acc``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L

from cnnpl.callbacks.base import VisualCallback
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import register

DEFAULT_METRICS = ("val/acc", "val/loss", "test/acc", "test/loss", "train/acc")


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a/b": value}``; values TensorBoard cannot show become strings (None: ``null``, as the
    run's config writes it; it was "None")."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is None:
            flat[name] = "null"
        else:
            flat[name] = str(value)
    return flat


class HParamsCallback(VisualCallback):
    """Write ``params`` and the module's hyperparameters to the HParams tab, with ``metrics`` as its columns."""

    name = "hparams"

    def __init__(self, params: Mapping[str, Any] | None = None, metrics: str | Sequence[str] = DEFAULT_METRICS) -> None:
        super().__init__(every_n_epochs=1)
        from cnnpl.train import LOGGED_METRICS, TEST_METRICS, never_logged

        if isinstance(metrics, str):
            metrics = [metrics]  # one tag alone (callbacks.hparams.metrics=val/acc): a list of one
        if not metrics or not all(isinstance(m, str) for m in metrics):
            raise CnnplError(
                f"callbacks.{self.name}.metrics must be a non-empty list of metric tags, got {yaml_word(metrics)}"
            )
        for tag in metrics:  # a misspelt tag was an empty column
            never = never_logged(tag, (*LOGGED_METRICS, *TEST_METRICS))
            if never:
                raise CnnplError(f"callbacks.{self.name}.metrics: {tag!r} is {never}")
        self.params = dict(params or {})
        self.metrics = list(metrics)

    def hyperparameters(self, pl_module: L.LightningModule) -> dict[str, Any]:
        module = {f"system/{k}": v for k, v in _flatten(dict(pl_module.hparams)).items()}
        return {**module, **_flatten(self.params)}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from torch.utils.tensorboard.summary import hparams

        experiment, start, _ = hparams(self.hyperparameters(pl_module), dict.fromkeys(self.metrics, 0.0))
        writer = self.experiment.file_writer
        writer.add_summary(experiment)
        writer.add_summary(start)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from torch.utils.tensorboard.summary import hparams

        _, _, end = hparams(self.hyperparameters(pl_module), dict.fromkeys(self.metrics, 0.0))
        writer = self.experiment.file_writer
        writer.add_summary(end)
        writer.flush()


register("callback", "hparams", HParamsCallback)
