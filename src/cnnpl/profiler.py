"""The Trainer's profiler when none is asked for: Lightning's ``PassThroughProfiler`` at no cost per call.

Lightning wraps every hook it calls (each callback's six hooks a training step, overridden or not,
the LightningModule's and the strategy's) in ``trainer.profiler.profile(name)``. Its default
profiler records nothing, but ``profile`` is a ``@contextmanager``: each call builds a generator
and a context manager, 113 times a step with cnnpl's default callbacks if all of their hooks are
called (16 callbacks times 6 hooks, and the module's, data module's and strategy's), 22 since
cnnpl skips the unused ones (:mod:`cnnpl.hooks`). :class:`NullProfiler` returns one shared
``nullcontext`` instead, which saves about 0.7 us a call. ``python -m cnnpl`` uses it unless
``trainer.profiler`` names a profiler (``simple``, ``advanced``, ``pytorch``), which then works as
in Lightning. The calls are counted and timed in docs/benchmarks.md (fourteenth and fifteenth rounds).
"""

from __future__ import annotations

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = contextlib.nullcontext()  # reusable and reentrant: entering it does nothing


class NullProfiler(PassThroughProfiler):
    """A ``PassThroughProfiler`` whose ``profile(name)`` is one shared no-op context."""

    def profile(self, action_name: str) -> contextlib.nullcontext[None]:  # type: ignore[override]
        return _NOTHING
