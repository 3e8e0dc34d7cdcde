"""The visualisation callbacks end to end: train on data=shapes, read the TensorBoard event files back.

One short training with ``callbacks=full`` (every picture) is shared by the tag / size / value tests;
the setup errors are checked with their exact messages; one run goes through the real command line.
"""

from __future__ import annotations

import copy
import io
import math
import re
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image
from tests.conftest import THREADS, TINY, run_cli
from torch import nn

import cnnpl
from cnnpl import viz
from cnnpl.callbacks import FeatureMapsCallback, FiltersCallback, VisualCallback
from cnnpl.data.shapes import CLASSES
from cnnpl.errors import CnnplError
from cnnpl.train import train

STAGES = ["features.block1", "features.block2", "features.block3"]


def read_events(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def decode(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))


def grid_side(n: int, cell: int, pad: int) -> int:
    return n * cell + (n + 1) * pad


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Two tiny epochs with every picture on (and the test), in-process; returns (run dir, config, events)."""
    out = tmp_path_factory.mktemp("full")
    torch.set_num_threads(THREADS)
    cfg = cnnpl.compose([*TINY, "callbacks=full", "trainer.max_epochs=2"], output_dir=str(out))
    metrics = train(cfg)
    return out, cfg, read_events(out / "tensorboard"), metrics


@pytest.mark.slow
def test_every_expected_tag_is_logged_once_per_due_step(full_run) -> None:
    _, _, acc, _ = full_run
    tags = acc.Tags()
    steps_per_epoch = 256 // 32  # 320 images, 20% held out for validation, batches of 32
    end1, end2 = steps_per_epoch, 2 * steps_per_epoch
    expected_images = {
        "filters/features.block1.conv": [0, end1, end2],
        "filters/features.block1.conv/rgb": [0, end1, end2],
        "feature_maps/input": [0],
        "kernels_demo": [0],
        "diagnostics/confusion_matrix": [end1, end2],
        "diagnostics/misclassified": [end1, end2],
        "gradcam/features.block3.conv": [end1, end2],
        **{f"feature_maps/{s}/image{i}": [end1, end2] for s in STAGES for i in range(4)},
    }
    assert set(tags["images"]) == set(expected_images)
    for tag, steps in expected_images.items():
        assert [e.step for e in acc.Images(tag)] == steps, tag  # no duplicates, the schedule as configured
    assert {f"per_class_acc/{c}" for c in CLASSES} <= set(tags["scalars"])
    assert {f"pr_curves/{c}" for c in CLASSES} <= set(tags["tensors"])
    params = [n for n, _ in cnnpl.build("model", "simple_cnn", num_classes=10).named_parameters()]
    assert set(tags["histograms"]) == {f"{kind}/net.{p}" for kind in ("weights", "gradients") for p in params}
    assert [e.step for e in acc.Histograms("weights/net.features.block1.conv.weight")] == [end1, end2]
    # gradients come from the first optimizer step of each due epoch
    assert [e.step for e in acc.Histograms("gradients/net.features.block1.conv.weight")] == [0, end1]


@pytest.mark.slow
def test_filters_are_the_checkpoint_weights_normalised_to_0_1(full_run) -> None:
    out, _, acc, _ = full_run
    scale, pad = 8, 1
    events = acc.Images("filters/features.block1.conv")
    last = decode(events[-1])[..., 0].astype(np.float64) / 255
    assert last.shape == (grid_side(32, 3 * scale, pad), grid_side(3, 3 * scale, pad))  # 32 filters x 3 channels
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    weight = state["net.features.block1.conv.weight"]
    w01 = ((weight - weight.min()) / (weight.max() - weight.min())).numpy()
    centres = np.array(
        [
            [[last[pad + f * 25 + i * scale + 4, pad + c * 25 + j * scale + 4] for j in range(3)] for i in range(3)]
            for f in range(32)
            for c in range(3)
        ]
    ).reshape(32, 3, 3, 3)
    assert np.abs(centres - w01).max() <= 1 / 255 + 1e-9  # PNG stores 8 bits
    assert centres.min() == 0.0 and centres.max() == 1.0
    first = decode(events[0])[..., 0]
    assert not np.array_equal(first, decode(events[-1])[..., 0])  # the filters learned something
    rgb = decode(acc.Images("filters/features.block1.conv/rgb")[-1])
    assert rgb.shape == (grid_side(4, 24, 1), grid_side(8, 24, 1), 3)  # 32 colour tiles, 8 per row
    assert not (rgb[..., 0] == rgb[..., 1]).all()  # in colour, not gray


@pytest.mark.slow
def test_picture_sizes_and_contents(full_run) -> None:
    _, _, acc, _ = full_run
    # feature maps: 32 channels shown, 6 x 6 tiles, each map enlarged to >= 32 px by an integer factor
    for stage, side in zip(STAGES, (15, 6, 2), strict=True):
        cell = side * math.ceil(32 / side)
        for i in range(4):
            image = decode(acc.Images(f"feature_maps/{stage}/image{i}")[-1])
            assert image.shape == (grid_side(6, cell, 1), grid_side(6, cell, 1), 3), stage
            assert image.std() > 10, f"{stage} image{i} is flat"
    gradcam = decode(acc.Images("gradcam/features.block3.conv")[-1])
    assert gradcam.shape == (grid_side(8, 96, 2), grid_side(2, 96, 2), 3)  # image | heat map, 8 rows
    images = decode(acc.Images("feature_maps/input")[0])
    assert images.shape == (grid_side(2, 32, 2), grid_side(2, 32, 2), 3)
    for tag in ("kernels_demo", "diagnostics/confusion_matrix", "diagnostics/misclassified"):
        picture = decode(acc.Images(tag)[-1])
        assert picture.std() > 20 and picture.min() < 50 and picture.max() > 200, tag


@pytest.mark.slow
def test_per_class_accuracy_adds_up_to_val_acc(full_run) -> None:
    _, cfg, acc, _ = full_run
    dm = instantiate(cfg.data)
    dm.setup("fit")
    counts = torch.bincount(dm.split("val").labels, minlength=10).double()
    per_class = torch.tensor([acc.Scalars(f"per_class_acc/{c}")[-1].value for c in CLASSES], dtype=torch.float64)
    assert ((per_class >= 0) & (per_class <= 1)).all()
    overall = float((per_class * counts).sum() / counts.sum())
    assert overall == pytest.approx(acc.Scalars("val/acc")[-1].value, abs=1e-6)


@pytest.mark.slow
def test_hparams_and_embedding(full_run) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    out, _, acc, metrics = full_run
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    names = {h.name for h in experiment.hparam_infos}
    assert {"model", "lr", "optimizer", "batch_size", "system/num_classes"} <= names
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert metric_tags == {"val/acc", "val/loss", "test/acc", "test/loss", "train/acc"}
    assert metric_tags <= set(acc.Tags()["scalars"])  # the final values TensorBoard shows exist
    assert acc.Scalars("test/acc")[-1].value == pytest.approx(metrics["test/acc"])
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = start.session_start_info.hparams
    assert values["model"].string_value == "simple_cnn" and values["lr"].number_value == pytest.approx(1e-3)
    assert values["system/compile_dynamic"].string_value == "null"  # as the config writes it (note 44: "None")
    assert "_hparams_/session_end_info" in content

    logdir = out / "tensorboard"
    assert "tensor_path" in (logdir / "projector_config.pbtxt").read_text()
    folder = logdir / "00016" / "embedding"
    rows = (folder / "tensors.tsv").read_text().strip().splitlines()
    assert len(rows) == 64 and len(rows[0].split("\t")) == 128  # all 64 val images, the 128 penultimate features
    labels = (folder / "metadata.tsv").read_text().strip().splitlines()
    assert len(labels) == 64 and set(labels) == set(CLASSES)
    assert Image.open(folder / "sprite.png").size == (8 * 32, 8 * 32)


@pytest.mark.slow
def test_render_writes_the_same_pictures_from_a_checkpoint(full_run, tmp_path) -> None:
    from cnnpl.render import main

    out, _, _, _ = full_run
    assert main([f"ckpt={out / 'checkpoints' / 'last.ckpt'}", f"out={tmp_path}", "num_images=2"]) == 0
    written = {p.name for p in tmp_path.glob("*.png")}
    expected = {
        "filters_features.block1.conv.png",
        "filters_features.block1.conv_rgb.png",
        "filters_features.block2.conv.png",
        "filters_features.block3.conv.png",
        "input.png",
        "kernels_demo.png",
        "gradcam_features.block3.conv.png",
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "misclassified.png",
        "pr_curves.png",
        *{f"feature_maps_{s}_image{i}.png" for s in STAGES for i in range(2)},
    }
    assert written == expected
    filters = np.asarray(Image.open(tmp_path / "filters_features.block1.conv.png"))
    assert filters.shape == (grid_side(32, 24, 1), grid_side(3, 24, 1)) and filters.min() == 0 and filters.max() == 255
    assert main([f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path}"]) == 2


def compose_tiny(tmp_path: Path, *overrides: str):
    return cnnpl.compose([*TINY, *overrides], output_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["callbacks=[minimal,freeze]", "callbacks.freeze.parameters=[net.nope]", "callbacks.freeze.epochs=1"],
            r"^callbacks\.freeze\.parameters: net\.nope not in the model; ",
        ),
        (["callbacks.feature_maps.layers=[nope]"], r"^callbacks\.feature_maps\.layers: SimpleCNN has no layer 'nope'"),
        (["callbacks.gradcam.layer=nope"], r"^callbacks\.gradcam\.layer: SimpleCNN has no layer 'nope'"),
        (["callbacks.filters.layers=[nope]"], r"^callbacks\.filters\.layers: SimpleCNN has no layer 'nope'"),
    ],
)
def test_a_dry_run_checks_the_parts_of_the_network_callbacks_name(tmp_path, overrides, message) -> None:
    """helper-104: fit=false test=false said "the data, network, optimizer and callbacks were built and checked",
    but these were checked in Lightning's setup only, which a dry run never reaches."""
    with pytest.raises(CnnplError, match=message):
        train(compose_tiny(tmp_path, *overrides, "fit=false", "test=false"))


