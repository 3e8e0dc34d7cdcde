"""The fast recipe's training step, piece by piece: SGD or Muon, the whitening bias trained or frozen.

    python benchmarks/bench_fast_step.py
    python benchmarks/bench_fast_step.py --rounds 9 --steps 4
    python benchmarks/bench_fast_step.py --batch 32 --rounds 1 --steps 1   # a smoke run
    python benchmarks/bench_fast_step.py --profile     # where an SGD step's time goes, by operator and shape (*)
    python benchmarks/bench_fast_step.py --sizes 32 28 24 20   # the step at smaller inputs (data.train_sizes)
    python benchmarks/bench_fast_step.py --widths 32,128,128 48,160,160   # the step of other model.widths
    python benchmarks/bench_fast_step.py --frozen features.group1   # the step with more of the network frozen
    python benchmarks/bench_fast_step.py --compile    # eager, compiled, and norm + act pairs compiled

(*) The profiler's own cost shows as ``aten::fill_`` inside the pools' backward (16-22% of a profiled
step; the three pools' whole backward is about 3% of an unprofiled one: docs/benchmarks.md, twentieth round).

``experiment=fast_cifar10``'s network (``fast_net`` 32/128/128, channels_last, batch ``--batch``) on a
random batch, in one process with ``keep_freed_memory`` on, as ``python -m cnnpl`` runs it. Each
training step is zero_grad, forward, cross-entropy, backward and the optimizer's step. Contenders:

* SGD: every parameter on Nesterov SGD (the recipe before the fifth round);
* Muon, whitening bias trained: the recipe's first 3 epochs (``callbacks.freeze_whitening.epochs``);
* Muon, bias frozen by dropping its gradient: what ``FreezeAfter`` did for the later epochs before,
  and still does under DDP (the backward pass computes the gradient, the optimizer never sees it);
* Muon, bias frozen with ``requires_grad`` off: what it does now on a single device, so the backward
  pass stops at the first convolution's filters.

Every round runs each contender ``--steps`` steps (after one warm-up step) in a fresh random order;
the table gives the median step time over rounds, its ratio to the first Muon row's and the median
of the per-round ratios (steadier on a machine whose speed wanders). The
optimizer's step alone (SGD against Muon, with gradients in place) is timed the same way.

``--sizes`` instead times the recipe's step from epoch 4 on (Muon, bias frozen with ``requires_grad``
off) on square inputs of each side given, as ratios to the first side's: what a step costs in a
smaller epoch under progressive resizing (``data.train_sizes``; in the first 3 epochs the bias still
trains, which costs a little more at every size).

``--widths`` instead times that same step (32 x 32) for ``fast_net`` at each list of widths given
(comma-separated, one network each), as ratios to the first list's: what an epoch of a wider or
narrower recipe costs (``model.widths``).

``--frozen`` instead times that same step with more of the network frozen (``requires_grad`` off, as
``FreezeAfter`` does): each argument is a comma-separated list of ``fast_net`` parameter or module
names (``features.group1``, ``features.group2.conv1``), one contender each, as ratios to the recipe's
step with only the whitening bias frozen: what the recipe's epochs cost once ``callbacks.freeze_group1``
has frozen its first conv group.

``--compile`` instead times that same step eager, with the whole network under ``torch.compile``
(``system.compile=true``), and with only each batch norm and the activation after it compiled (six
small regions Inductor can fuse, the convolutions and pools left to oneDNN), as ratios to eager. The
first (compiling) step is a warm-up, outside the table.

``--profile`` instead profiles 3 SGD training steps (``torch.profiler``, CPU time by operator and
input shape) and times a 2048 x 2048 matmul, the rate the convolutions can be held against.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

import cnnpl
from cnnpl.environment import keep_freed_memory
from cnnpl.optim import Muon
from cnnpl.system import to_memory_format

WIDTHS = [32, 128, 128]  # experiment=fast_cifar10's CPU size
SGD_KW = {"lr": 0.05, "momentum": 0.85, "nesterov": True, "weight_decay": 5e-4}


def profile(step: Callable[[], None], batch: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    step()
    unprofiled = []
    for _ in range(3):
        start = time.perf_counter()
        step()
        unprofiled.append(time.perf_counter() - start)
    with profiler(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            step()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    matmul = 2 * 2048**3 * 5 / (time.perf_counter() - start)
    step_ms = statistics.median(unprofiled) * 1e3
    print(f"fast_net {WIDTHS}, batch {batch}, SGD, 3 steps profiled; unprofiled step {step_ms:.0f} ms")
    print(f"2048 x 2048 fp32 matmul: {matmul / 1e9:.0f} GFLOP/s\n")
    table = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=32, max_shapes_column_width=80
    )
    print(table)


def build_net(widths: list[int]) -> torch.nn.Module:
    net = cnnpl.build("model", "fast_net", num_classes=10, in_channels=3, input_size=(32, 32), widths=widths)
    to_memory_format(net.train(), torch.channels_last)
    return net


def compile_norm_act(net: torch.nn.Module) -> torch.nn.Module:
    """Each conv group's batch norm and the activation after it as one compiled region (in place)."""
    for group in (m for name, m in net.features.named_children() if name.startswith("group")):
        for i in (1, 2):
            norm, act = getattr(group, f"norm{i}"), getattr(group, f"act{i}")
            setattr(group, f"norm{i}", torch.compile(torch.nn.Sequential(norm, act)))
            setattr(group, f"act{i}", torch.nn.Identity())
    return net


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths are comma-separated integers like 32,128,128, got {text!r}") from None
    if min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per contender and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile SGD steps instead of timing")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="time the Muon, bias-frozen step at these input sides instead"
    )
    parser.add_argument(
        "--widths",
        type=_widths,
        nargs="+",
        help="time the Muon, bias-frozen step of fast_net at these comma-separated widths instead",
    )
    parser.add_argument(
        "--frozen",
        type=lambda text: text.split(","),
        nargs="+",
        help="time the Muon, bias-frozen step with these comma-separated parameters or modules frozen too",
    )
    parser.add_argument(
        "--compile", action="store_true", help="time the Muon, bias-frozen step eager and compiled two ways instead"
    )
    args = parser.parse_args()
    if sum(map(bool, (args.profile, args.sizes, args.widths, args.frozen, args.compile))) > 1:
        parser.error("--profile, --sizes, --widths, --frozen and --compile each replace the contenders: give one")

    keep_freed_memory()
    torch.manual_seed(0)
    net = build_net(WIDTHS)
    y = torch.randint(0, 10, (args.batch,))
    trainable = [p for p in net.parameters() if p.requires_grad]
    trainable_ids = {id(p) for p in trainable}
    sgd = torch.optim.SGD(trainable, **SGD_KW)
    muon = Muon(trainable, filter_lr=0.02, **SGD_KW)

    def training_step(
        optimizer: torch.optim.Optimizer,
        bias_grad: bool,
        drop_bias_grad: bool,
        side: int = 32,
        net: torch.nn.Module = net,
        frozen: Sequence[torch.nn.Parameter] = (),
    ) -> Callable[[], None]:
        x = torch.randn(args.batch, 3, side, side).contiguous(memory_format=torch.channels_last)
        bias = net.whiten.bias
        flags = [(p, all(p is not q for q in frozen)) for p in net.parameters() if id(p) in trainable_ids]

        def run() -> None:
            for parameter, flag in flags:
                parameter.requires_grad_(flag)
            bias.requires_grad_(bias_grad)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            if drop_bias_grad:
                bias.grad = None
            optimizer.step()

        return run

    steps = {
        "SGD, whitening bias trained": training_step(sgd, True, False),
        "Muon, whitening bias trained": training_step(muon, True, False),
        "Muon, bias frozen by dropping its gradient": training_step(muon, True, True),
        "Muon, bias frozen with requires_grad off": training_step(muon, False, False),
    }
    if args.profile:
        profile(steps["SGD, whitening bias trained"], args.batch)
        return
    reference_name = "Muon, whitening bias trained"
    if args.sizes:
        steps = {f"{side} x {side}": training_step(muon, False, False, side) for side in args.sizes}
    elif args.widths:
        steps = {}
        for widths in args.widths:
            other = build_net(widths)
            params = [p for p in other.parameters() if p.requires_grad]
            optimizer = Muon(params, filter_lr=0.02, **SGD_KW)
            steps["/".join(map(str, widths))] = training_step(optimizer, False, False, net=other)
    elif args.frozen:
        named = dict(net.named_parameters())
        steps = {"whitening bias (the recipe from epoch 4)": training_step(muon, False, False)}
        for names in args.frozen:
            frozen = [p for n, p in named.items() if any(n == q or n.startswith(q + ".") for q in names)]
            unknown = [q for q in names if not any(n == q or n.startswith(q + ".") for n in named)]
            if unknown:
                parser.error(f"--frozen: {', '.join(unknown)} names nothing in fast_net; try features.group1")
            steps["+ " + ", ".join(names)] = training_step(muon, False, False, frozen=frozen)
    elif args.compile:
        steps = {"eager": training_step(muon, False, False)}
        for name, wrap in (("compiled network", torch.compile), ("norm + act compiled", compile_norm_act)):
            torch.manual_seed(0)
            other = build_net(WIDTHS)
            optimizer = Muon([p for p in other.parameters() if p.requires_grad], filter_lr=0.02, **SGD_KW)
            steps[name] = training_step(optimizer, False, False, net=wrap(other))
    if args.sizes or args.widths or args.frozen or args.compile:
        reference_name = next(iter(steps))
        contenders = steps
    else:
        steps[
            "SGD, whitening bias trained"
        ]()  # a whole step (a warm-up too): gradients in place for the optimizer-only rows
        optimizer_steps = {"SGD step alone": sgd.step, "Muon step alone": muon.step}
        grads = [p.grad.clone() for p in trainable]

        def optimizer_only(step: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                for p, g in zip(trainable, grads, strict=True):
                    p.grad = g
                step()

            return run

        contenders = {**steps, **{name: optimizer_only(step) for name, step in optimizer_steps.items()}}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        order = list(contenders)
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                contenders[name]()
            times[name].append((time.perf_counter() - start) / args.steps)

    reference_runs = times[reference_name]
    reference = statistics.median(reference_runs)
    network = "widths as named" if args.widths else WIDTHS
    print(f"fast_net {network}, batch {args.batch}, channels_last, {args.steps} steps x {args.rounds} rounds")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}\n")
    print(f"| contender | median ms / step | x {reference_name} | median per-round ratio | per round (ms) |")
    print("|---|---:|---:|---:|---|")
    for name, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v * 1e3:.0f}" if v > 0.05 else f"{v * 1e3:.1f}" for v in values)
        ratio = per_round = ""
        if name in steps:
            ratio = f"{median / reference:.3f}"
            per_round = f"{statistics.median(v / r for v, r in zip(values, reference_runs, strict=True)):.3f}"
        print(f"| {name} | {median * 1e3:.1f} | {ratio} | {per_round} | {runs} |")


if __name__ == "__main__":
    main()
