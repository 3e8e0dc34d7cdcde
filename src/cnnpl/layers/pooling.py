"""Pooling layers, registered under ``pool``.

Registry names: ``max``, ``avg``, ``mixed``, ``mixed_learned``, ``gated``, ``stochastic``, ``lp``
(windowed: ``(N, C, H, W) -> (N, C, H', W')`` with max pooling's output size rule) and
``global_avg``, ``global_max``, ``global_avg_max`` (classifier heads: ``(N, C, H, W) -> (N, C', 1, 1)``).

A pool factory is called by architectures as ``pool(kernel_size=..., stride=..., padding=...)``
(plus ``channels=C`` for strategies that learn per-channel parameters; the factory drops it for
those that do not take it). Formulas, parameters and evaluation rules are in ``docs/pooling.md``.
Every random draw comes from torch's global generators, so ``seed=`` fixes it; every strategy is
deterministic in ``eval()`` mode.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnpl.errors import CnnplError, GeometryError, yaml_word
from cnnpl.geometry import output_size, pair
from cnnpl.registry import register

GRANULARITIES = ("layer", "channel", "region")
EVAL_RULES = ("expectation", "history", "max", "avg")
LEARNED_GRANULARITIES = ("layer", "channel")


class _PoolShape:
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int]
    padding: int | tuple[int, int]

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = input_shape
        k, s, p = pair(self.kernel_size), pair(self.stride), pair(self.padding)
        return c, output_size(h, k[0], s[0], p[0]), output_size(w, k[1], s[1], p[1])


def check_window(
    kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None, padding: int | tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Validate a pooling window; returns ``(kernel, stride, padding)`` pairs (stride defaults to the kernel).

    Raises :class:`GeometryError` for a kernel or stride below 1, negative or non-integer padding, or
    padding above half the kernel (a window then could hold only padding).
    """
    if isinstance(padding, str) or isinstance(kernel_size, str) or isinstance(stride, str):
        raise GeometryError(
            "pooling takes integer kernel_size, stride and padding; got "
            f"{yaml_word(kernel_size)}, {yaml_word(stride)}, {yaml_word(padding)}"
        )
    k = pair(kernel_size, "pooling kernel_size")
    s = pair(stride, "pooling stride") if stride is not None else k
    p = pair(padding, "pooling padding")
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise GeometryError(
            f"pooling needs kernel_size >= 1, stride >= 1 and padding >= 0; got {kernel_size}, {stride}, {padding}"
        )
    if any(2 * pi > ki for pi, ki in zip(p, k, strict=True)):
        raise GeometryError(f"pooling padding {padding} must be at most half the kernel size {kernel_size}")
    return k, s, p