NO_TENSORBOARD = (
    "callbacks.filters draws to TensorBoard, but the run has no TensorBoardLogger (loggers: CSVLogger); "
    "use logger=tensorboard, or callbacks=minimal for no pictures"
)


def test_setup_fails_without_a_tensorboard_logger(tmp_path) -> None:
    from cnnpl.train import check_settings

    with pytest.raises(CnnplError) as err:
        train(compose_tiny(tmp_path, "logger=csv"))
    assert str(err.value) == NO_TENSORBOARD
    with pytest.raises(CnnplError) as err:  # from the config, nothing built (as a sweep checks its jobs)
        check_settings(compose_tiny(tmp_path, "logger=csv"))
    assert str(err.value) == NO_TENSORBOARD
    check_settings(compose_tiny(tmp_path, "logger=csv", "callbacks=minimal"))
    with pytest.raises(CnnplError) as err:  # helper-132: without a logger, refused once the Trainer was built
        check_settings(compose_tiny(tmp_path, "~logger", "~callbacks.lr_monitor"))
    assert str(err.value) == NO_TENSORBOARD.replace("(loggers: CSVLogger)", "(loggers: none)").replace(
        "use logger=tensorboard", "drop ~logger (the default logger is TensorBoard's)"
    )
    with pytest.raises(CnnplError, match=r"^callbacks\.gradcam draws to TensorBoard, but the run has no "):
        check_settings(compose_tiny(tmp_path, "logger=csv", "callbacks=[minimal,gradcam]"))  # a registered one


