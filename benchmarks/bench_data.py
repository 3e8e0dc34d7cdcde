"""Data path speed: CIFAR10DataModule's training batches against what simple_cnn consumes, and set-up time.

    python benchmarks/bench_data.py --root data
    python benchmarks/bench_data.py --root data --rounds 5 --setup-repeats 5
    python benchmarks/bench_data.py --root data --rounds 1 --limit-batches 20 --train-steps 2 \\
        --setup-repeats 1 --subset 50                            # a smoke run

1. Throughput. ``data``: images/s of the data module's training batches alone, as training gets
   them: ``train_dataloader()`` (shuffled uint8 batches) plus what ``on_after_batch_transfer`` does
   to a training batch (random crop, flip, cutout as configured, normalisation to float32), for
   ``--epochs`` epochs. ``simple_cnn``: images/s of simple_cnn training steps (forward,
   cross-entropy, backward, Adam) on batches from the same pipeline, made beforehand so no data work
   is timed. The two are interleaved ``--rounds`` times in alternating order, in one process with the
   same torch threads; the table gives medians and data / simple_cnn (goal: at least 10x, so the
   data path costs under a tenth of a training step).
2. Set-up. Seconds of ``setup()`` of a fresh data module: ``cold`` decodes the class folders and
   writes the decode cache, ``warm`` reads that cache. The folders are linked into a temporary
   root whose cache starts empty (``XDG_CACHE_HOME`` is pointed there too), so the real cache under
   ``--root`` is neither read nor touched. ``--subset N`` links only N images per class. "Cold"
   means no decode cache, not a cold disk: after the first repeat the JPEG files sit in the OS
   page cache. Medians of ``--setup-repeats`` (cold, warm) pairs.

The data module is configured as ``python -m cnnpl`` configures it (``conf/data/cifar10.yaml``),
changed by ``--overrides`` (e.g. ``data.cutout=8``). Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnpl
from cnnpl.data.base import InMemoryImageDataModule
from cnnpl.network import instantiate_node

GOAL = 10.0  # data images/s over simple_cnn training images/s, at least
SPLITS = ("train", "test")


def make_datamodule(root: Path, overrides: list[str]) -> InMemoryImageDataModule:
    with tempfile.TemporaryDirectory() as out:
        cfg = cnnpl.compose([f"data.root={root}", *overrides], output_dir=out)
    return instantiate_node(cfg.data)


def training_batch(dm: InMemoryImageDataModule, images: torch.Tensor) -> torch.Tensor:
    """What ``on_after_batch_transfer`` makes of a training batch (it skips augmentation without a trainer)."""
    return dm.normalize(dm.augment(images))


def data_rate(dm: InMemoryImageDataModule, epochs: int, limit_batches: int | None) -> float:
    """Images/s of ``epochs`` passes over the training batches, augmented and normalised."""
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for i, (images, _labels) in enumerate(dm.train_dataloader()):
            if limit_batches is not None and i >= limit_batches:
                break
            training_batch(dm, images)
            seen += len(images)
    return seen / (time.perf_counter() - start)


def train_rate(
    net: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    """Images/s of one training step per batch (the batches are ready: no data work is timed)."""
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return sum(len(y) for _, y in batches) / (time.perf_counter() - start)


def throughput(args: argparse.Namespace) -> None:
    dm = make_datamodule(Path(args.root), args.overrides)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())
    batches = [(training_batch(dm, x), y) for x, y in (next(loader) for _ in range(args.train_steps))]
    net = cnnpl.build("model", "simple_cnn", num_classes=dm.num_classes, in_channels=dm.in_channels,
                      input_size=dm.input_size).train()  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)  # cnnpl's default optimizer
    train_rate(net, opt, batches[:1])  # warm-up: oneDNN set-up, allocator

    contenders = {
        "data": lambda: data_rate(dm, args.epochs, args.limit_batches),
        "simple_cnn": lambda: train_rate(net, opt, batches),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name in list(contenders) if r % 2 == 0 else reversed(list(contenders)):
            rates[name].append(contenders[name]())
    data, train = statistics.median(rates["data"]), statistics.median(rates["simple_cnn"])
    paired = statistics.median(d / t for d, t in zip(rates["data"], rates["simple_cnn"], strict=True))
    per_round = "all" if args.limit_batches is None else args.limit_batches
    print(f"\nbatch {dm.batch_size}, {len(dm.split('train')):,} training images, {args.rounds} rounds; "
          f"data: {args.epochs} epoch(s) of {per_round} batches per round; "
          f"simple_cnn: {args.train_steps} steps per round")  # fmt: skip
    print("| contender | median images/s | runs |")
    print("|---|---:|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
    ratio = f"**{data / train:.1f}x** (per-round median {paired:.1f}x; goal >= {GOAL:.0f}x)"
    print(f"| **data / simple_cnn** | {ratio} | |")


def link_root(source: Path, target: Path, per_class: int | None) -> int:
    """Link ``source``'s class folders into ``target`` (only ``per_class`` images per class if set); images linked."""
    count = 0
    for split in SPLITS:
        if per_class is None:
            (target / split).symlink_to((source / split).resolve(), target_is_directory=True)
            count += sum(1 for _ in (source / split).glob("*/*"))
            continue
        for class_dir in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            (target / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                (target / split / class_dir.name / image.name).symlink_to(image.resolve())
                count += 1
    return count


def setup_seconds(root: Path, overrides: list[str]) -> float:
    dm = make_datamodule(root, overrides)
    start = time.perf_counter()
    dm.setup("fit")
    return time.perf_counter() - start


def setup_times(args: argparse.Namespace) -> None:
    times: dict[str, list[float]] = {"cold (decode, write cache)": [], "warm (read cache)": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cifar10"
        root.mkdir()
        images = link_root(Path(args.root), root, args.subset)
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "xdg")  # the fallback cache starts empty too
        cache = root / ".cnnpl-cache"  # where cnnpl.data.folder writes it (next to the data)
        for _ in range(args.setup_repeats):
            shutil.rmtree(cache, ignore_errors=True)  # the temporary root's cache only
            times["cold (decode, write cache)"].append(setup_seconds(root, args.overrides))
            times["warm (read cache)"].append(setup_seconds(root, args.overrides))
        cache_mb = sum(f.stat().st_size for f in cache.iterdir()) / 2**20
    print(f"\nset-up of {images:,} images ({'all' if args.subset is None else args.subset} per class), "
          f"cache {cache_mb:,.0f} MiB, {args.setup_repeats} repeats, {os.cpu_count()} CPUs for decoding")  # fmt: skip
    print("| start | median s | runs (s) |")
    print("|---|---:|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="CIFAR-10 as class folders (train/<class>/, test/<class>/)")
    parser.add_argument("--overrides", nargs="*", default=[], help="cnnpl data overrides, e.g. data.cutout=8")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the throughput part")
    parser.add_argument("--epochs", type=int, default=1, help="data epochs per round")
    parser.add_argument("--limit-batches", type=int, default=None, help="data batches per epoch (default: all)")
    parser.add_argument("--train-steps", type=int, default=20, help="simple_cnn training steps per round")
    parser.add_argument("--setup-repeats", type=int, default=3, help="(cold, warm) set-up pairs")
    parser.add_argument("--subset", type=int, default=None, help="images per class for the set-up part (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--parts", default="throughput,setup", help="comma-separated: throughput, setup")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, root={Path(args.root).resolve()}")
    parts = args.parts.split(",")
    if set(parts) - {"throughput", "setup"}:
        parser.error(f"--parts takes throughput and/or setup, got {args.parts}")
    if "throughput" in parts:
        throughput(args)
    if "setup" in parts:
        setup_times(args)


if __name__ == "__main__":
    main()
