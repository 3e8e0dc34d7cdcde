"""Checkpoint files: atomic writes, safe reads, ``ckpt_path=last``, and a fit check before training.

- :class:`AtomicCheckpointIO` (Lightning's ``TorchCheckpointIO`` with another ``save``/``load``):
  a checkpoint is written to a temporary file in the same folder, flushed to disk, then moved over
  the old one with ``os.replace``, so a kill or a full disk during a save never leaves a truncated
  ``last.ckpt`` in place of a good one. Reads use ``torch.load(weights_only=True)``: a file that
  needs pickled Python objects (code) to load is refused with :class:`UnsafeCheckpointError`.
- :func:`resolve_ckpt_path`: ``ckpt_path=last`` means the latest ``last*.ckpt`` in the run directory's
  ``checkpoints/`` (``last.ckpt``, or of ``last-v1.ckpt`` ... where Lightning had to version it, the one
  saved at the latest step); resume with the same command, ``hydra.run.dir`` and ``ckpt_path=last``.
- :func:`check_resume_settings`: a resume whose settings differ from the run's ``config.yaml`` in what
  defines the training (data, model, components, optimizer, schedule, ...) is refused before training.
- :func:`check_fresh_run_dir`: a new training run is refused in a run directory that already holds
  another run's checkpoints, or the ``config.yaml`` of a run that saved none.
- :func:`check_checkpoint_fits`: a checkpoint of another architecture or number of classes is refused
  with one line before training starts (Lightning would print a page of missing keys mid-setup);
  :func:`check_resumable`: so is resuming training from a checkpoint of the weights alone.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import math
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from torch import nn
from torch.nn.parameter import is_lazy

from cnnpl.errors import CnnplError, first_few, first_line, os_error_in
from cnnpl.files import atomic_write, is_local

LAST = "last"  # ckpt_path=last: the run directory's last.ckpt
LAST_FILE = "last.ckpt"  # what ModelCheckpoint(save_last=True) writes
SHOWN = 3  # mismatching tensors named in an error message
# how torch's weights-only unpickler names what it refused: "Unsupported global: GLOBAL io.open was not ..."
REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# ... and what it says of bytes that are no pickle at all (a text file: "Unsupported operand 110", its "n")
NOT_A_PICKLE = re.compile(r"Unsupported operand \d+|invalid load key[^.\n]*")


class CheckpointError(CnnplError):
    """A checkpoint that is missing, unreadable, or does not fit the model it should restore."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds pickled Python objects other than tensors and plain containers."""


# what safe_load reads: {what: (its file, the plural, what to give instead, how to make a file of tensors alone)}
_LOADED = {
    "checkpoint": (
        "a checkpoint file (a .ckpt)",
        "checkpoints",
        "give a .ckpt written by cnnpl or Lightning",
        "load only checkpoints written by cnnpl, or re-save the weights alone with "
        "torch.save(model.state_dict(), path)",
    ),
    "pretrained weights": (
        "a weights file (a .pth)",
        "pretrained weights",
        "save a network's weights with torch.save(model.state_dict(), path)",
        "re-save the weights alone with torch.save(model.state_dict(), path)",
    ),
}