@pytest.mark.parametrize("value", ["5", "foo"])
def test_a_callback_given_a_value_not_settings_is_one_line(tmp_path, value: str) -> None:
    # helper-130: Hydra's "Cannot instantiate config of type int" in five lines, exit 1, a run folder left
    from cnnpl.train import check_settings

    with pytest.raises(CnnplError) as err:
        check_settings(compose_tiny(tmp_path, f"callbacks.filters={value}"))
    assert str(err.value) == (
        f"callbacks.filters={value} is not a callback's settings: give one of them (callbacks.filters.<setting>=...), "
        "or drop the callback with ~callbacks.filters"
    )
    check_settings(compose_tiny(tmp_path, "callbacks.filters=null"))  # no callback there: as ~callbacks.filters


def test_a_callbacks_settings_without_a_target_say_how_to_add_it(tmp_path) -> None:
    # helper-130: "callbacks.histograms built a DictConfig, not a Lightning Callback", once the data had loaded
    from cnnpl.checks import COMMAND_LINE
    from cnnpl.train import check_settings

    for overrides, message in (
        (
            ["+callbacks.histograms.every_n_epochs=2"],
            "callbacks.histograms has settings (every_n_epochs) but no _target_ to build: add it with "
            "callbacks=[default,histograms], then set callbacks.histograms.<setting>= without the +",
        ),
        (
            ["callbacks=minimal", "+callbacks.histograms.every_n_epochs=2"],
            "callbacks.histograms has settings (every_n_epochs) but no _target_ to build: add it with "
            "callbacks=[minimal,histograms], then set callbacks.histograms.<setting>= without the +",
        ),
        (  # helper-132: the experiment chose the set (was "[default,histograms]"), and an empty list ("[,...]")
            ["experiment=fast_cifar10", "+callbacks.histograms.every_n_epochs=2"],
            "callbacks.histograms has settings (every_n_epochs) but no _target_ to build: add it with "
            "callbacks=[minimal,histograms], then set callbacks.histograms.<setting>= without the +",
        ),
        (  # helper-134: built on fast_cifar10, whose set it takes
            ["experiment=fast_cifar10_gpu", "+callbacks.histograms.every_n_epochs=2"],
            "callbacks.histograms has settings (every_n_epochs) but no _target_ to build: add it with "
            "callbacks=[minimal,histograms], then set callbacks.histograms.<setting>= without the +",
        ),
        (
            ["callbacks=[]", "+callbacks.histograms.every_n_epochs=2"],
            "callbacks.histograms has settings (every_n_epochs) but no _target_ to build: add it with "
            "callbacks=[histograms], then set callbacks.histograms.<setting>= without the +",
        ),
        (
            ["+callbacks.mine.x=2", "+callbacks.mine.y=3"],
            "callbacks.mine has settings (x, y) but no _target_ to build: give callbacks.mine._target_=<the dotted "
            "path of its class>",
        ),
    ):
        token = COMMAND_LINE.set(overrides)  # as python -m cnnpl checks them
        try:
            with pytest.raises(CnnplError) as err:
                check_settings(cnnpl.compose(["data=shapes", *overrides], output_dir=str(tmp_path)))
        finally:
            COMMAND_LINE.reset(token)
        assert str(err.value) == message


def test_histograms_with_nothing_to_draw_are_refused() -> None:
    from cnnpl.callbacks import HistogramsCallback

    with pytest.raises(CnnplError) as err:  # helper-130: accepted, and drew nothing
        HistogramsCallback(weights=False, gradients=False)
    assert str(err.value) == (
        "callbacks.histograms.weights=false and callbacks.histograms.gradients=false leave it nothing to draw; turn "
        "one on, or drop the callback with ~callbacks.histograms"
    )
    assert HistogramsCallback(weights=False).gradients and HistogramsCallback(gradients=False).weights