class _TorchWindow(_PoolShape):
    """A torch pooling layer's window, checked (:func:`check_window`) before torch takes it."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        check_window(kernel_size, stride, padding)
        super().__init__(kernel_size, stride, padding)  # type: ignore[call-arg]  # torch's pool, next in the MRO


@register("pool", "max")
class MaxPool(_TorchWindow, nn.MaxPool2d):
    """Max pooling: the largest activation of each ``kernel_size`` window. ``stride`` defaults to the kernel."""


@register("pool", "avg")
class AvgPool(_TorchWindow, nn.AvgPool2d):
    """Average pooling: the mean of each window.

    Zero padding counts toward the mean, as in PyTorch's default (``count_include_pad=True``), unlike
    Keras' ``padding="same"``, which averages only the real cells.
    """


def _check_probability(name: str, value: float, *, open_interval: bool = False) -> float:
    """``value`` as a float in [0, 1] (in (0, 1) with ``open_interval``); one line naming ``name`` otherwise
    (helper-140: ``pool.p=[0.5]`` was float()'s TypeError, and alpha_init=1.2 was told [0, 1] where 0 and 1 are
    refused too)."""
    interval = "strictly between 0 and 1" if open_interval else "in [0, 1]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # NumPy's floats too (helper-142)
        raise CnnplError(f"{name} must be a number {interval}, got {yaml_word(value)}")
    inside = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not inside:
        raise CnnplError(f"{name} must be {interval}, got {value}")
    return float(value)


def _check_choice(what: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise CnnplError(f"unknown {what} {yaml_word(value)}; choose one of {', '.join(choices)}")
    return value


def _check_channels(name: str, channels: int | None, granularity: str) -> int:
    if channels is None or int(channels) < 1:
        raise CnnplError(
            f"{name} pooling with granularity 'channel' needs channels=C (architectures pass it; "
            f"got {yaml_word(channels)}); "
            "use granularity=layer for one parameter shared by all channels"
        )
    return int(channels)


class _WindowPool(_PoolShape, nn.Module):
    """Base of the windowed strategies: checks and stores ``kernel_size``, ``stride`` and ``padding``.

    The windows are max pooling's: ``stride`` defaults to ``kernel_size`` and ``padding`` (zeros on
    each side) may be at most half the kernel, the limit PyTorch's max pooling imposes.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = check_window(kernel_size, stride, padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _max(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def _avg(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)  # zero padding counts, as ``avg``

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One ``(N, C, H', W')`` strided view per kernel offset: ``taps[i*kw + j]`` holds cell (i, j) of
        every window (zero padded). Cheaper than ``unfold``, which copies every window."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        _, oh, ow = self.output_shape(tuple(x.shape[1:]))
        padded = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        return [
            padded[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            for i in range(kh)
            for j in range(kw)
        ]

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, kh*kw, H', W')``: every window's cells (zero padded) along dim 2.

        Stacks the per-offset views: one copy of the input's size, much faster on CPU than ``unfold``."""
        return torch.stack(self._taps(x), dim=2)


