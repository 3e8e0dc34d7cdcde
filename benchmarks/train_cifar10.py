"""Train a model on CIFAR-10 through cnnpl and report accuracy, time and throughput.

Part 1 (``--epochs``): one full run of what ``python -m cnnpl`` runs, with the recipe below (or
``--recipe`` overrides of your own): test accuracy of the best checkpoint, epochs, wall time
(start to finish, data loading included) and training images/s.

Part 2 (``--compare-epochs``, optional): the framework's overhead. Training throughput of one
network (``--model simple_cnn`` or ``vgg16``, CIFAR layout) on the same data, augmentation,
optimizer and loss (``COMPARE`` and ``LEARNING_RATES`` below), by five contenders:

* ``plain``: a hand-written PyTorch loop over the data module's in-memory tensors, in the same
  memory format (``system.memory_format``, channels_last by default) and with the same allocator
  settings (:func:`cnnpl.environment.keep_freed_memory`, switched on for the whole process) and without
  Lightning's NVML-based CUDA check where NVML is missing (:func:`cnnpl.environment.skip_missing_nvml`:
  a script that never imports Lightning does not have it);
* ``cnnpl defaults``: ``cnnpl.train`` itself, i.e. what ``python -m cnnpl`` sets up (TensorBoard
  logger, the default callbacks with their pictures, ModelCheckpoint, the progress bar, the
  guards), with validation and the test run switched off so only training is compared;
* ``cnnpl, no pictures``: the same with ``callbacks=minimal`` (logging, checkpointing and the
  progress bar at their defaults, no picture callbacks);
* ``cnnpl, no pictures/logger/bar/lr monitor``: ``callbacks=minimal`` without the logger, the
  progress bar and the learning-rate monitor (checkpointing and the guards remain);
* ``Lightning barebones``: ``lightning.Trainer(barebones=True)`` on the same ImageClassifier, its
  ``training_step`` minus ``self.log`` (which barebones forbids) and the accuracy update.

* ``cnnpl defaults, Lightning's profiler`` (with ``--lightning-profiler``): the defaults with
  Lightning's ``PassThroughProfiler`` in place of cnnpl's :class:`cnnpl.profiler.NullProfiler`.
* ``cnnpl defaults, Lightning's hook costs`` (with ``--lightning-hooks``): the defaults with none of
  cnnpl's savings on Lightning's hooks (:func:`lightning_hook_costs`): Lightning's profiler, every
  callback's batch hooks called, ``_current_fx_name`` set through ``nn.Module.__setattr__``, and
  Lightning's NVML-based CUDA check on every Adam step.

Each repeat runs every contender once in a fresh random order, on a freshly built network; the
table gives median images/s, the ratio of medians to ``plain`` and the median of the per-repeat
ratios (goals: >= 0.97 for the defaults, >= 0.99 for barebones). A Lightning contender's time runs
from its first training epoch's start to the end of training (so per-epoch callbacks and
checkpoint saving count; set-up, model summary and once-only pictures do not). The last three
columns time single steps (from one step's end to the next: every per-step cost, no epoch's end):
each run's median step, and its ratio to and difference from the plain loop's in the same repeat.
A shared machine's slow spells move whole runs by 10-30%, but not the median step while they
cover less than half the steps: these columns resolve a fixed cost per step that images/s cannot.

    python benchmarks/train_cifar10.py --root data --epochs 15
    python benchmarks/train_cifar10.py --root data --epochs 0 --compare-epochs 1 --repeats 3
    python benchmarks/train_cifar10.py --root data --epochs 0 --compare-epochs 1 --repeats 3 \\
        --model vgg16 --limit-batches 100
    python benchmarks/train_cifar10.py --root data --epochs 0 --compare-epochs 1 --repeats 7 \\
        --model bench_tiny --limit-batches 1500 data.batch_size=16      # the fixed cost per step, resolved
    python benchmarks/train_cifar10.py --root data --epochs 0 --compare-epochs 1 --repeats 5 --lightning-profiler

Not a test: it needs CIFAR-10 under ``--root`` (either layout) and takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import logging
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from unittest import mock

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

import cnnpl
from cnnpl import hooks
from cnnpl.data.base import InMemoryImageDataModule
from cnnpl.environment import keep_freed_memory, skip_missing_nvml
from cnnpl.network import build_model, instantiate_node
from cnnpl.system import MEMORY_FORMATS, ImageClassifier, to_memory_format

RECIPE = [
    "model=simple_cnn",
    "optimizer=adamw",
    "optimizer.lr=3e-3",
    "optimizer.weight_decay=0.05",
    "scheduler=onecycle",
    "system.label_smoothing=0.1",
    "system.tta_flip=true",
    "data.val_split=0.04",  # 2,000 validation images choose the best checkpoint; 48,000 train
    "data.batch_size=128",
]

# Part 2: what every contender shares (the plain loop reads its optimizer and loss from here too).
# No schedule: the plain loop has none. 45,000 training images.
COMPARE = [
    "optimizer=adamw",
    "optimizer.weight_decay=0.05",
    "scheduler=none",
    "system.label_smoothing=0.1",
    "data.val_split=0.1",
    "data.batch_size=128",
]
# VGG has no BatchNorm: at 3e-3 its loss reached 50 within two steps, and a NaN would stop the cnnpl
# run early (FiniteLossGuard) while the plain loop went on.
# lenet5 and bench_tiny: steps cheap enough to show the fixed cost per step
LEARNING_RATES = {"simple_cnn": 3e-3, "vgg16": 1e-4, "lenet5": 3e-3, "bench_tiny": 3e-3}
PASS_THROUGH = "lightning.pytorch.profilers.PassThroughProfiler"  # the Trainer's default profiler
LIGHTNINGS_PROFILER = f"trainer.profiler={{_target_:{PASS_THROUGH}}}"  # cnnpl.train would pass its NullProfiler
R = TypeVar("R")  # a contender's result
train_module = importlib.import_module("cnnpl.train")  # (the package's cnnpl.train is the function)
GOALS = {"cnnpl defaults": 0.97, "cnnpl, no pictures": 0.97, "Lightning barebones": 0.99}  # ratio to plain


@cnnpl.register("model", "bench_tiny")
class TinyNet(nn.Module):
    """One 3x3 conv of 8 filters, ReLU, a 2x2 pool, global average pooling, a linear layer: a step so cheap
    (with a small ``data.batch_size``) that the framework's fixed cost per step is most of it."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        input_size: tuple[int, int] = (32, 32),
        conv: cnnpl.LayerFactory = cnnpl.factory("conv", "conv2d"),  # noqa: B008  (immutable)
        pool: cnnpl.LayerFactory = cnnpl.factory("pool", "max"),  # noqa: B008
        act: cnnpl.LayerFactory = cnnpl.factory("act", "relu"),  # noqa: B008
    ) -> None:
        super().__init__()
        self.conv = conv(in_channels=in_channels, out_channels=8, kernel_size=3, padding=1)
        self.act = act()
        self.pool = pool(kernel_size=2, stride=2, channels=8)
        self.head = nn.Linear(8, num_classes)
        self.stages = ["act"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.conv(x))).mean((2, 3)))


