"""Learning-rate schedules, stepped once per optimizer step.

A schedule is a callable ``schedule(optimizer, total_steps) -> LRScheduler``; the configs in
``conf/scheduler/`` make one with ``_partial_: true`` and the system fills in ``total_steps`` from
the trainer (``estimated_stepping_batches``).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from cnnpl.errors import CnnplError


def cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.0, final_lr_fraction: float = 0.0
) -> LRScheduler:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to ``final_lr_fraction`` x lr."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise CnnplError(f"scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup = int(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
        return final_lr_fraction + (1 - final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(
    optimizer: Optimizer,
    total_steps: int,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> LRScheduler:
    """Smith's one-cycle policy peaking at the optimizer's configured lr (``OneCycleLR``)."""
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(total_steps, 2),
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


def triangle(
    optimizer: Optimizer, total_steps: int, peak_fraction: float = 0.2, start: float = 0.2, end: float = 0.0
) -> LRScheduler:
    """Linear ramp from ``start`` x lr to lr at ``peak_fraction`` of the steps, then linear to ``end`` x lr."""
    peak = max(int(total_steps * peak_fraction), 1)

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * step / peak
        return 1 + (end - 1) * min((step - peak) / max(total_steps - peak, 1), 1.0)

    return LambdaLR(optimizer, factor)
