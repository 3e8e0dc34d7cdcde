"""The Keras-style summary: rows and totals against the model itself, and the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnpl
from cnnpl.data import ShapesDataModule
from cnnpl.summary import format_summary, main, model_summary, summarize

MODELS = cnnpl.list_components("model")


def _numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_simple_cnn_matches_the_notes_keras_summary():
    summary, title = model_summary(["model=simple_cnn"])
    assert title.startswith("model=simple_cnn conv=conv2d pool=max")
    assert summary.input_shape == (3, 32, 32)
    shapes = {r.name: r.output_shape for r in summary.rows}
    # the notes' Keras model: 30x30x32 -> 15 -> 13x13x64 -> 6 -> 4x4x128 -> 2 -> 512 -> 256 -> 128 -> 10
    assert shapes["features.block1.conv"] == (32, 30, 30)
    assert shapes["features.block1.pool"] == (32, 15, 15)
    assert shapes["features.block2.conv"] == (64, 13, 13)
    assert shapes["features.block3.conv"] == (128, 4, 4)
    assert shapes["features.block3.pool"] == (128, 2, 2)
    assert shapes["classifier.0"] == (512,)
    params = {r.name: r.params for r in summary.rows}
    assert params["features.block1.conv"] == 896 and params["features.block2.conv"] == 18_496
    assert summary.total == summary.trainable == 258_762 and summary.non_trainable == 0


@pytest.mark.parametrize("conv", ["depthwise_separable", "locally_connected", "tiled", "conv3d_channels"])
def test_totals_equal_the_built_model(conv):
    from cnnpl import compose
    from cnnpl.network import build_model

    overrides = ["model=simple_cnn", f"conv={conv}"]
    summary, _ = model_summary(overrides, input_size=(24, 24))
    model = build_model(compose(overrides), num_classes=10, in_channels=3, input_size=(24, 24))
    assert summary.total == _numel(model)
    assert summary.input_shape == (3, 24, 24)
    names = [r.name for r in summary.rows]
    assert "features.block1.conv" in names  # a conv is one row, as a Keras layer is
    assert not any(name.startswith("features.block1.conv.") for name in names)


@pytest.mark.parametrize("model", MODELS)
def test_rows_add_up_to_every_registered_model(model):
    from cnnpl import compose
    from cnnpl.network import build_model

    summary, _ = model_summary([f"model={model}"])
    net = build_model(compose([f"model={model}"]), num_classes=10, in_channels=3, input_size=(32, 32))
    assert (summary.total, summary.trainable) == (
        _numel(net),
        sum(p.numel() for p in net.parameters() if p.requires_grad),
    )
    assert len({r.name for r in summary.rows}) == len(summary.rows)


def test_fast_net_counts_its_shared_whitening_layer_once():
    summary, _ = model_summary(["model=fast_net"])
    names = [r.name for r in summary.rows]
    assert "whiten" in names and "features.whiten" not in names  # one module, two names: the first, as named_modules
    # 288 frozen whitening weights + 1,152 batch-norm scales fixed at 1 (docs/models.md)
    assert (summary.total, summary.non_trainable) == (1_972_792, 1_440)


def test_a_parameter_shared_by_two_layers_counts_once():
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight  # tied weights, distinct modules
    model = nn.Sequential(first, second)
    summary = summarize(model, (4,))
    assert [r.params for r in summary.rows] == [20, 4] and summary.total == _numel(model) == 24


def test_frozen_and_own_parameters_are_counted():
    class WithToken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token = nn.Parameter(torch.zeros(5))
            self.body = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
            self.body[0].requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) + self.token.sum()

    model = WithToken()
    summary = summarize(model, (1, 5, 5))
    assert [r.name for r in summary.rows] == ["body.0", "body.1", "(model)"]
    assert summary.rows[0].output_shape == (2, 3, 3) and summary.rows[1].output_shape == (18,)
    assert (summary.total, summary.trainable, summary.non_trainable) == (_numel(model), 5, 20)
    text = format_summary(summary, "title")
    assert text.splitlines()[0] == "title"
    assert "Total params: 25" in text and "Non-trainable params: 20" in text
    assert model.training  # summarising leaves the model as it was


def test_layers_never_reached_show_a_dash():
    model = nn.ModuleDict({"used": nn.Linear(2, 2), "unused": nn.Linear(2, 3)})
    model.forward = lambda x: model["used"](x)  # type: ignore[method-assign]
    summary = summarize(model, (2,))
    assert {r.name: r.output_shape for r in summary.rows} == {"used": (2,), "unused": None}
    line = next(row for row in format_summary(summary).splitlines() if row.startswith("unused (Linear)"))
    assert line.split()[2:] == ["-", "9"]


def test_input_facts_from_the_data_config_and_options():
    summary, _ = model_summary(["data=shapes", "data.image_size=40"])
    assert summary.input_shape == (3, 40, 40)
    summary, _ = model_summary(["model=simple_cnn"], input_size=(48,), in_channels=1, num_classes=7)
    assert summary.input_shape == (1, 48, 48)
    assert summary.rows[-1].output_shape == (7,)


class _KnownShape(ShapesDataModule):
    """A data module of one's own that knows its images' shape without reading them (own-images.md's step 3)."""

    def known_shape(self) -> tuple[int, int, tuple[int, int]]:
        return 3, 1, (28, 24)


def test_the_input_and_classes_are_the_datas_where_its_module_knows_them():
    # helper-128: summary read data.image_size only: a folder of 64x64 images in 3 classes was summarised at 32x32
    # with 10 classes
    data = ["data=shapes", f"data._target_={__name__}._KnownShape", "model=lenet5"]
    summary, _ = model_summary(data)
    assert summary.input_shape == (1, 28, 24) and summary.rows[-1].output_shape == (3,)
    summary, _ = model_summary(data, input_size=(32,), num_classes=5)  # what is given wins
    assert summary.input_shape == (1, 32, 32) and summary.rows[-1].output_shape == (5,)


def test_main_reports_user_errors(capsys):
    assert main(["conv=conv2d", "conv.padding=bogus"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == "cnnpl.summary: error: layer features.block1.conv: conv2d: padding must be an int or one of "
        "valid, same, full; got 'bogus'"
    )
    assert main(["data=shapes", "data.image_size=abc"]) == 2  # was int('abc'): a traceback
    err = capsys.readouterr().err
    assert err.strip() == "cnnpl.summary: error: data.image_size must be an integer (pixels a side), got 'abc'"
    assert main(["conv=nonexistent"]) == 2
    assert capsys.readouterr().err.startswith(
        "cnnpl.summary: error: conv=nonexistent: no such option; the options of conv"
    )
    assert main(["model.chanels=[8]"]) == 2  # one line, naming the key meant (not "append with +model.chanels")
    assert capsys.readouterr().err == (
        "cnnpl.summary: error: model.chanels is not a setting of this config; did you mean model.channels?\n"
    )  # (helper-136: not "+model.chanels=...", which simple_cnn, taking no **kwargs, refuses too)
    assert main(["--input-size", "4"]) == 2
    assert "cannot take input" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--input-size", "32", "48", "64"])
    assert "--input-size takes H [W] (whole numbers), got 32 48 64" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vgg16"], "'vgg16' is not an override; did you mean model=vgg16?"),  # was Hydra's grammar error
        (["vgg61"], "'vgg61' is not an override; did you mean model=vgg16 or model=vgg19?"),  # that too
        # an allocator's traceback (helper-99)
        (["--input-size", "100000"], "model=simple_cnn at 3x100000x100000 needs more memory than this machine can "),
        # the forward check's, and a layer's while the shapes are traced, blamed plugins or showed the allocator's
        # text (helper-123)
        (["--input-size", "100000", "model=vgg16"], "model=vgg16 at 3x100000x100000 needs more memory than this "),
        (
            ["--input-size", "100000", "conv=locally_connected"],
            "model=simple_cnn at 3x100000x100000 needs more memory ",
        ),
        (
            ["ckpt_path=x.ckpt"],
            "ckpt_path=: cnnpl.summary reads no checkpoint (it builds the network a config describes): ",
        ),
        (["."], "'.' is a file or folder, not an override: cnnpl.summary takes the overrides of a run "),
        (["--inputsize", "32"], "unrecognized arguments: --inputsize; did you mean --input-size? "),  # was 5 lines
        (["--model", "vgg16"], "unrecognized arguments: --model; overrides are written key=value, without dashes: "),
        (["--json"], "unrecognized arguments: --json (python -m cnnpl.summary --help lists the options)"),
    ],
)
def test_what_a_summary_cannot_take_is_one_line_with_the_fix(capsys, args, message):
    # ckpt_path= was accepted and ignored: the default network's summary, exit 0
    try:
        status = main(args)
    except SystemExit as exit:  # argparse's errors end the parser
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnpl.summary: error: {message}") and err.count("\n") == 1, err


