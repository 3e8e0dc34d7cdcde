"""What ``python -m cnnpl`` runs: build everything from a composed config, fit, test the best checkpoint.

It instantiates from configs through :func:`cnnpl.network.instantiate_node` (which says in one line why a node cannot
be built), builds the network with :func:`cnnpl.network.build_model`, and sets up the process as
:mod:`cnnpl.environment` says. Everything that can be checked is built and
checked before ``Trainer.fit`` starts, so a bad config fails in seconds with one clear message:
the output directory must be writable; a new run may not start where another run trained (its
checkpoints, or its ``config.yaml``); a checkpoint to resume from (``ckpt_path=<file>`` or
``ckpt_path=last``, the run directory's latest ``checkpoints/last*.ckpt``) must exist, hold more than the
weights, load with ``weights_only=True``, fit the model, and come from a run with the same settings (its
``config.yaml``, which a run writes when training starts). Every run writes checkpoints atomically
(:class:`cnnpl.checkpoint.AtomicCheckpointIO`) and carries the guards of :mod:`cnnpl.callbacks.guards`
(random state in checkpoints, a checkpoint on SIGTERM, a stop on a NaN / infinite loss).
See docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import logging
import math
import re
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnpl.environment import (
    environment_line,
    hide_lightning_tips,
    keep_freed_memory,
    skip_missing_nvml,
    warn_emulated_bf16,
)
from cnnpl.errors import (
    CnnplError,
    DataError,
    NeedsMoreMemory,
    out_of_memory,
    say,
    shown_cause,
    yaml_word,
)
from cnnpl.network import build_model, instantiate_node, smallest_square, warn_identical_filters, warn_unused_components
from cnnpl.registry import MODEL_FACTORIES, built_by, get_registry
from cnnpl.viz import eval_mode

EXIT_SIGTERM = 128 + 15  # the shell's status for a process ended by SIGTERM
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit unsigned
# Trainer arguments that must be integers; Lightning checks the ranges of most when the Trainer is built
TRAINER_COUNTS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "log_every_n_steps",
    "accumulate_grad_batches",
    "num_sanity_val_steps",
)
# the least value of each count, and what -1 means where it is allowed
TRAINER_COUNT_RANGES = {
    "max_epochs": (-1, " (-1: no limit)"),
    "max_steps": (-1, " (-1: no limit)"),
    "min_epochs": (0, ""),
    "min_steps": (0, ""),
    "log_every_n_steps": (0, ""),
    "num_sanity_val_steps": (-1, " (-1: the whole validation set)"),
}


def check_forward(
    net: torch.nn.Module,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    model: str,
    training: bool = True,
) -> None:
    """Refuse a network that cannot classify a batch, before training.

    Two blank images go through ``net`` (eval mode, no gradients, the random state untouched) and must
    come out as ``(2, num_classes)`` logits. Otherwise a component of the wrong shape (a pool plugin
    that halves the channels) or a model that breaks the contract (5 logits for 10 classes, a tuple)
    fails at the sanity check or the first step, with a traceback; here the message names the layer.
    ``training``: then through a copy of ``net`` in the modes it trains in too (:func:`_training_copy`: a layer
    whose training branch fails; the copy, about the network's size in memory, for a while).
    """
    entered: list[str] = []  # the layer running now, or the last one that finished
    running = [False]

    def enter(name: str, *_: Any) -> None:
        entered[:] = [name]
        running[0] = True

    def leave(*_: Any) -> None:
        running[0] = False

    leaves = [(name, m) for name, m in net.named_modules() if name and next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(functools.partial(enter, name)) for name, m in leaves]
    handles += [m.register_forward_hook(leave) for _, m in leaves]
    batch = f"a batch of 2 {in_channels}x{input_size[0]}x{input_size[1]} images"
    mode = ""  # the pass that failed: eval mode's, or training mode's
    try:
        with eval_mode(net), torch.random.fork_rng(devices=[]), torch.no_grad():
            out = net(torch.zeros(2, in_channels, *input_size))
        copied = _training_copy(net) if training else None  # a layer's own training branch, batch statistics
        if copied is not None:
            mode, entered[:], running[0] = " in training mode", [], False  # a failure before any layer: none named
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                copied(torch.zeros(2, in_channels, *input_size))
    except CnnplError:
        raise
    except Exception as err:  # any failure of user code becomes the one line
        where = ""
        if entered:
            layer = entered[0]
            kind = type(dict(leaves)[layer]).__name__
            where = f" {'in' if running[0] else 'after'} layer {layer} ({kind})"
        reason = (str(err).splitlines() or [""])[0]
        if out_of_memory(err):  # not the components' fault: the images (or the widths) are too large
            raise NeedsMoreMemory(
                f"model={model} needs more memory than this machine can give for {batch}{mode}{where} ({reason}); use "
                "smaller images or a narrower network"
            ) from None
        from cnnpl.plugins import place_in_code_of

        places = (place_in_code_of(err, module) for module in (*(dict(leaves)[layer] for layer in entered), net))
        place = next((place for place in places if place), "")  # a plugin's layer or model: the line that raised
        reason += f" ({place})" if place else ""
        raise CnnplError(
            f"model={model} fails on {batch}{mode}{where}: {type(err).__name__}: {reason}; check that its components "
            "fit each other (a conv, pool or norm plugin must keep the shapes the network expects)"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise CnnplError(
            f"model={model} returns {got} for {batch}; a model must return one tensor of "
            f"(N, num_classes) = (2, {num_classes}) logits"
        )


def _training_copy(net: torch.nn.Module) -> torch.nn.Module | None:
    """A copy of ``net`` (its hooks copied too), so that a forward pass in the modes it trains in (its modules' own:
    Lightning trains a module left in eval mode in eval mode) leaves ``net``'s batch-norm statistics and any state its
    layers keep as they were. None where no module of it is in training mode (the eval pass was the same), or where
    it cannot be copied (a layer holding a lock or a file): then only its eval-mode pass is checked."""
    import copy

    if not any(module.training for module in net.modules()):
        return None
    try:
        return copy.deepcopy(net)
    except Exception:
        return None


def check_train_sizes(
    net: torch.nn.Module,
    datamodule: Any,
    model_name: str,
    max_epochs: Any,
    components: Mapping[str, Any] | None = None,
) -> None:
    """Refuse progressive resizing (``data.train_sizes``) that cannot work, before training.

    The last epoch must train at full size (what the test sees), and the network must take every
    size: one blank image of each goes through ``net`` (in eval mode, no gradients), so a network that
    flattens a fixed-size feature map fails here, not at epoch 0's first step. ``components``: the
    run's ``{family: name}`` choices (``{"conv": "locally_connected", ...}``); when the layer that
    fails is one of them, the message names that choice rather than the model.
    """
    train_sizes = list(getattr(datamodule, "train_sizes", None) or ())
    if not train_sizes:
        return
    if isinstance(max_epochs, int) and 0 < max_epochs <= len(train_sizes):
        count = f"{len(train_sizes)} size{'s' if len(train_sizes) > 1 else ''}"
        fewer = (
            f"give at most {max_epochs - 1} size{'s' if max_epochs != 2 else ''}"
            if max_epochs > 1
            else "leave data.train_sizes=[]"
        )
        raise CnnplError(
            f"data.train_sizes has {count} but trainer.max_epochs={max_epochs}: the last epoch must train at full "
            f"size, so {fewer} or train more epochs"
        )
    sizes = sorted(set(train_sizes))
    entered: list[torch.nn.Module] = []  # the modules whose forward is running, innermost last

    def enter(module: torch.nn.Module, _: Any) -> None:
        entered.append(module)

    def leave(module: torch.nn.Module, _: Any, __: Any) -> None:
        entered.pop()

    def takes(side: int) -> bool:  # (no hooks: the search below runs after the failure, with them removed)
        try:
            with eval_mode(net), torch.no_grad():
                net(torch.zeros(1, datamodule.in_channels, side, side))
        except (RuntimeError, ValueError):
            return False
        return True

    hooks: list[Any] = []
    try:
        for module in net.modules():
            if not isinstance(module, torch.jit.ScriptModule):  # which take no hooks (nor run the inner ones)
                hooks += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
        with eval_mode(net):
            for size in sizes:
                x = torch.zeros(1, datamodule.in_channels, size, size)
                entered.clear()
                try:
                    with torch.no_grad():
                        net(x)
                except (RuntimeError, ValueError) as err:
                    reason = (str(err).splitlines() or [type(err).__name__])[0]
                    chosen = _chosen_component(entered[-1], components) if entered else None
                    if chosen is not None:
                        family, name = chosen
                        raise CnnplError(
                            f"data.train_sizes: {family}={name} cannot take {size}x{size} images in model={model_name} "
                            f"({reason}); choose a {family} that takes any size, or leave data.train_sizes=[]"
                        ) from None
                    failed = (size, reason)
                    break
            else:
                return
    finally:
        for handle in hooks:
            handle.remove()
    size, reason = failed
    full = min(datamodule.input_size)  # helper-130: fast_net, which ends in global pooling, was sent to fast_net
    smallest = smallest_square(takes, size, largest=full) if size < full else None
    if smallest is not None and smallest < full:
        raise CnnplError(
            f"data.train_sizes: model={model_name} cannot take {size}x{size} images ({reason}); the smallest it takes "
            f"is {smallest}x{smallest}: give sizes from {smallest}, or leave data.train_sizes=[]"
        )
    own = "x".join(map(str, datamodule.input_size))
    raise CnnplError(
        f"data.train_sizes: model={model_name} cannot take {size}x{size} images ({reason}); it takes only the data's "
        f"own size, {own}: use a model that takes any size (one ending in global pooling: fast_net, resnet18, ...), "
        "or leave data.train_sizes=[]"
    )


def _chosen_component(module: torch.nn.Module, components: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """:func:`cnnpl.registry.chosen_component`, when ``module`` was built for one input size (an
    ``input_size`` it keeps, as ``conv=locally_connected`` does); None for a layer that merely gets too
    small an input (that is the model's and the sizes' doing)."""
    from cnnpl.registry import chosen_component

    return chosen_component(module, components) if getattr(module, "input_size", None) is not None else None


def check_writable(folder: Path, option: str = "hydra.run.dir", ckpt_path: Any = None) -> None:
    """Refuse an output directory that cannot be created or written, before anything trains
    (``option``: the override that chooses it, for the message). ``ckpt_path``: the run's; ``last``, where the
    folder holds a run's ``checkpoints/last.ckpt``, is told how to go on from it in another folder."""
    import tempfile

    def probe() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as file:  # a byte written: a full disk still makes empty files
            file.write(b"\0")
            file.flush()

    try:
        try:
            probe()
        except FileNotFoundError:  # removed since it was made, by another command refused in it (cnnpl.cli)
            probe()
    except OSError as err:
        what, python = (
            ("output directory", " (or output_dir=<folder> from Python)")
            if option == "hydra.run.dir"
            else ("folder", "")
        )
        from cnnpl.checkpoint import LAST, resolve_ckpt_path

        try:  # last.ckpt, or the newest last-vN.ckpt
            last = resolve_ckpt_path(LAST, folder / "checkpoints") if ckpt_path == LAST else None
        except Exception:
            last = None
        if last is not None and option == "hydra.run.dir":  # helper-127: a read-only run
            advice = f"make it writable, or go on in another folder: hydra.run.dir=<new folder> ckpt_path={last}"
        else:
            advice = f"choose another with {option}=<folder>{python}"
        # hydra.run.dir=<a file>: "(File exists)" did not say that the path is no folder (helper-137)
        blocked = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        why = f"{str(blocked)!r} is a file, not a folder" if blocked is not None else err.strerror or str(err)
        raise CnnplError(f"{what} {str(folder)!r} cannot be written ({why}); {advice}") from None


def check_trainer_counts(trainer_cfg: Any) -> None:
    """Refuse a non-integer step or epoch count (Lightning would fail on it only once training starts),
    a zero accumulation, validation period or interval (Lightning divides by them mid-fit), and a
    negative gradient clip (Lightning would not clip at all, silently)."""
    for key in TRAINER_COUNTS:
        value = trainer_cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise CnnplError(f"trainer.{key} must be an integer, got {yaml_word(value)}")
        least, meaning = TRAINER_COUNT_RANGES.get(key, (None, ""))
        if value is not None and least is not None and value < least:  # Lightning's words name no key
            raise CnnplError(f"trainer.{key} must be >= {least}{meaning}, got {value}")
    _check_devices(trainer_cfg)
    for key in ("accumulate_grad_batches", "check_val_every_n_epoch"):
        value = trainer_cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:  # Lightning divides by it
            usual = "1: no accumulation" if key == "accumulate_grad_batches" else "or null: by val_check_interval only"
            raise CnnplError(f"trainer.{key} must be >= 1 ({usual}), got {value}")
    interval = trainer_cfg.get("val_check_interval")
    if isinstance(interval, (int, float)) and not isinstance(interval, bool) and interval <= 0:
        raise CnnplError(
            f"trainer.val_check_interval must be > 0: a number of training batches (>= 1) or a fraction of the "
            f"epoch in (0, 1], got {interval}"
        )
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0):
        raise CnnplError(
            f"trainer.gradient_clip_val must be a number >= 0 (0: no clipping; 1.0 is usual), got {yaml_word(clip)}"
        )


