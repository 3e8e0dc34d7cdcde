"""The optimizer's step alone: torch's three implementations side by side, on cnnpl's networks.

    python benchmarks/bench_optimizer.py
    python benchmarks/bench_optimizer.py --models simple_cnn vgg16 --rounds 15 --steps 20
    python benchmarks/bench_optimizer.py --models lenet5 --rounds 2 --steps 2   # a smoke run

For each model (``name`` or ``fast_net:w1,w2,w3``), built at CIFAR size, and each of cnnpl's
optimizer configs (``conf/optimizer/adam.yaml``, ``adamw.yaml``, ``sgd.yaml``: their settings, with
their ``fused`` set aside), three copies of the optimizer step the same parameters with the same fixed
gradients: torch's for-loop (``foreach=False``; what torch picks by default for CPU tensors), its
``foreach`` implementation (a few multi-tensor kernels) and its ``fused`` one (one kernel a tensor,
cnnpl's default since it was measured here). After ``--steps`` untimed steps each, ``--rounds`` rounds
of ``--steps`` steps run in a fresh random order (``bench_pool.interleaved``). The table gives the
median time of a step and the median per-round ratio fused / for-loop. Before timing, each
implementation takes 50 steps from the same start with the same random gradients and the largest
difference from the for-loop's parameters is reported relative to their largest magnitude: rounding,
not another update.

Not a test: it takes about a minute a model on two cores.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from bench_pool import interleaved, start_rounds
from bench_precision import build
from omegaconf import OmegaConf

from cnnpl.optim import IMPLEMENTATION_KEYS

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"
IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def optimizer_settings(name: str) -> tuple[type[torch.optim.Optimizer], dict]:
    """The class and settings of ``conf/optimizer/<name>.yaml``, without its implementation switches."""
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    module, _, cls = cfg.pop("_target_").rpartition(".")
    assert module == "torch.optim"
    settings = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in IMPLEMENTATION_KEYS}
    return getattr(torch.optim, cls), settings


def copies(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in params]


def largest_difference(cls: type, settings: dict, params: list[torch.Tensor]) -> dict[str, float]:
    """Each implementation's largest difference from the for-loop after 50 steps, relative."""
    finals = {}
    for impl, switch in IMPLEMENTATIONS.items():
        tensors = copies(params)
        optimizer = cls(tensors, **settings, **switch)
        generator = torch.Generator().manual_seed(0)
        for _ in range(50):
            for t in tensors:
                t.grad = torch.randn(t.shape, generator=generator) * 1e-2
            optimizer.step()
        finals[impl] = tensors
    reference = finals["for-loop"]
    scale = max(t.abs().max().item() for t in reference)
    return {
        impl: max((a - b).abs().max().item() for a, b in zip(tensors, reference, strict=True)) / scale
        for impl, tensors in finals.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["lenet5", "simple_cnn", "fast_net:32,128,128", "vgg16"])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "adamw", "sgd"])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--steps", type=int, default=20, help="steps timed together in a round")
    parser.add_argument("--seed", type=int, default=0, help="seeds the contenders' order")
    args = parser.parse_args()
    start_rounds(args.seed, args.rounds, f"{args.steps} steps")
    print("| model | parameters (tensors) | optimizer | for-loop ms / step | foreach ms / step | fused ms / step "
          "| fused / for-loop (median per round) | fused's largest difference (relative) |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for spec in args.models:
        torch.manual_seed(0)
        params = [p.detach() for p in build(spec).parameters()]
        size = f"{sum(p.numel() for p in params) / 1e6:.3f} M ({len(params)})"
        for name in args.optimizers:
            cls, settings = optimizer_settings(name)
            difference = largest_difference(cls, settings, params)
            steppers = {}
            for impl, switch in IMPLEMENTATIONS.items():
                tensors = copies(params)
                generator = torch.Generator().manual_seed(1)
                for t in tensors:
                    t.grad = torch.randn(t.shape, generator=generator) * 1e-2
                optimizer = cls(tensors, **settings, **switch)
                steppers[impl] = lambda optimizer=optimizer: [optimizer.step() for _ in range(args.steps)]
            rounds = interleaved(steppers, args.rounds, warmup=1)  # untimed first: the optimizer's state
            times = {impl: [t / args.steps for t in per_round] for impl, per_round in rounds.items()}
            ms = {impl: 1e3 * statistics.median(t) for impl, t in times.items()}
            ratio = statistics.median(f / s for f, s in zip(times["fused"], times["for-loop"], strict=True))
            print(f"| {spec} | {size} | {name} | {ms['for-loop']:.3f} | {ms['foreach']:.3f} | {ms['fused']:.3f} "
                  f"| {ratio:.2f} | {difference['fused']:.1e} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