def safe_load(path: str | Path, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`CheckpointError` messages.

    Only tensors, numbers, strings and plain containers load; anything else (a class, a function, a
    ``__reduce__`` payload) is refused before it can run, with :class:`UnsafeCheckpointError`.
    ``what``: the kind of file, for the messages (``checkpoint`` or ``pretrained weights``).
    """
    kind, plural, advice, re_save = _LOADED[what]
    file = Path(path).expanduser()
    if file.is_dir():
        raise CheckpointError(f"{what} {str(file)!r} is a folder; give {kind} in it")
    if not file.is_file():
        raise CheckpointError(f"{what} {str(file)!r} does not exist")
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = REFUSED_GLOBAL.search(str(err))
        if not found and NOT_A_PICKLE.search(str(err)):  # a text file, an image: no pickle stream at all
            raise CheckpointError(
                f"cannot read {what} {str(file)!r}: it is not a file written by torch.save "
                f"({NOT_A_PICKLE.search(str(err)).group(0)}); {advice}"  # type: ignore[union-attr]
            ) from None
        held = f"it holds a pickled Python object ({found.group(1)})" if found else "it holds pickled Python objects"
        raise UnsafeCheckpointError(
            f"refused to load {what} {str(file)!r}: {held}, not only tensors and plain values; cnnpl loads "
            f"{plural} with torch.load(weights_only=True) so that a file cannot run code; {re_save}"
        ) from None
    except Exception as err:  # truncated, not a torch file, wrong format: the user's file to fix
        # torch's legacy reader fails on other files with a KeyError of the byte it read (KeyError: 101)
        reason = (
            "neither a zip archive nor an old-style torch file"
            if isinstance(err, KeyError)
            else first_line(err) or type(err).__name__
        )
        raise CheckpointError(
            f"cannot read {what} {str(file)!r}: it is not a complete file written by torch.save ({reason}); {advice}"
            + _others_beside(file, what)
        ) from None


def _others_beside(file: Path, what: str) -> str:
    """For a checkpoint that cannot be read, the others in its folder, newest first (helper-137: a truncated
    ``last.ckpt`` beside a whole ``epoch004-....ckpt`` was not told of it)."""
    if what != "checkpoint":
        return ""
    try:
        others = sorted(
            (p for p in file.parent.glob("*.ckpt") if p.is_file() and p != file), key=lambda p: -p.stat().st_mtime
        )
    except OSError:
        return ""
    if not others:
        return ""
    return f" (or go on from another of its folder: ckpt_path={others[0]}{', ...' if len(others) > 1 else ''})"


def _without_tensors(value: Any) -> Any:
    """``value`` with each tensor in its plain containers (dict, OrderedDict, list, tuple) replaced by None;
    any other object is kept whole, tensors and all."""
    if isinstance(value, torch.Tensor):
        return None
    kind = type(value)
    if kind in (dict, OrderedDict):
        return kind((key, _without_tensors(item)) for key, item in value.items())
    if kind in (list, tuple):
        return kind(_without_tensors(item) for item in value)
    return value


def check_loadable(checkpoint: Mapping[str, Any]) -> None:
    """Refuse a checkpoint that :func:`safe_load` could not read back, before it is written.

    A callback's ``state_dict()`` (a plugin's, say) or a layer's extra state may hold Python objects
    that ``torch.load(weights_only=True)`` refuses (a ``collections.deque``, a NumPy scalar): the run
    would train, write checkpoints it cannot load, and fail at its test or resume. The checkpoint's
    structure, its tensors left out, is pickled and read back as :func:`safe_load` reads: a few
    milliseconds a save. Raises :class:`CheckpointError` naming the entry (the callback) and the object.
    """
    entries = [(f"checkpoint[{key!r}]", value) for key, value in checkpoint.items() if key != "callbacks"]
    callbacks = checkpoint.get("callbacks") or {}
    entries += (
        [(f"callback {key}", value) for key, value in callbacks.items()] if isinstance(callbacks, Mapping) else []
    )
    for where, value in entries:
        buffer = io.BytesIO()
        try:  # torch.serialization's own: a save patched by a test or a tool writes files, not this
            torch.serialization.save(_without_tensors(value), buffer)
        except Exception:  # cannot be pickled at all: the save itself fails, and leaves the file as it was
            continue
        buffer.seek(0)
        try:
            torch.serialization.load(buffer, weights_only=True)
        except pickle.UnpicklingError as err:
            found = REFUSED_GLOBAL.search(str(err))
            what = found.group(1) if found else "a Python object other than tensors and plain values"
            state = "its state_dict()" if where.startswith("callback ") else "it"
            raise CheckpointError(
                f"{where} holds a {what}, which cnnpl could not load back (it reads checkpoints with "
                f"torch.load(weights_only=True)); make {state} hold only tensors, numbers, strings, lists and dicts"
            ) from None


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that replaces ``path`` only once the new file is complete on disk
    (:func:`cnnpl.files.atomic_write`); if the save fails, ``path`` still holds its previous contents."""
    atomic_write(path, lambda f: torch.save(obj, f), durable=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and reads with ``weights_only=True``.

    Pass it to the trainer: ``Trainer(plugins=[AtomicCheckpointIO()])``. Remote paths (``s3://``...)
    keep Lightning's own writer, whose object stores replace a file whole anyway.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        check_loadable(checkpoint)  # nothing written that the test or a resume could not read
        if storage_options is not None or not is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            atomic_torch_save(checkpoint, path)
        except (OSError, RuntimeError) as err:  # a full disk: torch.save's RuntimeError over the OSError
            found = os_error_in(err)
            reason = found.strerror if found is not None else None
            if reason is None:  # not the file system's (an object that cannot be pickled): a program's error
                raise
            folder = Path(path).parent
            run = f"hydra.run.dir={folder.parent} " if folder.name == "checkpoints" else ""
            raise CheckpointError(
                f"cannot write checkpoint {str(path)!r}: {reason}; the file there before (if any) is unchanged; "
                f"make room there and resume with the run's command plus {run}ckpt_path=last, or go on on another "
                "disk: hydra.run.dir=<new folder> ckpt_path=<the run's checkpoints/last.ckpt>"
            ) from None

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise UnsafeCheckpointError(
                "cnnpl loads checkpoints with weights_only=True only; a checkpoint that needs pickled code is refused"
            )
        if not is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return safe_load(path, map_location=map_location)


def last_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """The ``last*.ckpt`` files in ``checkpoint_dir``, newest last: by the training step each was saved at,
    then modification time and name. (A copy without its files' times, ``cp -r``, keeps the steps; a
    file whose step cannot be read counts as the newest, so that it is the one refused, not skipped.)"""
    folder = Path(checkpoint_dir)
    return by_saved_step([path for path in folder.glob(f"{LAST}*.ckpt") if path.is_file()] if folder.is_dir() else [])


def by_saved_step(paths: list[Path]) -> list[Path]:
    """``paths`` (checkpoint files), newest last: by the training step each was saved at, then modification
    time and name (a file whose step cannot be read counts as the newest)."""
    return sorted(paths, key=lambda path: (_saved_step(path), path.stat().st_mtime, path.name))


def _saved_step(path: Path) -> float:
    """The ``global_step`` a Lightning checkpoint was saved at (its tensors are mapped, not read, unless it
    is in torch's old format); infinity when the file does not say."""
    for mapped in (True, False):  # torch maps only its zip format; the old one is read whole
        try:
            step = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)["global_step"]
            return float(step) if isinstance(step, int) and not isinstance(step, bool) else math.inf
        except Exception:  # not a Lightning checkpoint, or not torch's: resolve_ckpt_path's caller says what
            continue
    return math.inf


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: str | Path, fit: bool = True) -> str | None:
    """The file ``ckpt_path`` names: ``last`` is the newest ``last*.ckpt`` in ``checkpoint_dir``.

    ``last.ckpt`` as a rule; Lightning writes ``last-v1.ckpt`` next to it where it did not write the
    ``last.ckpt`` there itself, and the one saved at the latest step is where training stopped. Raises
    :class:`CheckpointError` when there is none or the file is missing, saying how to resume (``fit``), or
    how to test a run's last checkpoint.
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    if str(ckpt_path) == LAST:
        found = last_checkpoints(checkpoint_dir)
        folder = Path(checkpoint_dir)
        others = [path for path in folder.glob("*.ckpt") if path.is_file()] if folder.is_dir() else []
        if not found and others:  # callbacks.checkpoint.save_last=false: the best, or every epoch's, only
            latest = by_saved_step(others)[-1]
            raise CheckpointError(
                f"ckpt_path=last but {str(folder)!r} holds no last.ckpt (callbacks.checkpoint.save_last=false saves "
                f"none, and a last.ckpt that could not be written is none); resume from the checkpoint saved at the "
                f"latest step there with ckpt_path={latest}"
            )
        run = folder.parent if folder.name == "checkpoints" else None
        if not found and fit and run is not None and run_kind(run / "config.yaml") == "trained":
            what = (  # helper-137: a finished run with ~callbacks.checkpoint was said to have stopped early
                "saved no checkpoints (its config.yaml has no callbacks.checkpoint)"
                if not _saves_checkpoints(run / "config.yaml")
                else "stopped before its first checkpoint"
            )
            raise CheckpointError(  # helper-127: "resume with the run directory of the interrupted run": this one
                f"ckpt_path=last, but the run in {str(run)!r} {what}: there is nothing to "
                "resume; start it again in a new folder (hydra.run.dir=<new folder>), or delete that run's files"
            )
        if not found:
            how = (
                "resume with the run directory of the interrupted run (hydra.run.dir=<that run's directory> "
                "ckpt_path=last)"
                if fit
                else "test a run's last checkpoint with its run directory (hydra.run.dir=<that run's directory> "
                "fit=false ckpt_path=last)"
            )
            raise CheckpointError(
                f"ckpt_path=last but {str(Path(checkpoint_dir) / LAST_FILE)!r} does not exist; {how} or give a "
                "checkpoint file"
            )
        return str(found[-1])
    file = Path(str(ckpt_path)).expanduser()
    if file.is_dir():
        # ckpt_path=last alone looks in this command's new folder: the run's folder must be named too (helper-119)
        run = file if (file / "checkpoints").is_dir() else file.parent if file.name == "checkpoints" else None
        last = (
            f", or hydra.run.dir={run} ckpt_path=last to {'continue' if fit else 'test'} that run"
            if run is not None
            else ""
        )
        raise CheckpointError(f"ckpt_path {str(file)!r} is a folder; give a .ckpt file in it{last}")
    if not file.is_file():
        raise CheckpointError(f"ckpt_path {str(file)!r} does not exist; give a .ckpt file or ckpt_path=last")
    return str(file)


def check_fresh_run_dir(
    checkpoint_dir: str | Path, continuing: str | Path | None = None, run_dir: str | Path | None = None
) -> None:
    """Refuse to start a new training run where another run's checkpoints are, or in ``run_dir`` when an
    earlier run trained there (its ``config.yaml``) and left no checkpoint, or tested a checkpoint there
    (``fit: false``: its ``config.yaml`` and test logs would be replaced and mixed with this run's; a dry run's,
    ``fit: false`` and ``test: false``, may be replaced).

    Lightning would write ``last-v1.ckpt`` beside them and the run's ``config.yaml`` would describe the
    new run only: two runs mixed in one folder, and ``ckpt_path=last`` no longer clearly either's; the
    logs of both would be mixed in its ``tensorboard/``. ``continuing``: the checkpoint of another run
    folder that this run continues from (the same holds).
    """
    folder = Path(checkpoint_dir)
    found = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    named = first_few([path.name for path in found], 1)
    from cnnpl.distributed import in_sweep

    # a sweep job's folder is in hydra.sweep.dir (hydra.run.dir names none there)
    option = (
        "hydra.sweep.dir=<new folder> for the sweep"
        if in_sweep()
        else "hydra.run.dir=<new folder>; output_dir= from Python"
    )
    new_folder = f"in a new folder ({option})"
    if found and continuing is not None:
        raise CheckpointError(
            f"ckpt_path {str(continuing)!r} is another run folder's checkpoint, but {str(folder)!r} already holds "
            f"the checkpoints of the run there ({named}); continue from it {new_folder} or in the run folder it "
            "came from"
        )
    if found:
        raise CheckpointError(
            f"{str(folder)!r} already holds the checkpoints of an earlier run ({named}); to continue that run give "
            f"its own command again with ckpt_path=last, or start this one {new_folder}"
        )
    started = Path(run_dir) / "config.yaml" if run_dir is not None else None
    kind = run_kind(started) if started is not None else None
    if kind in ("trained", "tested"):  # a dry run's config.yaml may be replaced
        logs = sorted(  # what it logged (an empty folder may be a refused command's)
            p.name + "/" for p in Path(run_dir).iterdir() if not p.name.startswith(".") and _holds_files(p)
        )
        also = f" and {', '.join(logs)}" if logs else ""
        if kind == "tested":  # this run's config.yaml would replace the test's, its logs join the test's
            raise CheckpointError(
                f"{str(run_dir)!r} holds the test of a checkpoint (fit=false: its config.yaml{also}); start this "
                f"run {new_folder}, or delete that test's files first"
            )
        raise CheckpointError(
            f"{str(run_dir)!r} already holds an earlier run (its config.yaml{also}) that saved no checkpoint to "
            f"continue from; start this run {new_folder}, or delete that run's files first"
        )


RUN_LOCK = ".cnnpl-training.lock"


@contextlib.contextmanager
def claimed_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold ``<run_dir>/.cnnpl-training.lock`` (an exclusive ``flock``) while a run trains there.

    :func:`check_fresh_run_dir` and a resume's checks look at the folder long before Lightning writes to it;
    two commands started together in one ``hydra.run.dir`` (or a resume while the run still trains) both
    passed them and wrote their checkpoints and logs side by side. The second to come is refused now. The
    kernel drops the lock when its process ends, however it ends, so no stale lock blocks a resume. The
    file is removed before the lock is dropped. Where ``flock`` is missing (Windows), or the file cannot be
    opened or locked (another user's, a file system without locks), the run goes on without it, logging why.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    path = Path(run_dir) / RUN_LOCK
    handle = None
    for _ in range(3):
        try:
            handle = _open_lock(path)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CheckpointError(
                f"another run is training in {str(run_dir)!r} now (it holds {RUN_LOCK} there); wait until it ends "
                "(to resume it: ckpt_path=last), or give this run a folder of its own with hydra.run.dir=<folder>"
            ) from None
        except OSError as err:  # no lock to be had here: the run goes on as it did before there was one
            logging.getLogger(__name__).warning(
                "cannot lock %s (%s); this run trains without it, so nothing stops a second run in the folder",
                path,
                err.strerror or err,
            )
            if handle is not None:
                handle.close()
            handle = None
            break
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                break  # not the file of a run that ended and removed it just now: that one is free to take again
        except FileNotFoundError:
            pass
        handle.close()
    else:  # pragma: no cover - three runs ending in a row while this one starts
        raise CheckpointError(f"could not take {RUN_LOCK} in {str(run_dir)!r}; start the run again")
    if handle is None:
        yield
        return
    try:
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # before the lock goes: a run that starts now makes and locks a new file
    finally:
        handle.close()


def _open_lock(path: Path) -> Any:
    """``path`` opened to be locked: for appending (made if missing), or only for reading where it is another
    user's (a run of theirs that was killed left it; ``flock`` needs no write access)."""
    try:
        return open(path, "a")
    except PermissionError:
        return open(path)


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` is a folder with a file in it, at any depth (a refused command may leave empty ones)."""
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*"))


def set_aside_attempt(run_dir: str | Path, logs: list[Path]) -> Path | None:
    """Move what an earlier attempt of a run left in ``run_dir`` (its ``config.yaml``, and the folders in
    ``logs``: the logger's, where they hold files) into ``run_dir/.attempt-N/``; returns that folder, or
    ``None`` when there is nothing. For a sweep job that starts again from the beginning: its logs would
    otherwise mix with the discarded attempt's (nothing is deleted; other files stay where they are)."""
    folder = Path(run_dir)
    config = folder / "config.yaml"
    moving = [config] if config.is_file() else []
    moving += [log for log in logs if log.resolve().parent == folder.resolve() and _holds_files(log)]
    if not moving:
        return None
    n = 1
    while (folder / f".attempt-{n}").exists():
        n += 1
    aside = folder / f".attempt-{n}"
    aside.mkdir()
    for path in moving:
        path.rename(aside / path.name)
    return aside


def run_kind(config: Path) -> str | None:
    """What the run that wrote ``config`` (a run's ``config.yaml``) did there: ``"trained"``, ``"tested"``
    (``fit: false``: it tested a checkpoint) or ``"dry run"`` (``fit: false`` and ``test: false``: it wrote
    nothing else); None without the file. A file cnnpl cannot read counts as a training run's."""
    from omegaconf import OmegaConf

    if not config.is_file():
        return None
    try:
        cfg = OmegaConf.load(config)
    except Exception:
        return "trained"
    if cfg.get("fit", True) is not False:
        return "trained"
    return "tested" if cfg.get("test", True) is not False else "dry run"


def _saves_checkpoints(config: Path) -> bool:
    """Whether the run whose ``config.yaml`` is ``config`` had a checkpoint callback (True where it cannot be told)."""
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
    except Exception:
        return True
    if not isinstance(saved, Mapping) or "callbacks" not in saved:
        return True
    callbacks = saved["callbacks"]
    if not isinstance(callbacks, Mapping):  # callbacks=null: none; anything else cannot be told
        return callbacks is not None
    return any(
        isinstance(node, Mapping) and (key == "checkpoint" or str(node.get("_target_", "")).endswith("Checkpoint"))
        for key, node in callbacks.items()
    )


def _saved_run_config(
    ckpt: str | Path, checkpoint: Mapping[str, Any] | None = None
) -> tuple[Path | None, dict[str, Any] | None]:
    """The ``config.yaml`` of the run that wrote ``ckpt`` (:func:`run_config_of`) and its settings, unresolved;
    None for the settings where there is no file or it is no mapping cnnpl wrote. There, the settings
    ``checkpoint`` (``ckpt`` read, if given) holds itself (:func:`checkpoint_config`) stand in for the file's."""
    from omegaconf import OmegaConf

    path = run_config_of(ckpt)
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path else None
    except Exception:  # not a config cnnpl wrote: nothing to compare with
        saved = None
    if not isinstance(saved, dict) and checkpoint is not None:  # none beside it, or one cnnpl did not write
        saved = checkpoint_config(checkpoint)
    return path, saved if isinstance(saved, dict) else None


def has_run_config(ckpt: str | Path) -> bool:
    """Whether the run that wrote ``ckpt`` left a ``config.yaml`` beside it that cnnpl can read."""
    return _saved_run_config(ckpt)[1] is not None


SAVED_CONFIG = "config"  # the run's config as YAML (under a checkpoint's "cnnpl"), as its config.yaml holds it


def checkpoint_config(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's settings a checkpoint holds (``checkpoint["cnnpl"]["config"]``, written by
    :class:`~cnnpl.callbacks.guards.ConfigWriter`), unresolved; None for one written before they were kept."""
    from omegaconf import OmegaConf

    text = (checkpoint.get("cnnpl") or {}).get(SAVED_CONFIG) if isinstance(checkpoint, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        saved = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except Exception:
        return None
    return saved if isinstance(saved, dict) else None


def run_config_of(ckpt: str | Path) -> Path | None:
    """The ``config.yaml`` of the run that wrote ``ckpt``: next to it, or one folder up (``<run>/checkpoints/``)."""
    path = Path(ckpt).expanduser()
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


# What a resume may change: where things go and how they are shown, how long to train (with a
# constant learning rate), and where the processes run. Everything else defines the training.
RESUME_FREE = ("ckpt_path", "fit", "test", "output_dir", "plugins", "keep_freed_memory", "callbacks", "logger")
RESUME_FREE_DATA = ("root", "num_workers", "download", "eval_batch_size")
# how the network is evaluated or laid out in memory, and its data-dependent init (done at step 0)
RESUME_FREE_SYSTEM = ("tta_flip", "tta_translate", "compile", "memory_format", "init_samples")
RESUME_FREE_OPTIMIZER = ("fused", "foreach")  # how a step is computed (cnnpl.optim.keep_implementation)
RESUME_BOUND_TRAINER = ("precision", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm")
# what a schedule's length (its total steps) depends on, besides max_epochs
SCHEDULE_BOUND_TRAINER = ("max_steps", "limit_train_batches", "devices", "num_nodes")
SHOWN_SETTINGS = 3  # differing settings named in the message


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``node`` as ``{"a.b.c": value}``; an Enum member as its name, as the run's ``config.yaml`` holds it."""
    import enum

    if isinstance(node, Mapping):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): node.name if isinstance(node, enum.Enum) else node}


def _resolved(config: Any, key: str, default: Any) -> Any:
    """``key`` of ``config`` (a DictConfig, or a saved config's plain settings) with its interpolations
    resolved here; ``default`` where they cannot be (a ``${hydra:...}`` outside a run)."""
    from omegaconf import OmegaConf

    try:
        node = config if OmegaConf.is_config(config) else OmegaConf.create(config)
        return OmegaConf.select(node, key, default=default)
    except Exception:
        return default


def _bound(key: str, scheduled: bool) -> bool:
    """Whether a resume must keep the setting ``key`` (a dotted config key) as the run had it
    (``scheduled``: the run has a learning-rate schedule, sized from its number of steps)."""
    top, _, rest = key.partition(".")
    second = rest.partition(".")[0]
    if top in RESUME_FREE or top == "hydra":
        return False
    if top == "data":
        return second not in RESUME_FREE_DATA
    if top == "system":
        return second not in RESUME_FREE_SYSTEM
    if top == "optimizer":
        return second not in RESUME_FREE_OPTIMIZER
    if top == "trainer":
        return second in RESUME_BOUND_TRAINER or (scheduled and second in SCHEDULE_BOUND_TRAINER)
    return True


def _built_by(group: str, flat: dict[str, Any]) -> Any:
    """What the config group ``group`` (a dotted key) builds: its ``_target_``, or its registered component."""
    from cnnpl.registry import FAMILIES, get_registry, located

    target, name = flat.get(f"{group}._target_"), flat.get(f"{group}.name")
    if group == "system":  # ImageClassifier(net, ..., **cfg.system)
        from cnnpl.system import ImageClassifier

        return ImageClassifier
    if isinstance(target, str):
        return located(target)
    if group in FAMILIES and isinstance(name, str):
        return get_registry(group).get(name)
    return None


NOT_A_PARAMETER = object()


def _default_of(obj: Any, name: str) -> Any:
    """The default of ``obj``'s parameter ``name`` (following a class's ``**kwargs`` to its bases):
    ``inspect.Parameter.empty`` if it has none, :data:`NOT_A_PARAMETER` if ``obj`` takes no such argument."""
    from cnnpl.registry import keyword_chain

    chain, open_ended = keyword_chain(obj)
    for callable_ in chain:
        parameters = inspect.signature(callable_).parameters
        if name in parameters:
            return parameters[name].default
    return inspect.Parameter.empty if open_ended else NOT_A_PARAMETER  # open: passed on where we cannot see


def _at_default(key: str, value: Any, flat: dict[str, Any]) -> bool:
    """Whether ``key=value``, a setting one config has and the other lacks, is what the callable of its
    group takes without it (a key added to cnnpl's config since the run), or no argument it takes at all
    (a key a later cnnpl removed): then leaving it out changes nothing."""
    group, _, name = key.rpartition(".")
    if not group or name.startswith("_"):
        return False
    try:
        default = _default_of(_built_by(group, flat), name)
    except Exception:  # not importable here, or no signature
        return False
    if default is NOT_A_PARAMETER:
        return True
    return default is not inspect.Parameter.empty and default == value


def validation_off(limit: Any) -> bool:
    """Whether ``trainer.limit_val_batches`` turns validation off (0 or 0.0; a bool is no count)."""
    return limit == 0 and not isinstance(limit, bool)


def _schedule(node: Any) -> str:
    """How a resume error shows a run's schedule: its ``_target_``, or ``none``."""
    return str(node.get("_target_", "?")) if node else "none"


def check_resume_settings(
    ckpt_path: str | Path, cfg: Any, *, warn: bool = True, checkpoint: Mapping[str, Any] | None = None
) -> None:
    """Refuse to resume the run that wrote ``ckpt_path`` with other settings than it trained with.

    Compares ``cfg`` (this command's config) with the run's ``config.yaml``, or where there is none with the
    settings ``checkpoint`` (``ckpt_path`` read, if given) holds (a checkpoint copied away from its run):
    the data, model, components, optimizer, schedule, seed and system settings must match, and so must
    ``trainer.max_epochs`` when a schedule is sized from it. Without this a resume that forgot the
    run's overrides would restore the weights and go on training on other data, or fail mid-fit.
    A checkpoint in a run's ``checkpoints/`` whose ``config.yaml`` is gone or unreadable is resumed with a
    warning that nothing was compared (``warn=False``: the sweep's check before its jobs, which warn themselves).
    """
    from omegaconf import OmegaConf

    saved_path, saved = _saved_run_config(ckpt_path, checkpoint)
    if saved is None:  # helper-127: the check was skipped without a word, the new config.yaml written
        from cnnpl.distributed import is_worker

        in_a_run = saved_path is not None or Path(ckpt_path).expanduser().parent.name == "checkpoints"
        if not (in_a_run or checkpoint is not None) or not warn or is_worker():
            return
        where = str(saved_path) if saved_path else f"beside {str(ckpt_path)!r} or in the folder above"
        logging.getLogger(__name__).warning(
            "no run config.yaml to compare this resume's settings with (%s: %s)%s; a resume must give the run's "
            "own settings, which nothing checks here",
            where,
            "not a config cnnpl wrote" if saved_path else "none",
            ", and the checkpoint holds none (written before cnnpl kept them)" if checkpoint is not None else "",
        )
        return
    trained = (
        f"the run in {str(saved_path.parent)!r}"
        if saved_path is not None
        else f"the run that wrote {str(ckpt_path)!r} (the settings the checkpoint holds)"
    )
    now = _flat(OmegaConf.to_container(cfg, resolve=False))
    then = _flat(saved)
    scheduled = bool(cfg.get("scheduler"))
    keys = {k for k in now.keys() & then.keys() if _bound(k, scheduled) and now[k] != then[k]}
    # a setting only one side has (+optimizer.amsgrad=true) differs unless it is the default of what its group
    # builds (a key added to cnnpl's config since the run); another option of a group shows in its _target_
    # or name, a schedule only one side has below
    one_side = [*((k, now) for k in now.keys() - then.keys()), *((k, then) for k in then.keys() - now.keys())]
    schedule_differs = scheduled != bool(saved.get("scheduler"))

    def same_builder(key: str) -> bool:  # else its _target_ or name shows the difference
        group = key.rpartition(".")[0]
        return all(now.get(f"{group}.{what}") == then.get(f"{group}.{what}") for what in ("_target_", "name"))

    keys |= {
        k
        for k, side in one_side
        if _bound(k, scheduled)
        and not (schedule_differs and k.startswith("scheduler"))
        and same_builder(k)
        and not _at_default(k, side[k], side)
    }
    # trainer settings that count when only one side sets them (+trainer.gradient_clip_val=1.0), and
    # with a schedule, what sizes it (+trainer.limit_train_batches=5)
    one_sided = RESUME_BOUND_TRAINER + (SCHEDULE_BOUND_TRAINER if scheduled else ())
    # the learning rate scaled by the processes' count (system.lr_scaling): the checkpoint's optimizer holds the
    # run's, so other devices would train at the run's lr, not the one the page's table gives (helper-135)
    keys |= {k for k in (f"trainer.{n}" for n in one_sided) if now.get(k) != then.get(k)}
    if now.get("system.lr_scaling", "none") != "none":  # the counts as they resolve (trainer=ddp_cpu's devices are
        for key in ("trainer.devices", "trainer.num_nodes"):  # ${oc.decode:${oc.env:LOCAL_WORLD_SIZE,2}}: helper-138)
            now[key], then[key] = _resolved(cfg, key, now.get(key)), _resolved(saved, key, then.get(key))
            if now[key] != then[key]:
                keys.add(key)
    # validation on or off (+trainer.limit_val_batches=0): what the checkpoints are ranked by, and which is tested
    if validation_off(now.get("trainer.limit_val_batches")) != validation_off(then.get("trainer.limit_val_batches")):
        keys.add("trainer.limit_val_batches")
    if schedule_differs:  # scheduler=none is {}: no key in common with a schedule
        keys.add("scheduler")
        now["scheduler"], then["scheduler"] = _schedule(cfg.get("scheduler")), _schedule(saved.get("scheduler"))
    keys = sorted(keys)
    if scheduled and saved.get("scheduler") and now.get("trainer.max_epochs") != then.get("trainer.max_epochs"):
        name = OmegaConf.select(cfg, "scheduler._target_", default="the schedule")
        raise CheckpointError(
            f"{trained} planned its learning-rate schedule ({name}) over "
            f"trainer.max_epochs={then.get('trainer.max_epochs')}, this command says "
            f"{now.get('trainer.max_epochs')}; resume with trainer.max_epochs={then.get('trainer.max_epochs')} "
            "(only a run with scheduler=none can be extended)"
        )
    if keys:
        changes = [f"{key} (run: {then.get(key, '<unset>')}, now: {now.get(key, '<unset>')})" for key in keys]
        shown = first_few(changes, SHOWN_SETTINGS)
        raise CheckpointError(
            f"ckpt_path resumes {trained}, but this command's settings differ from "
            f"the ones it trained with: {shown}; give the command that trained it again, with this ckpt_path"
            + (
                f" (its overrides are in {str(record)!r})"
                if saved_path is not None and (record := trained_overrides(saved_path)).is_file()
                else ""
            )
        )


# the settings that change what a test of a checkpoint measures: the data, how its pixels are scaled and
# sized, the test-time augmentation
TESTED_SETTINGS = ("data._target_", "data.normalize", "data.image_size", "system.tta_flip", "system.tta_translate")


def tested_settings_differ(ckpt_path: str | Path, cfg: Any, checkpoint: Mapping[str, Any] | None = None) -> str | None:
    """What a test of ``ckpt_path`` (``fit=false``) does otherwise than the run that trained it, as the
    warning's text; None when the settings of :data:`TESTED_SETTINGS` match, or the run left no config. A test
    is free to take other data (a checkpoint tried on images of one's own); this only says so."""
    from omegaconf import OmegaConf

    saved_path, saved = _saved_run_config(ckpt_path, checkpoint)
    if saved is None:
        return None
    then = _flat(saved)
    now = _flat(OmegaConf.to_container(cfg, resolve=False))
    keys = [key for key in TESTED_SETTINGS if key in then and now.get(key, then[key]) != then[key]]
    if not keys:
        return None
    record = trained_overrides(saved_path) if saved_path is not None else None
    overrides = f" (its overrides are in {str(record)!r})" if record is not None and record.is_file() else ""
    return (
        f"ckpt_path {str(ckpt_path)!r} was trained with "
        f"{', '.join(f'{key}={then[key]}' for key in keys)}, this test has "
        f"{', '.join(f'{key}={now.get(key)}' for key in keys)}: its accuracy is of that data and scaling; to test "
        f"what it trained on, give the run's own command{overrides} plus fit=false ckpt_path=..."
    )


def saved_data_state(checkpoint: Mapping[str, Any], data_class: str) -> Mapping[str, Any] | None:
    """A checkpoint's data-module state (its class names): under ``data_class`` (Lightning's key, the data
    module's class name), else that of another cnnpl data module (a shapes run tested on CIFAR-10)."""
    own = checkpoint.get(data_class)
    if isinstance(own, Mapping):
        return own
    others = [v for v in checkpoint.values() if isinstance(v, Mapping) and isinstance(v.get("class_names"), list)]
    return others[0] if len(others) == 1 else None


def trained_overrides(run_config: Path) -> Path:
    """The ``overrides.yaml`` of the command that last trained the run whose ``config.yaml`` is ``run_config``.

    Hydra records each command given in a run folder (``.hydra``, then ``.hydra-2``, ...: cnnpl keeps the
    earlier records; a command refused before it wrote anything leaves none); the one that trained composed
    the config the run wrote. The newest record with that config, else ``.hydra``'s (which does not exist for
    a run of the Python API)."""
    folder = run_config.parent
    text = run_config.read_text() if run_config.is_file() else None
    records = sorted(
        (p for p in folder.glob(".hydra*") if (p / "overrides.yaml").is_file()),
        key=lambda p: (
            int(p.name.rpartition("-")[2]) if p.name != ".hydra" and p.name.rpartition("-")[2].isdigit() else 1
        ),
    )
    for record in reversed(records):
        if text is not None and (record / "config.yaml").is_file() and (record / "config.yaml").read_text() == text:
            return record / "overrides.yaml"
    return folder / ".hydra" / "overrides.yaml"


def fit_problems(state: Mapping[str, Any], own: Mapping[str, torch.Tensor], what: str = "model") -> list[str]:
    """How the tensors ``state`` (a checkpoint's) do not fit ``own`` (a ``what``'s ``state_dict()``): the
    first ones with another shape, missing, and not in it, each as one phrase; empty when they fit."""
    shaped = [
        f"{k} (checkpoint {tuple(state[k].shape)}, {what} {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and isinstance(state[k], torch.Tensor) and not is_lazy(v) and state[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    for how, keys in (("with another shape", shaped), ("missing", missing), (f"not in this {what}", unexpected)):
        if keys:
            problems.append(f"{len(keys)} tensors {how}: {first_few(keys, SHOWN)}")
    return problems


def check_resumable(path: str | Path, checkpoint: Mapping[str, Any], model: str | None = None) -> None:
    """Refuse to resume training from ``checkpoint`` (read from ``path``) when it holds the weights alone
    (``callbacks.checkpoint.save_weights_only=true``): Lightning would fail on its missing optimizer state
    with a traceback, after the run's logs were opened. ``model``: the registered model's name, whose
    ``pretrained`` parameter (if it has one) the message offers."""
    if "optimizer_states" in checkpoint and "loops" in checkpoint:
        return
    start = (
        f"start a new run from its weights with model.pretrained={path} in a new folder, or "
        if _takes_pretrained(model)
        else ""
    )
    raise CheckpointError(
        f"checkpoint {str(path)!r} holds the weights only (no optimizer or loop state: saved with "
        f"save_weights_only=true), so training cannot resume from it; {start}test it with fit=false ckpt_path={path}"
    )


def check_resume_length(path: str | Path, checkpoint: Mapping[str, Any], max_epochs: Any, max_steps: Any = -1) -> None:
    """Refuse to resume from ``checkpoint`` (read from ``path``) a run saved in an epoch past ``trainer.max_epochs``
    (its epoch, counted from 0, at or above ``max_epochs``: Lightning stops with a traceback above it, and at it
    trains nothing and writes the shorter setting into the run's ``config.yaml``), or at a step past
    ``trainer.max_steps``. A finished run resumed with its own settings (a sweep continued) is tested again."""
    try:
        done = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"]  # the trainer's current_epoch
    except (KeyError, TypeError):
        done = None
    if _is_count(max_epochs) and done is not None and 0 <= max_epochs <= done:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was saved in epoch {done} (counting from 0), past trainer.max_epochs="
            f"{max_epochs}; a resume continues up to trainer.max_epochs: give {done + 1} or more, or test the "
            f"checkpoint with fit=false ckpt_path={path}"
        )
    step = checkpoint.get("global_step")
    if _is_count(max_steps) and _is_count(step) and 0 <= max_steps < step:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was saved at step {step}, past trainer.max_steps={max_steps}; a resume "
            f"continues up to trainer.max_steps: give {step} or more (-1: no limit), or test the checkpoint with "
            f"fit=false ckpt_path={path}"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _takes_pretrained(model: str | None) -> bool:
    """Whether the registered model ``model`` has a ``pretrained`` parameter (for the advice of a message)."""
    from cnnpl.registry import get_registry

    try:
        return model is not None and loads_weights(get_registry("model").get(model))
    except Exception:  # not a registered model
        return False


def loads_weights(architecture: Any) -> bool:
    """Whether an architecture (a class, or a network built from one) loads weights from a file:
    a ``pretrained`` parameter (``model.pretrained=``; ``simple_cnn`` and ``fast_net`` have none)."""
    cls = architecture if isinstance(architecture, type) else type(architecture)
    try:
        return "pretrained" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def check_checkpoint_fits(
    path: str | Path, module: nn.Module, model: str | None = None, checkpoint: Any = None
) -> dict[str, Any]:
    """Refuse the checkpoint at ``path`` if its ``state_dict`` does not fit ``module``; returns the checkpoint.

    Names the first missing, unexpected and differently shaped tensors, and the number of classes
    when the checkpoint records another one. ``model``: the registered model's name, whose ``pretrained``
    parameter (if it has one) the message for a file of weights alone offers. ``checkpoint``: the file read
    already (read here if not given).
    """
    checkpoint = safe_load(path) if checkpoint is None else checkpoint
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        weights = (
            f"for weights alone use model.pretrained={path}"
            if _takes_pretrained(model)
            else "ckpt_path takes the .ckpt files a run writes (in its checkpoints/ folder)"
            + (f"; model={model} loads no weights alone (it has no model.pretrained)" if model else "")
        )
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no 'state_dict'); {weights}")
    problems = []
    hparams = checkpoint.get("hyper_parameters") or {}
    ours = getattr(module, "hparams", {})
    if "num_classes" in hparams and "num_classes" in ours and hparams["num_classes"] != ours["num_classes"]:
        problems.append(f"it was trained for {hparams['num_classes']} classes, this data has {ours['num_classes']}")
    problems += fit_problems(state, module.state_dict())
    if problems:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model ({type(getattr(module, 'net', module)).__name__}): "
            + "; ".join(problems)
            + "; use the model, data and component settings it was trained with"
        )
    return checkpoint
