"""Reliability: resume after a kill, atomic checkpoints, SIGTERM, NaN loss, safe loading, bad input.

Runs train on ``data=shapes`` (tiny); the interruption tests use the real command line in a
subprocess and a small callback module (written into ``tmp_path``) that pauses a batch so the test
can signal the process at a known point.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from tests.conftest import TINY, contents, run_cli

import cnnpl
from cnnpl.callbacks import ModelCheckpoint
from cnnpl.callbacks.guards import (
    FiniteLossGuard,
    NonFiniteLossError,
    SigtermCheckpoint,
    collect_random_state,
    restore_random_state,
)
from cnnpl.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    UnsafeCheckpointError,
    atomic_torch_save,
    check_checkpoint_fits,
    resolve_ckpt_path,
    safe_load,
)
from cnnpl.data.shapes import CLASSES as SHAPE_CLASSES
from cnnpl.errors import CnnplError, DataError
from cnnpl.train import train  # not cnnpl.train: importing the module cnnpl.train rebinds that name

FAST = [*TINY, "callbacks=minimal", "logger=csv"]  # no pictures: these tests are about checkpoints
DETERMINISTIC = ["trainer.deterministic=true", "pool=mixed"]  # mixed pooling: random draws + history buffers


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def assert_same_optimizer(a: Path, b: Path) -> None:
    opt_a = torch.load(a, weights_only=True)["optimizer_states"][0]["state"]
    opt_b = torch.load(b, weights_only=True)["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys()
    for key in opt_a:
        assert_same_tensors(opt_a[key], opt_b[key])


# -- resume ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_from_last_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    # a constant learning rate: a schedule over the whole run (onecycle, cosine) depends on max_epochs,
    # which this simulation changes; the SIGKILL test below keeps max_epochs and uses onecycle
    base = [*FAST, *DETERMINISTIC, "scheduler=none"]
    whole = train(cnnpl.compose([*base, "trainer.max_epochs=2"], output_dir=str(tmp_path / "whole")))
    first = train(cnnpl.compose([*base, "trainer.max_epochs=1"], output_dir=str(tmp_path / "parts")))
    resumed = train(
        cnnpl.compose([*base, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path / "parts"))
    )
    whole_last = tmp_path / "whole" / "checkpoints" / "last.ckpt"
    resumed_last = tmp_path / "parts" / "checkpoints" / "last.ckpt"
    assert torch.load(resumed_last, weights_only=True)["epoch"] == 1
    assert_same_tensors(state_dict(whole_last), state_dict(resumed_last))  # lam_counts included
    assert_same_optimizer(whole_last, resumed_last)
    assert resumed == whole
    assert first != whole  # the second epoch did train


class Stalled(L.LightningModule):
    """Learns nothing and always scores val/acc 0.5: the best checkpoint never changes after epoch 0."""

    def __init__(self, sigterm_at_step: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.sigterm_at_step = sigterm_at_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.sigterm_at_step:
            raise SIGTERMException  # what Lightning raises between batches after a SIGTERM
        return self.layer(batch[0]).sum() * 0.0

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/acc", 0.5)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_stalled(
    checkpoints: Path,
    epochs: int,
    ckpt_path: str | None = None,
    sigterm_at_step: int | None = None,
    save_last: bool | str = True,
    **trainer: Any,
):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(8, 2)), batch_size=2)  # 4 steps
    checkpoint = ModelCheckpoint(dirpath=checkpoints, monitor="val/acc", mode="max", save_top_k=1, save_last=save_last)
    trainer = L.Trainer(
        max_epochs=epochs, callbacks=[checkpoint, SigtermCheckpoint()], logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1, **trainer,
    )  # fmt: skip
    trainer.fit(Stalled(sigterm_at_step), loader, loader, ckpt_path=ckpt_path)


def test_last_ckpt_follows_every_epoch_when_the_best_does_not_change(tmp_path: Path) -> None:
    # Lightning 2.6's ModelCheckpoint rewrites last.ckpt only when a top-k checkpoint is saved at the
    # same step: here at epoch 0 alone, so ckpt_path=last would train epochs 1 and 2 again
    fit_stalled(tmp_path, epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    last = safe_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 12)

    fit_stalled(tmp_path, epochs=4, ckpt_path=str(tmp_path / "last.ckpt"))  # resumes at epoch 3, not 1
    last = safe_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (3, 16)


def test_a_linked_last_ckpt_follows_every_epoch_too(tmp_path: Path) -> None:
    # helper-127: save_last=link kept last.ckpt a link to epoch 0's checkpoint after 3 epochs
    fit_stalled(tmp_path, epochs=3, save_last="link")
    last = safe_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 12)
    fit_stalled(tmp_path, epochs=4, ckpt_path=str(tmp_path / "last.ckpt"), save_last="link")
    assert safe_load(tmp_path / "last.ckpt")["global_step"] == 16


def test_last_ckpt_follows_an_epoch_without_validation(tmp_path: Path) -> None:
    # check_val_every_n_epoch=2 validates after epoch 1 only: Lightning saves nothing after epochs 0 and 2
    fit_stalled(tmp_path, epochs=3, check_val_every_n_epoch=2)
    last = safe_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 12)


def test_a_sigterm_before_the_first_save_resumes_into_the_same_last_ckpt(tmp_path: Path) -> None:
    with pytest.raises(SIGTERMException):
        fit_stalled(tmp_path, epochs=2, sigterm_at_step=2)
    assert safe_load(tmp_path / "last.ckpt")["global_step"] == 2
    fit_stalled(tmp_path, epochs=2, ckpt_path=str(tmp_path / "last.ckpt"))
    # not last-v1.ckpt beside it (the SIGTERM's file named in its own callback state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    last = safe_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 8)


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    torch.manual_seed(3)
    saved = collect_random_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    atomic_torch_save({"rng": saved}, tmp_path / "rng.ckpt")
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    restore_random_state(safe_load(tmp_path / "rng.ckpt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


STALL = '''
"""Test helper: pauses one training batch (once per marker file) so a test can signal the process."""
import time
from pathlib import Path

import lightning as L


class Stall(L.Callback):
    def __init__(self, marker: str, epoch: int, batch: int, seconds: float = 120.0, stage: str = "train") -> None:
        self.marker, self.epoch, self.batch, self.seconds, self.stage = Path(marker), epoch, batch, seconds, stage

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if self.stage == "test":
            self.stall(trainer, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.stage == "train":
            self.stall(trainer, batch_idx)

    def stall(self, trainer, batch_idx):
        if trainer.current_epoch != self.epoch or batch_idx != self.batch or self.marker.exists():
            return
        self.marker.write_text(str(trainer.global_step))
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline and not trainer.received_sigterm:
            time.sleep(0.05)
'''


def start_stalled_run(
    tmp_path: Path, run_dir: Path, overrides: list[str], epoch: int, batch: int, stage: str = "train"
):
    """Start ``python -m cnnpl`` and wait until it pauses after ``batch`` of ``epoch`` (of the ``stage``
    loop); returns (process, args)."""
    (tmp_path / "stall_callback.py").write_text(STALL)
    marker = tmp_path / "stalled"
    args = [
        *overrides,
        f"hydra.run.dir={run_dir}",
        "+callbacks.stall._target_=stall_callback.Stall",
        f"+callbacks.stall.marker={marker}",
        f"+callbacks.stall.epoch={epoch}",
        f"+callbacks.stall.batch={batch}",
        f"+callbacks.stall.stage={stage}",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(tmp_path)}
    env.pop("HYDRA_FULL_ERROR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnpl", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"run ended before the pause: {process.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the run did not reach the pause in 240 s")
        time.sleep(0.1)
    return process, args


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path: Path) -> None:
    base = [*FAST, *DETERMINISTIC, "scheduler=onecycle", "trainer.max_epochs=2"]
    whole = run_cli(*base, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    # killed in the middle of epoch 2 (index 1): the last checkpoint is the end of epoch 1
    process, args = start_stalled_run(tmp_path, tmp_path / "killed", base, epoch=1, batch=3)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0

    resumed = run_cli(*args, "ckpt_path=last", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_tensors(state_dict(tmp_path / "whole" / "checkpoints" / "last.ckpt"), state_dict(last))
    assert_same_optimizer(tmp_path / "whole" / "checkpoints" / "last.ckpt", last)


@pytest.mark.slow  # the real command line
def test_ckpt_path_last_without_a_checkpoint_says_how_to_resume(cli, tmp_path: Path) -> None:
    result = cli(*FAST, "ckpt_path=last")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"cnnpl: error: ckpt_path=last but '{tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}' does not exist; "
        "resume with the run directory of the interrupted run (hydra.run.dir=<that run's directory> ckpt_path=last) "
        "or give a checkpoint file"
    )
    assert not (tmp_path / "run").exists()  # refused before Hydra makes the run directory (.hydra/, cnnpl.log)
    # Hydra's default run directory is named by the time: a new folder, which cannot hold the run
    result = run_cli(*FAST, "ckpt_path=last", cwd=tmp_path)
    assert result.returncode == 2
    assert re.fullmatch(
        r"cnnpl: error: ckpt_path=last but 'outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d/checkpoints/last\.ckpt' does not "
        r"exist; resume with the run directory of the interrupted run \(hydra\.run\.dir=<that run's directory> "
        r"ckpt_path=last\) or give a checkpoint file",
        result.stderr.strip().splitlines()[-1],
    ), result.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()
    # testing a run's last checkpoint there: the same refusal (it left outputs/<date>/<time>/ behind)
    result = run_cli(*FAST, "fit=false", "ckpt_path=last", cwd=tmp_path)
    assert result.returncode == 2 and "fit=false ckpt_path=last) or give a checkpoint file" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # the real command line
def test_a_run_refused_inside_a_named_new_folder_leaves_no_folder(tmp_path: Path) -> None:
    # helper-123: hydra.run.dir=<new folder> with a file that is no checkpoint left the folder with .hydra/ and
    # cnnpl.log, as a folder named by the time no longer does
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    result = run_cli(*FAST, f"ckpt_path={tmp_path / 'junk.ckpt'}", "hydra.run.dir=new/run", cwd=tmp_path)
    assert result.returncode == 2 and "cannot read checkpoint" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["junk.ckpt"]  # new/ too: this command made it
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    result = run_cli(*FAST, f"ckpt_path={tmp_path / 'junk.ckpt'}", "hydra.run.dir=kept", cwd=tmp_path)
    assert result.returncode == 2 and (tmp_path / "kept").is_dir()


def test_the_resume_check_before_hydra_finds_the_run_where_the_config_puts_it(tmp_path: Path, monkeypatch) -> None:
    from cnnpl.cli import _check_resume_dir

    monkeypatch.chdir(tmp_path)
    # a run directory named by the day (the same folder all day): Hydra's ${now:...} read as Hydra will
    dated = ["hydra.run.dir=outputs/${now:%Y-%m-%d}/my-run", "ckpt_path=last"]
    with pytest.raises(CheckpointError, match=r"ckpt_path=last but 'outputs/\d{4}-\d\d-\d\d/my-run/checkpoints/"):
        _check_resume_dir(dated)
    assert not (tmp_path / "outputs").exists()
    day = time.strftime("%Y-%m-%d")
    atomic_torch_save({"global_step": 8}, tmp_path / "outputs" / day / "my-run" / "checkpoints" / "last.ckpt")
    if time.strftime("%Y-%m-%d") == day:  # not across midnight
        _check_resume_dir(dated)
    # a config file's output_dir: the checkpoints are not in the run directory, so the run itself checks
    experiment = tmp_path / "my_conf" / "experiment" / "elsewhere.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\noutput_dir: runs/elsewhere\n")
    _check_resume_dir([f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "experiment=elsewhere", "ckpt_path=last"])
    _check_resume_dir(["output_dir=runs/elsewhere", "ckpt_path=last"])
    _check_resume_dir(["callbacks.checkpoint.dirpath=runs/elsewhere", "ckpt_path=last"])
    # testing the last checkpoint of a folder named by the time: refused before Hydra makes it (it was left behind)
    with pytest.raises(CheckpointError) as err:
        _check_resume_dir(["fit=false", "ckpt_path=last"])
    assert re.fullmatch(
        r"ckpt_path=last but 'outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d/checkpoints/last\.ckpt' does not exist; "
        r"test a run's last checkpoint with its run directory \(hydra\.run\.dir=<that run's directory> "
        r"fit=false ckpt_path=last\) or give a checkpoint file",
        str(err.value),
    )


def test_resuming_a_run_that_stopped_before_its_first_checkpoint_says_so(tmp_path: Path) -> None:
    # helper-127: Ctrl-C in the first epoch, then the same command with ckpt_path=last: "resume with the run
    # directory of the interrupted run", which was the one given
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("fit: true\n")  # written when training started
    with pytest.raises(CheckpointError) as caught:
        resolve_ckpt_path("last", tmp_path / "run" / "checkpoints")
    assert str(caught.value) == (
        f"ckpt_path=last, but the run in '{tmp_path / 'run'}' stopped before its first checkpoint: there is nothing "
        "to resume; start it again in a new folder (hydra.run.dir=<new folder>), or delete that run's files"
    )
    (tmp_path / "run" / "config.yaml").write_text("fit: true\ncallbacks:\n  lr_monitor: {}\n")  # ~callbacks.checkpoint
    with pytest.raises(CheckpointError) as caught:  # helper-137: a finished run was said to have stopped early
        resolve_ckpt_path("last", tmp_path / "run" / "checkpoints")
    assert str(caught.value).startswith(
        f"ckpt_path=last, but the run in '{tmp_path / 'run'}' saved no checkpoints (its config.yaml has no "
        "callbacks.checkpoint): there is nothing to resume;"
    )
    with pytest.raises(CheckpointError, match="does not exist; test a run's last checkpoint"):
        resolve_ckpt_path("last", tmp_path / "run" / "checkpoints", fit=False)
    with pytest.raises(CheckpointError, match="does not exist; resume with the run directory"):
        resolve_ckpt_path("last", tmp_path / "new" / "checkpoints")  # no run there


def test_resolve_ckpt_path(tmp_path: Path) -> None:
    assert resolve_ckpt_path(None, tmp_path) is None
    # no last.ckpt (save_last=false): the message names the checkpoint saved at the latest step
    atomic_torch_save({"global_step": 20}, tmp_path / "epoch001-val_acc0.9000.ckpt")
    atomic_torch_save({"global_step": 10}, tmp_path / "epoch000-val_acc0.8000.ckpt")
    with pytest.raises(CheckpointError) as caught:
        resolve_ckpt_path("last", tmp_path)
    assert str(caught.value) == (
        f"ckpt_path=last but '{tmp_path}' holds no last.ckpt (callbacks.checkpoint.save_last=false saves none, "
        "and a last.ckpt that could not be written is none); resume from the checkpoint saved at the latest step "
        "there with "
        f"ckpt_path={tmp_path / 'epoch001-val_acc0.9000.ckpt'}"
    )
    (tmp_path / "last.ckpt").write_bytes(b"x")
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"does not exist; give a \.ckpt file or ckpt_path=last"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path)
    with pytest.raises(CheckpointError, match=r"is a folder; give a \.ckpt file in it$"):
        resolve_ckpt_path(str(tmp_path), tmp_path)
    # a run's folder, or its checkpoints/: ckpt_path=last alone would look in the command's own new folder, and
    # was advised (helper-119)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for given in (run, run / "checkpoints"):
        with pytest.raises(CheckpointError) as err:
            resolve_ckpt_path(str(given), tmp_path)
        assert str(err.value) == (
            f"ckpt_path {str(given)!r} is a folder; give a .ckpt file in it, or hydra.run.dir={run} ckpt_path=last "
            "to continue that run"
        )


def test_ckpt_path_last_is_the_newest_last_checkpoint(tmp_path: Path) -> None:
    # Lightning writes last-v1.ckpt beside a last.ckpt it did not write itself: the newest one is where
    # training stopped; files that say no step are ranked by their times
    for age, name in enumerate(["last-v1.ckpt", "last.ckpt", "epoch003.ckpt"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last-v1.ckpt")
    os.utime(tmp_path / "last.ckpt", (2_000_000, 2_000_000))
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last.ckpt")


def test_ckpt_path_last_is_the_one_saved_at_the_latest_step_whatever_the_file_times(tmp_path: Path) -> None:
    # cp -r gives every file the time of the copy: the step saved in each still tells them apart
    for step, name, when in ((30, "last.ckpt", 1_000_000), (20, "last-v1.ckpt", 2_000_000)):
        atomic_torch_save({"global_step": step, "state_dict": {}}, tmp_path / name)
        os.utime(tmp_path / name, (when, when))
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last.ckpt")
    # torch's old (not zip) format cannot be mapped: it is read whole
    torch.save({"global_step": 40}, tmp_path / "last-v3.ckpt", _use_new_zipfile_serialization=False)
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last-v3.ckpt")
    (tmp_path / "last-v3.ckpt").unlink()
    # one whose step cannot be read is taken as the newest, so that resuming from it is refused, not skipped
    (tmp_path / "last-v2.ckpt").write_bytes(b"truncated")
    os.utime(tmp_path / "last-v2.ckpt", (0, 0))
    assert resolve_ckpt_path("last", tmp_path) == str(tmp_path / "last-v2.ckpt")


def test_a_resume_to_fewer_epochs_than_trained_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    train(cnnpl.compose([*FAST, "trainer.max_epochs=3"], output_dir=str(tmp_path)))
    written = contents(tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError) as caught:  # was Lightning's MisconfigurationException, logs opened
        train(cnnpl.compose([*FAST, "trainer.max_epochs=1", "ckpt_path=last"], output_dir=str(tmp_path)))
    assert str(caught.value) == (
        f"checkpoint '{last}' was saved in epoch 2 (counting from 0), past trainer.max_epochs=1; a resume continues "
        f"up to trainer.max_epochs: give 3 or more, or test the checkpoint with fit=false ckpt_path={last}"
    )
    assert contents(tmp_path) == written
    # helper-127: as many epochs as it trained less one trained nothing and wrote max_epochs=2 into config.yaml
    with pytest.raises(CheckpointError, match=r"saved in epoch 2 \(counting from 0\), past trainer\.max_epochs=2;"):
        train(cnnpl.compose([*FAST, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    with pytest.raises(CheckpointError) as caught:  # +trainer.max_steps=2 at step 30: "max_steps=2 reached"
        train(
            cnnpl.compose(
                [*FAST, "trainer.max_epochs=3", "+trainer.max_steps=2", "ckpt_path=last"], output_dir=str(tmp_path)
            )
        )
    assert str(caught.value) == (
        f"checkpoint '{last}' was saved at step 24, past trainer.max_steps=2; a resume continues up to "
        f"trainer.max_steps: give 24 or more (-1: no limit), or test the checkpoint with fit=false ckpt_path={last}"
    )
    assert contents(tmp_path) == written
    # the Python API's run has no .hydra/overrides.yaml to point to (the message named one)
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose([*FAST, "trainer.max_epochs=3", "ckpt_path=last", "pool=avg"], output_dir=str(tmp_path)))
    assert str(caught.value).endswith("give the command that trained it again, with this ckpt_path")
    assert contents(tmp_path) == written
    train(cnnpl.compose([*FAST, "trainer.max_epochs=3", "ckpt_path=last"], output_dir=str(tmp_path)))  # tests


def test_a_second_run_in_a_folder_where_one_trains_is_refused_and_a_killed_one_blocks_nothing(tmp_path: Path) -> None:
    from cnnpl.checkpoint import RUN_LOCK, claimed_run_dir

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(  # a run training there: it holds the folder's lock until its process ends
        [sys.executable, "-c", "import sys, time\nfrom cnnpl.checkpoint import claimed_run_dir\n"
         "with claimed_run_dir(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        # two commands in one hydra.run.dir both trained, side by side: last.ckpt and last-v1.ckpt, one config.yaml
        with pytest.raises(CheckpointError) as err:
            train(cnnpl.compose(FAST, output_dir=str(run)))
        assert str(err.value) == (
            f"another run is training in '{run}' now (it holds {RUN_LOCK} there); wait until it ends (to resume it: "
            "ckpt_path=last), or give this run a folder of its own with hydra.run.dir=<folder>"
        )
        assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()
        train(cnnpl.compose([*FAST, "fit=false", "test=false"], output_dir=str(run)))  # not training: not refused
    finally:
        holder.kill()  # SIGKILL: no cleanup ran, and the kernel dropped its lock
        holder.wait()
    train(cnnpl.compose(FAST, output_dir=str(run)))
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / RUN_LOCK).exists()
    with claimed_run_dir(run):  # released at the end of train(): the same process may train there again
        pass


def test_the_run_lock_of_another_user_or_a_file_system_without_locks(tmp_path: Path, monkeypatch, caplog) -> None:
    import builtins
    import fcntl

    import cnnpl.checkpoint as checkpoint

    def not_for_writing(file, mode="r", *args, **kwargs):  # a lock file another user's killed run left
        if mode != "r":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return builtins.open(file, mode, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(checkpoint, "open", not_for_writing, raising=False)
        (tmp_path / checkpoint.RUN_LOCK).touch()
        with (
            checkpoint.claimed_run_dir(tmp_path),  # was a PermissionError traceback
            pytest.raises(CheckpointError, match=r"^another run is training in"),
            checkpoint.claimed_run_dir(tmp_path),  # held: flock needs no write access
        ):
            pass

    def no_locks(*_):  # some NFS set-ups
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="cnnpl.checkpoint"):
        train(cnnpl.compose(FAST, output_dir=str(tmp_path / "run")))
    assert f"cannot lock {tmp_path / 'run' / checkpoint.RUN_LOCK} (No locks available); this run trains without it" in (
        caplog.text
    )
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_a_run_without_validation_keeps_and_tests_the_latest_epoch_and_resumes_so(tmp_path: Path, caplog) -> None:
    off = [*FAST, "+trainer.limit_val_batches=0"]
    train(cnnpl.compose([*off, "trainer.max_epochs=2"], output_dir=str(tmp_path / "off")))
    folder = tmp_path / "off" / "checkpoints"
    assert {p.name for p in folder.glob("*.ckpt")} == {"epoch001.ckpt", "last.ckpt"}
    with caplog.at_level(logging.INFO):
        train(cnnpl.compose([*off, "trainer.max_epochs=4", "ckpt_path=last"], output_dir=str(tmp_path / "off")))
    assert {p.name for p in folder.glob("*.ckpt")} == {"epoch003.ckpt", "last.ckpt"}
    assert safe_load(folder / "last.ckpt")["epoch"] == 3
    tested = [r.getMessage() for r in caplog.records if "Loaded model weights from the checkpoint" in r.getMessage()]
    assert tested and tested[-1].endswith(str(folder / "epoch003.ckpt"))
    # a run that validated resumed without validation: its test took the earlier best by val/acc, as if the
    # resumed epochs had not been trained, and last.ckpt stayed the old one beside a last-v1.ckpt
    train(cnnpl.compose([*FAST, "trainer.max_epochs=2"], output_dir=str(tmp_path / "on")))
    written = contents(tmp_path / "on")
    for run, then in (("on", off), ("off", FAST)):
        with pytest.raises(CheckpointError, match=r"trained with: trainer\.limit_val_batches \(run: "):
            train(cnnpl.compose([*then, "trainer.max_epochs=5", "ckpt_path=last"], output_dir=str(tmp_path / run)))
    assert contents(tmp_path / "on") == written


@pytest.mark.parametrize("model", ["simple_cnn", "lenet5"])  # lenet5 takes model.pretrained, simple_cnn does not
def test_a_state_dict_given_as_checkpoint_gets_advice_the_model_can_follow(tmp_path: Path, model: str) -> None:
    from cnnpl.system import ImageClassifier

    system = ImageClassifier(cnnpl.build("model", model, num_classes=10), 10)
    path = tmp_path / "weights.pth"
    torch.save(system.net.state_dict(), path)
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint_fits(path, system, model)
    advice = (
        f"for weights alone use model.pretrained={path}"
        if model == "lenet5"  # simple_cnn has no model.pretrained: the message offered it all the same
        else "ckpt_path takes the .ckpt files a run writes (in its checkpoints/ folder); model=simple_cnn loads no "
        "weights alone (it has no model.pretrained)"
    )
    assert str(caught.value) == f"'{path}' is not a Lightning checkpoint (no 'state_dict'); {advice}"


def test_a_copied_run_directory_resumes_with_its_own_checkpoint_record(tmp_path: Path) -> None:
    import shutil

    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "a")))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    written = contents(tmp_path / "a")
    train(cnnpl.compose([*FAST, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path / "b")))
    folder = tmp_path / "b" / "checkpoints"
    # Lightning would restore only best_model_path (a's) from the record, and version the last checkpoint
    assert not list(folder.glob("last-v*.ckpt"))
    record = next(v for k, v in safe_load(folder / "last.ckpt")["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert record["dirpath"] == str(folder)
    assert Path(record["best_model_path"]).parent == folder
    assert all(Path(path).parent == folder for path in record["best_k_models"])
    assert contents(tmp_path / "a") == written


def test_a_checkpoint_record_is_moved_only_when_every_file_it_names_is_in_the_new_folder(tmp_path: Path) -> None:
    from cnnpl.callbacks.checkpoint import moved_record

    old, new = tmp_path / "old", tmp_path / "new"
    new.mkdir()
    state = {
        "dirpath": str(old),
        "best_model_path": str(old / "epoch001.ckpt"),
        "kth_best_model_path": str(old / "epoch001.ckpt"),
        "last_model_path": str(old / "last.ckpt"),
        "best_k_models": {str(old / "epoch001.ckpt"): torch.tensor(0.5)},
        "best_model_score": torch.tensor(0.5),
    }
    (new / "last.ckpt").write_bytes(b"x")
    assert moved_record(state, str(new)) is state  # epoch001.ckpt is not there: continuing another run
    (new / "epoch001.ckpt").write_bytes(b"x")
    moved = moved_record(state, str(new))
    assert moved["dirpath"] == str(new)
    assert moved["best_model_path"] == moved["kth_best_model_path"] == str(new / "epoch001.ckpt")
    assert moved["last_model_path"] == str(new / "last.ckpt")
    assert list(moved["best_k_models"]) == [str(new / "epoch001.ckpt")]
    assert moved["best_model_score"] is state["best_model_score"]
    assert moved_record(state, str(old)) is state


@pytest.mark.parametrize("model", ["simple_cnn", "lenet5"])  # lenet5 takes model.pretrained, simple_cnn does not
def test_resuming_from_a_checkpoint_of_the_weights_alone_is_refused_before_training(tmp_path: Path, model: str) -> None:
    weights_only = [*FAST, f"model={model}", "+callbacks.checkpoint.save_weights_only=true"]
    train(cnnpl.compose(weights_only, output_dir=str(tmp_path)))
    written = contents(tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose([*weights_only, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    start = (
        f"start a new run from its weights with model.pretrained={last} in a new folder, or "
        if model == "lenet5"
        else ""
    )
    assert str(caught.value) == (
        f"checkpoint '{last}' holds the weights only (no optimizer or loop state: saved with save_weights_only=true), "
        f"so training cannot resume from it; {start}test it with fit=false ckpt_path={last}"
    )
    assert contents(tmp_path) == written
    # what the message offers works: testing it, and training from its weights in a new folder
    tested = train(cnnpl.compose([*weights_only, "fit=false", f"ckpt_path={last}"], output_dir=str(tmp_path)))
    assert "test/acc" in tested
    if start:
        train(cnnpl.compose([*FAST, f"model={model}", f"model.pretrained={last}"], output_dir=str(tmp_path / "new")))


def test_a_resumed_run_keeps_the_metrics_csv_of_its_earlier_epochs(tmp_path: Path) -> None:
    import csv

    train(cnnpl.compose(FAST, output_dir=str(tmp_path)))  # FAST logs to csv/metrics.csv
    metrics = tmp_path / "csv" / "metrics.csv"
    first = metrics.read_text().splitlines()
    train(cnnpl.compose([*FAST, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    with metrics.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["epoch"] for row in rows if row["train/acc"]} == {"0", "1"}  # Lightning's deleted epoch 0
    assert len(rows) > len(first) - 1
    assert metrics.read_text().splitlines()[: len(first)] == first
    assert sorted(path.name for path in metrics.parent.glob("*.csv")) == ["metrics.csv"]  # nothing to leave out


def steps(path: Path) -> list[int]:
    import csv

    with path.open(newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file)]


@pytest.mark.slow
def test_a_run_resumed_from_an_earlier_checkpoint_logs_each_later_step_once(tmp_path: Path) -> None:
    """A resume from a checkpoint before where the run got to (a kill after it, or ckpt_path=<an earlier
    epoch's file>) trains and logs the later steps again: TensorBoard must hide the earlier attempt's
    (purge_step), metrics.csv must move them aside, and the checkpointed epoch's pictures must stay."""
    base = [*TINY, "data.num_train=80", "trainer.max_epochs=2", "callbacks.checkpoint.save_top_k=-1"]
    tb, csv_run = tmp_path / "tb", tmp_path / "csv"  # 64 training images, batches of 32: 2 steps an epoch
    for run_dir, extra in ((tb, ["callbacks.filters.rgb=false"]), (csv_run, ["callbacks=minimal", "logger=csv"])):
        train(cnnpl.compose([*base, *extra], output_dir=str(run_dir)))
        if run_dir == csv_run:
            before = (csv_run / "csv" / "metrics.csv").read_bytes()
        epoch0 = next((run_dir / "checkpoints").glob("epoch000*.ckpt"))
        assert torch.load(epoch0, weights_only=True)["global_step"] == 2
        train(cnnpl.compose([*base, *extra, f"ckpt_path={epoch0}"], output_dir=str(run_dir)))

    # read as TensorBoard's Python loader does (--load_fast=false; the default Rust one hides steps logged
    # again by itself): a run's first session start is its beginning, each later one a restart
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Tensors("train/loss_step")] == [0, 1, 2, 2, 3]  # step 2: the same state, twice
    assert [e.step for e in acc.Tensors("val/acc")] == [1, 3]
    assert [e.step for e in acc.Tensors("test/acc")] == [4]
    assert [e.step for e in acc.Tensors("filters/features.block1.conv")] == [0, 2, 4]  # epoch 0's at step 2

    kept = csv_run / "csv" / "metrics.before-resume-1.csv"
    assert kept.read_bytes() == before  # the whole file as the resume found it
    first = steps(kept)
    assert steps(csv_run / "csv" / "metrics.csv") == [s for s in first if s <= 2] + [s for s in first if s >= 2]
    lines = before.decode().splitlines()
    assert (csv_run / "csv" / "metrics.csv").read_text().splitlines()[: len([s for s in first if s <= 2]) + 1] == [
        lines[0],
        *[line for line, s in zip(lines[1:], first, strict=True) if s <= 2],
    ]


