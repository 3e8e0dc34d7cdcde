"""Checkpoint files: atomic writes, safe reads, ``ckpt_path=last``, and a fit check before training.

- :class:`AtomicCheckpointIO` (Lightning's ``TorchCheckpointIO`` with another ``save``/``load``):
  a checkpoint is written to a temporary file in the same folder, flushed to disk, then moved over
  the old one with ``os.replace``, so a kill or a full disk during a save never leaves a truncated
  ``last.ckpt`` in place of a good one. Reads use ``torch.load(weights_only=True)``: a file that
  needs pickled Python objects (code) to load is refused with :class:`UnsafeCheckpointError`.
- :func:`resolve_ckpt_path`: ``ckpt_path=last`` means ``<output_dir>/checkpoints/last.ckpt`` of the
  run directory (resume with the same ``hydra.run.dir`` and ``ckpt_path=last``).
- :func:`check_checkpoint_fits`: a checkpoint of another architecture or number of classes is refused
  with one line before training starts (Lightning would print a page of missing keys mid-setup).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from torch import nn
from torch.nn.parameter import is_lazy

from cnnpl.errors import CnnplError

LAST = "last"  # ckpt_path=last: the run directory's last.ckpt
LAST_FILE = "last.ckpt"  # what ModelCheckpoint(save_last=True) writes
SHOWN = 3  # mismatching tensors named in an error message
# how torch's weights-only unpickler names what it refused: "Unsupported global: GLOBAL io.open was not ..."
REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class CheckpointError(CnnplError):
    """A checkpoint that is missing, unreadable, or does not fit the model it should restore."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds pickled Python objects other than tensors and plain containers."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def safe_load(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`CheckpointError` messages.

    Only tensors, numbers, strings and plain containers load; anything else (a class, a function, a
    ``__reduce__`` payload) is refused before it can run, with :class:`UnsafeCheckpointError`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"checkpoint {str(file)!r} does not exist")
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = REFUSED_GLOBAL.search(str(err))
        what = f"it holds a pickled Python object ({found.group(1)})" if found else "it holds pickled Python objects"
        raise UnsafeCheckpointError(
            f"refused to load checkpoint {str(file)!r}: {what}, not only tensors and plain values; cnnpl loads "
            "checkpoints with torch.load(weights_only=True) so that a file cannot run code; load only checkpoints "
            "written by cnnpl, or re-save the weights alone with torch.save(model.state_dict(), path)"
        ) from None
    except Exception as err:  # truncated, not a torch file, wrong format: the user's file to fix
        raise CheckpointError(f"cannot read checkpoint {str(file)!r}: {_first_line(err)}") from None


def _fsync_dir(folder: str) -> None:
    # makes the rename itself durable; not every platform can open a folder
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that replaces ``path`` only once the new file is complete on disk.

    The temporary file lives in the same folder (``os.replace`` is atomic only within a file system)
    and is removed if the save fails; ``path`` then still holds its previous contents.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(str(target.parent))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and reads with ``weights_only=True``.

    Pass it to the trainer: ``Trainer(plugins=[AtomicCheckpointIO()])``. Remote paths (``s3://``...)
    keep Lightning's own writer, whose object stores replace a file whole anyway.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)

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
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return safe_load(path, map_location=map_location)


def _is_local(path: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(get_filesystem(str(path)), LocalFileSystem)


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: str | Path) -> str | None:
    """The file ``ckpt_path`` names: ``last`` is ``<checkpoint_dir>/last.ckpt``, which must exist.

    Raises :class:`CheckpointError` when the file is missing, saying how to resume.
    """
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    if str(ckpt_path) == LAST:
        last = Path(checkpoint_dir) / LAST_FILE
        if not last.is_file():
            raise CheckpointError(
                f"ckpt_path=last but {str(last)!r} does not exist; resume with the run directory of the "
                "interrupted run (hydra.run.dir=<that run's directory> ckpt_path=last) or give a checkpoint file"
            )
        return str(last)
    file = Path(str(ckpt_path)).expanduser()
    if not file.is_file():
        raise CheckpointError(f"ckpt_path {str(file)!r} does not exist; give a .ckpt file or ckpt_path=last")
    return str(file)


def check_checkpoint_fits(path: str | Path, module: nn.Module) -> dict[str, Any]:
    """Refuse the checkpoint at ``path`` if its ``state_dict`` does not fit ``module``; returns the checkpoint.

    Names the first missing, unexpected and differently shaped tensors, and the number of classes
    when the checkpoint records another one.
    """
    checkpoint = safe_load(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{str(path)!r} is not a Lightning checkpoint (no 'state_dict'); for weights alone use model.pretrained="
        )
    own = module.state_dict()
    problems = []
    hparams = checkpoint.get("hyper_parameters") or {}
    ours = getattr(module, "hparams", {})
    if "num_classes" in hparams and "num_classes" in ours and hparams["num_classes"] != ours["num_classes"]:
        problems.append(f"it was trained for {hparams['num_classes']} classes, this data has {ours['num_classes']}")
    shaped = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and isinstance(state[k], torch.Tensor) and not is_lazy(v) and state[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    for what, keys in (("with another shape", shaped), ("missing", missing), ("not in this model", unexpected)):
        if keys:
            more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            problems.append(f"{len(keys)} tensors {what}: {', '.join(keys[:SHOWN])}{more}")
    if problems:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit this model ({type(getattr(module, 'net', module)).__name__}): "
            + "; ".join(problems)
            + "; use the model, data and component settings it was trained with"
        )
    return checkpoint
