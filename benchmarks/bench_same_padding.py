"""``padding="same"``: the convolution padding itself against a zero-padded copy of its input.

    python benchmarks/bench_same_padding.py
    python benchmarks/bench_same_padding.py --models fast_net --batch 256 --rounds 7

``conv2d``'s ``padding="same"`` used to zero-pad its input with ``F.pad`` and convolve without
padding; it now passes an even padding to the convolution itself (oneDNN pads on the fly, with no
padded copy of the input and no backward through the copy) and keeps ``F.pad`` only for the uneven
"same" of an even kernel or a stride. This script times one training step (forward, cross-entropy,
backward, SGD step) of each model both ways, in channels_last, interleaved over ``--rounds`` rounds
(the order alternating), and prints the median step time, the ratio new / old, and the largest
difference between the two ways' logits (zero: both pad with zeros). ``xception`` pads with integers,
so both ways run the same code for it: it is a control, showing the machine's noise. ``vgg16`` was a
control too when this was first measured; it pads "same" since commit 0012c7b, with an even padding, so
it now takes the new way.

``--rule`` asks a second question: what the run-time rule itself costs. A "same" convolution works out its
padding at each forward (``Conv2d._pads``, a few lines of Python), where an integer padding is fixed when the
layer is built. For each model with "same" convolutions (``vgg16`` pads "same" since commit 0012c7b; ``fast_net``
always did), one training step is timed with the rule and with every "same" convolution switched to the
integer padding the rule gives at its input size: the same layers, the same weights, the same convolution
calls, so only the Python of the rule differs. The step times carry the machine's noise; the rule's
Python is also timed alone (``_same_pad`` for every "same" convolution, 1000 times over), which is the
precise number, and set against a step.

    python benchmarks/bench_same_padding.py --rule --models vgg16 fast_net --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import cnnpl
from cnnpl.layers.conv import Conv2d


def padded_copy(self: Conv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The old way: a zero-padded copy of ``x``, then a convolution without padding."""
    if self.padding_rule == "same":
        x = F.pad(x, self._same_pad(x.shape[-2], x.shape[-1]))
    return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


WAYS: dict[str, Callable[..., torch.Tensor]] = {"padded copy (old)": padded_copy, "conv pads (new)": Conv2d._conv}


def _training(model: str, widths: list[int], batch: int) -> tuple[nn.Module, torch.Tensor, Callable[[], float]]:
    """``model`` at CIFAR size in channels_last, a batch of ``batch`` images, and a timed training step of it
    (forward, cross-entropy, backward, SGD step) that returns its seconds."""
    kwargs = {"widths": widths} if model == "fast_net" else {}
    torch.manual_seed(0)
    net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(32, 32), **kwargs)
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        return time.perf_counter() - start

    return net, x, step


def _interleaved(
    net: nn.Module, x: torch.Tensor, step: Callable[[], float], ways: dict[str, Callable[[], None]], rounds: int
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Each way's median step time over ``rounds`` (the order alternating, after a warm-up step each) and its
    logits on the same weights; a way is a function that switches the network to it."""
    logits = {}
    for name, use in ways.items():
        use()
        with torch.no_grad():
            logits[name] = net.eval()(x[:256])
    net.train()
    for use in ways.values():
        use()
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(rounds):
        for name in list(ways)[:: 1 if r % 2 else -1]:
            ways[name]()
            times[name].append(step())
    return {name: statistics.median(runs) for name, runs in times.items()}, logits


def _label(model: str, widths: list[int]) -> str:
    return f"fast_net {'/'.join(map(str, widths))}" if model == "fast_net" else model


def compare(model: str, widths: list[int], batch: int, rounds: int) -> str:
    """One Markdown row: both ways' median step time for ``model``, their ratio and logit difference."""
    net, x, step = _training(model, widths, batch)

    def use(way: Callable[..., torch.Tensor]) -> Callable[[], None]:
        def switch() -> None:
            Conv2d._conv = way  # type: ignore[method-assign]

        return switch

    medians, logits = _interleaved(net, x, step, {name: use(way) for name, way in WAYS.items()}, rounds)
    use(WAYS["conv pads (new)"])()
    old, new = (medians[name] for name in WAYS)
    diff = (logits["padded copy (old)"] - logits["conv pads (new)"]).abs().max().item()
    return f"| {_label(model, widths)} | {old:.3f} | {new:.3f} | {new / old:.2f} | {diff:.1e} |"


def compare_rule(model: str, widths: list[int], batch: int, rounds: int) -> str:
    """One Markdown row: ``model``'s step with "same" worked out at each forward, and fixed to integers."""
    net, x, step = _training(model, widths, batch)
    fixed: dict[Conv2d, tuple[int, int]] = {}
    conv_input: dict[Conv2d, tuple[int, int]] = {}

    def record(conv: Conv2d, args: tuple[torch.Tensor, ...]) -> None:
        conv_input[conv] = args[0].shape[-2], args[0].shape[-1]
        left, right, top, bottom = conv._same_pad(*conv_input[conv])
        if (left, top) == (right, bottom):  # an uneven "same" needs F.pad either way: left as it is
            fixed[conv] = (top, left)

    hooks = [m.register_forward_pre_hook(record) for m in net.modules() if getattr(m, "padding_rule", None) == "same"]
    with torch.no_grad():
        net.eval()(x[:2])
    for hook in hooks:
        hook.remove()
    if not fixed:
        return f"| {model} | 0 | | | | | | |"  # nothing to compare

    def use(rule: bool) -> None:
        for conv, padding in fixed.items():
            conv.padding_rule, conv.padding = ("same", (0, 0)) if rule else (padding, padding)

    ways = {"rule": lambda: use(True), "integers": lambda: use(False)}
    medians, logits = _interleaved(net, x, step, ways, rounds)
    use(True)
    sizes = [(conv, *conv_input[conv]) for conv in fixed]
    start = time.perf_counter()
    for _ in range(1000):
        for conv, h, w in sizes:
            conv._same_pad(h, w)
    rule_us = (time.perf_counter() - start) * 1e3  # 1000 steps' worth: microseconds a step
    rule_s, fixed_s = medians["rule"], medians["integers"]
    diff = (logits["rule"] - logits["integers"]).abs().max().item()
    return (
        f"| {_label(model, widths)} | {len(fixed)} | {fixed_s:.4f} | {rule_s:.4f} | {rule_s / fixed_s:.3f} | "
        f"{rule_us:.1f} | {rule_us / 1e6 / fixed_s:.1e} | {diff:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fast_net", "vgg16", "xception"])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 128], help="fast_net's widths")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rule", action="store_true", help='time "same" worked out at each forward against integers')
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, channels_last\n")
    if args.rule:
        print(
            '| model | "same" convs | integers, s / step | rule, s / step | rule / integers '
            "| the rule's Python, us / step | its share of a step | max abs logit diff |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for model in args.models:
            print(compare_rule(model, args.widths, args.batch, args.rounds), flush=True)
        return
    print("| model | old: padded copy, s / step | new: conv pads, s / step | new / old | max abs logit difference |")
    print("|---|---:|---:|---:|---:|")
    for model in args.models:
        print(compare(model, args.widths, args.batch, args.rounds), flush=True)


if __name__ == "__main__":
    main()
