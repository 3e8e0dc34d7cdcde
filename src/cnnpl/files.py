"""Files written in one step: a reader (another process, a resume after a kill) sees the old file or the new one.

:func:`atomic_write` writes through a temporary file in the same folder and moves it over the target
with ``os.replace``; checkpoints (:func:`cnnpl.checkpoint.atomic_torch_save`), a run's ``config.yaml``
and the decoded-image cache (:mod:`cnnpl.data.folder`) are written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file: ``0o666`` less the process's umask (usually ``0o644``).

    The umask can only be read by setting it; this sets it back at once, from the thread that writes
    (a file another thread creates in between gets ``0o022``'s permissions, not ``0o666``).
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not every platform can open a folder
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, mode: int | None = None, durable: bool = False
) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes, only once it is all written.

    The temporary file lives in the same folder (``os.replace`` is atomic only within a file system)
    and is removed if ``write`` fails; ``path`` then still holds its previous contents. The file gets
    ``mode``, by default the permissions of any new file (``mkstemp`` alone would make it private).
    ``durable``: flushed to the disk (``fsync``), the rename too, before this returns.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode() if mode is None else mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(target.parent)
