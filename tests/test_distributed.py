"""DDP on CPU processes (gloo): sharding, exact whole-split metrics, launchers, failure, options.

The slow tests start real process groups through the command line, as a user would:
``python -m cnnpl trainer=ddp_cpu`` (Lightning's launcher), two ``torchrun`` "nodes" on 127.0.0.1, a
rank that raises, and Hydra multirun. They train ``data=shapes`` for one or two tiny epochs.

The callbacks below are test instruments, loaded by the child processes through
``+callbacks.<name>._target_=test_distributed.<Class>`` with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import cnnpl
from cnnpl.checkpoint import safe_load
from cnnpl.distributed import (
    EvalShardSampler,
    beside_a_first_on_this_machine,
    check_launch,
    launched,
    launcher_world_size,
    lr_scale,
    requested_processes,
)
from cnnpl.errors import CnnplError

TESTS = Path(__file__).resolve().parent
TIMEOUT = 180  # seconds for one multi-process run; a hang fails the test instead of the CI job

# Sizes chosen so that nothing divides evenly by 2 processes: 334 images -> 267 train, 67 val.
NUM_TRAIN, NUM_VAL, NUM_TEST = 334, 67, 63
SMALL = [
    "data=shapes",
    f"data.num_train={NUM_TRAIN}",
    f"data.num_test={NUM_TEST}",
    "data.batch_size=32",
    "data.crop_padding=0",  # no augmentation: a training image can be recognised by its pixels
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar.refresh_rate=0",
]


# -- test instruments (run inside the DDP processes) --------------------------------------------------
class RecordRun(Callback):
    """Writes ``<path>/rank<r>.json``: the training images seen per epoch (as indices into the
    training split), this process's training loss sum, correct count and image count per epoch, the
    samplers in use, the world size, the precision and the learning rate."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seen: dict[int, list[int]] = {}
        self.sums: dict[int, list[float]] = {}
        self.index: dict[bytes, int] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images = trainer.datamodule.split("train").images
        self.index = {image.numpy().tobytes(): i for i, image in enumerate(images)}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # the batch arrives normalised: undo it to find the uint8 images in the training split
        images = (trainer.datamodule.denormalize(batch[0]) * 255).round().to(torch.uint8).cpu()
        epoch = self.seen.setdefault(trainer.current_epoch, [])
        epoch.extend(self.index[image.numpy().tobytes()] for image in images)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # callbacks run before the module's hook, which reduces these sums across processes and logs them
        self.sums[trainer.current_epoch] = list(pl_module.train_totals)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        facts = {
            "world_size": trainer.world_size,
            "seen": self.seen,
            "sums": self.sums,
            "train_sampler": type(trainer.train_dataloader.sampler).__name__,
            "val_sampler": type(trainer.val_dataloaders.sampler).__name__,
            "precision": str(trainer.precision),
            "lr": trainer.optimizers[0].param_groups[0]["initial_lr" if trainer.lr_scheduler_configs else "lr"],
        }
        (self.path / f"rank{trainer.global_rank}.json").write_text(json.dumps(facts))


class FailOnRank(Callback):
    """Raises in the second training step of the rank named by ``CNNPL_TEST_FAIL_RANK``."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if args[-1] == 1 and str(trainer.global_rank) == os.environ.get("CNNPL_TEST_FAIL_RANK"):
            raise RuntimeError(f"injected failure on rank {trainer.global_rank}")


class HangOnRank(Callback):
    """Writes its process id to ``<path>`` and sleeps in the second training step of the rank named by
    ``CNNPL_TEST_HANG_RANK``: a rank that hangs, or waits in a collective for one that has failed."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if args[-1] == 1 and str(trainer.global_rank) == os.environ.get("CNNPL_TEST_HANG_RANK"):
            self.path.write_text(str(os.getpid()))
            time.sleep(TIMEOUT)


class FailOnceHung(Callback):
    """Raises on rank 0 in the second training step once :class:`HangOnRank` has written ``<path>``: rank 1 is
    then asleep, as a hung rank is, when rank 0 fails (not killed on its way there, which would prove less)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if args[-1] == 1 and trainer.global_rank == 0:
            for _ in range(int(TIMEOUT / 0.1)):
                if self.path.exists():
                    break
                time.sleep(0.1)
            raise RuntimeError("injected failure on rank 0")


class SlowToReport(RuntimeError):
    """An error whose message takes longer to read than Lightning's watch over the child processes waits (5 s)."""

    read = False

    def __str__(self) -> str:
        if not SlowToReport.read:
            SlowToReport.read = True
            time.sleep(6)
        return super().__str__()


class FailOnceHungSlowToReport(FailOnceHung):
    """:class:`FailOnceHung` with an error that is slow to report: the child killed at once, Lightning's watch
    SIGKILLed rank 0 before its report was out (a flake on a busy machine, made certain)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        try:
            super().on_train_batch_end(trainer, *args)
        except RuntimeError as err:
            raise SlowToReport(str(err)) from None


class UsersOwnData(L.LightningDataModule):
    """A data module that is not cnnpl's (no ``split()`` / ``normalize()``): shuffled tensor batches.
    Takes and ignores ``data=shapes``' settings, so the command line can name it as ``data._target_``."""

    num_classes, in_channels, input_size = 4, 3, (16, 16)

    def __init__(self, **_: Any) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(128, 3, 16, 16, generator=generator)
        self.labels = torch.randint(0, 4, (128,), generator=generator)

    def _loader(self, shuffle: bool) -> torch.utils.data.DataLoader:
        data = torch.utils.data.TensorDataset(self.images, self.labels)
        return torch.utils.data.DataLoader(data, batch_size=16, shuffle=shuffle)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(shuffle=True)

    def test_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(shuffle=False)


