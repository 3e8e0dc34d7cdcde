"""The example plugin's own tests: what a plugin author checks before publishing.

Run from this folder's parent: ``python -m pytest plugins/cnnpl-example/tests`` (with the plugin installed).
"""

from __future__ import annotations

import importlib.metadata

import cnnpl
import pytest
import torch
import torch.nn.functional as F

PACKAGE = "cnnpl-example"
COMPONENTS = {("pool", "softpool"), ("conv", "coord_conv2d"), ("model", "tiny_net"), ("callback", "epoch_timer")}


def test_installed_with_its_entry_point_and_registered_by_it() -> None:
    dist = importlib.metadata.distribution(PACKAGE)
    (ep,) = [ep for ep in dist.entry_points if ep.group == "cnnpl.plugins"]
    assert (ep.name, ep.value) == ("example", "cnnpl_example")
    source = f"package {PACKAGE} {dist.version} (entry point example = cnnpl_example)"
    for family, name in COMPONENTS:
        assert cnnpl.get_registry(family).entry(name).source == source, (family, name)


# -- softpool -----------------------------------------------------------------------------------------


def softpool_loop(x: torch.Tensor, k: int, s: int, beta: float) -> torch.Tensor:
    """The definition, window by window: sum(softmax(beta a) * a)."""
    n, c, h, w = x.shape
    out = torch.empty(n, c, (h - k) // s + 1, (w - k) // s + 1, dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, i * s : i * s + k, j * s : j * s + k].reshape(n, c, -1)
            out[:, :, i, j] = (torch.softmax(beta * window, dim=-1) * window).sum(-1)
    return out


@pytest.mark.parametrize(("k", "s", "beta"), [(2, 2, 1.0), (3, 1, 0.5), (3, 2, 4.0)])
def test_softpool_matches_its_definition(k: int, s: int, beta: float) -> None:
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64) * 3
    pool = cnnpl.build("pool", "softpool", kernel_size=k, stride=s, beta=beta)
    torch.testing.assert_close(pool(x), softpool_loop(x, k, s, beta))
    assert pool.output_shape((3, 7, 8)) == tuple(pool(x).shape[1:])


def test_softpool_spans_average_to_max_pooling() -> None:
    # distinct values at least 0.1 apart: at beta=200 the runner-up's weight is below exp(-20)
    x = torch.randperm(2 * 3 * 8 * 8, generator=torch.Generator().manual_seed(0)).view(2, 3, 8, 8).double() / 10
    torch.testing.assert_close(cnnpl.build("pool", "softpool", beta=0.0)(x), F.avg_pool2d(x, 2))
    torch.testing.assert_close(cnnpl.build("pool", "softpool", beta=200.0)(x), F.max_pool2d(x, 2), atol=1e-6, rtol=0)


def test_softpool_padding_is_not_averaged_in_and_large_inputs_do_not_overflow() -> None:
    x = torch.full((1, 1, 2, 2), 1000.0)  # exp(1000) overflows without the shift
    y = cnnpl.build("pool", "softpool", kernel_size=2, stride=1, padding=1)(x)
    assert y.shape == (1, 1, 3, 3) and torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.full_like(y, 1000.0))  # zero padding would pull the corners down


def test_softpool_gives_every_activation_a_gradient() -> None:
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    cnnpl.build("pool", "softpool")(x).sum().backward()
    assert (x.grad != 0).all()  # max pooling would give 3 of every 4 a zero gradient


def test_softpool_rejects_negative_beta() -> None:
    with pytest.raises(cnnpl.CnnplError, match="softpool beta must be >= 0"):
        cnnpl.build("pool", "softpool", beta=-1.0)


def test_softpool_takes_pair_windows_and_checks_them_as_the_built_in_pools_do() -> None:
    x = torch.randperm(2 * 3 * 7 * 8).view(2, 3, 7, 8) / 10  # values 0.1 apart: no near ties
    pool = cnnpl.build("pool", "softpool", kernel_size=[3, 2], stride=[2, 1], beta=200.0)
    assert pool.output_shape((3, 7, 8)) == (3, 3, 7)
    torch.testing.assert_close(pool(x), F.max_pool2d(x, (3, 2), (2, 1)), atol=1e-5, rtol=0)
    for window, message in [
        ({"stride": 0}, "pooling needs kernel_size >= 1, stride >= 1 and padding >= 0"),
        ({"padding": -1}, "pooling needs kernel_size >= 1, stride >= 1 and padding >= 0"),
        ({"kernel_size": 2, "padding": 2}, "pooling padding 2 must be at most half the kernel size 2"),
        ({"kernel_size": 2.5}, "pooling kernel_size must be an int or a (height, width) pair of ints, got 2.5"),
    ]:
        with pytest.raises(cnnpl.GeometryError) as err:
            cnnpl.build("pool", "softpool", **window)
        assert message in str(err.value)


# -- coord_conv2d -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("padding", "stride"), [("same", 1), ("valid", 2), (1, 1)])
def test_coord_conv_is_a_conv_over_input_plus_coordinates(padding: str | int, stride: int) -> None:
    layer = cnnpl.build("conv", "coord_conv2d", in_channels=3, out_channels=5, padding=padding, stride=stride)
    x = torch.randn(2, 3, 9, 10)
    rows = torch.linspace(-1, 1, 9).view(1, 1, 9, 1).expand(2, 1, 9, 10)
    cols = torch.linspace(-1, 1, 10).view(1, 1, 1, 10).expand(2, 1, 9, 10)
    expected = layer.conv(torch.cat([x, rows, cols], dim=1))
    y = layer(x)
    torch.testing.assert_close(y, expected)
    assert tuple(y.shape[1:]) == layer.output_shape((3, 9, 10))
    assert layer.conv.weight.shape == (5, 5, 3, 3)  # 3 input channels + 2 coordinate channels