def test_a_resume_in_the_second_of_the_run_it_resumes_opens_the_event_file_read_last(
    tmp_path: Path, monkeypatch
) -> None:
    """A CI run (session 43): a resume in the test process opened its event file in the second of the run it
    resumed, as the process's tenth writer. TensorBoard reads a folder's files in name order, and
    ``events.out.tfevents.<second>.<host>.<pid>.10`` comes before ``...9``: the resume's file was read first
    and the earlier file's session start (purge_step 0) hid its events. Here the first run's writer is the
    ninth (tensorboard's own counter, set for the test)."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer

    from cnnpl.loggers import start_logs

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    time.sleep(1 - time.time() % 1)  # at the start of a second: the two writers open in one (helper-142)
    for resumed_at, value in ((None, 1.0), (0, 2.0)):
        logger = TensorBoardLogger(tmp_path, name="tensorboard", version="")
        start_logs(logger, resumed_at)
        logger.experiment.add_scalar("x", value, 0 if resumed_at is None else resumed_at + 1)
        logger.finalize("success")

    names = sorted(path.name for path in (tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert [name.rsplit(".", 1)[1] for name in names] == ["9", "10"]
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("x")] == [(0, 1.0), (1, 2.0)]


def test_a_runs_test_results_stay_in_tensorboard_when_its_test_file_is_the_tenth(tmp_path: Path, monkeypatch) -> None:
    """Lightning closes the fit's writer and the test opens a second file. As a process's ninth and tenth
    writers in one second the test's (``...10``) was read first and the fit's session start hid the test
    results. The clock is one that stands still but for sleeps, so fit and test share a second."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.summary.writer import event_file_writer

    clock = [int(time.time()) + 0.5]

    def now() -> float:
        clock[0] += 1e-6  # moving, for whatever divides by a duration
        return clock[0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    monkeypatch.setattr(time, "time", now)
    monkeypatch.setattr(time, "sleep", sleep)
    train(cnnpl.compose([*TINY, "callbacks=minimal", "logger=tensorboard"], output_dir=str(tmp_path)))
    monkeypatch.undo()

    names = sorted(path.name for path in (tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert [name.rsplit(".", 1)[1] for name in names] == ["9", "10"]  # the fit's, then the test's
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert "test/acc" in acc.Tags()["scalars"] and "train/loss_epoch" in acc.Tags()["scalars"]


def test_a_resume_that_cannot_write_metrics_csv_leaves_it_as_it_was(tmp_path: Path, monkeypatch) -> None:
    import cnnpl.loggers
    from cnnpl.loggers import ContinuingWriter

    writer = ContinuingWriter(str(tmp_path))
    for step in range(6):
        writer.log_metrics({"train/loss_step": 1.0 / (step + 1)}, step=step)
    writer.save()
    before = (tmp_path / "metrics.csv").read_bytes()

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cnnpl.loggers, "atomic_write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ContinuingWriter(str(tmp_path), resumed_at=2)
    assert contents(tmp_path) == {tmp_path / "metrics.csv": before}  # no second name left linked to it


def test_a_new_column_rewrites_metrics_csv_in_one_step(tmp_path: Path, monkeypatch) -> None:
    import csv

    from cnnpl.loggers import ContinuingWriter

    writer = ContinuingWriter(str(tmp_path))
    writer.log_metrics({"a": 1.0}, step=0)
    writer.save()
    before = (tmp_path / "metrics.csv").read_bytes()
    writer.log_metrics({"b": 2.0}, step=1)  # a new column: the file is written again under the new header

    def crash(self, rows):  # the process dies while the rows are written
        raise OSError("No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", crash)
    with pytest.raises(OSError):
        writer.save()
    assert (tmp_path / "metrics.csv").read_bytes() == before


def test_a_new_run_is_refused_where_an_earlier_run_started_without_saving_a_checkpoint(tmp_path: Path) -> None:
    no_checkpoints = [*FAST, "~callbacks.checkpoint"]
    # a command refused before training, by a check of the config or one of Lightning's setup, leaves
    # nothing that refuses the corrected one (config.yaml is written when training starts)
    with pytest.raises(CnnplError, match="seed must be an integer"):
        train(cnnpl.compose([*no_checkpoints, "seed=-1"], output_dir=str(tmp_path)))
    with pytest.raises(CnnplError, match="SimpleCNN has no layer 'nope'; its layers: "):
        train(cnnpl.compose([*TINY, "callbacks.feature_maps.layers=[nope]"], output_dir=str(tmp_path)))
    assert not (tmp_path / "config.yaml").exists()
    train(cnnpl.compose(no_checkpoints, output_dir=str(tmp_path)))
    written = contents(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose([*no_checkpoints, "model=lenet5"], output_dir=str(tmp_path)))
    assert str(caught.value) == (
        # no tensorboard/: the refused command's picture callback is refused before the logger opens its file
        f"'{tmp_path}' already holds an earlier run (its config.yaml and csv/) that saved no "
        "checkpoint to continue from; start this run in a new folder (hydra.run.dir=<new folder>; output_dir= "
        "from Python), or delete that run's files first"
    )
    assert contents(tmp_path) == written


def test_a_new_run_in_a_folder_where_a_checkpoint_was_tested_is_refused(tmp_path: Path) -> None:
    # it trained there, replacing the test's config.yaml (fit: false, which checkpoint) and adding to its logs
    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "a")))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    train(cnnpl.compose([*FAST, "fit=false", f"ckpt_path={last}"], output_dir=str(tmp_path / "b")))
    assert (tmp_path / "b" / "config.yaml").is_file()  # fit: false, which trained nothing there
    written = {path: path.read_bytes() for path in sorted((tmp_path / "b").rglob("*")) if path.is_file()}
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose(FAST, output_dir=str(tmp_path / "b")))
    assert str(caught.value) == (
        f"'{tmp_path / 'b'}' holds the test of a checkpoint (fit=false: its config.yaml and csv/); "
        "start this run in a new folder (hydra.run.dir=<new folder>; output_dir= from Python), or delete that "
        "test's files first"
    )
    assert {path: path.read_bytes() for path in sorted((tmp_path / "b").rglob("*")) if path.is_file()} == written
    with pytest.raises(
        CheckpointError, match=r"holds the test of a checkpoint \(fit=false: its config\.yaml and csv/\)"
    ):
        train(cnnpl.compose([*FAST, f"ckpt_path={last}"], output_dir=str(tmp_path / "b")))  # continuing a there
    assert {path: path.read_bytes() for path in sorted((tmp_path / "b").rglob("*")) if path.is_file()} == written
    train(cnnpl.compose([*FAST, "fit=false", f"ckpt_path={last}"], output_dir=str(tmp_path / "b")))  # a test again
    # a run continuing a's checkpoint elsewhere, requeued by SLURM before its first checkpoint there: its own
    # config.yaml, and Lightning's hpc_ckpt_1.ckpt, which it resumes from
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "a" / "config.yaml", tmp_path / "c" / "config.yaml")
    shutil.copy(last, tmp_path / "c" / "hpc_ckpt_1.ckpt")
    train(cnnpl.compose([*FAST, "trainer.max_epochs=3", f"ckpt_path={last}"], output_dir=str(tmp_path / "c")))
    assert (tmp_path / "c" / "checkpoints" / "last.ckpt").is_file()
    # the checkpoint records its classes in label order: data whose labels mean other classes is refused
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["ShapesDataModule"] == {"class_names": SHAPE_CLASSES}
    checkpoint["ShapesDataModule"]["class_names"] = [*SHAPE_CLASSES[1:], SHAPE_CLASSES[0]]  # as if renamed
    torch.save(checkpoint, tmp_path / "renamed.ckpt")
    for fit in ("false", "true"):
        with pytest.raises(DataError) as caught:
            train(
                cnnpl.compose(
                    [*FAST, f"fit={fit}", f"ckpt_path={tmp_path / 'renamed.ckpt'}"], output_dir=str(tmp_path / "c")
                )
            )
        assert str(caught.value).startswith(
            f"checkpoint '{tmp_path / 'renamed.ckpt'}' was trained on the classes ['horizontal', 'diagonal', "
        ) and str(caught.value).endswith(
            "its labels would mean other classes; use the data it was trained on (the same class folder names)"
        )
    del checkpoint["ShapesDataModule"]  # an older cnnpl's checkpoint: taken as it is
    torch.save(checkpoint, tmp_path / "older.ckpt")
    train(cnnpl.compose([*FAST, "fit=false", f"ckpt_path={tmp_path / 'older.ckpt'}"], output_dir=str(tmp_path / "d")))