class RecordWhitening(Callback):
    """Saves ``<path>/rank<r>.pt``: fast_net's whitening filters as the first training step gets them."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == 0:
            torch.save(pl_module.net.whiten.weight.detach().cpu(), self.path / f"rank{trainer.global_rank}.pt")


class RecordTestState(Callback):
    """Saves ``<path>/rank<r>.pt``: the network's state as the first test batch gets it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if batch_idx == 0:
            torch.save(pl_module.net.state_dict(), self.path / f"rank{trainer.global_rank}.pt")


class PauseForSigterm(Callback):
    """Pauses the first process until it has the signal, writing ``<path>/paused``: before the backward pass
    of training batch 2 (``stage=train``) or of epoch 0's last batch (``stage=epoch_end``), or after batch 0
    of epoch 0's validation (``stage=val``) or of the test (``stage=test``). The other process goes on into
    the next collective and waits there. A signal then reaches the two at different points, as it does in a
    real run."""

    def __init__(self, path: str, stage: str = "train") -> None:
        self.path, self.stage = Path(path), stage

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if self.stage == "train" and trainer.global_step == 2:  # FiniteLossGuard's agreement comes next
            self.pause(trainer)
        if self.stage == "epoch_end" and trainer.current_epoch == 0 and trainer.is_last_batch:
            self.pause(trainer)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ):
        if self.stage == "val" and not trainer.sanity_checking and trainer.current_epoch == 0 and i == 0:
            self.pause(trainer)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int):
        if self.stage == "test" and i == 0:
            self.pause(trainer)

    def pause(self, trainer: L.Trainer) -> None:
        if trainer.global_rank != 0:
            return
        (self.path / "paused").write_text("")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            trainer.received_sigterm or any(getattr(c, "pending", False) for c in trainer.callbacks)
        ):
            time.sleep(0.05)


# -- helpers ------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    for name in ("HYDRA_FULL_ERROR", "WORLD_SIZE", "LOCAL_RANK", "RANK", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**_env(), **env}, capture_output=True, text=True, timeout=TIMEOUT
    )