def test_a_sweep_without_a_tensorboard_logger_is_refused_before_hydra_starts_it(tmp_path) -> None:
    # its first job refused it, after Hydra had made the sweep's folder, multirun.yaml and 0/
    result = run_cli("-m", *TINY, "logger=csv", "pool=max,avg", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == f"cnnpl: error: {NO_TENSORBOARD} (in the sweep's job with pool=max)"
    assert not (tmp_path / "sweep").exists()


def test_a_missing_tensorboard_logger_is_refused_before_any_process_starts(tmp_path, monkeypatch) -> None:
    """Under DDP the callbacks' own check (in setup) ran in every started process, each printing it."""
    import lightning as L

    def fit(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(L.Trainer, "fit", fit)
    with pytest.raises(CnnplError, match=r"^callbacks.filters draws to TensorBoard, but the run has no Tensor"):
        train(compose_tiny(tmp_path, "logger=csv", "trainer=ddp_cpu", "trainer.devices=2"))


def test_setup_fails_on_an_unknown_layer_listing_the_real_ones(tmp_path) -> None:
    with pytest.raises(CnnplError) as err:
        train(compose_tiny(tmp_path, "callbacks.feature_maps.layers=[features.block9]"))
    assert str(err.value) == (
        "callbacks.feature_maps.layers: SimpleCNN has no layer 'features.block9' "
        "(did you mean 'features.block3' or 'features.block2' or 'features.block1'?); its layers: features, "
        "features.block1, features.block1.conv, features.block1.act, features.block1.pool, features.block2, "
        "features.block2.conv, features.block2.act, features.block2.pool, features.block3, features.block3.conv, "
        "features.block3.act, features.block3.pool, classifier, classifier.0, classifier.1, classifier.2, "
        "classifier.3, classifier.4, classifier.5"
    )


def test_a_wrong_stage_of_the_model_is_blamed_on_the_model() -> None:
    # helper-136: a plugin model's stage that it has no layer of was "callbacks.feature_maps.layers: ...", a
    # setting the user never gave
    from cnnpl.callbacks import FeatureMapsCallback

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    net.stages = ["features.block1"]
    module = SimpleNamespace(net=net)
    with pytest.raises(CnnplError) as err:
        FeatureMapsCallback().check_network(module, (3, 8, 8))
    assert str(err.value).startswith(
        "the Sequential model's `stages` (what callbacks.feature_maps draws while callbacks.feature_maps.layers=null): "
        "Sequential has no layer 'features.block1'"
    )
    with pytest.raises(CnnplError, match=r"^callbacks\.feature_maps\.layers: Sequential has no layer 'x'"):
        FeatureMapsCallback(layers=["x"]).check_network(module, (3, 8, 8))
    FeatureMapsCallback(layers=["0"]).check_network(module, (3, 8, 8))


def test_filters_layer_must_hold_a_conv_weight(tmp_path) -> None:
    with pytest.raises(CnnplError) as err:
        train(compose_tiny(tmp_path, "callbacks.filters.layers=[classifier.1]"))
    assert str(err.value) == (
        "callbacks.filters.layers: layer 'classifier.1' has no convolution weight to show; "
        "conv layers: features.block1.conv, features.block2.conv, features.block3.conv"
    )


def test_filters_of_one_conv_named_twice_are_drawn_once(tmp_path) -> None:
    # helper-139: a block and its conv name the same weights; each step drew them twice (steps [0, 0, 2, 2])
    layers = "callbacks.filters.layers=[features.block1,features.block1.conv]"
    train(
        compose_tiny(
            tmp_path, "data.num_train=80", "callbacks=[minimal,filters]", layers, "callbacks.filters.rgb=false"
        )
    )
    acc = read_events(tmp_path / "tensorboard")
    assert [e.step for e in acc.Images("filters/features.block1.conv")] == [0, 2]


@pytest.mark.parametrize(
    "setting", ["callbacks.feature_maps.layers=[classifier.1]", "callbacks.gradcam.layer=classifier.1"]
)
def test_a_layer_without_maps_is_refused_before_training(tmp_path, setting: str) -> None:
    # both used to train (and validate) until their first picture was due, then die there: Grad-CAM's after 5 epochs
    with pytest.raises(CnnplError) as err:
        train(compose_tiny(tmp_path, setting))
    key = setting.split("=")[0]
    assert re.fullmatch(
        rf"{re.escape(key)}: 'classifier\.1' outputs \(N, \d+\), not \(N, C, h, w\) maps; name a conv layer or block",
        str(err.value),
    ), str(err.value)
    assert not (tmp_path / "config.yaml").exists()  # written when training starts


class SkipsALayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.unused = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_a_layer_the_forward_pass_skips_is_named_not_a_key_error() -> None:
    net, blank = SkipsALayer(), torch.zeros(1, 3, 8, 8)
    with pytest.raises(CnnplError, match=r"^layer 'unused' did not run in SkipsALayer's forward pass; name one that"):
        viz.feature_maps(net, blank, ["conv", "unused"])
    trainer = SimpleNamespace(datamodule=SimpleNamespace(in_channels=3, input_size=(8, 8)))
    shape = FeatureMapsCallback.input_shape(trainer)
    assert shape == (3, 8, 8)
    state = torch.get_rng_state()
    FeatureMapsCallback().check_maps(net, ["conv"], shape)  # a layer with maps passes
    assert torch.equal(torch.get_rng_state(), state) and net.training  # the random state and mode are untouched
    with pytest.raises(CnnplError, match=r"^callbacks\.feature_maps\.layers: layer 'unused' did not run"):
        FeatureMapsCallback().check_maps(net, ["unused"], shape)
    with pytest.raises(CnnplError, match=r"^callbacks\.feature_maps\.layers: layer 'unused' did not run"):
        FeatureMapsCallback(layers=["unused"]).check_network(net, input_shape=shape)  # cnnpl.train's, before fit


@pytest.mark.parametrize(
    ("callback", "setting", "ways"),
    [  # were taken as null (every stage; the first conv) and as a kernels demo of no kernels
        ("feature_maps", "layers", "name one or more, give null for every stage, or "),
        ("filters", "layers", "name one or more, give null for the first conv layer that learns, or "),
        ("kernels_demo", "kernels", "name one or more or "),
    ],
)
def test_an_empty_selection_is_refused_naming_the_ways_out(callback: str, setting: str, ways: str) -> None:
    for empty in ([], ""):  # "": callbacks.feature_maps.layers= on the command line
        with pytest.raises(CnnplError) as err:
            cnnpl.build("callback", callback, **{setting: empty})
        assert str(err.value) == (
            f"callbacks.{callback}.{setting} names nothing (got {empty!r}): {ways}leave the callback out with "
            f"~callbacks.{callback}"
        )


@pytest.mark.parametrize(
    ("callback", "null"),
    [("gradcam", "the network's last conv layer or block"), ("embedding", "the last linear layer's input")],
)
def test_an_empty_layer_is_refused_offering_null(callback: str, null: str) -> None:
    # helper-118: "names nothing: name one or more" for a setting that takes exactly one
    for empty in ([], ""):
        with pytest.raises(CnnplError) as err:
            cnnpl.build("callback", callback, layer=empty)
        assert (
            str(err.value) == f"callbacks.{callback}.layer must be one layer's name, or null for {null}; got {empty!r}"
        )


def test_one_name_alone_is_a_list_of_one_not_of_its_characters() -> None:
    from cnnpl.callbacks import FreezeAfter

    # callbacks.filters.layers=features.block2 on the command line: "SimpleCNN has no layer 'f'"
    assert FiltersCallback(layers="features.block2").layers == ["features.block2"]
    assert FeatureMapsCallback(layers="features.block2").layers == ["features.block2"]
    assert cnnpl.build("callback", "kernels_demo", kernels="box_blur").kernels == ["box_blur"]
    assert FreezeAfter(parameters="net.whiten.bias", epochs=1).parameters == ["net.whiten.bias"]
    with pytest.raises(CnnplError, match=r"^callbacks\.kernels_demo\.kernels: unknown kernel 'blur'"):
        cnnpl.build("callback", "kernels_demo", kernels="blur")


def test_settings_as_the_command_line_reads_them(tmp_path: Path) -> None:
    from cnnpl.train import build_callbacks, check_settings

    # the documented `callbacks.gradcam.target=true` reached the callback as the bool True and was refused
    built = build_callbacks(compose_tiny(tmp_path, "callbacks.gradcam.target=true", "callbacks.gradcam.layer=0"))
    gradcam = next(cb for cb in built if isinstance(cb, cnnpl.get_registry("callback").get("gradcam")))
    assert (gradcam.target, gradcam.layer) == ("true", "0")  # a Sequential child's name, read as a number
    assert FiltersCallback(layers=[3]).layers == ["3"] and FeatureMapsCallback(layers=5).layers == ["5"]
    assert cnnpl.build("callback", "embedding", layer=1).layer == "1"  # helper-103: a TypeError from difflib
    assert cnnpl.build("callback", "hparams", metrics="test/acc").metrics == ["test/acc"]  # was refused: not a list
    one_tag = compose_tiny(tmp_path / "one", "callbacks.hparams.metrics=val/acc")
    check_settings(one_tag)  # the command line's check of the settings' kinds refused it: "must be a list"
    assert next(cb for cb in build_callbacks(one_tag) if type(cb).__name__ == "HParamsCallback").metrics == ["val/acc"]
    assert cnnpl.build("callback", "hparams", metrics=["my_plugin_metric"]).metrics == ["my_plugin_metric"]
    # the others gave a traceback from difflib, or a line naming no setting
    for key, value, message in [
        ("filters.layers", [1.5], "callbacks.filters.layers must be a name or a list of names, got [1.5]"),
        ("feature_maps.layers", True, "callbacks.feature_maps.layers must be a name or a list of names, got true"),
        ("gradcam.layer", ["a", "b"], "callbacks.gradcam.layer must be one layer's name, got ['a', 'b']"),
        ("embedding.layer", ["a", "b"], "callbacks.embedding.layer must be one layer's name, got ['a', 'b']"),
        ("embedding.layer", 1.5, "callbacks.embedding.layer must be a name or a list of names, got 1.5"),
        ("gradcam.alpha", "abc", "callbacks.gradcam.alpha must be a number, got 'abc' (callback 'gradcam')"),
        ("hparams.metrics", [1, 2], "callbacks.hparams.metrics must be a non-empty list of metric tags, got [1, 2]"),
        (  # helper-103: a misspelt tag was an empty column of the HParams tab
            "hparams.metrics",
            ["val/acc", "val/accc"],
            "callbacks.hparams.metrics: 'val/accc' is a metric that is never logged; did you mean val/acc? cnnpl logs "
            "train/loss_step, train/loss_epoch, train/acc, val/loss, val/acc, val/acc_top5, test/loss, test/acc, "
            "test/acc_top5 (val/acc_top5, test/acc_top5 with more than 5 classes)",
        ),
        ("freeze.parameters", {"a": 1}, "callbacks.freeze.parameters must be a name or a list of names, got {'a': 1}"),
    ]:
        name, setting = key.split(".")
        extra = {"epochs": 1} if name == "freeze" else {}
        with pytest.raises(CnnplError) as err:
            cnnpl.build("callback", name, **{setting: value}, **extra)
        assert str(err.value) == message


def test_arguments_are_checked_when_built(tmp_path) -> None:
    with pytest.raises(CnnplError, match=r"^callbacks\.filters\.every_n_epochs must be an integer >= 1, got 0$"):
        train(compose_tiny(tmp_path, "callbacks.filters.every_n_epochs=0"))
    with pytest.raises(CnnplError, match=r"callbacks\.gradcam\.target must be one of pred, true, got 'best'"):
        cnnpl.build("callback", "gradcam", target="best")
    with pytest.raises(CnnplError) as err:  # the setting named: was "unknown matplotlib colormap 'viridiss'; try"
        cnnpl.build("callback", "feature_maps", cmap="viridiss")
    assert str(err.value) == (
        "callbacks.feature_maps.cmap=viridiss: unknown matplotlib colormap 'viridiss'; did you mean 'viridis'? try "
        "'viridis', 'inferno', 'jet' or 'gray' (null: grayscale)"
    )
    with pytest.raises(CnnplError, match="unknown kernel 'blur'"):
        cnnpl.build("callback", "kernels_demo", kernels=["blur"])


def test_every_callback_is_registered() -> None:
    names = {
        "filters",
        "feature_maps",
        "kernels_demo",
        "confusion_matrix",
        "per_class_accuracy",
        "misclassified",
        "pr_curves",
        "gradcam",
        "histograms",
        "embedding",
        "hparams",
    }
    assert names <= set(cnnpl.list_components("callback"))
    for name in names:
        assert issubclass(cnnpl.get_registry("callback").get(name), VisualCallback)


@pytest.mark.parametrize(
    ("every", "max_epochs", "due"),
    [(1, 3, [0, 1, 2]), (2, 5, [1, 3, 4]), (5, 15, [4, 9, 14]), (5, 3, [2]), (3, -1, [2, 5])],
)
def test_schedule(every: int, max_epochs: int, due: list[int]) -> None:
    callback = FiltersCallback(every_n_epochs=every)
    epochs = range(max_epochs if max_epochs > 0 else 6)  # -1: no limit
    assert [e for e in epochs if callback.due(trainer_at(e, max_epochs=max_epochs))] == due


def trainer_at(epoch: int, **settings) -> SimpleNamespace:
    """A trainer at the end of ``epoch`` with 10 optimizer steps an epoch, and no limit but ``settings``'."""
    values = {"max_epochs": -1, "max_steps": -1, "should_stop": False, "check_val_every_n_epoch": 1}
    values |= {"num_training_batches": 20, "accumulate_grad_batches": 2, **settings}
    return SimpleNamespace(current_epoch=epoch, global_step=10 * (epoch + 1), **values)


def test_the_run_s_planned_last_epoch_is_due() -> None:
    callback = FiltersCallback(every_n_epochs=5)
    # trainer.max_steps=25 at 10 steps an epoch: the third epoch (index 2) is the last; 30 steps: the third too,
    # 31: the fourth; without a count of batches, the epoch whose steps reach max_steps
    assert [e for e in range(3) if callback.due(trainer_at(e, max_steps=25))] == [2]
    assert callback.due(trainer_at(2, max_steps=25, num_training_batches=math.inf))
    assert not callback.due(trainer_at(1, max_steps=25, num_training_batches=math.inf))
    assert (
        callback.final_epoch(trainer_at(0, max_steps=30)) == 2
        and callback.final_epoch(trainer_at(0, max_steps=31)) == 3
    )
    assert callback.final_epoch(trainer_at(0, max_steps=31, max_epochs=2)) == 1
    assert callback.final_epoch(trainer_at(0)) is None
    assert callback.final_epoch(trainer_at(0, max_steps=25), complete=True) == 1  # epoch 2 is cut short
    # should_stop alone is no last epoch: under trainer.min_epochs Lightning trains on with it set
    assert not callback.due(trainer_at(1, should_stop=True))


@pytest.mark.parametrize(
    ("settings", "gradcam", "filters"),
    [
        ({}, [8], [0, 8]),  # early stopping after epoch 0 (of 6): Grad-CAM, due every 5, is drawn when training ends
        ({"+trainer.min_epochs": 3}, [24], [0, 8, 16, 24]),  # should_stop set from epoch 0 on: epoch 2 is the last
    ],
)
def test_a_run_that_stops_early_ends_with_fresh_pictures(
    tmp_path, settings: dict, gradcam: list, filters: list
) -> None:
    stop = [
        "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.stop.monitor=val/loss",
        "+callbacks.stop.stopping_threshold=100.0",  # met at the first validation
    ]
    extra = [f"{key}={value}" for key, value in settings.items()]
    train(compose_tiny(tmp_path, "trainer.max_epochs=6", "callbacks.filters.rgb=false", *stop, *extra))
    acc = read_events(tmp_path / "tensorboard")
    assert [e.step for e in acc.Images("gradcam/features.block3.conv")] == gradcam
    assert [e.step for e in acc.Images("filters/features.block1.conv")] == filters


@pytest.mark.parametrize(
    ("every", "every_val", "settings", "due"),
    [
        (3, 2, {"max_epochs": 3}, [1]),  # the only validation: it stands for epochs 0-1 and no later one comes
        (3, 2, {"max_epochs": 10}, [3, 5, 9]),  # validations at 1, 3, 5, 7, 9: due epochs 2, 5, 8 and the last
        (2, 3, {"max_epochs": 10}, [2, 5, 8]),
        (3, 1, {"max_epochs": 10}, [2, 5, 8, 9]),  # every epoch validates: the due epochs themselves
        (5, 2, {"max_epochs": 20, "max_steps": 40}, [3]),  # max_steps ends it after epoch 3: its validation is the last
        (5, 2, {"max_epochs": 20, "max_steps": 45}, [3]),  # and when it cuts epoch 4 short, unvalidated
        (5, 1, {"max_epochs": 20, "max_steps": 25}, [1]),  # every epoch validates but the cut-short third
    ],
)
def test_validation_diagnostics_draw_for_the_epochs_a_validation_stands_for(every, every_val, settings, due) -> None:
    from cnnpl.callbacks import ConfusionMatrixCallback

    callback = ConfusionMatrixCallback(every_n_epochs=every)
    final = callback.final_epoch(trainer_at(0, **settings), complete=True)  # an epoch cut short is not validated
    validated = [e for e in range(final + 1) if (e + 1) % every_val == 0]
    assert [e for e in validated if callback.due(trainer_at(e, check_val_every_n_epoch=every_val, **settings))] == due


def test_diagnostics_are_drawn_when_validation_runs_every_other_epoch(tmp_path) -> None:
    # validation only at epoch 1 of 3, the confusion matrix due every 3: it was never drawn, and nothing said so
    train(compose_tiny(tmp_path, "trainer.max_epochs=3", "+trainer.check_val_every_n_epoch=2", "callbacks=minimal",
                       "+callbacks.confusion_matrix._target_=cnnpl.callbacks.ConfusionMatrixCallback",
                       "+callbacks.confusion_matrix.every_n_epochs=3"))  # fmt: skip
    acc = read_events(tmp_path / "tensorboard")
    steps = [e.step for e in acc.Images("diagnostics/confusion_matrix")]
    assert steps == [16]  # the end of epoch 1: 256 training images in batches of 32, twice


def test_a_run_without_a_validation_split_shows_test_images() -> None:
    # training images were shown, half of them stored mirrored under data.flip=alternate
    from cnnpl.callbacks import GradCAMCallback
    from cnnpl.data.shapes import ShapesDataModule

    dm = ShapesDataModule(num_train=100, num_test=20, val_split=0, flip="alternate")
    dm.setup("fit")
    callback = GradCAMCallback(num_images=8)
    callback.tensorboard_logger = lambda trainer: None
    net = cnnpl.build("model", "simple_cnn", num_classes=dm.num_classes)
    callback.setup(SimpleNamespace(datamodule=dm, is_global_zero=True), SimpleNamespace(net=net), "fit")
    test = dm.split("test")
    index = viz.pick_images(test.labels, 8)
    assert torch.equal(callback.pixels, test.images[index].float() / 255)
    assert torch.equal(callback.labels, test.labels[index])


def test_viz_functions_work_on_a_built_model() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    images = torch.randn(2, 3, 32, 32)
    maps = viz.feature_maps(net, images, net.stages)
    assert [tuple(m.shape) for m in maps.values()] == [(2, 32, 15, 15), (2, 64, 6, 6), (2, 128, 2, 2)]
    assert viz.conv_layers(net) == ["features.block1.conv", "features.block2.conv", "features.block3.conv"]


def test_each_images_feature_maps_are_drawn_from_that_image() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    callback = FeatureMapsCallback(num_images=2, layers=net.stages, max_channels=4, cell_size=8)
    logged: dict[str, torch.Tensor] = {}
    callback._logger = SimpleNamespace(
        experiment=SimpleNamespace(add_image=lambda tag, image, step: logged.update({tag: image}))
    )
    callback.images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # two different images
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=0, max_epochs=1, global_step=3)
    callback.on_train_epoch_end(trainer, SimpleNamespace(net=net, device=torch.device("cpu")))
    maps = viz.feature_maps(net, callback.images, net.stages)
    assert sorted(logged) == sorted(f"feature_maps/{s}/image{i}" for s in STAGES for i in range(2))
    for stage in STAGES:
        first, second = logged[f"feature_maps/{stage}/image0"], logged[f"feature_maps/{stage}/image1"]
        assert not torch.equal(first, second)
        for i, picture in enumerate((first, second)):  # image i's picture is drawn from image i's maps
            expected = viz.feature_map_grid(maps[stage][i], 4, cell_size=8, cmap=callback.cmap)
            assert torch.equal(picture, expected), (stage, i)


@pytest.mark.slow
def test_command_line_run_under_ddp_logs_each_default_picture_once(cli, tmp_path) -> None:
    """The real command line with 2 DDP processes: rank zero alone writes, each picture once per step."""
    from collections import Counter

    result = cli(*TINY, "trainer=ddp_cpu", "trainer.devices=2")
    assert result.returncode == 0, result.stderr[-2000:]
    files = sorted((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert len({f.name.split(".")[-2] for f in files}) == 1  # one writing process (the name holds its pid)
    writes: Counter[tuple[str, int]] = Counter()
    tags: dict[str, set[str]] = {"images": set(), "scalars": set(), "histograms": set()}
    for path in files:
        acc = read_events(path)
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
        for tag in acc.Tags()["images"]:
            writes.update((tag, e.step) for e in acc.Images(tag))
    assert tags["images"] == {
        "filters/features.block1.conv",
        "filters/features.block1.conv/rgb",
        "feature_maps/input",
        "kernels_demo",
        "diagnostics/confusion_matrix",
        "diagnostics/misclassified",
        "gradcam/features.block3.conv",
        *{f"feature_maps/{s}/image{i}" for s in STAGES for i in range(2)},
    }
    assert set(writes.values()) == {1}
    assert {f"per_class_acc/{c}" for c in CLASSES} <= tags["scalars"]
    assert not tags["histograms"]  # histograms and the embedding are in callbacks=full only


@pytest.mark.slow
def test_a_resumed_run_logs_the_start_pictures_once_and_keeps_its_embeddings(tmp_path) -> None:
    """Resuming must not log the initialisation's pictures again (at the resume step, next to the last
    epoch's), and TensorBoard's Projector must still list the embeddings of the run's first part."""
    embedding = [
        "+callbacks.embedding._target_=cnnpl.callbacks.EmbeddingCallback",
        "+callbacks.embedding.every_n_epochs=1",
        "+callbacks.embedding.num_images=8",
    ]
    base = [*TINY, "data.num_train=80", "callbacks.filters.rgb=false", *embedding]
    train(cnnpl.compose(base, output_dir=str(tmp_path)))
    train(cnnpl.compose([*base, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    acc = read_events(tmp_path / "tensorboard")
    end1, end2 = 2, 4  # 64 training images, batches of 32
    assert [e.step for e in acc.Images("filters/features.block1.conv")] == [0, end1, end2]
    assert [e.step for e in acc.Images("feature_maps/input")] == [0]
    assert [e.step for e in acc.Images("kernels_demo")] == [0]
    config = (tmp_path / "tensorboard" / "projector_config.pbtxt").read_text()
    assert config.count("tensor_path") == 2 and "00002/embedding" in config and "00004/embedding" in config


@pytest.mark.slow
def test_picture_callbacks_added_on_a_resume_log_the_input_and_kernels_demo_once(tmp_path) -> None:
    """helper-103: a run resumed with the picture callbacks (its first part had callbacks=minimal logger=csv)
    never logged feature_maps/input or kernels_demo: they were for global step 0 only."""
    base = [*TINY, "data.num_train=80"]
    train(cnnpl.compose([*base, "callbacks=minimal", "logger=csv"], output_dir=str(tmp_path)))
    for epochs in (2, 3):
        resumed = [*base, "callbacks.filters.rgb=false", f"trainer.max_epochs={epochs}", "ckpt_path=last"]
        train(cnnpl.compose(resumed, output_dir=str(tmp_path)))
    acc = read_events(tmp_path / "tensorboard")
    end1, end2, end3 = 2, 4, 6  # 64 training images, batches of 32
    assert [e.step for e in acc.Images("feature_maps/input")] == [end1]  # once, when they were added
    assert [e.step for e in acc.Images("kernels_demo")] == [end1]
    assert [e.step for e in acc.Images("filters/features.block1.conv")] == [end2, end3]  # the weights: each epoch


@pytest.mark.slow
def test_a_checkpoint_from_before_the_start_picture_record_resumes_without_drawing_them_again(tmp_path) -> None:
    """helper-106: a checkpoint written before cnnpl recorded the start pictures (no "start_pictures" in its
    "cnnpl" entry) counted as "none drawn", so its resume drew the input images and the kernels demo again."""
    base = [*TINY, "data.num_train=80", "callbacks.filters.rgb=false"]
    train(cnnpl.compose(base, output_dir=str(tmp_path)))
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert sorted(checkpoint["cnnpl"].pop("start_pictures")) == ["feature_maps/input", "kernels_demo"]
    torch.save(checkpoint, last)  # as an older cnnpl wrote it
    train(cnnpl.compose([*base, "trainer.max_epochs=2", "ckpt_path=last"], output_dir=str(tmp_path)))
    acc = read_events(tmp_path / "tensorboard")
    assert [e.step for e in acc.Images("feature_maps/input")] == [0]
    assert [e.step for e in acc.Images("kernels_demo")] == [0]


def test_misclassified_titles_use_class_names_whichever_classes_the_mistakes_show(monkeypatch) -> None:
    from cnnpl.callbacks import MisclassifiedCallback

    titles = {}
    monkeypatch.setattr(
        viz, "misclassified_figure", lambda images, labels, preds, names, ncol: titles.update(names=names)
    )
    monkeypatch.setattr(viz, "figure_to_tensor", lambda fig: torch.zeros(3, 1, 1))
    callback = MisclassifiedCallback(num_images=2)
    callback._logger = SimpleNamespace(experiment=SimpleNamespace(add_image=lambda *args: None))
    callback.reset()
    trainer = SimpleNamespace(datamodule=None, global_step=3)
    logits = torch.zeros(2, 4)
    logits[:, 1] = 1  # both predicted class 1; labels 0 and 2: class 3, the highest, appears nowhere
    callback.collect(torch.rand(2, 3, 4, 4), torch.tensor([0, 2]), logits, trainer)
    callback.class_names = ["a", "b", "c", "d"]
    callback.log_epoch(trainer, None)
    assert titles["names"] == ["a", "b", "c", "d"]


def test_the_filters_callback_draws_rgb_only_for_the_layer_that_reads_the_image() -> None:
    from cnnpl.network import build_model

    net = build_model(cnnpl.compose(["data=shapes", "conv=conv3d_channels"]), 10, 3, (32, 32))
    images: dict[str, torch.Tensor] = {}
    callback = FiltersCallback(layers=["features.block1", "features.block2"])
    callback._logger = SimpleNamespace(
        experiment=SimpleNamespace(add_image=lambda tag, image, step: images.update({tag: image}))
    )
    callback.log_filters(SimpleNamespace(net=net), step=0)
    # block2's 3 columns are taps along its 32 channels, not colours
    assert sorted(images) == [
        "filters/features.block1.conv",
        "filters/features.block1.conv/rgb",
        "filters/features.block2.conv",
    ]


def test_the_filters_callback_shows_the_first_layer_that_learns_by_default() -> None:
    from cnnpl.network import build_model

    for model, first in (("simple_cnn", "features.block1.conv"), ("fast_net", "features.group1.conv1")):
        net = build_model(cnnpl.compose(["data=shapes", f"model={model}"]), 10, 3, (32, 32))
        callback = FiltersCallback()
        trainer = SimpleNamespace(loggers=[], logger=None)
        callback.tensorboard_logger = lambda trainer: None  # no TensorBoard needed to pick the layer
        callback.setup(trainer, SimpleNamespace(net=net), "fit")
        assert callback.layers == [first]


@pytest.mark.slow  # the real command line, and torch.compile's first compilation (about 30 s cold)
def test_a_compiled_network_gets_every_default_picture(tmp_path) -> None:
    # system.compile=true died in the Grad-CAM callback at the first epoch it was due (docs/speed.md's command)
    result = run_cli(*TINY, "system.compile=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = read_events(tmp_path / "run" / "tensorboard")
    tags = acc.Tags()
    assert {"gradcam/features.block3.conv", "feature_maps/features.block3/image0"} <= set(tags["images"])
    assert "test/acc" in tags["scalars"]


@pytest.mark.parametrize("fused", [True, False])
def test_gradient_histograms_under_a_loss_scale_show_the_unscaled_gradients(tmp_path, monkeypatch, fused) -> None:
    """``16-mixed``'s loss scale (a GPU's; here a CPU gradient scaler): Lightning unscales the gradients
    before ``on_before_optimizer_step`` for torch's default step, a fused step unscales them itself."""
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.plugins import MixedPrecision

    from cnnpl.callbacks.histograms import HistogramsCallback

    torch.manual_seed(0)
    x = torch.randn(8, 4)
    layer = torch.nn.Linear(4, 2)
    expected = torch.autograd.grad(layer(x).pow(2).mean(), layer.weight)[0]  # the true gradient, float32

    class Squares(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = copy.deepcopy(layer)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.Adam(self.parameters(), fused=fused)

    logged = {}
    monkeypatch.setattr(
        HistogramsCallback,
        "experiment",
        # a copy, as TensorBoard takes one at once: the fused step unscales the gradients in place afterwards
        SimpleNamespace(add_histogram=lambda tag, values, step: logged.update({tag: values.clone()})),
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer = L.Trainer(
        accelerator="cpu",
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        max_steps=1,
        logger=TensorBoardLogger(tmp_path),
        callbacks=[HistogramsCallback(weights=False)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Squares(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8))
    torch.testing.assert_close(logged["gradients/layer.weight"], expected, rtol=2e-2, atol=1e-3)  # float16's rounding


def test_more_images_asked_than_the_split_holds_is_said(tmp_path) -> None:
    # helper-139: feature_maps.num_images=100 on 40 validation images drew 40 without a word
    cfg = compose_tiny(tmp_path, "data.num_train=100", "callbacks=[minimal,feature_maps]", "test=false")
    cfg.callbacks.feature_maps.num_images = 100
    with pytest.warns(UserWarning) as warned:
        train(cfg)
    assert "callbacks.feature_maps.num_images=100, but the val split holds 20 images: it shows those 20" in [
        str(w.message) for w in warned
    ]
    acc = read_events(tmp_path / "tensorboard")
    assert len([tag for tag in acc.Tags()["images"] if tag.startswith("feature_maps/features.block1/")]) == 20
