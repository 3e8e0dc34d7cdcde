"""Does Python run between a training step's tensor operations cost more than the same Python alone?

A framework's loop runs Python between the operations of each step (hooks, bookkeeping). This
times a hand-written ``simple_cnn`` step (channels_last, AdamW, label smoothing; random inputs) with
five gaps in it, before the forward, the loss, the backward, the optimizer step and after it, of:

* ``touch``: Python that reads ``--objects`` distinct small objects (an attribute and a dict entry
  each), the kind of work a framework's hook dispatch does;
* ``spin``: Python that busy-waits for as long as ``touch`` takes in a loop of its own (warm caches),
  touching next to no memory;
* ``none``: no gaps.

Steps of the three kinds alternate (a shuffled block of one step each, ``--blocks`` times), so slow
spells of the machine fall on all three alike. A gap's cost in the step is the median step minus
the median step without gaps; its warm cost, five times the median ``touch`` alone. If Python costs
more between tensor operations than alone (cold caches), ``touch`` comes out above its warm cost and
``spin`` does not.

    python benchmarks/bench_python_gaps.py
    python benchmarks/bench_python_gaps.py --batch-size 16 --objects 20000

No CIFAR-10 needed; a minute or two. Not a test.
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

GAPS = 5  # one before the forward, the loss, the backward, the optimizer step, and one after


class Small:
    __slots__ = ("entry", "value")

    def __init__(self, i: int) -> None:
        self.value = i
        self.entry = {"key": i}


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="simple_cnn", help="registered model (CIFAR shape, 10 classes)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--objects", type=int, default=4000, help="distinct objects a touch gap reads")
    parser.add_argument("--blocks", type=int, default=400, help="steps of each kind")
    args = parser.parse_args()
    keep_freed_memory()  # as cnnpl.train does

    torch.manual_seed(0)
    net = cnnpl.build("model", args.model, num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batches = [
        (torch.randn(args.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last),
         torch.randint(0, 10, (args.batch_size,)))
        for _ in range(8)
    ]  # fmt: skip
    objects = [Small(i) for i in range(args.objects)]

    def touch() -> int:
        return sum(o.value + o.entry["key"] for o in objects)

    warm_runs = []
    for _ in range(200):
        start = time.perf_counter()
        touch()
        warm_runs.append(time.perf_counter() - start)
    warm = statistics.median(warm_runs)

    def step(i: int, gap: Callable[[], object]) -> float:
        images, labels = batches[i % len(batches)]
        start = time.perf_counter()
        gap()
        logits = net(images)
        gap()
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        gap()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gap()
        opt.step()
        gap()
        return time.perf_counter() - start

    kinds: dict[str, Callable[[], object]] = {
        "none": lambda: None,
        "touch": touch,
        "spin": lambda: spin(warm),
    }
    for i in range(20):  # warm-up
        step(i, kinds["none"])
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    order = list(kinds)
    for block in range(args.blocks):
        random.shuffle(order)
        for j, kind in enumerate(order):
            times[kind].append(step(block * len(order) + j, kinds[kind]))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.model}, batch {args.batch_size}, "
          f"{args.blocks} steps of each kind; touch({args.objects}) alone: {warm * 1e6:.1f} us")  # fmt: skip
    base = statistics.median(times["none"])
    print("\n| gaps | median step, ms | over no gaps, ms | the gaps alone (warm), ms | in the step / alone |")
    print("|---|---:|---:|---:|---:|")
    for kind in kinds:
        median = statistics.median(times[kind])
        alone = 0.0 if kind == "none" else GAPS * warm
        ratio = f"{(median - base) / alone:.2f}" if alone else ""
        print(f"| {kind} | {median * 1e3:.2f} | {(median - base) * 1e3:+.3f} | {alone * 1e3:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
