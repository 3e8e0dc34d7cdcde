"""Learning-rate schedules, stepped once per optimizer step, and the Muon optimizer.

A schedule is a callable ``schedule(optimizer, total_steps) -> LRScheduler``; the configs in
``conf/scheduler/`` make one with ``_partial_: true`` and the system fills in ``total_steps`` from
the trainer (``estimated_stepping_batches``). :class:`Muon` is ``optimizer=muon``.
:func:`keep_implementation` keeps an optimizer's step implementation (``fused``, ``foreach``) when a
checkpoint's state is loaded into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from cnnpl.errors import CnnplError, yaml_word


def check_setting(key: str, value: Any, rule: str, holds: Callable[[float], bool]) -> None:
    """Refuse ``scheduler.<key>`` unless it is a finite number (not a bool) for which ``holds`` is true.

    ``rule`` says the range in words (``"in (0, 1)"``) for the message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not holds(value):
        raise CnnplError(f"scheduler.{key} must be a number {rule}, got {yaml_word(value)}")


def cosine(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.0, final_lr_fraction: float = 0.0
) -> LRScheduler:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to ``final_lr_fraction`` x lr."""
    check_setting("warmup_fraction", warmup_fraction, "in [0, 1)", lambda v: 0 <= v < 1)
    check_setting("final_lr_fraction", final_lr_fraction, "in [0, 1]", lambda v: 0 <= v <= 1)
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
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> LRScheduler:
    """Smith's one-cycle policy peaking at the optimizer's configured lr (``OneCycleLR``).

    The lr starts at lr / ``div_factor``, peaks at lr after ``pct_start`` of the steps and ends at
    lr / (``div_factor`` x ``final_div_factor``). With ``cycle_momentum`` (torch's default) the
    momentum (Adam's beta1) runs the other way, from ``max_momentum`` down to ``base_momentum`` at the
    peak and back: it replaces ``optimizer.momentum`` (``betas[0]``) for the whole run.
    ``cycle_momentum=false`` keeps the optimizer's own, and is needed for one without momentum.
    """
    check_setting("pct_start", pct_start, "in (0, 1)", lambda v: 0 < v < 1)
    check_setting("div_factor", div_factor, "> 0", lambda v: v > 0)
    check_setting("final_div_factor", final_div_factor, "> 0", lambda v: v > 0)
    if not isinstance(cycle_momentum, bool):
        raise CnnplError(f"scheduler.cycle_momentum must be true or false, got {yaml_word(cycle_momentum)}")
    check_setting("base_momentum", base_momentum, "in [0, 1)", lambda v: 0 <= v < 1)
    check_setting("max_momentum", max_momentum, f"in [base_momentum, 1) = [{base_momentum}, 1)",
                  lambda v: base_momentum <= v < 1)  # fmt: skip
    if cycle_momentum and not any("momentum" in g or "betas" in g for g in optimizer.param_groups):
        raise CnnplError(
            f"scheduler=onecycle cycles the optimizer's momentum, and {type(optimizer).__name__} has none; "
            "set scheduler.cycle_momentum=false"
        )
    max_lr = [group["lr"] for group in optimizer.param_groups]
    steps = max(total_steps, 2)
    # torch divides by the warm-up's last step, pct_start x steps - 1, which is 0 for a warm-up of one step
    # (pct_start=0.25 on a 4-step run: ZeroDivisionError at the first step). A hair less puts the peak on the
    # first step, which is what a one-step warm-up means; any other pct_start is torch's as given.
    while float(pct_start * steps) - 1 == 0:
        pct_start = math.nextafter(pct_start, 0.0)
    return OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
    )


def triangle(
    optimizer: Optimizer, total_steps: int, peak_fraction: float = 0.2, start: float = 0.2, end: float = 0.0
) -> LRScheduler:
    """Linear ramp from ``start`` x lr to lr at ``peak_fraction`` of the steps, then linear to ``end`` x lr."""
    check_setting("peak_fraction", peak_fraction, "in (0, 1)", lambda v: 0 < v < 1)
    check_setting("start", start, ">= 0", lambda v: v >= 0)
    check_setting("end", end, ">= 0", lambda v: v >= 0)
    peak = max(int(total_steps * peak_fraction), 1)

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * step / peak
        return 1 + (end - 1) * min((step - peak) / max(total_steps - peak, 1), 1.0)

    return LambdaLR(optimizer, factor)


# The quintic Newton-Schulz coefficients of Jordan's Muon (airbench94_muon, modded-nanogpt).
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


IMPLEMENTATION_KEYS = ("fused", "foreach")  # how torch's optimizers compute a step, not what it computes


def keep_implementation(optimizer: Optimizer) -> None:
    """Keep ``optimizer``'s step implementation as it was built when a state dict is loaded into it.

    torch's ``load_state_dict`` takes every group's settings from the saved state, ``fused`` and
    ``foreach`` included, so a run resumed from a checkpoint written without ``fused`` (an older cnnpl,
    or ``optimizer.fused=null``) would step with the saved implementation, not the configured one.
    The two give the same step up to float rounding, which is why a resume may change them. The
    settings come from the optimizer's defaults, which every group takes, also one added after it was
    built. torch also placed each step count as the saved setting wanted it; :func:`placed_step`
    places it as the group's own setting wants it.
    """

    def restore(loaded: Optimizer) -> None:
        implementation = {k: loaded.defaults[k] for k in IMPLEMENTATION_KEYS if k in loaded.defaults}
        if not implementation:  # not one of torch's (Muon, a plugin's): its state is its own business
            return
        for group in loaded.param_groups:
            group.update(implementation)
            on_device = bool(group.get("fused") or group.get("capturable"))
            for param in group["params"]:
                state = loaded.state.get(param, {})
                if torch.is_tensor(state.get("step")):
                    state["step"] = placed_step(state["step"], param, on_device)

    optimizer.register_load_state_dict_post_hook(restore)


def placed_step(step: torch.Tensor, param: torch.Tensor, on_device: bool) -> torch.Tensor:
    """A step count where torch keeps it for a group: float32 on the parameter's device for a fused (or
    capturable) step, whose kernel reads it there (a GPU's refuses a CPU count); on the CPU for any
    other, which reads it as a Python number every step (a GPU count would cost a sync a tensor)."""
    if on_device:
        return step.to(dtype=torch.float32, device=param.device)
    return step.cpu()


def orthogonalize(matrix: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Roughly the nearest semi-orthogonal matrix to ``matrix`` (its singular values pushed towards 1).

    ``steps`` quintic Newton-Schulz iterations on ``matrix`` scaled to unit Frobenius norm: the
    singular vectors stay, the singular values land in about [0.7, 1.2], which is all Muon needs.
    """
    a, b, c = NEWTON_SCHULZ
    x = matrix / (matrix.norm() + eps)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(Optimizer):
    """Muon for convolution filters, Nesterov SGD for everything else (Jordan et al., 2024).

    A parameter with three or more dimensions (a convolution's filters) steps along the
    orthogonalized momentum of its gradient (the ``(out, in * k * k)`` matrix through
    :func:`orthogonalize`, ``ns_steps`` iterations) with learning rate ``filter_lr`` and momentum
    ``filter_momentum``; with ``normalize_filters`` its norm is reset to ``sqrt(out_channels)`` before
    each step, which takes the place of weight decay, as in airbench94_muon (without it, the filters
    take ``weight_decay``). Every other parameter (biases, norm parameters, linear layers) takes the
    plain SGD step of ``torch.optim.SGD`` with ``lr``, ``momentum``, ``nesterov`` and ``weight_decay``.

    Normalising is harmless only where a batch norm follows each convolution (``fast_net``,
    ``simple_cnn_bn``, ``resnet18``): there a filter's scale does not change the output. In a network
    without one (``simple_cnn``, ``vgg16``) it rescales the layer's output at the first step; use
    ``normalize_filters=false`` there.

    Each given group is split in two, filters and the rest; a filter group's ``lr`` starts at
    ``filter_lr`` (or the group's own ``filter_lr``), so a schedule scales both alike. A group's own
    ``momentum`` applies to its other parameters only. ``scheduler=onecycle`` cycles every group's
    momentum, the filters' included.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        filter_lr: float = 0.02,
        filter_momentum: float = 0.95,
        ns_steps: int = 3,
        normalize_filters: bool = True,
    ) -> None:
        for name, value in (("lr", lr), ("filter_lr", filter_lr), ("weight_decay", weight_decay)):
            if value < 0:
                raise CnnplError(f"optimizer.{name} must be >= 0, got {value}")
        for name, value in (("momentum", momentum), ("filter_momentum", filter_momentum)):
            if not 0.0 <= value < 1.0:
                raise CnnplError(f"optimizer.{name} must be in [0, 1), got {value}")
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or ns_steps < 1:
            raise CnnplError(f"optimizer.ns_steps must be a whole number >= 1, got {yaml_word(ns_steps)}")
        if nesterov and (momentum == 0 or filter_momentum == 0):
            raise CnnplError("optimizer.nesterov needs momentum and filter_momentum > 0 (or nesterov=false)")
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        split = []
        for group in groups:
            group = dict(group)
            tensors = list(group.pop("params"))
            group_filter_lr = group.pop("filter_lr", filter_lr)
            filters = [p for p in tensors if p.ndim >= 3]
            rest = [p for p in tensors if p.ndim < 3]
            if filters:
                split.append(
                    {
                        **group,
                        "params": filters,
                        "lr": group_filter_lr,
                        "momentum": filter_momentum,
                        # normalised filters need no decay; unnormalised ones keep the group's
                        "weight_decay": 0.0 if normalize_filters else group.get("weight_decay", weight_decay),
                        "orthogonalize": True,
                    }
                )
            if rest:
                split.append({**group, "params": rest, "orthogonalize": False})
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "ns_steps": ns_steps,
            "normalize_filters": normalize_filters,
            "orthogonalize": False,
        }
        super().__init__(split, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = grad.clone()
                else:
                    buffer.mul_(momentum).add_(grad)
                direction = grad.add(buffer, alpha=momentum) if group["nesterov"] else buffer
                if group["orthogonalize"]:
                    if group["normalize_filters"]:
                        p.mul_(math.sqrt(p.size(0)) / (p.norm() + 1e-12))
                    update = orthogonalize(direction.reshape(p.size(0), -1), group["ns_steps"])
                    p.add_(update.reshape(p.shape), alpha=-lr)
                else:
                    p.add_(direction, alpha=-lr)
        return loss
