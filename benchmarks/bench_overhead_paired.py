"""Framework overhead, paired step by step: a hand-written step right after each Lightning step.

``train_cifar10.py --compare-epochs`` runs each contender for a whole epoch; on a shared machine a
slow spell lasts whole runs and moves them by 10-30%, far more than the 1-3% being measured. Here
every contender is one Lightning fit with a :class:`PairedPlainStep` callback: after each training
step it runs one step of a hand-written loop (its own copy of the network, an optimizer of the same
class and settings, the same in-memory data, augmentation, normalisation, memory format and
loss; with ``--plain-optimizer torch-default`` the same class and settings with torch's default
implementation, as a hand-written loop builds it, not cnnpl's ``fused=true``), timed on its own.
Both loops thus run at the same moments, under the same machine state, and every comparison is
paired:

* ``plain step`` / ``Lightning step``: median times of the two kinds of step (a Lightning step is
  the time from the end of one paired plain step to the end of the next Lightning step: fetching,
  transfer, augmentation, every hook, forward, backward, optimizer);
* ``paired difference``: the median over steps of Lightning's step minus the plain step after it;
* ``throughput ratio``: the plain loop's total step time over the Lightning fit's total training
  time minus the plain steps in it, so the Lightning side includes everything its epochs cost
  (the epoch's end: checkpoints, pictures, logging), as the issue's goal counts it.

Contenders: ``Lightning barebones`` (``Trainer(barebones=True)`` on cnnpl's ImageClassifier, its
training step minus ``self.log``), ``cnnpl defaults`` (``cnnpl.train`` as ``python -m cnnpl`` runs
it, validation and test off) and ``cnnpl, no pictures`` (``callbacks=minimal``), in a fresh random
order each repeat. Each step alternates two networks, so both kinds of step run with colder caches
than a loop on its own would: read the ratios, not the absolute times.

``--steps-per-batch K`` (K > 1) adds two contenders. ``Lightning barebones, K steps a batch`` is a
prototype, not in cnnpl: the data module hands out K steps' images at once and
:class:`SeveralStepsClassifier` (manual optimization) steps the optimizer once for each
``data.batch_size`` of them, so Lightning's loop and hooks run once for K steps; K plain steps follow
each Lightning batch, and both kinds of step are timed per optimizer step (the paired difference is then
a median of K-step means: compare the throughput ratios). ``Lightning barebones, plain steps in blocks
of K`` is its control: one step a batch, with the plain steps run K at a time after K Lightning steps,
so that both loops run K steps in a row, as in the prototype, and keep their caches warmer than when
they alternate. The script then times the augmentation of K batches one at a time and all at once, to
separate what the larger augmentation batch saves from what the loop does.

    python benchmarks/bench_overhead_paired.py --root data --repeats 3
    python benchmarks/bench_overhead_paired.py --root data --repeats 3 --model bench_tiny data.batch_size=16
    python benchmarks/bench_overhead_paired.py --root data --repeats 5 --steps-per-batch 4

Not a test: it needs CIFAR-10 under ``--root`` (either layout) and takes minutes.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from train_cifar10 import (
    GOALS,
    LEARNING_RATES,
    UnloggedClassifier,
    barebones_fit,
    cnnpl_fit,
    compare_config,
    interleave,
    plain_step,
)

from cnnpl.environment import keep_freed_memory, skip_missing_nvml
from cnnpl.network import instantiate_node
from cnnpl.optim import IMPLEMENTATION_KEYS


@dataclass(frozen=True)
class Paired:
    """One contender's run: its steps' times and the fit's training time, in seconds."""

    lightning: list[float]  # each Lightning step, from the end of the paired plain step before it
    plain: list[float]  # the plain step after each Lightning step
    plain_total: float  # every plain step's time, the unpaired first step of each epoch's too
    training: float  # the fit's training time (first epoch's start to the end), plain steps included

    @property
    def difference(self) -> float:
        return statistics.median(a - b for a, b in zip(self.lightning, self.plain, strict=True))

    @property
    def throughput_ratio(self) -> float:
        return self.plain_total / (self.training - self.plain_total)


