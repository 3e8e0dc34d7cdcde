"""Loggers that continue a run's logs when it resumes, instead of deleting or repeating them.

Lightning's CSV writer deletes the ``metrics.csv`` it finds in its folder when it starts ("Previous log
files in this directory will be deleted"), so resuming a run with ``ckpt_path=last`` would erase the
metrics of every epoch before the resume. cnnpl's :class:`CSVLogger` (``logger=csv``) appends to it
instead, under its header (a column logged for the first time rewrites the header, as Lightning does,
but in one step: :func:`cnnpl.files.atomic_write`). A new run never finds one: cnnpl refuses to start
it in a folder where another run trained (:func:`cnnpl.checkpoint.check_fresh_run_dir`), and a sweep
job that starts again sets the earlier attempt's aside (:func:`cnnpl.checkpoint.set_aside_attempt`).

A run killed between two checkpoints has logged steps that its resumed run trains, and logs, again.
:func:`start_logs` keeps those out of the run's curves: TensorBoard hides them, and ``metrics.csv``
keeps the rows up to the checkpoint's step (the whole file as it was is kept beside it).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from lightning.fabric.loggers import TensorBoardLogger
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from cnnpl.files import atomic_write, is_local

BEFORE_RESUME = "metrics.before-resume-{n}.csv"  # metrics.csv as a resume found it, when it had later rows


def start_logs(logger: Any, resumed_at: int | None) -> None:
    """Prepare ``logger`` (one, a list of them, or ``False``) for a fit that starts at step 0
    (``resumed_at=None``) or resumes from a checkpoint saved after ``resumed_at`` optimizer steps,
    leaving out of the run's logs what an interrupted attempt logged after the checkpoint.

    A :class:`~lightning.pytorch.loggers.TensorBoardLogger` opens its writer with ``purge_step``: 0 for a
    new run, ``resumed_at + 1`` for a resume. Each writes a session start there, and TensorBoard takes a
    run's every start after the first as a restart, hiding the events of earlier files at that step and
    later (they stay on disk). That is for its Python loader (``--load_fast=false``); its Rust data
    server, the default, shows a tag logged again at a step once by itself, and keeps what is not logged
    again (a finished attempt's test result). :class:`CSVLogger` moves such rows out of
    ``metrics.csv`` (:class:`ContinuingWriter`). What was logged at ``resumed_at`` itself stays: the
    checkpointed epoch's pictures (docs/visualisation.md) and a finished run's test results are logged
    at it; so is the first step trained after the checkpoint, which can then show twice.
    The writer opens in a later second than the folder's other event files (:func:`_wait_past_earlier_event_files`).
    Other loggers are left as they are.
    """
    for one in logger if isinstance(logger, list | tuple) else [logger]:
        if isinstance(one, TensorBoardLogger) and one._experiment is None:  # its writer not yet opened
            purge_step = 0 if resumed_at is None else resumed_at + 1
            one._kwargs.setdefault("purge_step", purge_step)  # Lightning passes _kwargs to SummaryWriter
            _wait_past_earlier_event_files(Path(one.log_dir))
        elif isinstance(one, CSVLogger):
            one.resumed_at = resumed_at


def open_test_logs_last(logger: Any) -> None:
    """Before a test: a TensorBoard writer the test opens (Lightning closed the fit's) is read after the fit's.

    In a process that opened writers before (a notebook's, a test's) the fit's file can be ``...9`` and the
    test's ``...10``; in one second the test's came first, and the fit's session start then hid the test
    results (:func:`_wait_past_earlier_event_files`)."""
    for one in logger if isinstance(logger, list | tuple) else [logger]:
        if isinstance(one, TensorBoardLogger):
            _wait_past_earlier_event_files(Path(one.log_dir))


def _wait_past_earlier_event_files(log_dir: Path) -> None:
    """Wait, at most a second, until an event file opened now in ``log_dir`` is read after the folder's others.

    TensorBoard reads a folder's event files in the order of their names,
    ``events.out.tfevents.<second>.<host>.<process id>.<n>``, ``n`` counting the writers the process has
    opened, unpadded: in one second, ``...10`` comes before ``...9``. A resume in the same Python process
    (a notebook's, a test's) can open its writer in the second of the run it resumes; read first, its
    events were then hidden by the session start of the earlier file (those of a CI run: after 9 writers).
    It waits only where the next file's name would come first: a resume from the command line starts
    seconds later, and a run's test file follows its fit's, but for ``...9`` and ``...10``.
    """
    if not log_dir.is_dir():
        return
    second = int(time.time())
    same_second = [name for name in os.listdir(log_dir) if name.startswith(f"events.out.tfevents.{second:010d}.")]
    if same_second and max(same_second) > _next_event_file_name(second):
        time.sleep(max(0.0, second + 1 - time.time()))


def _next_event_file_name(second: int) -> str:
    """The name of the event file this process's next TensorBoard writer opens in ``second``; ``""``
    (read before any other) where tensorboard's count of writers cannot be read."""
    from tensorboard.summary.writer import event_file_writer

    count = getattr(getattr(event_file_writer, "_global_uid", None), "_value", None)
    if not isinstance(count, int):
        return ""
    return f"events.out.tfevents.{second:010d}.{socket.gethostname()}.{os.getpid()}.{count}"


class ContinuingWriter(ExperimentWriter):
    """Lightning's CSV experiment writer, which keeps the ``metrics.csv`` it finds and appends to it.

    ``resumed_at``: the step of the checkpoint the run resumed from. Rows of later steps (an interrupted
    attempt's, logged again by this run) are left out: ``metrics.csv`` is first kept as the next free
    ``metrics.before-resume-N.csv`` (a second name for the same file), then replaced in one step by the
    rows up to that step.
    """

    def __init__(self, log_dir: str, resumed_at: int | None = None) -> None:
        self.resumed_at = resumed_at
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            self.metrics_keys = list(reader.fieldnames or [])
        if self.resumed_at is None or not is_local(self.metrics_file_path):
            return
        kept = [row for row in rows if not _after(row, self.resumed_at)]
        if len(kept) == len(rows):
            return
        path = Path(self.metrics_file_path)
        n = 1
        while (path.parent / BEFORE_RESUME.format(n=n)).exists():
            n += 1
        before = path.parent / BEFORE_RESUME.format(n=n)
        try:
            os.link(path, before)
        except OSError:  # a file system without hard links
            shutil.copy2(path, before)
        try:
            self._write_rows(self.metrics_keys, kept)
        except BaseException:  # metrics.csv is as it was: the second name would follow its later rows
            before.unlink(missing_ok=True)
            raise

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        self._write_rows(fieldnames, rows)

    def _write_rows(self, fieldnames: list[str], rows: list[dict[str, str]]) -> None:
        """Replace ``metrics.csv`` with ``rows`` under ``fieldnames``, in one step where it is a local file
        (a crash in Lightning's rewrite would leave the file cut short)."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        if is_local(self.metrics_file_path):
            atomic_write(self.metrics_file_path, lambda file: file.write(text.getvalue().encode()))
        else:
            with self._fs.open(self.metrics_file_path, "w", newline="") as file:
                file.write(text.getvalue())


def _after(row: dict[str, str], step: int) -> bool:
    """Whether a ``metrics.csv`` row was logged after ``step`` (a row without a step is kept)."""
    try:
        return int(float(row.get("step") or "")) > step
    except ValueError:
        return False


class CSVLogger(LightningCSVLogger):
    """Lightning's ``CSVLogger``, whose ``metrics.csv`` survives a resume (:class:`ContinuingWriter`)."""

    resumed_at: int | None = None  # set by start_logs before the run's first log

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(log_dir=self.log_dir, resumed_at=self.resumed_at)
        return self._experiment
