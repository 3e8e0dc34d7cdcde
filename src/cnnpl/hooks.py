"""Fewer hook calls a step: Lightning passes over a callback's hook that is not callable.

On every training step Lightning calls six hooks of every callback (:data:`BATCH_HOOKS`: the batch's
start and end, before and after backward, before the optimizer step and before zero_grad), and two
on every validation, test or prediction batch, whether the callback's class overrides them or
inherits ``Callback``'s empty method. Each call costs about 0.6 us of dispatch (the profiler's
context, the f-string naming it, the call): 96 calls a training step for the 16 callbacks of a run
of ``python -m cnnpl`` (the config's, the guards, Lightning's ModelSummary), of which 5 do something.
Lightning's ``_call_callback_hooks`` calls a callback's hook only if ``getattr(callback, hook)`` is
callable, so :func:`skip_unused_batch_hooks` sets the unused ones to ``None`` on the instance. ``cnnpl.train``
does so for every callback of its Trainer.
"""

from __future__ import annotations

import inspect
from typing import TypeVar

from lightning.pytorch.callbacks import Callback

from cnnpl.errors import CnnplError

BATCH_HOOKS = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)

C = TypeVar("C", bound=Callback)


def skip_unused_batch_hooks(callback: C) -> C:
    """Set to ``None`` each of ``callback``'s :data:`BATCH_HOOKS` that is still ``Callback``'s empty method.

    A hook its class (or the instance itself) overrides is kept. Returns ``callback``.
    """
    for hook in BATCH_HOOKS:
        if _inherited(getattr(callback, hook, None), hook):
            setattr(callback, hook, None)
    return callback


# every hook Lightning calls on a callback: the on_* events, setup / teardown, and its state's two
HOOKS = tuple(
    name
    for name in dir(Callback)
    if (name.startswith("on_") or name in ("setup", "teardown", "state_dict", "load_state_dict"))
    and inspect.isfunction(getattr(Callback, name))
)


def check_hook_signatures(callback: Callback, key: str) -> None:
    """Refuse a hook of ``callback`` (``callbacks.<key>``) that cannot take the arguments Lightning passes it
    (``def on_train_batch_end(self, trainer)``: a TypeError with a traceback once training had started,
    helper-136). Lightning passes them in order, ``stage`` by name: a hook is refused only where neither form
    binds; ``*args``, ``**kwargs`` and defaults take what they take."""
    for hook in HOOKS:
        method = getattr(callback, hook, None)
        if not callable(method) or _inherited(method, hook):
            continue
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):  # a builtin or a C method: nothing to read
            continue
        passed = [
            name
            for name, param in list(inspect.signature(getattr(Callback, hook)).parameters.items())[1:]
            if param.default is param.empty
        ]
        for args, kwargs in (([None] * len(passed), {}), ([], dict.fromkeys(passed))):
            try:
                signature.bind(*args, **kwargs)
                break
            except TypeError:
                continue
        else:
            raise CnnplError(
                f"callbacks.{key}: {type(callback).__name__}.{hook}{signature} cannot take what Lightning passes it; "
                f"write def {hook}({', '.join(['self', *passed])})"
            )


def _inherited(method: object, hook: str) -> bool:
    """Whether ``method`` (a callback's ``hook``, bound) is still ``Callback``'s own empty one."""
    return getattr(method, "__func__", None) is getattr(Callback, hook)
