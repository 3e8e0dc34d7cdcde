"""Class-folder image datasets (``<split>/<class>/*.png|jpg``), decoded once and cached.

The decoded arrays are cached as ``.npz`` next to the data (``<root>/.cnnpl-cache/``) or, when that
folder cannot be written, under ``$XDG_CACHE_HOME/cnnpl`` (``~/.cache/cnnpl``). The cache key hashes
every file's path, size and modification time, so an edited folder is decoded again.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cnnpl.data.base import Split
from cnnpl.errors import DataError
from cnnpl.files import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


def list_class_folders(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (the sorted folder names) and ``(file, label)`` pairs, label = index of the class.

    Each file is named by its path relative to ``split_dir`` (``"cat/0001.jpg"``), in the order of
    the paths: strings, since making 50,000 ``Path`` objects would cost most of the listing's time.
    """
    if not split_dir.is_dir():
        raise DataError(f"no folder {split_dir}: expected {split_dir}/<class>/<image files>")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<image files>")
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        with os.scandir(split_dir / name) as entries:
            found = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(
                f"class folder {split_dir / name} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                "add images or remove the folder"
            )
        files += [(f"{name}/{file}", label) for file in found]
    return classes, files


def _decode(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"cannot read image {path}: {err}; delete or replace the file") from None


def _cache_dirs(root: Path) -> list[Path]:
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnpl"
    return [root / ".cnnpl-cache", user]


def _cache_key(split_dir: Path, files: list[tuple[str, int]], class_order: list[str]) -> str:
    digest = hashlib.sha256("|".join(class_order).encode())
    for file, label in files:
        st = os.stat(f"{split_dir}/{file}")
        digest.update(f"{file}:{label}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_class_folders(split_dir: Path, class_order: list[str] | None = None) -> tuple[Split, list[str]]:
    """Decode ``split_dir/<class>/*`` into one uint8 ``(N, 3, H, W)`` tensor, through the cache.

    ``class_order`` fixes label numbers (CIFAR-10's official order); the folders must match it.
    Raises :class:`DataError` for an empty class, an unreadable image or mixed image sizes.
    """
    split_dir = Path(split_dir)
    classes, files = list_class_folders(split_dir)
    if class_order is not None:
        if sorted(class_order) != classes:
            raise DataError(
                f"class folders in {split_dir} are {classes}, expected {sorted(class_order)}; fix the folder names"
            )
        relabel = {classes.index(name): i for i, name in enumerate(class_order)}
        files = [(file, relabel[label]) for file, label in files]
        classes = list(class_order)
    key = _cache_key(split_dir, files, classes)
    name = f"{split_dir.name}-{key}.npz"
    for cache_dir in _cache_dirs(split_dir.parent):
        cached = cache_dir / name
        if cached.is_file():
            with np.load(cached) as data:
                return Split(torch.from_numpy(data["images"]), torch.from_numpy(data["labels"])), classes

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = list(pool.map(_decode, (f"{split_dir}/{file}" for file, _ in files), chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"images in {split_dir} differ in size ({sorted(shapes)[:3]}...); resize them to one size")
    images = np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))
    labels = np.asarray([label for _, label in files], dtype=np.int64)
    for cache_dir in _cache_dirs(split_dir.parent):
        if _write_atomically(cache_dir / name, images, labels):
            break
    return Split(torch.from_numpy(images), torch.from_numpy(labels)), classes


def interleave_classes(split: Split) -> Split:
    """``split`` reordered round-robin over its classes (0, 1, ..., 9, 0, 1, ...), each class in its order.

    Class folders list one class after another, so the first batches of a split in folder order hold
    one class; interleaved, every stretch of a balanced split holds every class (for
    ``+trainer.limit_test_batches=3``). The order does not depend on the seed.
    """
    labels = split.labels
    within = torch.empty_like(labels)  # an image's position among the images of its class
    for label in labels.unique():
        where = (labels == label).nonzero().squeeze(1)
        within[where] = torch.arange(len(where))
    order = torch.argsort(within * (int(labels.max()) + 1) + labels) if len(labels) else labels
    return Split(split.images[order], labels[order])


def _write_atomically(path: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    """Write the cache file in one step (:func:`cnnpl.files.atomic_write`); False if the folder is not writable."""
    try:  # 0o644: the cache is as readable as the data
        atomic_write(path, lambda f: np.savez(f, images=images, labels=labels), mode=0o644)
    except OSError:
        return False
    return True
