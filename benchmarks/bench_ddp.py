"""Training throughput on 1 vs 2 CPU processes (DDP over gloo), through the real command line.

Runs ``python -m cnnpl`` with ``simple_cnn`` in interleaved rounds of three contenders

- ``1 process``: the default, torch using every core (intra-op threads = cores);
- ``1 process, 1 thread``: ``OMP_NUM_THREADS=1``;
- ``2 processes``: ``trainer=ddp_cpu trainer.devices=2``; Lightning gives each process
  ``cores / 2`` threads (here 1),

and times the training batches with a callback in rank 0 (``StepTimer`` below): the clock starts
after ``--warmup`` batches of each epoch and stops at the last one, so process start-up, data
loading, validation and checkpointing are left out. Throughput counts the images of every process:
``(batches timed) x data.batch_size x processes / seconds``. ``data.batch_size`` is per process, so
2 processes also take twice the effective batch (the usual way DDP is scaled).

Prints the median images/s per contender and its ratios to the two 1-process contenders (median over
rounds of the per-round ratios).
On a machine shared with other jobs, multi-threaded runs suffer most (threads wait for each other
at every op when one is descheduled), so compare the 1-thread rows as well.

    python benchmarks/bench_ddp.py --rounds 3                                  # synthetic shapes
    python benchmarks/bench_ddp.py --data-root /work/data --rounds 3         # CIFAR-10 (JPEG copy)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

HERE = Path(__file__).resolve().parent


class StepTimer(L.Callback):
    """Rank 0 writes ``{"images": n, "seconds": s}`` for the timed training batches to ``path``."""

    def __init__(self, path: str, warmup: int = 3) -> None:
        self.path, self.warmup = Path(path), warmup
        self.images, self.seconds = 0, 0.0
        self._start: float | None = None
        self._last = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self._last = time.perf_counter()
        if i + 1 == self.warmup:
            self._start = self._last
        elif self._start is not None:
            self.images += len(batch[1]) * trainer.world_size  # every process trains on a batch this size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._start is not None:
            self.seconds += self._last - self._start
        if trainer.is_global_zero:
            self.path.write_text(json.dumps({"images": self.images, "seconds": self.seconds}))


CONTENDERS = {"1 process": (1, None), "1 process, 1 thread": (1, "1"), "2 processes": (2, None)}


def run_once(processes: int, threads: str | None, args: argparse.Namespace, workdir: Path) -> float:
    """One training run; returns the training throughput in images/s (all processes together)."""
    out = workdir / f"timer-{processes}-{time.monotonic_ns()}.json"
    data = ["data=cifar10", f"data.root={args.data_root}"] if args.data_root else ["data=shapes"]
    data += [f"data.num_train={args.num_train}"] if not args.data_root else []
    trainer = ["trainer=ddp_cpu", f"trainer.devices={processes}"] if processes > 1 else ["trainer.accelerator=cpu"]
    command = [
        sys.executable,
        "-m",
        "cnnpl",
        *data,
        "model=simple_cnn",
        f"data.batch_size={args.batch_size}",
        *trainer,
        f"trainer.max_epochs={args.epochs}",
        f"+trainer.limit_train_batches={args.batches}",
        "+trainer.limit_val_batches=0",
        "callbacks=minimal",
        "~callbacks.checkpoint",
        "callbacks.progress_bar.refresh_rate=0",
        "trainer.enable_model_summary=false",
        "logger=csv",
        "test=false",
        f"hydra.run.dir={workdir / out.stem}",
        "+callbacks.timer._target_=bench_ddp.StepTimer",
        f"+callbacks.timer.path={out}",
        f"+callbacks.timer.warmup={args.warmup}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]), "PYTHONWARNINGS": "ignore"}
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = threads
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"run with {processes} process(es) failed:\n{proc.stderr[-3000:]}")
    timed = json.loads(out.read_text())
    return timed["images"] / timed["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, default=30, help="training batches per epoch and process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches at the start of each epoch")
    parser.add_argument("--batch-size", type=int, default=128, help="per process")
    parser.add_argument("--num-train", type=int, default=12000, help="synthetic shapes images (ignored with data)")
    parser.add_argument("--data-root", default=None, help="CIFAR-10 folder; synthetic shapes when not given")
    args = parser.parse_args()
    if not 1 <= args.warmup < args.batches:  # the timer starts after the warmup batches, stops at the last
        parser.error(f"need 1 <= --warmup < --batches, got --warmup {args.warmup} --batches {args.batches}")

    results: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="bench_ddp-") as tmp:
        for r in range(args.rounds):
            for name, (processes, threads) in CONTENDERS.items():
                results[name].append(run_once(processes, threads, args, Path(tmp)))
            print(f"round {r + 1}: " + "   ".join(f"{n} {v[-1]:.0f} img/s" for n, v in results.items()), flush=True)
    data = f"CIFAR-10 (JPEG copy) at {args.data_root}" if args.data_root else f"shapes ({args.num_train} images)"
    print(f"\nsimple_cnn, {data}, batch {args.batch_size} per process, {args.batches - args.warmup} timed batches")
    print(f"{os.cpu_count()} CPU cores; median of {args.rounds} interleaved rounds\n")
    print("| contender | median images/s | / 1 process | / 1 process, 1 thread | runs (images/s) |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        ratios = [
            statistics.median(v / b for v, b in zip(values, results[base], strict=True))
            for base in ("1 process", "1 process, 1 thread")
        ]
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} | {ratios[0]:.2f} | {ratios[1]:.2f} | {runs} |")


if __name__ == "__main__":
    main()