def _free_port() -> int:
    """A free port below the kernel's ephemeral range, where no other process's ``bind(0)`` or outgoing
    connection (Lightning's ``MASTER_PORT`` in the tests beside this one) can be given it before torchrun binds it.
    """
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    below = range(max(1024, low // 2), low)  # not the privileged ports
    for port in random.Random().sample(below, min(200, len(below))):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # an unusual range (or all taken): the kernel's pick, as before
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _events(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def _logged(run_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], Counter[tuple[str, int]]]:
    """Scalars ``{tag: [(step, value)]}`` of the run and a count of every (tag, step) written."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    writes: Counter[tuple[str, int]] = Counter()
    for path in _events(run_dir):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for event in acc.Scalars(tag):
                scalars.setdefault(tag, []).append((event.step, event.value))
                writes[tag, event.step] += 1
        for tag in acc.Tags()["images"]:
            for event in acc.Images(tag):
                writes[tag, event.step] += 1
    return scalars, writes


def _evaluate_on_one_process(overrides: list[str], checkpoint: Path, stage: str, tmp_path: Path) -> dict[str, float]:
    """What one process logs for ``stage`` (val or test) with the weights of ``checkpoint``."""
    from hydra.utils import instantiate

    from cnnpl.network import build_model
    from cnnpl.system import ImageClassifier

    cfg = cnnpl.compose(overrides, output_dir=str(tmp_path / "single"))
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    system = ImageClassifier(net, datamodule.num_classes)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    run = trainer.validate if stage == "val" else trainer.test
    (metrics,) = run(system, datamodule=datamodule, ckpt_path=str(checkpoint), weights_only=True, verbose=False)
    return metrics


def _last(scalars: dict[str, list[tuple[int, float]]], tag: str) -> float:
    return max(scalars[tag])[1]


# -- unit tests (fast, one process) -------------------------------------------------------------------
@pytest.mark.parametrize(("size", "world"), [(67, 2), (63, 4), (8, 8), (10, 3)])
def test_eval_shards_cover_the_split_once_without_padding(size: int, world: int) -> None:
    shards = [list(EvalShardSampler(range(size), num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert [len(s) for s in shards] == [len(EvalShardSampler(range(size), world, r)) for r in range(world)]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_eval_shards_refuse_a_split_smaller_than_the_world() -> None:
    with pytest.raises(CnnplError, match="evaluation split of 1 image cannot be shared by 2 processes"):
        EvalShardSampler(range(1), num_replicas=2, rank=1)


@pytest.mark.parametrize(("strategy", "exact"), [("ddp", True), ("fsdp", False)])
def test_exact_evaluation_shards_are_for_ddp_only(strategy: str, exact: bool) -> None:
    # helper-121: FSDP gathers the weights in every forward; shards of unequal batch counts (101 images, batch 50,
    # 2 processes: 2 batches and 1) would leave one process waiting until the timeout. Lightning's sampler pads.
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    from cnnpl.data import ShapesDataModule

    datamodule = ShapesDataModule(num_train=40, num_test=101, image_size=8)
    made = DDPStrategy() if strategy == "ddp" else FSDPStrategy()
    datamodule.trainer = SimpleNamespace(world_size=2, global_rank=0, strategy=made)
    datamodule.setup("test")
    assert isinstance(datamodule.test_dataloader().sampler, EvalShardSampler) is exact


def test_lr_scaling_rules() -> None:
    assert [lr_scale(rule, 4) for rule in ("none", "linear", "sqrt")] == [1.0, 4.0, 2.0]
    assert lr_scale("linear", 1) == 1.0
    with pytest.raises(CnnplError, match=re.escape("system.lr_scaling must be one of none, linear, sqrt, got 'cubic'")):
        lr_scale("cubic", 2)


def test_process_counts_from_config_and_environment() -> None:
    assert requested_processes({"devices": 2, "num_nodes": 3, "accelerator": "cpu"}) == 6
    assert requested_processes({"devices": "0,1", "accelerator": "gpu"}) == 2
    assert requested_processes({"devices": "auto", "accelerator": "cpu"}) == 1
    assert launcher_world_size({"WORLD_SIZE": "4"}) == 4
    assert launcher_world_size({"SLURM_NTASKS": "8"}) == 8
    assert launcher_world_size({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "train"}) == 8
    # helper-125: an sbatch script's SLURM_NTASKS without srun was "torchrun/srun started 4 processes"
    assert launched({"SLURM_NTASKS": "4", "SLURM_JOB_NAME": "train"}) == "SLURM_NTASKS=4 asks srun for 4 processes"
    assert launched({"WORLD_SIZE": "2", "SLURM_NTASKS": "4"}) == "torchrun started 2 processes"
    assert launcher_world_size({}) == 1
    # helper-121: a shell in an interactive allocation has SLURM_NTASKS but started nothing; a plain run was
    # refused for "4 processes started by torchrun/srun" (Lightning ignores SLURM there too)
    for shell in ("bash", "interactive"):
        assert launcher_world_size({"SLURM_NTASKS": "4", "SLURM_JOB_NAME": shell}) == 1
        assert launcher_world_size({"SLURM_NTASKS": "4", "SLURM_JOB_NAME": shell, "WORLD_SIZE": "2"}) == 2


def test_ddp_configs_follow_torchrun_and_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = cnnpl.compose(["trainer=ddp_cpu"])
    assert (cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.strategy.process_group_backend) == (2, 1, "gloo")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    cfg = cnnpl.compose(["trainer=ddp_cpu"])
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (3, 2)
    monkeypatch.delenv("GROUP_WORLD_SIZE")
    monkeypatch.setenv("SLURM_NNODES", "4")
    assert cnnpl.compose(["trainer=ddp"]).trainer.num_nodes == 4


def _hydra_job(mode: str, run_dir: str | None, overrides: list[str]) -> Any:
    """A composed config with Hydra's job config set, as inside ``python -m cnnpl``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from cnnpl.config import config_dir

    extra = [f"hydra.mode={mode}"] + ([f"hydra.run.dir={run_dir}"] if run_dir else [])
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, *extra], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_check_launch_refuses_multirun_and_unpinned_run_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    try:
        check_launch(_hydra_job("MULTIRUN", None, ["trainer=default"]))  # one process: fine
        with pytest.raises(CnnplError, match=r"Hydra multirun \(-m\) cannot run multi-process jobs \(2 processes"):
            check_launch(_hydra_job("MULTIRUN", None, ["trainer=ddp_cpu"]))
        monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun
        with pytest.raises(CnnplError) as err:  # helper-135: was "sweep with trainer.devices=1", to one who had
            check_launch(_hydra_job("MULTIRUN", None, ["trainer=ddp_cpu", "trainer.devices=1"]))
        assert str(err.value) == (
            "Hydra multirun (-m) cannot run under a launcher's processes (torchrun started 2 processes): run the "
            "sweep with python -m cnnpl -m ... alone, or one torchrun / srun command per configuration"
        )
        with pytest.raises(CnnplError, match=re.escape("need one shared output directory: add hydra.run.dir=<path>")):
            check_launch(_hydra_job("RUN", None, ["trainer=ddp_cpu"]))
        check_launch(_hydra_job("RUN", "outputs/pinned", ["trainer=ddp_cpu"]))
    finally:
        HydraConfig.instance().cfg = None


def test_several_nodes_without_a_launcher_are_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lightning would print "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" and wait for ever
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    cfg = cnnpl.compose(["trainer=ddp_cpu", "trainer.num_nodes=2"])
    with pytest.raises(CnnplError, match=re.escape("trainer.num_nodes=2 needs its processes started on every node")):
        check_launch(cfg)
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun --nnodes=2: fine
    check_launch(cfg)
    # note 39: in an interactive allocation of 2 nodes trainer=ddp reads num_nodes=2 from SLURM_NNODES: say so
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("GROUP_WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")
    with pytest.raises(CnnplError, match=re.escape("trainer.num_nodes=2 (SLURM_NNODES of this allocation) needs")):
        check_launch(cnnpl.compose(["trainer=ddp"]))


def test_a_config_that_does_not_count_the_launched_processes_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # helper-121: torchrun --nproc_per_node=2 ... trainer.devices=1 was Lightning's traceback in every process
    from cnnpl.train import check_settings

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    check_settings(cnnpl.compose(["trainer=ddp_cpu"]))  # devices from torchrun's LOCAL_WORLD_SIZE
    with pytest.raises(CnnplError) as err:
        check_settings(cnnpl.compose(["trainer=ddp_cpu", "trainer.devices=1"]))
    assert str(err.value) == (
        "torchrun started 2 processes, but trainer.devices x trainer.num_nodes asks for 1 (1 x 1): give the "
        "processes of each machine and the machines, trainer.devices=<n> trainer.num_nodes=<m> (under torchrun "
        "trainer=ddp and trainer=ddp_cpu read both from it)"
    )


def test_a_refused_command_line_is_printed_by_the_first_process_of_each_machine(tmp_path: Path) -> None:
    # note 39: under torchrun the refusal printed once per process, the same line n times
    torchrun = {"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}
    args = ["-m", "cnnpl", *SMALL, "trainer=ddp_cpu", "trainer.devices=1", f"hydra.run.dir={tmp_path / 'run'}"]
    first = _run(args, cwd=tmp_path, **torchrun, RANK="0", LOCAL_RANK="0")
    other = _run(args, cwd=tmp_path, **torchrun, RANK="1", LOCAL_RANK="1")
    assert first.returncode == other.returncode == 2
    assert first.stderr.startswith("cnnpl: error: torchrun started 2 processes, but") and first.stderr.count("\n") == 1
    assert other.stderr == "" and not (tmp_path / "run").exists()
    assert beside_a_first_on_this_machine({**torchrun, "LOCAL_RANK": "1", "RANK": "3"})
    assert not beside_a_first_on_this_machine({**torchrun, "LOCAL_RANK": "0", "RANK": "2"})  # another machine's first
    assert not beside_a_first_on_this_machine({"LOCAL_RANK": "1", "WORLD_SIZE": "2"})  # Lightning's own child
    assert beside_a_first_on_this_machine({"SLURM_NTASKS": "4", "SLURM_LOCALID": "1"})  # srun
    assert not beside_a_first_on_this_machine({"SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_JOB_NAME": "bash"})


def test_sync_batchnorm_on_cpu_processes_is_refused_up_front() -> None:
    cfg = cnnpl.compose(["trainer=ddp_cpu", "trainer.sync_batchnorm=true"])
    with pytest.raises(CnnplError, match=re.escape("trainer.sync_batchnorm=true needs GPUs")):
        check_launch(cfg)
    check_launch(cnnpl.compose(["trainer.sync_batchnorm=true"]))  # one process: Lightning ignores it


@pytest.mark.parametrize(
    "strategy",
    [
        "trainer.strategy=ddp_spawn",
        "trainer.strategy={_target_:lightning.pytorch.strategies.DDPStrategy,start_method:spawn}",
    ],
)
def test_a_plugin_file_with_spawned_processes_is_refused_up_front(restore_registries, tmp_path: Path, strategy) -> None:
    # was: every spawned process failed to import cnnpl_plugin_my_pool, as a page of tracebacks
    (tmp_path / "my_pool.py").write_text(
        "import cnnpl\nfrom torch import nn\n\n\n"
        "@cnnpl.register('pool', 'my_pool')\nclass MyPool(nn.MaxPool2d):\n    pass\n"
    )
    two = ["trainer.accelerator=cpu", "trainer.devices=2"]
    cfg = cnnpl.compose([f"plugins=[{tmp_path / 'my_pool.py'}]", "pool=my_pool", strategy, *two])
    with pytest.raises(CnnplError) as err:
        check_launch(cfg)
    fix = "use trainer=ddp_cpu" if "=ddp_spawn" in strategy else "drop trainer.strategy.start_method=spawn"
    assert str(err.value).startswith(  # helper-135: start_method=spawn was told to use trainer=ddp_cpu, as it did
        "trainer.strategy starts 2 fresh Python processes (spawn), which cannot import the plugin file "
        f"{tmp_path / 'my_pool.py'} that plugins=[...] loaded: {fix}"
    )
    check_launch(cnnpl.compose([f"plugins=[{tmp_path / 'my_pool.py'}]", "pool=my_pool", "trainer=ddp_cpu"]))


@pytest.mark.slow
def test_spawned_processes_train_an_installed_plugins_component(tmp_path: Path) -> None:
    # was: "Can't pickle <class 'types.pool_softpool'>": the run's config, with the plugin's generated config
    # class in it, went to the spawned processes with the callbacks
    args = ["-m", "cnnpl", *SMALL, "pool=softpool", "trainer.strategy=ddp_spawn", "trainer.accelerator=cpu"]
    args += ["trainer.devices=2", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "callbacks=minimal"]
    proc = _run([*args, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "name: softpool" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("group", "status", "added", "left"),
    [
        (True, "finished", 1, False),
        (True, "interrupted", 1, True),  # helper-144: a failed rank's collective in flight would hold the destroy
        (False, "finished", 0, False),  # no process group (one device, no DDP): nothing to destroy
    ],
)
def test_a_distributed_process_destroys_its_process_group_before_python_shuts_down(
    tmp_path: Path, group: bool, status: str, added: int, left: bool
) -> None:
    # CI (session 43): a ddp_spawn process aborted after a good test phase ("terminate called without an active
    # exception", SIGABRT): its gloo group, left alive, ended with the interpreter while a worker thread still
    # released a collective's tensors. ImageClassifier.setup, run in every process, destroys it at exit instead.
    code = f"""
import atexit, torch, torch.distributed as dist
from types import SimpleNamespace
from lightning.pytorch.trainer.states import TrainerState, TrainerStatus
from cnnpl.system import ImageClassifier
atexit.register(lambda: print("initialized at exit:", dist.is_initialized()))  # first in: runs last
if {group}:
    dist.init_process_group("gloo", init_method="file://{tmp_path / "store"}", rank=0, world_size=1)
state = TrainerState()
system = ImageClassifier(torch.nn.Flatten(), 2)
system._trainer = SimpleNamespace(state=state)
before = atexit._ncallbacks()
system.setup("fit")
state.status = TrainerStatus.FINISHED
system.setup("test")  # fit then test in one process: one handler
state.status = TrainerStatus("{status}")
print("handlers added:", atexit._ncallbacks() - before)
"""
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-3:] == [f"handlers added: {added}", f"initialized at exit: {group and left}", ""]


def test_ctrl_c_during_the_exit_time_destroy_ends_the_process_without_a_traceback(tmp_path: Path) -> None:
    # helper-144: "Exception ignored in atexit callback" and a KeyboardInterrupt traceback as the process exited
    code = f"""
import torch, torch.distributed as dist
from cnnpl.distributed import destroy_process_group_at_exit
dist.init_process_group("gloo", init_method="file://{tmp_path / "store"}", rank=0, world_size=1)
def interrupted():
    raise KeyboardInterrupt
dist.destroy_process_group = interrupted  # Ctrl-C while the group is destroyed
destroy_process_group_at_exit()
print("done")
"""
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")


def test_lr_scaling_multiplies_the_optimizer_lr_by_the_world_size() -> None:
    from cnnpl.system import ImageClassifier

    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    system = ImageClassifier(net, 10, lr_scaling="linear")
    system.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False)  # world size 1: lr unchanged
    assert system.configure_optimizers().param_groups[0]["lr"] == 1e-3
    with pytest.raises(CnnplError, match=re.escape("system.lr_scaling must be one of")):
        ImageClassifier(net, 10, lr_scaling="quadratic")


# -- multi-process runs (slow) ------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_shard_the_data_and_log_whole_split_metrics_once(tmp_path: Path) -> None:
    run_dir, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    # batch norm: the processes' running statistics drift apart in training; evaluation must still agree
    overrides = [*SMALL, "model=simple_cnn_bn", "trainer.max_epochs=2", "callbacks.checkpoint.save_top_k=-1"]
    args = ["-m", "cnnpl", *overrides, "trainer=ddp_cpu", "trainer.devices=2", f"hydra.run.dir={run_dir}"]
    args += ["+callbacks.record._target_=test_distributed.RecordRun", f"+callbacks.record.path={record}"]
    proc = _run(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # sharding: each epoch, the two processes see disjoint halves that cover the training set; only
    # DistributedSampler's padding (one image, as 267 is odd) appears twice
    facts = [json.loads((record / f"rank{r}.json").read_text()) for r in range(2)]
    assert [f["world_size"] for f in facts] == [2, 2]
    assert [f["train_sampler"] for f in facts] == ["DistributedSampler"] * 2
    assert [f["val_sampler"] for f in facts] == ["EvalShardSampler"] * 2
    num_train = NUM_TRAIN - NUM_VAL
    for epoch in ("0", "1"):
        rank0, rank1 = (f["seen"][epoch] for f in facts)
        assert len(rank0) == len(rank1) == math.ceil(num_train / 2)
        assert set(rank0) | set(rank1) == set(range(num_train))
        assert len(set(rank0) & set(rank1)) <= 1
    assert facts[0]["seen"]["0"] != facts[0]["seen"]["1"]  # reshuffled every epoch

    # one process wrote the logs and the checkpoints
    events = _events(run_dir)
    assert events and len({path.name.split(".")[-2] for path in events}) == 1, events  # one writer pid
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name == "tensorboard"] == ["tensorboard"]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert [name[:8] for name in checkpoints] == ["epoch000", "epoch001", "last.ckp"], checkpoints
    scalars, writes = _logged(run_dir)
    duplicates = {key: n for key, n in writes.items() if n > 1 and key[0] != "epoch"}
    assert not duplicates, duplicates
    assert any(tag.startswith("filters/") for tag, _ in writes)  # the default pictures, from rank 0 only

    # the training means are over both processes' images (268: 267 and the sampler's padding)
    for epoch, (_, loss), (_, accuracy) in zip(
        ("0", "1"), sorted(scalars["train/loss_epoch"]), sorted(scalars["train/acc"]), strict=True
    ):
        loss_sum, correct, count = (sum(values) for values in zip(*(f["sums"][epoch] for f in facts), strict=True))
        assert count == 2 * math.ceil(num_train / 2)
        assert loss == pytest.approx(loss_sum / count, rel=1e-5)
        assert accuracy == pytest.approx(correct / count, rel=1e-6)
    assert facts[0]["sums"]["0"][0] != facts[1]["sums"]["0"][0]  # so neither process's own mean would match

    # the logged metrics are those of the whole split: one process on the same weights agrees exactly
    val = _evaluate_on_one_process(overrides, next(run_dir.glob("checkpoints/epoch001*.ckpt")), "val", tmp_path)
    assert _last(scalars, "val/acc") == pytest.approx(val["val/acc"], abs=0)
    assert _last(scalars, "val/acc") * NUM_VAL == pytest.approx(round(_last(scalars, "val/acc") * NUM_VAL), abs=1e-4)
    assert _last(scalars, "val/loss") == pytest.approx(val["val/loss"], rel=1e-5)
    tested = re.findall(r"Restoring states from the checkpoint path at (\S+\.ckpt)", proc.stdout + proc.stderr)
    test = _evaluate_on_one_process(overrides, Path(tested[-1]), "test", tmp_path)
    for name in ("test/acc", "test/acc_top5"):
        assert _last(scalars, name) == pytest.approx(test[name], abs=0), name
    assert _last(scalars, "test/loss") == pytest.approx(test["test/loss"], rel=1e-5)


@pytest.mark.slow
def test_torchrun_two_nodes_on_localhost_with_bf16_and_lr_scaling(tmp_path: Path) -> None:
    run_dir, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    port = _free_port()
    torchrun = ["-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d"]
    torchrun += [f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=cnnpl-test", "--max_restarts=0"]
    args = [*torchrun, "-m", "cnnpl", *SMALL, "data.num_train=200", "trainer.max_epochs=1", "trainer=ddp_cpu"]
    args += ["callbacks=minimal", "trainer.precision=bf16-mixed", "++system.lr_scaling=linear"]
    args += [f"hydra.run.dir={run_dir}", "+callbacks.record._target_=test_distributed.RecordRun"]
    args += [f"+callbacks.record.path={record}"]
    nodes = [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(out[-3000:] for out in outputs)

    facts = [json.loads((record / f"rank{r}.json").read_text()) for r in range(2)]
    assert [f["world_size"] for f in facts] == [2, 2]  # from torchrun: LOCAL_WORLD_SIZE=1, GROUP_WORLD_SIZE=2
    assert {f["precision"] for f in facts} == {"bf16-mixed"}
    assert [f["lr"] for f in facts] == [2e-3, 2e-3]  # Adam's 1e-3, x2 processes
    assert len({path.name.split(".")[-2] for path in _events(run_dir)}) == 1
    scalars, _ = _logged(run_dir)
    assert {"val/acc", "test/acc", "train/loss_step"} <= set(scalars)
    assert [path.name for path in run_dir.glob(".hydra*")] == [".hydra"]  # one command: one record, the first rank's
    assert "; cpu x 1, 2 processes in all; " in (run_dir / "cnnpl.log").read_text()  # one a node, two in all


@pytest.mark.slow
def test_a_failing_rank_ends_the_job_with_an_error(tmp_path: Path) -> None:
    args = ["-m", "cnnpl", *SMALL, "data.num_train=200", "trainer.max_epochs=3", "trainer=ddp_cpu", "callbacks=minimal"]
    args += [f"hydra.run.dir={tmp_path / 'run'}", "+callbacks.fail._target_=test_distributed.FailOnRank"]
    proc = _run(args, cwd=tmp_path, CNNPL_TEST_FAIL_RANK="1")  # rank 1: a child of Lightning's launcher
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stderr
    # note 45: neither log said why the run stopped; the first process's error is gloo's "Connection closed by peer"
    own = (tmp_path / "run" / "train_ddp_process_1.log").read_text()
    assert "cnnpl: the run stopped on an error on rank 1: RuntimeError: injected failure on rank 1\nTraceback" in own
    first = (tmp_path / "run" / "cnnpl.log").read_text()
    assert (
        "cnnpl: the run stopped on an error on rank 0 (the other processes' logs: train_ddp_process_1.log): " in first
    )


def _signal_the_process_group(tmp_path: Path, stage: str, *overrides: str) -> tuple[int, str, str]:
    """Start two processes paused by PauseForSigterm, SIGTERM their whole group (as systemd, a
    container's stop or a terminal's process group does); returns the exit status, stdout and stderr."""
    args = ["-m", "cnnpl", *SMALL, "trainer=ddp_cpu", "trainer.max_epochs=2", "callbacks=minimal", "logger=csv"]
    args += [f"hydra.run.dir={tmp_path / 'run'}", "trainer.strategy.timeout.minutes=2"]
    args += ["+callbacks.pause._target_=test_distributed.PauseForSigterm", f"+callbacks.pause.path={tmp_path}"]
    args += [f"+callbacks.pause.stage={stage}", *overrides]
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err:  # no pipe to fill
        proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=_env(), stdout=out, stderr=err, text=True,
                                start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    while not (tmp_path / "paused").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the processes did not reach the pause: {(tmp_path / 'err.txt').read_text()[-3000:]}")
        time.sleep(0.1)
    time.sleep(1)  # the other process reaches its collective (if not, the signal finds it mid-step)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()


@pytest.mark.slow
def test_a_sigterm_to_every_process_saves_last_ckpt_and_stops_them_at_one_batch(tmp_path: Path) -> None:
    # note 46: Lightning's handler broadcast from inside the signal handler; with every process signalled, the
    # broadcasts paired with training collectives and the stop waited out the timeout (here 2 minutes), exit 1
    status, _, stderr = _signal_the_process_group(tmp_path, "train")
    assert status == 143, stderr[-3000:]  # not 1, with gloo's "Timed out waiting" after the timeout
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert f"cnnpl: SIGTERM received: saved {last} at epoch 0, step 3;" in stderr
    saved = safe_load(last)
    assert (saved["epoch"], saved["global_step"]) == (0, 3)  # batches 0..2 of epoch 0, in both processes


@pytest.mark.slow
def test_a_sigterm_before_a_validation_of_uneven_shares_stops_after_it(tmp_path: Path) -> None:
    # helper-150: after a stop agreed in an epoch's last batch, Lightning's validation loop stopped the first
    # process after its first batch (of 2: 17 images at 16) while the second (16 images, one batch) went on
    # into the metrics' sync: different collectives in the two (the save's barrier against the sync), and the
    # checkpoint said epoch 0, its validation cut short
    sizes = ["data.num_train=165", "data.eval_batch_size=16"]  # 33 validation images: 17 and 16
    status, _, stderr = _signal_the_process_group(tmp_path, "epoch_end", *sizes)
    assert status == 143, stderr[-3000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    # 66 training images a process: 3 batches; epoch 0 is complete, validated, and the run resumes with epoch 1
    assert f"cnnpl: SIGTERM received: saved {last} at epoch 1, step 3;" in stderr


@pytest.mark.slow
def test_a_sigterm_during_a_validation_stops_every_process_after_the_same_batch(tmp_path: Path) -> None:
    # 67 validation images: 34 and 33, 3 batches of 16 in each process; the stop comes after the first, as with
    # one process (it came at the validation's end, and the grace period had to cover a whole validation)
    status, _, stderr = _signal_the_process_group(tmp_path, "val", "data.eval_batch_size=16")
    assert status == 143, stderr[-3000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    assert f"cnnpl: SIGTERM received: saved {checkpoints / 'last.ckpt'} at epoch " in stderr
    assert safe_load(checkpoints / "last.ckpt")["global_step"] == 5  # 134 training images a process: 5 batches
    assert [p.name for p in checkpoints.iterdir()] == ["last.ckpt"]  # no val/acc: the validation did not end


@pytest.mark.slow
def test_a_sigterm_to_every_process_during_the_test_stops_with_one_line(tmp_path: Path) -> None:
    # 63 test images: 32 and 31, 2 batches of 16 in each; the processes agree after the first
    status, stdout, stderr = _signal_the_process_group(tmp_path, "test", "data.eval_batch_size=16")
    assert status == 143, stderr[-3000:]
    assert "cnnpl: SIGTERM received during the test of " in stderr
    assert "test/acc" not in stdout


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["FailOnceHung", "FailOnceHungSlowToReport"])
def test_a_failing_first_rank_stops_the_others(tmp_path: Path, failure: str) -> None:
    # helper-121: Lightning kills the other ranks when one of them dies, or on Ctrl-C, but not when rank 0
    # raises; rank 1, hung (or waiting in a collective), lived on after the command had exited. Killed at once,
    # it took rank 0's report with it where that took over 5 s (Lightning's watch SIGKILLed rank 0: session 49)
    pid_file = tmp_path / "rank1.pid"
    args = ["-m", "cnnpl", *SMALL, "trainer=ddp_cpu", "callbacks=minimal", f"hydra.run.dir={tmp_path / 'run'}"]
    args += [f"+callbacks.fail._target_=test_distributed.{failure}", f"+callbacks.fail.path={pid_file}"]
    args += ["+callbacks.hang._target_=test_distributed.HangOnRank", f"+callbacks.hang.path={pid_file}"]
    env = {**_env(), "CNNPL_TEST_HANG_RANK": "1"}
    with (tmp_path / "out.txt").open("w") as out:  # not a pipe: a child left running would hold it open
        proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert proc.wait(timeout=TIMEOUT) != 0
        finally:
            proc.kill()
    assert "injected failure on rank 0" in (tmp_path / "out.txt").read_text()
    child = int(pid_file.read_text())
    try:
        for _ in range(50):  # the child is killed before rank 0 exits; reaped by init a moment later
            os.kill(child, 0)
            time.sleep(0.1)
        os.kill(child, signal.SIGKILL)  # still running: fail, but leave nothing behind
        pytest.fail(f"rank 1 (pid {child}) was still running after rank 0 had failed")
    except ProcessLookupError:
        pass


def _records_of_two_processes(tmp_path: Path, overrides: list[str], recorder: str) -> list[Any]:
    """Run ``python -m cnnpl`` with ``overrides`` (two processes) in ``tmp_path/run`` and the callback
    ``test_distributed.<recorder>``; what it saved in each process (``rank<r>.pt``), by rank."""
    record = tmp_path / "record"
    record.mkdir()
    args = ["-m", "cnnpl", *overrides, f"hydra.run.dir={tmp_path / 'run'}"]
    args += [f"+callbacks.record._target_=test_distributed.{recorder}", f"+callbacks.record.path={record}"]
    proc = _run(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(record / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow
def test_data_dependent_init_is_the_same_in_every_process_with_a_users_data_module(tmp_path: Path) -> None:
    # each process's loader shuffles its own shard, so each would whiten from other images; DDP does
    # not sync a frozen layer: process 0's filters are broadcast
    args = [*SMALL, "data.val_split=0", "data._target_=test_distributed.UsersOwnData"]
    args += ["model=fast_net", "model.widths=[8,8,8]", "trainer=ddp_cpu", "trainer.devices=2", "trainer.max_epochs=1"]
    args += ["+trainer.limit_train_batches=1", "callbacks=minimal", "logger=csv", "test=false"]
    filters = _records_of_two_processes(tmp_path, args, "RecordWhitening")
    assert filters[0].abs().sum() > 0 and torch.equal(filters[0], filters[1])


@pytest.mark.slow
def test_a_run_without_checkpoints_tests_the_same_weights_in_every_process(tmp_path: Path) -> None:
    # ~callbacks.checkpoint: the test takes the weights in memory. Each process's batch-norm statistics
    # are its own at the end of training (no validation after the last step broadcast process 0's),
    # yet the processes must test one network
    args = [*SMALL, "data.val_split=0", "model=simple_cnn_bn", "trainer=ddp_cpu", "trainer.devices=2"]
    args += ["trainer.max_epochs=1", "callbacks=minimal", "~callbacks.checkpoint", "logger=csv"]
    states = _records_of_two_processes(tmp_path, args, "RecordTestState")
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0]), "the processes tested other weights"


@pytest.mark.slow
def test_multirun_with_several_processes_is_refused_up_front(tmp_path: Path) -> None:
    args = ["-m", "cnnpl", "-m", *SMALL, "trainer=ddp_cpu", "trainer.max_epochs=1,2"]
    proc = _run([*args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert re.search(r"cnnpl: error: Hydra multirun \(-m\) cannot run multi-process jobs", proc.stderr), proc.stderr
    assert not (tmp_path / "sweep").exists(), "Hydra made the sweep's folder (multirun.yaml, job 0) before the refusal"
    # a later job's processes: refused before the first job trains, naming the job
    args = ["-m", "cnnpl", "-m", *SMALL, "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.devices=1,2"]
    proc = _run([*args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("(in the sweep's job with trainer.devices=2)"), proc.stderr
    assert not (tmp_path / "sweep").exists()


def test_torchrun_with_a_run_folder_named_by_the_time_is_refused_before_hydra_makes_it(tmp_path: Path) -> None:
    # as torchrun starts each process: WORLD_SIZE and RANK set, the command as the user gave it
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    proc = _run(["-m", "cnnpl", *SMALL, "trainer=ddp_cpu"], cwd=tmp_path, **env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("cnnpl: error: torchrun started 2 processes, which need one shared output directory")
    assert not list(tmp_path.iterdir()), "a folder was made for the refused run (outputs/<date>/<time>/.hydra)"
    later = ["-m", "cnnpl", *SMALL, "trainer=ddp_cpu", "hydra.run.dir=outputs/${now:%H-%M-%S}"]
    proc = _run(later, cwd=tmp_path, **env)
    assert proc.returncode == 2 and "need one shared output directory" in proc.stderr, proc.stderr


def test_lightnings_refusal_of_a_slurm_environment_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # helper-135: "Error in call to target 'lightning.pytorch.trainer.trainer.Trainer': RuntimeError(...)", five
    # lines with full_key, where Lightning's other refusals at the Trainer's build were one
    from cnnpl.network import instantiate_node

    for name, value in {"SLURM_NTASKS": "4", "SLURM_NNODES": "2", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE", raising=False)
    with pytest.raises(CnnplError) as err:
        instantiate_node(cnnpl.compose(["trainer=ddp_cpu", "trainer.devices=2", "trainer.num_nodes=2"]).trainer)
    assert str(err.value).startswith("trainer (lightning.pytorch.trainer.trainer.Trainer): You set `--ntasks=4`")
    assert "\n" not in str(err.value)


def test_more_cpu_processes_than_cores_are_warned_of(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    # helper-135: trainer.devices=3 on 2 cores ran without a word
    from cnnpl.distributed import warn_more_processes_than_cores

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with caplog.at_level("WARNING", logger="cnnpl.distributed"):
        warn_more_processes_than_cores({"accelerator": "cpu", "devices": 2})
        assert caplog.records == []
        warn_more_processes_than_cores({"accelerator": "cpu", "devices": 3})
    assert [r.getMessage() for r in caplog.records] == [
        "trainer.devices=3 starts 3 CPU processes on a machine with 2 cores: they share the cores, and each step "
        "waits for the slowest; give trainer.devices=2 or fewer"
    ]
