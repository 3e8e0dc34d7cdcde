r"""Test-time augmentation: which shifted and mirrored views are worth averaging, on finished runs.

    python benchmarks/bench_tta.py outputs/fast_cifar10/<date>_<time>/fast_cifar10-seed0 \
        outputs/fast_cifar10/<date>_<time>/fast_cifar10-seed1

Rebuilds each run from its ``config.yaml`` and ``checkpoints/last.ckpt``, computes the test split's
logits for 11 shifts (the centre, its 8 one-pixel neighbours, 2 pixels up-left and down-right;
reflect-padded like ``system.tta_translate``) each with its mirror image, and prints the test
accuracy of several ways of averaging them, per run and as the mean over the runs. Unless a row says
otherwise, the unshifted pair has half the weight and the shifted pairs share the other half equally
(as cnnpl does). ``flip + diag2`` is what ``system.tta_flip=true system.tta_translate=1`` compute (the
fast recipes' setting): on a float32 run its accuracy equals the run's logged ``test/acc``, printed
beside it. A run with ``trainer.precision`` bf16-* is evaluated under bfloat16 autocast, every other
in float32; the views' logits are averaged in float32 (the classifier averages them in the autocast
dtype), so on a bfloat16 run that row may differ from ``test/acc`` by a few images.
Accuracy only, no timings. Not a test: it needs CIFAR-10 (the run's ``data.root``) and a finished run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from cnnpl.checkpoint import safe_load
from cnnpl.network import build_model, instantiate_node
from cnnpl.system import ImageClassifier

Shift = tuple[int, int]
CENTRE: Shift = (0, 0)
DIAG2: list[Shift] = [(-1, -1), (1, 1)]  # system.tta_translate=1's two views
DIAG4: list[Shift] = [*DIAG2, (-1, 1), (1, -1)]
AXIS4: list[Shift] = [(-1, 0), (1, 0), (0, -1), (0, 1)]
RING8: list[Shift] = DIAG4 + AXIS4
FAR2: list[Shift] = [(-2, -2), (2, 2)]
SHIFTS: list[Shift] = [CENTRE, *RING8, *FAR2]


def shifted_views(system: torch.nn.Module, batches: list[torch.Tensor]) -> dict[tuple[Shift, bool], torch.Tensor]:
    """``system``'s logits for every (shift, mirrored) view of the normalised ``batches``."""
    pad = max(max(abs(dy), abs(dx)) for dy, dx in SHIFTS)
    padded = [F.pad(x, (pad,) * 4, mode="reflect") for x in batches]  # once per batch, cropped per view
    h, w = batches[0].shape[-2:]
    logits = {}
    for dy, dx in SHIFTS:
        for mirrored in (False, True):
            out = []
            for p in padded:
                view = p[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
                out.append(system(view.flip(3) if mirrored else view).float())
            logits[(dy, dx), mirrored] = torch.cat(out)
    return logits


def run_views(run: Path) -> tuple[dict[tuple[Shift, bool], torch.Tensor], torch.Tensor]:
    """The views' logits of a finished run's last checkpoint on the test split, and the labels."""
    cfg = OmegaConf.load(run / "config.yaml")
    datamodule = instantiate_node(cfg.data)
    datamodule.setup("test")
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    system = ImageClassifier(net, datamodule.num_classes, None, None, **cfg.system)
    system.load_state_dict(safe_load(run / "checkpoints" / "last.ckpt")["state_dict"])
    system.eval()
    batches = list(datamodule.test_dataloader())
    bf16 = str(cfg.trainer.get("precision", "32")).startswith("bf16")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        logits = shifted_views(system, [datamodule.normalize(x) for x, _ in batches])
    return logits, torch.cat([y for _, y in batches])


def averages(logits: dict[tuple[Shift, bool], torch.Tensor]) -> dict[str, tuple[int, torch.Tensor]]:
    """The ways of averaging compared: name -> (views evaluated, averaged logits)."""

    def both(shift: Shift) -> torch.Tensor:  # a shift and its mirror image
        return (logits[shift, False] + logits[shift, True]) / 2

    def around(ring: list[Shift]) -> tuple[int, torch.Tensor]:  # half the weight on the centre, as cnnpl
        return 2 + 2 * len(ring), both(CENTRE) / 2 + sum(both(s) for s in ring) / (2 * len(ring))

    return {
        "none": (1, logits[CENTRE, False]),
        "flip": (2, both(CENTRE)),
        "flip + diag2 (the recipes')": around(DIAG2),
        "flip + diag4": around(DIAG4),
        "flip + axis4": around(AXIS4),
        "flip + ring8": around(RING8),
        "flip + ring8, all 9 equal": (18, (both(CENTRE) + sum(both(s) for s in RING8)) / 9),
        "flip + diag2 at 2 px": around(FAR2),
        "flip + diag2 at 1 and 2 px": (
            10,
            both(CENTRE) / 2 + sum(both(s) for s in DIAG2) / 6 + sum(both(s) for s in FAR2) / 12,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished runs' folders (config.yaml, checkpoints/)")
    args = parser.parse_args()
    from fast_cifar10 import test_accuracy  # this script's folder, first on sys.path

    table: dict[str, list[float]] = {}
    views: dict[str, int] = {}
    for run in args.runs:
        logits, labels = run_views(run)
        print(f"{run} (logged test/acc {test_accuracy(run):.4f})", flush=True)
        for name, (n, avg) in averages(logits).items():
            acc = (avg.argmax(1) == labels).float().mean().item()
            table.setdefault(name, []).append(acc)
            views[name] = n
            print(f"  {name:30s} {acc:.4f}", flush=True)
    base = table["flip + diag2 (the recipes')"]
    print(f"\n| averaging | views | mean test accuracy over {len(args.runs)} run(s) | vs the recipes' |")
    print("|---|---:|---:|---:|")
    for name, accs in table.items():
        gain = statistics.mean(a - b for a, b in zip(accs, base, strict=True))
        print(f"| {name} | {views[name]} | {statistics.mean(accs):.4f} | {gain * 100:+.2f} points |")


if __name__ == "__main__":
    main()
