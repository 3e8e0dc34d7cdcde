"""cnnpl.viz: grid layouts on hand-made weights, Grad-CAM and the embedding on nets with known answers.

The callback configs (``conf/callbacks/``) against the callbacks' constructors, and
``python -m cnnpl.render`` on hand-made runs: the run's plugins, and the errors it prints.
"""

from __future__ import annotations

import inspect
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from tests.conftest import REPO
from torch import nn

import cnnpl
from cnnpl import kernels, viz
from cnnpl.errors import CnnplError
from cnnpl.plugins import PluginWarning
from cnnpl.render import find_plugin_file
from cnnpl.render import main as render_main


def test_tile_places_each_cell_and_pads() -> None:
    cells = torch.arange(6, dtype=torch.float32).view(2, 3, 1, 1, 1).expand(2, 3, 1, 2, 4).clone()
    out = viz.tile(cells, pad=1, pad_value=-1.0)
    assert out.shape == (1, 2 * 2 + 3, 3 * 4 + 4)
    for r in range(2):
        for k in range(3):
            top, left = 1 + r * 3, 1 + k * 5
            assert torch.equal(out[0, top : top + 2, left : left + 4], torch.full((2, 4), float(r * 3 + k)))
    assert (out[0, 0] == -1).all() and (out[0, :, 0] == -1).all() and (out[0, 3] == -1).all()
    assert (out == -1).sum() == out.numel() - 6 * 8


def test_grid_fills_rows_and_leaves_blanks() -> None:
    images = torch.stack([torch.full((3, 2, 2), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])
    out = viz.grid(images, ncol=3, pad=0, pad_value=1.0)
    assert out.shape == (3, 4, 6)
    assert out[0, 0, 0] == pytest.approx(0.1) and out[0, 0, 4] == pytest.approx(0.3)
    assert out[0, 2, 2] == pytest.approx(0.5) and (out[:, 2:, 4:] == 1.0).all()  # the sixth place is blank


def test_filters_grid_is_the_notes_layout_on_hand_made_weights() -> None:
    # 2 filters, 3 input channels, 2x2 kernels, values 0..23 -> normalised (v - 0) / 23 over the whole layer
    weight = torch.arange(24, dtype=torch.float32).view(2, 3, 2, 2) - 5.0
    out = viz.filters_grid(weight, scale=3, pad=1, pad_value=1.0)
    assert out.shape == (1, 2 * 6 + 3, 3 * 6 + 4)  # one row per filter, one column per channel
    for f in range(2):
        for c in range(3):
            for i in range(2):
                for j in range(2):
                    y, x = 1 + f * 7 + i * 3, 1 + c * 7 + j * 3
                    expected = (weight[f, c, i, j] + 5.0) / 23.0
                    assert torch.allclose(out[0, y : y + 3, x : x + 3], expected.expand(3, 3))
    cells = out[0].clone()
    assert cells.min() == 0.0 and cells.max() == 1.0


def test_filters_grid_caps_filters_and_channels_but_keeps_the_layer_normalisation() -> None:
    weight = torch.zeros(4, 5, 1, 1)
    weight[3, 4] = 10.0  # the layer's maximum is outside the part shown
    weight[0, 0] = -10.0
    out = viz.filters_grid(weight, max_filters=2, max_channels=2, scale=1, pad=0)
    assert out.shape == (1, 2, 2)
    assert out[0, 0, 0] == 0.0 and out[0, 0, 1] == pytest.approx(0.5)


def test_filters_rgb_shows_each_filter_in_colour() -> None:
    weight = torch.zeros(2, 3, 1, 1)
    weight[0, 0] = 1.0  # filter 0 reads red
    weight[1, 2] = 1.0  # filter 1 reads blue
    out = viz.filters_rgb(weight, scale=2, ncol=2, pad=1)
    assert out.shape == (3, 2 + 2, 2 * 2 + 3)
    assert out[:, 1, 1].tolist() == [1.0, 0.0, 0.0] and out[:, 1, 4].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(CnnplError, match="reading 3 channels"):
        viz.filters_rgb(torch.zeros(2, 1, 3, 3))


def test_filters_grid_leaves_the_channels_outside_a_filters_group_blank() -> None:
    # 4 filters in 2 groups of 2 input channels each: weight (4, 2, 1, 1), values 1..8
    weight = torch.arange(1, 9, dtype=torch.float32).view(4, 2, 1, 1)
    out = viz.filters_grid(weight, scale=1, pad=0, pad_value=-1.0, groups=2)
    expected = (weight.view(4, 2) - 1) / 7
    assert out.shape == (1, 4, 4)  # every input channel a column
    assert torch.allclose(out[0, :2, :2], expected[:2]) and torch.allclose(out[0, 2:, 2:], expected[2:])
    assert (out[0, :2, 2:] == -1).all() and (out[0, 2:, :2] == -1).all()
    depthwise = viz.filters_grid(torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1), scale=1, pad=0, pad_value=-1, groups=3)
    assert depthwise[0].tolist() == [[0.0, -1, -1], [-1, 0.5, -1], [-1, -1, 1.0]]  # a diagonal
    with pytest.raises(CnnplError, match="groups=3 must be >= 1 and divide the 4 filters"):
        viz.filters_grid(weight, groups=3)


def _network(*overrides: str) -> nn.Module:
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["data=shapes", *overrides])
    return build_model(cfg, 10, 3, (32, 32))


