"""Forward + backward time of every registered conv variant relative to ``conv2d`` at the same shape.

    python benchmarks/bench_conv.py                      # batch 128, 32x32, 64 -> 64 channels, 3x3, "same"
    python benchmarks/bench_conv.py --repeats 7 --reduced-batch 32 --slow locally_connected

Contenders are timed interleaved (one step of each per round, in a shuffled order), so load from
other processes hits them alike; the table gives the median over rounds and its ratio to ``conv2d``
at the same batch. Variants named in ``--slow`` run at ``--reduced-batch`` and are compared with a
``conv2d`` timed at that batch too (printed as its own row). Parameter counts are per layer.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

import cnnpl
from cnnpl.config import config_dir, layer_factory


def build(name: str, channels: int, kernel_size: int, size: int) -> torch.nn.Module:
    """The layer ``conv=<name>`` gives (its YAML, so pointwise is 1x1), weights created for ``size``."""
    from omegaconf import OmegaConf

    from cnnpl.config import generated_config

    path = config_dir() / "conv" / f"{name}.yaml"
    node = OmegaConf.load(path) if path.is_file() else generated_config("conv", name)
    layer = layer_factory("conv", node)(
        in_channels=channels, out_channels=channels, kernel_size=kernel_size, stride=1, padding="same"
    )
    if hasattr(layer, "output_shape"):
        layer.output_shape((channels, size, size))  # materialises lazy layers (locally_connected)
    return layer


def step(layer: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds for one forward and backward pass."""
    layer.zero_grad(set_to_none=True)
    x.grad = None
    start = time.perf_counter()
    layer(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--slow", nargs="*", default=["locally_connected"], help="variants run at --reduced-batch")
    parser.add_argument("--reduced-batch", type=int, default=32)
    parser.add_argument("--only", nargs="*", default=None, help="variants to time (default: all registered)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = args.only or cnnpl.list_components("conv")
    contenders: list[tuple[str, int]] = [(n, args.reduced_batch if n in args.slow else args.batch) for n in names]
    for batch in sorted({b for _, b in contenders}):
        if ("conv2d", batch) not in contenders:
            contenders.append(("conv2d", batch))
    layers = {(n, b): build(n, args.channels, args.kernel_size, args.size) for n, b in contenders}
    inputs = {
        b: torch.randn(b, args.channels, args.size, args.size, requires_grad=True) for b in {b for _, b in contenders}
    }
    times: dict[tuple[str, int], list[float]] = {c: [] for c in contenders}
    order = list(contenders)
    for round_ in range(args.repeats + 1):
        random.Random(round_).shuffle(order)
        for c in order:
            t = step(layers[c], inputs[c[1]])
            if round_ > 0:  # round 0 warms up allocators and kernels
                times[c].append(t)

    print(
        f"fwd+bwd, {args.channels}->{args.channels} channels, {args.kernel_size}x{args.kernel_size}, "
        f"{args.size}x{args.size}, padding same, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} interleaved rounds"
    )
    print(f"{'variant':<22} {'batch':>5} {'params':>12} {'median ms':>10} {'min ms':>8} {'vs conv2d':>9}")
    for name, batch in sorted(contenders, key=lambda c: (c[1] != args.batch, c[0] != "conv2d", c[0])):
        med = statistics.median(times[(name, batch)])
        ref = statistics.median(times[("conv2d", batch)])
        params = sum(p.numel() for p in layers[(name, batch)].parameters())
        print(
            f"{name:<22} {batch:>5} {params:>12,} {1e3 * med:>10.1f} {1e3 * min(times[(name, batch)]):>8.1f} "
            f"{med / ref:>8.2f}x"
        )


if __name__ == "__main__":
    main()
