"""What the default visualisation callbacks cost, as a fraction of epoch time.

Trains ``simple_cnn`` with ``callbacks=minimal`` (no pictures) and ``callbacks=default`` in interleaved
rounds (minimal, default, minimal, default, ...) on the same in-memory data, and reports

1. end-to-end: the median wall time of ``Trainer.fit`` per epoch with and without the pictures, and
   their ratio (noisy on a shared machine: interleaving keeps the two under the same load);
2. per callback: the time spent inside its hooks (every hook of every picture callback is timed,
   wall clock and process CPU), per due epoch, and its amortised cost per epoch over a default-length
   run (``--run-epochs``, the default config's 15 epochs) at the configured frequencies, as a
   percentage of a full epoch. This is the number the 3% budget is checked against.

``--train-fraction`` (Lightning's ``limit_train_batches``) shortens the training part of each epoch
so a loaded machine can finish; the full epoch is then estimated from the same runs as
``train time * (all batches / batches run) + validation time * (all / run)`` (both timed by a
callback; ``--val-fraction`` likewise), and the end-to-end ratio of (1) is over the shortened epochs
(it overstates the cost by about 1 / fraction). A short warm-up run comes first so that one-off
imports are not counted against a callback.

    python benchmarks/bench_callbacks.py --data-root /work/data --rounds 2 --epochs 2 \\
        --train-fraction 0.1 --val-fraction 0.25
    python benchmarks/bench_callbacks.py --shapes          # a quick offline check on synthetic data
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import torch

import cnnpl
from cnnpl.callbacks import VisualCallback
from cnnpl.network import build_model, instantiate_node

HOOKS = (
    "setup",
    "on_train_start",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_validation_epoch_start",
    "on_validation_batch_end",
    "on_validation_epoch_end",
    "on_before_optimizer_step",
    "on_fit_end",
)
ONCE = {"setup", "on_train_start", "on_fit_end"}  # hooks that run once per fit


class HookTimer:
    """Wraps the hooks of one callback instance and adds up the seconds spent in each.

    Wall clock, and the CPU time of the calling thread: on an idle machine the hooks' wall time is
    close to that CPU time (drawing is single-threaded); on a loaded one it is not, and the CPU time
    is the better estimate of what the hooks cost on an idle machine.
    """

    def __init__(self, callback: L.Callback) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        for hook in HOOKS:
            original = getattr(callback, hook)

            def timed(*args: Any, _original: Any = original, _hook: str = hook, **kwargs: Any) -> Any:
                start, cpu = time.perf_counter(), time.thread_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_hook] += time.perf_counter() - start
                    self.cpu[_hook] += time.thread_time() - cpu

            setattr(callback, hook, timed)


class EpochParts(L.Callback):
    """Times the training and the validation parts of each epoch, and counts the training batches."""

    def __init__(self) -> None:
        self.train = self.val = 0.0
        self.batches = self.val_batches = 0
        self._t = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.batches += 1

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.train += time.perf_counter() - self._t
            self._t = time.perf_counter()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self.val_batches += 1

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.val += time.perf_counter() - self._t


def run(overrides: list[str], callbacks_option: str, epochs: int, datamodule: Any, out: Path) -> dict[str, Any]:
    cfg = cnnpl.compose([*overrides, f"callbacks={callbacks_option}", f"trainer.max_epochs={epochs}"], str(out))
    parts = EpochParts()
    L.seed_everything(cfg.seed, verbose=False)
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    from cnnpl.system import ImageClassifier

    system = ImageClassifier(net, datamodule.num_classes, instantiate_node(cfg.optimizer))
    callbacks = {name: instantiate_node(node) for name, node in cfg.callbacks.items() if node}
    timers = {name: HookTimer(cb) for name, cb in callbacks.items() if isinstance(cb, VisualCallback)}
    trainer = instantiate_node(cfg.trainer, callbacks=[*callbacks.values(), parts], logger=instantiate_node(cfg.logger))
    start = time.perf_counter()
    trainer.fit(system, datamodule=datamodule)
    wall = time.perf_counter() - start
    return {"wall": wall, "timers": timers, "callbacks": callbacks, "parts": parts}


def calls_in_run(every_n_epochs: int, run_epochs: int) -> int:
    """How many epochs of a ``run_epochs`` run are due for a callback (see VisualCallback.due)."""
    return sum(1 for e in range(run_epochs) if (e + 1) % every_n_epochs == 0 or e + 1 == run_epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="/work/data", help="CIFAR-10 root (class folders or batches)")
    parser.add_argument("--shapes", action="store_true", help="use data=shapes instead of CIFAR-10")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit")
    parser.add_argument("--run-epochs", type=int, default=15, help="run length the budget is amortised over")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--train-fraction", type=float, default=1.0, help="limit_train_batches (0, 1]")
    parser.add_argument("--val-fraction", type=float, default=1.0, help="limit_val_batches (0, 1]")
    parser.add_argument("--nominal-epoch", type=float, default=30.0, help="idle-machine epoch, s (2 cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = ["data=shapes"] if args.shapes else ["data=cifar10", f"data.root={args.data_root}"]
    overrides = [
        *data,
        "model=simple_cnn",
        "++trainer.enable_model_summary=false",
        "++trainer.enable_checkpointing=false",
        "~callbacks.checkpoint",
        "callbacks.progress_bar.refresh_rate=0",
        f"++trainer.limit_train_batches={args.train_fraction}",
        f"++trainer.limit_val_batches={args.val_fraction}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cnnpl.compose(overrides, tmp)
        datamodule = instantiate_node(cfg.data)
        datamodule.setup("fit")
        walls: dict[str, list[float]] = defaultdict(list)
        per_call: dict[str, list[float]] = defaultdict(list)  # callback -> seconds per due epoch
        per_call_cpu: dict[str, list[float]] = defaultdict(list)
        once: dict[str, list[float]] = defaultdict(list)  # callback -> seconds of its once-per-fit hooks
        once_cpu: dict[str, list[float]] = defaultdict(list)
        full_epoch: list[float] = []  # estimated full-epoch wall time of the runs without pictures
        every: dict[str, int] = {}
        all_batches = len(datamodule.train_dataloader())
        all_val_batches = len(datamodule.val_dataloader())
        # warm-up: a few batches with every picture, so one-off imports (matplotlib, PNG) are not timed
        warm = [*overrides, "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=2"]
        run(warm, "default", 1, datamodule, Path(tmp) / "warmup")
        for r in range(args.rounds):
            for option in ("minimal", "default"):
                result = run(overrides, option, args.epochs, datamodule, Path(tmp) / f"{option}{r}")
                walls[option].append(result["wall"] / args.epochs)
                parts = result["parts"]
                # seconds per batch (over all epochs run) times the batches of a whole epoch
                train_part = parts.train / max(parts.batches, 1) * all_batches
                estimate = train_part + parts.val / max(parts.val_batches, 1) * all_val_batches
                if option == "minimal":
                    full_epoch.append(estimate)
                print(
                    f"round {r + 1} {option:8s} fit {result['wall'] / args.epochs:7.2f} s/epoch "
                    f"({parts.batches // args.epochs}/{all_batches} train batches, "
                    f"{parts.val_batches // args.epochs}/{all_val_batches} val); full epoch ~{estimate:7.2f} s",
                    flush=True,
                )
                for name, timer in result["timers"].items():
                    cb = result["callbacks"][name]
                    every[name] = cb.every_n_epochs
                    due = calls_in_run(cb.every_n_epochs, args.epochs)
                    recurring = sum(s for h, s in timer.seconds.items() if h not in ONCE)
                    per_call[name].append(recurring / due)
                    per_call_cpu[name].append(sum(s for h, s in timer.cpu.items() if h not in ONCE) / due)
                    once[name].append(sum(s for h, s in timer.seconds.items() if h in ONCE))
                    once_cpu[name].append(sum(s for h, s in timer.cpu.items() if h in ONCE))

    short = statistics.median(walls["minimal"])
    with_pictures = statistics.median(walls["default"])
    epoch = statistics.median(full_epoch)
    print(f"\nend-to-end, median of {args.rounds} rounds x {args.epochs} epochs (fit wall time / epoch run):")
    print(f"  callbacks=minimal  {short:7.2f} s/epoch")
    print(f"  callbacks=default  {with_pictures:7.2f} s/epoch   ratio {with_pictures / short:.3f}")
    print(f"  full epoch (estimated, minimal runs): {epoch:.2f} s")
    print(f"\nper callback (hook time, medians), amortised over a {args.run_epochs}-epoch run, vs the full epoch:")
    columns = ("every", "s/due", "cpu s/due", "s once", "s/epoch", "% epoch")
    print(f"  {'callback':20s} " + " ".join(f"{c:>{w}s}" for c, w in zip(columns, (5, 7, 9, 7, 8, 8), strict=True)))
    total = 0.0
    for name in per_call:
        call, first = statistics.median(per_call[name]), statistics.median(once[name])
        cpu = statistics.median(per_call_cpu[name])
        amortised = (call * calls_in_run(every[name], args.run_epochs) + first) / args.run_epochs
        total += amortised
        print(
            f"  {name:20s} {every[name]:5d} {call:7.3f} {cpu:9.3f} {first:7.3f} {amortised:8.4f} "
            f"{100 * amortised / epoch:7.2f}%"
        )
    print(f"  {'total':20s} {'':5s} {'':7s} {'':9s} {'':7s} {total:8.4f} {100 * total / epoch:7.2f}%")
    print(f"\nthe same with the hooks' CPU time vs an idle-machine epoch of {args.nominal_epoch:.0f} s:")
    total_cpu = 0.0
    for name in per_call:
        cpu, first = statistics.median(per_call_cpu[name]), statistics.median(once_cpu[name])
        amortised = (cpu * calls_in_run(every[name], args.run_epochs) + first) / args.run_epochs
        total_cpu += amortised
        print(f"  {name:20s} {amortised:8.4f} s/epoch {100 * amortised / args.nominal_epoch:7.2f}%")
    print(f"  {'total':20s} {total_cpu:8.4f} s/epoch {100 * total_cpu / args.nominal_epoch:7.2f}%")


if __name__ == "__main__":
    main()
