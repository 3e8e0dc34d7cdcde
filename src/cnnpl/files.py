"""Files written in one step: a reader (another process, a resume after a kill) sees the old file or the new one.

:func:`atomic_write` writes through a temporary file in the same folder and moves it over the target
with ``os.replace``; checkpoints (:func:`cnnpl.checkpoint.atomic_torch_save`), a run's ``config.yaml``
and the decoded-image cache (:mod:`cnnpl.data.folder`) are written this way.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import socket
import tempfile
import time
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


def is_local(path: str | Path) -> bool:
    """Whether ``path`` is on this machine's file system (not ``s3://...`` or another fsspec store)."""
    from fsspec.implementations.local import LocalFileSystem
    from lightning.fabric.utilities.cloud_io import get_filesystem

    return isinstance(get_filesystem(str(path)), LocalFileSystem)


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
    and is removed if ``write`` fails; ``path`` then still holds its previous contents. One left by a
    process killed while it wrote is removed by the next write of ``path`` (:func:`remove_stale_temporaries`).
    The file gets ``mode``, by default the permissions of any new file (``mkstemp`` alone would make it
    private).
    ``durable``: flushed to the disk (``fsync``), the rename too, before this returns.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent)
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
    remove_stale_temporaries(target)


NAME_MAX = 255  # bytes in a file name, on the common file systems


def _temporary_prefix(target: Path) -> str:
    """``.<name>.<pid>@<host>.``: whose temporary file it is, so that one left by a process killed while
    it wrote (``SIGKILL``, a lost machine) can be told from one still being written; ``.<name>.`` where
    that would make the name too long (such a file is not removed by :func:`remove_stale_temporaries`)."""
    owned = f".{target.name}.{os.getpid()}@{socket.gethostname()}."
    return owned if len(owned.encode()) + len("12345678.tmp") <= NAME_MAX else f".{target.name}."


QUIET_FOR = 600  # seconds: a temporary file not written to for longer is no save in progress

_told: set[Path] = set()  # another machine's temporary files warned of, once each


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporary files of ``target`` that :func:`atomic_write` began in processes of this machine
    that are no longer running (killed before they could clean up); returns them.

    A kill during a save leaves the target as it was and its temporary file beside it (as large as a
    checkpoint); the next write of the same file removes it. A file of another machine (a shared file
    system) or of a process still running is left alone, as are names this function did not write; one of
    another machine not written to for ``QUIET_FOR`` seconds is warned of, once (this machine cannot tell
    whether its process still runs).
    """
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)@(.+)\.[^.]+\.tmp")
    host, removed = socket.gethostname(), []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        found = pattern.fullmatch(path.name)
        if found and found[2] == host and not _running(int(found[1])):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
        elif found and found[2] != host and path not in _told:
            with contextlib.suppress(OSError):
                written = path.stat()
                quiet = time.time() - written.st_mtime
                if quiet > QUIET_FOR:
                    _told.add(path)
                    size = (
                        f"{written.st_size / 1e6:.1f} MB" if written.st_size >= 100_000 else f"{written.st_size} bytes"
                    )
                    logging.getLogger(__name__).warning(
                        "%s (%s) is a temporary file that process %s of machine %s began and has not written "
                        "to for %d minutes, most likely a save it did not finish; this machine cannot tell whether "
                        "that process still runs: delete the file if it does not",
                        path,
                        size,
                        found[1],
                        found[2],
                        quiet // 60,
                    )
    return removed


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (another user's counts: it cannot be signalled)."""
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill(pid, 0) would send a Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True