def _check_devices(trainer_cfg: Any) -> None:
    """Refuse a ``trainer.devices`` or ``num_nodes`` Lightning would refuse in its own words, without the key or a
    fix: on the CPU, ``devices`` is a number of processes (``-1``, "all devices", and device indices are for
    GPUs); ``num_nodes`` is a number of machines; under torchrun or srun the two count the processes started."""
    from cnnpl.distributed import check_launched_processes, on_cpu

    nodes = trainer_cfg.get("num_nodes")
    if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes < 1:
        raise CnnplError(f"trainer.num_nodes must be >= 1 (the machines the run spans), got {nodes}")
    devices = trainer_cfg.get("devices")
    if isinstance(devices, bool) or devices is None:
        return  # the kind check names them
    count = int(devices) if isinstance(devices, str) and devices.strip().lstrip("-").isdigit() else devices
    auto = isinstance(devices, str) and devices.strip() == "auto"  # 1 on the CPU, every GPU otherwise
    if not auto and on_cpu(trainer_cfg):
        if not isinstance(count, int) or count < 1:
            shown = OmegaConf.to_container(devices) if isinstance(devices, ListConfig) else devices
            raise CnnplError(
                f"trainer.devices on the CPU is a number of processes, >= 1 (or auto: 1), got {yaml_word(shown)}; "
                "-1 and device indices choose GPUs (trainer.accelerator=gpu)"
            )
    elif not auto and isinstance(count, int) and (count == 0 or count < -1):
        raise CnnplError(f"trainer.devices must be >= 1, -1 (all GPUs), auto or a list of GPU indices, got {count}")
    check_launched_processes(trainer_cfg)


