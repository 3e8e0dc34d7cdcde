"""Draw the tutorial's pictures into ``docs/images/`` with cnnpl itself (no pasted screenshots).

    python scripts/make_doc_images.py [--out docs/images] [--epochs 4]

Nothing here reads CIFAR-10 or the network. The pictures:

* ``kernels_demo.png``: the notes' classic filters (:func:`cnnpl.viz.kernels_demo_grid`) on synthetic
  ``data=shapes`` images and a smooth synthetic scene; one row per image, columns: the image, box blur,
  sharpen, edge, vertical edge, horizontal edge.
* From a real but short training of the notes' CIFAR-10 network (``model=simple_cnn``) on ``data=shapes``
  (2,000 synthetic images, ``--epochs`` epochs, CSV logger, into a temporary folder), reloaded from its
  best checkpoint with :func:`cnnpl.render.load_checkpoint`:
  ``training_curves.png`` (train/val loss and accuracy per epoch), ``filters_rgb.png`` (the first conv
  layer's 32 filters as colour tiles, :func:`cnnpl.viz.filters_rgb`), ``filters_grid.png`` (the notes'
  layout: a row per filter, a column per input channel, :func:`cnnpl.viz.filters_grid`),
  ``input.png`` and ``feature_maps_<stage>.png`` (one validation image through each stage of the
  network, :func:`cnnpl.viz.feature_maps` / :func:`cnnpl.viz.feature_map_grid`).

Prints each file written and the run's final metrics. Took 5.4 s on 2 CPU cores (2026-12-06, a model-207 Xeon, two runs).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def synthetic_scene(size: int = 32) -> torch.Tensor:
    """A smooth colour scene ``(3, size, size)`` in [0, 1]: a lit disk and a bar on a gradient sky."""
    coords = torch.linspace(0, 1, size)
    yy, xx = coords.view(size, 1), coords.view(1, size)
    sky = torch.stack(
        [0.3 + 0.4 * yy.expand(size, size), 0.5 + 0.3 * yy.expand(size, size), 0.9 - 0.3 * yy.expand(size, size)]
    )
    disk = (((yy - 0.4) ** 2 + (xx - 0.35) ** 2) < 0.04).float()
    bar = ((yy > 0.7) & (yy < 0.85) & (xx > 0.5)).float()
    shading = 0.6 + 0.4 * torch.cos(3 * (xx - 0.35)) * torch.cos(3 * (yy - 0.4))
    scene = sky * (1 - disk) + torch.tensor([0.95, 0.75, 0.2]).view(3, 1, 1) * shading * disk
    return (scene * (1 - bar) + torch.tensor([0.2, 0.5, 0.2]).view(3, 1, 1) * bar).clamp(0, 1)


def kernels_demo(out: Path) -> Path:
    from cnnpl import viz
    from cnnpl.data.shapes import CLASSES, make_shapes

    split = make_shapes(40, size=32, seed=3)
    wanted = [CLASSES.index(c) for c in ("vertical", "horizontal", "circle")]
    picks = [int((split.labels == c).nonzero()[0]) for c in wanted]
    images = torch.cat([split.images[picks].float() / 255, synthetic_scene().unsqueeze(0)])
    return viz.save_png(viz.kernels_demo_grid(images, scale=2), out / "kernels_demo.png")


def train_shapes(run_dir: Path, epochs: int) -> tuple[Path, dict[str, float]]:
    import cnnpl

    overrides = [
        "data=shapes",
        "data.num_train=2000",
        "data.num_test=400",
        "model=simple_cnn",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_model_summary=false",
        "logger=csv",
        "callbacks=minimal",
        "callbacks.progress_bar.refresh_rate=0",
        "seed=0",
    ]
    cfg = cnnpl.compose(overrides, output_dir=str(run_dir))
    metrics = cnnpl.train(cfg)
    best = sorted((run_dir / "checkpoints").glob("epoch*.ckpt"))
    return (best[-1] if best else run_dir / "checkpoints" / "last.ckpt"), metrics


def training_curves(metrics_csv: Path, out: Path) -> Path:
    from matplotlib.figure import Figure

    from cnnpl import viz

    rows = list(csv.DictReader(metrics_csv.open()))

    def per_epoch(key: str) -> tuple[list[int], list[float]]:
        pairs = {int(r["epoch"]): float(r[key]) for r in rows if r.get(key)}
        epochs = sorted(pairs)
        return [e + 1 for e in epochs], [pairs[e] for e in epochs]

    fig = Figure(figsize=(7, 2.6), dpi=80, layout="constrained")
    for i, what in enumerate(("loss", "acc")):
        ax = fig.add_subplot(1, 2, i + 1)
        for split, key in (("train", f"train/{what}_epoch"), ("val", f"val/{what}")):
            if not any(r.get(key) for r in rows):
                key = f"train/{what}"
            ax.plot(*per_epoch(key), marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(what)
        ax.legend()
    return viz.save_png(fig, out / "training_curves.png")


def checkpoint_pictures(ckpt: Path, out: Path) -> list[Path]:
    from cnnpl import viz
    from cnnpl.render import load_checkpoint

    net, datamodule, _cfg = load_checkpoint(ckpt)
    written = []
    name, weight = viz.conv_weight(net)
    written.append(viz.save_png(viz.filters_rgb(weight, scale=12), out / "filters_rgb.png"))
    written.append(viz.save_png(viz.filters_grid(weight, max_filters=8, scale=12), out / "filters_grid.png"))
    val = datamodule.split("val")
    index = int(viz.pick_images(val.labels, 6)[5])  # the first "circle" of the validation split
    image = val.images[index : index + 1]
    written.append(viz.save_png(viz.upscale(image[0].float() / 255, 4), out / "input.png"))
    maps = viz.feature_maps(net, datamodule.normalize(image.float() / 255), net.stages)
    for stage, fmap in maps.items():
        cells = viz.feature_map_grid(fmap[0], max_channels=32, ncol=8, cell_size=32)
        written.append(viz.save_png(cells, out / f"feature_maps_{stage.replace('.', '_')}.png"))
    print(f"first conv layer: {name} {tuple(weight.shape)}; stages: {list(net.stages)}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [kernels_demo(args.out)]
    with tempfile.TemporaryDirectory(prefix="cnnpl-doc-images-") as tmp:
        ckpt, metrics = train_shapes(Path(tmp) / "run", args.epochs)
        written.append(training_curves(Path(tmp) / "run" / "csv" / "metrics.csv", args.out))
        written += checkpoint_pictures(ckpt, args.out)
    for path in written:
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}  {path.stat().st_size:,} bytes")
    shown = {k: round(v, 4) for k, v in sorted(metrics.items()) if not math.isnan(v)}
    print(f"shapes run ({args.epochs} epochs, simple_cnn): {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
