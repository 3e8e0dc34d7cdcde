"""Memory format and compilation: training-step time of every registered model at CIFAR size.

    python benchmarks/bench_memory_format.py
    python benchmarks/bench_memory_format.py --models simple_cnn vgg16 resnet18 --rounds 5
    python benchmarks/bench_memory_format.py --no-compile
    python benchmarks/bench_memory_format.py --models lenet5 --batch 8 --rounds 2 --steps 1   # a smoke run

For each model in ``cnnpl.list_components("model")`` (or ``--models``), built in its small-input
layout (32x32x3, 10 classes), four contenders run the same training step (forward, cross-entropy,
backward, SGD momentum step) on a random batch of ``--batch`` images of CIFAR's shape:
contiguous (NCHW) or channels_last (NHWC) weights and inputs, each eager or under
``torch.compile`` (the network's forward and its backward are compiled; the optimizer step stays
eager). Every contender is a fresh copy of the network with the same initial weights.

Compilation is reported apart from the steady state: ``compile s`` is the first compiled step's wall
time minus the contender's median step, so mostly Dynamo tracing and Inductor code generation (on
the CPU: C++ compiled by the system compiler). Inductor's cache goes to a fresh temporary folder
unless ``TORCHINDUCTOR_CACHE_DIR`` is set, so this is a cold compile, except that a model's second
compiled contender may reuse kernels of its first; the compiler's once-per-process start-up is paid
by a tiny model first and printed above the table. After one more
untimed warm-up step each, the contenders run ``--rounds`` rounds of ``--steps`` steps in a fresh
random order (by default as many steps as take about ``--round-seconds`` eagerly); the table gives
the median time per step, images/s, the ratio of medians to contiguous eager, and the median of
the per-round ratios. A model that cannot be built or run at 32x32 is skipped with the reason, and
so is a contender whose compilation fails. Prints Markdown, one model at a time.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

import cnnpl

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
BASELINE = ("contiguous", False)  # (memory format, compiled)


@dataclass
class Contender:
    step: Callable[[], None]
    compile_seconds: float | None = None
    times: list[float] = field(default_factory=list)  # seconds per step, one per round


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:160]


def skipped_row(model: str, reason: str) -> str:
    return f"| {model} | skipped: {reason} |" + " |" * 7


def make_contender(model: str, fmt: str, compiled: bool, x: torch.Tensor, y: torch.Tensor) -> Contender:
    torch.manual_seed(0)  # the same initial weights in every contender
    memory_format = FORMATS[fmt]
    net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(32, 32)).train()
    net = net.to(memory_format=memory_format)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    forward = torch.compile(net) if compiled else net
    xf = x.contiguous(memory_format=memory_format)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(xf), y).backward()
        opt.step()

    start = time.perf_counter()
    step()  # eager: oneDNN set-up, allocator; compiled: tracing and code generation as well
    first = time.perf_counter() - start
    step()  # untimed warm-up
    return Contender(step, compile_seconds=first if compiled else None)


def compiler_start_up() -> float:
    """Seconds of a first, tiny compiled training step: the once-per-process cost (imports, compiler checks)."""
    net = torch.nn.Linear(4, 2)
    start = time.perf_counter()
    torch.compile(net)(torch.randn(3, 4)).sum().backward()
    return time.perf_counter() - start


def timed_steps(step: Callable[[], None], steps: int) -> float:
    """Seconds per step over ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def bench_model(model: str, args: argparse.Namespace, rng: random.Random) -> None:
    torch._dynamo.reset()  # a fresh compile cache per model: the limits on recompiles stay per model
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    try:
        baseline = make_contender(model, *BASELINE, x, y)
    except Exception as err:  # any failure to build or run at 32x32 skips the model
        print(skipped_row(model, f"cannot build or train at 32x32 ({first_line(err)})"), flush=True)
        return
    contenders = {BASELINE: baseline}
    skipped = []
    for fmt in FORMATS:
        for compiled in (False, True) if args.compile else (False,):
            if (fmt, compiled) == BASELINE:
                continue
            try:
                contenders[fmt, compiled] = make_contender(model, fmt, compiled, x, y)
            except Exception as err:  # report it and go on with the others
                skipped.append(f"{fmt} {'compiled' if compiled else 'eager'}: {first_line(err)}")
    steps = args.steps or max(1, math.ceil(args.round_seconds / timed_steps(baseline.step, 1)))

    order = list(contenders)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for key in order:
            contenders[key].times.append(timed_steps(contenders[key].step, steps))

    base = statistics.median(baseline.times)
    for (fmt, compiled), contender in contenders.items():
        median = statistics.median(contender.times)
        paired = statistics.median(t / b for t, b in zip(contender.times, baseline.times, strict=True))
        compile_s = "" if contender.compile_seconds is None else f"{contender.compile_seconds - median:.1f}"
        print(f"| {model} | {fmt} | {'compiled' if compiled else 'eager'} | {steps} x {args.rounds} "
              f"| {median * 1e3:.1f} | {args.batch / median:,.1f} | {median / base:.2f} | {paired:.2f} "
              f"| {compile_s} |", flush=True)  # fmt: skip
    for reason in skipped:
        print(skipped_row(model, reason), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="steps per round (0: about --round-seconds eagerly)")
    parser.add_argument("--round-seconds", type=float, default=2.0, help="target time of a round, when --steps is 0")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager contenders only")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the contenders")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # a cold compile
    models = args.models or cnnpl.list_components("model")
    rng = random.Random(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 32x32x3, SGD step")
    if args.compile:
        print(f"compile on: the compiler's start-up (a tiny model first, not in the table) took "
              f"{compiler_start_up():.1f} s")  # fmt: skip
    print()
    print("| model | format | mode | steps x rounds | median ms / step | images/s | x contiguous eager "
          "| median per-round ratio | compile s |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for model in models:
        bench_model(model, args, rng)


if __name__ == "__main__":
    main()
