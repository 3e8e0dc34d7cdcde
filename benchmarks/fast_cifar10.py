"""The fast recipe, timed start to finish: ``python -m cnnpl experiment=fast_cifar10`` for several seeds.

    python benchmarks/fast_cifar10.py --root data --seeds 0 1
    python benchmarks/fast_cifar10.py --root data --seeds 0 --experiment fast_cifar10_gpu   # on a GPU machine

Each seed is one real command-line run in a subprocess (Python start-up, data loading from the
decode-once cache, whitening, training, test of the last epoch with test-time augmentation), timed
by the wall clock around it. Test accuracy is read back from the run's TensorBoard events.
Runs go to ``--out/<experiment>-seed<seed>`` (by default ``--out`` is ``outputs/fast_cifar10/<date>_<time>``,
new for each invocation; a folder that already holds a run is refused before the first seed starts).
Extra ``key=value`` arguments are passed on.
Not a test: it needs CIFAR-10 under ``--root`` and takes minutes per seed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def test_accuracy(run_dir: Path) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return events.Scalars("test/acc")[-1].value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; overrides may also follow ``--seeds`` (``--seeds 0 1 trainer.max_epochs=13``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data", help="CIFAR-10 folder (either layout)")
    parser.add_argument("--seeds", nargs="+", default=["0", "1"], metavar="SEED", help="one run per seed")
    parser.add_argument("--experiment", default="fast_cifar10")
    parser.add_argument(
        "--out", default=None, help="where the runs go (default: outputs/fast_cifar10/<date>_<time>, a new folder)"
    )
    parser.add_argument("overrides", nargs="*", help="more key=value overrides")
    args = parser.parse_args(argv)
    # argparse gives --seeds every word up to the next option, overrides included: split them off
    seeds = []
    for word in args.seeds:
        if not word.lstrip("-").isdigit():
            break
        seeds.append(int(word))
    if not seeds:
        parser.error(f"--seeds takes integers, like --seeds 0 1; got {args.seeds[0]!r}")
    args.overrides = args.overrides + args.seeds[len(seeds) :]
    args.seeds = seeds
    if args.out is None:
        args.out = f"outputs/fast_cifar10/{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    taken = [str(d) for d in run_dirs(args) if (d / "config.yaml").is_file() or any(d.glob("checkpoints/*.ckpt"))]
    if taken:
        parser.error(f"{taken[0]} already holds a run (cnnpl would refuse to start another there); give a new --out")
    return args


def run_dirs(args: argparse.Namespace) -> list[Path]:
    """Each seed's run folder, in the order of ``args.seeds``."""
    return [Path(args.out) / f"{args.experiment}-seed{seed}" for seed in args.seeds]


def main() -> None:
    args = parse_args()

    rows = []
    print(f"runs in {args.out}", flush=True)
    for seed, run_dir in zip(args.seeds, run_dirs(args), strict=True):
        command = [
            sys.executable,
            "-m",
            "cnnpl",
            f"experiment={args.experiment}",
            f"data.root={args.root}",
            f"seed={seed}",
            f"hydra.run.dir={run_dir}",
            "callbacks.progress_bar.refresh_rate=0",
            *args.overrides,
        ]
        start = time.perf_counter()
        status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
        if status != 0:
            sys.exit(f"seed {seed}: python -m cnnpl failed with exit status {status} (its error is above)")
        minutes = (time.perf_counter() - start) / 60
        rows.append((seed, test_accuracy(run_dir), minutes))
        print(f"seed {seed}: test acc {rows[-1][1]:.2%}, {minutes:.1f} min", flush=True)

    print(f"\n`{args.experiment}` {' '.join(args.overrides)}\n")
    print("| seed | test accuracy | wall time, start to finish |")
    print("|---:|---:|---:|")
    for seed, acc, minutes in rows:
        print(f"| {seed} | {acc:.2%} | {minutes:.1f} min |")
    accs = [acc for _, acc, _ in rows]
    spread = f" ± {statistics.stdev(accs):.2%}" if len(accs) > 1 else ""
    print(f"| mean | {statistics.mean(accs):.2%}{spread} | {statistics.mean(m for *_, m in rows):.1f} min |")


if __name__ == "__main__":
    main()
