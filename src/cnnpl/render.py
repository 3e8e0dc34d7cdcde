"""Render the visualisation callbacks' pictures from a checkpoint to PNG files (no TensorBoard needed).

    python -m cnnpl.render ckpt=outputs/<run>/checkpoints/last.ckpt out=pictures/
    python -m cnnpl.render ckpt=... out=... num_images=4 data.root=/path/to/cifar

The run's ``config.yaml`` (written by ``python -m cnnpl`` next to ``checkpoints/``; for a checkpoint copied
away from its run, the copy each checkpoint holds) says how to rebuild the network and the data;
``config=PATH`` points elsewhere, and any other ``key=value``
overrides that config (``data.root=...``). Plugins the run loaded (``plugins=[./my_pool.py]``) are
loaded again first; a relative path is looked for where the run was started, then in the working
directory, then in the run folder and the folders above it (``plugins=[PATH]`` names it outright), and
a module (``plugins=[my_pool]``) where the run was started, then on ``sys.path``.
``skip_broken_plugins=true`` skips installed plugins that fail to load, as for training.
Written files (``.png`` in ``out``, created if needed):

- ``filters_<layer>.png`` for every conv layer (``_rgb`` too for the one reading the colours);
- ``input.png`` and ``feature_maps_<layer>_image<i>.png`` for the model's stages;
- ``kernels_demo.png``; ``gradcam_<layer>.png``;
- from the predictions on the whole ``split`` (averaged over the run's ``system.tta_*`` views):
  ``confusion_matrix.png``, ``per_class_accuracy.png``, ``misclassified.png``, ``pr_curves.png``.

The pictures of images (input, feature maps, Grad-CAM) and the predictions come from ``split=``:
``val`` by default, ``test`` for a run that held out no validation images (``data.val_split=0``).

In a notebook, :func:`load_checkpoint` gives the network and the data module, and the functions of
:mod:`cnnpl.viz` draw any one picture.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from cnnpl import viz
from cnnpl.errors import CnnplError, DataError, first_few, run_command, yaml_word
from cnnpl.plugins import (
    PLUGINS_KEY,
    PluginWarning,
    _is_path,
    load_plugins,
    plugin_specs,
    plugin_warnings_on_one_line,
    split_plugin_overrides,
)

MAX_IMAGES = 64  # each image writes a feature-map picture per stage: 100000 wrote thousands of PNGs
USAGE = (
    "usage: python -m cnnpl.render ckpt=PATH out=DIR [config=PATH] [num_images=N (8, at most 64)] "
    "[split=val|test|train] [skip_broken_plugins=true] [key=value ...]"
)


def find_config(ckpt: Path) -> Path:
    """The run's ``config.yaml``: next to the checkpoint, or one folder up (``<run>/checkpoints/x.ckpt``)."""
    from cnnpl.checkpoint import run_config_of

    found = run_config_of(ckpt)
    if found is not None:
        return found
    above = ckpt.absolute().parent.parent  # not "." for loose/copy.ckpt
    raise CnnplError(f"no config.yaml next to {ckpt} or in {above}; pass config=<run dir>/config.yaml")


def started_in(run_dir: Path) -> Path | None:
    """The working directory the run was started in, from Hydra's record (``.hydra/hydra.yaml``); None if unknown."""
    record = run_dir / ".hydra" / "hydra.yaml"
    if not record.is_file():
        return None
    try:
        cwd = OmegaConf.select(OmegaConf.load(record), "hydra.runtime.cwd")
    except (OSError, yaml.YAMLError, OmegaConfBaseException):
        return None
    return Path(cwd) if isinstance(cwd, str) else None


def find_plugin_file(spec: str, run_dir: Path) -> Path:
    """Where the plugin file ``spec`` of the run in ``run_dir`` is now.

    A relative ``spec`` was relative to the folder the run was started in; that folder (when Hydra
    recorded it), the working directory, and ``run_dir`` and the folders above it are tried in turn
    (``outputs/<date>/<time>`` lies below the folder it was started in). Raises :class:`CnnplError`
    naming the file and how to pass it when none holds it.
    """
    path = Path(spec).expanduser()
    hint = f"pass its path: {PLUGINS_KEY}=[/path/to/{path.name}]"
    if path.is_absolute():
        if path.exists():
            return path
        raise CnnplError(f"plugin file {spec!r} (from the run's config) does not exist; {hint}")
    run_dir = run_dir.resolve()
    origin = started_in(run_dir)
    bases = [origin] if origin is not None else []
    bases += [Path.cwd(), run_dir, *run_dir.parents]
    for base in dict.fromkeys(bases):  # in order, each once
        if (base / path).exists():
            if origin is not None and base != origin:  # another file of that name: perhaps not the run's own
                warnings.warn(
                    f"the run's plugin file {spec!r} is no longer in the folder the run was started in ({origin}); "
                    f"loading {base / path} instead (pass {PLUGINS_KEY}=[<its path>] to choose another)",
                    PluginWarning,
                    stacklevel=2,
                )
            return base / path
    where = f"the folder the run was started in ({origin}), " if origin is not None else ""
    raise CnnplError(
        f"plugin file {spec!r} (from the run's config) was not found in {where}the working directory "
        f"({Path.cwd()}) or the run folder {run_dir} and those above it; {hint}"
    )