def test_a_restarted_attempt_sets_the_earlier_one_aside(tmp_path: Path) -> None:
    from cnnpl.checkpoint import set_aside_attempt

    logs = [tmp_path / "csv", tmp_path / "tensorboard"]
    assert set_aside_attempt(tmp_path, logs) is None  # no attempt here
    (tmp_path / "tensorboard").mkdir()  # an empty folder (a refused command's) is nothing to set aside
    assert set_aside_attempt(tmp_path, logs) is None
    for name in ("config.yaml", "csv/metrics.csv", "checkpoints/x", ".hydra/config.yaml", "notes/mine.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "cnnpl.log").write_text("this attempt's log")
    aside = set_aside_attempt(tmp_path, logs)
    assert aside == tmp_path / ".attempt-1"
    assert sorted(str(p.relative_to(aside)) for p in aside.rglob("*") if p.is_file()) == [
        "config.yaml",
        "csv/metrics.csv",
    ]
    # the run's checkpoints, Hydra's records, the log being written and the user's own files stay
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".attempt-1",
        ".hydra",
        "checkpoints",
        "cnnpl.log",
        "notes",
        "tensorboard",
    ]
    (tmp_path / "tensorboard" / "events").write_text("a second attempt's events, no config.yaml")
    assert set_aside_attempt(tmp_path, logs) == tmp_path / ".attempt-2"
    assert (tmp_path / ".attempt-2" / "tensorboard" / "events").is_file()


def test_the_run_config_is_written_once_by_process_zero_when_training_starts_or_a_checkpoint_comes_first() -> None:
    from types import SimpleNamespace

    from cnnpl.callbacks.guards import ConfigWriter

    writes: list[int] = []
    first, other = SimpleNamespace(is_global_zero=True), SimpleNamespace(is_global_zero=False)
    for trainer in (other, first):
        writer = ConfigWriter(lambda: writes.append(1))
        writer.on_save_checkpoint(trainer, None, {})  # SIGTERM during the sanity check saves before training
        writer.on_train_start(trainer, None)
        writer.on_fit_end(trainer, None)
    assert writes == [1]
    ConfigWriter(lambda: writes.append(2)).on_fit_end(first, None)  # a fit with nothing to train
    assert writes == [1, 2]


def test_a_fit_with_no_training_batch_is_refused_and_the_config_writer_still_covers_one(tmp_path: Path) -> None:
    # +trainer.limit_train_batches=0 once ran a fit with nothing to train (then tested the untrained network);
    # it is refused before anything is written now
    with pytest.raises(CnnplError, match=r"^trainer\.limit_train_batches=0 trains nothing"):
        train(cnnpl.compose([*FAST, "+trainer.limit_train_batches=0"], output_dir=str(tmp_path)))
    assert not (tmp_path / "config.yaml").exists()
    # a fit that ends without starting to train (a Trainer of one's own with nothing to train) writes it at its end
    from cnnpl.callbacks.guards import ConfigWriter

    written: list[int] = []
    writer = ConfigWriter(lambda: written.append(1))
    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", limit_train_batches=0)
    writer.on_fit_end(trainer, L.LightningModule())
    writer.on_fit_end(trainer, L.LightningModule())
    assert written == [1]  # once


def test_the_test_stage_evaluates_the_best_checkpoint(tmp_path: Path, monkeypatch) -> None:
    # the README's promise: train, then test the best checkpoint by val/acc (not the final weights)
    tested: list[tuple[Any, str]] = []
    test = L.Trainer.test

    def spy(self: L.Trainer, *args: Any, ckpt_path: Any = None, **kwargs: Any) -> Any:
        tested.append((ckpt_path, self.checkpoint_callback.best_model_path))
        return test(self, *args, ckpt_path=ckpt_path, **kwargs)

    monkeypatch.setattr(L.Trainer, "test", spy)
    train(cnnpl.compose([*FAST, "trainer.max_epochs=2"], output_dir=str(tmp_path)))
    [(ckpt_path, best)] = tested
    assert ckpt_path == best
    assert Path(best).parent == tmp_path / "checkpoints" and Path(best).name.startswith("epoch")


def test_a_new_run_is_refused_where_another_runs_checkpoints_are(tmp_path: Path) -> None:
    train(cnnpl.compose(FAST, output_dir=str(tmp_path)))
    written = contents(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose([*FAST, "model=lenet5"], output_dir=str(tmp_path)))
    assert str(caught.value).startswith(f"'{tmp_path / 'checkpoints'}' already holds the checkpoints of an earlier ")
    assert str(caught.value).endswith(
        "to continue that run give its own command again with ckpt_path=last, or start this one in a new folder "
        "(hydra.run.dir=<new folder>; output_dir= from Python)"
    )
    assert contents(tmp_path) == written


def test_continuing_another_runs_checkpoint_is_refused_where_a_run_already_is(tmp_path: Path) -> None:
    # a fork into a new folder works; into a folder with a run of its own it would mix the two runs
    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "x")))
    other = tmp_path / "x" / "checkpoints" / "last.ckpt"
    forked = [*FAST, "trainer.max_epochs=2", f"ckpt_path={other}"]
    train(cnnpl.compose(forked, output_dir=str(tmp_path / "fork")))
    assert safe_load(tmp_path / "fork" / "checkpoints" / "last.ckpt")["epoch"] == 1
    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "y")))
    written = contents(tmp_path / "y")
    with pytest.raises(CheckpointError) as caught:
        train(cnnpl.compose(forked, output_dir=str(tmp_path / "y")))
    assert str(caught.value).startswith(
        f"ckpt_path '{other}' is another run folder's checkpoint, but '{tmp_path / 'y' / 'checkpoints'}' already "
        "holds the checkpoints of the run there (epoch000-val_acc"
    )
    assert str(caught.value).endswith(
        "continue from it in a new folder (hydra.run.dir=<new folder>; output_dir= from Python) or in the run folder "
        "it came from"
    )
    assert contents(tmp_path / "y") == written


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # Lightning's: the best score is judged afresh there
def test_a_run_continues_from_its_own_checkpoint_into_another_checkpoint_folder(tmp_path: Path) -> None:
    # helper-127: its disk full, a run went on from its last.ckpt with callbacks.checkpoint.dirpath on another
    # disk, in its own folder; refused as "an earlier run ... that saved no checkpoint to continue from"
    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "run")))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    moved = [*FAST, "trainer.max_epochs=2", f"ckpt_path={last}", f"callbacks.checkpoint.dirpath={tmp_path / 'disk'}"]
    train(cnnpl.compose(moved, output_dir=str(tmp_path / "run")))
    assert safe_load(tmp_path / "disk" / "last.ckpt")["epoch"] == 1
    # helper-134: a dirpath of its own inside the run folder (${output_dir}/ckpts) is the run's too
    mine = [*FAST, f"callbacks.checkpoint.dirpath={tmp_path / 'own' / 'ckpts'}"]
    train(cnnpl.compose(mine, output_dir=str(tmp_path / "own")))
    own_last = tmp_path / "own" / "ckpts" / "last.ckpt"
    onward = [*FAST, "trainer.max_epochs=2", f"ckpt_path={own_last}", f"callbacks.checkpoint.dirpath={tmp_path / 'd2'}"]
    train(cnnpl.compose(onward, output_dir=str(tmp_path / "own")))
    assert safe_load(tmp_path / "d2" / "last.ckpt")["epoch"] == 1
    from cnnpl.train import _in_own_run

    assert not _in_own_run(tmp_path / "run" / "checkpoints" / "last.ckpt", tmp_path)  # a run nested in the folder
    # still refused: where the other folder holds checkpoints of its own
    written = contents(tmp_path / "disk")
    with pytest.raises(CheckpointError, match=f"^ckpt_path '{last}' is another run folder's checkpoint, but "):
        train(cnnpl.compose(moved, output_dir=str(tmp_path / "run")))
    assert contents(tmp_path / "disk") == written


