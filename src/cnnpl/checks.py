"""Checks of a run's settings that :func:`cnnpl.train.train` makes before anything trains.

Each raises :class:`cnnpl.errors.CnnplError` with one line naming the key and the fix, and returns
``None`` when the settings can work. They are here because each would otherwise fail only once
training has started (a precision at the first batch, a scheduler in ``configure_optimizers``, an
evaluation split at the test), or not at all (``fit=maybe`` counting as true):

- :func:`check_flags`: the on / off settings are booleans, and the run has something to do;
- :func:`check_on_off`: so are the trainer's and the callbacks' (``trainer.deterministic=maybe``);
- :func:`check_arguments`: the trainer's and the callbacks' keys are arguments they take;
- :func:`check_precision`: ``trainer.precision`` works with cnnpl's data modules;
- :func:`check_optimizer`: the optimizer's settings are numbers, and it builds;
- :func:`check_scheduler`: the schedule builds, with every setting in range;
- :func:`check_eval_shards`: the processes can share the validation and test splits;
- :func:`check_tta`: ``system.tta_translate`` fits the images.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import importlib.util
import inspect
import logging
import types
import typing
from collections.abc import Collection, Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from collections.abc import Set as AbstractSet
from functools import partial
from typing import Any, Literal

import torch
from omegaconf import DictConfig, OmegaConf

from cnnpl.distributed import check_shardable
from cnnpl.errors import CnnplError, yaml_word

# The on / off settings of train.yaml, and their defaults
FLAGS = {"fit": True, "test": True, "keep_freed_memory": True, "system.tta_flip": False, "system.compile": False}

# Lightning's shorthands for precision values (Trainer(precision=...)); 16 is mixed, 64 is true
PRECISION_ALIASES = {"16": "16-mixed", "32": "32-true", "64": "64-true", "bf16": "bf16-mixed"}
# Precisions that cast the network's weights: the data modules normalise each batch to float32 in
# on_after_batch_transfer, after Lightning has converted the batch's floats (its uint8 images have
# none), so the cast network meets float32 images at its first step, on any accelerator
CAST_PRECISIONS = {"16-true": "float16", "bf16-true": "bfloat16", "64-true": "float64"}


def check_flags(cfg: DictConfig) -> None:
    """Refuse on / off settings that are not booleans, and runs that would train or test nothing.

    ``fit=maybe`` would count as true; ``fit=false`` (with ``test=true``) tests ``ckpt_path``, so it
    needs one; ``trainer.max_epochs=0``, ``trainer.max_steps=0`` or ``trainer.limit_train_batches=0``
    with ``fit=true`` trains nothing (and the test would then score an untrained network).
    """
    values = {}
    for key, default in FLAGS.items():
        group, _, name = key.rpartition(".")
        node = cfg.get(group) if group else cfg
        value = node.get(name, default) if node is not None else default
        if not isinstance(value, bool):
            raise CnnplError(f"{key} must be true or false, got {yaml_word(value)}")
        values[key] = value
    fit, test = values["fit"], values["test"]
    if not fit and test and not cfg.get("ckpt_path"):
        raise CnnplError("nothing to test: fit=false tests a checkpoint; give ckpt_path=<file> or drop fit=false")
    trainer = cfg.get("trainer") or {}
    limit = trainer.get("limit_test_batches")
    if test and isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit == 0:
        raise CnnplError(
            "trainer.limit_test_batches=0 tests nothing (and reports no test metrics); drop it, or add test=false "
            "to train without the test"
        )
    for key, instead in (
        ("logger", "logger=<name>, or ~logger for none"),
        ("callbacks", "callbacks=<set>, ~callbacks.<name>"),
    ):
        if key in trainer:  # cnnpl passes its own: +trainer.logger=false was ignored
            raise CnnplError(f"trainer.{key} is cnnpl's to set: remove +trainer.{key} and choose with {instead}")
    callbacks = cfg.get("callbacks") or {}
    saving = [
        name
        for name, node in callbacks.items()
        if isinstance(node, Mapping) and str(node.get("_target_")).endswith(".ModelCheckpoint")
    ]
    bars = [
        name
        for name, node in callbacks.items()
        if isinstance(node, Mapping) and str(node.get("_target_")).endswith("ProgressBar")
    ]
    if trainer.get("enable_progress_bar") is False and bars:  # Lightning refused the pair, naming neither key
        raise CnnplError(
            f"trainer.enable_progress_bar=false turns the progress bar off, but callbacks.{bars[0]} draws one; drop "
            f"it instead: ~callbacks.{bars[0]}"
        )
    if trainer.get("barebones") is True:  # Lightning refused the first of cnnpl's settings it met, an object's repr
        raise CnnplError(
            "trainer.barebones=true is Lightning's mode for timing the bare loop, which refuses what a cnnpl run does "
            "(logging, checkpoints, the progress bar, the model summary, the sanity check, the test of the best "
            "checkpoint); drop it. benchmarks/bench_overhead_paired.py times Lightning's barebones loop beside "
            "cnnpl's (docs/benchmarks.md)"
        )
    for least, most, unit in (("min_epochs", "max_epochs", "epochs"), ("min_steps", "max_steps", "steps")):
        low, high = trainer.get(least), trainer.get(most)
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
        if fit and numbers and high >= 0 and low > high:  # Lightning stopped at the maximum, silently
            raise CnnplError(
                f"trainer.{least}={low} is more than trainer.{most}={high}, which ends the run first; give "
                f"trainer.{most}={low} (or more) to train at least {low} {unit}"
            )
    if trainer.get("enable_checkpointing") is False and saving:  # Lightning refused the pair, naming neither key
        raise CnnplError(
            f"trainer.enable_checkpointing=false turns checkpoints off, but callbacks.{saving[0]} saves them; to "
            f"train without checkpoints drop it instead: ~callbacks.{saving[0]} (the test then runs on the final "
            "weights)"
        )
    span = _time_span(trainer.get("max_time"))
    if fit and span is not None and span.total_seconds() <= 0:  # Lightning stopped before the first step
        shown = trainer.get("max_time")
        shown = shown if isinstance(shown, str) else "{" + ",".join(f"{k}:{v}" for k, v in shown.items()) + "}"
        raise CnnplError(
            f"trainer.max_time={shown} trains nothing (and the test would score an untrained network); give a time "
            "longer than 0, as DD:HH:MM:SS (+trainer.max_time=00:00:10:00 for 10 minutes), or fit=false "
            "ckpt_path=<file> to test a checkpoint"
        )
    for key in ("max_epochs", "max_steps", "limit_train_batches"):
        value = trainer.get(key)
        if fit and isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            at_least = "a number of batches >= 1 or a fraction of them in (0, 1]" if key.startswith("limit") else ">= 1"
            raise CnnplError(
                f"trainer.{key}=0 trains nothing (and the test would score an untrained network); give "
                f"trainer.{key} {at_least}, or fit=false ckpt_path=<file> to test a checkpoint"
            )


def _time_span(value: Any) -> datetime.timedelta | None:
    """The time ``trainer.max_time`` gives, as Lightning's ``Timer`` reads it (``DD:HH:MM:SS``, ``{minutes:5}``,
    ``{_target_:datetime.timedelta,...}``); None where it is none, or one Lightning refuses in its own words."""
    try:
        if isinstance(value, str):
            days, hours, minutes, seconds = (int(part) for part in value.strip().split(":"))
            return datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if isinstance(value, Mapping) and str(value.get("_target_", "datetime.timedelta")) == "datetime.timedelta":
            return datetime.timedelta(**{str(k): v for k, v in value.items() if k != "_target_"})
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _on_off_values(hint: Any) -> tuple[Any, ...] | None:
    """The values a parameter annotated ``hint`` takes if it is an on / off setting (``bool``, perhaps with
    ``None`` or string literals such as ``"warn"``), else None."""
    if hint is bool:
        return (True, False)
    if origin := typing.get_origin(hint):
        if origin is Literal:
            return typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            values: list[Any] = []
            for arg in typing.get_args(hint):
                more = (None,) if arg is type(None) else _on_off_values(arg)
                if more is None:
                    return None
                values += more
            return tuple(values) if any(value is True for value in values) else None
    return None


def check_filled(node: Any, prefix: str, what: str) -> None:
    """Refuse a config node with a value still ``???``: a registered component's required parameter
    (``callback_config`` writes ``???`` for it), which Hydra would report as a traceback when it builds it."""
    if not isinstance(node, DictConfig):
        return
    missing = sorted(OmegaConf.missing_keys(node))  # full keys when the node has a parent
    if missing:
        key = missing[0] if missing[0].startswith(f"{prefix}.") else f"{prefix}.{missing[0]}"
        raise CnnplError(f"{what} needs a value for {key} (it has no default); set it on the command line: {key}=...")


def check_on_off(node: Mapping[str, Any] | None, prefix: str) -> None:
    """Refuse a string or a number where the ``_target_`` of ``node`` (a config group, ``prefix`` its key)
    takes an on / off value: Lightning and the callbacks would read ``trainer.deterministic=maybe`` as true,
    or fail only at the first save (``callbacks.checkpoint.save_last=maybe``); and a word or true / false
    where it takes only a number (``callbacks.progress_bar.refresh_rate=abc`` failed in the sanity check,
    ``+callbacks.early.patience=abc`` after the first epochs)."""
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str):
        return
    from cnnpl.registry import keyword_chain, located

    try:
        hints: dict[str, Any] = {}
        null_default: set[str] = set()  # `refresh_rate: int = None`: a hint that forgot Optional
        for function in keyword_chain(located(target))[0]:  # a subclass's (**kwargs) first, then its bases'
            for name, hint in typing.get_type_hints(function).items():
                hints.setdefault(name, hint)
            null_default |= {n for n, p in inspect.signature(function).parameters.items() if p.default is None}
    except Exception:  # not importable (the build names it), or annotations that do not resolve
        return
    if writer_kinds := _summary_writer_kinds(located(target)):
        for name, hint in writer_kinds.items():
            hints.setdefault(name, hint)
    for name, hint in hints.items():
        if name not in node:
            continue
        number = _number_words(hint)
        value = node[name]
        nulled = value is None and type(None) not in typing.get_args(hint) and name not in null_default
        if number and (nulled or isinstance(value, (str, bool, Sequence, Mapping))):  # null: refresh_rate=null
            raise CnnplError(f"{prefix}.{name} must be {number}, got {yaml_word(value)}")
        if number == "an integer" and isinstance(value, float):  # save_top_k=1.5 failed after epochs of training
            raise CnnplError(f"{prefix}.{name} must be an integer, got {yaml_word(value)}")
        allowed = _on_off_values(hint)
        if allowed is None:
            if not number:
                _check_kind(value, hint, f"{prefix}.{name}")
            continue
        if (value is None or isinstance(value, bool)) and value in allowed:
            continue
        if isinstance(value, str) and value in [v for v in allowed if isinstance(v, str)]:
            continue
        names = ["true", "false", *(v for v in allowed if isinstance(v, str)), *(["null"] if None in allowed else [])]
        raise CnnplError(f"{prefix}.{name} must be {', '.join(names[:-1])} or {names[-1]}, got {yaml_word(value)}")


def _kinds(hint: Any) -> set[Any] | None:
    """What a setting annotated ``hint`` takes, as kinds (``bool``, ``int``, ``float``, ``str``, ``None``,
    ``list``, ``dict``, ``"object"``: a ``_target_`` node, ``timedelta``) and literal values (``("lit", v)``);
    None where the hint says nothing checkable (``Any``, a type variable, a forward reference)."""
    import datetime
    import os
    import pathlib

    if hint is typing.Any:
        return None
    if hint is type(None) or hint is None:
        return {None}
    if hint in (bool, int, float, str):
        return {hint}
    if hint in (pathlib.Path, pathlib.PurePath, os.PathLike) or typing.get_origin(hint) is os.PathLike:
        return {str}
    if hint is datetime.timedelta:
        return {datetime.timedelta}
    origin = typing.get_origin(hint)
    if origin is Literal:
        return {("lit", value) for value in typing.get_args(hint)}
    if origin in (typing.Union, types.UnionType):
        kinds: set[Any] = set()
        for arg in typing.get_args(hint):
            more = _kinds(arg)
            if more is None:
                return None
            kinds |= more
        return kinds
    base = origin or hint
    if base in (list, tuple, set, frozenset) or base in _SEQUENCE_HINTS:
        return {list}
    if base in (dict, Mapping, typing.Mapping, MutableMapping, typing.MutableMapping):
        return {dict}
    if isinstance(base, type) and getattr(base, "__module__", "").startswith("lightning."):
        return {"object"}  # Lightning's Profiler, Strategy, Accelerator, ...: built from a _target_ node
    # any other class (torch.device, a dtype, a dataclass, Callable, an Enum) may be made by its constructor from
    # a word or a list: left to it
    return None


_SEQUENCE_HINTS = (
    Sequence,
    typing.Sequence,
    typing.Iterable,
    Iterable,
    Collection,
    typing.Collection,
    MutableSequence,
    AbstractSet,
    typing.AbstractSet,
)
_KIND_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    None: "null",
    list: "a list",
    dict: "a mapping",
    "object": "an object given as {_target_: ...}",
}


def _check_kind(value: Any, hint: Any, key: str) -> None:
    """Refuse ``value`` for ``key`` where ``hint`` takes nothing of its kind: ``trainer.profiler=1``,
    ``+trainer.max_time=60``, ``logger.name=123`` (each a traceback when the object was built, or mid-run).
    A number stands for a float too; a ``_target_`` node for any object."""
    import datetime

    kinds = _kinds(hint)
    if not kinds:
        return
    if value is None:
        kind: Any = None
    elif isinstance(value, bool):
        kind = bool
    elif isinstance(value, int):
        kind = int
    elif isinstance(value, float):
        kind = float
    elif isinstance(value, str):
        kind = str
    elif isinstance(value, Mapping):
        kind = "object" if "_target_" in value else dict
    elif isinstance(value, Sequence):
        kind = list
    else:
        return
    literals = [k[1] for k in kinds if isinstance(k, tuple)]
    fits = (
        kind in kinds
        or (kind is int and float in kinds)
        or (kind == "object" and (datetime.timedelta in kinds or dict in kinds))
        or any(value == lit and type(value) is type(lit) for lit in literals)
    )
    if fits:
        return
    if kind is dict and str in kinds and dict not in kinds:  # filename={epoch:03d}: Hydra's mapping, not the text
        words = {k: yaml_word(v) if v is None or isinstance(v, bool) else v for k, v in value.items()}  # {a:true}
        braces = "{" + ",".join(f"{k}:{v}" for k, v in words.items()) + "}"
        raise CnnplError(
            f"{key}={yaml_word(value)} is not text: Hydra reads an override value in braces as a mapping; quote it, "
            f"e.g. '{key}=\"{braces}\"'"
        )
    if datetime.timedelta in kinds and kind is dict:
        span = ",".join(f"{k}:{v}" for k, v in value.items())
        raise CnnplError(f"{key} must be a time span: write {{_target_:datetime.timedelta,{span}}}")
    words = [_KIND_NAMES[k] for k in _KIND_NAMES if k in kinds and not (k is int and float in kinds)]
    if datetime.timedelta in kinds:
        words.append("a time span ({_target_:datetime.timedelta,minutes:5})")
    words += [repr(lit) for lit in literals]
    wanted = f"{', '.join(words[:-1]) + ' or ' if len(words) > 1 else ''}{words[-1]}"
    if kind is list:  # callbacks.gradcam.layer=[a,b]: one layer is meant (helper-130)
        raise CnnplError(f"{key} takes one value, not a list: {wanted}; got {yaml_word(value)}")
    raise CnnplError(f"{key} must be {wanted}, got {yaml_word(value)}")


def _summary_writer_kinds(obj: Any) -> dict[str, Any]:
    """The kinds of the ``SummaryWriter`` keywords a TensorBoard logger passes on, which the writer does not
    annotate (``+logger.flush_secs=abc`` failed at the first log, in a thread); {} for other objects."""
    if _summary_writer_arguments(obj) is None:
        return {}
    return {
        "flush_secs": int | float,
        "max_queue": int,
        "purge_step": int | None,
        "comment": str,
        "filename_suffix": str,
    }


def _number_words(hint: Any) -> str:
    """ "an integer" or "a number" for a hint of int or float alone (or with None), else "" (unions with words)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = {a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)}
    if kinds == {int}:
        return "an integer"
    if kinds and kinds <= {int, float}:
        return "a number"
    return ""