def test_coord_conv_with_radius_and_groups() -> None:
    layer = cnnpl.build("conv", "coord_conv2d", in_channels=2, out_channels=4, with_radius=True, padding="same")
    coords = layer.coordinates(torch.zeros(1, 2, 5, 5))
    assert coords.shape == (1, 3, 5, 5) and coords[0, 2, 2, 2] == 0 and coords[0, 2, 0, 0] == pytest.approx(2**0.5)
    with pytest.raises(cnnpl.CnnplError, match="coord_conv2d supports groups=1 only"):
        cnnpl.build("conv", "coord_conv2d", in_channels=4, out_channels=4, groups=2)


# -- tiny_net and the factories -------------------------------------------------------------------------


def test_tiny_net_takes_the_configured_components() -> None:
    cfg = cnnpl.compose(["model=tiny_net", "model.width=4", "conv=coord_conv2d", "pool=softpool", "pool.beta=2"])
    from cnnpl.train import build_model

    net = build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    assert type(net.features.block1.conv).__name__ == "CoordConv2d"
    assert net.features.block2.pool.beta == 2.0
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.stages == ["features.block1", "features.block2"]


def test_tiny_net_geometry_error_names_the_layer() -> None:
    with pytest.raises(cnnpl.GeometryError, match=r"layer features\.block3\.pool"):
        cnnpl.build("model", "tiny_net", num_classes=2, input_size=(4, 4), blocks=3)


def test_yaml_options_shipped_by_the_plugin() -> None:
    cfg = cnnpl.compose(["experiment=cnnpl_example"])
    assert (cfg.model.name, cfg.conv.name, cfg.pool.name, cfg.pool.beta) == (
        "tiny_net",
        "coord_conv2d",
        "softpool",
        4.0,
    )
    assert "epoch_timer" in cfg.callbacks


def test_the_listing_shows_the_plugins_yaml_option(capsys) -> None:
    import json

    from cnnpl.listing import main as listing_main

    assert listing_main(["pool", "--json"]) == 0
    (sharp,) = [
        row for row in json.loads(capsys.readouterr().out)["presets"]["pool"] if row["name"] == "softpool_sharp"
    ]
    assert (sharp["component"], sharp["settings"]) == ("softpool", {"beta": 4.0})


# -- epoch_timer ----------------------------------------------------------------------------------------


def test_epoch_timer_logs_each_epoch(tmp_path) -> None:
    import lightning as L
    from cnnpl.data import ShapesDataModule
    from cnnpl.system import ImageClassifier

    timer = cnnpl.build("callback", "epoch_timer")
    dm = ShapesDataModule(num_train=64, num_test=16, batch_size=32)
    net = cnnpl.build("model", "tiny_net", num_classes=10, width=4)
    system = ImageClassifier(net, 10)
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(system, datamodule=dm)
    assert len(timer.seconds) == 2 and all(s > 0 for s in timer.seconds)
    assert trainer.callback_metrics["time/epoch_seconds"] > 0
    with pytest.raises(cnnpl.CnnplError, match="every_n_epochs must be >= 1"):
        cnnpl.build("callback", "epoch_timer", every_n_epochs=0)


def test_epoch_timer_logs_every_n_th_epoch(tmp_path) -> None:
    # helper-122: with every_n_epochs=2 it logged after the 1st and 3rd epochs, not the 2nd and 4th
    import lightning as L
    from cnnpl.data import ShapesDataModule
    from cnnpl.system import ImageClassifier

    logged: list[int] = []

    class Recording(ImageClassifier):
        def log(self, name, value, *args, **kwargs):
            if name == "time/epoch_seconds":
                logged.append(self.trainer.current_epoch + 1)
            return super().log(name, value, *args, **kwargs)

    dm = ShapesDataModule(num_train=32, num_test=16, batch_size=32)
    system = Recording(cnnpl.build("model", "tiny_net", num_classes=10, width=4), 10)
    trainer = L.Trainer(
        max_epochs=4,
        callbacks=[cnnpl.build("callback", "epoch_timer", every_n_epochs=2)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(system, datamodule=dm)
    assert logged == [2, 4]


def test_a_copy_renamed_as_the_readme_says_finds_its_own_yaml_options(tmp_path, monkeypatch) -> None:
    # helper-136: the search-path plugin named cnnpl_example itself, so a renamed copy put the example's conf/ on
    # the search path (again) and never its own: its YAML options were "no such option"
    import importlib.util
    import shutil
    import sys
    from pathlib import Path

    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    src = Path(__file__).resolve().parents[1] / "src"
    copy = tmp_path / "src"
    shutil.copytree(src / "cnnpl_example", copy / "mylab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(src / "hydra_plugins" / "cnnpl_example_searchpath", copy / "hydra_plugins" / "mylab_searchpath")
    monkeypatch.syspath_prepend(str(copy))
    spec = importlib.util.spec_from_file_location(
        "hydra_plugins.mylab_searchpath", copy / "hydra_plugins" / "mylab_searchpath" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    search_path = ConfigSearchPathImpl()  # what Hydra hands each search-path plugin
    module.CnnplExampleSearchPath().manipulate_search_path(search_path)
    assert [(e.provider, e.path) for e in search_path.get_path()] == [("mylab", f"file://{copy / 'mylab'}/conf")]
    assert "mylab" not in sys.modules  # found, not imported: cnnpl imports it through its entry point
    assert (copy / "mylab" / "conf" / "pool" / "softpool_sharp.yaml").is_file()
