"""Preparing the next batch in a background thread, against preparing it in the training loop.

A hand-written loop does its data work (sampling, indexing, crop, flip, normalising, the layout copy)
between steps, on the thread that trains. Loaders built for speed (DALI, FFCV) prepare the next batch
while the current one trains, so this measures whether cnnpl's data path should: three hand-written
loops of the same network, optimizer, data and augmentation (``train_cifar10.plain_step``'s), each with
its own copy of the network from the same initial weights and its own optimizer, in a fresh random
order each repeat:

* ``inline``: prepares each batch just before its step, as the framework-overhead benchmarks' plain
  loop and cnnpl's ``on_after_batch_transfer`` do;
* ``thread``: a ``threading.Thread`` prepares the batches into a queue of ``--depth`` while the main
  thread trains (torch's operators release the GIL); the thread keeps torch's default intra-op threads;
* ``thread, 1 intra-op thread``: the same with ``torch.set_num_threads(1)`` in the preparing thread
  (the setting is per thread: the training thread keeps its own).

The table gives the median time of a step over ``--repeats`` repeats of ``--steps`` steps, and
``inline / this``, the throughput ratio (above 1: the thread helps).

    python benchmarks/bench_prefetch.py --root data
    python benchmarks/bench_prefetch.py --root data --steps 20 --repeats 2        # a smoke run

Not a test: it needs CIFAR-10 under ``--root`` (either layout) and takes about two minutes.
"""

from __future__ import annotations

import argparse
import copy
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import torch
from train_cifar10 import LEARNING_RATES, compare_config, interleave

from cnnpl.network import build_model, instantiate_node
from cnnpl.system import MEMORY_FORMATS, to_memory_format

Batch = tuple[torch.Tensor, torch.Tensor]


def batches(n: int, batch_size: int, steps: int) -> list[torch.Tensor]:
    """The index tensors of ``steps`` shuffled batches of ``batch_size`` from ``n`` images."""
    return list(torch.randperm(n).split(batch_size)[:steps])


def prefetched(
    prepare: Callable[[torch.Tensor], Batch], indices: list[torch.Tensor], depth: int, threads: int | None
) -> Iterator[Batch]:
    """``prepare(idx)`` of each of ``indices``, made ahead in a background thread, ``depth`` at most waiting."""
    ready: queue.Queue[Batch | None] = queue.Queue(depth)

    def work() -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        for idx in indices:
            ready.put(prepare(idx))
        ready.put(None)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while (batch := ready.get()) is not None:
        yield batch
    worker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="folder holding CIFAR-10 (either layout)")
    parser.add_argument("--model", default="simple_cnn", choices=sorted(LEARNING_RATES))
    parser.add_argument("--steps", type=int, default=120, help="training steps per contender and repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--depth", type=int, default=2, help="prepared batches the queue holds")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the batches and the order")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as out:
        cfg = compare_config(args.root, args.model, 1, None, out)
    dm = instantiate_node(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = dm.split("train").images, dm.split("train").labels
    layout = MEMORY_FORMATS[cfg.system.memory_format]
    net = build_model(cfg, dm.num_classes, dm.in_channels, dm.input_size).train()
    to_memory_format(net, layout)

    def prepare(idx: torch.Tensor) -> Batch:
        return dm.normalize(dm.augment(images[idx])).contiguous(memory_format=layout), labels[idx]

    def contender(threads: int | None, inline: bool = False) -> Callable[[], float]:
        copy_ = copy.deepcopy(net)
        opt = instantiate_node(cfg.optimizer)(copy_.parameters())

        # train_cifar10.plain_step with its preparing split off: the same loss and optimizer calls
        def step(x: torch.Tensor, y: torch.Tensor) -> None:
            loss = torch.nn.functional.cross_entropy(copy_(x), y, label_smoothing=cfg.system.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def run() -> float:
            indices = batches(len(labels), cfg.data.batch_size, args.steps)
            start = time.perf_counter()
            source = map(prepare, indices) if inline else prefetched(prepare, indices, args.depth, threads)
            for x, y in source:
                step(x, y)
            return (time.perf_counter() - start) / len(indices)

        return run

    contenders = {
        "inline": contender(None, inline=True),
        "thread": contender(None),
        "thread, 1 intra-op thread": contender(1),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.model}, batch {cfg.data.batch_size}")
    for run in contenders.values():
        run()  # warm-up
    times = interleave(
        contenders, args.repeats, args.seed, lambda last: ", ".join(f"{n} {t * 1e3:.2f} ms" for n, t in last.items())
    )
    base = statistics.median(times["inline"])
    print("\n| loop | step, median ms | inline / this |\n|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1e3:.2f} | {base / statistics.median(ts):.3f} |")
    print(f"\ntraining thread's torch threads at the end: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