def _how_to_add_callback(name: str) -> str:
    """How to add the callback ``name`` to the run's: beside the chosen set where it is a registered one (the
    command line's list, else the set the composition chose: an experiment's, inherited ones too, else
    ``default``)."""
    from cnnpl.registry import get_registry

    if name not in get_registry("callback").names():
        return f"give callbacks.{name}._target_=<the dotted path of its class>"
    from hydra.core.hydra_config import HydraConfig

    from cnnpl.checks import _run_overrides_and_experiment
    from cnnpl.config import compose_plain

    overrides = _run_overrides_and_experiment()[0]
    given = [o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+") == "callbacks"]
    words = [word.strip(" '\"") for word in given[-1].strip("[] ").split(",")] if given else []
    if not given:  # (helper-132/134: experiment=fast_cifar10, and the experiments built on it, chose minimal)
        try:
            choices = (
                HydraConfig.get().runtime.choices
                if HydraConfig.initialized()
                else compose_plain(list(overrides), output_dir=None, hydra=True).hydra.runtime.choices
            )
            words = [str(choices.get("callbacks") or "default")]
        except Exception:
            words = ["default"]
    chosen = ",".join([*(word for word in words if word), name])
    return f"add it with callbacks=[{chosen}], then set callbacks.{name}.<setting>= without the +"


def _check_pictures_logger(cfg: DictConfig) -> None:
    """Refuse the picture callbacks with a logger other than TensorBoard's (``logger=csv``) from the config, as
    a sweep checks its jobs: the callbacks' own check (``VisualCallback.tensorboard_logger``, which stays for
    loggers built otherwise) came once the data had loaded, in a sweep's first job after Hydra had begun it.
    Without a logger (``~logger``) too. A picture callback that finds its writer otherwise (its own
    ``tensorboard_logger``) is left to itself."""
    logger = _callback_class(cfg.logger) if cfg.get("logger") else None  # a _target_'s class, nothing built
    if (cfg.get("logger") and logger is None) or cfg.trainer.get("fast_dev_run"):  # (DummyLogger: the callbacks')
        return
    from lightning.pytorch.loggers import TensorBoardLogger

    from cnnpl.callbacks.base import VisualCallback, no_tensorboard

    if logger is not None and issubclass(logger, TensorBoardLogger):
        return
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = _callback_class(node)
        if (
            isinstance(callback, type)
            and issubclass(callback, VisualCallback)
            and callback.tensorboard_logger is VisualCallback.tensorboard_logger
        ):
            raise CnnplError(no_tensorboard(name, [logger.__name__] if logger is not None else []))


def _check_no_logger_needed(cfg: DictConfig) -> None:
    """Without a logger (``~logger``), refuse Lightning's LearningRateMonitor now, not at the start of training."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if node and node.get("_target_", "").endswith("LearningRateMonitor"):
            raise CnnplError(
                f"callbacks.{name} logs the learning rate, but the run has no logger (~logger); drop it as well "
                f"with ~callbacks.{name} (and the pictures, which need TensorBoard, with callbacks=minimal), "
                "or keep a logger: logger=tensorboard or logger=csv"
            )


def save_config(cfg: DictConfig | str, path: Path) -> None:
    """Write ``cfg`` (unresolved; or its YAML text) to ``path`` in one step: other processes never read half a
    file."""
    from cnnpl.files import atomic_write

    text = cfg if isinstance(cfg, str) else OmegaConf.to_yaml(cfg, resolve=False)
    atomic_write(path, lambda f: f.write(text.encode()))


def check_strategy(trainer_cfg: Any) -> None:
    """Refuse a ``trainer.strategy`` name Lightning does not know (``dpp``), naming the key: Lightning's
    refusal came when the Trainer was built (a sweep's later job, after the first had trained)."""
    strategy = trainer_cfg.get("strategy")
    strategy = strategy.lower() if isinstance(strategy, str) else strategy  # Lightning reads DDP as ddp
    if not isinstance(strategy, str) or strategy in ("auto", "ddp", "ddp_spawn", "ddp_fork", "single_device"):
        return
    from lightning.pytorch.strategies import StrategyRegistry

    names = ["auto", *StrategyRegistry.available_strategies()]
    if strategy in ("gloo", "nccl", "mpi", "ucc"):  # (helper-135: no word that it is a backend)
        raise CnnplError(
            f"trainer.strategy={strategy} names a process-group backend, not a strategy: use trainer=ddp_cpu (ddp "
            "over gloo, for CPUs) or trainer=ddp (over nccl, for GPUs)"
        )
    if strategy not in names:
        close = difflib.get_close_matches(strategy, names, n=1)
        raise CnnplError(
            f"trainer.strategy {strategy!r} is not one of Lightning's strategies"
            + (f"; did you mean {close[0]}?" if close else "")
            + " (ddp, ddp_spawn, fsdp, ...; or an object: {_target_: ...})"
        )


def _nccl(trainer_cfg: Any) -> bool:
    """Whether the strategy asks for NCCL (``trainer=ddp``), which trainer.accelerator=cpu does not make run."""
    strategy = trainer_cfg.get("strategy")
    return isinstance(strategy, Mapping) and str(strategy.get("process_group_backend")).lower() == "nccl"


def check_process_group(trainer_cfg: Any, accelerator: str) -> None:
    """Refuse a DDP strategy's ``process_group_backend`` that torch lacks here (``glooo``, ``mpi`` without MPI) or
    that cannot run on ``accelerator`` (NCCL on the CPU: ``trainer=ddp trainer.accelerator=cpu``), and a
    ``timeout`` that is no time span longer than 0: each was a traceback once the processes had started, after
    Hydra had made the run's folder (helper-135)."""
    import datetime

    import torch.distributed as dist

    strategy = trainer_cfg.get("strategy")
    if not isinstance(strategy, Mapping):
        return
    backend = strategy.get("process_group_backend")
    if isinstance(backend, str):
        known = [name for name in dist.Backend.backend_list if name not in ("undefined", "fake")]
        # one backend, or torch's one a device ("cpu:gloo,cuda:nccl", helper-138)
        named = [part.rpartition(":")[2].strip().lower() for part in backend.split(",")]
        for name in named:
            if name not in known or not dist.is_backend_available(name):
                here = [name for name in known if dist.is_backend_available(name)]
                raise CnnplError(
                    f"trainer.strategy.process_group_backend={backend} is not a backend this torch has; it has "
                    f"{', '.join(here)} (gloo for CPUs: trainer=ddp_cpu; nccl for GPUs: trainer=ddp)"
                )
        if backend.lower() == "nccl" and accelerator == "cpu":
            raise CnnplError(
                "trainer.strategy.process_group_backend=nccl runs on GPUs only, and this run's accelerator is cpu; "
                "for several processes on the CPU use trainer=ddp_cpu (gloo)"
            )
    timeout = strategy.get("timeout")
    if timeout is None:
        return
    span = None
    if isinstance(timeout, Mapping) and str(timeout.get("_target_")) == "datetime.timedelta":
        try:
            span = datetime.timedelta(**{str(k): v for k, v in timeout.items() if k != "_target_"})
        except (TypeError, ValueError, OverflowError):
            span = None
    if span is None or span.total_seconds() <= 0:
        raise CnnplError(
            f"trainer.strategy.timeout must be a time span longer than 0 (how long a collective waits for a "
            f"stuck peer), got {_shown(timeout)}; write trainer.strategy.timeout.minutes=10"
        )


def _shown(value: Any) -> str:
    """A config value as the command line would write it (``{_target_:datetime.timedelta,minutes:0}``)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_shown(v)}" for k, v in value.items()) + "}"
    return yaml_word(value) if not isinstance(value, str) else value


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")  # Lightning's names (an object of one's own: a node)


def check_accelerator(trainer_cfg: Any) -> str:
    """The accelerator ``trainer.accelerator`` gives on this machine (``cuda``, ``mps``, ``cpu``, ...), as
    Lightning picks it for ``auto`` and ``gpu``; refuses ``gpu`` / ``cuda`` (``trainer=ddp``, the GPU recipe)
    on a machine without a usable GPU."""
    accelerator = str(trainer_cfg.get("accelerator") or "auto")
    mps = getattr(torch.backends, "mps", None)
    gpu = "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else None
    picked = {"auto": gpu or "cpu", "gpu": gpu, "cuda": "cuda" if gpu == "cuda" else None}
    if accelerator not in picked:
        if isinstance(trainer_cfg.get("accelerator"), str) and accelerator not in ACCELERATORS:
            from lightning.pytorch.accelerators import AcceleratorRegistry  # one a package registered (hpu)

            if accelerator in AcceleratorRegistry.available_accelerators():
                return accelerator
            close = difflib.get_close_matches(accelerator, ACCELERATORS, n=1)
            raise CnnplError(
                f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {yaml_word(accelerator)}"
                + (f"; did you mean {close[0]}?" if close else "")
            )
        return accelerator
    if picked[accelerator] is None:
        raise CnnplError(
            f"trainer.accelerator={accelerator} but this machine has no usable GPU (torch.cuda.is_available() is "
            "False); train on the CPU with trainer=ddp_cpu for several processes"
            + ("" if _nccl(trainer_cfg) else ", or trainer.accelerator=cpu for one")
        )
    return picked[accelerator]


# What ImageClassifier logs (val/acc_top5 only with top5); a checkpoint or early stop watching another
# val/ or train/ name would fail only after the first validation, an epoch into training
LOGGED_METRICS = ("train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_top5")


TEST_METRICS = ("test/loss", "test/acc", "test/acc_top5")  # logged once the test runs, after the fit


def never_logged(tag: str, known: Sequence[str]) -> str | None:
    """Why ``tag`` names no metric of ``known`` ("a metric that is never logged; did you mean ...? cnnpl logs
    ..."), or None where it is one, or may be a plugin's own: a name outside ``train/``, ``val/`` and
    ``test/`` that looks like none of ``known`` (``valacc``, ``acc`` do)."""
    import difflib

    if tag in known:
        return None
    close = difflib.get_close_matches(tag, known, n=1, cutoff=0.6 if "/" in tag else 0.7)
    if not tag.startswith(("val/", "train/", "test/")) and not close:
        return None
    hint = f"did you mean {close[0]}? " if close else ""
    top5 = ", ".join(name for name in known if name.endswith("acc_top5"))
    return f"a metric that is never logged; {hint}cnnpl logs {', '.join(known)} ({top5} with more than 5 classes)"


def check_monitors(callbacks: list[Any], validates: bool = True, fits: bool = True) -> None:
    """Refuse a ``monitor=`` of a checkpoint or early-stopping callback that names no metric cnnpl logs.

    Names under ``val/`` and ``train/`` are checked, ``test/`` ones refused (no test runs during the fit),
    and others only when they look like a misspelt logged metric (``valacc``, ``acc``): a plugin may log
    metrics of its own; ``val/`` ones are refused where nothing is validated (``validates`` false). A
    checkpoint ``filename`` must be a string (Hydra reads ``{epoch}`` as a mapping).
    """
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if not validates and isinstance(monitor, str) and monitor.startswith("val/"):
            raise CnnplError(
                f"{type(callback).__name__}(monitor={monitor!r}) watches a validation metric, but nothing is "
                "validated (data.val_split=0, or trainer.limit_val_batches=0); monitor a training metric "
                "(train/loss_epoch, train/acc), or hold out a validation split"
            )
        if isinstance(monitor, str) and monitor.startswith("test/"):
            raise CnnplError(
                f"{type(callback).__name__}(monitor={monitor!r}) watches a test metric, which exists only after "
                f"training; monitor one of {', '.join(LOGGED_METRICS)}"
            )
        never = never_logged(monitor, LOGGED_METRICS) if isinstance(monitor, str) else None
        if never:
            raise CnnplError(f"{type(callback).__name__}(monitor={monitor!r}) watches {never}")
        if not fits:  # fit=false: nothing is saved or stopped
            continue
        if monitor == "train/loss_step" and _saves_at_epoch_ends(callback):
            raise CnnplError(  # Lightning's "could not find the monitored key" at the first epoch's end (helper-154)
                f"{type(callback).__name__}(monitor='train/loss_step') watches {_STEP_LOSS_UNSEEN}; monitor "
                f"train/loss_epoch, {_every_n_steps(callback)}"
            )
        better = _BETTER.get(monitor) if isinstance(monitor, str) else None
        if better is not None and getattr(callback, "mode", better) != better:  # it kept the worst (helper-153)
            higher = "lower" if better == "min" else "higher"
            raise CnnplError(
                f"{type(callback).__name__}(monitor={monitor!r}, mode={callback.mode!r}) counts the "
                f"{'highest' if better == 'min' else 'lowest'} {monitor} as the best, and a {higher} one is better: "
                f"give it mode={better} (callbacks.{callback_key(callback)}.mode={better})"
            )
    for callback in callbacks:
        filename = getattr(callback, "filename", None)
        if hasattr(callback, "dirpath") and filename is not None and not isinstance(filename, str):
            raise CnnplError(
                f"{type(callback).__name__}(filename={filename!r}) is not a file name: Hydra reads an override "
                "value in braces as a mapping; quote it, e.g. 'callbacks.checkpoint.filename=\"epoch{epoch:03d}\"'"
            )
        if fits and isinstance(filename, str) and callable(getattr(callback, "format_checkpoint_name", None)):
            _check_checkpoint_name(callback, filename)


# Whether a lower (min) or higher (max) value of a metric cnnpl logs is better
_BETTER = {name: "min" if "/loss" in name else "max" for name in LOGGED_METRICS}

_STEP_LOSS_UNSEEN = "a metric of each step, which a checkpoint saved at an epoch's end does not see"


def _every_n_steps(callback: Any) -> str:
    return f"or save every N steps (callbacks.{callback_key(callback)}.every_n_train_steps=N)"


def _saves_at_epoch_ends(callback: Any) -> bool:
    """Whether ``callback`` is a ModelCheckpoint that saves at epochs' ends only (no ``every_n_train_steps``)."""
    return not getattr(callback, "_every_n_train_steps", 1)


_EXAMPLE_NAME = 'callbacks.checkpoint.filename="epoch{epoch:03d}-val_acc{val/acc:.4f}"'


def _check_checkpoint_name(callback: Any, filename: str) -> None:
    """Refuse a checkpoint ``filename`` template Lightning cannot fill (``{epoch``, ``{val/acc:d}``: a traceback at
    the first save, an epoch into training) or that names a metric never logged (Lightning writes 0 for it,
    silently: ``e0-0.000.ckpt``). Filled as Lightning fills it, with ``epoch`` and ``step`` and every metric cnnpl
    logs (helper-153)."""
    names = [name[1:] for name in re.findall(r"(\{.*?)[:\}]", filename)]  # Lightning's own pattern
    for name in names:
        if name == "train/loss_step" and _saves_at_epoch_ends(callback):
            raise CnnplError(  # Lightning wrote 0 for it, silently (helper-154)
                f"{type(callback).__name__}(filename={filename!r}) names train/loss_step, {_STEP_LOSS_UNSEEN}; name "
                f"train/loss_epoch, {_every_n_steps(callback)}"
            )
        never = None if name in ("epoch", "step") else never_logged(name, LOGGED_METRICS)
        if never:
            raise CnnplError(
                f"{type(callback).__name__}(filename={filename!r}) names {name}, {never}; write e.g. {_EXAMPLE_NAME}"
            )
    metrics = {name: torch.tensor(0.5) for name in LOGGED_METRICS}
    metrics.update(epoch=torch.tensor(3), step=torch.tensor(30))
    try:
        callback.format_checkpoint_name(metrics, filename=filename)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise CnnplError(
            f"{type(callback).__name__}(filename={filename!r}) is not a name template Lightning can fill "
            f"({type(err).__name__}: {err}); write e.g. {_EXAMPLE_NAME}"
        ) from None


def check_batch_counts(trainer: Any, datamodule: Any, validates: bool) -> None:
    """Refuse ``trainer.limit_train_batches`` and ``trainer.val_check_interval`` values that Lightning
    refuses only inside the fit (a fraction of the epoch under one batch, a validation interval longer
    than the epoch; counted for cnnpl's data modules, whose training split and batch size are known), and
    a ``check_val_every_n_epoch`` beyond ``max_epochs`` (no validation, so no best checkpoint)."""
    every, epochs = trainer.check_val_every_n_epoch, trainer.max_epochs
    if validates and isinstance(every, int) and isinstance(epochs, int) and 0 < epochs < every:
        raise CnnplError(
            f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}: validation would never run, "
            "so no best checkpoint would be kept and the test would take the last weights; validate at most every "
            f"{epochs} epochs, or hold out no validation split (data.val_split=0) to test the last epoch"
        )
    split, batch_size = getattr(datamodule, "split", None), getattr(datamodule, "batch_size", None)
    if not callable(split) or not isinstance(batch_size, int):
        return
    per_process = math.ceil(len(split("train")) / trainer.world_size)  # DistributedSampler pads
    length = math.ceil(per_process / batch_size)
    limit, key = trainer.limit_train_batches, _limit_key(trainer, "train")
    if isinstance(limit, float) and limit > 0 and int(length * limit) == 0:
        raise CnnplError(
            f"trainer.{key}={limit} of the {_batches(length, 'training')} an epoch is less than one batch; give at "
            f"least {_least_fraction(length)}, or a whole number of batches (+trainer.{key}=5)"
        )
    batches = min(length, limit) if isinstance(limit, int) else int(length * limit)
    _check_steps_reach_full_size(trainer, datamodule, batches)
    interval = getattr(trainer, "val_check_interval", None)  # none where it is a time ("00:00:05:00", {minutes:5})
    if validates and isinstance(interval, int) and trainer.check_val_every_n_epoch is not None and interval > batches:
        raise CnnplError(
            f"trainer.val_check_interval={interval} is more than the {batches} training batches of an epoch, so "
            f"validation would never run; give at most {batches}, or a fraction of the epoch such as 0.5"
        )


def check_eval_fractions(trainer: Any, datamodule: Any, splits: Sequence[str]) -> None:
    """Refuse a fraction ``trainer.limit_val_batches`` or ``trainer.limit_test_batches`` that leaves a process
    less than one batch of a split the run evaluates (``splits``).

    Lightning refuses it only when that evaluation starts (the test after the whole fit), with its traceback.
    Under DDP it refuses only in the processes whose share is too short (shares of 2 batches and 1 at 0.5), and
    the others' next collective fails with gloo's "Connection closed by peer", a second traceback. Counted for
    cnnpl's data modules, whose splits and ``eval_batch_size`` are known: under DDP each process evaluates its
    own share (:class:`cnnpl.distributed.EvalShardSampler`), the shortest of ``len // world_size`` images;
    other strategies pad every share to ``ceil(len / world_size)``, or, with ``use_distributed_sampler=false``,
    evaluate the whole split in every process.
    """
    from lightning.pytorch.strategies import DDPStrategy

    split, batch_size = getattr(datamodule, "split", None), getattr(datamodule, "eval_batch_size", None)
    if not callable(split) or not isinstance(batch_size, int):
        return
    connector = getattr(trainer, "_accelerator_connector", None)
    shared = trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", True)
    world = trainer.world_size if shared or type(trainer.strategy) is DDPStrategy else 1  # (the data module's own)
    for name in splits:
        limit, key = getattr(trainer, f"limit_{name}_batches", None), _limit_key(trainer, name)
        if not isinstance(limit, float) or limit <= 0:
            continue
        size = len(split(name))
        images = size // world if type(trainer.strategy) is DDPStrategy else math.ceil(size / world)
        length = math.ceil(images / batch_size)
        if length and int(length * limit) == 0:
            of = f"the {_batches(length, _SPLIT_WORDS[name])}"
            of += f" of the shortest of {world} processes' shares" if world > 1 else ""
            raise CnnplError(
                f"trainer.{key}={limit} of {of} is less than one batch; give at least {_least_fraction(length)}, or "
                f"a whole number of batches (+trainer.{key}=2)"
            )


def _limit_key(trainer: Any, name: str) -> str:
    """The setting that limits the ``name`` batches: ``overfit_batches`` where it is on (Lightning then takes it
    for the training and validation limits), else ``limit_<name>_batches``."""
    overfit = getattr(trainer, "overfit_batches", 0)
    return (
        "overfit_batches"
        if name != "test" and isinstance(overfit, (int, float)) and overfit > 0
        else f"limit_{name}_batches"
    )


_SPLIT_WORDS = {"val": "validation", "test": "test"}


def _least_fraction(length: int) -> str:
    """The least fraction with three significant digits that Lightning turns into at least one of ``length``
    batches (``int(length * fraction)``): 1 / length rounded up, where rounding to nearest can fall short
    (1 / 49 reads 0.0204, and 49 * 0.0204 < 1)."""
    scale = 10 ** (2 - math.floor(math.log10(1 / length)))
    steps = math.ceil(scale / length)
    while int(length * (steps / scale)) < 1:
        steps += 1
    return str(float(f"{steps / scale:.3g}"))  # 1.0, not 1: Lightning takes an integer for a count of batches


def _batches(count: int, kind: str) -> str:
    return f"{count} {kind} batch{'' if count == 1 else 'es'}"


def _check_steps_reach_full_size(trainer: Any, datamodule: Any, batches: int) -> None:
    """Refuse a ``trainer.max_steps`` that ends the run inside the epochs ``data.train_sizes`` trains below
    full size (:func:`check_train_sizes` counts ``max_epochs`` only): the test would see images of a size
    the network never trained on. ``batches``: the training batches an epoch."""
    sizes = list(getattr(datamodule, "train_sizes", None) or ())
    steps, accumulate = getattr(trainer, "max_steps", -1), getattr(trainer, "accumulate_grad_batches", 1)
    if not sizes or not isinstance(steps, int) or steps <= 0 or batches <= 0 or not isinstance(accumulate, int):
        return
    per_epoch = math.ceil(batches / max(accumulate, 1))  # an epoch's last batches step too, though fewer
    if steps <= len(sizes) * per_epoch:
        last = math.ceil(steps / per_epoch)
        small = "the first epoch" if len(sizes) == 1 else f"the first {len(sizes)} epochs"
        raise CnnplError(
            f"trainer.max_steps={steps} ends the run in its {_ordinal(last)} epoch ({per_epoch} steps an epoch), but "
            f"data.train_sizes trains {small} below full size: the last epoch must train at full size, so give "
            f"trainer.max_steps above {len(sizes) * per_epoch} (or -1), or fewer sizes"
        )


def _in_own_run(checkpoint: Path, run_dir: Path) -> bool:
    """Whether ``checkpoint`` lies in ``run_dir``'s own folders (``checkpoints/``, a ``dirpath`` of its own such as
    ``${output_dir}/ckpts``), not in a run nested in it (a folder between with a ``config.yaml`` of its own)."""
    folder, top = checkpoint.resolve().parent, run_dir.resolve()
    if not folder.is_relative_to(top):
        return False
    while folder != top:
        if (folder / "config.yaml").is_file():
            return False
        folder = folder.parent
    return True


def _ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``11th``: a count from 1, not to be read as an epoch number from 0 (helper-130)."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _has_model_checkpoint(callbacks: list[Any]) -> bool:
    from lightning.pytorch.callbacks import ModelCheckpoint

    return any(isinstance(callback, ModelCheckpoint) for callback in callbacks)


def _resumed_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint ``cfg.ckpt_path`` resumes, found from the config alone (``last`` in
    ``callbacks.checkpoint.dirpath``, else ``<output_dir>/checkpoints``); None where there is none to be
    found this way, which the checks after the callbacks are built then report."""
    from omegaconf import OmegaConf

    from cnnpl.checkpoint import LAST, resolve_ckpt_path

    setting = cfg.get("ckpt_path")
    if setting is None or str(setting) == "":
        return None
    if str(setting) != LAST:
        path = Path(str(setting)).expanduser()
        return str(path) if path.is_file() else None
    try:
        dirpath = OmegaConf.select(cfg, "callbacks.checkpoint.dirpath", default=None)
        return resolve_ckpt_path(LAST, Path(str(dirpath)) if dirpath else output_dir / "checkpoints")
    except Exception:  # none there, or a folder only the built callback knows
        return None


def _checkpoint_dir(callbacks: list[Any], output_dir: Path) -> Path:
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath)
    return output_dir / "checkpoints"


def _checkpoint_latest(callbacks: list[Any]) -> None:
    """Without a validation split there is no val/acc to rank checkpoints: keep the latest epoch's."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and (callback.monitor or "").startswith("val/"):
            callback.monitor = None
            callback.save_top_k = 1
            callback.filename = "epoch{epoch:03d}"


def _named_callback(node: Any, key: str) -> Any:
    """The callback ``callbacks.<key>`` builds. A cnnpl callback's messages name its settings by its registry
    name (``callbacks.freeze.parameters``); under another key (``callbacks.freeze_whitening``) they name that."""
    try:
        callback = instantiate_node(node)
    except CnnplError as err:
        default = getattr(_callback_class(node), "name", None)
        if isinstance(default, str) and default != key:
            raise CnnplError(str(err).replace(f"callbacks.{default}", f"callbacks.{key}")) from shown_cause(err)
        raise
    if isinstance(getattr(type(callback), "name", None), str):
        callback.name = key
    with contextlib.suppress(TypeError):  # a plugin's unhashable callback: named callbacks.<name> in messages
        _CONFIG_KEYS[callback] = key
    return callback


_CONFIG_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()  # each built callback's config key


def callback_key(callback: Any) -> str:
    """``callback``'s config key (``checkpoint`` for ``callbacks.checkpoint``), or ``<name>`` for one built
    elsewhere, for the messages that say which setting to change."""
    try:
        return _CONFIG_KEYS.get(callback, "<name>")
    except TypeError:
        return "<name>"


def build_callbacks(cfg: DictConfig) -> list[Any]:
    """A run's callbacks: the config's (``callbacks.*``), then the guards every run carries."""
    import lightning as L

    from cnnpl.callbacks.guards import FiniteLossGuard, RandomStateCheckpoint, SigtermCheckpoint
    from cnnpl.hooks import check_hook_signatures

    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if not node:
            continue
        callback = _named_callback(node, name)
        if not isinstance(callback, L.Callback):
            raise CnnplError(
                f"callbacks.{name} built a {type(callback).__name__}, not a Lightning Callback: its _target_ "
                "(or the registered component) must make a lightning.pytorch.Callback"
            )
        check_hook_signatures(callback, name)
        callbacks.append(callback)
    return [*callbacks, RandomStateCheckpoint(), SigtermCheckpoint(), FiniteLossGuard()]


def _with_atomic_checkpoints(plugins: Any) -> list[Any]:
    """``trainer.plugins`` (none, one, or a list; configs or Lightning's strings) built, plus
    :class:`~cnnpl.checkpoint.AtomicCheckpointIO` unless one of them already handles checkpoints."""
    from lightning.fabric.plugins import CheckpointIO

    from cnnpl.checkpoint import AtomicCheckpointIO

    built = instantiate_node(plugins) if plugins else []
    built = list(built) if isinstance(built, (list, ListConfig)) else [built]
    if not any(isinstance(plugin, CheckpointIO) for plugin in built):
        built.append(AtomicCheckpointIO())
    return built


def check_settings(cfg: DictConfig) -> None:
    """The checks of a run's settings that need nothing built.

    Flags and on/off settings, the names of the trainer's and callbacks' arguments, step and epoch
    counts, the accelerator and precision, a logger where a callback needs one, and the seed.
    ``train`` runs them first; the command line runs them (with :func:`checked_datamodule`,
    :func:`checked_optimizer` and :func:`checked_schedule`) for every job of a sweep before the first
    one trains.
    """
    from cnnpl.checks import (
        check_arguments,
        check_filled,
        check_flags,
        check_fused_clipping,
        check_on_off,
        check_precision,
        check_trainer_words,
    )

    # first: the trainer's, the logger's and the checkpoints' folders are made from it
    output_dir = cfg.get("output_dir")
    if not isinstance(output_dir, str) or not output_dir.strip():
        # '' made the checkpoints' ${output_dir}/checkpoints the file system's /checkpoints
        raise CnnplError(  # (output_dir= on the command line is refused before: cnnpl.cli._check_output_dir)
            f"output_dir must name a folder, got {yaml_word(output_dir)}; leave it to Hydra's run directory "
            "(hydra.run.dir=<folder> on the command line), or give one from Python: cnnpl.compose(..., "
            "output_dir=<folder>)"
        )
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not isinstance(ckpt, str):  # helper-127: [a,b] and true "did not exist"
        quote = f" (for a file named {ckpt}, quote it: ckpt_path=\"'{ckpt}'\")" if type(ckpt) in (int, float) else ""
        raise CnnplError(f"ckpt_path must be a .ckpt file or last, got {yaml_word(ckpt)}{quote}")
    check_flags(cfg)
    check_trainer_words(cfg.trainer)  # before the kind checks, which list every value Lightning's hint allows
    check_on_off(cfg.trainer, "trainer")
    check_arguments(cfg.trainer, "trainer")
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and not isinstance(node, Mapping):  # helper-130: Hydra's five lines, a run folder
            raise CnnplError(
                f"callbacks.{name}={node} is not a callback's settings: give one of them "
                f"(callbacks.{name}.<setting>=...), or drop the callback with ~callbacks.{name}"
            )
        if isinstance(node, Mapping) and "_target_" not in node:  # +callbacks.histograms.every_n_epochs=2
            raise CnnplError(
                f"callbacks.{name} has settings ({', '.join(map(str, node))}) but no _target_ to build: "
                f"{_how_to_add_callback(name)}"
            )
        check_filled(node, f"callbacks.{name}", f"callback {name!r}")
        check_on_off(node, f"callbacks.{name}")
        check_arguments(node, f"callbacks.{name}")
    # cnnpl's data modules and loggers, and Lightning's, hand **kwargs on to their bases; a user's own
    # class may swallow settings it ignores (def __init__(self, **_)), so only theirs are checked
    for key, owners in (("data", ("cnnpl.",)), ("logger", ("cnnpl.", "lightning."))):
        node = cfg.get(key)
        if node and str(node.get("_target_", "")).startswith(owners):
            check_arguments(node, key)
    # the system's settings are ImageClassifier's keywords (beside the network, classes, optimizer and schedule)
    system = cfg.get("system") or {}
    given = {
        "net": "model=<name>",
        "num_classes": "the data",
        "optimizer": "optimizer=<name>",
        "schedule": "scheduler=",
    }
    for key, source in given.items():
        if key in system:  # +system.num_classes=5: "got multiple values for argument 'num_classes'", data loaded
            raise CnnplError(f"system.{key} is not a setting: {source} gives it; remove +system.{key}")
    check_arguments({"_target_": "cnnpl.system.ImageClassifier", **system}, "system")
    check_trainer_counts(cfg.trainer)
    check_strategy(cfg.trainer)
    accelerator = check_accelerator(cfg.trainer)
    check_process_group(cfg.trainer, accelerator)
    check_precision(cfg.trainer, accelerator)
    check_fused_clipping(cfg, accelerator)
    if cfg.get("logger"):
        check_on_off(cfg.logger, "logger")
        flush = cfg.logger.get("flush_logs_every_n_steps")  # Lightning's loggers: a step count it divides by
        if isinstance(flush, int) and not isinstance(flush, bool) and flush < 1:
            raise CnnplError(
                f"logger.flush_logs_every_n_steps must be >= 1 (write the logs every N steps), got {flush}"
            )
        save_dir = cfg.logger.get("save_dir")
        if isinstance(save_dir, str) and not save_dir.strip():  # '' wrote to <cwd>/tensorboard, shared by every run
            raise CnnplError(
                "logger.save_dir must name a folder, got ''; leave it to the run's folder (its default, "
                "${output_dir}), or give one (logger.save_dir=<folder>)"
            )
    else:
        _check_no_logger_needed(cfg)
    _check_pictures_logger(cfg)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED:
        raise CnnplError(f"seed must be an integer in [0, {MAX_SEED}] (NumPy's range), got {yaml_word(cfg.seed)}")


def checked_datamodule(cfg: DictConfig) -> Any:
    """The data module ``cfg.data`` builds, after its own ``check()`` (its files are there; nothing is read)."""
    datamodule = instantiate_node(cfg.data)
    if hasattr(datamodule, "check"):
        try:
            datamodule.check()
        except DataError as err:
            hint = _moved_root_hint(cfg)
            if not hint:
                raise
            raise DataError(f"{err}{hint}") from None
    return datamodule


def _moved_root_hint(cfg: DictConfig) -> str:
    """What to add to a not-found message for a relative ``data.root`` read in a job that ``hydra.job.chdir=true``
    moved into its output folder (the sweep's check before the jobs found it, where the command started)."""
    from hydra.core.hydra_config import HydraConfig

    root = OmegaConf.select(cfg, "data.root", default=None)
    if not isinstance(root, str) or Path(root).expanduser().is_absolute() or not HydraConfig.initialized():
        return ""
    if not HydraConfig.get().job.get("chdir"):
        return ""
    return (
        f"; data.root={root} is relative, and hydra.job.chdir=true runs the job in its output folder: give an "
        f"absolute path, or data.root='${{hydra:runtime.cwd}}/{root}'"
    )


def check_callbacks_network(
    callbacks: list[Any], system: Any, input_shape: tuple[int, int, int] | None = None, max_epochs: Any = None
) -> None:
    """Refuse the parts of the network that the callbacks name (freeze's parameters, the pictures' layers,
    BackboneFinetuning's ``backbone``) and ``system`` lacks, and, given the images' ``(channels, height, width)``,
    the pictures' layers that do not give maps: before training, a dry run's and a sweep's later job's too, not in
    Lightning's setup after the logger has opened its files. A callback's ``check_network`` is given the shape and
    ``max_epochs`` (``trainer.max_epochs``) where it takes them; a plugin's ``check_network(pl_module)`` neither."""
    for callback in callbacks:
        kept = _backbone_readers(type(callback))
        if kept and not isinstance(getattr(system, "backbone", None), torch.nn.Module):
            from lightning.pytorch.callbacks import BackboneFinetuning

            if type(callback) is BackboneFinetuning:  # a traceback as the fit started (helper-153)
                what = "Lightning's BackboneFinetuning freezes and later unfreezes the LightningModule's `backbone`"
                advice = ""
            else:  # a subclass that overrides them all works on what it chooses (helper-155)
                reads = "reads" if len(kept) == 1 else "read"
                what = f"{type(callback).__name__} keeps BackboneFinetuning's {', '.join(kept)}, which {reads} the "
                what += "LightningModule's `backbone`"
                advice = f"override {'it' if len(kept) == 1 else 'them'} to work on its network, or "
            raise CnnplError(
                f"callbacks.{callback_key(callback)}: {what}, which cnnpl's ImageClassifier does not have; {advice}"
                "train the classifier of pretrained weights with model.freeze_features=true, then all of it in a "
                "second run from that run's checkpoint (docs/howto/finetune.md)"
            )
        check_network = getattr(callback, "check_network", None)
        if not callable(check_network):
            continue
        takes = inspect.signature(check_network).parameters
        given = {"input_shape": input_shape, "max_epochs": max_epochs}
        check_network(system, **{key: value for key, value in given.items() if key in takes and value is not None})


def _callback_class(node: Any) -> type | None:
    """The class a callback's config builds, found without building it: its ``_target_``, or the registered
    component a ``cnnpl.registry.build`` node names (``callbacks=[minimal,freeze]``); None where that is no
    class that can be imported (:func:`cnnpl.registry.located`, which logs nothing for one that cannot)."""
    from cnnpl.registry import located

    if not isinstance(node, Mapping):
        return None
    built = built_by(node)
    try:
        found = get_registry(built[0]).load(built[1]) if built else located(str(node.get("_target_")))
    except Exception:  # not importable, not registered: left to the build, which names what is wrong
        return None
    return found if isinstance(found, type) else None


def _network_checking_callbacks(cfg: DictConfig) -> list[Any]:
    """The config's callbacks whose class checks the network (``check_network``), built as a run builds them,
    for a sweep's check of its jobs; one that cannot be built outside its job (it reads Hydra's run-time config,
    or its folder) is left to the job, as is every other callback."""
    built = []
    for name, node in (cfg.get("callbacks") or {}).items():
        found = _callback_class(node) if node else None
        if found is not None and (callable(getattr(found, "check_network", None)) or _backbone_readers(found)):
            try:
                built.append(_named_callback(node, name))
            except Exception:
                continue
    return built


def _backbone_readers(cls: type) -> list[str]:
    """The methods of Lightning's BackboneFinetuning that ``cls`` keeps, each of which reads the module's
    ``backbone`` (:func:`check_callbacks_network` checks it has one); none for a class of another kind, or a
    subclass that overrides them all (to work on another part of the network)."""
    from lightning.pytorch.callbacks import BackboneFinetuning

    if not issubclass(cls, BackboneFinetuning):
        return []
    readers = ("on_fit_start", "freeze_before_training", "finetune_function")
    return [name for name in readers if getattr(cls, name) is getattr(BackboneFinetuning, name)]


def check_network_shape(cfg: DictConfig, datamodule: Any) -> None:
    """Build the network ``cfg`` describes for the data's shape, where the data module knows it without
    loading the data (:meth:`~cnnpl.data.base.InMemoryImageDataModule.known_shape`), and pass a batch
    through it (:func:`check_forward`): a layer that does not fit the images is refused, and so are
    augmentation settings that do not fit them (``check_image_settings``), and the network's parts that
    the callbacks name (:func:`check_callbacks_network`).

    For every job of a sweep, before the first trains (a run checks its own network once its data is
    loaded). A failure that is not cnnpl's refusal is left to the job, which reports it in full.
    """
    from cnnpl.checks import check_muon_filters

    known = datamodule.known_shape() if hasattr(datamodule, "known_shape") else None
    if known is None:
        return
    num_classes, in_channels, input_size = known
    if hasattr(datamodule, "check_image_settings"):  # cutout, crop padding, train_sizes against the image side
        datamodule.check_image_settings(input_size)
    quiet = logging.getLogger("cnnpl.pretrained")  # the job says what it loaded, and warns of it, in its own log
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        net = build_model(cfg, num_classes, in_channels, input_size)
        check_forward(net, num_classes, in_channels, input_size, cfg.model.get("name", "?"))
        chosen = {family: (cfg.get(family) or {}).get("name") for family in MODEL_FACTORIES}
        check_muon_filters(net, instantiate_node(cfg.optimizer), chosen)
        from cnnpl.system import ImageClassifier

        system = ImageClassifier(net, num_classes, **cfg.system)
        check_callbacks_network(
            _network_checking_callbacks(cfg), system, (in_channels, *input_size), cfg.trainer.get("max_epochs")
        )
    except CnnplError:
        raise
    except Exception:  # a component's own bug: the job's traceback says more than one line could
        return
    finally:
        quiet.disabled = was_disabled


def checked_optimizer(cfg: DictConfig) -> Any:
    """The optimizer factory ``cfg.optimizer`` builds, tried once on a dummy parameter
    (:func:`cnnpl.checks.check_optimizer`)."""
    from cnnpl.checks import check_optimizer

    optimizer = instantiate_node(cfg.optimizer)
    check_optimizer(optimizer)
    return optimizer


def _endless(trainer: Mapping[str, Any]) -> str | None:
    """The settings that leave the run without an end, as Lightning reads them (None if it has one)."""
    max_steps = trainer.get("max_steps", -1)
    if isinstance(max_steps, int) and max_steps > 0:
        return None
    max_epochs = trainer.get("max_epochs")
    if max_epochs == -1:
        return "trainer.max_epochs=-1"
    if max_epochs is None and trainer.get("max_time") is not None:  # Lightning's 1000-epoch default yields to it
        return "trainer.max_epochs=null with trainer.max_time"
    return None


def _is_lookahead(node: Any) -> bool:
    target = str(node.get("_target_", "")) if isinstance(node, Mapping) else ""
    return target.endswith("Lookahead") or built_by(node) == ("callback", "lookahead")


def checked_schedule(cfg: DictConfig, optimizer: Any = None) -> Any:
    """The learning-rate schedule ``cfg.scheduler`` builds (``None`` for ``scheduler=none``), checked
    on ``optimizer`` (the factory :func:`checked_optimizer` gave; built from ``cfg`` if not given)."""
    from cnnpl.checks import check_scheduler

    node = cfg.get("scheduler")
    if node and "_target_" not in node:  # scheduler=none (or ~scheduler._target_) under a preset's settings
        removals = " ".join(f"~scheduler.{key}" for key in node)
        raise CnnplError(
            f"scheduler has settings ({', '.join(node)}) but no schedule to take them (an experiment's, or added "
            f"with +scheduler.*); for a constant learning rate remove them too: scheduler=none {removals}, or "
            "choose a schedule that takes them (scheduler=<name>)"
        )
    endless = _endless(cfg.get("trainer") or {})
    if node and endless:
        raise CnnplError(
            f"scheduler ({node._target_}) plans the learning rate over the whole run, which {endless} leaves "
            "without an end; set trainer.max_epochs or +trainer.max_steps, or choose scheduler=none"
        )
    lookahead = [key for key, cb in (cfg.get("callbacks") or {}).items() if _is_lookahead(cb)]
    if lookahead and endless:
        raise CnnplError(
            f"callbacks.{lookahead[0]} ramps its decay over the whole run, which {endless} leaves without an end; "
            "set trainer.max_epochs or +trainer.max_steps"
        )
    schedule = instantiate_node(node) if node else None
    if schedule is not None and optimizer is None and cfg.get("optimizer"):
        optimizer = instantiate_node(cfg.optimizer)
    check_scheduler(schedule, optimizer)
    return schedule


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit on ``cfg.data``, then test the best checkpoint; returns the final logged metrics.

    With no validation split (``data.val_split=0``) nothing is validated, the checkpoint kept is the
    latest epoch's, and that is the one tested.

    Raises :class:`CnnplError` for a config, data or checkpoint problem (before training where it can
    be seen), :class:`cnnpl.callbacks.guards.NonFiniteLossError` when the loss goes NaN / infinite,
    and ``SIGTERMException`` (a ``SystemExit`` with status 143) after saving ``last.ckpt`` on SIGTERM.
    """
    with contextlib.ExitStack() as held:  # the run folder's lock (checkpoint.claimed_run_dir) while it trains
        return _train(cfg, held)


def _train(cfg: DictConfig, held: contextlib.ExitStack) -> dict[str, float]:
    import lightning as L

    from cnnpl.callbacks.base import VisualCallback
    from cnnpl.callbacks.guards import ConfigWriter
    from cnnpl.checkpoint import (
        LAST,
        check_checkpoint_fits,
        check_fresh_run_dir,
        check_loadable,
        check_resumable,
        check_resume_length,
        check_resume_settings,
        claimed_run_dir,
        has_run_config,
        resolve_ckpt_path,
        safe_load,
        saved_data_state,
        set_aside_attempt,
        tested_settings_differ,
        validation_off,
    )
    from cnnpl.checks import (
        check_eval_shards,
        check_muon_filters,
        check_tta,
        warn_mirrored_classes,
        warn_muon_without_norm,
    )
    from cnnpl.distributed import check_launch, in_sweep, is_worker
    from cnnpl.hooks import skip_unused_batch_hooks
    from cnnpl.loggers import start_logs
    from cnnpl.plugins import load_plugins
    from cnnpl.profiler import NullProfiler
    from cnnpl.system import ImageClassifier

    load_plugins(cfg.get("plugins") or [])  # a config saved by another process names its plugins
    check_settings(cfg)  # first: check_launch counts the processes from settings it takes to be of the right kind
    check_launch(cfg)
    output_dir = Path(cfg.output_dir)
    check_writable(output_dir, ckpt_path=cfg.get("ckpt_path"))
    if cfg.get("fit", True) and not is_worker():  # (the other processes of a run: its first one holds it)
        held.enter_context(claimed_run_dir(output_dir))
    resumed = _resumed_checkpoint(cfg, output_dir) if cfg.get("fit", True) else None
    if resumed is not None and has_run_config(resumed):  # before the data and the model: a forgotten
        check_resume_settings(resumed, cfg)  # override is named as one (a loose checkpoint, once it is read)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("keep_freed_memory", True):  # a boolean (check_flags)
        keep_freed_memory()
    skip_missing_nvml()  # after Lightning's import, which sets the variable

    datamodule = checked_datamodule(cfg)
    datamodule.setup("fit")
    check_tta(cfg.system, datamodule.input_size)
    warn_mirrored_classes(datamodule, cfg.system, fits=bool(cfg.get("fit", True)))
    unused: list[str] = []
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size, unused)
    warn_unused_components(cfg.model.get("name", "?"), unused)
    if cfg.get("fit", True) and not OmegaConf.select(cfg, "model.pretrained", default=None):  # (weights loaded)
        warn_identical_filters(net)
    check_forward(
        net, datamodule.num_classes, datamodule.in_channels, datamodule.input_size, cfg.model.get("name", "?")
    )
    chosen = {family: (cfg.get(family) or {}).get("name") for family in MODEL_FACTORIES}
    check_train_sizes(net, datamodule, cfg.model.get("name", "?"), cfg.trainer.get("max_epochs"), chosen)
    optimizer = checked_optimizer(cfg)
    schedule = checked_schedule(cfg, optimizer)
    check_muon_filters(net, optimizer, chosen)
    if cfg.get("fit", True):
        norm = chosen["norm"] if "norm" in cfg and "norm" not in unused else None  # (the model built its norms)
        warn_muon_without_norm(net, optimizer, cfg.model.get("name", "?"), norm)
    resized = bool(cfg.system.get("compile")) and bool(getattr(datamodule, "train_sizes", None))
    static = {"compile_dynamic": False} if resized and cfg.system.get("compile_dynamic") is None else {}
    system = ImageClassifier(net, datamodule.num_classes, optimizer, schedule, **{**cfg.system, **static})

    callbacks = build_callbacks(cfg)
    check_callbacks_network(
        callbacks, system, (datamodule.in_channels, *datamodule.input_size), cfg.trainer.get("max_epochs")
    )
    # +trainer.limit_val_batches=0: no validation loop, as without a validation split (the best checkpoint
    # by val/acc would be none, or an earlier run's); a resume keeps it on or off (check_resume_settings)
    validates = getattr(datamodule, "has_validation", True) and not validation_off(cfg.trainer.get("limit_val_batches"))
    if not validates:
        _checkpoint_latest(callbacks)
    check_monitors(callbacks, validates or not cfg.get("fit", True), fits=cfg.get("fit", True))  # testing: none runs
    # a plugin callback's or layer's state that no checkpoint could be read back with: now, not after training
    check_loadable({"state_dict": system.state_dict(), "callbacks": {c.state_key: c.state_dict() for c in callbacks}})
    checkpoint_dir = _checkpoint_dir(callbacks, output_dir)
    ckpt_setting = cfg.get("ckpt_path")
    if str(ckpt_setting) == LAST and cfg.get("fit", True) and in_sweep() and not any(checkpoint_dir.glob("*.ckpt")):
        # continuing a sweep: the jobs it had not reached (or left before their first checkpoint) start now
        aside = set_aside_attempt(output_dir, _logger_folders(cfg))
        logging.getLogger(__name__).info(
            "ckpt_path=last: no checkpoint in %s yet, so this job of the sweep starts from the beginning%s",
            checkpoint_dir,
            f" (the earlier attempt's files are in {aside})" if aside else "",
        )
        ckpt_setting = None
    ckpt_path = resolve_ckpt_path(ckpt_setting, checkpoint_dir, fit=bool(cfg.get("fit", True)))
    hpc_saved = any(output_dir.glob("hpc_ckpt_*.ckpt"))  # a SLURM requeue: Lightning resumes hpc_ckpt_N.ckpt itself
    if ckpt_path is not None:
        checkpoint = safe_load(ckpt_path)
        lightnings = isinstance(checkpoint, Mapping) and "state_dict" in checkpoint  # (weights alone: refused below)
        if cfg.get("fit", True) and lightnings and (ckpt_path != resumed or not has_run_config(ckpt_path)):
            # found through the built callbacks, or compared with the settings it holds: before its weights are
            # (helper-138: model=resnet18 was "122 tensors missing", not model.name (run: simple_cnn, ...))
            check_resume_settings(ckpt_path, cfg, checkpoint=checkpoint)
        checkpoint = check_checkpoint_fits(ckpt_path, system, cfg.model.get("name"), checkpoint)
        saved_data = saved_data_state(checkpoint, type(datamodule).__qualname__)
        if saved_data is not None and hasattr(datamodule, "check_classes"):
            datamodule.check_classes(saved_data, what=f"checkpoint {str(ckpt_path)!r}")
        if (
            not cfg.get("fit", True)
            and (differs := tested_settings_differ(ckpt_path, cfg, checkpoint))
            and not is_worker()
        ):
            logging.getLogger(__name__).warning(differs)
        if cfg.get("fit", True):
            check_resumable(ckpt_path, checkpoint, cfg.model.get("name"))
            check_resume_length(ckpt_path, checkpoint, cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps", -1))
            if Path(ckpt_path).resolve().parent not in (Path(checkpoint_dir).resolve(), output_dir.resolve()):
                # another run's: not into this one's checkpoints, nor over a run or test that left its config.yaml
                # (its own, when SLURM requeued it before its first checkpoint, or moved on to another
                # callbacks.checkpoint.dirpath from a checkpoint in its folder: helper-127, a disk full)
                own = is_worker() or hpc_saved or _in_own_run(Path(ckpt_path), output_dir)
                check_fresh_run_dir(checkpoint_dir, continuing=ckpt_path, run_dir=None if own else output_dir)
    elif cfg.get("fit", True) and not hpc_saved:
        # (a SLURM requeue resumes from hpc_ckpt_N.ckpt by itself; the other processes of a run find the
        # first one's config.yaml)
        check_fresh_run_dir(checkpoint_dir, run_dir=None if is_worker() else output_dir)
    logger = instantiate_node(cfg.logger) if cfg.get("logger") else False
    if cfg.get("fit", True):  # the steps an interrupted attempt logged after the checkpoint are trained again
        resumed_at = checkpoint.get("global_step") if ckpt_path is not None else None
        requeued = ckpt_path is None and hpc_saved  # Lightning resumes it itself
        if not requeued and (ckpt_path is None or isinstance(resumed_at, int)):
            start_logs(logger, resumed_at)
    extra: dict[str, Any] = {"plugins": _with_atomic_checkpoints(cfg.trainer.get("plugins"))}
    if not _has_model_checkpoint(callbacks) and cfg.trainer.get("enable_checkpointing") is None:
        # ~callbacks.checkpoint: no checkpoints (Lightning would add its own, in the logger's folder)
        extra["enable_checkpointing"] = False
    if not validates:
        extra["limit_val_batches"] = 0  # no validation loop at all (Lightning would warn of an empty one)
    if cfg.trainer.get("profiler") is None:
        extra["profiler"] = NullProfiler()  # Lightning's default, without its cost per hook call
    if cfg.get("fit", True):  # what a resume is compared with, and what render rebuilds from
        # the text, not the config: a plugin's generated config classes cannot be pickled for ddp_spawn's processes
        text = OmegaConf.to_yaml(cfg, resolve=False)
        callbacks.append(ConfigWriter(functools.partial(save_config, text, output_dir / "config.yaml"), text))
    hide_lightning_tips()
    # _convert_: a mapping reaches Lightning as a dict (+trainer.max_time={minutes:1}), not a DictConfig
    trainer = instantiate_node(cfg.trainer, callbacks=callbacks, logger=logger, _convert_="all", **extra)
    evaluated = [
        name for name, runs in (("val", cfg.get("fit", True) and validates), ("test", cfg.get("test", True))) if runs
    ]
    check_eval_shards(datamodule, trainer.world_size, evaluated)
    check_eval_fractions(trainer, datamodule, evaluated)
    if cfg.get("fit", True):
        check_batch_counts(trainer, datamodule, validates)
    for callback in trainer.callbacks:  # the pictures' own check runs in setup, in every process
        if isinstance(callback, VisualCallback):
            callback.tensorboard_logger(trainer)
    for callback in trainer.callbacks:  # the run's and those Lightning adds (ModelSummary)
        skip_unused_batch_hooks(callback)  # Lightning calls none of the batch hooks set to None

    # last of the checks: each makes its folder (where Lightning would at the first save, or first log)
    if cfg.get("logger") and cfg.logger.get("save_dir"):
        check_writable(Path(str(cfg.logger.save_dir)), "logger.save_dir")
    if _has_model_checkpoint(callbacks) and cfg.get("fit", True):
        check_writable(checkpoint_dir, "callbacks.checkpoint.dirpath")
    if trainer.is_global_zero:
        logging.getLogger(__name__).info(environment_line(trainer))
        warn_emulated_bf16(trainer)
        if not cfg.get("fit", True) and not (output_dir / "config.yaml").exists():
            # what render rebuilds from; a run that only tests (fit=false) in a run directory leaves the
            # training run's as it was (a training run writes its own when training starts: ConfigWriter)
            save_config(cfg, output_dir / "config.yaml")

    if not cfg.get("fit", True) and not cfg.get("test", True) and trainer.is_global_zero:
        logging.getLogger(__name__).info(
            "fit=false test=false: a dry run; the data, network, optimizer and callbacks were built and checked, "
            "nothing is trained or tested"
        )
    with _stop_children_on_failure(trainer):
        return _fit_and_test(cfg, trainer, system, datamodule, ckpt_path)


@contextlib.contextmanager
def _stop_children_on_failure(trainer: Any) -> Any:
    """Kill the processes Lightning's launcher started (``trainer=ddp_cpu``: ranks 1..N-1) when this one, rank 0,
    fails. Lightning kills them when one of them dies, or on Ctrl-C, but not when rank 0 raises: a rank waiting
    in a collective, or hung, then lived on after the command had exited (holding its GPU). On SIGTERM the
    processes agree to stop after the same batch and stop by themselves (``last.ckpt`` is saved;
    ``SigtermCheckpoint``).

    They are taken off the launcher's list first: Lightning's watch over that list SIGKILLs this process too,
    within 5 s, when one of them has ended with a failure, and took rank 0's report of its error with it where
    that report took longer (a flake on a busy machine)."""
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        yield
    except SIGTERMException:
        raise
    except BaseException:
        launcher = trainer.strategy.launcher
        if isinstance(launcher, _SubprocessScriptLauncher):
            children = list(launcher.procs)
            launcher.procs.clear()  # the watch's own list: it now finds no child to avenge
            for child in children:
                if child.poll() is None:
                    child.kill()
            for child in children:
                with contextlib.suppress(Exception):
                    child.wait(timeout=10)
        raise


def _warn_endless(trainer_cfg: Any, trainer: Any) -> None:
    """Say that ``trainer.max_epochs=-1`` with no step or time limit trains until stopped (helper-141: it started
    without a word, and only the refusal of -2 told what -1 means); once, in the first process."""
    if (
        trainer_cfg.get("max_epochs") != -1
        or trainer_cfg.get("max_steps") not in (None, -1)
        or trainer_cfg.get("max_time")
        or trainer_cfg.get("fast_dev_run")
        or not trainer.is_global_zero
    ):
        return
    warnings.warn(
        "trainer.max_epochs=-1 trains until stopped (Ctrl-C; SIGTERM saves last.ckpt), and the test comes only after "
        "an end: give trainer.max_epochs=<N>, +trainer.max_steps=<N> or +trainer.max_time=<DD:HH:MM:SS> for one",
        stacklevel=2,
    )


def _fit_and_test(cfg: DictConfig, trainer: Any, system: Any, datamodule: Any, ckpt_path: Any) -> dict[str, float]:
    """Train (``fit``) and test the best checkpoint (``test``); the metrics of both."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from cnnpl.loggers import open_test_logs_last

    metrics: dict[str, float] = {}
    if cfg.get("fit", True):
        _warn_endless(cfg.trainer, trainer)
        try:
            trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException:
            raise SIGTERMException(EXIT_SIGTERM) from None  # last.ckpt is saved (SigtermCheckpoint)
        except SystemExit:  # Lightning's exit(1) after Ctrl-C ("Detected KeyboardInterrupt"): say how to go on
            if trainer.interrupted and trainer.is_global_zero:
                say(f"cnnpl: interrupted (Ctrl-C); {_how_to_go_on(trainer, cfg)}")
            raise
        metrics.update(_floats(trainer.callback_metrics))
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt = best or (None if cfg.get("fit", True) else ckpt_path)
        if cfg.get("fit", True):
            trainer.callbacks = _without_weight_averaging(trainer.callbacks)
        if trainer.is_global_zero:  # the process that logs
            open_test_logs_last(trainer.loggers)
        try:
            with warnings.catch_warnings():
                if not cfg.get("fit", True):  # the checkpoint's ModelCheckpoint state: nothing a test uses
                    warnings.filterwarnings("ignore", message=r"The dirpath has changed from", category=UserWarning)
                trainer.test(system, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        except SIGTERMException:  # a SystemExit Lightning raises without a status: the shell would see 0
            if trainer.is_global_zero:
                say(
                    f"cnnpl: SIGTERM received during the test of {ckpt or 'the final weights'}: stopped, no test "
                    "metrics; test a checkpoint again with the run's command plus fit=false ckpt_path=<its .ckpt file>"
                )
            raise SIGTERMException(EXIT_SIGTERM) from None
        metrics.update(_floats(trainer.callback_metrics))
    return metrics


def _how_to_go_on(trainer: Any, cfg: DictConfig) -> str:
    """After Ctrl-C in training: the command that continues from the run's checkpoints (a sweep's own, for a job
    of a sweep), or that there are none to continue from."""
    from cnnpl.distributed import CONTINUE_SWEEP, in_sweep

    callback = trainer.checkpoint_callback
    folder = Path(callback.dirpath) if callback is not None and callback.dirpath else None
    if folder is None or not any(folder.glob("*.ckpt")):
        return "no checkpoint was saved, so there is nothing to resume: start the run again in a new folder"
    if in_sweep():
        return CONTINUE_SWEEP
    return f"resume from its last checkpoint with the run's command plus hydra.run.dir={cfg.output_dir} ckpt_path=last"


def _without_weight_averaging(callbacks: list[Any]) -> list[Any]:
    """``callbacks`` but Lightning's weight averaging (``EMAWeightAveraging``) for the test after a fit. A
    checkpoint's ``state_dict`` holds the averaged weights that ``val/acc`` ranked; loading it for the test,
    the callback, whose average lives on from the fit, put the checkpoint's raw weights back in their place
    (``current_model_state``), so the run tested weights no validation had scored."""
    from lightning.pytorch.callbacks import WeightAveraging

    return [callback for callback in callbacks if not isinstance(callback, WeightAveraging)]


def _logger_folders(cfg: DictConfig) -> list[Path]:
    """The folder the run's logger writes to (``<save_dir>/<name>``: ``tensorboard/``, ``csv/``), if it has one."""
    logger = cfg.get("logger") or {}
    save_dir, name = logger.get("save_dir"), logger.get("name")
    return [Path(str(save_dir)) / str(name)] if save_dir and name else []


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}