@pytest.mark.parametrize(
    "overrides, rgb, grouped",
    [
        ([], ["features.block1.conv"], {}),
        (["model=fast_net"], ["whiten"], {}),
        (
            ["conv=grouped", "model.channels=[6,12,24]"],
            ["features.block1.conv"],  # cardinality 2 does not divide the 3 input channels: 1 group
            {"features.block2.conv": 2, "features.block3.conv": 2},
        ),
        (
            ["conv=depthwise_separable"],
            [],  # nor the pointwise half after it
            {f"features.block{i}.conv.depthwise": c for i, c in ((1, 3), (2, 32), (3, 64))},
        ),
        (["conv=conv3d_channels"], ["features.block1.conv"], {}),  # its one filter spans R, G and B
        (["conv=conv3d_channels", "conv.kernel_depth=2"], [], {}),  # 2 taps slide along R, G, B
    ],
)
def test_only_a_first_layer_whose_kernels_are_per_colour_gets_the_rgb_picture(
    overrides: list[str], rgb: list[str], grouped: dict[str, int]
) -> None:
    net = _network(*overrides)
    layers = viz.conv_layers(net)
    assert [layer for layer in layers if viz.reads_rgb(net, layer)] == rgb
    assert {layer: viz.conv_groups(net, layer) for layer in layers if viz.conv_groups(net, layer) > 1} == grouped


def test_feature_map_grid_normalises_each_channel_alone() -> None:
    fmap = torch.stack([torch.tensor([[0.0, 2.0], [4.0, 8.0]]), torch.full((2, 2), 3.0), -torch.eye(2)])
    out = viz.feature_map_grid(fmap, cell_size=2, pad=1)  # 2x2 maps need no enlargement
    assert out.shape == (1, 2 * 2 + 3, 2 * 2 + 3)  # ceil(sqrt(3)) = 2 columns, 2 rows
    assert out[0, 1:3, 1:3].tolist() == [[0.0, 0.25], [0.5, 1.0]]
    assert (out[0, 1:3, 4:6] == 0).all()  # a constant channel is black
    assert out[0, 4:6, 1:3].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    coloured = viz.feature_map_grid(fmap, cell_size=8, cmap="gray")
    assert coloured.shape == (3, 2 * 8 + 3, 2 * 8 + 3)  # 2x2 maps enlarged 4x


def test_pick_images_takes_one_class_after_another() -> None:
    labels = torch.tensor([2, 2, 0, 1, 0, 2, 1])
    assert viz.pick_images(labels, 4).tolist() == [2, 3, 0, 4]
    assert viz.pick_images(labels, 100).tolist() == [2, 3, 0, 4, 6, 1, 5]


def test_confusion_matrix_and_per_class_accuracy_match_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    labels, preds = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (200,), generator=g)
    cm = viz.confusion_matrix(preds, labels, 5)
    expected = torch.zeros(5, 5, dtype=torch.long)
    for t, p in zip(labels.tolist(), preds.tolist(), strict=True):
        expected[t, p] += 1
    assert torch.equal(cm, expected)
    acc = viz.per_class_accuracy(cm)
    for c in range(4):
        assert acc[c] == pytest.approx(((preds == c) & (labels == c)).sum().item() / (labels == c).sum().item())
    assert math.isnan(acc[4])  # no images of class 4


