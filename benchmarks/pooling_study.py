"""Turn the pooling study's runs into a table: mean ± std test accuracy and time per epoch per strategy.

    python -m cnnpl -m experiment=pooling_study data.root=/path/to/cifar10
    python benchmarks/pooling_study.py outputs/pooling_study/<date>/<time> [more sweep dirs] [--out table.md]

Each run directory (any folder below the given ones holding ``config.yaml`` and ``tensorboard/``)
is one (strategy, seed). Read with TensorBoard's ``EventAccumulator``:

- test accuracy: the last ``test/acc`` scalar (the best-val/acc checkpoint, as ``python -m cnnpl`` tests it);
- time per epoch: wall time from the epoch's first event (the learning-rate monitor logs at each
  epoch start) to its ``val/acc`` (so it includes that epoch's validation), averaged over epochs.
  Without a learning-rate tag, the gaps between successive ``val/acc`` events (epochs 2..n) are used.

Runs are grouped by their pool config; a group label is the pool name plus any settings that
differ between groups of the same name. Runs without ``test/acc`` (unfinished) are listed apart.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf


@dataclass
class Run:
    path: Path
    pool: dict
    seed: int
    epochs: int
    test_acc: float | None
    epoch_seconds: list[float]


def read_run(run_dir: Path) -> Run:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    cfg = OmegaConf.load(run_dir / "config.yaml")
    pool = OmegaConf.to_container(cfg.pool, resolve=False)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={SCALARS: 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    test_acc = events.Scalars("test/acc")[-1].value if "test/acc" in tags else None
    ends = [e.wall_time for e in events.Scalars("val/acc")] if "val/acc" in tags else []
    lr_tags = sorted(t for t in tags if t.startswith("lr-"))
    starts = [e.wall_time for e in events.Scalars(lr_tags[0])] if lr_tags else []
    if starts and len(starts) >= len(ends):
        seconds = [end - start for start, end in zip(starts, ends, strict=False)]
    else:
        seconds = [b - a for a, b in itertools.pairwise(ends)]
    return Run(run_dir, pool, int(cfg.seed), len(ends), test_acc, seconds)


def find_runs(roots: list[Path]) -> list[Run]:
    dirs = sorted(
        {p.parent for root in roots for p in root.rglob("config.yaml") if (p.parent / "tensorboard").is_dir()}
    )
    return [read_run(d) for d in dirs]


def labels(pools: list[dict]) -> list[str]:
    """``name`` alone, or ``name (k=v, ...)`` for settings that differ among pools of that name."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for pool in pools:
        by_name[pool["name"]].append(pool)
    out = []
    for pool in pools:
        others = by_name[pool["name"]]
        varying = sorted(k for k in pool if k != "name" and len({json.dumps(o.get(k)) for o in others}) > 1)
        settings = ", ".join(f"{k}={pool[k]}" for k in varying)
        out.append(f"{pool['name']} ({settings})" if settings else pool["name"])
    return out


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def make_table(runs: list[Run]) -> str:
    finished = [r for r in runs if r.test_acc is not None]
    groups: dict[str, list[Run]] = defaultdict(list)
    keys = [json.dumps(r.pool, sort_keys=True) for r in finished]
    unique = list(dict.fromkeys(keys))
    names = dict(zip(unique, labels([json.loads(k) for k in unique]), strict=True))
    for key, run in zip(keys, finished, strict=True):
        groups[names[key]].append(run)
    lines = [
        "| pool | runs (seeds) | epochs | test accuracy % (mean ± std) | s / epoch (mean ± std) |",
        "|---|---|---:|---:|---:|",
    ]
    for label, group in sorted(groups.items(), key=lambda item: -statistics.mean(r.test_acc for r in item[1])):
        seeds = ", ".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed))
        epochs = "/".join(sorted({str(r.epochs) for r in group}))
        accuracy = mean_std([100 * r.test_acc for r in group])  # type: ignore[operator]
        per_epoch = mean_std([statistics.mean(r.epoch_seconds) for r in group if r.epoch_seconds] or [float("nan")])
        lines.append(f"| {label} | {len(group)} ({seeds}) | {epochs} | {accuracy} | {per_epoch} |")
    unfinished = [r for r in runs if r.test_acc is None]
    if unfinished:
        lines.append("")
        lines.append("Unfinished (no test/acc): " + ", ".join(f"{r.pool['name']} seed {r.seed}" for r in unfinished))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    runs = find_runs(args.sweep_dirs)
    if not runs:
        raise SystemExit(f"no runs (config.yaml + tensorboard/) under {', '.join(map(str, args.sweep_dirs))}")
    text = make_table(runs)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
