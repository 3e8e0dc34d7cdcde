"""Where a Lightning training step spends the time a hand-written step does not, phase by phase.

``bench_overhead_paired.py`` measures how much longer a Lightning step takes than a hand-written
one; this script shows where that time goes. It runs the same pairing (after each Lightning step,
one hand-written step of a copy of the network on the same data, augmentation, optimizer and loss)
and puts timestamps at the boundaries of both kinds of step:

* Lightning: the DataLoader's ``__next__`` (wrapped), the data module's ``on_after_batch_transfer``
  (augmentation and normalisation, wrapped), ``on_train_batch_start``, forward pre-hooks on the
  LightningModule and on its network (between the two: the module's layout copy), a forward hook on
  the network, ``on_before_backward``, ``on_after_backward``, ``on_before_optimizer_step``, the
  optimizer's step post-hook and ``on_train_batch_end``;
* hand-written: between its statements (index, augment and normalise, layout copy, forward,
  loss and ``zero_grad``, backward, optimizer step).

Each phase's median over every step of every repeat is printed for both loops side by side, with the
median over steps of the paired difference where a phase has a counterpart. The phases that only
Lightning has (its loop's bookkeeping, the fetcher, the hook calls around the step) are its
overhead. Lightning's ``update`` starts after its closure returns, so torch's own ``Optimizer.step``
entry (the profiler record and the pre-hooks) falls in Lightning's ``batch start -> forward``, while
the hand-written ``update`` holds it: compare the totals, and read the phases as where the time goes.
The timestamps cost about 1 us each, 13 a Lightning step and 7 a hand-written one.

Contenders: ``Lightning barebones`` (``Trainer(barebones=True)`` on cnnpl's ImageClassifier, its
training step minus ``self.log``) and ``cnnpl defaults`` (``cnnpl.train`` as ``python -m cnnpl``
runs it, validation and test off), alternating, a fresh random order each repeat.

    python benchmarks/bench_step_phases.py --root data --repeats 3
    python benchmarks/bench_step_phases.py --root data --repeats 3 --limit-batches 150

Not a test: it needs CIFAR-10 under ``--root`` (either layout) and takes minutes.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import dataloader
from train_cifar10 import barebones_fit, cnnpl_fit, compare_config, interleave

from cnnpl.environment import keep_freed_memory, skip_missing_nvml
from cnnpl.network import instantiate_node

now = time.perf_counter

# (name, Lightning's phase as (from, to) timestamps, the hand-written counterpart or None)
PHASES: list[tuple[str, tuple[str, str], tuple[str, str] | None]] = [
    ("step end -> loader", ("end", "loader"), None),
    ("loader (sampler, indexing)", ("loader", "loaded"), ("start", "indexed")),
    ("loader -> augment", ("loaded", "augment"), None),
    ("augment, normalise", ("augment", "augmented"), ("indexed", "augmented")),
    ("augment -> batch start", ("augmented", "batch_start"), None),
    ("batch start -> forward", ("batch_start", "module_forward"), None),
    ("layout copy", ("module_forward", "forward"), ("augmented", "forward")),
    ("forward", ("forward", "forwarded"), ("forward", "forwarded")),
    ("loss, zero_grad", ("forwarded", "backward"), ("forwarded", "backward")),
    ("backward", ("backward", "backwarded"), ("backward", "backwarded")),
    ("backward -> update", ("backwarded", "update"), None),
    ("update", ("update", "updated"), ("backwarded", "updated")),
    ("update -> batch end", ("updated", "batch_end"), None),
]
TOTAL = (("end", "batch_end"), ("start", "updated"))


class PhaseTimer(L.Callback):
    """Times each Lightning step's phases and, after it, each phase of one hand-written step.

    Built from the config by name (``+callbacks.phases._target_=...``) for ``cnnpl defaults``, so the
    most recently built one is kept in ``PhaseTimer.last``.
    """

    last: PhaseTimer | None = None

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.lightning: list[dict[str, float]] = []
        self.plain: list[dict[str, float]] = []
        self._step: Callable[[], dict[str, float]] | None = None
        self.net: torch.nn.Module | None = None  # the hand-written step's network
        self._restore: Callable[[], None] | None = None
        PhaseTimer.last = self

    def _mark(self, name: str) -> Callable[..., None]:
        def mark(*args: Any) -> None:
            self.marks[name] = now()

        return mark

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        [optimizer] = trainer.optimizers
        self.net = copy.deepcopy(pl_module.net).train()  # same architecture and layout, before the hooks go on
        self._step = plain_phases(self.net, optimizer, dm, pl_module.memory_format, pl_module.label_smoothing)
        pl_module.register_forward_pre_hook(self._mark("module_forward"))
        pl_module.net.register_forward_pre_hook(self._mark("forward"))
        pl_module.net.register_forward_hook(self._mark("forwarded"))
        optimizer.register_step_post_hook(self._mark("updated"))
        after_transfer, fetch = dm.on_after_batch_transfer, dataloader._BaseDataLoaderIter.__next__

        def timed_transfer(batch: Any, dataloader_idx: int) -> Any:
            self.marks["augment"] = now()
            batch = after_transfer(batch, dataloader_idx)
            self.marks["augmented"] = now()
            return batch

        def timed_fetch(iterator: Any) -> Any:
            self.marks["loader"] = now()
            batch = fetch(iterator)
            self.marks["loaded"] = now()
            return batch

        dm.on_after_batch_transfer = timed_transfer
        dataloader._BaseDataLoaderIter.__next__ = timed_fetch

        def restore() -> None:
            del dm.on_after_batch_transfer  # the class's method again
            dataloader._BaseDataLoaderIter.__next__ = fetch

        self._restore = restore

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restore is not None:
            self._restore()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.pop("end", None)  # no step spans an epoch's start

    def on_train_batch_start(self, *args: Any) -> None:
        self.marks["batch_start"] = now()

    def on_before_backward(self, *args: Any) -> None:
        self.marks["backward"] = now()

    def on_after_backward(self, *args: Any) -> None:
        self.marks["backwarded"] = now()

    def on_before_optimizer_step(self, *args: Any) -> None:
        self.marks["update"] = now()

    def on_train_batch_end(self, *args: Any) -> None:
        self.marks["batch_end"] = now()
        assert self._step is not None  # on_fit_start ran
        plain = self._step()
        if "end" in self.marks:
            self.lightning.append(dict(self.marks))
            self.plain.append(plain)
        self.marks = {"end": plain["updated"]}


def plain_phases(
    net: torch.nn.Module, template: torch.optim.Optimizer, dm: Any, layout: torch.memory_format, smoothing: float
) -> Callable[[], dict[str, float]]:
    """A hand-written step of ``net`` with an optimizer like ``template`` over the data module's
    shuffled training images; each call returns its timestamps."""
    accepted = inspect.signature(type(template)).parameters
    optimizer = type(template)(net.parameters(), **{k: v for k, v in template.defaults.items() if k in accepted})
    split = dm.split("train")
    images, labels = split.images, split.labels
    batches = iter(())

    def step() -> dict[str, float]:
        nonlocal batches
        t = {"start": now()}
        idx = next(batches, None)
        if idx is None:
            batches = iter(torch.randperm(len(split)).split(dm.batch_size))
            idx = next(batches)
        x = images[idx]
        t["indexed"] = now()
        x = dm.normalize(dm.augment(x))
        t["augmented"] = now()
        x = x.contiguous(memory_format=layout)
        t["forward"] = now()
        logits = net(x)
        t["forwarded"] = now()
        loss = F.cross_entropy(logits, labels[idx], label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        t["backward"] = now()
        loss.backward()
        t["backwarded"] = now()
        optimizer.step()
        t["updated"] = now()
        return t

    return step


def span(marks: dict[str, float], edges: tuple[str, str]) -> float:
    return marks[edges[1]] - marks[edges[0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="folder holding CIFAR-10 (either layout)")
    parser.add_argument("--model", default="simple_cnn", choices=["simple_cnn", "vgg16", "lenet5", "bench_tiny"])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each runs every contender)")
    parser.add_argument("--limit-batches", type=int, default=None, help="training batches per fit (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every contender (data, model, optimizer)")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    keep_freed_memory(), skip_missing_nvml()  # as cnnpl.train does, before the first contender
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as out:
        cfg = compare_config(args.root, args.model, 1, args.limit_batches, out, *args.overrides)
    dm = instantiate_node(cfg.data)
    dm.setup("fit")
    target = f"+callbacks.phases._target_={PhaseTimer.__module__}.PhaseTimer"

    def barebones() -> PhaseTimer:
        timer = PhaseTimer()
        barebones_fit(cfg, dm, 1, args.limit_batches, timer)
        return timer

    def cnnpl_defaults() -> PhaseTimer:
        cnnpl_fit(args.root, args.model, 1, args.limit_batches, target, *args.overrides)
        assert PhaseTimer.last is not None  # built by cnnpl.train from the config
        return PhaseTimer.last

    def difference(timer: PhaseTimer) -> float:
        return statistics.median(
            span(a, TOTAL[0]) - span(b, TOTAL[1]) for a, b in zip(timer.lightning, timer.plain, strict=True)
        )

    results = interleave(
        {"Lightning barebones": barebones, "cnnpl defaults": cnnpl_defaults},
        args.repeats,
        args.seed,
        lambda last: ", ".join(f"{name} {difference(t) * 1e3:+.3f} ms a step" for name, t in last.items()),
    )

    print(f"\n{args.model}, batch {cfg.data.batch_size}, {args.repeats} repeats; medians over all steps, ms")
    for name, timers in results.items():
        lightning = [m for t in timers for m in t.lightning]
        plain = [m for t in timers for m in t.plain]
        print(f"\n{name}: {len(lightning)} paired steps")
        print("| phase | Lightning | hand-written | paired difference |")
        print("|---|---:|---:|---:|")
        only = [0.0] * len(lightning)
        for phase, ours, theirs in [*PHASES, ("**step**", *TOTAL)]:
            ms = statistics.median(span(m, ours) for m in lightning) * 1e3
            if theirs is None:
                only = [o + span(m, ours) for o, m in zip(only, lightning, strict=True)]
                print(f"| {phase} | {ms:.3f} | | |")
                continue
            hand = statistics.median(span(m, theirs) for m in plain) * 1e3
            diff = (
                statistics.median(span(a, ours) - span(b, theirs) for a, b in zip(lightning, plain, strict=True)) * 1e3
            )
            print(f"| {phase} | {ms:.3f} | {hand:.3f} | {diff:+.3f} |")
        print(f"| Lightning's phases without a counterpart, summed | {statistics.median(only) * 1e3:.3f} | | |")


if __name__ == "__main__":
    main()
