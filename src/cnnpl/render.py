"""Render the visualisation callbacks' pictures from a checkpoint to PNG files (no TensorBoard needed).

    python -m cnnpl.render ckpt=outputs/<run>/checkpoints/last.ckpt out=pictures/
    python -m cnnpl.render ckpt=... out=... num_images=4 data.root=/path/to/cifar

The run's ``config.yaml`` (written by ``python -m cnnpl`` next to ``checkpoints/``) says how to
rebuild the network and the data; ``config=PATH`` points elsewhere, and any other ``key=value``
overrides that config (``data.root=...``). Written files (``.png`` in ``out``):

- ``filters_<layer>.png`` for every conv layer (``_rgb`` too for layers reading RGB);
- ``input.png`` and ``feature_maps_<layer>_image<i>.png`` for the model's stages;
- ``kernels_demo.png``; ``gradcam_<layer>.png``;
- from the predictions on the whole validation split: ``confusion_matrix.png``,
  ``per_class_accuracy.png``, ``misclassified.png``, ``pr_curves.png``.

In a notebook, :func:`load_checkpoint` gives the network and the data module, and the functions of
:mod:`cnnpl.viz` draw any one picture.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnpl import viz
from cnnpl.errors import CnnplError

USAGE = "usage: python -m cnnpl.render ckpt=PATH out=DIR [config=PATH] [num_images=N] [split=val] [key=value ...]"


def find_config(ckpt: Path) -> Path:
    """The run's ``config.yaml``: next to the checkpoint, or one folder up (``<run>/checkpoints/x.ckpt``)."""
    for folder in (ckpt.parent, ckpt.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    raise CnnplError(f"no config.yaml next to {ckpt} or in {ckpt.parent.parent}; pass config=<run dir>/config.yaml")


def load_checkpoint(
    ckpt: str | Path, config: str | Path | None = None, overrides: Sequence[str] = ()
) -> tuple[nn.Module, Any, DictConfig]:
    """``(network in eval mode, data module set up, config)`` of a ``python -m cnnpl`` checkpoint.

    ``overrides`` are ``key=value`` strings applied to the run's config (``data.root=...``).
    """
    from cnnpl.train import _instantiate, build_model

    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise CnnplError(f"checkpoint {ckpt} does not exist")
    cfg = OmegaConf.load(Path(config) if config else find_config(ckpt))
    if not isinstance(cfg, DictConfig):
        raise CnnplError(f"{config} is not a cnnpl run config")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    datamodule = _instantiate(cfg.data)
    datamodule.setup("fit")
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CnnplError(f"{ckpt} does not fit the network its config describes: {str(err).splitlines()[0]}") from None
    return net.eval(), datamodule, cfg


def _safe(name: str) -> str:
    return name.replace("/", "_")


def render(net: nn.Module, datamodule: Any, out: str | Path, num_images: int = 8, split: str = "val") -> list[Path]:
    """Write every picture of ``net`` on ``datamodule``'s ``split`` to ``out``; returns the files written."""
    out = Path(out)
    files: list[Path] = []
    data = datamodule.split(split)
    names = list(datamodule.class_names)

    for layer in viz.conv_layers(net):
        weight = viz.conv_weight(net, layer)[1]
        files.append(viz.save_png(viz.filters_grid(weight, 32, 16), out / f"filters_{_safe(layer)}.png"))
        if weight.shape[1] == 3:
            files.append(viz.save_png(viz.filters_rgb(weight, 32), out / f"filters_{_safe(layer)}_rgb.png"))

    index = viz.pick_images(data.labels, num_images)
    pixels = data.images[index].float() / 255
    images = datamodule.normalize(data.images[index])
    files.append(viz.save_png(viz.grid(pixels, pad=2), out / "input.png"))
    stages = list(getattr(net, "stages", []) or [])
    for layer, fmap in viz.feature_maps(net, images, stages).items():
        for i in range(len(fmap)):
            grid = viz.feature_map_grid(fmap[i], 32, cmap="viridis")
            files.append(viz.save_png(grid, out / f"feature_maps_{_safe(layer)}_image{i}.png"))
    files.append(viz.save_png(viz.kernels_demo_figure(pixels[:3]), out / "kernels_demo.png"))
    convs = viz.conv_layers(net)
    if convs:
        cams, _ = viz.grad_cam(net, images, convs[-1])
        overlay = viz.grad_cam_overlay(pixels, cams)
        rgb = pixels if pixels.shape[1] == 3 else pixels.expand(-1, 3, -1, -1)
        cells = viz.upscale(torch.stack([rgb, overlay], dim=1), 3)
        files.append(viz.save_png(viz.tile(cells, pad=2), out / f"gradcam_{_safe(convs[-1])}.png"))

    logits = viz.predict(net, datamodule.normalize(data.images))
    preds = logits.argmax(1)
    cm = viz.confusion_matrix(preds, data.labels, len(names))
    files.append(viz.save_png(viz.confusion_matrix_figure(cm, names), out / "confusion_matrix.png"))
    acc = viz.per_class_accuracy(cm)
    files.append(viz.save_png(viz.per_class_accuracy_figure(acc, names), out / "per_class_accuracy.png"))
    wrong = (preds != data.labels).nonzero().flatten()[:16]
    mis = viz.misclassified_figure(data.images[wrong].float() / 255, data.labels[wrong], preds[wrong], names)
    files.append(viz.save_png(mis, out / "misclassified.png"))
    files.append(viz.save_png(viz.pr_curves_figure(logits.softmax(1), data.labels, names), out / "pr_curves.png"))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or any(a in ("-h", "--help") for a in args):
        print(__doc__.strip().splitlines()[0] + "\n\n" + USAGE)
        return 0 if args else 2
    options: dict[str, str] = {}
    overrides: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            print(f"cnnpl.render: error: expected key=value, got {arg!r}\n{USAGE}", file=sys.stderr)
            return 2
        if key in ("ckpt", "out", "config", "num_images", "split"):
            options[key] = value
        else:
            overrides.append(arg)
    try:
        if "ckpt" not in options or "out" not in options:
            raise CnnplError(f"ckpt= and out= are required; {USAGE}")
        if not options.get("num_images", "8").isdigit() or int(options.get("num_images", "8")) < 1:
            raise CnnplError(f"num_images must be a positive integer, got {options['num_images']!r}")
        torch.set_grad_enabled(True)
        net, datamodule, _ = load_checkpoint(options["ckpt"], options.get("config"), overrides)
        files = render(
            net, datamodule, options["out"], int(options.get("num_images", "8")), options.get("split", "val")
        )
    except CnnplError as err:
        print(f"cnnpl.render: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} pictures to {options['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
