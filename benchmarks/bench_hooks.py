"""What Lightning's hook calls cost a training step, with Lightning's default profiler and cnnpl's.

Lightning calls every callback's per-step hooks (``on_train_batch_start``, ``on_before_backward``,
``on_after_backward``, ``on_before_optimizer_step``, ``on_before_zero_grad``,
``on_train_batch_end``), overridden or not, each inside ``trainer.profiler.profile(name)``; so are
the LightningModule's, the data module's and the strategy's hooks. Two measurements:

1. **Calls a step**: a short fit of ``python -m cnnpl``'s defaults on generated data (``data=shapes``)
   with a profiler that counts its ``profile`` calls: how many a training step makes, and how many
   of them are callbacks'.
2. **Time a call**: one per-step callback hook dispatched over the default callbacks (the 16 a run
   has: the config's, the three guards, ModelSummary, ModelCheckpoint), timed with ``timeit``
   (best of ``--repeats``) under Lightning's ``PassThroughProfiler`` and cnnpl's
   :class:`cnnpl.profiler.NullProfiler`, interleaved.

    python benchmarks/bench_hooks.py
    python benchmarks/bench_hooks.py --number 5000 --repeats 9

No CIFAR-10 needed; seconds to run. Not a test.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import tempfile
import timeit
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer.call import _call_callback_hooks

import cnnpl
from cnnpl.profiler import NullProfiler
from cnnpl.train import build_callbacks

STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_zero_grad")  # three of the six, no batch needed


class CountingProfiler(NullProfiler):
    """Counts ``profile`` calls by action name (a class attribute: Hydra builds the instance)."""

    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def profile(self, action_name: str) -> contextlib.nullcontext[None]:
        CountingProfiler.calls[action_name] += 1
        return super().profile(action_name)


def calls_per_step(out: str) -> tuple[float, float, int]:
    """``profile`` calls a training step, the callbacks' share of them, and the run's callbacks."""
    CountingProfiler.calls.clear()
    overrides = [
        "data=shapes",
        "data.num_train=640",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        "test=false",
        "+trainer.limit_val_batches=0",  # training steps only (no sanity check either)
        "callbacks.progress_bar.refresh_rate=0",
        f"trainer.profiler={{_target_:{CountingProfiler.__module__}.CountingProfiler}}",
    ]
    cnnpl.train(cnnpl.compose(overrides, output_dir=out))
    calls = CountingProfiler.calls
    steps = calls["run_training_batch"]
    train_only = {name: n for name, n in calls.items() if n >= steps}  # the actions of every step
    callbacks = {
        name for name in train_only if name.startswith("[Callback]") and name.endswith(".on_train_batch_start")
    }
    return (
        sum(train_only.values()) / steps,
        sum(n for name, n in train_only.items() if name.startswith("[Callback]")) / steps,
        len(callbacks),
    )


def default_trainer(out: str) -> L.Trainer:
    """A Trainer with the callbacks ``python -m cnnpl`` runs by default (no fit)."""
    callbacks = build_callbacks(cnnpl.compose(["data=shapes"], output_dir=out))
    return L.Trainer(callbacks=callbacks, logger=False, max_epochs=1, accelerator="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=2000, help="hook calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per profiler and hook (best is kept)")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as out:
        per_step, callback_calls, n_callbacks = calls_per_step(out)
        trainer = default_trainer(out)
    print(f"torch {torch.__version__}, lightning {L.__version__}")
    print(
        f"\nprofile() calls a training step: {per_step:.1f}, of them callbacks' {callback_calls:.0f} "
        f"({n_callbacks} callbacks x {callback_calls / n_callbacks:.0f} hooks)"
    )

    profilers = {"PassThroughProfiler (Lightning's)": PassThroughProfiler(), "NullProfiler (cnnpl's)": NullProfiler()}
    best: dict[tuple[str, str], float] = {}
    loss = torch.tensor(1.0)
    args_of: dict[str, tuple[Any, ...]] = {"on_before_backward": (loss,), "on_before_zero_grad": (None,)}
    for _ in range(args.repeats):  # interleaved: every profiler and hook once per round
        for hook in STEP_HOOKS:
            for name, profiler in profilers.items():
                trainer.profiler = profiler
                hook_args = args_of.get(hook, ())
                call = functools.partial(_call_callback_hooks, trainer, hook, *hook_args)
                seconds = timeit.timeit(call, number=args.number)
                key = (name, hook)
                best[key] = min(best.get(key, float("inf")), seconds / args.number)

    n = len(trainer.callbacks)
    print(f"\none hook over the {n} default callbacks, best of {args.repeats} x {args.number} calls:")
    print("| hook | " + " | ".join(f"{name}, us" for name in profilers) + " | saved a callback, us |")
    print("|---|" + "---:|" * (len(profilers) + 1))
    for hook in STEP_HOOKS:
        lightning_us, null_us = (best[(name, hook)] * 1e6 for name in profilers)
        print(f"| {hook} | {lightning_us:.1f} | {null_us:.1f} | {(lightning_us - null_us) / n:.2f} |")


if __name__ == "__main__":
    main()
