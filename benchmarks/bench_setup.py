"""The CIFAR-10 DataModule's start, phase by phase: cnnpl's way against the way it replaced.

A warm ``setup()`` (the decode cache written by an earlier run) lists the class folders, hashes
every file's path, size and modification time into the cache key, reads the cached arrays, draws the
validation split and computes the per-channel mean and std of the training part. Two of those
phases had cheaper forms, timed here side by side against the forms they replaced (inline below):

* ``listing + cache key``: ``pathlib`` (a ``Path`` per file, sorted as paths, ``relative_to`` and
  ``Path.stat`` for the key; cnnpl up to commit 7c6d04d) against
  :func:`cnnpl.data.folder.list_class_folders` and ``_cache_key`` (names as strings, ``os.stat``);
* ``statistics``: every training pixel copied to float64 for ``mean`` and ``std`` (up to 7c6d04d)
  against :func:`cnnpl.data.base.channel_stats` (exact integer sums of each channel's 256-bin
  histogram);
* ``decoding`` (a cold start's work, before it writes the cache; ``--no-decode`` skips it): every
  JPEG through PIL on a thread per CPU (up to commit 75459a0) against ``_decode_all`` (torchvision's
  decoder in batches of 1,024 files, PIL for what it refuses).

Each repeat runs every contender once, old and new in alternating order; the script checks that
both forms give the same files, cache key, mean and std (and pixels), then prints medians and ratios, and the
median of ``--repeats`` whole warm ``setup()`` calls of fresh data modules (``val_split=0``, the
fast recipe's), for scale.

    python benchmarks/bench_setup.py --root data --repeats 5
    python benchmarks/bench_setup.py --root data --repeats 5 --no-decode

Needs CIFAR-10 as class folders under ``--root`` (``train/<class>/``, ``test/<class>/``); it reads
the decode cache there, writing it first if missing (as the first training run would). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnpl.data.base import channel_stats
from cnnpl.data.cifar import CIFAR10DataModule
from cnnpl.data.folder import IMAGE_SUFFIXES, _cache_key, _decode_all, list_class_folders

SPLITS = ("train", "test")


def pathlib_listing_and_key(split_dir: Path) -> tuple[list[tuple[str, int]], str]:
    """The listing and cache key as cnnpl computed them up to commit 7c6d04d."""
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = []
    for label, name in enumerate(classes):
        files += [
            (p, label) for p in sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        ]
    digest = hashlib.sha256("|".join(classes).encode())
    for path, label in files:
        st = path.stat()
        digest.update(f"{path.relative_to(split_dir)}:{label}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return [(str(p.relative_to(split_dir)), label) for p, label in files], digest.hexdigest()[:16]


def cnnpl_listing_and_key(split_dir: Path) -> tuple[list[tuple[str, int]], str]:
    classes, files = list_class_folders(split_dir)
    return files, _cache_key(split_dir, files, classes)


def float64_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel mean and std as cnnpl computed them up to commit 7c6d04d."""
    pixels = images.transpose(0, 1).reshape(images.shape[1], -1)
    return pixels.double().mean(1), pixels.double().std(1)


def pil_decode_one(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def pil_decode(paths: list[str]) -> np.ndarray:
    """The decoding of a cold start as cnnpl did it up to commit 75459a0: ``(N, 3, H, W)`` uint8."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        arrays = list(pool.map(pil_decode_one, paths, chunksize=256))
    return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))


def cnnpl_decode(paths: list[str]) -> np.ndarray:
    return torch.stack(_decode_all(paths)).numpy()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def warm_setup(root: Path) -> float:
    dm = CIFAR10DataModule(root=root, val_split=0.0)
    return timed(lambda: dm.setup("fit"))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="CIFAR-10 as class folders (train/<class>/, test/<class>/)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (at least 1)")
    parser.add_argument("--no-decode", action="store_true", help="skip the decoding phase (about 15 s a repeat)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    root = Path(args.root)
    for split in SPLITS:
        if not (root / split).is_dir():
            parser.error(f"no class folders at {root / split}: --root must hold train/<class>/ and test/<class>/")

    warm_setup(root)  # writes the decode cache if missing; the page cache holds the files from here on
    dm = CIFAR10DataModule(root=root, val_split=0.0)
    dm.setup("fit")
    images = dm.split("train").images
    contenders: dict[str, dict[str, Callable[[], object]]] = {
        "listing + cache key, train and test": {
            "pathlib (before)": lambda: [pathlib_listing_and_key(root / split) for split in SPLITS],
            "strings (cnnpl)": lambda: [cnnpl_listing_and_key(root / split) for split in SPLITS],
        },
        f"statistics of {len(images):,} training images": {
            "float64 copy (before)": lambda: float64_stats(images),
            "histograms (cnnpl)": lambda: channel_stats(images),
        },
    }
    if not args.no_decode:
        paths = [f"{root / split}/{file}" for split in SPLITS for file, _ in list_class_folders(root / split)[1]]
        contenders[f"decoding {len(paths):,} images, train and test"] = {
            f"PIL, {os.cpu_count()} threads (before)": lambda: pil_decode(paths),
            "batched torchvision (cnnpl)": lambda: cnnpl_decode(paths),
        }
    times: dict[str, dict[str, list[float]]] = {
        phase: {name: [] for name in ways} for phase, ways in contenders.items()
    }
    whole: list[float] = []
    for r in range(args.repeats):
        for phase, ways in contenders.items():
            results = {}
            for name in list(ways) if r % 2 == 0 else reversed(list(ways)):
                seconds, results[name] = timed(ways[name])
                times[phase][name].append(seconds)
            old, new = results.values()
            if phase.startswith("decoding"):
                old, new = [bool(np.array_equal(*results.values()))], [True]  # the same pixels
            elif phase.startswith("statistics"):  # the float32 statistics normalisation uses must agree
                old, new = [[(t / 255).float().tolist() for t in pair] for pair in (old, new)]
            if old != new:
                raise SystemExit(f"{phase}: the two ways disagree: {old!r:.200} against {new!r:.200}")
        whole.append(warm_setup(root))

    print(f"\n{len(images):,} training images under {root}, {args.repeats} repeats (same results checked each)")
    print("| phase | way | median s | runs (s) | new / old |")
    print("|---|---|---:|---|---:|")
    for phase, ways in times.items():
        before = statistics.median(next(iter(ways.values())))
        for i, (name, values) in enumerate(ways.items()):
            median = statistics.median(values)
            ratio = f"{median / before:.3f}" if i else ""
            print(f"| {phase} | {name} | {median:.3f} | {', '.join(f'{v:.3f}' for v in values)} | {ratio} |")
    print(f"| whole warm `setup()` (cnnpl, val_split=0) | | {statistics.median(whole):.3f} | "
          f"{', '.join(f'{v:.3f}' for v in whole)} | |")  # fmt: skip


if __name__ == "__main__":
    main()