def read_weights(ckpt: str | Path) -> dict[str, Any]:
    """The network's weights in the Lightning checkpoint ``ckpt``: its ``state_dict`` less the ``net.`` prefix.

    Read with :func:`cnnpl.checkpoint.safe_load`, so a file holding pickled code is refused before it
    can run. Raises :class:`CheckpointError` (one line) for a missing, truncated or unsafe file, or
    one that is no Lightning checkpoint.
    """
    return _weights_of(ckpt, _read_checkpoint(ckpt))


def _read_checkpoint(ckpt: str | Path) -> Any:
    from cnnpl.checkpoint import CheckpointError, safe_load  # Lightning: only when a checkpoint is read

    if not Path(ckpt).expanduser().exists():  # safe_load's message, with where a run keeps its checkpoints
        raise CheckpointError(f"checkpoint {str(ckpt)!r} does not exist; pass ckpt=<run dir>/checkpoints/last.ckpt")
    return safe_load(ckpt)


def _weights_of(ckpt: str | Path, checkpoint: Any) -> dict[str, Any]:
    from cnnpl.checkpoint import CheckpointError

    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} is not a Lightning checkpoint (no 'state_dict'); "
            "give a .ckpt written by python -m cnnpl (<run dir>/checkpoints/last.ckpt)"
        )
    return {k.removeprefix("net."): v for k, v in state.items() if isinstance(k, str) and k.startswith("net.")}


def check_weights_fit(ckpt: str | Path, net: nn.Module, weights: Mapping[str, Any]) -> None:
    """Refuse ``weights`` (from ``ckpt``) that do not fit ``net``, naming the first tensors with another
    shape, missing or not in the network, as :func:`cnnpl.checkpoint.check_checkpoint_fits` does."""
    from cnnpl.checkpoint import CheckpointError, fit_problems

    problems = fit_problems(weights, net.state_dict(), "network")
    if problems:
        raise CheckpointError(
            f"checkpoint {str(ckpt)!r} does not fit the network its config describes ({type(net).__name__}): "
            + "; ".join(problems)
            + "; pass the config of the run that wrote it (config=<its run dir>/config.yaml)"
        )


def _other_images(ckpt: Path, checkpoint: Mapping[str, Any], datamodule: Any, given: DictConfig) -> str | None:
    """What to say of images of another shape than the run's (helper-139: a folder of 28x28 copies was told that
    the checkpoint does not fit its config, and to pass the config it had); None for the run's shape, or a
    checkpoint written before cnnpl recorded it. Another number of channels is refused here; another size is
    the caller's to refuse where the network cannot take it or the weights then do not fit (a network that ends
    in global pooling takes any size: helper-142)."""
    from cnnpl.callbacks.guards import IMAGE_SHAPE

    trained = (checkpoint.get("cnnpl") or {}).get(IMAGE_SHAPE)
    here = [datamodule.in_channels, *datamodule.input_size]
    if not trained or list(trained) == here:
        return None
    c, h, w = trained
    changed = [
        f"{key}={OmegaConf.select(given, key)}" for key in SHAPE_KEYS if OmegaConf.select(given, key) is not None
    ]
    where = f"the images of {' '.join(changed)}" if changed else "the run's images here"
    generated = [item for item in changed if not item.startswith("data.root=")]
    fix = (
        f"leave out {' '.join(generated)}"
        if generated
        else f"give data.root= a folder of {h}x{w} images, as the run had"
    )
    message = (
        f"checkpoint {str(ckpt)!r} was trained on {c}x{h}x{w} images (channels x height x width), and {where} are "
        f"{here[0]}x{here[1]}x{here[2]}; {fix}"
    )
    if here[0] != c:
        raise CnnplError(message)
    return message


