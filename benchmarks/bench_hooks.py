"""What Lightning's hook calls cost a training step, and what cnnpl saves of it.

Lightning calls every callback's per-step hooks (``on_train_batch_start``, ``on_before_backward``,
``on_after_backward``, ``on_before_optimizer_step``, ``on_before_zero_grad``,
``on_train_batch_end``), overridden or not, each inside ``trainer.profiler.profile(name)``, and sets
``pl_module._current_fx_name`` around each; so it does for the LightningModule's, the data module's
and the strategy's hooks. cnnpl saves on three things, measured here side by side:

1. **Calls a step**: a short fit of ``python -m cnnpl``'s defaults on generated data (``data=shapes``)
   with a profiler that counts its ``profile`` calls and a module that counts its
   ``_current_fx_name`` assignments, with every callback's batch hooks kept (Lightning's way) and with
   the unused ones skipped (:func:`cnnpl.hooks.skip_unused_batch_hooks`, cnnpl's way).
2. **Time a call** (``timeit``, best of ``--repeats``, interleaved): one per-step callback hook
   dispatched over the run's callbacks (the config's, the three guards, ModelSummary) under
   Lightning's ``PassThroughProfiler`` and cnnpl's :class:`cnnpl.profiler.NullProfiler`, with the
   batch hooks kept and skipped; setting ``_current_fx_name`` through ``nn.Module.__setattr__`` and
   through :class:`cnnpl.system.ImageClassifier`'s; ``torch.cuda.is_available()`` (which Adam and
   AdamW call every step) with Lightning's ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` and without it
   (:func:`cnnpl.environment.skip_missing_nvml`, where NVML does not load).
3. **Saved a step**: the calls a step times the time saved a call.

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
import os
import statistics
import tempfile
import timeit
from collections.abc import Callable
from typing import Any, ClassVar
from unittest import mock

import lightning as L
import torch
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.trainer.call import _call_callback_hooks

import cnnpl
from cnnpl import hooks
from cnnpl.environment import skip_missing_nvml
from cnnpl.profiler import NullProfiler
from cnnpl.system import ImageClassifier
from cnnpl.train import build_callbacks

STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_zero_grad")  # three of the six, no batch needed
NVML = "PYTORCH_NVML_BASED_CUDA_CHECK"


class CountingProfiler(NullProfiler):
    """Counts ``profile`` calls by action name (a class attribute: Hydra builds the instance)."""

    calls: ClassVar[collections.Counter[str]] = collections.Counter()

    def profile(self, action_name: str) -> contextlib.nullcontext[None]:
        CountingProfiler.calls[action_name] += 1
        return super().profile(action_name)


def counts(out: str, steps: int, skip: bool) -> collections.Counter[str]:
    """``profile`` calls by action, and ``_current_fx_name`` assignments (``"fx_name"``), of a fit of ``steps``."""
    CountingProfiler.calls.clear()
    fx_names = 0
    plain_setattr = ImageClassifier.__setattr__

    def counting_setattr(module: ImageClassifier, name: str, value: Any) -> None:
        nonlocal fx_names
        fx_names += name == "_current_fx_name"
        plain_setattr(module, name, value)

    overrides = [
        "data=shapes",
        "data.num_train=1280",
        "data.batch_size=32",
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={steps}",
        "test=false",
        "+trainer.limit_val_batches=0",  # training steps only (no sanity check either)
        "callbacks.progress_bar.refresh_rate=0",
        f"trainer.profiler={{_target_:{CountingProfiler.__module__}.CountingProfiler}}",
    ]
    keep_all = mock.patch.object(hooks, "skip_unused_batch_hooks", lambda callback: callback)
    with (
        mock.patch.object(ImageClassifier, "__setattr__", counting_setattr),
        contextlib.nullcontext() if skip else keep_all,
    ):
        cnnpl.train(cnnpl.compose(overrides, output_dir=os.path.join(out, f"{steps}-{skip}")))
    return CountingProfiler.calls + collections.Counter(fx_name=fx_names)


def per_step(out: str, skip: bool) -> tuple[float, float, float]:
    """``profile`` calls a training step, the callbacks' share of them, ``_current_fx_name`` assignments a step.

    The difference between fits of 30 and 10 steps, over 20: the fit's start and end cancel out.
    """
    short, long = counts(out, 10, skip), counts(out, 30, skip)
    extra = {name: (long[name] - short[name]) / 20 for name in long}
    profile_calls = sum(n for name, n in extra.items() if name != "fx_name")
    return profile_calls, sum(n for name, n in extra.items() if name.startswith("[Callback]")), extra["fx_name"]


def default_trainer(out: str, skip: bool) -> L.Trainer:
    """A Trainer with the callbacks ``python -m cnnpl`` runs by default (no fit), batch hooks kept or skipped."""
    callbacks = build_callbacks(cnnpl.compose(["data=shapes"], output_dir=out))
    trainer = L.Trainer(callbacks=callbacks, logger=False, max_epochs=1, accelerator="cpu")
    if skip:
        for callback in trainer.callbacks:
            hooks.skip_unused_batch_hooks(callback)
    return trainer


def best_us(timings: dict[str, Callable[[], Any]], number: int, repeats: int) -> dict[str, float]:
    """Best time of a call of each of ``timings``, in us, the contenders interleaved in every round."""
    best = dict.fromkeys(timings, float("inf"))
    for _ in range(repeats):
        for name, call in timings.items():
            best[name] = min(best[name], timeit.timeit(call, number=number) / number * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=2000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7, help="timings per contender (best is kept)")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as out:
        kept_calls, kept_callback_calls, fx_names = per_step(out, skip=False)
        skipped_calls, skipped_callback_calls, skipped_fx_names = per_step(out, skip=True)
        trainers = {"kept": default_trainer(out, skip=False), "skipped": default_trainer(out, skip=True)}
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} threads")
    print("\n| a training step | batch hooks kept (Lightning) | unused batch hooks skipped (cnnpl) |")
    print("|---|---:|---:|")
    print(f"| profile() calls | {kept_calls:.0f} | {skipped_calls:.0f} |")
    print(f"| of them callbacks' | {kept_callback_calls:.0f} | {skipped_callback_calls:.0f} |")
    print(f"| _current_fx_name assignments | {fx_names:.0f} | {skipped_fx_names:.0f} |")

    # 1. one hook over the run's callbacks: Lightning's profiler or cnnpl's, batch hooks kept or skipped
    n = len(trainers["kept"].callbacks)
    hook_args: dict[str, tuple[Any, ...]] = {"on_before_backward": (torch.tensor(1.0),), "on_before_zero_grad": (None,)}
    profilers = {"PassThroughProfiler": PassThroughProfiler(), "NullProfiler": NullProfiler()}
    dispatch: dict[str, Callable[[], Any]] = {}
    for hook in STEP_HOOKS:
        for skip, trainer in trainers.items():
            for name, profiler in profilers.items():

                def call(trainer: L.Trainer = trainer, profiler: Any = profiler, hook: str = hook) -> None:
                    trainer.profiler = profiler
                    _call_callback_hooks(trainer, hook, *hook_args.get(hook, ()))

                dispatch[f"{hook}, {name}, {skip}"] = call
    hook_us = best_us(dispatch, args.number, args.repeats)
    print(f"\none hook over the {n} callbacks, us (best of {args.repeats} x {args.number} calls):")
    print("| hook | Lightning's profiler, all kept | NullProfiler, all kept | NullProfiler, unused skipped |")
    print("|---|---:|---:|---:|")
    for hook in STEP_HOOKS:
        row = [
            hook_us[f"{hook}, {p}, {k}"]
            for p, k in [("PassThroughProfiler", "kept"), ("NullProfiler", "kept"), ("NullProfiler", "skipped")]
        ]
        print(f"| {hook} | " + " | ".join(f"{us:.1f}" for us in row) + " |")

    # 2. the module's attribute, and the CUDA check
    system = ImageClassifier(cnnpl.build("model", "simple_cnn", num_classes=10), 10)
    module_setattr = functools.partial(torch.nn.Module.__setattr__, system, "_current_fx_name", "training_step")
    cnnpl_setattr = functools.partial(setattr, system, "_current_fx_name", "training_step")
    setattr_us = best_us({"nn.Module": module_setattr, "cnnpl": cnnpl_setattr}, args.number, args.repeats)
    os.environ[NVML] = "1"  # as importing Lightning left it (the fits above ran cnnpl.train, which drops it)
    with_nvml_us = best_us({"check": torch.cuda.is_available}, args.number // 10, args.repeats)["check"]
    dropped = skip_missing_nvml()
    without_us = best_us({"check": torch.cuda.is_available}, args.number // 10, args.repeats)["check"]
    print("\n| one call, us | Lightning's way | cnnpl's way |")
    print("|---|---:|---:|")
    print(f"| set _current_fx_name | {setattr_us['nn.Module']:.2f} | {setattr_us['cnnpl']:.2f} |")
    note = "" if dropped else " (NVML loads here: the variable stays)"
    print(f"| torch.cuda.is_available(){note} | {with_nvml_us:.2f} | {without_us:.2f} |")

    # 3. per step: calls a step x time saved a call
    profile_saved = statistics.median(
        (hook_us[f"{h}, PassThroughProfiler, kept"] - hook_us[f"{h}, NullProfiler, kept"]) / n for h in STEP_HOOKS
    )
    skipped = kept_callback_calls - skipped_callback_calls
    skip_saved = statistics.median(  # each hook here is skipped by every callback but FiniteLossGuard's backward one
        (hook_us[f"{h}, NullProfiler, kept"] - hook_us[f"{h}, NullProfiler, skipped"])
        / (n - len([cb for cb in trainers["skipped"].callbacks if getattr(cb, h) is not None]))
        for h in STEP_HOOKS
    )
    saved = {
        "NullProfiler (profile() calls left x saved a call)": skipped_calls * profile_saved,
        "unused batch hooks skipped (calls skipped x saved a call)": skipped * skip_saved,
        "_current_fx_name through object.__setattr__": fx_names * (setattr_us["nn.Module"] - setattr_us["cnnpl"]),
        "CUDA check without NVML (one a step, Adam/AdamW)": (with_nvml_us - without_us) if dropped else 0.0,
    }
    print("\n| saved a training step | us |")
    print("|---|---:|")
    for name, us in saved.items():
        print(f"| {name} | {us:.1f} |")
    print(f"| total | {sum(saved.values()):.1f} |")


if __name__ == "__main__":
    main()