def test_a_resume_mismatch_points_at_the_record_of_the_command_that_trained(tmp_path: Path) -> None:
    # each command given in a run folder leaves a record (.hydra, .hydra-2, ...), one refused by Hydra or
    # while another run wrote there too: the first here was refused, the second trained, a third refused after it
    from cnnpl.checkpoint import trained_overrides

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    for record, config in ((".hydra", "seed: 9\n"), (".hydra-2", "seed: 0\n"), (".hydra-10", "seed: 5\n")):
        (tmp_path / record).mkdir()
        (tmp_path / record / "config.yaml").write_text(config)
        (tmp_path / record / "overrides.yaml").write_text("[]\n")
    assert trained_overrides(tmp_path / "config.yaml") == tmp_path / ".hydra-2" / "overrides.yaml"  # was .hydra's
    (tmp_path / ".hydra-11").mkdir()  # trained again with the same settings, later: the newest such record
    (tmp_path / ".hydra-11" / "config.yaml").write_text("seed: 0\n")
    (tmp_path / ".hydra-11" / "overrides.yaml").write_text("[]\n")
    assert trained_overrides(tmp_path / "config.yaml") == tmp_path / ".hydra-11" / "overrides.yaml"
    (tmp_path / "config.yaml").write_text("seed: 1\n")  # no record matches: the first command's
    assert trained_overrides(tmp_path / "config.yaml") == tmp_path / ".hydra" / "overrides.yaml"


@pytest.mark.parametrize(
    ("first", "resume", "message"),
    [
        (
            [],
            ["optimizer=sgd", "data.batch_size=16"],
            r"but this command's settings differ from the ones it trained with: data\.batch_size \(run: 32, now: 16\), "
            r"optimizer\._target_ \(run: torch\.optim\.Adam, now: torch\.optim\.SGD\), optimizer\.lr "
            r"\(run: 0\.001, now: 0\.05\) and 1 more; give the command that trained it again, with this ckpt_path$",
            # (the Python API's run has no .hydra/overrides.yaml to name: the message named one all the same)
        ),
        # a component with other tensors: named as a setting, not as "3 tensors missing: ...lam_counts"
        ([], ["pool=mixed"], r"trained with: pool\.name \(run: max, now: mixed\); give the command"),
        (
            ["scheduler=onecycle"],
            ["scheduler=onecycle", "+trainer.limit_train_batches=5"],  # the schedule's length changes too
            r"trained with: trainer\.limit_train_batches \(run: <unset>, now: 5\); give the command",
        ),
        (
            ["scheduler=onecycle"],
            ["scheduler=onecycle", "trainer.max_epochs=3"],
            r"planned its learning-rate schedule \(cnnpl\.optim\.one_cycle\) over trainer\.max_epochs=1, this "
            r"command says 3; resume with trainer\.max_epochs=1 \(only a run with scheduler=none can be extended\)$",
        ),
    ],
)
def test_a_resume_with_other_settings_than_the_run_is_refused(
    tmp_path: Path, first: list[str], resume: list[str], message: str
) -> None:
    train(cnnpl.compose([*FAST, *first], output_dir=str(tmp_path)))
    written = contents(tmp_path)
    with pytest.raises(CheckpointError, match=message):
        train(cnnpl.compose([*FAST, *resume, "ckpt_path=last"], output_dir=str(tmp_path)))
    assert contents(tmp_path) == written
    # what a resume may change: where the data is, how long a constant-lr run trains, the callbacks
    train(
        cnnpl.compose(
            [*FAST, *first, "ckpt_path=last", "data.num_workers=0", "callbacks.progress_bar.refresh_rate=1"],
            output_dir=str(tmp_path),
        )
    )


def test_a_resume_that_forgot_the_data_names_the_setting_not_the_missing_data(tmp_path: Path) -> None:
    train(cnnpl.compose(FAST, output_dir=str(tmp_path)))
    others = [arg for arg in FAST if not arg.startswith("data")]
    resume = [*others, "data=cifar10", f"data.root={tmp_path / 'no-cifar-here'}", "ckpt_path=last"]
    with pytest.raises(CheckpointError) as caught:  # was "CIFAR-10 not found under ...: pass data.download=true"
        train(cnnpl.compose(resume, output_dir=str(tmp_path)))
    expected = (
        "settings differ from the ones it trained with: data._target_ (run: cnnpl.data.ShapesDataModule, now: "
        "cnnpl.data.CIFAR10DataModule)"
    )
    assert expected in str(caught.value), str(caught.value)


def test_the_test_after_a_fit_with_ema_scores_the_averaged_weights_val_acc_ranked(tmp_path: Path) -> None:
    """Lightning's EMAWeightAveraging, still holding its average after the fit, put the best checkpoint's raw
    weights back when the test loaded it (helper-97): the run's test/acc was that of the weights without EMA."""
    ema = ["+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging", "+callbacks.ema.decay=0.9"]
    fitted = train(cnnpl.compose([*FAST, "trainer.max_epochs=2", *ema], output_dir=str(tmp_path / "run")))
    (best,) = [p for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]
    saved = torch.load(best, weights_only=True)
    assert any(not torch.equal(saved["state_dict"][k], v) for k, v in saved["current_model_state"].items())
    tested = train(cnnpl.compose([*FAST, "fit=false", f"ckpt_path={best}"], output_dir=str(tmp_path / "test")))
    assert fitted["test/loss"] == tested["test/loss"]  # the checkpoint's state_dict: the average


@pytest.mark.slow  # the real command line
def test_a_refused_command_in_a_run_directory_keeps_that_runs_hydra_record(cli, tmp_path: Path) -> None:
    assert cli(*FAST).returncode == 0
    before = contents(tmp_path / "run")
    refused = cli(*FAST, "model=lenet5")  # a new run where the first one's checkpoints are
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("cnnpl: error: ")
    assert "already holds the checkpoints of an earlier run" in refused.stderr
    # the first run's files as they were, and no record of the refused command (its .hydra-2/ was left behind)
    assert contents(tmp_path / "run") == before
    assert cli(*FAST, "ckpt_path=last", "trainer.max_epochs=2").returncode == 0  # a command that trains keeps its own
    assert "- ckpt_path=last" in (tmp_path / "run" / ".hydra-2" / "overrides.yaml").read_text()


@pytest.mark.parametrize(
    ("first", "resume", "difference"),
    [
        (["scheduler=cosine"], [], r"scheduler \(run: cnnpl\.optim\.cosine, now: none\)"),
        ([], ["scheduler=onecycle"], r"scheduler \(run: none, now: cnnpl\.optim\.one_cycle\)"),
        (["+trainer.gradient_clip_val=1.0"], [], r"trainer\.gradient_clip_val \(run: 1\.0, now: <unset>\)"),
        ([], ["+trainer.accumulate_grad_batches=4"], r"trainer\.accumulate_grad_batches \(run: <unset>, now: 4\)"),
        ([], ["+optimizer.amsgrad=true"], r"optimizer\.amsgrad \(run: <unset>, now: True\)"),  # Adam's default: False
        (["+optimizer.amsgrad=true"], [], r"optimizer\.amsgrad \(run: True, now: <unset>\)"),
        (
            ["scheduler=cosine", "scheduler.warmup_fraction=0.1"],
            ["scheduler=cosine", "~scheduler.warmup_fraction"],  # left out: cosine's default 0.0 would apply
            r"scheduler\.warmup_fraction \(run: 0\.1, now: <unset>\)",
        ),
        # the schedule differs, not the max_epochs "it planned" (the run had none)
        ([], ["scheduler=onecycle", "trainer.max_epochs=3"], r"scheduler \(run: none, now: cnnpl\.optim\.one_cycle\)"),
        # helper-135: the checkpoint's optimizer holds the lr scaled for 2 processes, not the 0.05 x 1 of the table
        (
            ["trainer=ddp_cpu", "trainer.devices=2", "system.lr_scaling=linear"],
            ["trainer=ddp_cpu", "trainer.devices=1", "system.lr_scaling=linear"],
            r"trainer\.devices \(run: 2, now: 1\)",
        ),
        (  # the counts as they resolve: ddp_cpu's own devices, ${oc.decode:${oc.env:LOCAL_WORLD_SIZE,2}}, are 2
            ["trainer=ddp_cpu", "system.lr_scaling=linear"],
            ["trainer=ddp_cpu", "trainer.devices=1", "system.lr_scaling=linear"],
            r"trainer\.devices \(run: 2, now: 1\)",
        ),
    ],
)
def test_a_resume_that_adds_or_drops_a_schedule_or_a_trainer_setting_is_refused(
    tmp_path: Path, first: list[str], resume: list[str], difference: str
) -> None:
    """``scheduler=none`` composes to no keys, ``+trainer.*`` to a key only one side has: still differences."""
    from omegaconf import OmegaConf

    from cnnpl.checkpoint import check_resume_settings

    (tmp_path / "checkpoints").mkdir()
    OmegaConf.save(cnnpl.compose([*FAST, *first], output_dir=str(tmp_path)), tmp_path / "config.yaml", resolve=False)
    cfg = cnnpl.compose([*FAST, *resume, "ckpt_path=last"], output_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match=rf"differ from the ones it trained with: {difference}; give the command"):
        check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", cfg)
    same = cnnpl.compose([*FAST, *first, "ckpt_path=last"], output_dir=str(tmp_path))
    check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", same)
    if "trainer=ddp_cpu" in first and "trainer.devices=2" not in first:  # helper-138: 2 given, as it resolved
        given = cnnpl.compose([*FAST, *first, "trainer.devices=2", "ckpt_path=last"], output_dir=str(tmp_path))
        check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", given)


def test_a_setting_the_runs_config_lacks_is_no_difference(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from cnnpl.checkpoint import check_resume_settings

    cfg = cnnpl.compose(FAST, output_dir=str(tmp_path))
    older = OmegaConf.to_container(cfg, resolve=False)
    del older["system"]["label_smoothing"]  # as if written by a cnnpl without that setting
    (tmp_path / "checkpoints").mkdir()
    OmegaConf.save(OmegaConf.create(older), tmp_path / "config.yaml")
    check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", cfg)
    # absent from the run's config but at the default of what reads them: Adam's, the data module's
    # (through CIFAR10DataModule's **kwargs to its base), a registered model's, the LightningModule's
    del older["data"]["train_resize"], older["model"]["dropout"]
    older["system"]["a_removed_setting"] = 3  # as if a later cnnpl dropped it: nothing reads it now
    OmegaConf.save(OmegaConf.create(older), tmp_path / "config.yaml")
    amsgrad = cnnpl.compose([*FAST, "+optimizer.amsgrad=false"], output_dir=str(tmp_path))
    check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", amsgrad)
    older["system"]["tta_flip"], older["seed"] = True, 7  # free on resume / bound
    OmegaConf.save(OmegaConf.create(older), tmp_path / "config.yaml")
    with pytest.raises(CheckpointError, match=r"differ from the ones it trained with: seed \(run: 7, now: 42\); "):
        check_resume_settings(tmp_path / "checkpoints" / "last.ckpt", cfg)


def test_a_run_from_before_the_fused_step_resumes_with_it_and_a_resume_may_switch_it(tmp_path: Path) -> None:
    def implementation() -> list[Any]:
        groups = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]
        return [group["fused"] for group in groups["param_groups"]]

    train(cnnpl.compose([*FAST, "~optimizer.fused"], output_dir=str(tmp_path)))  # as an older cnnpl trained
    assert implementation() == [None]
    train(cnnpl.compose([*FAST, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    assert implementation() == [True]  # the configured step, not the one the loaded state names
    train(
        cnnpl.compose(
            [*FAST, "trainer.max_epochs=3", "ckpt_path=last", "optimizer.fused=false"], output_dir=str(tmp_path)
        )
    )
    assert implementation() == [False]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2


def test_testing_a_checkpoint_leaves_the_runs_config_and_a_requeued_slurm_job_resumes(tmp_path: Path, caplog) -> None:
    import shutil

    train(cnnpl.compose(FAST, output_dir=str(tmp_path)))
    config = (tmp_path / "config.yaml").read_bytes()
    # fit=false only tests: the run's config.yaml, which resumes are checked against, stays the training's
    with caplog.at_level("WARNING", logger="cnnpl.train"):
        train(cnnpl.compose([*FAST, "fit=false", "ckpt_path=last", "data.num_test=32"], output_dir=str(tmp_path)))
    assert (tmp_path / "config.yaml").read_bytes() == config
    assert not [r for r in caplog.records if "was trained with" in r.getMessage()]  # the test set's size: no word
    # helper-126: a test that scaled the pixels otherwise than the run gave 0.10 without a word
    with caplog.at_level("WARNING", logger="cnnpl.train"):
        train(cnnpl.compose([*FAST, "fit=false", "ckpt_path=last", "data.normalize=scale"], output_dir=str(tmp_path)))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert [r.getMessage() for r in caplog.records if "was trained with" in r.getMessage()] == [
        f"ckpt_path '{last}' was trained with data.normalize=standardize, this test has data.normalize=scale: its "
        "accuracy is of that data and scaling; to test what it trained on, give the run's own command plus "
        "fit=false ckpt_path=..."
    ]
    with warnings.catch_warnings(record=True) as caught:  # from another folder: Lightning's ModelCheckpoint warned
        warnings.simplefilter("always")
        train(cnnpl.compose([*FAST, "fit=false", f"ckpt_path={last}"], output_dir=str(tmp_path / "elsewhere")))
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    # Lightning resumes a requeued SLURM job from hpc_ckpt_N.ckpt by itself: not "another run's" checkpoints
    shutil.copy(tmp_path / "checkpoints" / "last.ckpt", tmp_path / "hpc_ckpt_1.ckpt")
    train(cnnpl.compose(FAST, output_dir=str(tmp_path)))


def test_a_checkpoint_of_other_data_is_refused_whichever_data_module_wrote_it(tmp_path: Path) -> None:
    # helper-126: a shapes checkpoint tested on CIFAR-10 gave 0.11 without a word (the class check looked for the
    # state under the testing data module's own name only)
    from cnnpl.checkpoint import saved_data_state

    shapes = {"class_names": ["circle", "square"]}
    assert saved_data_state({"ShapesDataModule": shapes}, "ShapesDataModule") is shapes
    assert saved_data_state({"ShapesDataModule": shapes, "state_dict": {}}, "CIFAR10DataModule") is shapes
    assert saved_data_state({"state_dict": {}}, "CIFAR10DataModule") is None
    train(cnnpl.compose(FAST, output_dir=str(tmp_path / "run")))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["OtherDataModule"] = checkpoint.pop("ShapesDataModule")  # as another data module would keep it
    checkpoint["OtherDataModule"]["class_names"] = [f"c{i}" for i in range(len(SHAPE_CLASSES))]
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(cnnpl.CnnplError, match=r"was trained on the classes \['c0', 'c1'"):
        train(
            cnnpl.compose([*FAST, "fit=false", f"ckpt_path={tmp_path / 'other.ckpt'}"], output_dir=str(tmp_path / "t"))
        )


def test_checkpoints_get_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "a.ckpt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.ckpt").stat().st_mode & 0o777 == 0o640  # mkstemp alone gives 0o600


# -- atomic checkpoints ----------------------------------------------------------------------------
class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle this")


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(1000.0)}, "epoch": 0}, path)
    before = path.read_bytes()
    # the tensors are written first, then pickling fails: a plain torch.save would leave half a file
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}, "epoch": 1, "bad": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left behind
    assert io.load_checkpoint(path)["epoch"] == 0