SHOWN_ARGUMENTS = 12  # a class's arguments listed when none is close to the key given


def check_arguments(node: Mapping[str, Any] | None, prefix: str) -> None:
    """Refuse a key that the ``_target_`` of ``node`` takes no argument for (``+trainer.limit_train_batche=5``),
    naming the one meant: building it would fail with the class's own TypeError, without a suggestion.
    A target that passes ``**kwargs`` on to something unnamed is left to its build."""
    import difflib

    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str):
        return
    from cnnpl.registry import keyword_chain, located, parameters_of

    try:
        obj = located(target)
        chain, open_ended = keyword_chain(obj)
        names = [name for function in chain for name in parameters_of(function) if name != "self"]
        writer = _summary_writer_arguments(obj) if open_ended else None
    except Exception:  # not importable (the build names it), or no signature to read
        return
    if writer is not None:  # Lightning's TensorBoard logger hands the rest to its SummaryWriter, at the first log
        names, open_ended = [*names, *writer], False
    names = list(dict.fromkeys(names))  # a subclass and its base both name some (TensorBoardLogger's name, version)
    if open_ended:
        return
    for key in node:
        if str(key).startswith("_") or key in names:  # Hydra's own keys: _target_, _partial_, ...
            continue
        close = difflib.get_close_matches(str(key), names, n=1)
        shown = ", ".join(names[:SHOWN_ARGUMENTS]) + (", ..." if len(names) > SHOWN_ARGUMENTS else "")
        hint = f"; did you mean {prefix}.{close[0]}?" if close else f" (its arguments: {shown})"
        raise CnnplError(f"{prefix}.{key} is not an argument of {target}{hint}")