SHAPE_KEYS = ("data.root", "data.image_size")  # the overrides that give render images of another shape


def read_config(path: Path) -> DictConfig:
    """The run config in the YAML file ``path``; :class:`CnnplError` naming the file when it cannot be read
    or is not a mapping of settings."""
    hint = "pass config=<run dir>/config.yaml"
    if path.is_dir():
        raise CnnplError(f"config {str(path)!r} is a folder; pass config={path / 'config.yaml'}")
    if not path.is_file():
        raise CnnplError(f"config file {str(path)!r} does not exist; {hint}")
    try:
        cfg = OmegaConf.load(path)
    except yaml.MarkedYAMLError as err:  # its str() is several lines: the problem and where
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise CnnplError(f"cannot read config {str(path)!r}: {err.problem or err.context}{where}; {hint}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CnnplError(f"cannot read config {str(path)!r}: {reason}; {hint}") from None
    model, data = (cfg.get("model"), cfg.get("data")) if isinstance(cfg, DictConfig) else (None, None)
    if not (isinstance(model, DictConfig) and model.get("name") and isinstance(data, DictConfig)):
        raise CnnplError(
            f"config {str(path)!r} is not a cnnpl run config (a mapping of settings with model and data, as python "
            f"-m cnnpl writes); {hint}"
        )
    return cfg


def load_checkpoint(
    ckpt: str | Path, config: str | Path | None = None, overrides: Sequence[str] | str = (), *, split: str | None = None
) -> tuple[nn.Module, Any, DictConfig]:
    """``(network in eval mode, data module set up, config)`` of a ``python -m cnnpl`` checkpoint.

    ``overrides`` are ``key=value`` strings applied to the run's config (``data.root=...``; the run's own
    relative ``data.root`` is looked for in the folder the run was started in, then in the working
    directory); for the validation split (``split``: ``"val"``, or None, render's default) not those that make
    another one (:func:`_check_keeps_val_split`). The
    plugins the config names are loaded first: files as :func:`find_plugin_file` finds them, modules
    from the folder the run was started in or ``sys.path``. ``plugins=[...]`` among the overrides
    replaces them, relative to the working directory; ``skip_broken_plugins=true`` skips broken
    installed plugins (with a warning) instead of raising. A checkpoint or config that cannot be read
    (:func:`read_weights`, :func:`read_config`), or weights that do not fit the network
    (:func:`check_weights_fit`), raise :class:`CnnplError` with one line.
    """
    from cnnpl.network import build_model, instantiate_node

    if isinstance(overrides, str):  # one override, not a list of its characters
        overrides = [overrides]
    from cnnpl.checkpoint import checkpoint_config, run_config_of

    ckpt = Path(ckpt).expanduser()
    checkpoint = _read_checkpoint(ckpt)  # before the slow part
    weights = _weights_of(ckpt, checkpoint)
    held = checkpoint_config(checkpoint) if not config and run_config_of(ckpt) is None else None
    if held is not None:  # a checkpoint copied away from its run: the settings it holds (its run's config.yaml)
        config_path, cfg = None, OmegaConf.create(held)
    else:
        config_path = Path(config).expanduser() if config else find_config(ckpt)
        cfg = read_config(config_path)
    _, skip_broken, overrides = split_plugin_overrides(list(overrides))  # skip_broken_plugins= is no config key
    check_overrides(cfg, overrides)
    run_cfg = cfg
    given, cfg = _merged(cfg, overrides)
    drawn_val = split == "val" or (split is None and OmegaConf.select(cfg, "data.val_split", default=None) != 0)
    if drawn_val:  # (a run without a validation split is drawn on its test split: helper-143)
        _check_keeps_val_split(run_cfg, cfg, overrides)
    specs = plugin_specs(cfg.get(PLUGINS_KEY))
    if PLUGINS_KEY in given:
        load_plugins(specs, skip_broken=skip_broken, base=Path.cwd())
    else:  # the run's own list: relative to where it started (a copied checkpoint's: to the working directory)
        run_dir = config_path.parent if config_path is not None else Path.cwd()
        specs = [str(find_plugin_file(s, run_dir)) if _is_path(s) else s for s in specs]
        load_plugins(specs, skip_broken=skip_broken, base=started_in(run_dir.resolve()) or Path.cwd())
    raw_root = OmegaConf.to_container(cfg.data, resolve=False).get("root") if "data" in cfg else None
    origin = started_in(config_path.parent.resolve()) if config_path is not None else None
    root = OmegaConf.select(cfg, "data.root")
    relative = isinstance(root, str) and bool(root.strip()) and not Path(root).expanduser().is_absolute()
    if relative and origin is not None and OmegaConf.select(given, "data.root") is None and (origin / root).exists():
        cfg.data.root = str(origin / root)  # the run's data.root, relative to where it started (still there)
    _check_registered(cfg)
    datamodule = instantiate_node(cfg.data)
    try:
        datamodule.setup("fit")
    except DataError as err:  # its data=shapes advice: render draws the run's own data, and refuses data=
        from cnnpl.data.cifar import OFFLINE_DATA

        message = str(err).removesuffix(OFFLINE_DATA)
        if "oc.env:CNNPL_DATA" in str(raw_root) and "CNNPL_DATA" not in os.environ:
            message += f"; the run's data.root is {raw_root}, and $CNNPL_DATA is not set here"
        raise DataError(message) from None
    other = _other_images(ckpt, checkpoint, datamodule, given)  # (another number of channels: refused there)
    try:
        net = build_model(
            _without_pretrained(cfg), datamodule.num_classes, datamodule.in_channels, datamodule.input_size
        )
        check_weights_fit(ckpt, net, weights)
    except CnnplError:  # (GeometryError and CheckpointError among them) the size, where it is another
        if other is not None:
            raise CnnplError(other) from None
        raise
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:  # what the fit check does not look at (a value that is no tensor): one line
        reason = " ".join(line.strip() for line in str(err).splitlines())
        raise CnnplError(f"checkpoint {str(ckpt)!r} does not fit the network its config describes: {reason}") from None
    return net.eval(), datamodule, cfg


OPTIONS = ("ckpt", "out", "config", "num_images", "split")  # render's own key=value options


def _check_registered(cfg: DictConfig) -> None:
    """Refuse a run whose model or layers no loaded component is: a plugin's (an installed package, or one
    registered from Python) that is gone now. The registry's "unknown model 'tiny_net'; did you mean
    'fast_net'?" offered an architecture the checkpoint's weights cannot fit."""
    from cnnpl.registry import get_registry

    for family in ("model", "conv", "pool", "norm", "act"):
        name = OmegaConf.select(cfg, f"{family}.name")
        if isinstance(name, str) and name not in get_registry(family):
            raise CnnplError(
                f"the run's {family} {name!r} is not registered here: the plugin that registered it is not installed "
                "or loaded now; install it (pip install <its package>), or pass plugins=[<its file or module>]"
            )


def _merged(cfg: DictConfig, overrides: Sequence[str]) -> tuple[DictConfig, DictConfig]:
    """``(overrides as a config, cfg with them)``; :class:`CnnplError` naming one that cannot be read
    (``data.num_train=[1,``) or refers to a setting the run does not have (``${nope}``)."""
    for item in overrides:
        try:
            OmegaConf.from_dotlist([item])
        except (yaml.YAMLError, OmegaConfBaseException) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise CnnplError(f"cannot read the override {item!r}: {reason}; give a plain value (key=value)") from None
    given = OmegaConf.from_dotlist(list(overrides))
    merged = OmegaConf.merge(cfg, given)
    for item in overrides:
        try:  # ${data.batch_size} refers to the run's own setting: that one resolves
            OmegaConf.select(merged, item.partition("=")[0], throw_on_resolution_failure=True)
        except OmegaConfBaseException as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise CnnplError(f"cannot read the override {item!r}: {reason}") from None
    return given, merged


def check_overrides(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse an override that is not a setting of the run's config ``cfg``, or replaces a group of them.

    A misspelt key (``numimages=3``, ``data.rot=...``) would be ignored or fail deep inside a
    constructor, and a group choice (``pool=avg``, ``data=shapes``) would put one word where the run's
    settings are: render rebuilds the run's own network and data, changing their settings only.
    """
    import difflib

    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith(("+", "~")):  # Hydra's add / delete: a rebuild of the run changes settings only
            bare = key.lstrip("+~")
            parent, _, leaf = bare.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            has = isinstance(node, DictConfig) and leaf in node
            fix = f"write {bare}={value} without the {key[0]}" if has and key[0] == "+" else "leave it out"
            raise CnnplError(f"{item}: render changes the run's own settings, it cannot add or delete one; {fix}")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in node:
            names = [str(k) for k in node] if isinstance(node, DictConfig) else []
            close = difflib.get_close_matches(leaf, names + ([] if parent else list(OPTIONS)), n=1)
            hint = f"; did you mean {parent + '.' if parent and close else ''}{close[0]}?" if close else ""
            raise CnnplError(
                f"{key} is not a setting of the run's config{hint} (render's own options: {', '.join(OPTIONS)}, "
                "skip_broken_plugins)"
            )
        if isinstance(node[leaf], DictConfig) and not value.lstrip().startswith("{"):
            example = "data.root=<folder>" if key == "data" else f"{key}.<setting>=..."
            raise CnnplError(
                f"{item} would replace the run's {key} settings with a word: render rebuilds the run's own {key}, "
                f"so change its settings instead ({example}), or train a run with {item}"
            )


SPLIT_KEYS = ("data.seed", "data.val_split")  # what chooses the run's validation images (seed: through data.seed)


def _check_keeps_val_split(run_cfg: DictConfig, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse, for the validation split, overrides that make another one than the run validated on (helper-139:
    ``seed=7`` drew a "val split" of CIFAR-10 images the network had trained on, its accuracy 0.475 where the
    run's was 0.375); the same values as the run's stay (helper-142). The test split is not chosen by them."""
    for key in SPLIT_KEYS:
        before, after = OmegaConf.select(run_cfg, key, default=None), OmegaConf.select(cfg, key, default=None)
        if before == after:
            continue
        named = [item for item in overrides if item.partition("=")[0].strip() in (key, "seed", "data")]
        raise CnnplError(
            f"{' '.join(named) or ' '.join(overrides)}: the val split would not be the run's ({key} {before}, now "
            f"{after}), and from image files it would hold images the network trained on; leave it out, or draw "
            "another split (split=test)"
        )


def _without_pretrained(cfg: DictConfig) -> DictConfig:
    """``cfg`` with no ``model.pretrained`` file to read: the checkpoint holds every weight (and a
    fine-tuned run's weights file may have moved or be on another machine)."""
    if cfg.model.get("pretrained") is None:
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.model.pretrained = None
    if "freeze_features" in cfg.model:
        cfg.model.freeze_features = False  # it needs pretrained; no parameter is trained here
    if cfg.model.get("new_head"):
        cfg.model.new_head = None  # it needs pretrained too; the network is built for the data's classes anyway
    return cfg


def _safe(name: str) -> str:
    return name.replace("/", "_")


def check_output_folder(out: str | Path) -> None:
    """Refuse ``out`` where no folder can be made or written to, creating nothing: a refused command leaves no
    folder behind (:func:`output_folder` makes it once the pictures are drawn)."""
    out = Path(out).expanduser()
    hint = "pass out=<a folder you can write to>"
    existing = next(p for p in (out, *out.parents, Path.cwd()) if p.exists())
    if not existing.is_dir():
        raise CnnplError(f"cannot write pictures to {out}: {existing} is a file; {hint}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CnnplError(f"cannot write pictures to {out}: permission denied; {hint}")


def output_folder(out: str | Path) -> Path:
    """``out`` as a folder that exists and can be written to, created if needed; else :class:`CnnplError`."""
    out = Path(out).expanduser()
    hint = "pass out=<a folder you can write to>"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        in_the_way = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{in_the_way} is a file" if in_the_way is not None else (err.strerror or str(err)).lower()
        raise CnnplError(f"cannot write pictures to {out}: {reason}; {hint}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise CnnplError(f"cannot write pictures to {out}: permission denied; {hint}")
    return out


def render(
    net: nn.Module,
    datamodule: Any,
    out: str | Path,
    num_images: int = 8,
    split: str | None = None,
    tta: tuple[bool, int] = (False, 0),
) -> list[Path]:
    """Write every picture of ``net`` on ``datamodule``'s ``split`` (:func:`cnnpl.viz.pick_split`) to ``out``;
    returns the files written. ``tta``: the run's ``(system.tta_flip, system.tta_translate)``, which the
    predictions (confusion matrix, per-class accuracy, misclassified images, PR curves) average over, as the
    run's validation and test did (:func:`run_tta` reads them from its config)."""
    _check_num_images(num_images)
    split = viz.pick_split(datamodule, split)
    out = output_folder(out)
    try:
        return _draw(net, datamodule, out, num_images, split, tta)
    except OSError as err:  # a full disk, a folder os.access let through (root on /sys), a read-only file there
        where = err.filename or out
        raise CnnplError(
            f"cannot write pictures to {out}: {where}: {err.strerror or err}; pass out=<a folder you can write to>"
        ) from None


def _check_num_images(value: object) -> int:
    """``num_images`` as an int from 1 to :data:`MAX_IMAGES`, or the one-line error that says so."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_IMAGES:
        raise CnnplError(
            f"num_images must be a whole number from 1 to {MAX_IMAGES} (each image writes a picture per stage), "
            f"got {yaml_word(value)}"
        )
    return int(text)


def run_tta(cfg: DictConfig) -> tuple[bool, int]:
    """``(system.tta_flip, system.tta_translate)`` of a run's config: the test-time augmentations its
    validation and test averaged over; (False, 0) for a config without them."""
    flip, translate = OmegaConf.select(cfg, "system.tta_flip"), OmegaConf.select(cfg, "system.tta_translate")
    return flip is True, translate if isinstance(translate, int) and not isinstance(translate, bool) else 0


def _draw(net: nn.Module, datamodule: Any, out: Path, num_images: int, split: str, tta: tuple[bool, int]) -> list[Path]:
    files: list[Path] = []
    data = datamodule.split(split)
    names = list(datamodule.class_names)

    for layer in viz.conv_layers(net):
        weight = viz.conv_weight(net, layer)[1]
        grid = viz.filters_grid(weight, 32, 16, groups=viz.conv_groups(net, layer))
        files.append(viz.save_png(grid, out / f"filters_{_safe(layer)}.png"))
        if viz.reads_rgb(net, layer):
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
    cam_layer = viz.cam_layer(net)
    if cam_layer is not None:
        cams, _ = viz.grad_cam(net, images, cam_layer)
        overlay = viz.grad_cam_overlay(pixels, cams)
        rgb = pixels if pixels.shape[1] == 3 else pixels.expand(-1, 3, -1, -1)
        cells = viz.upscale(torch.stack([rgb, overlay], dim=1), 3)
        files.append(viz.save_png(viz.tile(cells, pad=2), out / f"gradcam_{_safe(cam_layer)}.png"))

    logits = viz.predict(net, datamodule.normalize(data.images), tta_flip=tta[0], tta_translate=tta[1])
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
        shown = __doc__.split("In a notebook")[0] if args else __doc__.strip().splitlines()[0] + "\n"
        print(shown.strip().replace("``", "") + "\n\n" + USAGE)  # --help: what it writes, the defaults
        return 0 if args else 2
    options: dict[str, str] = {}
    overrides: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            print(f"cnnpl.render: error: expected key=value, got {arg!r}; {USAGE}", file=sys.stderr)
            return 2
        if key in OPTIONS:
            options[key] = value
        else:
            overrides.append(arg)
    try:
        if "ckpt" not in options or "out" not in options:
            raise CnnplError(f"ckpt= and out= are required; {USAGE}")
        if not options.get("config", "x").strip():  # config=$CFG with nothing in it: the run's own, as without it
            del options["config"]
        empty = [key for key in ("ckpt", "out") if key in options and not options[key].strip()]
        if empty:  # out= wrote into the working directory, ckpt= read it as a checkpoint
            raise CnnplError(f"{empty[0]}= is empty; give {empty[0]}=<{'folder' if empty[0] == 'out' else 'file'}>")
        num_images = _check_num_images(options.get("num_images", "8"))
        if "split" in options:
            viz.check_split_name(options["split"])
        check_output_folder(options["out"])  # before the slow part
        torch.set_grad_enabled(True)
        with plugin_warnings_on_one_line("cnnpl.render"):  # a skipped broken plugin: as the training command
            net, datamodule, cfg = load_checkpoint(
                options["ckpt"], options.get("config"), overrides, split=options.get("split")
            )
        split = viz.pick_split(datamodule, options.get("split"))
        out = Path(options["out"]).expanduser()
        before = set(out.glob("*.png")) if out.is_dir() else set()
        files = render(net, datamodule, out, num_images, split, run_tta(cfg))
    except CnnplError as err:
        print(f"cnnpl.render: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} pictures of the {split} split to {out}")
    earlier = sorted(before - set(files))
    if earlier:  # an earlier render's (more images, another split or network): mixed in with these, left as they were
        named = first_few([path.name for path in earlier], 1)
        print(
            f"cnnpl.render: warning: {out} also holds {len(earlier)} picture{'s' * (len(earlier) > 1)} this render did "
            f"not write ({named}), left as they were; give an empty out= folder to keep renders apart",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_command(main)