class TrainTimer(L.Callback):
    """Training images and seconds, from the first training epoch's start to the end of training, and
    the time of each step (from one ``on_train_batch_end`` to the next: everything a step costs, the
    next batch's fetch and every hook included; the epoch's end is not in any step).

    The cnnpl contender builds it from its config by name (``+callbacks.train_timer._target_=...``),
    so the most recently built one is kept in ``TrainTimer.last``.
    """

    last: TrainTimer | None = None

    def __init__(self) -> None:
        self.images = 0
        self.start: float | None = None
        self.seconds = 0.0
        self.step_ends: list[float] = []
        TrainTimer.last = self

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        self.step_ends.append(float("nan"))  # a step's time never spans an epoch's end

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.images += batch[0].shape[0]
        self.step_ends.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        assert self.start is not None  # training ran
        self.seconds = time.perf_counter() - self.start

    @property
    def result(self) -> Result:
        return Result(self.images / self.seconds, median_step(self.step_ends))


@dataclass(frozen=True)
class Result:
    """A contender's training images/s (the epoch's ends included) and its median step in seconds."""

    images_per_second: float
    step: float


def median_step(ends: list[float]) -> float:
    """The median time between consecutive step ends (NaN marks an epoch's start: no step spans it).

    Robust to the slow spells of a shared machine, which move a whole run's images/s by 10-30%:
    as long as they cover less than half the steps, the median step is a quiet one.
    """
    steps = [b - a for a, b in itertools.pairwise(ends) if not (math.isnan(a) or math.isnan(b))]
    return statistics.median(steps)