def _summary_writer_arguments(obj: Any) -> list[str] | None:
    """The keywords a TensorBoard logger class (Lightning's, or a subclass) passes on to the
    ``SummaryWriter`` it makes once the first value is logged, mid-run; ``None`` for any other object."""
    from lightning.fabric.loggers import tensorboard

    from cnnpl.registry import parameters_of

    if not (isinstance(obj, type) and issubclass(obj, tensorboard.TensorBoardLogger)):
        return None
    if tensorboard._TENSORBOARD_AVAILABLE:  # the writer Lightning picks
        from torch.utils.tensorboard import SummaryWriter
    else:
        from tensorboardX import SummaryWriter
    return [name for name in parameters_of(SummaryWriter.__init__) if name not in ("self", "log_dir")]


# Lightning's profilers by name (lightning.pytorch.trainer.setup._init_profiler's table)
PROFILER_NAMES = ("simple", "advanced", "pytorch", "xla")


def check_trainer_words(trainer_cfg: Any) -> None:
    """Refuse a ``trainer.precision`` or ``trainer.profiler`` word Lightning does not know, with the close one:
    the kind check listed Lightning's sixteen precision values in a changing order (cnnpl refuses half of
    them), and a misspelt profiler failed only when the Trainer was built."""
    import difflib
    import typing

    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

    precision = trainer_cfg.get("precision")
    known = {str(v) for arg in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(arg)}
    readable = isinstance(precision, (str, int)) and not isinstance(precision, bool)
    if precision is not None and not (readable and str(precision) in known):
        close = difflib.get_close_matches(str(precision).replace("_", "-"), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise CnnplError(
            f"trainer.precision={yaml_word(precision)} is not a precision Lightning knows; {hint}use 32-true (the "
            "default) or bf16-mixed (float32 weights, bfloat16 computation; on GPUs also 16-mixed)"
        )
    profiler = trainer_cfg.get("profiler")
    if isinstance(profiler, str) and profiler.lower() not in PROFILER_NAMES:
        close = difflib.get_close_matches(profiler.lower(), PROFILER_NAMES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise CnnplError(
            f"trainer.profiler={profiler!r} is not one of Lightning's profilers; {hint}choose "
            f"{', '.join(PROFILER_NAMES)} or null (none), or an object: {{_target_: ...}}"
        )


def check_precision(trainer_cfg: Any, accelerator: str) -> None:
    """Refuse a ``trainer.precision`` that Lightning accepts but that fails once training starts.

    ``accelerator`` is the type of the Trainer's accelerator (``cpu``, ``cuda``, ``mps``). Refused:
    the precisions that cast the network (``16-true``, ``bf16-true``, ``64-true`` and ``64``), on every
    accelerator, because cnnpl's images become float32 after Lightning's conversion (measured on CPU:
    "Input type (float) and bias type (c10::Half) should be the same" at the first step); and
    ``transformer-engine*`` without a CUDA GPU and NVIDIA's ``transformer_engine`` package.
    The mixed precisions work; ``16-mixed`` on the CPU is refused too, since Lightning runs it as ``bf16-mixed``
    there (with a warning of several lines) while the run's config would say 16-mixed (helper-135, helper-137).
    """
    value = trainer_cfg.get("precision")
    if value is None:
        return
    precision = PRECISION_ALIASES.get(str(value), str(value))
    gpu = accelerator in ("cuda", "gpu")
    if gpu:
        working = "32-true (the default), bf16-mixed or 16-mixed (float32 weights, 16-bit computation)"
    else:
        working = "32-true (the default) or bf16-mixed (float32 weights, bfloat16 computation)"
    if precision in CAST_PRECISIONS:
        raise CnnplError(
            f"trainer.precision={value} casts the network to {CAST_PRECISIONS[precision]}, but cnnpl's data "
            f"modules hand it float32 images (normalised after Lightning converts a batch), so the first step "
            f"would fail; use trainer.precision={working}"
        )
    if precision == "16-mixed" and accelerator == "cpu":
        raise CnnplError(
            f"trainer.precision={value} on the CPU runs as bf16-mixed (Lightning's choice: float16 autocast is for "
            "GPUs), which the run's config would not say; write trainer.precision=bf16-mixed, or 32-true"
        )
    if precision.startswith("transformer-engine"):
        if not gpu:
            missing = f"an NVIDIA GPU (this run's accelerator is {accelerator})"
        elif importlib.util.find_spec("transformer_engine") is None:
            missing = "NVIDIA's transformer_engine package, which is not installed"
        else:
            return
        raise CnnplError(f"trainer.precision={value} needs {missing}; use trainer.precision={working}")


def check_fused_clipping(cfg: Any, accelerator: str) -> None:
    """Refuse gradient clipping with a fused optimizer step under mixed precision (``16-mixed``, ``bf16-mixed``).

    Under ``16-mixed`` on a GPU the loss is scaled, and a fused step unscales the gradients inside itself,
    after the point where Lightning clips them; Lightning's mixed-precision plugin therefore refuses to
    clip for any optimizer that takes the fused step, under either mixed precision and on the CPU too
    ("does not allow for gradient clipping because it performs unscaling of gradients internally"),
    at the first step. ``accelerator`` is kept for the callers; the refusal does not depend on it.
    """
    precision = str(cfg.trainer.get("precision"))
    clip = cfg.trainer.get("gradient_clip_val")
    optimizer = cfg.get("optimizer") or {}
    if PRECISION_ALIASES.get(precision, precision) not in ("16-mixed", "bf16-mixed") or not clip:
        return
    if optimizer.get("fused") is True:
        raise CnnplError(
            f"trainer.gradient_clip_val={clip} with trainer.precision={precision}: Lightning clips no gradients of "
            "a fused optimizer step (optimizer.fused=true) under mixed precision, where the step would unscale "
            "them itself after the clipping; set optimizer.fused=null (torch's default step)"
        )


def check_optimizer(optimizer: Any) -> None:
    """Refuse optimizer settings of the wrong kind, then build the optimizer once on a dummy parameter.

    ``optimizer`` is what ``instantiate(cfg.optimizer)`` returns (a ``functools.partial``). A setting
    whose default is a number (a bool, a tuple of numbers) must be one: ``optimizer.lr=abc`` would
    fail inside the optimizer as "'<=' not supported between instances of 'float' and 'str'"; one
    typed ``bool | None`` (torch's ``fused``, ``foreach``) must be a bool or null, since torch reads any
    other value by its truth. Then a negative lr and the like fail as the optimizer says.
    """
    if isinstance(optimizer, partial):
        try:
            parameters = list(inspect.signature(optimizer.func).parameters.values())
        except (TypeError, ValueError):  # a signature Python cannot read: only the build below checks
            parameters = []
        defaults = {p.name: p.default for p in parameters}
        if parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters):
            _refuse_unknown_settings(optimizer, defaults, "optimizer", ("self", "params"))
        switches = {p.name for p in parameters if p.default is None and p.annotation in (bool | None, "bool | None")}
        for key, value in optimizer.keywords.items():
            if key in switches and not (value is None or isinstance(value, bool)):
                raise CnnplError(f"optimizer.{key} must be true, false or null (torch chooses), got {yaml_word(value)}")
            wanted = _kind_of(defaults.get(key))
            if wanted and not _matches(value, defaults[key]):
                raise CnnplError(f"optimizer.{key} must be {wanted}, got {yaml_word(value)}")
        momentum = optimizer.keywords.get("momentum")
        if isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and momentum >= 1:
            # torch's SGD refuses only momentum < 0; at 1 or more the velocity never decays, and grows without bound
            raise CnnplError(f"optimizer.momentum must be in [0, 1) (0.9 is usual), got {yaml_word(momentum)}")
        sgd = optimizer.func is torch.optim.SGD
        if sgd and momentum == 0 and optimizer.keywords.get("nesterov") is True:  # torch: "Nesterov momentum ..."
            raise CnnplError(
                "optimizer.momentum=0 turns momentum off, but optimizer.nesterov=true needs it (cnnpl's sgd sets "
                "nesterov: true); add optimizer.nesterov=false for plain SGD"
            )
        if optimizer.keywords.get("fused") and optimizer.keywords.get("foreach"):
            raise CnnplError(
                "optimizer.foreach=true and optimizer.fused=true are two implementations of the step (cnnpl's "
                "configs set fused: true); for torch's foreach step add optimizer.fused=null"
            )
    for key in ("lr", "weight_decay"):  # torch's "Invalid learning rate: -0.1" names no setting
        value = optimizer.keywords.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise CnnplError(f"optimizer.{key} must be >= 0, got {yaml_word(value)}")
    try:
        optimizer([torch.nn.Parameter(torch.zeros(1))])
    except CnnplError:
        raise
    except (ValueError, TypeError, RuntimeError) as err:  # torch raises RuntimeError for some settings
        keywords = optimizer.keywords if isinstance(optimizer, partial) else {}
        # torch's "Invalid beta parameter at index 0: 1.5" names no setting (helper-137): the one it speaks of
        named = list(dict.fromkeys(k for word, k in _TORCH_WORDS.items() if word in str(err).lower() and k in keywords))
        if named:
            name = getattr(getattr(optimizer, "func", None), "__name__", "the optimizer")
            given = ", ".join(f"optimizer.{key}={keywords[key]!r}" for key in named)
            raise CnnplError(f"{given}: {name} refuses {'it' if len(named) == 1 else 'them'}: {err}") from None
        raise CnnplError(f"optimizer config is invalid: {err}") from None


# the words of torch's optimizers' refusals and the settings they speak of
_TORCH_WORDS = {
    "beta": "betas",
    "epsilon": "eps",
    "learning rate": "lr",
    "weight_decay": "weight_decay",
    "weight decay": "weight_decay",
    "nesterov": "nesterov",
    "momentum": "momentum",
    "dampening": "dampening",
    "alpha": "alpha",
    "rho": "rho",
    "lr_decay": "lr_decay",
    "initial_accumulator_value": "initial_accumulator_value",
}


def _refuse_unknown_settings(factory: partial, accepted: dict[str, Any], group: str, supplied: Sequence[str]) -> None:
    """Refuse settings the ``group``'s target does not take, all of them in one message.

    A config's ``_target_`` swapped to another class keeps the group's other settings:
    ``optimizer._target_=torch.optim.RMSprop`` on the default Adam config still passes ``fused``,
    which RMSprop does not take (torch names only the first such setting, as a TypeError); and
    ``scheduler=cosine`` over ``experiment=fast_cifar10`` keeps the triangle's ``peak_fraction``.
    ``supplied``: the arguments cnnpl passes itself, not settings.
    """
    from cnnpl.config import experiment_leftovers, group_options  # cnnpl.config imports this module

    unknown = [key for key in factory.keywords if key not in accepted]
    if not unknown:
        return
    name = getattr(factory.func, "__qualname__", repr(factory.func))
    settings = ", ".join(key for key in accepted if key not in supplied) or "none"
    advice = experiment_leftovers([f"{group}.{key}" for key in unknown], *_run_overrides_and_experiment())
    if not advice:
        removals = " ".join(f"~{group}.{key}" for key in unknown)
        it = "them" if len(unknown) > 1 else "it"
        # another optimizer config replaces the swapped _target_'s settings (an experiment's stay: above)
        instead = (
            f", or pick a config of its own ({group}={'|'.join(group_options(group))})" if group == "optimizer" else ""
        )
        advice = f"remove {it} with {removals}{instead}"
    raise CnnplError(f"{name} takes no setting {', '.join(unknown)} (its settings: {settings}); {advice}")


# the command line's overrides while python -m cnnpl checks them before Hydra runs (cnnpl.cli)
COMMAND_LINE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("command_line", default=None)


def _run_overrides_and_experiment() -> tuple[list[str], str | None]:
    """The command line's overrides and the experiment it chose: inside a Hydra run, or while the command line
    checks them before it (:data:`COMMAND_LINE`); else nothing."""
    from hydra.core.hydra_config import HydraConfig

    from cnnpl.config import chosen_experiment

    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        return list(hydra.overrides.task), hydra.runtime.choices.get("experiment")
    overrides = COMMAND_LINE.get()
    return (overrides, chosen_experiment(overrides)) if overrides is not None else ([], None)


def _kind_of(default: Any) -> str:
    """What a setting with this default must be, in words; "" when the default says nothing."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, tuple) and default and all(_matches(v, 0.0) for v in default):
        return f"a list of {len(default)} numbers such as {list(default)}"
    return ""


def _matches(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, tuple):
        items = isinstance(value, Sequence) and not isinstance(value, str)  # a config's lists are ListConfigs
        return items and len(value) == len(default) and all(_matches(v, 0.0) for v in value)
    return True


def check_muon_filters(net: torch.nn.Module, optimizer: Any, components: Mapping[str, Any] | None = None) -> None:
    """Refuse ``optimizer=muon`` on a network with 3+-dimensional parameters that are no conv filter bank.

    Muon orthogonalizes every such parameter as an ``(out, in * k * k)`` matrix and resets its norm.
    ``conv=locally_connected`` (one kernel per output position, and a ``(C, H, W)`` bias),
    ``conv=tiled`` (``(t, t, C_out, C_in, f, f)``) and ``pool=gated``'s ``(1, 1, k, k)`` mask are not
    that: their weights would be mixed across positions or tiles, and normalised. ``components``: the
    run's ``{family: name}`` choices, to name the one the parameter belongs to.
    """
    from cnnpl.layers.conv import Conv3dChannels
    from cnnpl.optim import Muon
    from cnnpl.registry import chosen_component

    if not (isinstance(optimizer, partial) and isinstance(optimizer.func, type) and issubclass(optimizer.func, Muon)):
        return
    banks = (torch.nn.modules.conv._ConvNd, Conv3dChannels)  # weights of (out, in / groups, *kernel)
    for module_name, module in net.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.ndim < 3 or (name == "weight" and isinstance(module, banks)):
                continue
            where = f"{module_name}.{name}" if module_name else name
            owner = chosen_component(module, components)
            instead = f"choose another {owner[0]} or another optimizer" if owner else "choose another optimizer"
            raise CnnplError(
                f"optimizer=muon steps every parameter of 3+ dimensions as a conv filter bank (out, in*k*k), "
                f"but {where}{f' ({owner[0]}={owner[1]})' if owner else ''} of shape {tuple(param.shape)} is not "
                f"one; {instead} (optimizer=sgd)"
            )


def warn_muon_without_norm(net: torch.nn.Module, optimizer: Any, model: str, norm: str | None = None) -> None:
    """Warn when ``optimizer=muon`` resets the filters' norm (``normalize_filters``, its default) in a network
    without any normalization layer (``simple_cnn``, ``vgg16``): the reset is harmless only where a batch norm
    after each conv undoes the filters' scale (docs/training.md).

    ``norm`` is the chosen ``norm=`` where the architecture builds its norm layers from it: then that choice
    (``simple_cnn_bn norm=identity``) is what left the network without them, and ``norm=batch`` the remedy."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from cnnpl.optim import Muon

    if not (isinstance(optimizer, partial) and isinstance(optimizer.func, type) and issubclass(optimizer.func, Muon)):
        return
    if not optimizer.keywords.get("normalize_filters", True) or rank_zero_only.rank != 0:
        return
    nn = torch.nn
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)
    if any(isinstance(module, norms) for module in net.modules()):
        return
    if norm is not None:
        why, remedy = f"model={model} with norm={norm}", "or norm=batch"
    else:
        why, remedy = f"model={model}", "or train a model with batch norm (simple_cnn_bn, fast_net)"
    logging.getLogger(__name__).warning(
        "optimizer=muon resets every conv's filters to the norm sqrt(out_channels) before each step "
        "(optimizer.normalize_filters=true), which only a batch norm after each conv makes harmless, and "
        "%s has no normalization layers: add optimizer.normalize_filters=false (the filters then take "
        "weight_decay), %s",
        why,
        remedy,
    )