def test_interrupted_write_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"epoch": 0}, path)
    before = path.read_bytes()

    def write_half_then_fail(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(before[: len(before) // 2])
        raise error

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    for error in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):  # disk full, Ctrl-C
        with pytest.raises(type(error)):
            atomic_torch_save({"epoch": 1}, path)
        assert path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_temporary_file_of_a_save_killed_half_way_is_removed_by_the_next_save(tmp_path: Path, caplog) -> None:
    import socket

    path = tmp_path / "last.ckpt"
    atomic_torch_save({"epoch": 0}, path)
    before = path.read_bytes()
    killed = subprocess.run(  # SIGKILL: no clean-up runs
        [
            sys.executable,
            "-c",
            "import os, signal, sys, torch; from cnnpl.checkpoint import atomic_torch_save; "
            "torch.save = lambda obj, f: (f.write(b'half a checkpoint'), f.flush(), "
            "os.kill(os.getpid(), signal.SIGKILL)); "
            "atomic_torch_save({'epoch': 1}, sys.argv[1])",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].read_bytes() == b"half a checkpoint"
    assert path.read_bytes() == before
    # temporary files of a process still running, of another machine, and of no process: left alone
    alive = tmp_path / f".last.ckpt.{os.getppid()}@{socket.gethostname()}.abc123.tmp"
    dead = left[0].name.split(".")[3].split("@")[0]  # .last.ckpt.<pid>@<host>.<random>.tmp: the killed process
    other_host = tmp_path / f".last.ckpt.{dead}@not-{socket.gethostname()}.abc123.tmp"
    unknown = tmp_path / ".last.ckpt.mine.tmp"
    for keep in (alive, other_host, unknown):
        keep.write_bytes(b"")

    atomic_torch_save({"epoch": 2}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["last.ckpt", alive.name, other_host.name, unknown.name]
    )
    # helper-127: another machine's, kept without a word; one not written to for ten minutes is told of, once
    assert not [r for r in caplog.records if r.name == "cnnpl.files"]  # (a save of its own may be under way)
    an_hour_ago = time.time() - 3600
    os.utime(other_host, (an_hour_ago, an_hour_ago))
    with caplog.at_level("WARNING", logger="cnnpl.files"):
        atomic_torch_save({"epoch": 3}, path)
        atomic_torch_save({"epoch": 4}, path)
    assert [r.getMessage() for r in caplog.records if r.name == "cnnpl.files"] == [
        f"{other_host} (0 bytes) is a temporary file that process {dead} of machine not-{socket.gethostname()} began "
        "and has not written to for 60 minutes, most likely a save it did not finish; this machine cannot tell "
        "whether that process still runs: delete the file if it does not"
    ]
    assert other_host.exists()


def test_a_long_file_name_is_still_written_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 235 + ".ckpt")  # 241 bytes: room for the temporary file's own name only
    atomic_torch_save({"epoch": 3}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_full_disk_during_a_checkpoint_save_is_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "checkpoints").mkdir()
    path = tmp_path / "checkpoints" / "last.ckpt"
    atomic_torch_save({"epoch": 0}, path)
    before = path.read_bytes()

    def full_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        try:  # what torch.save raises: its zip writer's RuntimeError while handling the OSError
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1796800 vs 1796692")  # noqa: B904

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as caught:
        AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)
    assert str(caught.value) == (
        f"cannot write checkpoint '{path}': No space left on device; the file there before (if any) is unchanged; "
        f"make room there and resume with the run's command plus hydra.run.dir={tmp_path} ckpt_path=last, or go on "
        "on another disk: hydra.run.dir=<new folder> ckpt_path=<the run's checkpoints/last.ckpt>"  # helper-127
    )  # (it advised callbacks.checkpoint.dirpath=, which led nowhere)
    assert path.read_bytes() == before


class FailSavesInEpoch1(L.Callback):
    """Makes the checkpoints of epoch 1 (the second) unpicklable: their saves fail half-way through."""

    def __init__(self, record: str) -> None:
        self.record = Path(record)  # where to note the trainer's CheckpointIO, for the test to see

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.record.write_text(type(trainer.strategy.checkpoint_io).__name__)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.current_epoch == 1:
            checkpoint["bad"] = Unpicklable()


def test_a_run_without_the_checkpoint_callback_writes_no_checkpoints(tmp_path: Path) -> None:
    # Lightning would add its default ModelCheckpoint, writing where no resume or fresh-run check looks
    metrics = train(cnnpl.compose([*FAST, "~callbacks.checkpoint"], output_dir=str(tmp_path)))
    assert "test/acc" in metrics  # tested on the final weights
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_training_writes_checkpoints_atomically(tmp_path: Path) -> None:
    cfg = cnnpl.compose(
        [
            *FAST,
            "trainer.max_epochs=2",
            "+callbacks.fail._target_=tests.test_reliability.FailSavesInEpoch1",
            f"+callbacks.fail.record={tmp_path / 'io.txt'}",
            # a plugin of the user's own joins the atomic checkpoints, it does not replace them
            "+trainer.plugins=[{_target_:lightning.pytorch.plugins.environments.LightningEnvironment}]",
        ],
        output_dir=str(tmp_path),
    )
    with pytest.raises(RuntimeError, match="cannot pickle this"):
        train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert safe_load(last)["epoch"] == 0
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]
    assert (tmp_path / "io.txt").read_text() == "AtomicCheckpointIO"


def test_trainer_plugins_keep_the_atomic_checkpoints_unless_one_writes_checkpoints() -> None:
    from omegaconf import OmegaConf

    from cnnpl.train import _with_atomic_checkpoints

    env = {"_target_": "lightning.pytorch.plugins.environments.LightningEnvironment"}
    own_io = {"_target_": "lightning.pytorch.plugins.TorchCheckpointIO"}

    def built(plugins: object) -> list[str]:
        return [type(p).__name__ for p in _with_atomic_checkpoints(plugins)]

    assert built(None) == built([]) == ["AtomicCheckpointIO"]
    assert (
        built(OmegaConf.create([env])) == built(OmegaConf.create(env)) == ["LightningEnvironment", "AtomicCheckpointIO"]
    )
    assert built(OmegaConf.create([env, own_io])) == ["LightningEnvironment", "TorchCheckpointIO"]  # the user's choice


