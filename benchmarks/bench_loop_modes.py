"""Ways to a cheaper Lightning step, measured before adopting them: manual optimization, ``gc.freeze()``
and several optimizer steps in one Lightning batch.

Lightning's automatic optimization wraps each step in a closure (training step, zero_grad,
backward) that the optimizer calls through ``LightningModule.optimizer_step``,
``LightningOptimizer.step``, the strategy and the precision plugin. Under manual optimization the
module calls ``manual_backward`` and ``optimizer.step()`` itself. This script times the loop alone:
``Trainer(barebones=True)`` on a network so small (one linear layer, 2x2 images by default) that a
step is nearly all framework, against a plain loop of the same network, optimizer and DataLoader.

Contenders, in a fresh random order each repeat (seeded), timed from the epoch's start to its end
(the fit's set-up excluded):

* ``plain``: ``for x, y in loader: loss = ...; opt.zero_grad(); loss.backward(); opt.step()``;
* ``automatic``: Lightning's automatic optimization (what ``cnnpl.ImageClassifier`` uses);
* ``automatic, gc.freeze()``: the same, with every object alive before the fit moved out of the
  garbage collector's reach (``gc.freeze()``), so its collections scan only the objects the loop makes;
* ``manual``: ``self.automatic_optimization = False``; ``opt.zero_grad()``,
  ``self.manual_backward(loss)``, ``opt.step()`` with the ``LightningOptimizer``;
* ``manual, raw optimizer``: the same, stepping the wrapped torch optimizer directly. Not usable as
  it is (Lightning counts ``global_step`` in ``LightningOptimizer.step``): it shows what that wrapper costs.
* ``manual, 4 steps a batch`` (``--chunks``): manual optimization, the loader handing out 4 steps' images
  at once and the training step stepping the optimizer once for each ``--batch-size`` of them, so that
  Lightning's loop and hooks run once for 4 steps (a prototype; times are per optimizer step).

    python benchmarks/bench_loop_modes.py
    python benchmarks/bench_loop_modes.py --conv --steps 600

``--conv`` uses a small conv net on 32x32 images instead (a step of a few ms). No CIFAR-10 needed;
about a minute. Not a test.
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import time
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from train_cifar10 import interleave

from cnnpl.environment import skip_missing_nvml


def make_net(conv: bool) -> nn.Module:
    torch.manual_seed(0)
    if conv:
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)
        )
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 10))


def make_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


class Automatic(L.LightningModule):
    def __init__(self, conv: bool) -> None:
        super().__init__()
        self.net = make_net(conv)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return F.cross_entropy(self.net(images), labels)

    def configure_optimizers(self):
        return make_optimizer(self.parameters())


class Manual(Automatic):
    def __init__(self, conv: bool) -> None:
        super().__init__(conv)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        images, labels = batch
        optimizer = self.optimizers()
        loss = F.cross_entropy(self.net(images), labels)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return loss


class ManualRaw(Manual):
    def on_train_start(self) -> None:
        self.raw = self.optimizers().optimizer

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.raw.zero_grad()
        loss.backward()
        self.raw.step()
        return loss


class ManualChunked(Manual):
    """Several optimizer steps in one Lightning batch: one for each ``batch_size`` images of it."""

    def __init__(self, conv: bool, batch_size: int) -> None:
        super().__init__(conv)
        self.batch_size = batch_size

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        for images, labels in zip(*(t.split(self.batch_size) for t in batch), strict=True):
            loss = F.cross_entropy(self.net(images), labels)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
        return loss


class EpochClock(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_epoch(module: L.LightningModule, loader: DataLoader, freeze: bool = False) -> float:
    clock = EpochClock()
    trainer = L.Trainer(barebones=True, max_epochs=1, accelerator="cpu", devices=1, callbacks=[clock])
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        trainer.fit(module, loader)
    finally:
        if freeze:
            gc.unfreeze()
    return clock.seconds


def plain_epoch(conv: bool, loader: DataLoader) -> float:
    net = make_net(conv)
    optimizer = make_optimizer(net.parameters())
    start = time.perf_counter()
    for images, labels in loader:
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps an epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--conv", action="store_true", help="a small conv net on 32x32 images")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    parser.add_argument("--chunks", type=int, default=4, help="optimizer steps a batch, for the last contender")
    args = parser.parse_args()
    skip_missing_nvml()  # as cnnpl.train does; the plain loop never imports Lightning's variable either
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    side = 32 if args.conv else 2
    n = args.steps * args.batch_size
    data = TensorDataset(torch.randn(n, 3, side, side), torch.randint(0, 10, (n,)))

    def loader(chunks: int = 1) -> DataLoader:
        return DataLoader(data, batch_size=args.batch_size * chunks, shuffle=True)

    contenders: dict[str, Callable[[], float]] = {
        "plain": lambda: plain_epoch(args.conv, loader()),
        "automatic": lambda: lightning_epoch(Automatic(args.conv), loader()),
        "automatic, gc.freeze()": lambda: lightning_epoch(Automatic(args.conv), loader(), freeze=True),
        "manual": lambda: lightning_epoch(Manual(args.conv), loader()),
        "manual, raw optimizer": lambda: lightning_epoch(ManualRaw(args.conv), loader()),
        f"manual, {args.chunks} steps a batch": lambda: lightning_epoch(
            ManualChunked(args.conv, args.batch_size), loader(args.chunks)
        ),
    }
    for run in contenders.values():  # warm-up: imports, first-call costs
        run()
    times = interleave(
        contenders, args.repeats, args.seed, lambda last: ", ".join(f"{n} {t:.3f}s" for n, t in last.items())
    )
    plain = statistics.median(times["plain"])
    automatic = statistics.median(times["automatic"])
    print(
        f"{args.steps} steps of batch {args.batch_size}, {'conv net' if args.conv else 'linear'}, "
        f"median of {args.repeats}"
    )
    print("| contender | epoch, s | step, ms | over plain, ms a step | over automatic, ms a step | plain / this |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in times.items():
        t = statistics.median(runs)
        print(
            f"| {name} | {t:.3f} | {t / args.steps * 1e3:.3f} | {(t - plain) / args.steps * 1e3:+.3f} "
            f"| {(t - automatic) / args.steps * 1e3:+.3f} | {plain / t:.3f} |"
        )


if __name__ == "__main__":
    main()
