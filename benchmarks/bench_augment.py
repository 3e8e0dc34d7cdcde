"""Batched augmentation: cnnpl's crop, flip and cutout against the code they replaced.

    python benchmarks/bench_augment.py
    python benchmarks/bench_augment.py --batch-sizes 128 256 1024 --rounds 31
    python benchmarks/bench_augment.py --batch-sizes 8 --rounds 3        # a smoke run

For uint8 CIFAR-size batches ``(N, 3, 32, 32)`` of each ``--batch-sizes``, two implementations of
each step run side by side (``bench_pool.interleaved``, ``--rounds`` rounds of ``--calls`` calls in a
fresh random order each):

* ``crop`` (``data.crop_padding=4``, zeros: ``python -m cnnpl``'s default) and ``crop, reflect``
  (``crop_padding=2``, reflect: ``experiment=fast_cifar10``): ``before`` indexes every output pixel
  by image, channel, row and column (four broadcast index tensors; for reflect, the rows and columns
  mirrored arithmetically, with no padded copy), as ``cnnpl.data.augment.random_crop`` did until
  this benchmark; ``cnnpl`` pads once and indexes a window view (``unfold``) by image.
* ``flip`` (``data.flip=true``): ``before`` is ``torch.where(mask, x.flip(3), x)``; ``cnnpl``
  gathers each image's columns in its own order.
* ``cutout`` (``data.cutout=8``, off by default): ``before`` zeroes the square with ``masked_fill``
  and a mask built from four comparisons; ``cnnpl`` keeps rows and columns apart until one
  full-size mask and multiplies by it.
* ``training batch``: what ``on_after_batch_transfer`` does to a training batch with the default
  data config: crop, flip, normalise to float32.

Before timing, each pair runs from the same seed and must give identical tensors (the same random
draws, the same pixels), so runs and their seeds are unchanged. The table gives medians of a call and
the median per-round ratio cnnpl / before.

Not a test: it takes about a minute on two cores.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from bench_pool import interleaved, start_rounds

from cnnpl.data import augment as aug

MEAN = torch.tensor([125.3, 123.0, 113.9]).view(1, 3, 1, 1)  # CIFAR-10's, in uint8 units
STD = torch.tensor([63.0, 62.1, 66.7]).view(1, 3, 1, 1)


def crop_before(x: torch.Tensor, padding: int, mode: str = "zeros") -> torch.Tensor:
    """The random crop as cnnpl had it: every output pixel indexed by image, channel, row and column."""
    n, c, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n, 1))
    dx = torch.randint(0, 2 * padding + 1, (n, 1))
    rows = (dy + torch.arange(h)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w)).view(n, 1, 1, w)
    batch, chans = torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1)
    if mode == "reflect":
        return x[batch, chans, reflect(rows - padding, h), reflect(cols - padding, w)]
    return F.pad(x, (padding, padding, padding, padding))[batch, chans, rows, cols]


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def flip_before(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def cutout_before(x: torch.Tensor, size: int) -> torch.Tensor:
    n, _, h, w = x.shape
    cy, cx = torch.randint(0, h, (n, 1, 1)), torch.randint(0, w, (n, 1, 1))
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    y0, x0 = cy - size // 2, cx - size // 2
    inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
    return x.masked_fill(inside.unsqueeze(1), 0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x.float() - MEAN) / STD


def pairs(x: torch.Tensor) -> dict[str, dict[str, Callable[[], torch.Tensor]]]:
    """Each step's two implementations, on the batch ``x``."""
    return {
        "crop": {"before": lambda: crop_before(x, 4), "cnnpl": lambda: aug.random_crop(x, 4)},
        "crop, reflect": {
            "before": lambda: crop_before(x, 2, "reflect"),
            "cnnpl": lambda: aug.random_crop(x, 2, "reflect"),
        },
        "flip": {"before": lambda: flip_before(x), "cnnpl": lambda: aug.random_flip(x)},
        "cutout": {"before": lambda: cutout_before(x, 8), "cnnpl": lambda: aug.cutout(x, 8)},
        "training batch": {
            "before": lambda: normalize(flip_before(crop_before(x, 4))),
            "cnnpl": lambda: normalize(aug.random_flip(aug.random_crop(x, 4))),
        },
    }


def same_draws(before: Callable[[], torch.Tensor], cnnpl: Callable[[], torch.Tensor]) -> bool:
    """Whether both give the same tensor from the same seeds (several, so every shift comes up)."""
    for seed in range(5):
        torch.manual_seed(seed)
        expected = before()
        torch.manual_seed(seed)
        if not torch.equal(cnnpl(), expected):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=20, help="calls timed together in a round")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    args = parser.parse_args()
    start_rounds(args.seed, args.rounds, f"{args.calls} calls")
    print("| step | batch | before, ms | cnnpl, ms | cnnpl / before (median per round) | identical |")
    print("|---|---:|---:|---:|---:|---|")
    for batch in args.batch_sizes:
        x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        for step, pair in pairs(x).items():
            identical = same_draws(pair["before"], pair["cnnpl"])
            calls = {name: lambda fn=fn: [fn() for _ in range(args.calls)] for name, fn in pair.items()}
            rounds = interleaved(calls, args.rounds)
            ms = {name: 1e3 * statistics.median(t) / args.calls for name, t in rounds.items()}
            ratio = statistics.median(c / b for c, b in zip(rounds["cnnpl"], rounds["before"], strict=True))
            print(
                f"| {step} | {batch} | {ms['before']:.3f} | {ms['cnnpl']:.3f} | {ratio:.2f} | {identical} |", flush=True
            )


if __name__ == "__main__":
    main()
