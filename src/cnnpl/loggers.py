"""Lightning's ``CSVLogger``, continuing a run's ``metrics.csv`` when the run resumes (``logger=csv``).

Lightning's CSV writer deletes the ``metrics.csv`` it finds in its folder when it starts ("Previous log
files in this directory will be deleted"), so resuming a run with ``ckpt_path=last`` would erase the
metrics of every epoch before the resume. cnnpl's appends to it instead, under its header (a column
logged for the first time rewrites the header, as Lightning does). A new run never finds one: cnnpl
refuses to start it in a folder where another run trained (:func:`cnnpl.checkpoint.check_fresh_run_dir`),
and a sweep job that starts again sets the earlier attempt's aside (:func:`cnnpl.checkpoint.set_aside_attempt`).
Rows of steps logged after the last checkpoint and before an interruption are written again by the resumed run.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ContinuingWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, which keeps the ``metrics.csv`` it finds and appends to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger``, whose ``metrics.csv`` survives a resume (:class:`ContinuingWriter`)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
