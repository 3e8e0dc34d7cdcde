"""What cnnpl adds to Lightning's DDP: exact sharded evaluation, launch checks, the LR scaling rule.

Lightning runs the processes (its own launcher, ``torchrun`` or SLURM's ``srun``) and shards the
training set with a ``DistributedSampler``. This module holds the few things on top:

- :class:`EvalShardSampler`: splits a validation / test set across processes without the padding
  duplicates of ``DistributedSampler``, so metrics summed over processes count every image once.
- :func:`check_shardable`: refuses an evaluation split smaller than the number of processes.
- :func:`check_launch`: refuses, before anything is built, the launches that cannot work
  (Hydra multirun with several processes; ``torchrun`` / SLURM with a timestamped run directory).
- :func:`lr_scale`: the factor an LR scaling rule gives for a world size.
- :func:`destroy_process_group_at_exit`: ends a process's process group before Python shuts down.

See ``docs/distributed.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Any

from torch.utils.data import DistributedSampler

from cnnpl.errors import CnnplError, yaml_word

LR_SCALING_RULES = ("none", "linear", "sqrt")


class EvalShardSampler(DistributedSampler):
    """Process ``rank`` of ``num_replicas`` gets images ``rank, rank + num_replicas, ...``, in order.

    Unlike ``DistributedSampler`` nothing is padded: shards differ in size by at most one image and
    together hold every image exactly once. That is safe for evaluation, where DDP needs no
    collective per batch (it syncs buffers before the first forward only, so every process must
    get at least one image). Never use it for training. It subclasses ``DistributedSampler`` so that
    Lightning keeps it instead of injecting its own.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)  # type: ignore[arg-type]
        size = len(dataset)
        check_shardable(size, num_replicas)
        self.total_size = size
        self.num_samples = len(range(rank, size, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


_destroy_registered = False
_run_state: Any = None  # the trainer's state (Lightning mutates it in place): an interrupted run is left as it is


def destroy_process_group_at_exit(trainer_state: Any = None) -> None:
    """Destroy this process's default process group as the process exits, before the interpreter shuts down,
    unless the trainer whose ``trainer.state`` this is (if given) was interrupted (an exception, SIGTERM, Ctrl-C).

    Lightning does that for NCCL only. A gloo process group left alive ends with the interpreter, and a process
    whose run went well can abort ("terminate called without an active exception", SIGABRT; ``ddp_spawn`` then
    reports the run failed): a gloo worker thread still releasing the last collective's tensors needs the GIL
    that shutdown is taking away (as pytorch/pytorch#190489 describes). ``benchmarks/gloo_exit_abort.py``
    (docs/distributed.md): 9 and 8 of 50 trials aborted without this (two runs), none of 50 with it. A failed
    rank can leave a collective in flight, which the destroy would wait for until the process group's timeout
    (helper-144): that one exits as before. Called from ``ImageClassifier.setup`` in every process that has a
    process group; registered once per process.
    """
    import torch.distributed as dist

    global _destroy_registered, _run_state
    if not (dist.is_available() and dist.is_initialized()):
        return
    _run_state = trainer_state
    if not _destroy_registered:
        atexit.register(_destroy_process_group)
        _destroy_registered = True


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if getattr(_run_state, "status", None) == "interrupted":  # TrainerStatus.INTERRUPTED, a str
        return
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C as it exits: it exits, without Python's traceback
            dist.destroy_process_group()


def check_shardable(size: int, num_replicas: int, what: str = "an evaluation split") -> None:
    """Refuse an evaluation split ``what`` of ``size`` images that ``num_replicas`` processes cannot share.

    :class:`EvalShardSampler` gives each process at least one image (DDP syncs buffers before the first
    forward); an empty split is no evaluation at all and passes.
    """
    if 0 < size < num_replicas:
        also = " (or none: data.val_split=0)" if what == "the val split" else ""
        raise CnnplError(
            f"{what} of {size} image{'s' * (size != 1)} cannot be shared by {num_replicas} processes: "
            f"use a larger split{also} or fewer processes (trainer.devices x trainer.num_nodes)"
        )


def lr_scale(rule: str, world_size: int) -> float:
    """The learning-rate factor of ``rule`` for ``world_size`` processes (effective batch x ``world_size``).

    ``none``: 1; ``linear``: ``world_size`` (Goyal et al. 2017, for SGD); ``sqrt``: ``sqrt(world_size)``
    (often preferred for Adam).
    """
    if rule not in LR_SCALING_RULES:
        raise CnnplError(f"system.lr_scaling must be one of {', '.join(LR_SCALING_RULES)}, got {yaml_word(rule)}")
    if world_size < 1:
        raise CnnplError(f"world size must be >= 1, got {world_size}")
    return {"none": 1.0, "linear": float(world_size), "sqrt": math.sqrt(world_size)}[rule]


def launcher_world_size(environ: Mapping[str, str] | None = None) -> int:
    """How many processes an external launcher started: ``WORLD_SIZE`` (torchrun, Lightning's own
    children) or ``SLURM_NTASKS`` (srun); 1 outside any launcher. A shell in an interactive allocation
    (``salloc``, ``srun --pty bash``: the job named ``bash`` or ``interactive``) has ``SLURM_NTASKS`` but
    started no tasks: Lightning ignores SLURM there, and so does this."""
    env = os.environ if environ is None else environ
    interactive = env.get("SLURM_JOB_NAME") in SLURM_INTERACTIVE_NAMES
    for name in ("WORLD_SIZE", "SLURM_NTASKS"):
        value = env.get(name, "")
        if value.isdigit() and not (name == "SLURM_NTASKS" and interactive):
            return int(value)
    return 1


SLURM_INTERACTIVE_NAMES = ("bash", "interactive")  # Lightning's SLURMEnvironment: not started by srun
# how a sweep stopped part-way goes on (docs/howto/sweep.md): its jobs resume, those not started start
CONTINUE_SWEEP = "continue the sweep with its own command plus ckpt_path=last (each job resumes from its checkpoints)"


def launched(environ: Mapping[str, str] | None = None) -> str:
    """Who started how many processes, for a message: ``torchrun started 2 processes``, or ``SLURM_NTASKS=4 asks
    srun for 4 processes`` (an sbatch script that runs the command without srun has it too, with one process)."""
    env = os.environ if environ is None else environ
    count = launcher_world_size(env)
    if env.get("WORLD_SIZE", "").isdigit():
        return f"torchrun started {count} processes"
    return f"SLURM_NTASKS={count} asks srun for {count} processes"


def is_worker(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is one a launcher started besides the first: a global or local rank above 0
    (``RANK`` / ``LOCAL_RANK`` of torchrun and Lightning's children, ``SLURM_PROCID`` of srun)."""
    env = os.environ if environ is None else environ
    return any(env.get(name, "0") not in ("", "0") for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def beside_a_first_on_this_machine(environ: Mapping[str, str] | None = None) -> bool:
    """Whether torchrun or srun started this process beside a first one on the same machine (``LOCAL_RANK`` /
    ``SLURM_LOCALID`` above 0): that one runs the same command line, so its refusal is this one's too
    (:func:`cnnpl.cli.guarded` prints it once a machine). Lightning's own children are not counted: they
    check the command line after the first process did."""
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" in env:  # torchrun
        local = env.get("LOCAL_RANK", "0")
    elif "SLURM_LOCALID" in env and launcher_world_size(env) > 1:  # srun
        local = env["SLURM_LOCALID"]
    else:
        return False
    return local not in ("", "0")


def requested_processes(trainer: Mapping[str, Any]) -> int:
    """Processes a ``trainer`` config asks for: devices per node x ``num_nodes``, counted as Lightning does
    (``auto`` and ``-1``: all GPUs, or 1 on CPU, where Lightning refuses -1 and so does
    :func:`cnnpl.train.check_trainer_counts`)."""
    devices = trainer.get("devices", 1)
    num_nodes = trainer.get("num_nodes", 1)
    # a value of the wrong kind counts as one: check_settings names it (num_nodes=abc, devices=1.5)
    num_nodes = num_nodes if isinstance(num_nodes, int) and not isinstance(num_nodes, bool) and num_nodes > 0 else 1
    if isinstance(devices, bool) or not isinstance(devices, (int, str, Sequence)):
        devices = 1
    if isinstance(devices, str) and "," in devices:  # "0,1": device indices
        devices = [d for d in devices.split(",") if d.strip()]
    elif isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, int) and devices > 0:
        per_node = devices
    elif isinstance(devices, (int, str)):  # -1 or "auto"
        per_node = _all_devices(str(trainer.get("accelerator", "auto")))
    else:
        per_node = len(devices)
    return max(per_node, 1) * num_nodes


def _all_devices(accelerator: str) -> int:
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count()
    return 1


def check_launch(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`CnnplError` for a launch that cannot give one correct multi-process run.

    - Hydra multirun (``-m``) with more than one process: Lightning relaunches ``sys.argv`` in each
      new process, which would start the whole sweep again per process.
    - An external launcher (``torchrun``, ``srun``) with a run directory that contains Hydra's
      ``${now:...}`` timestamp: each process resolves its own time, so ranks would write to different
      directories. ``hydra.run.dir`` must be pinned to the same path on every node.
    - ``trainer.num_nodes`` above 1 without a launcher: Lightning would wait for nodes nobody starts.
    - ``trainer.sync_batchnorm=true`` on CPU processes: torch's ``SyncBatchNorm`` has no CPU kernel
      (DDP raises "SyncBatchNorm layers only work with GPU modules" in every process).
    - A strategy that spawns its processes (``ddp_spawn``) with a plugin file loaded: a spawned process
      cannot import the module cnnpl made of the file, and fails to unpickle the network.

    Call it first thing in ``cnnpl.train.train``; it reads the config and the environment only.
    """
    trainer = cfg.get("trainer") or {}
    num_nodes = trainer.get("num_nodes", 1)
    if isinstance(num_nodes, int) and not isinstance(num_nodes, bool) and num_nodes > 1 and launcher_world_size() <= 1:
        slurm = os.environ.get("SLURM_NNODES") == str(num_nodes) and "GROUP_WORLD_SIZE" not in os.environ
        raise CnnplError(
            f"trainer.num_nodes={num_nodes}{' (SLURM_NNODES of this allocation)' if slurm else ''} needs its "
            f"processes started on every node by torchrun (--nnodes="
            f"{num_nodes}) or srun; started alone it would wait for the other nodes for ever. On one machine use "
            "trainer.num_nodes=1 with trainer.devices=<n> (trainer=ddp_cpu on CPUs); see docs/distributed.md"
        )
    processes = max(requested_processes(trainer), launcher_world_size())
    warn_more_processes_than_cores(trainer)
    if processes > 1 and trainer.get("sync_batchnorm") and on_cpu(trainer):
        raise CnnplError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU implementation): "
            "remove it for CPU processes (trainer=ddp_cpu); each process then normalises with its own batch"
        )
    if processes > 1 and _spawns(trainer.get("strategy")):
        from cnnpl.plugins import loaded_plugins

        files = [p.source.removeprefix("file ") for p in loaded_plugins() if p.kind == "file" and p.error is None]
        if files:
            strategy = trainer.get("strategy")
            fix = (  # +trainer.strategy.start_method=spawn on trainer=ddp_cpu: not "use trainer=ddp_cpu" (helper-135)
                f"drop trainer.strategy.start_method={strategy.get('start_method')} (Lightning's ddp starts processes "
                "that run the command again and load it too)"
                if isinstance(strategy, Mapping)
                else "use trainer=ddp_cpu (Lightning's ddp, whose processes run the command again and load it too)"
            )
            raise CnnplError(
                f"trainer.strategy starts {processes} fresh Python processes (spawn), which cannot import the plugin "
                f"file {files[0]} that plugins=[...] loaded: {fix}, or install the plugin as a package "
                "(docs/plugins.md)"
            )
    hydra = _hydra_config()
    if hydra is None:  # composed in Python (cnnpl.compose): the caller owns the output directory
        return
    from hydra.types import RunMode

    if hydra.mode == RunMode.MULTIRUN:
        check_sweep_job(trainer)
    if hydra.mode == RunMode.RUN:
        check_shared_run_dir(_raw_run_dir(hydra))


def check_launched_processes(trainer: Mapping[str, Any]) -> None:
    """Refuse a ``trainer`` config that does not count the processes torchrun or srun started (``--nproc_per_node=2``
    with ``trainer.devices=1``): Lightning refuses it with a traceback in every process."""
    started, asked = launcher_world_size(), requested_processes(trainer)
    if started > 1 and asked != started:
        raise CnnplError(
            f"{launched()}, but trainer.devices x trainer.num_nodes asks for {asked} "
            f"({trainer.get('devices', 1)} x {trainer.get('num_nodes', 1)}): give the processes of each machine "
            "and the machines, trainer.devices=<n> trainer.num_nodes=<m> (under torchrun trainer=ddp and "
            "trainer=ddp_cpu read both from it)"
        )


def _spawns(strategy: Any) -> bool:
    """Whether a ``trainer.strategy`` setting starts its processes with multiprocessing's spawn or forkserver
    (``ddp_spawn``, ``DDPStrategy(start_method="spawn")``): they import what they unpickle afresh."""
    if isinstance(strategy, str):
        return "spawn" in strategy
    if isinstance(strategy, Mapping):
        return str(strategy.get("start_method", "popen")) in ("spawn", "forkserver")
    return False


def check_sweep_job(trainer: Mapping[str, Any]) -> None:
    """Refuse a job of a Hydra multirun (``-m``) that asks for more than one process (``trainer`` settings).

    :func:`check_launch` calls it in each job, ``python -m cnnpl`` for every job before Hydra writes
    the sweep's folder (:mod:`cnnpl.cli`).
    """
    if launcher_world_size() > 1:  # (helper-135: was "sweep with trainer.devices=1", to one who had)
        raise CnnplError(
            f"Hydra multirun (-m) cannot run under a launcher's processes ({launched()}): run the sweep with "
            "python -m cnnpl -m ... alone, or one torchrun / srun command per configuration"
        )
    processes = requested_processes(trainer)
    if processes > 1:
        raise CnnplError(
            f"Hydra multirun (-m) cannot run multi-process jobs ({processes} processes asked for): "
            "sweep with trainer.devices=1, or run one `python -m cnnpl ... trainer=ddp_cpu` per configuration"
        )


def check_shared_run_dir(run_dir: str) -> None:
    """Refuse a ``hydra.run.dir`` setting (uninterpolated) named by the time when torchrun / srun started
    several processes: each would read its own time. :func:`check_launch` calls it in the run,
    ``python -m cnnpl`` before Hydra makes the folder (:mod:`cnnpl.cli`)."""
    if launcher_world_size() > 1 and "${now:" in run_dir:
        raise CnnplError(
            f"{launched()}, which need one shared output directory: add hydra.run.dir=<path> (the same on every "
            "node; e.g. outputs/$SLURM_JOB_ID) to the command"
        )


def warn_more_processes_than_cores(trainer: Mapping[str, Any]) -> None:
    """Warn (once, in the first process) when Lightning's launcher is to start more CPU processes on this machine
    than it has cores (``trainer=ddp_cpu trainer.devices=3`` on 2): they share the cores, and each step waits
    for the slowest (helper-135: it ran without a word). torchrun and srun count their own processes."""
    import logging

    if launcher_world_size() > 1 or is_worker() or not on_cpu(trainer):
        return
    devices = trainer.get("devices", 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > cores:
        logging.getLogger(__name__).warning(
            "trainer.devices=%d starts %d CPU processes on a machine with %d cores: they share the cores, and each "
            "step waits for the slowest; give trainer.devices=%d or fewer",
            devices,
            devices,
            cores,
            cores,
        )


def on_cpu(trainer: Mapping[str, Any]) -> bool:
    """Whether a ``trainer`` config runs on the CPU: ``accelerator=cpu``, or ``auto`` without CUDA or MPS."""
    import torch

    accelerator = str(trainer.get("accelerator", "auto"))
    found = torch.cuda.is_available() or torch.backends.mps.is_available()
    return accelerator == "cpu" or (accelerator == "auto" and not found)


def in_sweep() -> bool:
    """Whether this run is one job of a Hydra multirun sweep (``-m``)."""
    hydra = _hydra_config()
    if hydra is None:
        return False
    from hydra.types import RunMode

    return bool(hydra.mode == RunMode.MULTIRUN)


def _hydra_config() -> Any:
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    return HydraConfig.get() if HydraConfig.initialized() else None


def _raw_run_dir(hydra: Any) -> str:
    """``hydra.run.dir`` before interpolation (``outputs/${now:%Y-%m-%d}/...`` by default)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.to_container(hydra.run, resolve=False).get("dir", ""))
