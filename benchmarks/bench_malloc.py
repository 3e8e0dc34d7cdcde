"""``keep_freed_memory``: CPU training steps with glibc's malloc keeping freed memory, or not.

    python benchmarks/bench_malloc.py
    python benchmarks/bench_malloc.py --models fast_net --batch 256 --rounds 7

:func:`cnnpl.environment.keep_freed_memory` (``keep_freed_memory: true``, the default) switches glibc's
``mmap`` for large blocks off and its heap trimming up to the maximum, so the activation and gradient
buffers a training step frees are reused by the next step instead of being returned to the kernel
and faulted in (and zeroed) again. The setting holds for the whole process, so each contender runs in
a fresh Python process: this script starts itself with ``--child`` once per model, setting and round
(the two settings alternating which goes first), and each child times ``--steps`` training steps
(forward, cross-entropy, backward, SGD step, channels_last) after warm-up steps and prints their
median. The table gives the median over rounds of each setting and the ratio of medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

WIDTHS = {"fast_net": [32, 128, 128]}  # the fast recipe's CPU size


def child(model: str, keep: bool, batch: int, steps: int) -> None:
    """Time ``steps`` training steps of ``model`` in this process; print the median seconds."""
    import torch
    import torch.nn.functional as F

    import cnnpl
    from cnnpl.environment import keep_freed_memory
    from cnnpl.system import to_memory_format

    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory did not take: not glibc")
    torch.manual_seed(0)
    kwargs = {"widths": WIDTHS[model]} if model in WIDTHS else {}
    net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(32, 32), **kwargs)
    to_memory_format(net, torch.channels_last)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 3):  # 3 warm-up steps
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    print(statistics.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fast_net", "simple_cnn"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per child")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "KEEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1", args.batch, args.steps)
        return

    def run(model: str, keep: bool) -> float:
        command = [sys.executable, __file__, "--child", model, str(int(keep)), "--batch", str(args.batch)]
        out = subprocess.run([*command, "--steps", str(args.steps)], check=True, capture_output=True, text=True)
        return float(out.stdout.split()[-1])

    print(f"batch {args.batch}, {args.steps} timed steps per process, {args.rounds} rounds")
    print("| model | glibc defaults ms/step | keep_freed_memory ms/step | speed-up |")
    print("|---|---:|---:|---:|")
    for model in args.models:
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.rounds):
            for keep in (False, True) if r % 2 == 0 else (True, False):
                times[keep].append(run(model, keep))
        default, kept = (statistics.median(times[k]) for k in (False, True))
        print(f"| {model} | {default * 1e3:.1f} | {kept * 1e3:.1f} | {default / kept:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
