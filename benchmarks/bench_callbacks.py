"""What the default visualisation callbacks cost, as a fraction of epoch time.

Trains ``simple_cnn`` with ``callbacks=minimal`` (no pictures) and ``callbacks=default`` in interleaved
rounds (minimal, default, minimal, default, ...) on the same in-memory data, and reports

1. end-to-end: the median wall time of ``Trainer.fit`` per epoch with and without the pictures, and
   their ratio (noisy on a shared machine: interleaving keeps the two under the same load);
2. per callback: the time spent inside its hooks (every hook of every picture callback is timed),
   per call, and its amortised cost per epoch over a default-length run (``--run-epochs``, the
   default config's 15 epochs) at the configured frequencies, as a percentage of the median epoch.
   This is the number the 3% budget is checked against: it does not drown in the machine's noise.

    python benchmarks/bench_callbacks.py --data-root /work/data --rounds 3 --epochs 2
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
from cnnpl.train import _instantiate, build_model

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
    """Wraps the hooks of one callback instance and adds up the seconds spent in each."""

    def __init__(self, callback: L.Callback) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.due_calls: dict[str, int] = defaultdict(int)
        for hook in HOOKS:
            original = getattr(callback, hook)

            def timed(*args: Any, _original: Any = original, _hook: str = hook, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_hook] += time.perf_counter() - start

            setattr(callback, hook, timed)


def run(overrides: list[str], callbacks_option: str, epochs: int, datamodule: Any, out: Path) -> dict[str, Any]:
    cfg = cnnpl.compose([*overrides, f"callbacks={callbacks_option}", f"trainer.max_epochs={epochs}"], str(out))
    L.seed_everything(cfg.seed, verbose=False)
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    from cnnpl.system import ImageClassifier

    system = ImageClassifier(net, datamodule.num_classes, _instantiate(cfg.optimizer))
    callbacks = {name: _instantiate(node) for name, node in cfg.callbacks.items() if node}
    timers = {name: HookTimer(cb) for name, cb in callbacks.items() if isinstance(cb, VisualCallback)}
    trainer = _instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=_instantiate(cfg.logger))
    start = time.perf_counter()
    trainer.fit(system, datamodule=datamodule)
    wall = time.perf_counter() - start
    return {"wall": wall, "timers": timers, "callbacks": callbacks}


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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = ["data=shapes"] if args.shapes else ["data=cifar10", f"data.root={args.data_root}"]
    overrides = [
        *data,
        "model=simple_cnn",
        "++trainer.enable_model_summary=false",
        "++trainer.enable_checkpointing=false",
        "~callbacks.checkpoint",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cnnpl.compose(overrides, tmp)
        datamodule = _instantiate(cfg.data)
        datamodule.setup("fit")
        walls: dict[str, list[float]] = defaultdict(list)
        per_call: dict[str, list[float]] = defaultdict(list)  # callback -> seconds per due epoch
        once: dict[str, list[float]] = defaultdict(list)  # callback -> seconds of its once-per-fit hooks
        every: dict[str, int] = {}
        for r in range(args.rounds):
            for option in ("minimal", "default"):
                result = run(overrides, option, args.epochs, datamodule, Path(tmp) / f"{option}{r}")
                walls[option].append(result["wall"] / args.epochs)
                print(f"round {r + 1} {option:8s} {result['wall'] / args.epochs:7.2f} s/epoch", flush=True)
                for name, timer in result["timers"].items():
                    cb = result["callbacks"][name]
                    every[name] = cb.every_n_epochs
                    due = calls_in_run(cb.every_n_epochs, args.epochs)
                    recurring = sum(s for h, s in timer.seconds.items() if h not in ONCE)
                    per_call[name].append(recurring / due)
                    once[name].append(sum(s for h, s in timer.seconds.items() if h in ONCE))

    epoch = statistics.median(walls["minimal"])
    with_pictures = statistics.median(walls["default"])
    print(f"\nend-to-end, median of {args.rounds} rounds x {args.epochs} epochs (fit wall time / epoch):")
    print(f"  callbacks=minimal  {epoch:7.2f} s/epoch")
    print(f"  callbacks=default  {with_pictures:7.2f} s/epoch   ratio {with_pictures / epoch:.3f}")
    print(f"\nper callback (hook time, medians), amortised over a {args.run_epochs}-epoch run:")
    print(f"  {'callback':20s} {'every':>5s} {'s/due epoch':>11s} {'s once':>7s} {'s/epoch':>8s} {'% epoch':>8s}")
    total = 0.0
    for name in per_call:
        call, first = statistics.median(per_call[name]), statistics.median(once[name])
        amortised = (call * calls_in_run(every[name], args.run_epochs) + first) / args.run_epochs
        total += amortised
        print(
            f"  {name:20s} {every[name]:5d} {call:11.4f} {first:7.3f} {amortised:8.4f} {100 * amortised / epoch:7.2f}%"
        )
    print(f"  {'total':20s} {'':5s} {'':11s} {'':7s} {total:8.4f} {100 * total / epoch:7.2f}%")


if __name__ == "__main__":
    main()
