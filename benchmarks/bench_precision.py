"""Precision on the CPU: a training step in float32 versus under bfloat16 autocast, side by side.

    python benchmarks/bench_precision.py
    python benchmarks/bench_precision.py --models fast_net:32,128,128 fast_net:64,256,256 simple_cnn vgg16 --batch 256
    python benchmarks/bench_precision.py --models simple_cnn --batch 8 --rounds 2 --steps 1   # a smoke run

For each model (``name`` or ``fast_net:w1,w2,w3`` for fast_net's widths), built at CIFAR size in
channels_last, two contenders run the same training step (forward, cross-entropy, backward, SGD
momentum step) on one random batch: float32 (``trainer.precision=32-true``) and float32 weights
with the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (what Lightning's
``trainer.precision=bf16-mixed`` does on the CPU). Each is a fresh copy of the network with the same
initial weights; after two untimed warm-up steps they run ``--rounds`` rounds of ``--steps`` steps
in a fresh random order. The table gives the median time per step, images/s, and the median of the
per-round ratios bf16 / float32. The header says whether the CPU has native bfloat16 (AMX or
AVX512-BF16, ``cnnpl.environment.cpu_has_native_bf16``); without it, bfloat16 is emulated. glibc keeps
freed memory (``keep_freed_memory``), as in every cnnpl run.
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
from cnnpl.environment import cpu_has_native_bf16, keep_freed_memory


def build(spec: str) -> torch.nn.Module:
    name, _, widths = spec.partition(":")
    kwargs = {"widths": [int(w) for w in widths.split(",")]} if widths else {}
    return cnnpl.build("model", name, num_classes=10, in_channels=3, input_size=(32, 32), **kwargs)


def make_step(spec: str, bf16: bool, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    torch.manual_seed(0)  # the same initial weights in both contenders
    net = build(spec).train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    step()
    step()  # untimed warm-up: oneDNN set-up, the allocator
    return step


def seconds_per_step(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fast_net:32,128,128", "fast_net:64,256,256", "simple_cnn"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the contenders")
    args = parser.parse_args()
    keep_freed_memory()
    rng = random.Random(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 32x32x3, "
          f"channels_last, SGD step; native bfloat16 (AMX or AVX512-BF16): {cpu_has_native_bf16()}\n")  # fmt: skip
    print("| model | precision | steps x rounds | median ms / step | images/s | bf16 / float32 (median per round) |")
    print("|---|---|---|---:|---:|---:|")
    for spec in args.models:
        x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch,))
        steps = {bf16: make_step(spec, bf16, x, y) for bf16 in (False, True)}
        times: dict[bool, list[float]] = {False: [], True: []}
        order = [False, True]
        for _ in range(args.rounds):
            rng.shuffle(order)
            for bf16 in order:
                times[bf16].append(seconds_per_step(steps[bf16], args.steps))
        ratio = statistics.median(b / f for b, f in zip(times[True], times[False], strict=True))
        for bf16 in (False, True):
            median = statistics.median(times[bf16])
            print(f"| {spec} | {'bf16 autocast' if bf16 else 'float32'} | {args.steps} x {args.rounds} "
                  f"| {median * 1e3:.1f} | {args.batch / median:,.0f} | {f'{ratio:.2f}' if bf16 else ''} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
