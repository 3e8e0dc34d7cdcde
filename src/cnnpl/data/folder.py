"""Class-folder image datasets (``<split>/<class>/*.png|jpg``), decoded once and cached.

The decoded arrays are cached as ``.npz`` next to the data (``<root>/.cnnpl-cache/``) or, when that
folder cannot be written, under ``$XDG_CACHE_HOME/cnnpl`` (``~/.cache/cnnpl``). The cache key hashes
every file's path, size and modification time, so an edited folder is decoded again (and its older copy
removed). A cache file that cannot be read, or whose arrays do not fit the folder, is decoded again and
rewritten (with a warning).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cnnpl.data.base import Split
from cnnpl.errors import DataError, first_few
from cnnpl.files import atomic_write, remove_stale_temporaries

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")  # a GIF: its first frame
JPEG_SUFFIXES = (".jpg", ".jpeg")
JPEG_BATCH = 1024  # files a call of torchvision's decoder
READABLE = "make the data readable (chmod -R a+rX <data folder>)"  # what a permission error advises


def list_class_folders(split_dir: Path, fixed_classes: bool = False) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (the sorted folder names) and ``(file, label)`` pairs, label = index of the class.

    Each file is named by its path relative to ``split_dir`` (``"cat/0001.jpg"``), in the order of
    the paths: strings, since making 50,000 ``Path`` objects would cost most of the listing's time.
    ``fixed_classes``: the data has these classes (CIFAR-10's), so an empty one cannot be removed.
    """
    if not split_dir.is_dir():
        raise DataError(f"no folder {split_dir}: expected {split_dir}/<class>/<image files>")
    try:
        entries = [(p.name, p.is_dir()) for p in split_dir.iterdir() if not p.name.startswith(".")]
    except OSError as err:  # a folder this user cannot list (PermissionError was a traceback)
        raise DataError(_unlistable(split_dir, err)) from None
    classes = sorted(name for name, folder in entries if folder)
    loose = sorted(name for name, folder in entries if not folder)
    if not classes:
        raise DataError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<image files>")
    files: list[tuple[str, int]] = []
    skipped: list[str] = []
    for label, name in enumerate(classes):
        try:
            with os.scandir(split_dir / name) as entries:
                names = [(e.name, e.is_dir()) for e in entries]
        except OSError as err:
            raise DataError(_unlistable(split_dir / name, err)) from None
        images = {  # not a hidden file: macOS's "._<name>" metadata, an editor's or rsync's partial copy
            n for n, folder in names if not folder and os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES and n[0] != "."
        }
        found = sorted(images)
        skipped += sorted(  # hidden files (.DS_Store) go without saying
            f"{name}/{n}/" if folder else f"{name}/{n}" for n, folder in names if n not in images and n[0] != "."
        )
        if not found:
            folders = sorted(n for n, folder in names if folder and n[0] != ".")
            inside = (
                f" (it holds the folder{'s' if len(folders) > 1 else ''} {', '.join(folders[:3])}: a class's "
                "images go directly in its folder)"
                if folders
                else ""
            )
            raise DataError(
                f"class folder {split_dir / name} holds no images ({', '.join(IMAGE_SUFFIXES)}){inside}; "
                + ("copy its images again" if fixed_classes else "add images or remove the folder")
            )
        files += [(f"{name}/{file}", label) for file in found]
    if loose:  # images beside the class folders have no class: left out, but not without a word
        warnings.warn(
            f"{split_dir}: left out {len(loose)} file{'s' if len(loose) > 1 else ''} beside the class folders, "
            f"which belong{'s' if len(loose) == 1 else ''} to no class: {_shown(loose)}; a class's images go in its "
            f"folder ({split_dir}/<class>/)",
            stacklevel=2,
        )
    if skipped:  # a subfolder's images, or a format not read here, would otherwise be left out without a word
        warnings.warn(
            f"{split_dir}: left out {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} of the class folders "
            f"that {'is' if len(skipped) == 1 else 'are'} no image file of the formats read "
            f"({', '.join(IMAGE_SUFFIXES)}): {_shown(skipped)}; "
            "a class's images go directly in its folder, converted to one of these formats",
            stacklevel=2,
        )
    return classes, files