class UnloggedClassifier(ImageClassifier):
    """ImageClassifier whose training step only computes the loss (``Trainer(barebones=True)`` forbids ``self.log``)."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(self(images), labels, label_smoothing=self.label_smoothing)


def full_run(root: str, epochs: int, recipe: list[str]) -> None:
    with tempfile.TemporaryDirectory() as out:
        cfg = cnnpl.compose(
            [f"data.root={root}", f"trainer.max_epochs={epochs}", "callbacks.progress_bar.refresh_rate=0", *recipe],
            output_dir=out,
        )
        start = time.perf_counter()
        metrics = cnnpl.train(cfg)
        wall = time.perf_counter() - start
    train_images = 50_000 * (1 - cfg.data.val_split) * epochs
    print("\n| model | recipe | epochs | test acc | wall time | train images/s (incl. eval) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {cfg.model.name} | `{' '.join(recipe)}` | {epochs} | {metrics['test/acc']:.2%} | {wall / 60:.1f} min "
        f"| {train_images / wall:,.0f} |"
    )


def compare_config(
    root: str, model: str, epochs: int, limit_batches: int | None, output_dir: str, *extra: str
) -> DictConfig:
    """The composed config of part 2: training only, ``epochs`` epochs (of ``limit_batches`` batches)."""
    overrides = [
        f"data.root={root}",
        f"model={model}",
        *COMPARE,
        f"optimizer.lr={LEARNING_RATES[model]}",
        f"trainer.max_epochs={epochs}",
        "+trainer.limit_val_batches=0",  # no validation: training throughput only
        "test=false",
        f"+callbacks.train_timer._target_={TrainTimer.__module__}.TrainTimer",
        *extra,  # last: they win
    ]
    if limit_batches:
        overrides.append(f"+trainer.limit_train_batches={limit_batches}")
    return cnnpl.compose(overrides, output_dir=output_dir)


def plain_step(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    dm: InMemoryImageDataModule,
    memory_format: torch.memory_format,
    label_smoothing: float,
) -> Callable[[torch.Tensor], None]:
    """The hand-written training step: ``step(idx)`` trains ``net`` on the training images ``idx``
    (augmented, normalised, in ``memory_format``) with cross-entropy and ``opt``."""
    images, labels = dm.split("train").images, dm.split("train").labels

    def step(idx: torch.Tensor) -> None:
        x = dm.normalize(dm.augment(images[idx])).contiguous(memory_format=memory_format)
        loss = F.cross_entropy(net(x), labels[idx], label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def plain_run(cfg: DictConfig, dm: InMemoryImageDataModule, epochs: int, limit_batches: int | None) -> Result:
    """Images/s of a hand-written loop over the same in-memory tensors, augmentation, optimizer and loss."""
    net = build_model(cfg, dm.num_classes, dm.in_channels, dm.input_size).train()
    layout = MEMORY_FORMATS[cfg.system.memory_format]  # cnnpl's default layout, channels_last
    to_memory_format(net, layout)
    step = plain_step(net, instantiate_node(cfg.optimizer)(net.parameters()), dm, layout, cfg.system.label_smoothing)
    seen = 0
    ends: list[float] = []
    start = time.perf_counter()
    for _ in range(epochs):
        ends.append(float("nan"))
        for idx in torch.randperm(len(dm.split("train"))).split(cfg.data.batch_size)[:limit_batches]:
            step(idx)
            seen += len(idx)
            ends.append(time.perf_counter())
    return Result(seen / (time.perf_counter() - start), median_step(ends))


def cnnpl_fit(root: str, model: str, epochs: int, limit_batches: int | None, *extra: str) -> None:
    """``cnnpl.train`` on the comparison's config (it loads the data again), writing into a fresh folder."""
    with tempfile.TemporaryDirectory() as out:
        cnnpl.train(compare_config(root, model, epochs, limit_batches, out, *extra))