def test_a_folder_named_like_a_config_group_is_named_as_a_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # a data folder given to summary: the group data= is not what was meant
    assert main(["data"]) == 2
    assert capsys.readouterr().err.startswith("cnnpl.summary: error: 'data' is a file or folder, not an override")


def test_overrides_may_follow_the_input_size(capsys):
    assert main(["--input-size", "39", "model=notes_example"]) == 0
    assert "Total params: 44,950" in capsys.readouterr().out  # the notes' example network at 39x39
    assert main(["--input-size", "39", "39", "model=notes_example", "--num-classes", "10"]) == 0
    assert "Total params: 44,950" in capsys.readouterr().out


@pytest.mark.slow  # two fresh interpreters importing torch
def test_command_line_without_lightning(tmp_path: Path):
    code = (
        "import sys; from cnnpl.summary import main; rc = main(sys.argv[1:]); "
        "assert 'lightning' not in sys.modules, 'summary imported lightning'; sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-c", code, "model=simple_cnn", "conv=depthwise_separable", "pool=avg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("model=simple_cnn conv=depthwise_separable pool=avg")
    assert any(
        line.startswith("features.block1.conv (DepthwiseSeparable)") and "(32, 30, 30)" in line for line in lines
    )
    assert "Total params: 176,965" in lines  # 155 + 2,400 + 8,896 in the convs, the dense layers as before
    assert not list(tmp_path.iterdir())  # nothing written
    done = subprocess.run(
        [sys.executable, "-m", "cnnpl.summary", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "python -m cnnpl.summary" in done.stdout
    assert "--input-size H [W]" in done.stdout and "[W ...]" not in done.stdout  # argparse's form for nargs="+"


def test_ckpt_path_at_its_default_is_no_checkpoint(capsys):
    assert main(["ckpt_path=null", "model=lenet5", "--in-channels", "1"]) == 0
    assert "model=lenet5" in capsys.readouterr().out