def _shown(names: list[str]) -> str:
    """The first three of ``names``, and how many more, for a message."""
    return first_few(names, 3)


def first_image_size(split_dir: Path) -> tuple[int, int] | None:
    """``(height, width)`` of the first image :func:`list_class_folders` lists in ``split_dir``, from its
    header alone; ``None`` when there is none or it cannot be read. (:func:`load_class_folders` refuses a
    split whose images differ in size, so this is every image's size, or the split is refused.)"""
    from PIL import Image

    try:
        _, files = list_class_folders(split_dir)
        with _bombs_refused(), Image.open(split_dir / files[0][0]) as img:
            width, height = img.size
    except (DataError, OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # loading says what is wrong
    return height, width


WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit grey PNGs
# PIL's modes that convert("RGB") reads as 8-bit colour or grey; a float TIFF (mode F: 0.5 became black) or a
# CIELab one (LAB) would convert to wrong colours without a word
RGB_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
# What changed in how Pillow's files (all but JPEGs) are decoded, in the cache key of a split holding any: a
# cache written before decodes them again once (16-bit grey was clipped nearly white); JPEG-only splits
# (CIFAR-10's JPEG copy) keep theirs
PIL_DECODE_CHANGES = b"16-bit grey scaled to 8 bits\n32-bit grey beyond 16 bits refused\n"


def _decode(path: str) -> torch.Tensor:
    """One image through PIL, as a uint8 ``(3, H, W)`` tensor.

    16-bit grey is scaled to 8 bits (x 255 / 65535): PIL's ``convert("RGB")`` would clip every value
    above 255, turning the image nearly white.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # (over Pillow's limit: refused, _bombs_refused)
            if img.mode not in RGB_MODES and img.mode not in WIDE_GREY_MODES:
                raise DataError(
                    f"cannot read image {path}: its pixels are of Pillow's mode {img.mode} (floats, or another colour "
                    "space), which cnnpl does not turn into 8-bit RGB; convert it to 8-bit RGB or grey"
                )
            if img.mode in WIDE_GREY_MODES:
                values = np.asarray(img)
                if values.size and (values.min() < 0 or values.max() > 65535):  # helper-139: 32-bit TIFFs saturated
                    raise DataError(
                        f"cannot read image {path}: its pixels are 32-bit integers from {values.min()} to "
                        f"{values.max()}, beyond 16-bit grey's 0-65535, which cnnpl scales to 8 bits; convert it to "
                        "8- or 16-bit grey"
                    )
                grey = values.astype(np.float64) * (255 / 65535)
                rgb = np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            else:
                rgb = np.array(img.convert("RGB"), dtype=np.uint8)
    except PermissionError as err:  # a good image this user may not read: not one to delete
        raise DataError(f"cannot read image {path}: {err.strerror}; {READABLE}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"cannot read image {path}: {str(err).rstrip('.')}; delete or replace the file") from None
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _decode_jpegs(paths: list[str]) -> list[torch.Tensor] | None:
    """JPEG files through torchvision's decoder in one call; None if it refuses any of them or is missing."""
    try:  # deprecated since torchvision 0.29 (for TorchCodec's, which needs FFmpeg); PIL stays the fallback
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    try:
        data = [torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8) for path in paths]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_jpeg(data, mode=ImageReadMode.RGB)
    except (OSError, RuntimeError, ValueError):  # unreadable, empty, corrupt, a variant it lacks, no extension
        return None