@contextlib.contextmanager
def lightning_hook_costs() -> Iterator[str]:
    """Undo cnnpl's savings on Lightning's hooks for one ``cnnpl.train``; yields the override it needs.

    Every callback keeps all its batch hooks, the module sets ``_current_fx_name`` through
    ``nn.Module.__setattr__``, ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` stays set (as importing Lightning
    left it), and the override ``trainer.profiler=...PassThroughProfiler`` puts Lightning's profiler back.
    """
    with (
        mock.patch.object(hooks, "skip_unused_batch_hooks", lambda callback: callback),
        mock.patch.object(ImageClassifier, "__setattr__", L.LightningModule.__setattr__),
        mock.patch.object(train_module, "skip_missing_nvml", lambda: False),
        mock.patch.dict(os.environ, {"PYTORCH_NVML_BASED_CUDA_CHECK": "1"}),
    ):
        yield LIGHTNINGS_PROFILER


def cnnpl_run(root: str, model: str, epochs: int, limit_batches: int | None, *extra: str) -> Result:
    """Images/s and median step of ``cnnpl.train``, as its TrainTimer (built from the config) measured them."""
    cnnpl_fit(root, model, epochs, limit_batches, *extra)
    assert TrainTimer.last is not None  # built by cnnpl.train from the config
    return TrainTimer.last.result


def barebones_fit(
    cfg: DictConfig,
    dm: InMemoryImageDataModule,
    epochs: int,
    limit_batches: int | None,
    callback: L.Callback,
    classifier: Callable[..., ImageClassifier] = UnloggedClassifier,
) -> None:
    """``Trainer(barebones=True)`` on a fresh network and ``classifier``, ``callback`` timing it."""
    net = build_model(cfg, dm.num_classes, dm.in_channels, dm.input_size)
    system = classifier(net, dm.num_classes, instantiate_node(cfg.optimizer), None, **cfg.system)
    trainer = L.Trainer(
        barebones=True,
        max_epochs=epochs,
        limit_val_batches=0,
        limit_train_batches=limit_batches,
        callbacks=[callback],
        accelerator=cfg.trainer.accelerator,
        devices=1,
    )
    trainer.fit(system, datamodule=dm)


def barebones_run(cfg: DictConfig, dm: InMemoryImageDataModule, epochs: int, limit_batches: int | None) -> Result:
    timer = TrainTimer()
    barebones_fit(cfg, dm, epochs, limit_batches, timer)
    return timer.result


def interleave(
    contenders: dict[str, Callable[[], R]], repeats: int, seed: int, progress: Callable[[dict[str, R]], str]
) -> dict[str, list[R]]:
    """Run every contender once per repeat, in a fresh random order each (seeded); print ``progress``
    of each repeat's results. Returns each contender's results, in repeat order."""
    results: dict[str, list[R]] = {name: [] for name in contenders}
    order = list(contenders)
    rng = random.Random(seed)
    for r in range(repeats):
        rng.shuffle(order)
        for name in order:
            results[name].append(contenders[name]())
        print(f"repeat {r + 1}/{repeats}: " + progress({name: runs[-1] for name, runs in results.items()}), flush=True)
    return results