# -- SIGTERM and NaN -------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process, args = start_stalled_run(tmp_path, run_dir, [*FAST, "trainer.max_epochs=2"], epoch=1, batch=2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"cnnpl: SIGTERM received: saved {last} at epoch 1, step " in stderr
    assert "weights_only" not in stdout + stderr  # Lightning's "not set, defaulting to False", read as the loads'
    saved = safe_load(last)
    steps_per_epoch = 8  # 256 training images / 32
    assert saved["global_step"] == steps_per_epoch + 3  # batches 0..2 of epoch 1 done, the save is between batches
    assert saved["epoch"] == 1

    resumed = run_cli(*args, "ckpt_path=last", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = safe_load(last)
    assert final["global_step"] == 2 * steps_per_epoch and final["epoch"] == 1


@contextlib.contextmanager
def in_a_sweeps_job(sweep_dir: Path, *overrides: str) -> Iterator[None]:
    """Hydra's config of a job of a sweep into ``sweep_dir`` set, as inside ``python -m cnnpl -m``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from cnnpl.config import config_dir

    swept = ["hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep_dir}", *overrides]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        HydraConfig.instance().set_config(compose("train", overrides=swept, return_hydra_config=True))
    try:
        yield
    finally:
        HydraConfig.instance().cfg = None


def test_the_sigterm_advice_in_a_sweep_names_the_sweeps_folder(tmp_path: Path) -> None:
    from cnnpl.callbacks.guards import _how_to_resume

    assert _how_to_resume() == "resume with the same hydra.run.dir and ckpt_path=last"
    with in_a_sweeps_job(tmp_path / "pools"):  # a sweep has no hydra.run.dir of its own: was "the same hydra.run.dir"
        assert _how_to_resume() == (
            f"resume with the sweep's own command and hydra.sweep.dir={tmp_path / 'pools'} ckpt_path=last"
        )


def test_a_sweep_job_refused_for_an_earlier_runs_checkpoints_names_hydra_sweep_dir(tmp_path: Path) -> None:
    # note 43: a sweep into a used folder with its own hydra.sweep.subdir (each job's folder named by its pool) is
    # refused by its first job, whose advice named hydra.run.dir, which a sweep does not read
    from cnnpl.checkpoint import check_fresh_run_dir

    checkpoints = tmp_path / "pools" / "max" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"")
    with pytest.raises(CnnplError) as err:
        check_fresh_run_dir(checkpoints)
    assert str(err.value).endswith(
        "start this one in a new folder (hydra.run.dir=<new folder>; output_dir= from Python)"
    )
    with in_a_sweeps_job(tmp_path / "pools", "hydra.sweep.subdir=${pool.name}"), pytest.raises(CnnplError) as err:
        check_fresh_run_dir(checkpoints)
    assert str(err.value).endswith("start this one in a new folder (hydra.sweep.dir=<new folder> for the sweep)")


@pytest.mark.slow
def test_sigterm_during_the_test_exits_143_with_one_line(tmp_path: Path) -> None:
    # Lightning's evaluation loop raises SIGTERMException, a SystemExit without a status: exit 0 before
    run_dir = tmp_path / "run"
    args = [*FAST, "trainer.max_epochs=1", "data.eval_batch_size=16"]  # 4 test batches: stopped after the 1st
    process, _ = start_stalled_run(tmp_path, run_dir, args, epoch=1, batch=0, stage="test")  # epoch 1: fit done
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "cnnpl: SIGTERM received during the test of " in stderr
    assert "no test metrics; test a checkpoint again with the run's command plus fit=false" in stderr


POISON = '''
"""Test helper: turns one weight into NaN after a given training step."""
import lightning as L
import torch


class Poison(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))
'''


CTRL_C = '''
"""Test helper: Ctrl-C (SIGINT to this process) while the data is checked, or after a given training step."""
import os
import signal

import lightning as L

from cnnpl.data import ShapesDataModule


def ctrl_c() -> None:
    # Ctrl-C at a terminal: a shell's background job (pytest ... &) starts with SIGINT ignored, which Python keeps
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)


class Interrupt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            ctrl_c()


class InterruptedData(ShapesDataModule):
    def check(self) -> None:
        ctrl_c()
'''


FULL_DISK = '''
"""Test helper: a logger's write that the file system refuses (full) at the end of the first epoch."""
import errno

import lightning as L


class FullDisk(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/run/csv/metrics.csv")


class NoMemory(L.Callback):
    def on_train_start(self, trainer, pl_module):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes")
'''


def test_a_full_disk_under_a_log_and_no_memory_are_one_line(tmp_path: Path) -> None:
    # helper-127: config.yaml or a logger's file on a full disk gave a traceback of 42 to 102 lines
    (tmp_path / "full_disk.py").write_text(FULL_DISK)
    args = [*FAST, "+callbacks.full._target_=full_disk.FullDisk", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli(*args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (  # (the callback runs before the checkpoint's, which saves none)
        "cnnpl: error: the run stopped: cannot write /data/run/csv/metrics.csv: No space left on device; no "
        "checkpoint was saved yet: make room there and run it again in a new folder (hydra.run.dir=<new folder>)"
    )
    assert "Traceback" not in result.stderr
    # helper-127: the run's log did not say why it stopped
    assert result.stderr.strip().splitlines()[-1] in (tmp_path / "run" / "cnnpl.log").read_text()
    args = [*FAST, "+callbacks.full._target_=full_disk.NoMemory", f"hydra.run.dir={tmp_path / 'oom'}"]
    result = run_cli(*args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "cnnpl: error: the run ran out of memory (DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 "
        "bytes); run it again in a new folder (hydra.run.dir=<new folder>) with a smaller data.batch_size or a "
        "smaller network (python -m cnnpl.summary shows its size)"
    )


def test_a_run_stopped_by_an_error_no_check_foresaw_says_why_in_its_log(tmp_path: Path) -> None:
    # note 45: a bug, or one's own callback failing, ended cnnpl.log at the line before; only stderr had the traceback
    (tmp_path / "failing.py").write_text(
        "import lightning as L\n\n\nclass Fail(L.Callback):\n"
        "    def on_train_batch_end(self, *args):\n        raise RuntimeError('my callback failed')\n"
    )
    args = [*FAST, "+callbacks.fail._target_=failing.Fail", f"hydra.run.dir={tmp_path / 'run'}"]
    (tmp_path / "run").mkdir()
    earlier = tmp_path / "run" / "train_ddp_process_1.log"  # an earlier DDP run's: not this run's to name
    earlier.write_text("")
    os.utime(earlier, (time.time() - 3600, time.time() - 3600))
    result = run_cli(*args, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-2:] == [  # Hydra's traceback on the console, as before
        "RuntimeError: my callback failed",
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
    ]
    log = (tmp_path / "run" / "cnnpl.log").read_text()
    assert "[cnnpl][ERROR] - cnnpl: the run stopped on an error: RuntimeError: my callback failed\nTraceback" in log
    assert log.rstrip().endswith("\nRuntimeError: my callback failed")
    assert "in on_train_batch_end\n" in log  # the failing frame


def test_the_run_logs_headline_of_an_error_says_what_it_is() -> None:
    # helper-148: Hydra's "Error in call to target 'x':" ended the line at its colon; an empty message left
    # "ValueError: "
    from hydra.errors import InstantiationException

    from cnnpl.cli import _headline

    try:
        try:
            raise KeyError("x")
        except KeyError as cause:
            raise InstantiationException("Error in call to target 'failing.Fail':\nKeyError('x')") from cause
    except InstantiationException as err:
        assert _headline(err) == "InstantiationException: Error in call to target 'failing.Fail': KeyError: 'x'"
    assert _headline(ValueError()) == "ValueError"
    assert _headline(ValueError("\nsecond line")) == "ValueError: second line"
    assert _headline(RuntimeError("one\ntwo")) == "RuntimeError: one"


def test_ctrl_c_before_and_during_training_says_what_is_left(tmp_path: Path) -> None:
    # helper-127: before training, Python's 46-line KeyboardInterrupt traceback; in training, Lightning's
    # "Detected KeyboardInterrupt" and no word of how to go on
    (tmp_path / "ctrl_c.py").write_text(CTRL_C)
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli(
        *FAST, "data._target_=ctrl_c.InterruptedData", f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path, env=env
    )
    assert result.returncode == 130
    assert result.stderr.strip().splitlines()[-1] == (
        "cnnpl: interrupted (Ctrl-C) before this run's training started; nothing was trained"
    )
    assert "Traceback" not in result.stderr
    run = tmp_path / "b"
    interrupt = ["+callbacks.ctrl_c._target_=ctrl_c.Interrupt", "+callbacks.ctrl_c.step=10"]  # in epoch 1
    result = run_cli(*FAST, "trainer.max_epochs=3", *interrupt, f"hydra.run.dir={run}", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"cnnpl: interrupted (Ctrl-C); resume from its last checkpoint with the run's command plus hydra.run.dir={run} "
        "ckpt_path=last"
    )
    assert safe_load(run / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert result.stderr.strip().splitlines()[-1] in (run / "cnnpl.log").read_text()


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "poison_callback.py").write_text(POISON)
    result = run_cli(
        *FAST,
        "trainer.max_epochs=3",
        f"hydra.run.dir={tmp_path / 'run'}",
        "+callbacks.poison._target_=poison_callback.Poison",
        "+callbacks.poison.step=10",  # epoch 1, batch 1 has run: the next loss is NaN
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "cnnpl: error: the training loss became NaN at step 10 (epoch 1, batch 2); training stopped before this "
        f"step changed the weights, the last good checkpoint is {last}; lower optimizer.lr, add a scheduler "
        "warm-up or check the data, in a new run (hydra.run.dir=<new folder>): a resume keeps the run's settings"
    )  # helper-127: ckpt_path=last with a lower lr was refused (simple_cnn loads no weights file: no model.pretrained)
    saved = safe_load(last)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point())


def test_only_lightnings_log_lines_leave_a_refused_runs_log_unused() -> None:
    from cnnpl.cli import _OthersThanLightning

    others = _OthersThanLightning()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning_fabric.utilities.seed", "lightning"):
        others.handle(logging.LogRecord(name, logging.INFO, __file__, 1, "GPU available: False", None, None))
    assert others.count == 0
    for name in ("cnnpl.train", "my_plugin", "lightningish"):  # what else reaches the log keeps the run's folder
        others.handle(logging.LogRecord(name, logging.INFO, __file__, 1, "said", None, None))
    assert others.count == 3


def test_a_command_refused_inside_the_run_leaves_no_folder_and_one_that_trained_keeps_its_own(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"

    def run_folders() -> list[Path]:
        return [run for day in outputs.iterdir() for run in day.iterdir()] if outputs.is_dir() else []

    # refused by the data module and by a component, inside the run (after Hydra made its folder): no folder left
    for refused, words in (
        (["data.batch_size=-1"], "cnnpl: error: data.batch_size must be >= 1, got -1"),
        (["pool.kernel_size=-3", "hydra.job.chdir=true"], "cnnpl: error: layer features.block1.pool: pooling needs"),
        (  # was refused in the callback's setup, inside fit: its folder kept checkpoints/ and an empty event file
            ["logger=tensorboard", "callbacks=[minimal,gradcam]", "callbacks.gradcam.layer=classifier.1"],
            "cnnpl: error: callbacks.gradcam.layer: 'classifier.1' outputs (N, 256), not (N, C, h, w) maps",
        ),
        (  # once the Trainer exists, whose "GPU available: ..." lines went to the console and to cnnpl.log
            ["model=fast_net", "data.train_sizes=[24]", "trainer.max_epochs=3", "+trainer.max_steps=8"],
            "cnnpl: error: trainer.max_steps=8 ends the run in its 1st epoch",
        ),
    ):
        result = run_cli(*FAST, *refused, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(words), result.stderr
        assert not outputs.exists()  # nor outputs/<day>/, which it had made
    # stopped by a guard after it trained and wrote (NaN at step 2): the folder and what is in it stay
    (tmp_path / "poison_callback.py").write_text(POISON)
    poisoned = ["+callbacks.poison._target_=poison_callback.Poison", "+callbacks.poison.step=1"]
    result = run_cli(*FAST, *poisoned, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2 and "the training loss became NaN at step 1" in result.stderr, result.stderr
    (run,) = run_folders()
    assert {".hydra", "cnnpl.log", "config.yaml", "csv"} <= {p.name for p in run.iterdir()}
    # refused again: the day's folder, which it found, stays with the run in it
    result = run_cli(*FAST, "data.batch_size=-1", cwd=tmp_path)
    assert result.returncode == 2 and "data.batch_size must be >= 1" in result.stderr, result.stderr
    assert run_folders() == [run] and run.is_dir()


@pytest.mark.parametrize("shape", [(), (3,)], ids=["scalar", "several values"])
@pytest.mark.parametrize(
    ("bad", "what"), [(float("nan"), "NaN"), (float("inf"), "infinite"), (float("-inf"), "infinite")]
)
def test_the_loss_guard_stops_on_any_non_finite_loss_and_names_it(
    tmp_path: Path, shape: tuple[int, ...], bad: float, what: str
) -> None:
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False, accelerator="cpu")
    guard, module = FiniteLossGuard(), L.LightningModule()
    guard.on_before_backward(trainer, module, torch.full(shape, 2.5, requires_grad=True) * 2)  # finite: goes on
    loss = torch.full(shape, 2.5)
    loss[...] = bad  # every value, or (several values) the first only:
    if shape:
        loss[1:] = 2.5
    with pytest.raises(NonFiniteLossError, match=f"^the training loss became {what} at step 0 "):
        guard.on_before_backward(trainer, module, loss.requires_grad_() * 1)


# -- safe loading ----------------------------------------------------------------------------------
class Payload:
    """Unpickling this object creates ``path``: proof that code in a checkpoint ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (str(self.path), "w"))


def malicious_checkpoint(tmp_path: Path, system: torch.nn.Module | None = None) -> tuple[Path, Path]:
    marker = tmp_path / "payload_ran"
    state = system.state_dict() if system is not None else {"w": torch.zeros(2)}
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": state, "epoch": 0, "extra": Payload(marker)}, path)
    return path, marker


def test_the_payload_really_runs_under_a_plain_unpickler(tmp_path: Path) -> None:
    path, marker = malicious_checkpoint(tmp_path)
    torch.load(path, weights_only=False)  # what cnnpl never does
    assert marker.exists()


def test_safe_load_refuses_pickled_code(tmp_path: Path) -> None:
    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match=r"^refused to load checkpoint .*evil\.ckpt.*pickled Python"):
        safe_load(path)
    with pytest.raises(UnsafeCheckpointError):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


@pytest.mark.slow  # the real command line
def test_ckpt_path_with_pickled_code_is_refused_and_the_payload_does_not_run(cli, tmp_path: Path) -> None:
    path, marker = malicious_checkpoint(tmp_path)
    for extra in ([], ["fit=false"]):
        result = cli(*FAST, f"ckpt_path={path}", *extra)
        assert result.returncode == 2, result.stderr[-2000:]
        line = result.stderr.strip().splitlines()[-1]
        assert line == (
            f"cnnpl: error: refused to load checkpoint '{path}': it holds a pickled Python object (io.open), not only "
            "tensors and plain values; cnnpl loads checkpoints with torch.load(weights_only=True) so that a file "
            "cannot run code; load only checkpoints written by cnnpl, or re-save the weights alone with "
            "torch.save(model.state_dict(), path)"
        )
        assert not marker.exists()
        assert not (tmp_path / "run" / "checkpoints").exists()


def test_pretrained_weights_with_pickled_code_are_refused(tmp_path: Path) -> None:
    pretrained = pytest.importorskip("cnnpl.pretrained")
    path, marker = malicious_checkpoint(tmp_path)
    with pytest.raises(CnnplError) as caught:
        pretrained.read_state_dict(path)
    assert str(caught.value) == (
        f"refused to load pretrained weights '{path}': it holds a pickled Python object (io.open), not only tensors "
        "and plain values; cnnpl loads pretrained weights with torch.load(weights_only=True) so that a file cannot "
        "run code; re-save the weights alone with torch.save(model.state_dict(), path)"
    )
    model = cnnpl.build("model", "simple_cnn", num_classes=10)
    with pytest.raises(CnnplError):
        pretrained.load_pretrained(model, path)
    assert not marker.exists()


# -- checkpoints that do not fit -------------------------------------------------------------------
def lightning_checkpoint(tmp_path: Path, model: str, num_classes: int) -> Path:
    from cnnpl.system import ImageClassifier

    system = ImageClassifier(cnnpl.build("model", model, num_classes=num_classes), num_classes)
    path = tmp_path / f"{model}_{num_classes}.ckpt"
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams), "epoch": 0}, path)
    return path


@pytest.mark.slow  # the real command line
def test_checkpoint_of_another_architecture_is_one_clear_line(cli, tmp_path: Path) -> None:
    path = lightning_checkpoint(tmp_path, "lenet5", 10)
    result = cli(*FAST, f"ckpt_path={path}")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"cnnpl: error: checkpoint '{path}' does not fit this model (SimpleCNN): ")
    assert "tensors missing: net.features.block1.conv.weight" in line
    assert line.endswith("; use the model, data and component settings it was trained with")
    assert "Traceback" not in result.stderr


def test_checkpoint_for_another_number_of_classes_is_refused(tmp_path: Path) -> None:
    from cnnpl.system import ImageClassifier

    path = lightning_checkpoint(tmp_path, "simple_cnn", 5)
    system = ImageClassifier(cnnpl.build("model", "simple_cnn", num_classes=10), 10)
    with pytest.raises(CheckpointError, match=r"it was trained for 5 classes, this data has 10; 2 tensors with"):
        check_checkpoint_fits(path, system)
    check_checkpoint_fits(lightning_checkpoint(tmp_path, "simple_cnn", 10), system)  # a fitting one passes


def test_a_truncated_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    good = lightning_checkpoint(tmp_path, "simple_cnn", 10)
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"^cannot read checkpoint .*truncated\.ckpt'?: it is not a complete "):
        safe_load(bad)
    with pytest.raises(CheckpointError) as err:  # helper-137: a whole one beside it was not named
        safe_load(bad)
    assert str(err.value).endswith(
        f"; give a .ckpt written by cnnpl or Lightning (or go on from another of its folder: ckpt_path={good})"
    )
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    not_torch = r"it is not a file written by torch\.save \(Unsupported operand 110\); give a \.ckpt"
    with pytest.raises(CheckpointError, match=not_torch):
        safe_load(text)
    text.write_text("hello\n")  # torch: KeyError: 101 (the byte "e")
    with pytest.raises(CheckpointError, match=r"\(neither a zip archive nor an old-style torch file\); give a \.ckpt"):
        safe_load(text)
    with pytest.raises(CheckpointError, match=r"is a folder; give a checkpoint file \(a \.ckpt\) in it$"):
        safe_load(tmp_path)


# -- bad input before training ---------------------------------------------------------------------
def test_an_output_directory_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = cnnpl.compose(FAST, output_dir=str(blocker / "run"))
    with pytest.raises(CnnplError, match=r"output directory .*a_file/run' cannot be written .*hydra\.run\.dir="):
        train(cfg)
    assert blocker.read_text() == "not a folder"


def test_a_full_disk_is_refused_before_hydra_writes_there(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from cnnpl.train import check_writable

    class FullDisk(io.BytesIO):  # a file system with no block left still makes empty files
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: FullDisk())
    with pytest.raises(CnnplError) as err:  # was Hydra's traceback, and a truncated .hydra/config.yaml
        check_writable(tmp_path / "run")
    assert str(err.value) == (
        f"output directory '{tmp_path / 'run'}' cannot be written (No space left on device); choose another with "
        "hydra.run.dir=<folder> (or output_dir=<folder> from Python)"
    )


def test_a_read_only_run_folder_is_told_how_to_go_on_from_its_checkpoint(tmp_path: Path, monkeypatch) -> None:
    # helper-127: a resume there was told to choose another hydra.run.dir, where ckpt_path=last finds nothing
    import tempfile

    from cnnpl.cli import _check_run_dir
    from cnnpl.train import check_writable

    def read_only(**_: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    resume = (
        f"output directory '{tmp_path / 'run'}' cannot be written (Read-only file system); make it writable, or go on "
        f"in another folder: hydra.run.dir=<new folder> ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"
    )
    for check in (
        lambda: check_writable(tmp_path / "run", ckpt_path="last"),
        lambda: _check_run_dir([f"hydra.run.dir={tmp_path / 'run'}", "ckpt_path=last"]),
    ):
        with pytest.raises(CnnplError) as err:
            check()
        assert str(err.value) == resume
    (tmp_path / "run" / "checkpoints" / "last.ckpt").rename(tmp_path / "run" / "checkpoints" / "last-v1.ckpt")
    with pytest.raises(CnnplError, match=r"ckpt_path=.*/checkpoints/last-v1\.ckpt$"):  # as ckpt_path=last finds it
        check_writable(tmp_path / "run", ckpt_path="last")
    with pytest.raises(CnnplError) as err:  # a new run there, or one from a file of its own: another folder
        check_writable(tmp_path / "run", ckpt_path=str(tmp_path / "run" / "checkpoints" / "last-v1.ckpt"))
    assert str(err.value).endswith("choose another with hydra.run.dir=<folder> (or output_dir=<folder> from Python)")


def test_a_folder_removed_between_its_making_and_the_probe_is_made_again(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    from cnnpl.train import check_writable

    real, calls = tempfile.TemporaryFile, []

    def removed_first(**kwargs: Any) -> Any:  # another command refused in outputs/<day>/ removes it (cnnpl.cli)
        calls.append(kwargs["dir"])
        if len(calls) == 1:
            Path(kwargs["dir"]).rmdir()
        return real(**kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", removed_first)
    check_writable(tmp_path / "day")  # was "cannot be written (No such file or directory)"
    assert (tmp_path / "day").is_dir() and len(calls) == 2


def test_a_process_group_backend_torch_lacks_is_refused() -> None:
    # helper-135: "AssertionError: Unknown backend type glooo" once the processes had started
    from cnnpl.train import check_process_group

    strategy = {"_target_": "lightning.pytorch.strategies.DDPStrategy"}
    with pytest.raises(CnnplError) as err:
        check_process_group({"strategy": {**strategy, "process_group_backend": "glooo"}}, "cpu")
    assert re.fullmatch(
        r"trainer\.strategy\.process_group_backend=glooo is not a backend this torch has; it has gloo(, \w+)* "
        r"\(gloo for CPUs: trainer=ddp_cpu; nccl for GPUs: trainer=ddp\)",
        str(err.value),
    )  # (which others it has depends on the build: nccl on a CUDA one)
    check_process_group({"strategy": {**strategy, "process_group_backend": "cpu:gloo"}}, "cpu")  # torch's form too


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs must be an integer, got 'abc'"),
        # Lightning's "Error in call to target ...: `max_epochs` must be a non-negative integer or -1", naming no key
        ("trainer.max_epochs=-2", "trainer.max_epochs must be >= -1 (-1: no limit), got -2"),
        ("trainer.num_nodes=0", "trainer.num_nodes must be >= 1 (the machines the run spans), got 0"),
        ("seed=-5", "seed must be an integer in [0, 4294967295] (NumPy's range), got -5"),
        ("seed=true", "seed must be an integer in [0, 4294967295] (NumPy's range), got true"),  # not data.seed
        ("keep_freed_memory=sometimes", "keep_freed_memory must be true or false, got 'sometimes'"),
        (
            "callbacks.checkpoint.monitor=val/accuracy",
            "ModelCheckpoint(monitor='val/accuracy') watches a metric that is never logged; did you mean val/acc? "
            "cnnpl logs train/loss_step, train/loss_epoch, train/acc, val/loss, val/acc, val/acc_top5 "
            "(val/acc_top5 with more than 5 classes)",
        ),
        ("fit=maybe", "fit must be true or false, got 'maybe'"),
        ("+trainer.num_sanity_val_steps=abc", "trainer.num_sanity_val_steps must be an integer, got 'abc'"),
        (
            "+trainer.gradient_clip_val=-1",
            "trainer.gradient_clip_val must be a number >= 0 (0: no clipping; 1.0 is usual), got -1",
        ),
        (
            "+trainer.check_val_every_n_epoch=2",
            "trainer.check_val_every_n_epoch=2 with trainer.max_epochs=1: validation would never run, so no best "
            "checkpoint would be kept and the test would take the last weights; validate at most every 1 epochs, or "
            "hold out no validation split (data.val_split=0) to test the last epoch",
        ),
        (
            "+trainer.val_check_interval=100",
            "trainer.val_check_interval=100 is more than the 8 training batches of an epoch, so validation would never "
            "run; give at most 8, or a fraction of the epoch such as 0.5",
        ),
        (
            "+trainer.limit_train_batches=0.05",
            "trainer.limit_train_batches=0.05 of the 8 training batches an epoch is less than one batch; give at least "
            "0.125, or a whole number of batches (+trainer.limit_train_batches=5)",
        ),
        (  # Lightning's traceback after the whole fit
            "data.eval_batch_size=16 +trainer.limit_test_batches=0.2",
            "trainer.limit_test_batches=0.2 of the 4 test batches is less than one batch; give at least 0.25, or a "
            "whole number of batches (+trainer.limit_test_batches=2)",
        ),
        (  # Lightning's traceback in the sanity check
            "+trainer.limit_val_batches=0.5",
            "trainer.limit_val_batches=0.5 of the 1 validation batch is less than one batch; give at least 1.0, or a "
            "whole number of batches (+trainer.limit_val_batches=2)",
        ),
        (  # helper-152: it named trainer.limit_val_batches, which Lightning takes from overfit_batches
            "data.eval_batch_size=8 +trainer.overfit_batches=0.05",
            "trainer.overfit_batches=0.05 of the 8 validation batches is less than one batch; give at least 0.125, or "
            "a whole number of batches (+trainer.overfit_batches=2)",
        ),
        # helper-153: these kept and tested the worst checkpoint, silently
        (
            "callbacks.checkpoint.monitor=val/loss",
            "ModelCheckpoint(monitor='val/loss', mode='max') counts the highest val/loss as the best, and a lower one "
            "is better: give it mode=min (callbacks.checkpoint.mode=min)",
        ),
        (
            "callbacks.checkpoint.mode=min",
            "ModelCheckpoint(monitor='val/acc', mode='min') counts the lowest val/acc as the best, and a higher one "
            "is better: give it mode=max (callbacks.checkpoint.mode=max)",
        ),
        (  # the callback's own key (note 48: callbacks.<name>)
            "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping +callbacks.stop.monitor=val/loss "
            "+callbacks.stop.mode=max",
            "EarlyStopping(monitor='val/loss', mode='max') counts the highest val/loss as the best, and a lower one "
            "is better: give it mode=min (callbacks.stop.mode=min)",
        ),
        (  # helper-153: a traceback as the fit started
            "+callbacks.ft._target_=lightning.pytorch.callbacks.BackboneFinetuning",
            "callbacks.ft: Lightning's BackboneFinetuning freezes and later unfreezes the LightningModule's "
            "`backbone`, which cnnpl's ImageClassifier does not have; train the classifier of pretrained weights with "
            "model.freeze_features=true, then all of it in a second run from that run's checkpoint "
            "(docs/howto/finetune.md)",
        ),
        (  # helper-154: Lightning's "could not find the monitored key" at the first epoch's end
            "callbacks.checkpoint.monitor=train/loss_step callbacks.checkpoint.mode=min",
            "ModelCheckpoint(monitor='train/loss_step') watches a metric of each step, which a checkpoint saved at an "
            "epoch's end does not see; monitor train/loss_epoch, or save every N steps "
            "(callbacks.checkpoint.every_n_train_steps=N)",
        ),
        (  # helper-154: Lightning wrote 0 for it, silently
            'callbacks.checkpoint.filename="e{epoch}-{train/loss_step:.3f}"',
            "ModelCheckpoint(filename='e{epoch}-{train/loss_step:.3f}') names train/loss_step, a metric of each step, "
            "which a checkpoint saved at an epoch's end does not see; name train/loss_epoch, or save every N steps "
            "(callbacks.checkpoint.every_n_train_steps=N)",
        ),
        (  # helper-153: Lightning's traceback at the first save, an epoch into training
            'callbacks.checkpoint.filename="{epoch"',
            "ModelCheckpoint(filename='{epoch') is not a name template Lightning can fill (ValueError: expected '}' "
            'before end of string); write e.g. callbacks.checkpoint.filename="epoch{epoch:03d}-val_acc{val/acc:.4f}"',
        ),
        (
            'callbacks.checkpoint.filename="{epoch:d}-{val/acc:d}"',
            "ModelCheckpoint(filename='{epoch:d}-{val/acc:d}') is not a name template Lightning can fill (ValueError: "
            "Unknown format code 'd' for object of type 'float'); write e.g. "
            'callbacks.checkpoint.filename="epoch{epoch:03d}-val_acc{val/acc:.4f}"',
        ),
        (  # Lightning wrote 0 for it, silently: e0-0.000.ckpt
            'callbacks.checkpoint.filename="e{epoch}-{val/accuracy:.3f}"',
            "ModelCheckpoint(filename='e{epoch}-{val/accuracy:.3f}') names val/accuracy, a metric that is never "
            "logged; did you mean val/acc? cnnpl logs train/loss_step, train/loss_epoch, train/acc, val/loss, val/acc, "
            "val/acc_top5 (val/acc_top5 with more than 5 classes); write e.g. "
            'callbacks.checkpoint.filename="epoch{epoch:03d}-val_acc{val/acc:.4f}"',
        ),
        (  # helper-153: Lightning stopped before the first step, and the test scored the untrained network
            "+trainer.max_time={minutes:-1}",
            "trainer.max_time={minutes:-1} trains nothing (and the test would score an untrained network); give a time "
            "longer than 0, as DD:HH:MM:SS (+trainer.max_time=00:00:10:00 for 10 minutes), or fit=false "
            "ckpt_path=<file> to test a checkpoint",
        ),
        (
            "+trainer.max_time=00:00:00:00",
            "trainer.max_time=00:00:00:00 trains nothing (and the test would score an untrained network); give a time "
            "longer than 0, as DD:HH:MM:SS (+trainer.max_time=00:00:10:00 for 10 minutes), or fit=false "
            "ckpt_path=<file> to test a checkpoint",
        ),
        (  # helper-153: ZeroDivisionError at the first training step
            "+logger.flush_logs_every_n_steps=0",
            "logger.flush_logs_every_n_steps must be >= 1 (write the logs every N steps), got 0",
        ),
        (  # helper-153: Lightning's refusal named neither setting
            "+trainer.enable_progress_bar=false",
            "trainer.enable_progress_bar=false turns the progress bar off, but callbacks.progress_bar draws one; drop "
            "it instead: ~callbacks.progress_bar",
        ),
        (  # helper-153: Lightning's refusal of the logger, with the object's repr
            "+trainer.barebones=true",
            "trainer.barebones=true is Lightning's mode for timing the bare loop, which refuses what a cnnpl run does "
            "(logging, checkpoints, the progress bar, the model summary, the sanity check, the test of the best "
            "checkpoint); drop it. benchmarks/bench_overhead_paired.py times Lightning's barebones loop beside "
            "cnnpl's (docs/benchmarks.md)",
        ),
        (  # helper-153: ignored, silently (the run stopped at max_epochs)
            "+trainer.min_epochs=3",
            "trainer.min_epochs=3 is more than trainer.max_epochs=1, which ends the run first; give "
            "trainer.max_epochs=3 (or more) to train at least 3 epochs",
        ),
        (  # helper-153: torch's RuntimeError in the forward, blamed on the components' shapes
            "act=gelu act.approximate=fast",
            "act.approximate must be none or tanh, got 'fast' (act 'gelu')",
        ),
        # true as typed, where the config's text node holds 'True'
        ("act=gelu act.approximate=true", "act.approximate must be none or tanh, got true (act 'gelu')"),
        # these three were Lightning's ZeroDivisionError traceback, mid-fit, with config.yaml already written
        (
            "+trainer.accumulate_grad_batches=0",
            "trainer.accumulate_grad_batches must be >= 1 (1: no accumulation), got 0",
        ),
        (
            "+trainer.check_val_every_n_epoch=0",
            "trainer.check_val_every_n_epoch must be >= 1 (or null: by val_check_interval only), got 0",
        ),
        (
            "+trainer.val_check_interval=0",
            "trainer.val_check_interval must be > 0: a number of training batches (>= 1) or a fraction of the epoch "
            "in (0, 1], got 0",
        ),
        (  # was ImageClassifier's TypeError traceback
            "+system.label_smothing=0.1",
            "system.label_smothing is not an argument of cnnpl.system.ImageClassifier; did you mean "
            "system.label_smoothing?",
        ),
        ("+logger.nam=x", "logger.nam is not an argument of cnnpl.loggers.CSVLogger; did you mean logger.name?"),
        (
            "+data.batchsize=3",
            "data.batchsize is not an argument of cnnpl.data.ShapesDataModule; did you mean data.batch_size?",
        ),
        ("trainer.deterministic=maybe", "trainer.deterministic must be true, false, warn or null, got 'maybe'"),
        # Lightning's numbers: a traceback in the sanity check, or mid-run (EarlyStopping's patience after epochs)
        (
            "callbacks.progress_bar.refresh_rate=abc",
            "callbacks.progress_bar.refresh_rate must be an integer, got 'abc'",
        ),
        ("+logger.flush_logs_every_n_steps=abc", "logger.flush_logs_every_n_steps must be an integer, got 'abc'"),
        ("+trainer.gradient_clip_val=true", "trainer.gradient_clip_val must be a number, got true"),
        ("trainer.enable_model_summary=1", "trainer.enable_model_summary must be true, false or null, got 1"),
        (
            "callbacks.checkpoint.save_last=maybe",
            "callbacks.checkpoint.save_last must be true, false, link or null, got 'maybe'",
        ),
        (
            "trainer.max_epochs=0",
            "trainer.max_epochs=0 trains nothing (and the test would score an untrained network); give "
            "trainer.max_epochs >= 1, or fit=false ckpt_path=<file> to test a checkpoint",
        ),
        (
            "system.tta_translate=100",
            "system.tta_translate=100 shifts the 32x32 images by their whole side or more: use a shift below 32 "
            "(experiment=fast_cifar10 uses 1), or 0 for none",
        ),
        (
            "trainer.precision=64-true",
            "trainer.precision=64-true casts the network to float64, but cnnpl's data modules hand it float32 images "
            "(normalised after Lightning converts a batch), so the first step would fail; use "
            "trainer.precision=32-true (the default) or bf16-mixed (float32 weights, bfloat16 computation)",
        ),
        pytest.param(
            "trainer.accelerator=gpu",
            "trainer.accelerator=gpu but this machine has no usable GPU (torch.cuda.is_available() is False); train "
            "on the CPU with trainer=ddp_cpu for several processes, or trainer.accelerator=cpu for one",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
        pytest.param(  # helper-135: trainer.accelerator=cpu, as that said, then failed in NCCL with a traceback
            "trainer=ddp",
            "trainer.accelerator=gpu but this machine has no usable GPU (torch.cuda.is_available() is False); train "
            "on the CPU with trainer=ddp_cpu for several processes",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
        (
            "trainer.strategy=gloo",
            "trainer.strategy=gloo names a process-group backend, not a strategy: use trainer=ddp_cpu (ddp over gloo, "
            "for CPUs) or trainer=ddp (over nccl, for GPUs)",
        ),
        (  # helper-135/137: Lightning ran bf16-mixed, with a warning of several lines; config.yaml said 16-mixed
            "trainer.precision=16-mixed trainer.accelerator=cpu",
            "trainer.precision=16-mixed on the CPU runs as bf16-mixed (Lightning's choice: float16 autocast is for "
            "GPUs), which the run's config would not say; write trainer.precision=bf16-mixed, or 32-true",
        ),
        (
            "trainer=ddp trainer.accelerator=cpu",
            "trainer.strategy.process_group_backend=nccl runs on GPUs only, and this run's accelerator is cpu; for "
            "several processes on the CPU use trainer=ddp_cpu (gloo)",
        ),
        (
            "trainer=ddp_cpu trainer.strategy.timeout.minutes=0",
            "trainer.strategy.timeout must be a time span longer than 0 (how long a collective waits for a stuck "
            "peer), got {_target_:datetime.timedelta,minutes:0}; write trainer.strategy.timeout.minutes=10",
        ),
        (
            "trainer=ddp_cpu trainer.strategy.timeout=30",
            "trainer.strategy.timeout must be a time span longer than 0 (how long a collective waits for a stuck "
            "peer), got 30; write trainer.strategy.timeout.minutes=10",
        ),
    ],
)
def test_out_of_range_settings_fail_before_training(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(CnnplError) as caught:
        train(cnnpl.compose([*FAST, *override.split()], output_dir=str(tmp_path)))
    assert str(caught.value) == message
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()


def test_backbone_finetuning_is_refused_only_where_it_reads_a_backbone_the_module_lacks() -> None:
    from lightning.pytorch.callbacks import BackboneFinetuning
    from torch import nn

    from cnnpl.train import check_callbacks_network

    class OwnFreeze(BackboneFinetuning):  # keeps Lightning's on_fit_start, which demands `backbone`
        def freeze_before_training(self, pl_module):
            self.freeze(pl_module.net)

        def finetune_function(self, pl_module, epoch, optimizer):
            pass

    class OnItsNetwork(OwnFreeze):  # helper-155: Lightning's schedule kept, none of its backbone reads
        def on_fit_start(self, trainer, pl_module):
            pass

    without, with_backbone = nn.Module(), nn.Module()
    with_backbone.backbone = nn.Linear(2, 2)
    with pytest.raises(CnnplError) as err:
        check_callbacks_network([BackboneFinetuning()], without)
    assert str(err.value).startswith(
        "callbacks.<name>: Lightning's BackboneFinetuning freezes and later unfreezes the LightningModule's "
        "`backbone`, which cnnpl's ImageClassifier does not have; train the classifier"
    )
    with pytest.raises(CnnplError) as err:
        check_callbacks_network([OwnFreeze()], without)
    assert str(err.value).startswith(
        "callbacks.<name>: OwnFreeze keeps BackboneFinetuning's on_fit_start, which reads the LightningModule's "
        "`backbone`, which cnnpl's ImageClassifier does not have; override it to work on its network, or train "
    )
    check_callbacks_network([OnItsNetwork()], without)
    check_callbacks_network([BackboneFinetuning(), OwnFreeze()], with_backbone)


def test_the_checkpoint_checks_of_a_fit_leave_a_run_that_only_tests() -> None:
    # helper-154: fit=false ckpt_path=... callbacks.checkpoint.mode=min tested before, and saves nothing
    from lightning.pytorch.callbacks import ModelCheckpoint

    from cnnpl.train import check_monitors

    saving = ModelCheckpoint(monitor="val/acc", mode="min", filename="{val_acc:.3f}")
    check_monitors([saving], fits=False)
    with pytest.raises(CnnplError, match=r"^ModelCheckpoint\(monitor='val/acc', mode='min'\) counts the lowest"):
        check_monitors([saving])
    every = ModelCheckpoint(monitor="train/loss_step", every_n_train_steps=10, filename="{train/loss_step:.3f}")
    check_monitors([every])  # saved every 10 steps: it sees the step's loss


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla is installed")
def test_an_accelerator_whose_package_is_missing_is_one_line_before_training(tmp_path: Path) -> None:
    # Lightning's ModuleNotFoundError reached Hydra's four-line "Error in call to target" report
    with pytest.raises(CnnplError, match=r"^Error in call to target .*Trainer': Requirement 'torch_xla.*' not met"):
        train(cnnpl.compose([*FAST, "trainer.accelerator=tpu"], output_dir=str(tmp_path)))
    assert not (tmp_path / "checkpoints").exists()


class SwallowingData(L.LightningDataModule):
    """A user's data module that takes and ignores any settings (data=shapes' among them)."""

    def __init__(self, **_: Any) -> None:
        super().__init__()


def test_a_users_own_data_module_is_not_refused_the_settings_it_swallows() -> None:
    # its **_ ends the keyword chain: LightningDataModule takes none of data=shapes' settings
    from cnnpl.train import check_settings

    check_settings(cnnpl.compose([*FAST, f"data._target_={__name__}.SwallowingData"]))


def test_a_target_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CnnplError) as caught:  # was three lines, one of them a hint that showed nothing more
        train(cnnpl.compose([*FAST, "logger._target_=nosuch.Logger"], output_dir=str(tmp_path)))
    assert str(caught.value) == (
        "logger._target_=nosuch.Logger: no module named 'nosuch'; install the package that has it, or give the "
        "dotted path of an importable class or function"
    )


def test_a_tensorboard_loggers_unknown_setting_fails_before_training(tmp_path: Path) -> None:
    # Lightning hands the logger's other keywords to SummaryWriter at the first log: it was a TypeError
    # traceback mid-run; a SummaryWriter setting (flush_secs) is one of the logger's
    cfg = cnnpl.compose([*TINY, "callbacks=minimal", "+logger.nam=x"], output_dir=str(tmp_path))
    with pytest.raises(CnnplError) as caught:
        train(cfg)
    assert str(caught.value) == (
        "logger.nam is not an argument of lightning.pytorch.loggers.TensorBoardLogger; did you mean logger.name?"
    )
    assert not (tmp_path / "tensorboard").exists()
    from cnnpl.train import check_settings

    check_settings(cnnpl.compose([*TINY, "callbacks=minimal", "+logger.flush_secs=30"]))


def test_checkpoint_and_logger_settings_that_fail_at_the_first_save_fail_before_training(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    cases = [
        (
            f"callbacks.checkpoint.dirpath={tmp_path / 'afile' / 'sub'}",
            f"folder '{tmp_path / 'afile' / 'sub'}' cannot be written ('{tmp_path / 'afile'}' is a file, not a "
            "folder); choose another with "
            "callbacks.checkpoint.dirpath=<folder>",
        ),
        (
            f"logger.save_dir={tmp_path / 'afile'}",
            f"folder '{tmp_path / 'afile'}' cannot be written ('{tmp_path / 'afile'}' is a file, not a folder); "
            "choose another with "
            "logger.save_dir=<folder>",
        ),
        (
            "callbacks.checkpoint.monitor=test/acc",
            "ModelCheckpoint(monitor='test/acc') watches a test metric, which exists only after training; monitor one "
            "of train/loss_step, train/loss_epoch, train/acc, val/loss, val/acc, val/acc_top5",
        ),
        (
            "callbacks.checkpoint.monitor=valacc",
            "ModelCheckpoint(monitor='valacc') watches a metric that is never logged; did you mean val/acc? cnnpl logs "
            "train/loss_step, train/loss_epoch, train/acc, val/loss, val/acc, val/acc_top5 (val/acc_top5 with more "
            "than 5 classes)",
        ),
        (
            "callbacks.checkpoint.filename={epoch:03d}",
            "callbacks.checkpoint.filename={'epoch': '03d'} is not text: Hydra reads an override value in braces as "
            "a mapping; quote it, e.g. 'callbacks.checkpoint.filename=\"{epoch:03d}\"'",
        ),
    ]
    for override, message in cases:
        run = tmp_path / "run"
        with pytest.raises(CnnplError) as caught:
            train(cnnpl.compose([*FAST, override], output_dir=str(run)))
        assert str(caught.value) == message
        assert not (run / "checkpoints").exists() and not (run / "csv").exists()
    from types import SimpleNamespace

    from cnnpl.train import check_monitors

    check_monitors([SimpleNamespace(monitor=name) for name in ("my_plugin_metric", "acc", "val/acc")])  # allowed
    # nothing validated: an EarlyStopping on val/acc failed after the first epoch ("not available")
    early = [*FAST, "data.val_split=0", "+callbacks.early._target_=lightning.pytorch.callbacks.EarlyStopping"]
    with pytest.raises(CnnplError) as caught:
        train(cnnpl.compose([*early, "+callbacks.early.monitor=val/acc"], output_dir=str(tmp_path / "early")))
    assert str(caught.value) == (
        "EarlyStopping(monitor='val/acc') watches a validation metric, but nothing is validated (data.val_split=0, "
        "or trainer.limit_val_batches=0); monitor a training metric (train/loss_epoch, train/acc), or hold out a "
        "validation split"
    )
    assert not (tmp_path / "early" / "checkpoints").exists()
    # testing a checkpoint trains nothing, and no monitor runs: not refused
    train(cnnpl.compose([*FAST, "data.val_split=0"], output_dir=str(tmp_path / "tested")))
    last = tmp_path / "tested" / "checkpoints" / "last.ckpt"
    tested = [*early, "+callbacks.early.monitor=val/acc", "fit=false", f"ckpt_path={last}"]
    train(cnnpl.compose(tested, output_dir=str(tmp_path / "tested")))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.train_sizes=[24]", "trainer.max_epochs=2"],
            r"^data\.train_sizes: model=simple_cnn cannot take 24x24 images \(.+\); the smallest it takes is 30x30: "
            r"give sizes from 30, or leave data\.train_sizes=\[\]$",
        ),
        (  # was: "model=fast_net cannot take 24x24 images ...; use ... a model that takes any size (... fast_net ...)"
            ["model=fast_net", "conv=locally_connected", "data.train_sizes=[24]", "trainer.max_epochs=2"],
            r"^data\.train_sizes: conv=locally_connected cannot take 24x24 images in model=fast_net "
            r"\(locally_connected was built for 31x31 inputs \(one kernel per output position\), got 23x23\); choose a "
            r"conv that takes any size, or leave data\.train_sizes=\[\]$",
        ),
        (  # was "has 1 sizes ... so give at most 0 sizes" (helper-116)
            ["model=fast_net", "data.train_sizes=[24]", "trainer.max_epochs=1"],
            r"^data\.train_sizes has 1 size but trainer\.max_epochs=1: the last epoch must train at full size, so "
            r"leave data\.train_sizes=\[\] or train more epochs$",
        ),
        (
            ["model=fast_net", "data.train_sizes=[24,28]", "trainer.max_epochs=2"],
            r"^data\.train_sizes has 2 sizes but trainer\.max_epochs=2: the last epoch must train at full size, so "
            r"give at most 1 size or train more epochs$",
        ),
        (  # helper-102: max_steps ended the run inside the small epochs, and the test saw another size
            ["model=fast_net", "data.train_sizes=[24]", "trainer.max_epochs=3", "+trainer.max_steps=8"],
            r"^trainer\.max_steps=8 ends the run in its 1st epoch \(8 steps an epoch\), but data\.train_sizes trains "
            r"the first epoch below full size: the last epoch must train at full size, so give trainer\.max_steps "
            r"above 8 \(or -1\), or fewer sizes$",
        ),
        (
            ["model=fast_net", "data.train_sizes=[24,24]", "trainer.max_epochs=4", "+trainer.max_steps=12"],
            r"^trainer\.max_steps=12 ends the run in its 2nd epoch \(8 steps an epoch\), but data\.train_sizes trains "
            r"the first 2 epochs below",
        ),
        (  # too small for vgg16's five pools: the model's doing, not pool=max's (no pool takes it)
            ["model=vgg16", "data.train_sizes=[16]", "trainer.max_epochs=2"],
            r"^data\.train_sizes: model=vgg16 cannot take 16x16 images \(.+\); it takes only the data's own size, "
            r"32x32: use a model that takes any size \(one ending in global pooling: fast_net, resnet18, \.\.\.\), or "
            r"leave data\.train_sizes=\[\]$",
        ),
        (  # helper-130: fast_net, which ends in global pooling, was told to use a model such as fast_net
            ["model=fast_net", "data.train_sizes=[4]", "trainer.max_epochs=2"],
            r"^data\.train_sizes: model=fast_net cannot take 4x4 images \(.+\); the smallest it takes is 9x9: give "
            r"sizes from 9, or leave data\.train_sizes=\[\]$",
        ),
        (["data.train_sizes=[40]"], r"^data\.train_sizes \[40\] go above the \(32, 32\) images: .* up to 32$"),
        (["data.train_resize=squash"], r"^data\.train_resize must be one of scale, crop, got 'squash'$"),
        (["data.train_sizes=24"], r"^data\.train_sizes must be a list of image sides in whole pixels, .*got 24$"),
    ],
)
def test_bad_progressive_resizing_settings_fail_before_training(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(CnnplError, match=message):
        train(cnnpl.compose([*FAST, *overrides], output_dir=str(tmp_path)))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()


# -- determinism -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_seed_same_settings_give_identical_metrics_on_cpu(tmp_path: Path) -> None:
    # the default trainer (trainer.deterministic=false): on CPU the kernels are deterministic anyway
    overrides = [*FAST, "pool=stochastic"]
    first = train(cnnpl.compose(overrides, output_dir=str(tmp_path / "first")))
    second = train(cnnpl.compose(overrides, output_dir=str(tmp_path / "second")))
    assert first == second
    assert_same_tensors(
        state_dict(tmp_path / "first" / "checkpoints" / "last.ckpt"),
        state_dict(tmp_path / "second" / "checkpoints" / "last.ckpt"),
    )
    other_seed = train(cnnpl.compose([*overrides, "seed=7"], output_dir=str(tmp_path / "other")))
    assert other_seed != first


@pytest.mark.slow
def test_keep_freed_memory_does_not_change_results(tmp_path: Path) -> None:
    # the allocator setting lasts for the whole process, so each run is its own command line
    runs = {}
    for keep in ("true", "false"):
        run_dir = tmp_path / keep
        result = run_cli(*FAST, "model=fast_net", "model.widths=[8,16,16]", f"keep_freed_memory={keep}",
                         f"hydra.run.dir={run_dir}", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        runs[keep] = state_dict(run_dir / "checkpoints" / "last.ckpt")
    assert_same_tensors(runs["true"], runs["false"])


def test_progressive_resizing_check_passes_a_scripted_layer_by() -> None:
    from types import SimpleNamespace

    from cnnpl.train import check_train_sizes

    net = torch.nn.Sequential(
        torch.jit.script(torch.nn.Conv2d(3, 4, 3)),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    datamodule = SimpleNamespace(train_sizes=[16, 24], in_channels=3)
    check_train_sizes(net, datamodule, "scripted", 3, {"conv": "conv2d"})  # was: ScriptModules take no hooks
    assert not any(
        module._forward_hooks or module._forward_pre_hooks
        for module in net.modules()
        if not isinstance(module, torch.jit.ScriptModule)
    )


def test_a_dry_run_says_what_it_did(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="cnnpl.train"):  # was silent: exit 0 and nothing said
        metrics = train(cnnpl.compose([*FAST, "fit=false", "test=false"], output_dir=str(tmp_path)))
    assert metrics == {}
    assert "fit=false test=false: a dry run; the data, network, optimizer and callbacks were built and checked, " in (
        caplog.text
    )
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_checkpoint_that_could_not_be_read_back_is_refused_before_it_is_written(tmp_path: Path) -> None:
    import collections

    from cnnpl.checkpoint import AtomicCheckpointIO, CheckpointError, check_loadable

    good = {"state_dict": collections.OrderedDict(w=torch.ones(2)), "callbacks": {"A": {"n": [1, 2.0, "x"]}}}
    check_loadable(good)
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"the previous checkpoint")
    bad = {**good, "callbacks": {"Stateful": {"losses": collections.deque([1.0])}}}
    with pytest.raises(CheckpointError) as err:
        AtomicCheckpointIO().save_checkpoint(bad, path)
    assert str(err.value).startswith("callback Stateful holds a collections.deque, which cnnpl could not load back")
    assert path.read_bytes() == b"the previous checkpoint" and os.listdir(tmp_path) == ["last.ckpt"]


def test_a_plugin_callback_whose_state_no_checkpoint_could_hold_is_refused_before_training(cli, tmp_path: Path) -> None:
    # was: trained, wrote checkpoints it then refused to load, and failed at the test (and at any resume)
    (tmp_path / "statecb.py").write_text(
        "import collections\n"
        "import cnnpl\n"
        "import lightning as L\n\n\n"
        "@cnnpl.register('callback', 'stateful')\n"
        "class Stateful(L.Callback):\n"
        "    def state_dict(self):\n"
        "        return {'losses': collections.deque(maxlen=3)}\n"
    )
    result = cli(*TINY, "plugins=[./statecb.py]", "callbacks=[minimal,stateful]")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("cnnpl: error: callback Stateful holds a collections.deque"), result.stderr[-2000:]
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_the_nan_advice_names_model_pretrained_where_the_architecture_takes_it() -> None:
    from cnnpl.checkpoint import _takes_pretrained, loads_weights

    assert loads_weights(cnnpl.build("model", "lenet5", num_classes=10, input_size=32))
    assert not loads_weights(cnnpl.build("model", "simple_cnn", num_classes=10, input_size=32))
    assert not loads_weights(None)
    assert _takes_pretrained("vgg16") and not _takes_pretrained("fast_net") and not _takes_pretrained("nope")


def test_a_resume_without_the_runs_config_says_its_settings_are_not_checked(tmp_path: Path, caplog) -> None:
    # helper-127: with config.yaml gone (or not YAML) a resume at another lr, seed and noise ran without a word
    from cnnpl.checkpoint import check_resume_settings

    train(cnnpl.compose([*FAST, "trainer.max_epochs=1"], output_dir=str(tmp_path)))
    last = tmp_path / "checkpoints" / "last.ckpt"
    for text in (None, "foo: [unclosed"):
        (tmp_path / "config.yaml").unlink(missing_ok=True)
        if text is not None:
            (tmp_path / "config.yaml").write_text(text)
        caplog.clear()
        with caplog.at_level("WARNING", logger="cnnpl.checkpoint"):
            check_resume_settings(last, cnnpl.compose([*FAST, "optimizer.lr=0.5"]))
        where = (
            f"{tmp_path / 'config.yaml'}: not a config cnnpl wrote"
            if text
            else (f"beside '{last}' or in the folder above: none")
        )
        assert [r.getMessage() for r in caplog.records] == [
            f"no run config.yaml to compare this resume's settings with ({where}); a resume must give the run's own "
            "settings, which nothing checks here"
        ]


def test_a_checkpoint_copied_away_from_its_run_is_compared_with_the_settings_it_holds(tmp_path: Path, caplog) -> None:
    # helper-137: a copy resumed with optimizer=sgd failed mid-fit (KeyError: 'momentum'), with optimizer.lr=0.5 it
    # trained at the checkpoint's 0.001 while the new config.yaml said 0.5, with pool=avg it went on without a word
    from cnnpl.checkpoint import check_resume_settings, tested_settings_differ

    train(cnnpl.compose([*FAST, "trainer.max_epochs=1"], output_dir=str(tmp_path / "run")))
    lone = tmp_path / "lone.ckpt"
    shutil.copy(tmp_path / "run" / "checkpoints" / "last.ckpt", lone)
    checkpoint = torch.load(lone, map_location="cpu", weights_only=False)
    for override, difference in (
        ("optimizer.lr=0.5", "optimizer.lr (run: 0.001, now: 0.5)"),
        ("pool=avg", "pool.name (run: max, now: avg)"),
    ):
        with pytest.raises(CheckpointError) as err:
            train(
                cnnpl.compose(
                    [*FAST, override, "trainer.max_epochs=2", f"ckpt_path={lone}"],
                    output_dir=str(tmp_path / override.partition("=")[2]),
                )
            )
        assert str(err.value) == (
            f"ckpt_path resumes the run that wrote '{lone}' (the settings the checkpoint holds), but this command's "
            f"settings differ from the ones it trained with: {difference}; give the command that trained it again, "
            "with this ckpt_path"
        )
        assert not list((tmp_path / override.partition("=")[2]).rglob("*.ckpt"))
    check_resume_settings(lone, cnnpl.compose(FAST), checkpoint=checkpoint)  # its own settings: resumed
    (tmp_path / "run" / "config.yaml").write_text("foo: [unclosed")  # helper-138: one cnnpl did not write
    with pytest.raises(CheckpointError, match=r"differ from the ones it trained with: optimizer\.lr \(run: 0\.001, "):
        check_resume_settings(
            tmp_path / "run" / "checkpoints" / "last.ckpt",
            cnnpl.compose([*FAST, "optimizer.lr=0.5"]),
            checkpoint=checkpoint,
        )
    assert "system.tta_flip=False, this test has system.tta_flip=True" in tested_settings_differ(
        lone, cnnpl.compose([*FAST, "system.tta_flip=true"]), checkpoint
    )
    del checkpoint["cnnpl"]["config"]  # one written before checkpoints held their settings: said so
    caplog.clear()
    with caplog.at_level("WARNING", logger="cnnpl.checkpoint"):
        check_resume_settings(lone, cnnpl.compose([*FAST, "optimizer.lr=0.5"]), checkpoint=checkpoint)
    assert [r.getMessage() for r in caplog.records] == [
        f"no run config.yaml to compare this resume's settings with (beside '{lone}' or in the folder above: none), "
        "and the checkpoint holds none (written before cnnpl kept them); a resume must give the run's own "
        "settings, which nothing checks here"
    ]


def test_a_refused_write_says_how_to_go_on_from_what_the_run_saved(tmp_path: Path) -> None:
    from cnnpl.cli import _stopped_by_the_machine

    full = OSError(errno.ENOSPC, "No space left on device", "x/csv/metrics.csv")
    read_only = OSError(errno.EROFS, "Read-only file system", "x/config.yaml")
    assert _stopped_by_the_machine(RuntimeError("a bug"), tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert _stopped_by_the_machine(full, tmp_path) == (
        "the run stopped: cannot write x/csv/metrics.csv: No space left on device; make room there and resume with "
        f"the run's command plus hydra.run.dir={tmp_path} ckpt_path=last"
    )
    wrapped = RuntimeError("writing failed")
    wrapped.__cause__ = read_only
    assert _stopped_by_the_machine(wrapped, tmp_path) == (
        "the run stopped: cannot write x/config.yaml: Read-only file system; make it writable and resume with the "
        f"run's command plus hydra.run.dir={tmp_path} ckpt_path=last"
    )
