"""Roofline: the FLOP/s simple_cnn and vgg16 train at (CIFAR size) against a large matrix multiply's.

    python benchmarks/bench_roofline.py
    python benchmarks/bench_roofline.py --channels-last --rounds 5
    python benchmarks/bench_roofline.py --batch 16 --steps 1 --rounds 1 --matmul-size 1024   # a smoke run

For each model (its small-input layout: 32x32x3, 10 classes) at batch ``--batch``:

* FLOPs of one training step, counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add
  is 2 FLOPs; it counts matrix multiplies and convolutions, forward and backward, and ignores
  elementwise work, pooling and the optimizer step, so it is a lower bound of the work done);
* the median time of a training step: forward, cross-entropy, backward, SGD (momentum) step, on a
  random batch of CIFAR's shape (time does not depend on pixel values);
* achieved FLOP/s = counted FLOPs / step time, and its fraction of the "peak": the median FLOP/s of
  an ``--matmul-size`` square fp32 matrix multiply (2 n^3 FLOPs) measured in the same run.

Every round times the matmul and each model (``--steps`` steps each, after one warm-up step) in a
fresh random order, so a load change hits them alike; medians over ``--rounds`` rounds. Goal: vgg16
at 60% of the matmul or more. ``--channels-last`` adds a channels_last row per model. Prints Markdown.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import cnnpl

MODELS = ("simple_cnn", "vgg16")
GOAL = 0.60  # vgg16's fraction of the matmul FLOP/s, at least
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def step_flops(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(forward FLOPs, forward + backward FLOPs) of one training step, as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as forward:
        loss = F.cross_entropy(net(x), y)
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    net.zero_grad(set_to_none=True)
    return forward.get_total_flops(), forward.get_total_flops() + backward.get_total_flops()


def model_contender(
    model: str, memory_format: torch.memory_format, batch: int, steps: int, device: torch.device
) -> tuple[Callable[[], None], tuple[int, int]]:
    """A function running ``steps`` training steps (after one warm-up step), and the step's FLOPs."""
    torch.manual_seed(0)
    net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(32, 32)).to(device).train()
    net = net.to(memory_format=memory_format)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)
    flops = step_flops(net, x, y)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def run(n: int = steps) -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

    run(1)  # warm-up: oneDNN / cuDNN set-up, allocator
    return run, flops


def matmul_contender(size: int, reps: int, device: torch.device) -> Callable[[], None]:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)

    def run() -> None:
        for _ in range(reps):
            torch.mm(a, b, out=out)

    run()  # warm-up
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="training steps per round and model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=4096, help="n of the n x n fp32 matmul")
    parser.add_argument("--matmul-reps", type=int, default=3, help="matmuls per round")
    parser.add_argument("--channels-last", action="store_true", help="time channels_last as well")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the contenders")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    formats = list(FORMATS) if args.channels_last else ["contiguous"]

    n = args.matmul_size
    matmul_name = f"matmul {n}x{n} fp32"
    contenders = {matmul_name: matmul_contender(n, args.matmul_reps, device)}
    work = {matmul_name: 2 * n**3 * args.matmul_reps}  # FLOPs per timed call
    flops: dict[str, tuple[int, int]] = {}
    for model in args.models:
        for fmt in formats:
            name = f"{model} ({fmt})"
            contenders[name], flops[name] = model_contender(model, FORMATS[fmt], args.batch, args.steps, device)
            work[name] = flops[name][1] * args.steps

    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for name in order:
            seconds[name].append(timed(contenders[name], device))

    rate = {name: work[name] / statistics.median(values) for name, values in seconds.items()}
    peak = rate[matmul_name]
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.rounds} rounds of {args.steps} steps / {args.matmul_reps} matmuls")  # fmt: skip
    print("| contender | GFLOP fwd | GFLOP fwd+bwd | median ms / step | GFLOP/s | fraction of matmul |")
    print("|---|---:|---:|---:|---:|---:|")
    ms = statistics.median(seconds[matmul_name]) / args.matmul_reps * 1e3
    print(f"| {matmul_name} | | {2 * n**3 / 1e9:.1f} | {ms:.1f} | {peak / 1e9:.1f} | 1.00 |")
    for name, (fwd, total) in flops.items():
        ms = statistics.median(seconds[name]) / args.steps * 1e3
        goal = f" (goal >= {GOAL:.2f})" if name.startswith("vgg16") else ""
        print(f"| {name} | {fwd / 1e9:.2f} | {total / 1e9:.2f} | {ms:.1f} | {rate[name] / 1e9:.1f} "
              f"| {rate[name] / peak:.2f}{goal} |")  # fmt: skip


if __name__ == "__main__":
    main()