class _MeanNet(nn.Module):
    """Identity 1x1 conv -> global mean -> two scores (mean, -mean): Grad-CAM of class 0 is the image itself."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.head = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_grad_cam_of_a_net_with_a_known_answer() -> None:
    net = _MeanNet()
    images = torch.rand(3, 1, 8, 8) + 0.1  # positive: the class-0 score grows with every pixel
    cams, logits = viz.grad_cam(net, images, "conv", target=torch.zeros(3, dtype=torch.long))
    expected = images[:, 0] / images[:, 0].flatten(1).max(1).values.view(-1, 1, 1)
    assert torch.allclose(cams, expected, atol=1e-6)
    assert torch.allclose(logits[:, 0], images.mean(dim=(1, 2, 3)), atol=1e-6)
    # class 1 falls as the pixels grow: every gradient is negative, the map is relu(negative) = 0
    cams1, _ = viz.grad_cam(net, images, "conv", target=torch.ones(3, dtype=torch.long))
    assert (cams1 == 0).all()
    assert all(p.grad is None for p in net.parameters())  # the parameters' gradients are not touched


def test_grad_cam_names_a_layer_the_forward_pass_skips() -> None:
    net = nn.ModuleDict({"used": nn.Conv2d(1, 2, 3), "spare": nn.Conv2d(2, 2, 3)})
    net.forward = lambda x: net["used"](x).mean((2, 3))  # type: ignore[method-assign]
    with pytest.raises(CnnplError, match=r"^Grad-CAM: layer 'spare' did not run in ModuleDict's forward pass; "):
        viz.grad_cam(net, torch.randn(1, 1, 5, 5), "spare")


def test_grad_cam_overlay_blends_colours() -> None:
    images = torch.zeros(1, 3, 2, 2)
    out = viz.grad_cam_overlay(images, torch.ones(1, 2, 2), alpha=1.0, cmap="gray")
    assert torch.allclose(out, torch.ones(1, 3, 2, 2))


def test_eval_mode_restores_each_module() -> None:
    net = nn.Sequential(nn.BatchNorm2d(1), nn.Dropout())
    net.train()
    net[1].eval()
    with viz.eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net[0].training and not net[1].training


def test_eval_mode_starts_no_collective_a_rank_alone_would_wait_on(monkeypatch) -> None:
    # the picture callbacks draw on rank 0 only; MixedPool's eval() broadcasts its history counts
    from cnnpl.layers.pooling import MixedPool

    pool = MixedPool(2, eval_rule="history")
    pool(torch.randn(1, 1, 4, 4))  # a training pass: the counts are due for a sync
    broadcasts: list[torch.Tensor] = []
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "broadcast", lambda tensor, src: broadcasts.append(tensor))
    with viz.eval_mode(pool):
        assert not pool.training
    assert broadcasts == [] and pool.training
    pool.eval()  # the validation loop's, on every rank: the sync still happens there
    assert len(broadcasts) == 1


def test_embedding_is_the_input_of_the_last_linear_layer() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    images = torch.randn(5, 1, 2, 2)
    with torch.no_grad():
        expected = net[2](net[1](net[0](images)))
    assert viz.last_linear(net) == "3"
    assert torch.allclose(viz.embedding(net, images, batch_size=2), expected)


def test_feature_maps_are_the_layer_outputs() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2))
    images = torch.randn(2, 1, 6, 6)
    maps = viz.feature_maps(net, images, ["0", "2"])
    with torch.no_grad():
        assert torch.allclose(maps["0"], net[0](images)) and torch.allclose(maps["2"], net(images))


def test_an_in_place_activation_after_the_layer_changes_no_picture() -> None:
    # act.inplace=true: the ReLU after a conv overwrote the conv's output the hooks had kept, so the feature
    # maps showed no negative values and Grad-CAM differentiated with respect to the ReLU's output
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    in_place = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    in_place.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 8, 8)
    maps = viz.feature_maps(plain, images, ["0"])["0"]
    assert maps.min() < 0
    torch.testing.assert_close(viz.feature_maps(in_place, images, ["0"])["0"], maps)
    cams, logits = viz.grad_cam(plain, images, "0")
    cams_in_place, logits_in_place = viz.grad_cam(in_place, images, "0")
    torch.testing.assert_close(cams_in_place, cams)
    torch.testing.assert_close(logits_in_place, logits)


def test_find_layer_lists_the_layers_that_exist() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with pytest.raises(CnnplError) as err:
        viz.find_layer(net, "2")
    assert str(err.value) == "Sequential has no layer '2'; its layers: 0, 1"
    assert viz.conv_weight(net)[0] == "0"
    with pytest.raises(CnnplError, match="layer '1' has no convolution weight to show; conv layers: 0"):
        viz.conv_weight(net, "1")


def test_kernels_demo_columns() -> None:
    images = torch.zeros(2, 3, 6, 6)
    images[0, :, :, 3:] = 1.0  # a vertical edge
    images[1] = 0.5  # flat
    names = ["box_blur", "vertical_edge"]
    cells = viz.kernels_demo(images, names)
    assert cells.shape == (2, 3, 3, 6, 6)
    assert torch.equal(cells[:, 0], images)
    assert torch.allclose(cells[:, 1], kernels.apply_kernels(images, ["box_blur"])["box_blur"].clamp(0, 1))
    edge = cells[0, 2, 0]
    assert edge.max() == 1.0 and edge[1:-1, 2:4].min() == 1.0 and (edge[1:-1, 0] == 0).all()
    assert (cells[1, 2, :, 1:-1, 1:-1] == 0).all()  # no response inside a flat image
    assert viz.kernels_demo_grid(images, names, scale=1).shape == (3, 2 * 6 + 3 * 2, 3 * 6 + 4 * 2)


def test_figures_render_to_images(tmp_path) -> None:
    names = ["a", "bb", "ccc"]
    cm = torch.tensor([[5, 1, 0], [0, 3, 3], [1, 0, 7]])
    figure = viz.confusion_matrix_figure(cm, names)
    image = viz.figure_to_tensor(figure)
    assert image.shape[0] == 3 and image.min() >= 0 and image.max() <= 1 and image.std() > 0.05
    images = torch.rand(3, 3, 8, 8)
    mis = viz.figure_to_tensor(
        viz.misclassified_figure(images, torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0]), names)
    )
    assert mis.shape[0] == 3 and mis.std() > 0.05
    probs = torch.softmax(torch.randn(30, 3), 1)
    path = viz.save_png(viz.pr_curves_figure(probs, torch.arange(30) % 3, names), tmp_path / "pr.png")
    assert path.stat().st_size > 1000
    gray = viz.save_png(torch.rand(1, 5, 7), tmp_path / "g.png")
    from PIL import Image

    assert Image.open(gray).size == (7, 5)


# -- python -m cnnpl.render -------------------------------------------------------------------------

TINY_RUN = ["data=shapes", "data.num_train=64", "data.num_test=16", "model.channels=[4,8]", "model.hidden=[8]"]

PLUGIN_POOL = """
    from torch import nn

    import cnnpl


    @cnnpl.register("pool", "render_pool")
    class RenderPool(nn.AvgPool2d):
        \"\"\"Average pooling from a plugin file.\"\"\"

        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
            super().__init__(kernel_size, stride, padding)