class PairedPlainStep(L.Callback):
    """After each training step, one hand-written step of the same network, data and optimizer.

    Built from the config by name (``+callbacks.paired._target_=...``) for the cnnpl contenders, so
    the most recently built one is kept in ``PairedPlainStep.last``.
    """

    last: PairedPlainStep | None = None

    def __init__(self, plain_optimizer: str = "as-configured", step_size: int | None = None, block: int = 1) -> None:
        self.plain_optimizer = plain_optimizer
        self.step_size = step_size  # images a plain step (None: the data module's batch size)
        self.block = block  # the plain steps run after every `block` Lightning steps, as many as they were
        self._pending = 0  # Lightning steps since the last plain ones
        self.lightning: list[float] = []
        self.plain: list[float] = []
        self.start: float | None = None
        self.training = 0.0
        self.plain_total = 0.0
        self._since: float | None = None
        self._step: Callable[[], None] | None = None
        self.net: torch.nn.Module | None = None  # the plain loop's network
        PairedPlainStep.last = self

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        self.net = net = copy.deepcopy(pl_module.net).train()  # same architecture and layout, its own weights
        [template] = trainer.optimizers
        accepted = inspect.signature(type(template)).parameters  # (AdamW's defaults hold Adam's extra keys)
        defaults = {k: v for k, v in template.defaults.items() if k in accepted}
        if self.plain_optimizer == "torch-default":  # as a hand-written loop builds it: torch picks the step
            defaults = {k: v for k, v in defaults.items() if k not in IMPLEMENTATION_KEYS}
        optimizer = type(template)(net.parameters(), **defaults)
        train_on = plain_step(net, optimizer, dm, pl_module.memory_format, pl_module.label_smoothing)
        batches = iter(())
        self.step_size = step_size = self.step_size or dm.batch_size

        def step() -> None:
            nonlocal batches
            idx = next(batches, None)
            if idx is None:
                batches = iter(torch.randperm(len(dm.split("train"))).split(step_size))
                idx = next(batches)
            train_on(idx)

        self._step = step

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        self._since = None  # no step spans an epoch's start

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """As many plain steps as the Lightning batch held steps (one, unless ``--steps-per-batch``), or, with
        ``block``, as many as the last ``block`` Lightning steps; each kind of step's time is the span's divided
        by that number."""
        assert self.step_size is not None  # on_fit_start ran
        self._pending += -(-len(batch[1]) // self.step_size)
        if self._pending >= self.block:
            self._plain_steps()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending:  # an epoch's last steps short of a block: trained, not paired
            self._since = None
            self._plain_steps()

    def _plain_steps(self) -> None:
        assert self._step is not None  # on_fit_start ran
        steps, self._pending = self._pending, 0
        start = time.perf_counter()
        for _ in range(steps):
            self._step()
        end = time.perf_counter()
        self.plain_total += end - start
        if self._since is not None:
            self.lightning.append((start - self._since) / steps)
            self.plain.append((end - start) / steps)
        self._since = end

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.start is not None  # training ran
        self.training = time.perf_counter() - self.start

    def result(self) -> Paired:
        return Paired(self.lightning, self.plain, self.plain_total, self.training)


class SeveralStepsClassifier(UnloggedClassifier):
    """A prototype, not cnnpl's: manual optimization, one optimizer step for each ``step_size`` images
    of a Lightning batch, so that Lightning's loop and hooks run once for several steps."""

    def __init__(self, *args: Any, step_size: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        self.step_size = step_size

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        for images, labels in zip(*(t.split(self.step_size) for t in batch), strict=True):
            loss = F.cross_entropy(self(images), labels, label_smoothing=self.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
        return loss


def barebones_run(
    cfg: Any,
    dm: Any,
    epochs: int,
    limit_batches: int | None,
    plain_optimizer: str,
    steps_per_batch: int = 1,
    block: int = 1,
) -> Paired:
    """``steps_per_batch`` > 1: the data module hands out that many steps' images at once, and
    :class:`SeveralStepsClassifier` steps the optimizer once for each batch of ``data.batch_size``
    (``limit_batches`` then counts steps, rounded up to whole Lightning batches). ``block``: the plain
    steps run in blocks of that many, after as many Lightning steps (one step a batch)."""
    step_size = dm.batch_size
    paired = PairedPlainStep(plain_optimizer, step_size, block)
    if steps_per_batch == 1:
        barebones_fit(cfg, dm, epochs, limit_batches, paired)
        return paired.result()
    system = functools.partial(SeveralStepsClassifier, step_size=step_size)
    dm.batch_size = step_size * steps_per_batch
    try:
        barebones_fit(cfg, dm, epochs, limit_batches and -(-limit_batches // steps_per_batch), paired, system)
    finally:
        dm.batch_size = step_size
    return paired.result()


def cnnpl_run(
    root: str, model: str, epochs: int, limit_batches: int | None, plain_optimizer: str, *extra: str
) -> Paired:
    target = f"+callbacks.paired._target_={PairedPlainStep.__module__}.PairedPlainStep"
    chosen = f"+callbacks.paired.plain_optimizer={plain_optimizer}"
    cnnpl_fit(root, model, epochs, limit_batches, target, chosen, *extra)
    assert PairedPlainStep.last is not None  # built by cnnpl.train from the config
    return PairedPlainStep.last.result()


def augmentation_cost(dm: Any, step_size: int, steps: int, rounds: int = 200) -> tuple[float, float]:
    """Median seconds to augment and normalise ``steps`` batches of ``step_size`` training images: one
    batch at a time, and all of them at once (what a Lightning batch of several steps does)."""
    images = dm.split("train").images
    apart: list[float] = []
    together: list[float] = []
    for r in range(rounds):
        idx = torch.randperm(len(images))[: step_size * steps]
        ways = [(apart, idx.split(step_size)), (together, [idx])]
        for times, parts in ways if r % 2 else ways[::-1]:  # each way first in every other round
            start = time.perf_counter()
            for part in parts:
                dm.normalize(dm.augment(images[part]))
            times.append(time.perf_counter() - start)
    return statistics.median(apart), statistics.median(together)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="folder holding CIFAR-10 (either layout)")
    parser.add_argument("--model", choices=list(LEARNING_RATES), default="simple_cnn", help="network compared")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per contender")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each runs every contender)")
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per epoch (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    parser.add_argument(
        "--plain-optimizer",
        choices=["as-configured", "torch-default"],
        default="as-configured",
        help="the plain loop's optimizer: the same class, settings and implementation as the run's "
        "(as-configured), or the same class and settings with torch's default implementation, as a "
        "hand-written loop gets it (torch-default: without cnnpl's fused=true)",
    )
    parser.add_argument(
        "--steps-per-batch",
        type=int,
        default=1,
        help="above 1, two more contenders: barebones with that many optimizer steps in each Lightning batch "
        "(a prototype, SeveralStepsClassifier; --limit-batches then counts steps, rounded up to whole batches), "
        "and barebones with the plain steps run in blocks of that many (its control)",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every contender (data, model, optimizer)")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    kept, skipped = keep_freed_memory(), skip_missing_nvml()  # as cnnpl.train does, before the first contender
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads, "
          f"keep_freed_memory {kept}, NVML check dropped {skipped}")  # fmt: skip

    with tempfile.TemporaryDirectory() as out:
        cfg = compare_config(args.root, args.model, args.epochs, args.limit_batches, out, *args.overrides)
    dm = instantiate_node(cfg.data)
    dm.setup("fit")
    run = (args.root, args.model, args.epochs, args.limit_batches, args.plain_optimizer, *args.overrides)
    contenders: dict[str, Callable[[], Paired]] = {
        "cnnpl defaults": lambda: cnnpl_run(*run),
        "cnnpl, no pictures": lambda: cnnpl_run(*run, "callbacks=minimal"),
        "Lightning barebones": lambda: barebones_run(cfg, dm, args.epochs, args.limit_batches, args.plain_optimizer),
    }
    if args.steps_per_batch > 1:
        k = args.steps_per_batch
        contenders[f"Lightning barebones, {k} steps a batch"] = lambda: barebones_run(
            cfg, dm, args.epochs, args.limit_batches, args.plain_optimizer, steps_per_batch=k
        )
        contenders[f"Lightning barebones, plain steps in blocks of {k}"] = lambda: barebones_run(
            cfg, dm, args.epochs, args.limit_batches, args.plain_optimizer, block=k
        )
    results = interleave(
        contenders,
        args.repeats,
        args.seed,
        lambda last: ", ".join(
            f"{n} {p.difference * 1e3:+.3f} ms, ratio {p.throughput_ratio:.3f}" for n, p in last.items()
        ),
    )

    print(
        f"\n{args.model}, batch {cfg.data.batch_size}, {args.epochs} epoch(s) per contender, {args.repeats} repeats, "
        f"plain loop's optimizer {args.plain_optimizer}"
    )
    print(
        "| contender | Lightning step, ms | plain step, ms | paired difference, ms "
        "| plain step / Lightning step | throughput ratio (epoch ends included) | goal |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        lightning = statistics.median(statistics.median(r.lightning) for r in runs)
        plain = statistics.median(statistics.median(r.plain) for r in runs)
        difference = statistics.median(r.difference for r in runs)
        ratio = statistics.median(r.throughput_ratio for r in runs)
        print(
            f"| {name} | {lightning * 1e3:.2f} | {plain * 1e3:.2f} | {difference * 1e3:+.3f} "
            f"| {plain / lightning:.3f} | {ratio:.3f} | {'>= ' + str(GOALS[name]) if name in GOALS else ''} |"
        )
    if args.steps_per_batch > 1:
        apart, together = augmentation_cost(dm, dm.batch_size, args.steps_per_batch)
        print(
            f"\naugmentation and normalisation of {args.steps_per_batch} x {dm.batch_size} images, medians of 200: "
            f"a batch at a time {apart * 1e3:.3f} ms, all at once {together * 1e3:.3f} ms "
            f"(saves {(apart - together) / args.steps_per_batch * 1e3:.3f} ms a step)"
        )


if __name__ == "__main__":
    main()