@register("pool", "mixed")
class MixedPool(_WindowPool):
    """The notes' mixed pooling (Yu et al., 2014): ``lam * max + (1 - lam) * avg`` with ``lam`` in {0, 1}.

    Training: ``lam ~ Bernoulli(p)`` drawn once per forward pass (``granularity="layer"``, only the
    chosen branch is computed), once per channel per pass (``"channel"``) or once per sample, channel
    and window (``"region"``); the gradient flows through the branch ``lam`` chose. Evaluation
    (``eval_rule``): ``"expectation"`` = ``p * max + (1 - p) * avg``, ``"history"`` = the branch drawn
    more often in training (ties: max when ``p >= 0.5``), ``"max"`` or ``"avg"``.

    The draws are counted in the buffer ``lam_counts`` = ``[#lam=0, #lam=1]``, so they survive
    ``state_dict`` round-trips and checkpoints. Counts are per process: with ``eval_rule="history"``
    and ``torch.distributed`` initialised, switching to ``eval()`` after training broadcasts rank 0's
    counts (the ones its checkpoint saves), so every process evaluates with the same branch.
    """

    lam_counts: torch.Tensor

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        p: float = 0.5,
        granularity: str = "layer",
        eval_rule: str = "expectation",
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.p = _check_probability("mixed pooling p (the probability that lam = 1, i.e. max)", p)
        self.granularity = _check_choice("mixed pooling granularity", granularity, GRANULARITIES)
        self.eval_rule = _check_choice("mixed pooling eval_rule", eval_rule, EVAL_RULES)
        self.register_buffer("lam_counts", torch.zeros(2, dtype=torch.long))
        self._drawn_since_sync = False

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, granularity={self.granularity!r}, eval_rule={self.eval_rule!r}"

    def draw(self, shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """``lam`` as a bool tensor of ``shape`` (True = max), from torch's global generator on ``device``."""
        return torch.rand(tuple(shape), device=device) < self.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self._evaluate(x)
        self._drawn_since_sync = True
        if self.granularity == "layer":
            lam = bool(self.draw((), torch.device("cpu")))  # a CPU draw: choosing the branch needs no device sync
            self.lam_counts[int(lam)] += 1
            return self._max(x) if lam else self._avg(x)
        c = x.shape[1]
        maxed, averaged = self._max(x), self._avg(x)
        shape = (1, c, 1, 1) if self.granularity == "channel" else maxed.shape
        lam = self.draw(shape, x.device)
        ones = lam.sum()
        self.lam_counts += torch.stack([lam.numel() - ones, ones])
        return torch.where(lam, maxed, averaged)

    def history_picks_max(self) -> bool:
        """The ``history`` rule: was max drawn more often than avg (ties go to the likelier branch)?"""
        zeros, ones = self.lam_counts.tolist()
        return ones > zeros or (ones == zeros and self.p >= 0.5)

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        rule = self.eval_rule
        if rule == "history":
            rule = "max" if self.history_picks_max() else "avg"
        if rule == "max":
            return self._max(x)
        if rule == "avg":
            return self._avg(x)
        return torch.lerp(self._avg(x), self._max(x), self.p)

    def train(self, mode: bool = True) -> MixedPool:
        if not mode and self._drawn_since_sync:
            self.sync_history()
        return super().train(mode)

    def sync_history(self) -> None:
        """Give every process rank 0's ``lam_counts`` (a broadcast; a no-op without ``torch.distributed``).

        Called by ``eval()`` after training forward passes when ``eval_rule="history"``: every process
        runs the same training steps, so all reach this collective together.
        """
        self._drawn_since_sync = False
        if self.eval_rule != "history":
            return
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(self.lam_counts, src=0)


@register("pool", "mixed_learned")
class MixedLearnedPool(_WindowPool):
    """Learned mixed pooling (Lee, Gallagher & Tu, 2016): ``alpha * max + (1 - alpha) * avg``.

    ``alpha = sigmoid(a)`` with ``a`` learned: one per layer (``granularity="layer"``) or one per
    channel (``"channel"``, needs ``channels``). ``a`` starts at ``logit(alpha_init)``. The same
    formula in training and evaluation.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        granularity: str = "layer",
        alpha_init: float = 0.5,
        channels: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.granularity = _check_choice("mixed_learned pooling granularity", granularity, LEARNED_GRANULARITIES)
        alpha = _check_probability("mixed_learned pooling alpha_init", alpha_init, open_interval=True)
        size = _check_channels("mixed_learned", channels, granularity) if granularity == "channel" else 1
        self.alpha_logit = nn.Parameter(torch.full((size,), math.log(alpha / (1.0 - alpha))))

    @property
    def alpha(self) -> torch.Tensor:
        """``(channels,)`` or ``(1,)`` mixing weights of max."""
        return torch.sigmoid(self.alpha_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self._avg(x)
        # under autocast the pools give bfloat16 (or float16) and alpha stays float32; lerp takes one dtype
        return torch.lerp(avg, self._max(x), self.alpha.view(1, -1, 1, 1).to(avg.dtype))


@register("pool", "gated")
class GatedPool(_WindowPool):
    """Gated mixed pooling (Lee, Gallagher & Tu, 2016): ``alpha * max + (1 - alpha) * avg`` per window.

    ``alpha = sigmoid(w . x_R)``: a learned ``kernel_size`` gating mask ``w`` dotted with the window's
    activations ``x_R`` (zero padded), so each window decides how much max it wants. One mask shared
    by all channels (``granularity="layer"``, the paper's choice) or one per channel (``"channel"``,
    needs ``channels``). ``w`` starts at zero (``alpha = 0.5`` everywhere). Same in training and evaluation.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        granularity: str = "layer",
        channels: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.granularity = _check_choice("gated pooling granularity", granularity, LEARNED_GRANULARITIES)
        size = _check_channels("gated", channels, granularity) if granularity == "channel" else 1
        self.mask = nn.Parameter(torch.zeros(size, 1, *self.kernel_size))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """``alpha``, ``(N, C, H', W')``."""
        weights = self.mask.view(1, self.mask.shape[0], -1, 1, 1)  # (1, 1 or C, kh*kw, 1, 1)
        return torch.sigmoid((self._windows(x) * weights).sum(dim=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self._avg(x)
        return torch.lerp(avg, self._max(x), self.gate(x).to(avg.dtype))  # the gate is float32 under autocast


@register("pool", "stochastic")
class StochasticPool(_WindowPool):
    """Stochastic pooling (Zeiler & Fergus, 2013), for non-negative inputs such as ReLU outputs.

    Each window's probabilities are ``p_i = a_i / sum_R a``. Training samples one activation per
    window with probability ``p_i`` (the gradient flows to the sampled one); evaluation returns the
    probability-weighted average ``sum_R p_i a_i``. Negative activations get probability 0 and a
    window without a positive activation outputs 0 (the method is undefined there).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cols = self._windows(x)
        # the probabilities in float32 at least: in bfloat16 (8 bits of mantissa) a cumulative sum drops the
        # small cells after a large one, which were then never drawn, and the uniform draw is coarse
        exact = torch.promote_types(x.dtype, torch.float32)
        weights = cols.clamp(min=0).to(exact)
        total = weights.sum(dim=2, keepdim=True)
        if self.training:
            cumulative = weights.cumsum(dim=2)
            threshold = torch.rand(total.shape, device=x.device, dtype=exact) * cumulative[:, :, -1:]
            # the first index whose cumulative weight passes the threshold: P(i) = a_i / sum_R a
            index = (cumulative <= threshold).sum(dim=2, keepdim=True).clamp(max=cols.shape[2] - 1)
            pooled = cols.gather(2, index)
        else:
            pooled = (weights * cols).sum(dim=2, keepdim=True) / torch.where(total > 0, total, 1.0)
            pooled = pooled.to(x.dtype)
        return torch.where(total > 0, pooled, 0.0).squeeze(2)


@register("pool", "lp")
class LpPool(_WindowPool):
    """L_p pooling: ``(mean_R |a|^p)^(1/p)``; p = 1 is the mean of ``|a|``, p -> inf tends to max ``|a|``.

    ``p >= 1`` fixed, or learned (``learnable=True``, ``p > 1`` to start) as ``p = 1 + softplus(rho)``
    so it stays above 1. Computed as ``m * (mean_R (|a| / m)^p)^(1/p)`` with ``m = max_R |a|``, which
    is exact, stable for large p and has finite gradients on all-zero windows. Zero padding counts
    toward the mean, as in ``avg``.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        p: float = 3.0,
        learnable: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        if not float(p) >= 1.0 or (learnable and not float(p) > 1.0) or math.isinf(float(p)):
            raise CnnplError(f"lp pooling p must be finite and >= 1 (> 1 when learnable), got {p}")
        self.learnable = bool(learnable)
        if self.learnable:
            self.rho = nn.Parameter(torch.tensor(math.log(math.expm1(float(p) - 1.0))))
        else:
            self.register_buffer("fixed_p", torch.tensor(float(p)))

    @property
    def p(self) -> torch.Tensor:
        return 1.0 + F.softplus(self.rho) if self.learnable else self.fixed_p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        magnitude = self._windows(x).abs()
        peak = magnitude.amax(dim=2)
        nonzero = peak > 0
        p = self.p.to(x.dtype)
        ratio = (magnitude / torch.where(nonzero, peak, 1.0).unsqueeze(2)).pow(p).mean(dim=2)
        return peak * torch.where(nonzero, ratio, 1.0).pow(1.0 / p)


class _GlobalPool(nn.Module):
    """Base of the global poolings: one value per channel, ``(N, C, H, W) -> (N, C, 1, 1)``."""

    channel_multiplier = 1

    def __init__(self) -> None:  # an explicit signature: nn.Module's would accept (and drop) any keyword
        super().__init__()

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        c, h, w = input_shape
        if h < 1 or w < 1:
            raise GeometryError(f"global pooling needs a non-empty feature map, got {h}x{w}")
        return c * self.channel_multiplier, 1, 1


@register("pool", "global_avg")
class GlobalAvgPool(_GlobalPool):
    """Global average pooling: the mean of each whole feature map, ``(N, C, H, W) -> (N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


@register("pool", "global_max")
class GlobalMaxPool(_GlobalPool):
    """Global max pooling: the largest value of each feature map, ``(N, C, H, W) -> (N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


@register("pool", "global_avg_max")
class GlobalAvgMaxPool(_GlobalPool):
    """Global average and max pooling concatenated: ``(N, C, H, W) -> (N, 2C, 1, 1)``, averages first."""

    channel_multiplier = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)], dim=1)