"""


def fake_run(
    run_dir: Path, *overrides: str, plugins_as_saved: list[str] | None = None, data: list[str] = TINY_RUN[:3]
) -> Path:
    """A run folder as ``python -m cnnpl`` leaves it (``config.yaml``, ``checkpoints/last.ckpt``), untrained."""
    from cnnpl.network import build_model, instantiate_node

    cfg = cnnpl.compose([*data, *TINY_RUN[3:], *overrides], output_dir=str(run_dir))
    datamodule = instantiate_node(cfg.data)
    datamodule.setup("fit")
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    (run_dir / "checkpoints").mkdir(parents=True)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state}, run_dir / "checkpoints" / "last.ckpt")
    if plugins_as_saved is not None:
        cfg.plugins = plugins_as_saved  # as the user typed them, relative to where the run started
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=False)
    return run_dir / "checkpoints" / "last.ckpt"


def test_find_plugin_file_looks_where_the_run_started_then_up_from_the_run(tmp_path, monkeypatch) -> None:
    project = tmp_path / "project"
    (project / "outputs" / "d" / "t").mkdir(parents=True)
    (project / "my_pool.py").write_text("")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert find_plugin_file("./my_pool.py", project / "outputs" / "d" / "t") == project / "my_pool.py"
    # a run folder moved away from its project: Hydra's record of where it started
    moved = tmp_path / "runs" / "r"
    (moved / ".hydra").mkdir(parents=True)
    (moved / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {project}\n")
    assert find_plugin_file("./my_pool.py", moved) == project / "my_pool.py"
    with pytest.raises(CnnplError) as err:
        find_plugin_file("./gone.py", moved)
    assert str(err.value) == (
        f"plugin file './gone.py' (from the run's config) was not found in the folder the run was started in "
        f"({project}), the working directory ({tmp_path / 'elsewhere'}) or the run folder {moved} and those above "
        "it; pass its path: plugins=[/path/to/gone.py]"
    )
    with pytest.raises(CnnplError, match=r"^plugin file '/no/such/gone.py' \(from the run's config\) does not exist; "):
        find_plugin_file("/no/such/gone.py", moved)
    # helper-122: the file gone from where the run started, another of that name above the run folder was loaded
    # without a word
    (tmp_path / "runs" / "my_pool.py").write_text("")
    (project / "my_pool.py").unlink()
    with pytest.warns(PluginWarning) as caught:
        assert find_plugin_file("./my_pool.py", moved) == tmp_path / "runs" / "my_pool.py"
    assert str(caught[0].message) == (
        f"the run's plugin file './my_pool.py' is no longer in the folder the run was started in ({project}); "
        f"loading {tmp_path / 'runs' / 'my_pool.py'} instead (pass plugins=[<its path>] to choose another)"
    )


@pytest.mark.slow  # a fresh interpreter, as a user runs it
def test_render_loads_the_plugins_the_run_used(tmp_path, restore_registries) -> None:
    project = tmp_path / "project"
    project.mkdir()
    plugin = project / "render_pool.py"
    plugin.write_text(textwrap.dedent(PLUGIN_POOL))
    cnnpl.load_plugins([str(plugin)])
    run = project / "outputs" / "2026-01-01" / "12-00-00"
    ckpt = fake_run(run, "pool=render_pool", plugins_as_saved=["./render_pool.py"])
    (tmp_path / "elsewhere").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "cnnpl.render", f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", "num_images=1"],
        cwd=tmp_path / "elsewhere",  # not where the run started: found up from the run folder
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ") and (tmp_path / "pictures" / "filters_features.block1.conv.png").is_file()


def test_render_names_a_missing_plugin_and_an_output_folder_it_cannot_make(tmp_path, monkeypatch, capsys) -> None:
    ckpt = fake_run(tmp_path / "run")
    (tmp_path / "a_file").write_text("")
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'a_file' / 'pictures'}"]) == 2
    assert capsys.readouterr().err == (
        f"cnnpl.render: error: cannot write pictures to {tmp_path / 'a_file' / 'pictures'}: "
        f"{tmp_path / 'a_file'} is a file; pass out=<a folder you can write to>\n"
    )
    config = OmegaConf.load(tmp_path / "run" / "config.yaml")
    config.plugins = ["./missing_pool.py"]
    OmegaConf.save(config, tmp_path / "run" / "config.yaml")
    monkeypatch.chdir(tmp_path)
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnpl.render: error: plugin file './missing_pool.py' (from the run's config) was not found")
    assert err.endswith("pass its path: plugins=[/path/to/missing_pool.py]\n") and err.count("\n") == 1


def test_render_takes_the_test_split_of_a_run_without_validation_images(tmp_path, capsys) -> None:
    # experiment=fast_cifar10 holds out no validation images (data.val_split=0)
    ckpt = fake_run(tmp_path / "run", "data.val_split=0")
    pictures = tmp_path / "pictures"
    assert render_main([f"ckpt={ckpt}", f"out={pictures}", "num_images=1"]) == 0
    assert capsys.readouterr().out.endswith(f"pictures of the test split to {pictures}\n")
    assert (pictures / "confusion_matrix.png").is_file()
    assert render_main([f"ckpt={ckpt}", f"out={pictures}", "split=val"]) == 2
    assert capsys.readouterr().err == (
        "cnnpl.render: error: the val split has no images (the run has data.val_split=0); "
        "pass split=train or split=test\n"
    )
    assert render_main([f"ckpt={ckpt}", f"out={pictures}", "split=validation"]) == 2
    assert capsys.readouterr().err == ("cnnpl.render: error: split must be one of train, val, test, got 'validation'\n")


def test_render_predicts_with_the_runs_test_time_augmentation(tmp_path, monkeypatch) -> None:
    """helper-103: render's confusion matrix, per-class accuracy and PR curves ignored system.tta_flip and
    system.tta_translate (experiment=fast_cifar10's), so they disagreed with the run's val/acc and test/acc."""
    seen: list[dict[str, object]] = []
    predict = viz.predict

    def spy(net: nn.Module, images: torch.Tensor, **views: object) -> torch.Tensor:
        seen.append(views)
        return predict(net, images, **views)  # type: ignore[arg-type]

    monkeypatch.setattr(viz, "predict", spy)
    for name, views, expected in (
        ("tta", ["system.tta_flip=true", "system.tta_translate=1"], (True, 1)),
        ("no", [], (False, 0)),
    ):
        ckpt = fake_run(tmp_path / name, *views)
        assert render_main([f"ckpt={ckpt}", f"out={tmp_path / name / 'pictures'}", "num_images=1"]) == 0
        assert seen.pop() == {"tta_flip": expected[0], "tta_translate": expected[1]}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("numimages=3", "numimages is not a setting of the run's config; did you mean num_images? "),
        ("data.num_trian=5", "data.num_trian is not a setting of the run's config; did you mean data.num_train? "),
        (
            "pool=avg",
            "pool=avg would replace the run's pool settings with a word: render rebuilds the run's own pool, so "
            "change its settings instead (pool.<setting>=...), or train a run with pool=avg",
        ),
        ("data=shapes", "data=shapes would replace the run's data settings with a word: "),
        (
            "+data.noise=0.1",  # a setting the run has: ignored before
            "+data.noise=0.1: render changes the run's own settings, it cannot add or delete one; write "
            "data.noise=0.1 without the +",
        ),
    ],
)
def test_render_refuses_an_override_that_is_no_setting_of_the_run(tmp_path, capsys, override, message) -> None:
    # a misspelt key was ignored (the default 8 pictures), a group choice a traceback
    ckpt = fake_run(tmp_path / "run")
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnpl.render: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "pictures").exists()  # a refused command makes no folder


def test_render_does_not_read_a_fine_tuned_runs_pretrained_file_again(tmp_path) -> None:
    from cnnpl.network import build_model, instantiate_node
    from cnnpl.render import load_checkpoint

    model = ["model=simple_cnn_bn", "model.hidden=[8]"]
    cfg = cnnpl.compose([*TINY_RUN, *model])
    dm = instantiate_node(cfg.data)
    dm.setup("fit")
    weights = tmp_path / "weights.pth"
    torch.save(build_model(cfg, dm.num_classes, dm.in_channels, dm.input_size).state_dict(), weights)
    ckpt = fake_run(tmp_path / "run", *model, f"model.pretrained={weights}", "model.freeze_features=true")
    weights.unlink()  # moved, or the run is rendered on another machine: the checkpoint is enough
    net, _, cfg = load_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.testing.assert_close(net.features.block1.conv.weight, saved["net.features.block1.conv.weight"])
    assert cfg.model.pretrained == str(weights)  # the run's config as it was


def render_error(capsys, *args: str) -> str:
    """The one line ``python -m cnnpl.render`` prints for ``args``, which must exit with status 2."""
    assert render_main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnpl.render: error: "), err
    return err.removeprefix("cnnpl.render: error: ").rstrip("\n")


def test_render_refuses_bad_input_in_one_line_and_makes_no_folder(tmp_path, capsys) -> None:
    """helper-99: each of these was a traceback, or wrote where it should not."""
    ckpt = fake_run(tmp_path / "run")
    out = tmp_path / "deep" / "pictures"
    hydra_record = tmp_path / "run" / "hydra.yaml"  # a YAML mapping, but no run config
    hydra_record.write_text("hydra:\n  run:\n    dir: x\n")
    assert render_error(capsys, f"ckpt={ckpt}", f"out={out}", f"config={hydra_record}") == (
        f"config '{hydra_record}' is not a cnnpl run config (a mapping of settings with model and data, as python -m "
        "cnnpl writes); pass config=<run dir>/config.yaml"
    )
    assert render_error(capsys, f"ckpt={ckpt}", f"out={out}", "data.num_train=[1,").startswith(
        "cannot read the override 'data.num_train=[1,': "
    )
    assert render_error(capsys, f"ckpt={ckpt}", f"out={out}", "data.num_train=${nope}") == (
        "cannot read the override 'data.num_train=${nope}': Interpolation key 'nope' not found"
    )
    assert render_error(capsys, f"ckpt={ckpt}", "out=") == "out= is empty; give out=<folder>"
    for count in ("0", "65", "100000", "two", ""):  # helper-123: 100000 wrote 3011 PNGs on a shapes run
        assert render_error(capsys, f"ckpt={ckpt}", f"out={out}", f"num_images={count}") == (
            f"num_images must be a whole number from 1 to 64 (each image writes a picture per stage), got {count!r}"
        )
    assert render_error(capsys, f"ckpt={tmp_path / 'nonexist.ckpt'}", f"out={out}").startswith("checkpoint ")
    assert not (tmp_path / "deep").exists()  # made before anything was checked


def test_render_help_says_what_it_writes_and_its_defaults(capsys) -> None:
    # helper-123: --help gave the usage line alone
    assert render_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Written files (.png in out, created if needed):" in out and "confusion_matrix.png" in out
    assert "val by default, test for a run that held out no validation images" in out
    assert (
        out.rstrip().endswith("[skip_broken_plugins=true] [key=value ...]") and "[num_images=N (8, at most 64)]" in out
    )
    assert render_main([]) == 2  # no arguments: the first line and the usage
    assert "Written files" not in capsys.readouterr().out


def test_render_of_a_checkpoint_without_its_run_names_the_folders_it_looked_in(tmp_path, capsys, monkeypatch) -> None:
    # helper-123: "no config.yaml next to loose/copy.ckpt or in ." for a checkpoint copied out of its run
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "copy.ckpt").write_bytes(fake_run(tmp_path / "run").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert render_error(capsys, "ckpt=loose/copy.ckpt", "out=pictures") == (
        f"no config.yaml next to loose/copy.ckpt or in {tmp_path}; pass config=<run dir>/config.yaml"
    )
    # one written since checkpoints hold their run's settings (cnnpl.config) renders from them
    checkpoint = torch.load(tmp_path / "loose" / "copy.ckpt", weights_only=True)
    checkpoint["cnnpl"] = {"config": (tmp_path / "run" / "config.yaml").read_text()}
    torch.save(checkpoint, tmp_path / "loose" / "copy.ckpt")
    assert render_main(["ckpt=loose/copy.ckpt", "out=pictures", "num_images=1"]) == 0
    assert (tmp_path / "pictures" / "input.png").is_file()


def test_render_writes_where_the_user_means_and_names_a_write_that_fails(tmp_path, capsys, monkeypatch) -> None:
    ckpt = fake_run(tmp_path / "run")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "run")
    # a quoted ~; an empty config= (config=$CFG) is the run's own; a value that refers to the run's own setting
    args = ["ckpt=~/run/checkpoints/last.ckpt", "out=~/pictures", "num_images=1", "config="]
    assert render_main([*args, "data.num_test=${data.num_train}"]) == 0
    assert (tmp_path / "pictures" / "input.png").is_file() and not (tmp_path / "run" / "~").exists()
    capsys.readouterr()
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "input.png").mkdir()  # no file can be written under that name
    assert render_error(capsys, f"ckpt={ckpt}", f"out={tmp_path / 'blocked'}", "num_images=1") == (
        f"cannot write pictures to {tmp_path / 'blocked'}: {tmp_path / 'blocked' / 'input.png'}: Is a directory; "
        "pass out=<a folder you can write to>"
    )


def test_render_into_a_folder_of_an_earlier_render_says_what_it_left_there(tmp_path, capsys) -> None:
    # helper-123: num_images=2 after num_images=3 said "wrote ... pictures" beside the first one's image2 maps
    ckpt = fake_run(tmp_path / "run")
    out = tmp_path / "pictures"
    assert render_main([f"ckpt={ckpt}", f"out={out}", "num_images=3"]) == 0
    assert "warning" not in capsys.readouterr().err  # a new folder
    kept = {path: path.read_bytes() for path in out.glob("feature_maps_*_image2.png")}
    assert kept
    assert render_main([f"ckpt={ckpt}", f"out={out}", "num_images=2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"cnnpl.render: warning: {out} also holds {len(kept)} pictures this render did not write (")
    assert err.endswith("left as they were; give an empty out= folder to keep renders apart\n")
    assert {path: path.read_bytes() for path in out.glob("feature_maps_*_image2.png")} == kept  # nothing removed
    assert render_main([f"ckpt={ckpt}", f"out={out}", "num_images=3"]) == 0
    assert "warning" not in capsys.readouterr().err  # the same pictures again


def test_render_names_a_runs_component_that_no_plugin_registers_now(tmp_path, capsys, restore_registries) -> None:
    @cnnpl.register("pool", "half_max")
    class HalfMax(nn.MaxPool2d):
        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
            super().__init__(kernel_size, stride, padding)

    ckpt = fake_run(tmp_path / "run", "pool=half_max")
    del cnnpl.get_registry("pool")._entries["half_max"]  # a later Python, without the plugin
    assert render_error(capsys, f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}") == (  # was "did you mean 'max'?"
        "the run's pool 'half_max' is not registered here: the plugin that registered it is not installed or loaded "
        "now; install it (pip install <its package>), or pass plugins=[<its file or module>]"
    )


def test_render_names_a_config_it_cannot_use(tmp_path, capsys) -> None:
    ckpt = fake_run(tmp_path / "run")
    out = f"out={tmp_path / 'pictures'}"
    missing = tmp_path / "nonexist.yaml"
    assert render_error(capsys, f"ckpt={ckpt}", out, f"config={missing}") == (
        f"config file '{missing}' does not exist; pass config=<run dir>/config.yaml"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [1,\nmodel: 2\n")
    assert render_error(capsys, f"ckpt={ckpt}", out, f"config={broken}") == (
        f"cannot read config '{broken}': expected ',' or ']', but got '<stream end>' (line 3, column 1); "
        "pass config=<run dir>/config.yaml"
    )


def test_render_names_the_runs_own_config_when_it_is_no_mapping(tmp_path, capsys) -> None:
    ckpt = fake_run(tmp_path / "run")
    found = tmp_path / "run" / "config.yaml"  # found next to checkpoints/, no config= given: named, not "None"
    found.write_text("- not\n- a mapping\n")
    assert render_error(capsys, f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}") == (
        f"config '{found}' is not a cnnpl run config (a mapping of settings with model and data, as python -m cnnpl "
        "writes); pass config=<run dir>/config.yaml"
    )


class Payload:
    """Unpickling this object creates ``path``: proof that code in a checkpoint ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ("truncated", "cannot read checkpoint '{ckpt}': it is not a complete file written by torch.save ("),
        ("text", "cannot read checkpoint '{ckpt}': it is not a file written by torch.save (Unsupported operand 110)"),
        ("no_state_dict", "checkpoint '{ckpt}' is not a Lightning checkpoint (no 'state_dict'); give a .ckpt"),
        ("list", "checkpoint '{ckpt}' is not a Lightning checkpoint (no 'state_dict'); give a .ckpt"),
        ("pickled_code", "refused to load checkpoint '{ckpt}': it holds a pickled Python object (io.open), not only"),
    ],
    ids=["truncated", "text", "no_state_dict", "list", "pickled_code"],
)
def test_render_reads_checkpoints_safely_and_names_one_it_cannot_use(tmp_path, capsys, contents, message) -> None:
    ckpt = fake_run(tmp_path / "run")
    marker = tmp_path / "payload_ran"
    if contents == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif contents == "text":
        ckpt.write_text("not a checkpoint\n")
    elif contents == "pickled_code":
        torch.save({**torch.load(ckpt, weights_only=True), "extra": Payload(marker)}, ckpt)
    else:
        torch.save({"x": 1} if contents == "no_state_dict" else [1, 2], ckpt)
    err = render_error(capsys, f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}")
    assert err.startswith(message.format(ckpt=ckpt))
    assert not marker.exists()  # the payload never ran


