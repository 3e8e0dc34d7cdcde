"""Pooling speed: every registered pool relative to ``max``, and a simple_cnn training step mixed vs max.

    python benchmarks/bench_pool.py [--repeats 15] [--step-repeats 15] [--batch 128]

1. Layer: forward + backward of each strategy on a (batch, 64, 32, 32) non-negative input with 2x2
   windows (the global poolings over the whole map). Goal: ``mixed`` at most 1.5x ``max``.
2. Step: one whole ``simple_cnn`` training step (forward, cross-entropy, backward, Adam) on a
   (batch, 3, 32, 32) batch with ``pool=mixed`` and ``pool=max``. Goal: mixed at most 5% more.

Contenders are interleaved (in a fresh random order every round) so a machine shared with other
work slows them alike; the tables give medians, their ratio to ``max``, and the median over rounds
of each round's ratio (the paired estimate, steadier when the load changes). Prints Markdown.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import cnnpl
from cnnpl.environment import keep_freed_memory
from cnnpl.factory import LayerFactory
from cnnpl.registry import get_registry, parameters_of

CHANNELS, SIZE, KERNEL = 64, 32, 2


def layer_contenders() -> dict[str, LayerFactory]:
    """Every registered pool (default settings) plus the non-default mixed granularities."""
    contenders = {name: LayerFactory("pool", name, {}) for name in cnnpl.list_components("pool")}
    for granularity in ("channel", "region"):
        contenders[f"mixed (granularity={granularity})"] = LayerFactory("pool", "mixed", {"granularity": granularity})
    contenders["lp (learnable)"] = LayerFactory("pool", "lp", {"learnable": True})
    return contenders


def build(factory: LayerFactory) -> torch.nn.Module:
    kwargs = {"channels": CHANNELS}
    if "kernel_size" in parameters_of(get_registry("pool").get(factory.name)):
        kwargs["kernel_size"] = KERNEL
    return factory(**kwargs)


def interleaved(contenders: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``repeats`` rounds in a shuffled order each round."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(repeats):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def start_rounds(seed: int, rounds: int, per_round: str) -> None:
    """Set up an interleaved comparison as a cnnpl run: ``keep_freed_memory`` on, the contenders' order
    seeded with ``seed``; print torch's version and threads, and ``rounds x per_round``."""
    kept = keep_freed_memory()
    random.seed(seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, keep_freed_memory {kept}")
    print(f"{rounds} rounds x {per_round}, medians\n")


def table(times: dict[str, list[float]], baseline: str, title: str) -> str:
    """Medians, their ratio to ``baseline``, and the median of per-round ratios (robust to load drifting)."""
    base = statistics.median(times[baseline])
    lines = [f"| {title} | median ms | x {baseline} | median per-round ratio |", "|---|---:|---:|---:|"]
    for name, values in times.items():
        median = statistics.median(values)
        paired = statistics.median(v / b for v, b in zip(values, times[baseline], strict=True))
        lines.append(f"| {name} | {median * 1e3:.1f} | {median / base:.2f} | {paired:.2f} |")
    return "\n".join(lines)


def layer_benchmark(batch: int, repeats: int) -> dict[str, list[float]]:
    x = torch.randn(batch, CHANNELS, SIZE, SIZE).relu_().requires_grad_()
    contenders = {}
    for name, factory in layer_contenders().items():
        pool = build(factory).train()

        def step(pool: torch.nn.Module = pool) -> None:
            x.grad = None
            out = pool(x)
            out.backward(torch.ones_like(out))

        contenders[name] = step
    return interleaved(contenders, repeats)


def step_benchmark(batch: int, repeats: int) -> dict[str, list[float]]:
    images = torch.randn(batch, 3, SIZE, SIZE)
    labels = torch.randint(0, 10, (batch,))
    contenders = {}
    for name in ("max", "mixed"):
        model = cnnpl.build("model", "simple_cnn", num_classes=10, pool=LayerFactory("pool", name, {})).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(model: torch.nn.Module = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

        contenders[f"simple_cnn pool={name}"] = step
    return interleaved(contenders, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15, help="rounds of the layer benchmark")
    parser.add_argument("--step-repeats", type=int, default=15, help="rounds of the training-step benchmark")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="layer,step", help="comma-separated: layer, step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}\n")
    parts = args.parts.split(",")
    if set(parts) - {"layer", "step"}:
        parser.error(f"--parts takes layer and/or step, got {args.parts}")
    if "layer" in parts:
        layer = layer_benchmark(args.batch, args.repeats)
        print(table(layer, "max", f"pool fwd+bwd ({args.batch}x{CHANNELS}x{SIZE}x{SIZE}, kernel {KERNEL})"))
        print()
    if "step" in parts:
        steps = step_benchmark(args.batch, args.step_repeats)
        print(table(steps, "simple_cnn pool=max", f"training step (batch {args.batch}, 3x{SIZE}x{SIZE})"))


if __name__ == "__main__":
    main()
