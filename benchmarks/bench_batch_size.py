"""Training images/s of one network at several batch sizes, interleaved (what batch to train at).

    python benchmarks/bench_batch_size.py
    python benchmarks/bench_batch_size.py --model fast_net --widths 64 256 256 --batches 128 256 512 1024

Each round times, for every batch size in a fresh random order, training steps (forward,
label-smoothed cross-entropy, backward, Nesterov SGD step) over 1,024 random CIFAR-shaped images in
channels_last, i.e. 1,024 / batch steps. The table gives median images/s over ``--rounds`` rounds,
the ratio to the largest batch, and the seconds one epoch of 50,000 images would take at that rate.
On a GPU bigger batches fill the device; on a CPU smaller ones can be faster per image, because a
layer's activations then stay in the caches.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F

import cnnpl

IMAGES = 1024  # per contender per round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast_net")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 128], help="fast_net's widths")
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the contenders")
    args = parser.parse_args()
    if any(IMAGES % b for b in args.batches):
        parser.error(f"--batches must divide {IMAGES}")

    kwargs = {"widths": args.widths} if args.model == "fast_net" else {}
    torch.manual_seed(0)
    net = cnnpl.build("model", args.model, num_classes=10, in_channels=3, input_size=(32, 32), **kwargs)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.85, nesterov=True)
    images = torch.randn(IMAGES, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (IMAGES,))

    def images_per_second(batch: int) -> float:
        start = time.perf_counter()
        for x, y in zip(images.split(batch), labels.split(batch), strict=True):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y, label_smoothing=0.2).backward()
            opt.step()
        return IMAGES / (time.perf_counter() - start)

    rates: dict[int, list[float]] = {b: [] for b in args.batches}
    for b in args.batches:
        images_per_second(b)  # warm-up: oneDNN picks its kernels per shape
    order, rng = list(args.batches), random.Random(args.seed)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for b in order:
            rates[b].append(images_per_second(b))

    name = f"{args.model} {'/'.join(map(str, args.widths))}" if args.model == "fast_net" else args.model
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, {name}, channels_last, {args.rounds} rounds\n")
    print("| batch | median images/s | x largest batch | s per 50,000-image epoch |")
    print("|---:|---:|---:|---:|")
    reference = statistics.median(rates[max(args.batches)])
    for b in sorted(args.batches):
        rate = statistics.median(rates[b])
        print(f"| {b} | {rate:,.0f} | {rate / reference:.2f} | {50_000 / rate:.0f} |")


if __name__ == "__main__":
    main()