def test_render_names_a_missing_checkpoint_and_says_where_runs_keep_them(tmp_path, capsys) -> None:
    assert render_error(capsys, f"ckpt={tmp_path / 'gone.ckpt'}", f"out={tmp_path / 'pictures'}") == (
        f"checkpoint '{tmp_path / 'gone.ckpt'}' does not exist; pass ckpt=<run dir>/checkpoints/last.ckpt"
    )


def test_render_names_the_weights_that_do_not_fit_the_network(tmp_path, capsys) -> None:
    ckpt = fake_run(tmp_path / "run")  # model.channels=[4,8]
    other = fake_run(tmp_path / "other", "model.channels=[4,6]").parent.parent / "config.yaml"
    err = render_error(capsys, f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", f"config={other}")
    assert err == (
        f"checkpoint '{ckpt}' does not fit the network its config describes (SimpleCNN): 3 tensors with another "
        "shape: features.block2.conv.weight (checkpoint (8, 4, 3, 3), network (6, 4, 3, 3)), features.block2.conv.bias "
        "(checkpoint (8,), network (6,)), classifier.1.weight (checkpoint (8, 288), network (8, 216)); "
        "pass the config of the run that wrote it (config=<its run dir>/config.yaml)"
    )


# -- the callback configs ---------------------------------------------------------------------------

# Every config that configures callbacks: the sets, and the recipes that add their own.
CALLBACK_CONFIGS = [
    *(f"callbacks={p.stem}" for p in sorted((REPO / "conf" / "callbacks").glob("*.yaml"))),
    *(f"experiment={p.stem}" for p in sorted((REPO / "conf" / "experiment").glob("*.yaml"))),
]


@pytest.mark.parametrize("choice", CALLBACK_CONFIGS)
def test_every_setting_of_a_configured_callback_is_in_its_config(choice: str) -> None:
    """So ``callbacks.<name>.<setting>=...`` works without ``+`` for every setting the class takes.

    cnnpl's callbacks only: Lightning's (checkpoint, lr monitor, progress bar, and cnnpl.callbacks.ModelCheckpoint,
    Lightning's with its own __init__) keep the settings cnnpl chooses.
    """
    callbacks = cnnpl.compose([choice]).callbacks
    missing: dict[str, list[str]] = {}
    for key, node in callbacks.items():
        target = node.get("_target_", "")
        if target.startswith("cnnpl.") and get_class(target).__init__.__module__.startswith("cnnpl."):
            signature = inspect.signature(get_class(target).__init__)
            settings = [n for n, p in signature.parameters.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
            missing[f"callbacks.{key}"] = [name for name in settings if name not in node]
    assert missing or choice == "callbacks=minimal"  # the test sees the callbacks it is meant to check
    assert not {key: names for key, names in missing.items() if names}, f"{choice}: settings without a key"


def test_documented_callback_settings_override_without_plus() -> None:
    from cnnpl.network import instantiate_node

    cfg = cnnpl.compose(
        [
            "callbacks.filters.rgb=false",
            "callbacks.gradcam.alpha=0.3",
            "callbacks.gradcam.scale=2",
            "callbacks.misclassified.ncol=4",
            "callbacks.pr_curves.num_thresholds=50",
            "callbacks.kernels_demo.kernels=[edge]",
        ]
    )
    gradcam = instantiate_node(cfg.callbacks.gradcam)
    assert (gradcam.alpha, gradcam.scale) == (0.3, 2)
    assert instantiate_node(cfg.callbacks.kernels_demo).kernels == ["edge"]
    assert (cfg.callbacks.filters.rgb, cfg.callbacks.misclassified.ncol, cfg.callbacks.pr_curves.num_thresholds) == (
        False,
        4,
        50,
    )


@pytest.mark.parametrize(
    "model, layer",
    [
        ("simple_cnn", "features.block3.conv"),  # the last conv layer
        ("resnet18", "layer4"),  # not layer4.1.conv2, before the block's norm and residual sum
        ("inception_v3", "Mixed_7c"),  # not Mixed_7c.branch_pool.conv, one of its four branches
        ("xception", "block14"),
    ],
)
def test_grad_cam_explains_the_last_blocks_output_by_default(model: str, layer: str) -> None:
    net = _network(f"model={model}")
    assert viz.cam_layer(net) == layer
    cams, _ = viz.grad_cam(net, torch.randn(2, 3, 32, 32), layer)
    assert cams.shape == (2, 32, 32) and cams.isfinite().all()


def test_grad_cam_feature_maps_and_embeddings_of_a_compiled_network_are_the_network_s() -> None:
    # system.compile=true: a compiled network traces the hooks these functions add into its graph, and
    # Grad-CAM's gradient with respect to the captured output failed (the default callbacks at epoch 5)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(2, 3, 8, 8)

    def pictures() -> list[torch.Tensor]:
        cams, logits = viz.grad_cam(net, x, "1")
        return [cams, logits, viz.feature_maps(net, x, ["1"])["1"], viz.embedding(net, x)]

    expected = pictures()
    net.compile(backend="aot_eager")  # the autograd tracing of torch.compile's default, without its C++ build
    with torch.no_grad():
        net(x)  # compiled before the hooks are added, as in training
    for got, want in zip(pictures(), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_render_finds_the_runs_relative_data_root_where_the_run_started(tmp_path, monkeypatch) -> None:
    # python -m cnnpl data=cifar10 data.root=cifar, then python -m cnnpl.render from another folder
    from tests.test_data import write_class_folders

    from cnnpl.render import load_checkpoint

    start = tmp_path / "start"
    write_class_folders(start / "cifar", per_class=2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(start)
    ckpt = fake_run(start / "outputs" / "run", data=["data=cifar10", "data.root=cifar", "data.val_split=0.5"])
    (start / "outputs" / "run" / ".hydra").mkdir()
    (start / "outputs" / "run" / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {start}\n")
    monkeypatch.chdir(tmp_path)
    _, datamodule, _ = load_checkpoint(ckpt)
    assert datamodule.root == start / "cifar"
    _, datamodule, _ = load_checkpoint(ckpt, overrides=["data.root=start/cifar"])  # given: from here
    assert datamodule.root == Path("start/cifar")
    (start).rename(tmp_path / "moved")  # a project folder moved: its data is found from where render runs
    monkeypatch.chdir(tmp_path / "moved")
    _, datamodule, _ = load_checkpoint(tmp_path / "moved" / "outputs" / "run" / "checkpoints" / "last.ckpt")
    assert datamodule.root == Path("cifar")


def test_render_refuses_an_empty_data_root_where_the_run_started_in_a_data_folder(tmp_path, monkeypatch) -> None:
    # helper-144: "" is relative, and the folder the run started in exists: render drew that folder's images
    from tests.test_data import write_class_folders

    from cnnpl.render import load_checkpoint

    start = tmp_path / "start"
    write_class_folders(start, per_class=2)  # train/, test/ where the run started
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNPL_DATA", str(start))
    ckpt = fake_run(start / "outputs" / "run", data=["data=cifar10", "data.val_split=0.5"])
    (start / "outputs" / "run" / ".hydra").mkdir()
    (start / "outputs" / "run" / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {start}\n")
    monkeypatch.setenv("CNNPL_DATA", "")
    with pytest.raises(cnnpl.CnnplError) as err:
        load_checkpoint(ckpt)
    assert str(err.value).startswith("data.root is empty ($CNNPL_DATA is exported empty: ")


def test_render_without_the_runs_data_names_the_data_root_and_no_data_it_refuses(tmp_path, monkeypatch) -> None:
    # helper-123: the run's data.root read $CNNPL_DATA, not set for render; the message advised data=shapes, which
    # render refuses ("would replace the run's data settings")
    from tests.test_data import write_class_folders

    from cnnpl.errors import DataError
    from cnnpl.render import load_checkpoint

    write_class_folders(tmp_path / "cifar", per_class=2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNPL_DATA", str(tmp_path / "cifar"))
    ckpt = fake_run(tmp_path / "run", data=["data=cifar10", "data.val_split=0.5"])
    monkeypatch.delenv("CNNPL_DATA")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(DataError) as err:
        load_checkpoint(ckpt)
    assert "data=shapes" not in str(err.value)
    assert str(err.value).startswith(f"CIFAR-10 not found under '{tmp_path / 'elsewhere' / 'data'}'")
    assert str(err.value).endswith(
        "pass data.download=true (needs the network); the run's data.root is ${oc.env:CNNPL_DATA,data}, and "
        "$CNNPL_DATA is not set here"
    )
    monkeypatch.setenv("CNNPL_DATA", str(tmp_path / "cifar"))
    assert load_checkpoint(ckpt)[1].root == tmp_path / "cifar"


def test_eager_sets_torch_s_stance_for_its_block_only() -> None:
    from torch._dynamo import eval_frame

    made = viz.eager()
    assert eval_frame._stance.stance == "default"  # torch's own context manager sets it when made
    with made:
        assert eval_frame._stance.stance == "force_eager"
    assert eval_frame._stance.stance == "default"


def test_per_class_accuracy_figure_reads_n_a_for_a_class_without_images() -> None:
    # helper-139: a class with no images (NaN) read 0.00, as if all of its images were wrong
    fig = viz.per_class_accuracy_figure(torch.tensor([0.5, float("nan"), 1.0]), ["a", "b", "c"])
    texts = [text.get_text() for text in fig.axes[0].texts]
    assert texts == ["0.50", "n/a (no images)", "1.00"]
    assert [bar.get_width() for bar in fig.axes[0].patches] == [0.5, 0.0, 1.0]


@pytest.mark.parametrize("override", ["seed=7", "data.val_split=0.5", "data.seed=3"])
def test_render_refuses_to_draw_a_val_split_of_other_images(tmp_path, capsys, override: str) -> None:
    # helper-139: seed=7 drew a "val split" that held CIFAR-10 images the network trained on, with no word
    ckpt = fake_run(tmp_path / "run", "data.val_split=0.25")
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", override]) == 2
    key, _, value = override.partition("=")
    run = {"seed": "data.seed 42", "data.seed": "data.seed 42", "data.val_split": "data.val_split 0.25"}[key]
    assert capsys.readouterr().err == (
        f"cnnpl.render: error: {override}: the val split would not be the run's ({run}, now {value}), and from image "
        "files it would hold images the network trained on; leave it out, or draw another split (split=test)\n"
    )
    assert not (tmp_path / "pictures").exists()
    # the test split is not chosen by them: drawn (untrained weights, a few pictures)
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", "split=test", "num_images=1", override]) == 0
    # the run's own values (helper-142: seed=42 was refused too)
    same = {"seed": "seed=42", "data.seed": "data.seed=42", "data.val_split": "data.val_split=0.25"}[key]
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'same'}", "num_images=1", same]) == 0


def test_render_says_what_it_expected_on_one_line(tmp_path, capsys) -> None:
    # helper-139: a word without = printed the error, then the usage on a second line
    assert render_main(["ckpt.ckpt", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnpl.render: error: expected key=value, got 'ckpt.ckpt'; usage: python -m cnnpl.render ")
    assert err.count("\n") == 1


def test_render_names_images_of_another_size_than_the_runs(tmp_path, capsys) -> None:
    # helper-139: 28x28 images were told "does not fit the network its config describes; pass the config of the run"
    import torch

    from cnnpl.train import train

    cfg = cnnpl.compose(
        [*TINY_RUN, "trainer.max_epochs=1", "callbacks=minimal", "test=false"], output_dir=str(tmp_path / "r")
    )
    train(cfg)
    ckpt = tmp_path / "r" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["cnnpl"]["image_shape"] == [3, 32, 32]
    capsys.readouterr()  # the training's lines
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'p'}", "data.image_size=28"]) == 2
    assert capsys.readouterr().err == (
        f"cnnpl.render: error: checkpoint '{ckpt}' was trained on 3x32x32 images (channels x height x width), and the "
        "images of data.image_size=28 are 3x28x28; leave out data.image_size=28\n"
    )
    # helper-142: a network that ends in global pooling takes any size, and is drawn on it
    fast = ["model=fast_net", "model.widths=[4,8,8]", "trainer.max_epochs=1", "callbacks=minimal", "test=false"]
    cfg = cnnpl.compose([*TINY_RUN[:3], *fast], output_dir=str(tmp_path / "g"))
    train(cfg)
    capsys.readouterr()
    global_pool = tmp_path / "g" / "checkpoints" / "last.ckpt"
    assert render_main([f"ckpt={global_pool}", f"out={tmp_path / 'q'}", "num_images=1", "data.image_size=28"]) == 0
    assert capsys.readouterr().out.startswith("wrote ")


def test_render_takes_a_seed_for_a_run_without_a_validation_split(tmp_path, capsys) -> None:
    # helper-143: seed=7 was refused for a run of data.val_split=0, which render draws on its test split
    ckpt = fake_run(tmp_path / "run", "data.val_split=0")
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'pictures'}", "num_images=1", "seed=7"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"pictures of the test split to {tmp_path / 'pictures'}")
    # a validation split made where the run had none: of images it trained on
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'other'}", "data.val_split=0.5"]) == 2
    assert "the val split would not be the run's (data.val_split 0, now 0.5)" in capsys.readouterr().err