def check_scheduler(schedule: Any, optimizer_factory: Any = None) -> None:
    """Build the schedule once on a dummy optimizer, so that a bad setting fails now, not at the fit.

    ``schedule`` is what ``instantiate(cfg.scheduler)`` returns: a callable
    ``schedule(optimizer, total_steps=...)`` (cnnpl's builders in :mod:`cnnpl.optim` check their
    ranges), or ``None`` for a constant learning rate. The dummy optimizer is the run's own
    (``optimizer_factory``, checked before) where it builds on one parameter, as one-cycle needs
    momentum of it; else SGD with momentum.
    """
    if schedule is None:
        return
    if isinstance(schedule, partial):
        try:
            parameters = list(inspect.signature(schedule.func).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        if parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters):
            accepted = {p.name: p.default for p in parameters}
            _refuse_unknown_settings(schedule, accepted, "scheduler", ("optimizer", "total_steps"))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)  # the momentum one-cycle cycles
    if optimizer_factory is not None:
        with contextlib.suppress(Exception):  # a factory that needs more than one parameter: SGD stands in
            optimizer = optimizer_factory([param])
    try:
        schedule(optimizer, total_steps=10)
    except CnnplError:
        raise
    except (TypeError, ValueError, ZeroDivisionError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise CnnplError(
            f"scheduler config is invalid: {reason}; a schedule is called as schedule(optimizer, total_steps=...)"
        ) from None


def check_eval_shards(datamodule: Any, world_size: int, splits: Sequence[str] = ("val", "test")) -> None:
    """Refuse, before training, validation or test splits too small for ``world_size`` processes to share.

    :class:`cnnpl.distributed.EvalShardSampler` would refuse them only when that evaluation starts
    (the test after the whole fit), once per process. ``datamodule`` must be set up (cnnpl's data
    modules load every split in ``setup``); one without ``split()`` is not checked. Only ``splits``
    (those the run evaluates) are checked.
    """
    if world_size <= 1 or not hasattr(datamodule, "split"):
        return
    for name in splits:
        check_shardable(len(datamodule.split(name)), world_size, f"the {name} split")


def warn_mirrored_classes(datamodule: Any, system_cfg: Any, fits: bool = True) -> None:
    """Warn where mirroring turns images of one class into another's (``data=shapes``' diagonal lines: its
    ``MIRROR_SWAPS``) and the run mirrors them: ``data.flip`` trains on wrong labels (helper-130: 0.886 test
    accuracy against 0.999; only where the run ``fits``), ``system.tta_flip`` averages each prediction with
    the other class's."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    swaps = getattr(datamodule, "MIRROR_SWAPS", None)
    flip = getattr(datamodule, "flip", False) if fits else False
    settings = (("data.flip", flip), ("system.tta_flip", system_cfg.get("tta_flip")))
    mirrors = [f"{key}={str(value).lower()}" for key, value in settings if value]
    if swaps and mirrors and rank_zero_only.rank == 0:
        logging.getLogger(__name__).warning(
            "%s mirror%s the images, and here a mirrored image of class %s is one of class %s: add %s for an "
            "accuracy that means something",
            " and ".join(mirrors),
            "" if len(mirrors) > 1 else "s",
            swaps[0],
            swaps[1],
            " ".join(f"{mirror.partition('=')[0]}=false" for mirror in mirrors),
        )


def check_tta(system_cfg: Any, input_size: tuple[int, int]) -> None:
    """Refuse a ``system.tta_translate`` that is not a whole number of pixels below the image side.

    The shifted views pad by reflection, which needs a padding smaller than the image
    (torch: "Padding size should be less than the corresponding input dimension", at the first evaluation).
    """
    t = system_cfg.get("tta_translate", 0)
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise CnnplError(
            f"system.tta_translate must be an integer >= 0 (a shift in pixels; 0: off), got {yaml_word(t)}"
        )
    side = min(input_size)
    if t >= side:
        raise CnnplError(
            f"system.tta_translate={t} shifts the {input_size[0]}x{input_size[1]} images by their whole side or more: "
            f"use a shift below {side} (experiment=fast_cifar10 uses 1), or 0 for none"
        )