def _decode_all(paths: list[str]) -> list[torch.Tensor]:
    """Every image as a uint8 ``(3, H, W)`` tensor, in order.

    JPEGs go through torchvision's decoder in batches: on CIFAR-10's 32x32 files about 6x the speed
    of PIL on two threads, with the same pixels (both are libjpeg-turbo; checked on all 60,000). Other
    formats, and any batch torchvision refuses, go image by image through PIL, which names a file it
    cannot read.
    """
    images: list[torch.Tensor | None] = [None] * len(paths)
    jpegs = [i for i, path in enumerate(paths) if path.lower().endswith(JPEG_SUFFIXES)]
    for start in range(0, len(jpegs), JPEG_BATCH):
        batch = jpegs[start : start + JPEG_BATCH]
        for i, image in zip(batch, _decode_jpegs([paths[i] for i in batch]) or [], strict=False):
            images[i] = image
    rest = [i for i, image in enumerate(images) if image is None]
    with _bombs_refused(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for i, image in zip(rest, pool.map(_decode, (paths[i] for i in rest), chunksize=256), strict=True):
            images[i] = image
    return images  # type: ignore[return-value]  # every None filled


@contextlib.contextmanager
def _bombs_refused() -> Iterator[None]:
    """Pillow's DecompressionBombWarning as an error, which :func:`_decode` names (helper-139: an image over the
    limit but under twice it printed Pillow's two lines and was decoded). Set once, in the thread that starts the
    decoding threads: ``warnings.catch_warnings`` in each of them raced (helper-143: the filter stayed behind)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _cache_files(split_dir: Path) -> list[tuple[Path, str]]:
    """Where ``split_dir``'s decoded arrays may be cached: ``(folder, prefix)`` pairs, the file being
    ``<prefix><names><listing><key>.npz`` (:func:`_cache_name`). Next to the data
    (``<root>/.cnnpl-cache/<split>-``), else in the user's cache, whose file names also hash the data's folder (it
    holds every dataset's splits).
    ``$XDG_CACHE_HOME`` unset, empty or relative means ``~/.cache``, as the XDG specification says."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    user = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "cnnpl"
    where = hashlib.sha256(_utf8(str(split_dir.resolve()))).hexdigest()[:8]
    return [(split_dir.parent / ".cnnpl-cache", f"{split_dir.name}-"), (user, f"{split_dir.name}-{where}-")]


def _utf8(text: str) -> bytes:
    """``text`` as bytes, file names that are not UTF-8 (``caf\udce9.png``, from a Latin-1 archive) as the
    bytes they are on disk."""
    return text.encode("utf-8", "surrogateescape")


def _file_stats(split_dir: Path, files: list[tuple[str, int]]) -> list[os.stat_result]:
    """``os.stat`` of each listed file, in order; :class:`DataError` naming one that cannot be read."""
    stats = []
    for file, _ in files:
        path = f"{split_dir}/{file}"
        try:
            stats.append(os.stat(path))
        except PermissionError as err:  # a class folder that lists but cannot be entered (r without x)
            raise DataError(f"cannot read image {path}: {err.strerror}; {READABLE}") from None
        except OSError as err:  # a link to nothing, a file removed since the listing
            raise DataError(f"cannot read image {path}: {err.strerror}; delete or replace the file") from None
    return stats


def _cache_key(
    split_dir: Path, files: list[tuple[str, int]], class_order: list[str], stats: list[os.stat_result] | None = None
) -> str:
    """The cache key of the listing: its class order and each file's name, label, size and modification time
    (``stats``: :func:`_file_stats` of ``files``, taken here when not given)."""
    digest = hashlib.sha256(_utf8("|".join(class_order)))
    for (file, label), st in zip(files, _file_stats(split_dir, files) if stats is None else stats, strict=True):
        digest.update(_utf8(f"{file}:{label}:{st.st_size}:{st.st_mtime_ns}\n"))
    if any(not file.lower().endswith(JPEG_SUFFIXES) for file, _ in files):
        digest.update(PIL_DECODE_CHANGES)
    return digest.hexdigest()[:16]


def _listing_key(files: list[tuple[str, int]], class_order: list[str]) -> str:
    """What a cache file's name starts with: the listing's class order, file names and labels, not their
    sizes and times. A copy of the same listing under another key holds the files as they were before."""
    digest = hashlib.sha256(_utf8("|".join(class_order)))
    for file, label in files:
        digest.update(_utf8(f"{file}:{label}\n"))
    return digest.hexdigest()[:8]


def _files_key(files: list[tuple[str, int]]) -> str:
    """The split's file names, in any class order: copies of the split under another name set hold images
    that the folder no longer has."""
    return hashlib.sha256(_utf8("\n".join(sorted(file for file, _ in files)))).hexdigest()[:8]


def _cache_name(prefix: str, files: list[tuple[str, int]], class_order: list[str], key: str) -> str:
    return f"{prefix}{_files_key(files)}{_listing_key(files, class_order)}{key}.npz"


def _remove_older_copies(folder: Path, prefix: str, kept: str, edited_ns: int) -> None:
    """Remove the cache files of ``prefix`` in ``folder`` that hold the split's images as they were before:
    as large as the current one (154 MB for CIFAR-10's training split).

    - Those of other file names: a file or class folder added, removed or renamed, or a fuller copy of the
      data extracted over a partial one (``tar -x`` keeps the archive's old times, so time cannot tell).
    - Those of the same listing (the same names in the same class order) under another key: a file
      re-extracted or edited.
    - Those of the same names in another class order written before ``edited_ns``, the newest modification
      time of the split's files and class folders. Every key covers every file's time, so such a copy fits no
      listing of the folder now; one written since (CIFAR-10's fixed order beside a sorted one) fits one, and
      stays.

    So does anything not named as a cache file. A copy named by an older cnnpl (by the key alone, or without
    the names' part) goes: it is never read again."""
    pattern = re.compile(re.escape(prefix) + r"(?:[0-9a-f]{8}){0,2}[0-9a-f]{16}\.npz")
    names, listing = kept[len(prefix) : len(prefix) + 8], kept[len(prefix) + 8 : len(prefix) + 16]
    for path in folder.glob(f"{glob.escape(prefix)}*.npz"):
        if path.name == kept or not pattern.fullmatch(path.name):
            continue
        with contextlib.suppress(OSError):  # removed already (another run), or not ours to remove
            name = path.name[len(prefix) : -len(".npz")]
            older = len(name) < 32 or name[:8] != names or name[8:16] == listing
            if older or path.stat().st_mtime_ns < edited_ns:
                path.unlink()
    # a copy that a killed run was writing: its temporary file is removed by the next write of the same name,
    # which never comes once the split has changed (a 154 MB leftover for CIFAR-10); those of dead processes go
    for target in {tmp.name[1:].partition(".npz.")[0] for tmp in folder.glob(f".{glob.escape(prefix)}*.npz.*.tmp")}:
        if pattern.fullmatch(f"{target}.npz"):
            remove_stale_temporaries(folder / f"{target}.npz")


def _unlistable(folder: Path, err: OSError) -> str:
    return f"cannot list {folder}: {err.strerror or err}; {READABLE}"


def load_class_folders(split_dir: Path, class_order: list[str] | None = None) -> tuple[Split, list[str]]:
    """Decode ``split_dir/<class>/*`` into one uint8 ``(N, 3, H, W)`` tensor, through the cache.

    ``class_order`` fixes label numbers (CIFAR-10's official order); the folders must match it.
    Raises :class:`DataError` for an empty class, an unreadable image or mixed image sizes.
    """
    split_dir = Path(split_dir)
    classes, files = list_class_folders(split_dir, fixed_classes=class_order is not None)
    if class_order is not None:
        if sorted(class_order) != classes:
            missing = [name for name in class_order if name not in classes]
            extra = [name for name in classes if name not in class_order]
            differ = "; ".join(
                f"{what} {', '.join(names)}"
                for what, names in (("missing:", missing), ("not a class:", extra))
                if names
            )
            raise DataError(
                f"class folders in {split_dir} differ from the data's classes ({differ}); fix the folder names "
                f"(the classes: {', '.join(class_order)})"
            )
        relabel = {classes.index(name): i for i, name in enumerate(class_order)}
        files = [(file, relabel[label]) for file, label in files]
        classes = list(class_order)
    stats = _file_stats(split_dir, files)
    key = _cache_key(split_dir, files, classes, stats)
    labels = np.asarray([label for _, label in files], dtype=np.int64)
    damaged = []
    for cache_dir, prefix in _cache_files(split_dir):
        cached = cache_dir / _cache_name(prefix, files, classes, key)
        if cached.is_file():
            split = _read_cache(cached, labels)
            if isinstance(split, Split):
                return split, classes
            damaged.append(f"{cached} ({split})")
    # Said only when decoding: a damaged file that cannot be replaced (a read-only data folder) is
    # passed over quietly from the next run on, which reads the copy written to the user's cache.
    for problem in damaged:
        warnings.warn(f"ignoring the damaged decode cache {problem}; decoding the images again", stacklevel=2)

    decoded = _decode_all([f"{split_dir}/{file}" for file, _ in files])
    _check_one_size(split_dir, [file for file, _ in files], decoded)
    images = torch.stack(decoded).numpy()
    for cache_dir, prefix in _cache_files(split_dir):
        name = _cache_name(prefix, files, classes, key)
        if _write_atomically(cache_dir / name, images, labels):
            # a file added or removed changes its class folder's time, an edit the file's own
            folders = {file.partition("/")[0] for file, _ in files}
            with contextlib.suppress(OSError):  # a class folder gone since the listing: pruned at the next write
                edited = max(os.stat(split_dir / name).st_mtime_ns for name in folders)
                edited = max(edited, *(st.st_mtime_ns for st in stats))
                _remove_older_copies(cache_dir, prefix, kept=name, edited_ns=edited)
            break
    return Split(torch.from_numpy(images), torch.from_numpy(labels)), classes


def _check_one_size(split_dir: Path, files: list[str], images: list[torch.Tensor]) -> None:
    """Refuse images of more than one size, naming a file of each (the most common size first)."""
    sizes: dict[tuple[int, int], list[str]] = {}
    for file, image in zip(files, images, strict=True):
        sizes.setdefault((int(image.shape[1]), int(image.shape[2])), []).append(file)
    if len(sizes) == 1:
        return
    ranked = sorted(sizes.items(), key=lambda item: -len(item[1]))
    shown = first_few([f"{h}x{w} ({first_few(names, 1)})" for (h, w), names in ranked], 4, "sizes")
    raise DataError(f"images in {split_dir} differ in size (height x width): {shown}; resize them to one size")


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


# what reading a damaged .npz can raise: a truncated or garbled zip (BadZipFile, a bad CRC, EOFError,
# zlib.error), an array header or data cut short (ValueError), a missing array (KeyError), an unreadable
# file (OSError), a garbled header claiming a huge shape (MemoryError)
_DAMAGED_CACHE_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, MemoryError)


def _read_cache(path: Path, labels: np.ndarray) -> Split | str:
    """The split cached in ``path``, or what is wrong with it if the file is damaged.

    Damaged: it cannot be read as an ``.npz`` of ``images`` and ``labels``, or its arrays do not fit the
    folder (images not uint8 ``(N, 3, H, W)``, labels not the folder's ``labels``). The caller then
    decodes the folder again and rewrites the cache.
    """
    try:
        with open(path, "rb") as file:  # closed also when np.load fails on a damaged archive (it leaves its own open)
            data = np.load(file)  # allow_pickle=False: a pickle is refused (ValueError), never run
            if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array, not an archive
                raise ValueError("a .npy array, not an .npz archive")
            with data:
                images, cached_labels = data["images"], data["labels"]
    except _DAMAGED_CACHE_ERRORS as err:
        problem = f"{type(err).__name__}: {' '.join(str(err).split())}"  # one line
    else:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
            problem = f"images are {images.dtype} {images.shape}, not uint8 (N, 3, H, W)"
        elif len(images) != len(labels) or not np.array_equal(cached_labels, labels):
            problem = f"{len(images)} images and {len(cached_labels)} labels, not the labels of the {len(labels)} files"
        else:
            return Split(torch.from_numpy(images), torch.from_numpy(cached_labels.astype(np.int64, copy=False)))
    return problem


def _write_atomically(path: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    """Write the cache file in one step (:func:`cnnpl.files.atomic_write`); False if the folder is not writable."""
    try:  # 0o644: the cache is as readable as the data
        atomic_write(path, lambda f: np.savez(f, images=images, labels=labels), mode=0o644)
    except OSError:
        return False
    return True