def compare(
    root: str,
    model: str,
    epochs: int,
    repeats: int,
    limit_batches: int | None,
    seed: int,
    overrides: list[str],
    lightning_profiler: bool = False,
    lightning_hooks: bool = False,
) -> None:
    with tempfile.TemporaryDirectory() as out:
        cfg = compare_config(root, model, epochs, limit_batches, out, *overrides)
    dm = instantiate_node(cfg.data)  # the same split (data.seed) as cnnpl.train draws
    dm.setup("fit")
    contenders: dict[str, Callable[[], Result]] = {
        "plain": lambda: plain_run(cfg, dm, epochs, limit_batches),
        "cnnpl defaults": lambda: cnnpl_run(root, model, epochs, limit_batches, *overrides),
        "cnnpl, no pictures": lambda: cnnpl_run(root, model, epochs, limit_batches, *overrides, "callbacks=minimal"),
        "cnnpl, no pictures/logger/bar/lr monitor": lambda: cnnpl_run(
            root,
            model,
            epochs,
            limit_batches,
            *overrides,
            "callbacks=minimal",
            "~logger",
            "~callbacks.lr_monitor",
            "callbacks.progress_bar=null",
            "+trainer.enable_progress_bar=false",
        ),
        "Lightning barebones": lambda: barebones_run(cfg, dm, epochs, limit_batches),
    }
    if lightning_profiler:  # cnnpl's defaults with Lightning's PassThroughProfiler instead of cnnpl's NullProfiler
        contenders["cnnpl defaults, Lightning's profiler"] = lambda: cnnpl_run(
            root, model, epochs, limit_batches, *overrides, LIGHTNINGS_PROFILER
        )
    if lightning_hooks:  # cnnpl's defaults without any of cnnpl's savings on Lightning's hooks

        def with_lightning_hook_costs() -> Result:
            with lightning_hook_costs() as profiler:
                return cnnpl_run(root, model, epochs, limit_batches, *overrides, profiler)

        contenders["cnnpl defaults, Lightning's hook costs"] = with_lightning_hook_costs
    results = interleave(
        contenders,
        repeats,
        seed,
        lambda last: ", ".join(f"{n} {r.images_per_second:,.0f} ({r.step * 1e3:.2f} ms)" for n, r in last.items()),
    )

    batches = f"{limit_batches} batches" if limit_batches else f"{len(dm.split('train')):,} images"
    plain = results["plain"]
    plain_rate = statistics.median(r.images_per_second for r in plain)
    print(f"\n{model}, {epochs} epoch(s) of {batches} per contender, batch {cfg.data.batch_size}, {repeats} repeats")
    print(
        "| contender | median training images/s | / plain | median per-repeat ratio "
        "| median step, ms | plain's step / this (median per repeat) | step over plain's, ms | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        rate = statistics.median(r.images_per_second for r in runs)
        paired = statistics.median(r.images_per_second / p.images_per_second for r, p in zip(runs, plain, strict=True))
        step = statistics.median(r.step for r in runs)
        step_ratio = statistics.median(p.step / r.step for r, p in zip(runs, plain, strict=True))
        step_extra = statistics.median(r.step - p.step for r, p in zip(runs, plain, strict=True))
        goal = f">= {GOALS[name]}" if name in GOALS else ""
        print(
            f"| {name} | {rate:,.0f} | {rate / plain_rate:.3f} | {paired:.3f} "
            f"| {step * 1e3:.2f} | {step_ratio:.3f} | {step_extra * 1e3:+.2f} | {goal} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="folder holding CIFAR-10 (either layout)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the full run (0 skips it)")
    parser.add_argument("--recipe", nargs="*", default=RECIPE, help="cnnpl overrides for the full run")
    parser.add_argument("--compare-epochs", type=int, default=0, help="epochs per contender in the comparison")
    parser.add_argument("--model", choices=list(LEARNING_RATES), default="simple_cnn", help="network compared")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the comparison (each runs every contender)")
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    parser.add_argument(
        "--lightning-profiler",
        action="store_true",
        help="a sixth contender: cnnpl's defaults with Lightning's own (PassThroughProfiler) profiler",
    )
    parser.add_argument(
        "--lightning-hooks",
        action="store_true",
        help="another contender: cnnpl's defaults without its savings on Lightning's hooks (lightning_hook_costs)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides of the comparison's config (data, model, optimizer: every contender; "
        "system.compile: not the plain loop; trainer.*: the cnnpl contenders only, so leave precision alone)",
    )
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners between the repeats
    # cnnpl.train switches these on for the whole process (keep_freed_memory: true; the NVML check
    # dropped where it fails); every contender shares the process, so before the first one runs
    kept, skipped = keep_freed_memory(), skip_missing_nvml()
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads, "
          f"keep_freed_memory {kept}, NVML check dropped {skipped}, root={Path(args.root).resolve()}")  # fmt: skip
    if args.epochs:
        full_run(args.root, args.epochs, args.recipe)
    if args.compare_epochs:
        compare(
            args.root,
            args.model,
            args.compare_epochs,
            args.repeats,
            args.limit_batches,
            args.seed,
            args.overrides,
            args.lightning_profiler,
            args.lightning_hooks,
        )


if __name__ == "__main__":
    main()
