"""Plugins: the installed example package, local files and modules, in-Python registration, and the errors.

The example plugin must be installed into the test environment (``pip install ./plugins/cnnpl-example``,
which ``.ci/run`` does); the tests that need it fail, not skip, when it is missing.
"""

from __future__ import annotations

import csv
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
from omegaconf import OmegaConf
from tests.conftest import TINY

import cnnpl
from cnnpl import plugins
from cnnpl.config import ComponentSignatureError, check_values
from cnnpl.listing import main as listing_main
from cnnpl.network import build_model
from cnnpl.plugins import PluginError, PluginWarning, load_plugins, split_plugin_overrides
from cnnpl.registry import BUILTIN_CALLBACKS, REGISTRIES
from cnnpl.train import train as run_training

EXAMPLE = "cnnpl-example"
EXAMPLE_COMPONENTS = {"pool": "softpool", "conv": "coord_conv2d", "model": "tiny_net", "callback": "epoch_timer"}
# What test modules parametrising over the registry see at collection time.
POOLS_AT_COLLECTION = cnnpl.list_components("pool")
MODELS_AT_COLLECTION = cnnpl.list_components("model")


def example_source() -> str:
    """The example plugin's registry source; fails (not skips) when the package is not installed."""
    try:
        dist = importlib.metadata.distribution(EXAMPLE)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            f"the example plugin {EXAMPLE} is not installed in this environment; "
            "run `pip install ./plugins/cnnpl-example` (as .ci/run does) and rerun the tests"
        )
    return f"package {EXAMPLE} {dist.version} (entry point example = cnnpl_example)"


def write(path: Path, code: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


# A pool plugin file as a user would write it: one class, typed parameters, registered by name.
MY_POOL = """
    import torch
    from torch import nn

    import cnnpl


    @cnnpl.register("pool", "{name}")
    class HalfMaxPool(nn.Module):
        \"\"\"lam * max + (1 - lam) * avg over each window.\"\"\"

        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0, lam: float = 0.5) -> None:
            super().__init__()
            self.max = nn.MaxPool2d(kernel_size, stride, padding)
            self.avg = nn.AvgPool2d(kernel_size, stride, padding)
            self.lam = lam

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lam * self.max(x) + (1 - self.lam) * self.avg(x)
"""


def fake_distribution(site: Path, dist: str, ep: str, module: str, code: str) -> None:
    """An installed distribution (metadata + module on ``site``) with a ``cnnpl.plugins`` entry point."""
    write(site / f"{module.split(':')[0]}.py", code)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    write(info / "entry_points.txt", f"[cnnpl.plugins]\n{ep} = {module}\n")


def with_site(site: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **extra}


def test_a_package_in_a_misnamed_entry_point_group_is_named_where_its_option_is_missed(tmp_path, monkeypatch) -> None:
    # helper-136: [project.entry-points."cnnpl.plugin"] was ignored without a word
    site = tmp_path / "site"
    write(site / "lab_pools.py", "")
    info = site / "lab_pools-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: lab-pools\nVersion: 1.0\n")
    write(info / "entry_points.txt", "[cnnpl.plugin]\nlab = lab_pools\n")
    from cnnpl.config import _misnamed_entry_point_groups

    assert _misnamed_entry_point_groups() == ""
    monkeypatch.syspath_prepend(str(site))
    assert _misnamed_entry_point_groups() == (
        " (an installed package declares the entry point lab = lab_pools in the group 'cnnpl.plugin', which cnnpl "
        "does not read: its group is 'cnnpl.plugins')"
    )
    with pytest.raises(cnnpl.CnnplError, match=r"in the group 'cnnpl\.plugin', which cnnpl does not read"):
        cnnpl.compose(["pool=lab_pool"])


# -- the installed example package -------------------------------------------------------------------


def test_example_plugin_is_discovered_with_its_source() -> None:
    source = example_source()
    entry_points = importlib.metadata.entry_points(group="cnnpl.plugins")
    assert "cnnpl_example" in [ep.value for ep in entry_points if ep.name == "example"]
    for family, name in EXAMPLE_COMPONENTS.items():
        assert cnnpl.get_registry(family).entry(name).source == source
    loaded = {p.source: p for p in plugins.loaded_plugins()}
    assert loaded[source].error is None
    assert set(loaded[source].components) == {f"{f}/{n}" for f, n in EXAMPLE_COMPONENTS.items()}


@pytest.mark.slow  # subprocesses
def test_registry_generated_tests_see_plugin_components_at_collection() -> None:
    example_source()
    assert "softpool" in POOLS_AT_COLLECTION and "tiny_net" in MODELS_AT_COLLECTION
    # a fresh interpreter: a plain `import cnnpl` is enough
    code = "import cnnpl; print(cnnpl.list_components('pool'), cnnpl.list_components('conv'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'softpool'" in out and "'coord_conv2d'" in out


def test_example_components_are_config_options_with_typed_keys(tmp_path: Path) -> None:
    example_source()
    cfg = cnnpl.compose(["model=tiny_net", "model.width=4", "conv=coord_conv2d", "pool=softpool", "pool.beta=2"])
    assert OmegaConf.to_container(cfg.pool) == {
        "name": "softpool",
        "kernel_size": None,
        "stride": None,
        "padding": None,
        "beta": 2.0,  # float, from the hint, though given as 2
    }
    assert cfg.model.width == 4 and cfg.conv.with_radius is False
    model = build_model(cfg, num_classes=3, in_channels=3, input_size=(16, 16))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.compose(["pool=softpool", "pool.beta=abc"])
    assert str(err.value) == "pool.beta must be a number, got 'abc' (pool 'softpool')"
    with pytest.raises(
        cnnpl.CnnplError, match=r"^pool\.bta is not a setting of this config; did you mean pool\.beta\?"
    ):
        cnnpl.compose(["pool=softpool", "pool.bta=1"])


def test_example_plugin_yaml_options_reach_hydra() -> None:
    example_source()
    cfg = cnnpl.compose(["experiment=cnnpl_example"])
    chosen = (cfg.model.name, cfg.conv.name, cfg.pool.name, cfg.pool.beta)
    assert chosen == ("tiny_net", "coord_conv2d", "softpool", 4.0)
    assert cfg.callbacks.epoch_timer._args_ == ["callback", "epoch_timer"]


@pytest.mark.slow
def test_example_plugin_trains_from_the_command_line(cli, tmp_path: Path) -> None:
    example_source()
    result = cli(
        *TINY,
        "model=tiny_net",
        "model.width=8",
        "conv=coord_conv2d",
        "pool=softpool",
        "pool.beta=2.0",
        "callbacks=[minimal,epoch_timer]",
        "logger=csv",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    saved = OmegaConf.load(run / "config.yaml")
    assert (saved.model.name, saved.conv.name, saved.pool.name, saved.pool.beta) == (
        "tiny_net",
        "coord_conv2d",
        "softpool",
        2.0,
    )
    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    epoch_seconds = [float(r["time/epoch_seconds"]) for r in rows if r.get("time/epoch_seconds")]
    assert len(epoch_seconds) == 1 and epoch_seconds[0] > 0  # the plugin's callback ran and logged
    assert any(r.get("test/acc") for r in rows)
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # subprocesses
def test_help_and_listing_show_plugins_without_importing_lightning(tmp_path: Path) -> None:
    example_source()
    probe = write(
        tmp_path / "probe.py",
        """
        import atexit, sys
        atexit.register(lambda: print("LIGHTNING-IMPORTED:", "lightning" in sys.modules))
        from cnnpl.cli import main
        main()
        """,
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = {}
    for args in (("--help",), ("list", "pool", "conv", "model", "callback"), ("pool=softpool", "--cfg", "job")):
        done = subprocess.run(
            [sys.executable, str(probe), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "LIGHTNING-IMPORTED: False" in done.stdout, args
        out[args[0]] = done.stdout
    lines = out["--help"].splitlines()
    pool_line = next(line for line in lines if line.startswith("pool: "))
    assert "softpool" in pool_line and "softpool_sharp" in pool_line  # generated and plugin-YAML options
    assert "tiny_net" in next(line for line in lines if line.startswith("model: "))
    assert re.search(r"\n  coord_conv2d +package cnnpl-example 0\.1\.0 \(entry point example", out["list"])
    assert "beta: float = 1.0" in out["list"]
    assert "name: softpool" in out["pool=softpool"]
    # the built-in callbacks too, though their modules (which import Lightning) were not imported
    assert re.search(r"\n  histograms +built-in\n +every_n_epochs: int = 1, weights: bool = True", out["list"])
    assert re.search(r"\ncallback \((\d+)\): ", out["list"]).group(1) == str(len(BUILTIN_CALLBACKS) + 1)
    callbacks_line = next(line for line in lines if line.startswith("callbacks: "))
    assert "default" in callbacks_line and "histograms" in callbacks_line and "epoch_timer" in callbacks_line


# -- local files and modules -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("chdir", ["false", "true"])  # true: Hydra runs the job in the run directory
def test_local_file_plugin_from_the_command_line(cli, tmp_path: Path, chdir: str) -> None:
    write(tmp_path / "my_pool.py", MY_POOL.format(name="my_pool"))
    result = cli(*TINY, "plugins=[./my_pool.py]", "pool=my_pool", "pool.lam=0.25", f"hydra.job.chdir={chdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert list(saved.plugins) == ["./my_pool.py"]  # the saved config says what to load again
    assert (saved.pool.name, saved.pool.lam) == ("my_pool", 0.25)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_listing_shows_a_file_plugin_source_and_parameters(tmp_path: Path, restore_registries, monkeypatch, capsys):
    path = write(tmp_path / "listed_pool.py", MY_POOL.format(name="listed_pool"))
    monkeypatch.chdir(tmp_path)
    assert listing_main(["plugins=[./listed_pool.py]", "pool", "--json"]) == 0
    pools = {row["name"]: row for row in json.loads(capsys.readouterr().out)["components"]["pool"]}
    assert pools["listed_pool"]["source"] == f"file {path}"
    lam = next(p for p in pools["listed_pool"]["parameters"] if p["name"] == "lam")
    assert (lam["type"], lam["default"], lam["required"]) == ("float", 0.5, False)
    kernel = next(p for p in pools["listed_pool"]["parameters"] if p["name"] == "kernel_size")
    assert kernel["supplied_by_caller"] and pools["max"]["source"] == "built-in"
    assert listing_main(["pool"]) == 0
    text = capsys.readouterr().out
    assert f"file {path}: pool/listed_pool" in text
    assert "lam: float = 0.5" in text and "kernel_size: int = 2*" in text


@pytest.mark.slow  # subprocesses
def test_nothing_is_imported_implicitly_from_the_working_directory(cli, tmp_path: Path) -> None:
    sentinel = tmp_path / "imported.txt"
    code = f"open({str(sentinel)!r}, 'w').close()\n" + textwrap.dedent(MY_POOL).format(name="my_pool")
    write(tmp_path / "my_pool.py", code)
    write(tmp_path / "conf" / "pool" / "my_pool.yaml", "name: max\n")
    write(tmp_path / "pool" / "my_pool.yaml", "name: max\n")
    result = cli("--cfg", "job", *TINY, "pool=my_pool")
    assert result.returncode != 0
    assert "pool=my_pool: no such option" in result.stderr
    assert not sentinel.exists()


def test_load_plugins_then_compose_in_python(tmp_path: Path, restore_registries) -> None:
    path = write(tmp_path / "api_pool.py", MY_POOL.format(name="api_pool"))
    (loaded,) = cnnpl.load_plugins([str(path)])
    assert (loaded.kind, loaded.source, loaded.components) == ("file", f"file {path}", ("pool/api_pool",))
    assert cnnpl.load_plugins([str(path)]) == [loaded]  # once: loading again is a no-op, not a duplicate
    cfg = cnnpl.compose(["pool=api_pool", "pool.lam=1.0", "model.channels=[4,8]", "model.hidden=[8]"])
    model = build_model(cfg, num_classes=3, in_channels=3, input_size=(16, 16))
    pool = model.features.block1.pool
    x = torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(pool(x), torch.nn.functional.max_pool2d(x, 2))  # lam=1 is max pooling


def test_plugins_key_in_compose_loads_files(tmp_path: Path, restore_registries, monkeypatch) -> None:
    write(tmp_path / "key_pool.py", MY_POOL.format(name="key_pool"))
    monkeypatch.chdir(tmp_path)  # a relative path is relative to the working directory, as on the command line
    cfg = cnnpl.compose(["plugins=[./key_pool.py]", "pool=key_pool"])
    assert cfg.plugins == ["./key_pool.py"] and cfg.pool.lam == 0.5


def test_module_plugin(tmp_path: Path, restore_registries, monkeypatch) -> None:
    write(tmp_path / "mod_pool_plugin.py", MY_POOL.format(name="mod_pool"))
    monkeypatch.syspath_prepend(str(tmp_path))
    (loaded,) = cnnpl.load_plugins(["mod_pool_plugin"])
    assert cnnpl.get_registry("pool").entry("mod_pool").source == "module mod_pool_plugin" == loaded.source
    with pytest.raises(PluginError, match=r"plugin module 'no_such_plugin_xyz' was not found"):
        cnnpl.load_plugins(["no_such_plugin_xyz"])
    with pytest.raises(PluginError, match=r"plugin file './missing_pool.py' does not exist \(looked for /"):
        cnnpl.load_plugins(["./missing_pool.py"])


@pytest.fixture
def forget_tmp_modules(tmp_path: Path):
    """Take the modules imported from ``tmp_path`` out of ``sys.modules`` after the test (a new process has none)."""
    yield
    for name, module in list(sys.modules.items()):
        if tmp_path in Path(getattr(module, "__file__", None) or "/").parents:
            del sys.modules[name]


# Two plugins in one folder, one importing the other, as `python -m cnnpl` finds it (the folder is on sys.path).
SIB_POOLS = """
    import torch
    import cnnpl

    with open(__file__ + ".runs", "a") as runs:  # how many times this file is executed
        runs.write("ran\\n")


    @cnnpl.register("pool", "sib_pool")
    class SibPool(torch.nn.MaxPool2d):
        \"\"\"Max pooling, defined in one plugin and used by another.\"\"\"
"""
SIB_MODELS = """
    import torch
    import cnnpl
    from sib_pools import SibPool


    @cnnpl.register("model", "sib_net")
    class SibNet(torch.nn.Sequential):
        def __init__(self, num_classes: int = 10, **layers: object) -> None:
            super().__init__(SibPool(2), torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))
"""


@pytest.mark.parametrize(
    "specs",
    [
        ["./sib_pools.py", "./sib_models.py"],
        ["./sib_models.py", "./sib_pools.py"],  # the import runs it first: its component still counts as its own
        ["./sib_pools.py", "sib_pools", "./sib_models.py"],  # the same file as a path and as a module
        ["sib_pools", "./sib_models.py", "./sib_pools.py"],
    ],
)
def test_a_plugin_another_plugin_imports_runs_once(
    tmp_path: Path, restore_registries, monkeypatch, forget_tmp_modules, specs: list[str]
) -> None:
    pools = write(tmp_path / "sib_pools.py", SIB_POOLS)
    models = write(tmp_path / "sib_models.py", SIB_MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m cnnpl` started here puts it first
    loaded = cnnpl.load_plugins(specs)
    assert Path(f"{pools}.runs").read_text() == "ran\n"
    pool_source = "module sib_pools" if specs[0] == "sib_pools" else f"file {pools}"  # the first to name it
    assert cnnpl.get_registry("pool").entry("sib_pool").source == pool_source
    assert cnnpl.get_registry("model").entry("sib_net").source == f"file {models}"
    records = {p.source: p.components for p in plugins.loaded_plugins() if "sib_" in p.source}
    assert records == {pool_source: ("pool/sib_pool",), f"file {models}": ("model/sib_net",)}
    assert {p.source for p in loaded} == set(records)  # a file named twice is one plugin
    assert importlib.import_module("sib_pools").SibPool is cnnpl.get_registry("pool").get("sib_pool")


def test_plugins_in_two_folders_each_import_their_own_sibling_of_one_name(
    tmp_path: Path, restore_registries, forget_tmp_modules
) -> None:
    # labA/helpers.py and labB/helpers.py: each plugin gets the one beside it, as `python labB/pb.py` would
    for lab, value in (("labA", 1), ("labB", 2)):
        write(
            tmp_path / lab / "helpers.py",
            f"VALUE = {value}\nwith open(__file__ + '.runs', 'a') as f:\n    f.write('ran')\n",
        )
        pool = f"""
            import torch
            import cnnpl
            from helpers import VALUE

            @cnnpl.register("pool", "{lab.lower()}_pool")
            class LabPool(torch.nn.MaxPool2d):
                value = VALUE
        """
        write(tmp_path / lab / "pool.py", pool)
    write(tmp_path / "labB" / "again.py", "import helpers\nassert helpers.VALUE == 2, helpers.__file__\n")
    cnnpl.load_plugins([str(tmp_path / "labA" / "pool.py"), str(tmp_path / "labB" / "pool.py")])  # was ImportError
    pools = cnnpl.get_registry("pool")
    assert (pools.get("laba_pool").value, pools.get("labb_pool").value) == (1, 2)
    cnnpl.load_plugins([str(tmp_path / "labB" / "again.py")])  # labB's helpers, not run a second time
    assert [(tmp_path / lab / "helpers.py.runs").read_text() for lab in ("labA", "labB")] == ["ran", "ran"]
    assert sys.modules["helpers"].VALUE == 1  # the first one loaded keeps the plain name
    # packages of one name, with submodules: labB got labA's helpers.sub
    for lab in ("labC", "labD"):
        write(tmp_path / lab / "tools" / "__init__.py", "from .sub import VALUE\n")
        write(tmp_path / lab / "tools" / "sub.py", f"VALUE = {lab!r}\n")
        write(tmp_path / lab / "uses.py", f"import tools.sub\nassert tools.sub.VALUE == tools.VALUE == {lab!r}\n")
        cnnpl.load_plugins([str(tmp_path / lab / "uses.py")])  # labD's: AttributeError or labC's VALUE


def test_a_file_plugin_never_shadows_another_module_of_its_name(
    tmp_path: Path, restore_registries, monkeypatch, forget_tmp_modules
) -> None:
    elsewhere = write(tmp_path / "elsewhere" / "twin_pool.py", MY_POOL.format(name="twin_elsewhere"))
    write(tmp_path / "on_path" / "twin_pool.py", MY_POOL.format(name="twin_on_path"))
    monkeypatch.syspath_prepend(str(tmp_path / "on_path"))
    cnnpl.load_plugins([str(elsewhere)])
    assert "twin_pool" not in sys.modules  # `import twin_pool` finds the other file: it is not this one
    (on_path,) = cnnpl.load_plugins(["twin_pool"])
    assert on_path.components == ("pool/twin_on_path",)
    assert cnnpl.get_registry("pool").entry("twin_elsewhere").source == f"file {elsewhere}"


def test_a_plugin_imported_by_one_that_failed_runs_again(
    tmp_path: Path, restore_registries, monkeypatch, forget_tmp_modules
) -> None:
    pools = write(tmp_path / "sib_pools.py", SIB_POOLS)
    broken = write(tmp_path / "sib_broken.py", "import sib_pools\nraise RuntimeError('broken after the import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="broken after the import"):
        cnnpl.load_plugins([str(broken)])
    assert "sib_pool" not in cnnpl.list_components("pool")  # taken out with the plugin that failed
    cnnpl.load_plugins([str(pools)])  # so the file must run again, not be found imported
    assert cnnpl.get_registry("pool").entry("sib_pool").source == f"file {pools}"


@pytest.mark.slow
def test_register_in_python_then_train(tmp_path: Path, restore_registries, tiny_overrides) -> None:
    @cnnpl.register("pool", "notebook_pool")
    class NotebookPool(torch.nn.AvgPool2d):
        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
            super().__init__(kernel_size, stride, padding)

    assert cnnpl.get_registry("pool").entry("notebook_pool").source == f"module {__name__}"
    cfg = cnnpl.compose(
        [*tiny_overrides, "pool=notebook_pool", "callbacks=minimal", "logger=csv"], output_dir=str(tmp_path / "out")
    )
    # what cnnpl.train(cfg) runs (imported by name: once cnnpl.train the module is imported, the package
    # attribute cnnpl.train is that module, not the function)
    metrics = run_training(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()


def test_required_typed_parameter_must_be_set(restore_registries) -> None:
    @cnnpl.register("pool", "needs_lam")
    class NeedsLam(torch.nn.MaxPool2d):
        def __init__(self, lam: float, kernel_size: int = 2) -> None:
            super().__init__(kernel_size)
            self.lam = lam

    cfg = cnnpl.compose(["pool=needs_lam"])
    with pytest.raises(cnnpl.CnnplError) as err:
        build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32))
    assert str(err.value) == (
        "pool 'needs_lam' needs a value for pool.lam (it has no default); set it on the command line: pool.lam=..."
    )
    cfg = cnnpl.compose(["pool=needs_lam", "pool.lam=0.3"])
    model = build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32))
    assert model.features.block1.pool.lam == 0.3


class _Settings(torch.nn.MaxPool2d):
    """A plugin pool whose settings carry the hints a config cannot check by itself."""

    def __init__(
        self,
        kernel_size: int = 2,
        mode: Literal["max", "avg"] = "max",
        scale: float | None = 1.0,
        window: tuple[int, int, int] = (1, 2, 3),
        where: Path = Path("runs/pool"),
    ) -> None:
        super().__init__(kernel_size)
        self.mode, self.scale, self.window, self.where = mode, scale, window, where


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pool.mode=bogus", "pool.mode must be max or avg, got 'bogus' (pool 'settings')"),
        ("pool.window=[1,2]", "pool.window must be a list of 3 values, got [1, 2] (pool 'settings')"),
    ],
)
def test_literal_and_fixed_length_settings_are_checked(restore_registries, override: str, message: str) -> None:
    cnnpl.register("pool", "settings", _Settings)
    with pytest.raises(cnnpl.CnnplError) as err:
        build_model(cnnpl.compose(["pool=settings", override]), num_classes=3, in_channels=3, input_size=(32, 32))
    assert str(err.value) == message


def test_null_path_and_literal_settings_reach_the_constructor(restore_registries) -> None:
    cnnpl.register("pool", "settings", _Settings)
    assert OmegaConf.to_container(cnnpl.compose(["pool=settings"]).pool)["where"] == "runs/pool"  # text, not null
    cfg = cnnpl.compose(["pool=settings", "pool.scale=null", "pool.mode=avg", "pool.where=elsewhere"])
    pool = build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool
    assert (pool.scale, pool.mode, pool.where, pool.kernel_size) == (None, "avg", Path("elsewhere"), 2)
    pool = build_model(cnnpl.compose(["pool=settings"]), num_classes=3, in_channels=3, input_size=(32, 32))
    assert (pool.features.block1.pool.scale, pool.features.block1.pool.where) == (1.0, Path("runs/pool"))


def test_a_plugins_check_config_refuses_a_setting_before_anything_is_built(restore_registries) -> None:
    # plugins.md: a classmethod _check_config(cls, params) sees the config node's settings
    @cnnpl.register("pool", "odd_only")
    class OddOnly(torch.nn.MaxPool2d):
        def __init__(self, kernel_size: int = 3) -> None:
            super().__init__(kernel_size)

        @classmethod
        def _check_config(cls, params: dict) -> None:
            if params.get("kernel_size") is not None and params["kernel_size"] % 2 == 0:
                raise cnnpl.CnnplError(f"pool=odd_only takes odd windows, got pool.kernel_size={params['kernel_size']}")

    from cnnpl.config import layer_factory

    with pytest.raises(cnnpl.CnnplError, match=r"^pool=odd_only takes odd windows, got pool.kernel_size=2$"):
        layer_factory("pool", cnnpl.compose(["pool=odd_only", "pool.kernel_size=2"]).pool)
    assert layer_factory("pool", cnnpl.compose(["pool=odd_only", "pool.kernel_size=3"]).pool).name == "odd_only"


def test_a_plugin_layer_that_fails_in_its_forward_is_named_with_its_line(restore_registries, tmp_path) -> None:
    # helper-122: "layer features.block1.pool (Lookup) cannot take input (32, 30, 30): KeyError: 'oops'", no place
    plugin = write(
        tmp_path / "lookup_pool.py",
        """
        import torch
        import cnnpl

        @cnnpl.register("pool", "lookup")
        class Lookup(torch.nn.MaxPool2d):
            def forward(self, x):
                return {}["oops"]
        """,
    )
    cnnpl.load_plugins([str(plugin)])
    with pytest.raises(cnnpl.CnnplError) as err:
        build_model(cnnpl.compose(["pool=lookup"]), num_classes=3, in_channels=3, input_size=(32, 32))
    line = 8  # the raise
    assert str(err.value) == (
        f"layer features.block1.pool (Lookup) cannot take input (32, 30, 30): KeyError: 'oops' ({plugin}, line {line})"
    )


@pytest.mark.parametrize(("override", "window"), [([], (1, 2, 3)), (["pool.window=[4,5,6]"], (4, 5, 6))])
def test_a_tuple_setting_reaches_the_constructor_as_a_tuple(restore_registries, override, window) -> None:
    # helper-122: a config holds lists, and `window + (1,)` failed on the plugin's own default (1, 2, 3)
    cnnpl.register("pool", "settings", _Settings)
    cfg = cnnpl.compose(["pool=settings", *override])
    pool = build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool
    assert pool.window == window and isinstance(pool.window, tuple)


@pytest.mark.parametrize(
    ("override", "expected"),
    [([], 2), (["pool.size=[3,4]"], (3, 4)), (["pool.size=5"], 5), (["pool.sizes=[3,4]"], [3, 4])],
)
def test_a_setting_of_an_int_or_a_tuple_reaches_the_constructor_as_one(restore_registries, override, expected) -> None:
    # note 39: a plugin's `int | tuple[int, int]` setting still reached it as a list; `list | tuple` takes the list
    @cnnpl.register("pool", "either")
    class Either(torch.nn.MaxPool2d):
        def __init__(
            self, kernel_size: int = 2, size: int | tuple[int, int] = 2, sizes: list[int] | tuple[int, ...] = ()
        ) -> None:
            super().__init__(kernel_size)
            self.size, self.sizes = size, sizes

    cfg = cnnpl.compose(["pool=either", *override])
    pool = build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool
    got = pool.sizes if "sizes" in "".join(override) else pool.size
    assert got == expected and type(got) is type(expected)


def test_settings_the_config_cannot_hold_keep_their_defaults_and_paths_in_lists_are_paths(restore_registries) -> None:
    """helper-100: an object default (shown as null) was passed as None; a list of paths arrived as text."""

    @cnnpl.register("pool", "objects")
    class Objects(torch.nn.MaxPool2d):
        def __init__(
            self,
            kernel_size: int = 2,
            act: torch.nn.Module | None = torch.nn.ReLU(),  # noqa: B008
            paths: list[Path] = [Path("a")],  # noqa: B006
            named: dict[str, Path] = {"k": Path("u")},  # noqa: B006
        ) -> None:
            super().__init__(kernel_size)
            self.act, self.paths, self.named = act, paths, named

    cfg = cnnpl.compose(["pool=objects", "pool.paths=[b,c]", "pool.named={k:v}"])
    pool = build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool
    assert isinstance(pool.act, torch.nn.ReLU)
    assert (pool.paths, pool.named) == ([Path("b"), Path("c")], {"k": Path("v")})


def test_mapping_settings_take_a_mapping_on_the_command_line_and_refuse_the_wrong_kind(restore_registries) -> None:
    """``named={a:1}`` onto ``dict[str, int] | None = None`` failed inside OmegaConf ('NoneType' object has no
    attribute 'get') and ``named={}`` stayed null; ``counts={b:2}`` said "did you mean pool.counts?"."""

    @cnnpl.register("pool", "mappings")
    class Mappings(torch.nn.MaxPool2d):
        def __init__(
            self,
            kernel_size: int = 2,
            named: dict[str, int] | None = None,
            counts: dict[str, int] = {"a": 1},  # noqa: B006
            flags: dict[str, bool] | None = None,
        ) -> None:
            super().__init__(kernel_size)
            self.named, self.counts, self.flags = named, counts, flags

    def pool(*overrides: str) -> Mappings:
        cfg = cnnpl.compose(["pool=mappings", *overrides])
        return build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool

    assert (pool().named, pool().counts) == (None, {"a": 1})
    assert pool("pool.named={a:1,b:2}").named == {"a": 1, "b": 2}
    assert pool("pool.named={}").named == {}
    # converted as a dict[str, X] setting's values are (helper-106: 'no' reached the constructor as text, truthy)
    assert pool("pool.flags={a:no,b:true}").flags == {"a": False, "b": True}
    assert pool("pool.named={a:'7'}").named == {"a": 7}
    assert pool("pool.named={a:1}", "pool.named=null").named is None
    assert pool("pool.counts={a:5}", "+pool.counts.b=2").counts == {"a": 5, "b": 2}
    for bad, value in (("{a:x}", {"a": "x"}), ("{a:1.5}", {"a": 1.5}), ("3", 3), ("[1,2]", [1, 2])):
        with pytest.raises(cnnpl.CnnplError) as err:
            pool(f"pool.named={bad}")
        assert str(err.value) == (
            f"pool.named must be a mapping {{name: value, ...}} of integers or null, got {value!r} (pool 'mappings')"
        )
    with pytest.raises(cnnpl.CnnplError) as err:
        pool("pool.counts={b:2}")
    assert str(err.value) == (
        "pool.counts has no key 'b' and a mapping given for it is merged into it; to add the key, write "
        "+pool.counts.b=<value>"
    )


def test_a_plugins_own_error_stays_the_cause_of_the_layer_named_refusal(restore_registries) -> None:
    @cnnpl.register("pool", "lookup")
    class Lookup(torch.nn.MaxPool2d):
        def __init__(self, kernel_size: int = 2, table: str = "x") -> None:
            super().__init__({"y": 2}[table])

    with pytest.raises(cnnpl.CnnplError) as err:
        build_model(cnnpl.compose(["pool=lookup"]), num_classes=3, in_channels=3, input_size=(32, 32))
    assert str(err.value).startswith("layer features.block1.pool: pool 'lookup' could not be built")
    assert isinstance(err.value.__cause__, KeyError)  # HYDRA_FULL_ERROR=1 shows the plugin's line


def test_a_callbacks_path_setting_is_a_path(restore_registries) -> None:
    @cnnpl.register("callback", "path_cb")
    def path_cb(folder: Path = Path("x"), mode: Literal["a", "b"] = "a") -> Any:
        return folder

    assert REGISTRIES["callback"].build("path_cb", folder="y/z") == Path("y/z")
    with pytest.raises(cnnpl.CnnplError, match=r"^callbacks.path_cb.mode must be a or b, got 'c' \(callback"):
        REGISTRIES["callback"].build("path_cb", mode="c")


def test_a_callbacks_tuple_setting_is_a_tuple_from_the_config(restore_registries) -> None:
    # helper-125: Hydra hands a callback's list settings over as a ListConfig, which the tuple conversion missed
    @cnnpl.register("callback", "window_cb")
    def window_cb(window: tuple[int, int] = (2, 2)) -> Any:
        return window

    from hydra.utils import instantiate

    cfg = cnnpl.compose(["callbacks=[minimal,window_cb]", "callbacks.window_cb.window=[3,4]"])
    made = instantiate(cfg.callbacks.window_cb)  # as cnnpl.train builds it: through Hydra
    assert type(made) is tuple and made == (3, 4)  # (a ListConfig compares equal to the tuple)
    made = REGISTRIES["callback"].build("window_cb")
    assert type(made) is tuple and made == (2, 2)


def test_model_that_does_not_take_the_layer_factories_says_so(restore_registries) -> None:
    @cnnpl.register("model", "no_factories")
    class NoFactories(torch.nn.Module):
        def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> None:
            super().__init__()

    with pytest.raises(cnnpl.CnnplError) as err:
        build_model(cnnpl.compose(["model=no_factories"]), num_classes=3, in_channels=3, input_size=(16, 16))
    assert str(err.value) == (
        "model 'no_factories' must accept conv=, pool= (the layer factories cnnpl passes to every model, with norm= "
        "and act= if it takes them; see docs/plugins.md): add them to its signature, or **kwargs"
    )


def test_entry_point_may_name_a_register_function(tmp_path: Path, restore_registries, monkeypatch) -> None:
    write(
        tmp_path / "hook_plugin.py",
        """
        import torch
        import cnnpl

        def register_all():
            cnnpl.register("act", "hook_act", torch.nn.Hardswish)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = importlib.metadata.EntryPoint("hook", "hook_plugin:register_all", "cnnpl.plugins")
    loaded = plugins._load_entry_point(ep)
    assert loaded.error is None and loaded.components == ("act/hook_act",)
    source = "package (unknown distribution) (entry point hook = hook_plugin:register_all)"
    assert cnnpl.get_registry("act").entry("hook_act").source == source


# -- when things go wrong ----------------------------------------------------------------------------

BROKEN = """
    import torch
    import cnnpl

    cnnpl.register("pool", "registered_before_failing", torch.nn.MaxPool2d)
    import no_such_dependency_xyz
"""


@pytest.fixture
def rediscover(monkeypatch, restore_registries):
    """Discover the installed plugins again, as a new process would, with ``site`` on ``sys.path``."""

    def _run(site: Path) -> list[plugins.Plugin]:
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setattr(plugins, "_installed", None)
        monkeypatch.setattr(plugins, "_warned", set())
        return plugins.installed_plugins()

    return _run


BROKEN_ERROR = (
    "plugin broken-plugin 1.0 (entry point broken = broken_plugin_mod) in group cnnpl.plugins "
    "failed to load: ModuleNotFoundError: No module named 'no_such_dependency_xyz' ("
)


@pytest.mark.slow  # a subprocess
def test_broken_installed_plugin_stops_the_command_line_before_training(cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "broken-plugin", "broken", "broken_plugin_mod", BROKEN)
    result = cli(*TINY, env=with_site(site))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # one line
    assert result.stderr.startswith(f"cnnpl: error: {BROKEN_ERROR}")
    where = f"{site / 'broken_plugin_mod.py'}, line 6). Fix or uninstall it, or skip broken plugins with "
    assert where in result.stderr
    assert "CNNPL_SKIP_BROKEN_PLUGINS=1 (on the command line: skip_broken_plugins=true)" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_broken_installed_plugin_in_python(tmp_path: Path, rediscover, monkeypatch, capsys) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "broken-plugin", "broken", "broken_plugin_mod", BROKEN)
    found = {p.source: p for p in rediscover(site)}  # what `import cnnpl` does: keeps the failure, raises nothing
    broken = found["package broken-plugin 1.0 (entry point broken = broken_plugin_mod)"]
    assert broken.error.startswith(BROKEN_ERROR) and broken.components == ()
    assert "registered_before_failing" not in cnnpl.list_components("pool")  # taken back out
    with pytest.raises(PluginError) as err:
        cnnpl.compose(["data=shapes"])
    assert str(err.value).startswith(BROKEN_ERROR)
    assert str(err.value).endswith(
        "Fix or uninstall it, or skip broken plugins with CNNPL_SKIP_BROKEN_PLUGINS=1 "
        "(on the command line: skip_broken_plugins=true)"
    )
    with pytest.warns(PluginWarning, match=r"^skipping broken plugin broken-plugin 1\.0") as caught:
        cfg = cnnpl.compose(["data=shapes", "skip_broken_plugins=true"])
    (warning,) = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert warning.endswith("line 6). Fix or uninstall it")  # no "or skip broken plugins": it is skipping
    assert "skip_broken_plugins" not in cfg  # a start-up switch, not part of the run's config
    assert cnnpl.load_plugins(cfg.get("plugins") or []) == []  # as cnnpl.train(cfg) loads them: still skipped
    with pytest.raises(PluginError):
        cnnpl.load_plugins(skip_broken=False)  # unless refused outright
    monkeypatch.setenv("CNNPL_SKIP_BROKEN_PLUGINS", "maybe")  # helper-136: was read as no
    with pytest.raises(PluginError, match=r"^CNNPL_SKIP_BROKEN_PLUGINS='maybe' is neither yes nor no: set it to 1 "):
        cnnpl.load_plugins(skip_broken=None)
    monkeypatch.setenv("CNNPL_SKIP_BROKEN_PLUGINS", "1")
    assert cnnpl.load_plugins() == []  # skipped again, warned only once
    assert listing_main(["pool", "--json"]) == 0  # the listing shows broken plugins instead of stopping
    listed = json.loads(capsys.readouterr().out)["plugins"]
    assert any(p["error"] and p["error"].startswith(BROKEN_ERROR) for p in listed)


@pytest.mark.slow  # a subprocess
def test_broken_installed_plugin_can_be_skipped_on_the_command_line(cli, tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "broken-plugin", "broken", "broken_plugin_mod", BROKEN)
    result = cli("--cfg", "job", "data=shapes", "skip_broken_plugins=true", env=with_site(site))
    assert result.returncode == 0, result.stderr
    warning = "cnnpl: warning: skipping broken plugin broken-plugin 1.0 (entry point broken = broken_plugin_mod)"
    assert result.stderr.startswith(warning), result.stderr
    assert "skip_broken_plugins" not in result.stdout and "name: max" in result.stdout


def test_plugin_clashing_with_a_builtin_names_both(tmp_path: Path, rediscover) -> None:
    site = tmp_path / "site"
    code = "import torch, cnnpl\ncnnpl.register('pool', 'max', torch.nn.AvgPool2d)\n"
    fake_distribution(site, "clash-plugin", "clash", "clash_plugin_mod", code)
    (clash,) = [p for p in rediscover(site) if p.source.startswith("package clash-plugin")]
    assert (
        "failed to load: DuplicateComponentError: pool 'max' is already registered by built-in; "
        "package clash-plugin 1.0 (entry point clash = clash_plugin_mod) tried to register it again. "
        "Pick another name, or pass override=True to replace it"
    ) in clash.error
    assert cnnpl.get_registry("pool").entry("max").source == "built-in"
    with pytest.raises(PluginError, match="pool 'max' is already registered by built-in"):
        cnnpl.load_plugins()


def test_entry_point_naming_a_missing_function_is_named(tmp_path: Path, rediscover) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "typo-plugin", "typo", "typo_plugin_mod:no_such_fn", "import cnnpl\n")
    (typo,) = [p for p in rediscover(site) if p.source.startswith("package typo-plugin")]
    assert typo.error == (  # the place is the entry point, not the line of importlib that looked it up
        "plugin typo-plugin 1.0 (entry point typo = typo_plugin_mod:no_such_fn) in group cnnpl.plugins failed to load: "
        "AttributeError: module 'typo_plugin_mod' has no attribute 'no_such_fn' (entry point typo = "
        "typo_plugin_mod:no_such_fn in the metadata of typo-plugin 1.0). Fix or uninstall it"
    )


EXIT_HINT = (
    "; a plugin must not exit while it is imported (argparse's parse_args() at module level does: the command line "
    "is cnnpl's)"
)


def test_plugin_that_exits_while_loading_fails_to_load(
    tmp_path: Path, rediscover, monkeypatch, forget_tmp_modules
) -> None:
    code = "import sys, torch, cnnpl\ncnnpl.register('pool', 'exit_pool', torch.nn.MaxPool2d)\nsys.exit(0)\n"
    path = write(tmp_path / "exits.py", code)
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value) == (
        f"plugin file {path} failed to load: SystemExit: it exited with sys.exit(0) ({path}, line 3){EXIT_HINT}"
    )
    assert "exit_pool" not in cnnpl.list_components("pool")
    # argparse refusing the command line: the place is the plugin's line, not argparse's
    code = "import argparse\n\nargs = argparse.ArgumentParser().parse_args(['--lr'])\n"
    path = write(tmp_path / "parses_args.py", code)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins(["parses_args"])
    assert str(err.value) == (
        f"plugin module parses_args failed to load: SystemExit: it exited with sys.exit(2) ({path}, line 3){EXIT_HINT}"
    )
    # an installed one is a broken plugin like any other: kept, and skipped on request
    fake_distribution(tmp_path / "site", "exit-plugin", "bye", "exit_plugin_mod", "import sys\nsys.exit('bye')\n")
    (bye,) = [p for p in rediscover(tmp_path / "site") if p.source.startswith("package exit-plugin")]
    assert bye.error == (
        "plugin exit-plugin 1.0 (entry point bye = exit_plugin_mod) in group cnnpl.plugins failed to load: "
        f"SystemExit: it exited with sys.exit('bye') ({tmp_path / 'site' / 'exit_plugin_mod.py'}, line 2){EXIT_HINT}. "
        "Fix or uninstall it"
    )
    with pytest.raises(PluginError, match=r"^plugin exit-plugin 1\.0 .*skip_broken_plugins=true\)$"):
        cnnpl.load_plugins()
    with pytest.warns(PluginWarning, match=r"^skipping broken plugin exit-plugin 1\.0"):
        assert cnnpl.load_plugins(skip_broken=True) == []


def test_file_plugin_clashing_with_an_installed_plugin_names_both(tmp_path: Path, restore_registries) -> None:
    source = example_source()
    path = write(
        tmp_path / "clash.py",
        "import torch, cnnpl\n"
        "cnnpl.register('pool', 'fine_before_clash', torch.nn.MaxPool2d)\n"
        "cnnpl.register('pool', 'softpool', torch.nn.AvgPool2d)\n",
    )
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value).startswith(
        f"plugin file {path} failed to load: DuplicateComponentError: pool 'softpool' is already registered by "
        f"{source}; file {path} tried to register it again."
    )
    assert "fine_before_clash" not in cnnpl.list_components("pool")  # a failed plugin leaves nothing behind
    assert cnnpl.get_registry("pool").entry("softpool").source == source


def test_plugin_may_override_on_purpose(tmp_path: Path, restore_registries) -> None:
    code = "import torch, cnnpl\ncnnpl.register('pool', 'avg', torch.nn.AvgPool2d, override=True)\n"
    path = write(tmp_path / "override.py", code)
    cnnpl.load_plugins([str(path)])
    assert cnnpl.get_registry("pool").entry("avg").source == f"file {path}"


def test_untyped_required_parameter_is_refused_at_registration(restore_registries) -> None:
    class Untyped(torch.nn.Module):
        def __init__(self, kernel_size, lam, stride=None) -> None:  # kernel_size comes from the architecture
            super().__init__()

    with pytest.raises(ComponentSignatureError) as err:
        cnnpl.register("pool", "untyped", Untyped)
    assert str(err.value) == (
        f"pool 'untyped' ({__name__}.test_untyped_required_parameter_is_refused_at_registration.<locals>.Untyped) "
        "cannot be registered: its required parameter 'lam' has no type hint, so it cannot become the config key "
        "pool.lam; add a type hint (lam: float, for example) or a default (lam=...)"
    )
    assert "untyped" not in cnnpl.list_components("pool")

    def positional(kernel_size: int, lam: float, /) -> torch.nn.Module:
        return torch.nn.MaxPool2d(kernel_size)

    with pytest.raises(ComponentSignatureError, match="'kernel_size' is positional-only, but cnnpl passes every"):
        cnnpl.register("pool", "positional", positional)

    class SuppliedOnly(torch.nn.MaxPool2d):
        def __init__(self, kernel_size, stride=None, padding=0) -> None:  # all supplied: accepted without hints
            super().__init__(kernel_size, stride, padding)

    cnnpl.register("pool", "supplied_only", SuppliedOnly)
    assert "supplied_only" in cnnpl.list_components("pool")


def test_an_object_no_config_can_give_is_refused(restore_registries) -> None:
    # helper-136: gate: nn.Module registered, and pool.gate=relu reached the constructor as the text 'relu'
    class Gated(torch.nn.MaxPool2d):
        def __init__(self, gate: torch.nn.Module, kernel_size: int = 2) -> None:
            super().__init__(kernel_size)

    with pytest.raises(
        ComponentSignatureError, match=r"its required parameter 'gate' is typed Module, which a config "
    ):
        cnnpl.register("pool", "gated_by", Gated)
    assert "gated_by" not in cnnpl.list_components("pool")

    class Either(torch.nn.MaxPool2d):  # a union with a kind a config holds takes that kind
        def __init__(self, gate: torch.nn.Module | str, hook: torch.nn.Module | None = None, kernel_size: int = 2):
            super().__init__(kernel_size)

    cnnpl.register("pool", "either", Either)
    check_values("pool", "either", {"gate": "relu", "hook": None})
    with pytest.raises(cnnpl.CnnplError) as err:
        check_values("pool", "either", {"gate": "relu", "hook": "relu"})
    assert str(err.value) == (
        "pool.hook takes a Module, which a config cannot give (got 'relu'); leave it null (pool 'either')"
    )
    check_values("pool", "either", {"gate": "relu", "hook": torch.nn.ReLU()})  # an object, passed from Python

    # helper-138: numbers.Real, Iterable[int] and a callback's timedelta (a _target_ node Hydra builds) were refused
    import datetime
    import numbers
    from collections.abc import Iterable

    import lightning as L

    class Scaled(torch.nn.MaxPool2d):
        def __init__(self, scale: numbers.Real, sizes: Iterable[int] = (1,), kernel_size: int = 2) -> None:
            super().__init__(kernel_size)

    class Timed(L.Callback):
        def __init__(self, every: datetime.timedelta, later: datetime.timedelta | None = None) -> None:
            self.every = every

    cnnpl.register("pool", "scaled_by", Scaled)
    check_values("pool", "scaled_by", {"scale": 2.0, "sizes": [3, 4]})
    cnnpl.register("callback", "timed_by", Timed)
    check_values("callback", "timed_by", {"every": {"_target_": "datetime.timedelta", "minutes": 5}})
    assert cnnpl.build("callback", "timed_by", every=datetime.timedelta(minutes=5)).every.seconds == 300


def test_bad_signature_in_a_plugin_file_names_the_file(tmp_path: Path, restore_registries) -> None:
    path = write(
        tmp_path / "bad_sig.py",
        "import torch, cnnpl\n\n@cnnpl.register('model', 'bad_sig_net')\n"
        "class Net(torch.nn.Module):\n    def __init__(self, num_classes, depth):\n        super().__init__()\n",
    )
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value).startswith(
        f"plugin file {path} failed to load: ComponentSignatureError: model 'bad_sig_net' (cnnpl_plugin_bad_sig.Net) "
        "cannot be registered: its required parameter 'depth' has no type hint"
    )


def test_a_plugin_file_without_py_and_an_unquoted_tilde_say_what_to_write(tmp_path: Path) -> None:
    # helper-136: "cannot be imported as Python" with no hint; Hydra's "LexerNoViableAltException ... ^ See https"
    path = write(tmp_path / "noext", "import cnnpl\n")
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value) == f"plugin file {path} cannot be imported as Python: name it with .py (noext.py)"
    with pytest.raises(cnnpl.CnnplError) as err:
        split_plugin_overrides(["plugins=[~/my_pool.py]"])
    assert str(err.value).startswith(
        "cannot read the override 'plugins=[~/my_pool.py]': Hydra's grammar cannot read the '~' at character 10; "
        "quote a value that holds spaces, = or ~"
    )


def test_broken_file_plugin_always_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "syntax.py", "def broken(:\n")
    with pytest.raises(PluginError, match=rf"plugin file {path} failed to load: SyntaxError: .*\({path}, line 1\)"):
        cnnpl.load_plugins([str(path)], skip_broken=True)


def test_plugin_overrides_are_read_before_hydra() -> None:
    specs, skip, rest = split_plugin_overrides(
        ["pool=max", "plugins=[./a.py,pkg.mod]", "skip_broken_plugins=true", "--cfg", "job"]
    )
    assert (specs, skip) == (["./a.py", "pkg.mod"], True)
    assert rest == ["pool=max", "plugins=[./a.py,pkg.mod]", "--cfg", "job"]
    assert split_plugin_overrides(["+plugins=/abs/b.py"])[0] == ["/abs/b.py"]
    assert split_plugin_overrides(["pool=max"]) == ([], None, ["pool=max"])
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-122: was "plugins cannot be swept; give one value"
        split_plugin_overrides(["plugins=a.py,b.py"])
    assert (
        str(err.value)
        == "'plugins=a.py,b.py': several plugins are one list, plugins=[a.py,b.py]; plugins cannot be swept (-m)"
    )
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-136: was plugins=[[./a.py],[./b.py]], itself refused
        split_plugin_overrides(["plugins=[./a.py],[./b.py,./a.py]"])
    assert str(err.value).endswith(
        "several plugins are one list, plugins=[./a.py,./b.py]; plugins cannot be swept (-m)"
    )
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-136: the second replaced the first without a word
        split_plugin_overrides(["plugins=[./a.py]", "pool=max", "plugins=[./b.py]"])
    assert str(err.value) == (
        "plugins=[./a.py] and plugins=[./b.py]: plugins= given twice, where the second would replace the first; give "
        "one list: plugins=[./a.py,./b.py]"
    )
    with pytest.raises(cnnpl.CnnplError, match="skip_broken_plugins cannot be swept; give one value"):
        split_plugin_overrides(["skip_broken_plugins=true,false"])
    with pytest.raises(cnnpl.CnnplError, match="skip_broken_plugins must be true or false, got 'maybe'"):
        split_plugin_overrides(["skip_broken_plugins=maybe"])


def test_skipped_plugin_warns_in_python(monkeypatch) -> None:
    error = "plugin x 1.0 failed to load: E. Fix or uninstall it"
    failed = plugins.Plugin("package", "package x 1.0 (entry point x = x)", error=error)
    monkeypatch.setattr(plugins, "_installed", [failed])
    monkeypatch.setattr(plugins, "_warned", set())
    skip = r"or skip broken plugins with CNNPL_SKIP_BROKEN_PLUGINS=1 \(on the command line: skip_broken_plugins=true\)"
    with pytest.raises(PluginError, match=rf"^plugin x 1\.0 failed to load: E\. Fix or uninstall it, {skip}$"):
        cnnpl.load_plugins()
    with pytest.warns(PluginWarning, match=r"^skipping broken plugin x 1\.0 failed to load: E\. Fix or uninstall it$"):
        cnnpl.load_plugins(skip_broken=True)
    monkeypatch.setenv("CNNPL_SKIP_BROKEN_PLUGINS", "1")
    assert cnnpl.load_plugins() == []  # already warned once


def test_failed_plugin_puts_back_what_it_overrode(tmp_path: Path, restore_registries) -> None:
    code = "\n".join(
        [
            "import torch, cnnpl",
            "cnnpl.register('pool', 'avg', torch.nn.AvgPool2d, override=True)",
            "raise RuntimeError('x')",
        ]
    )
    path = write(tmp_path / "override_then_fail.py", code)
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value) == f"plugin file {path} failed to load: RuntimeError: x ({path}, line 3)"
    assert cnnpl.get_registry("pool").entry("avg").source == "built-in"


# -- built-in callbacks, which are registered before their modules (and Lightning) are imported ---------

# A callback plugin as a user would write it; it imports Lightning only when a run builds it.
MY_CALLBACK = """
    from pathlib import Path
    from typing import Any

    import cnnpl


    @cnnpl.register("callback", "{name}"{override})
    def my_callback(marker: str = "") -> Any:
        \"\"\"Writes ``marker`` when training starts.\"\"\"
        from lightning.pytorch import Callback

        class Marker(Callback):
            def on_train_start(self, trainer, pl_module):
                Path(marker).write_text("ran")

        return Marker()
"""


@pytest.fixture
def callbacks_not_imported(restore_registries):
    """The callback registry of a process that has not imported ``cnnpl.callbacks`` (the command line's)."""
    registry = cnnpl.get_registry("callback")
    registry._entries = {name: e for name, e in registry._entries.items() if e.source != "built-in"}
    for name, target in BUILTIN_CALLBACKS.items():
        registry.defer(name, target)
    return registry


@pytest.mark.parametrize("imported", [False, True], ids=["not-imported", "imported"])
def test_plugin_taking_a_builtin_callbacks_name_is_refused_when_loaded(
    tmp_path: Path, callbacks_not_imported, imported: bool
) -> None:
    if imported:
        importlib.import_module("cnnpl.callbacks")  # what building a run's callbacks does
        cnnpl.build("callback", "histograms")  # the stand-in gives way to the class
        assert isinstance(cnnpl.get_registry("callback").get("histograms"), type)
    path = write(tmp_path / "my_histograms.py", MY_CALLBACK.format(name="histograms", override=""))
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value) == (
        f"plugin file {path} failed to load: DuplicateComponentError: callback 'histograms' is already registered "
        f"by built-in; file {path} tried to register it again. Pick another name, or pass override=True to replace "
        f"it ({path}, line 8)"  # the plugin's own line, not the registry's
    )
    assert cnnpl.get_registry("callback").entry("histograms").source == "built-in"


def test_plugin_may_override_a_builtin_callback(tmp_path: Path, callbacks_not_imported) -> None:
    from cnnpl.callbacks.histograms import HistogramsCallback

    registry = callbacks_not_imported
    path = write(tmp_path / "my_histograms.py", MY_CALLBACK.format(name="histograms", override=", override=True"))
    (loaded,) = cnnpl.load_plugins([str(path)])
    assert loaded.components == ("callback/histograms",)  # a replacement counts as the plugin's
    # cnnpl.callbacks, imported when a run builds its callbacks, registers its class: the override stays
    cnnpl.register("callback", "histograms", HistogramsCallback)
    assert registry.entry("histograms").source == f"file {path}"
    assert type(cnnpl.build("callback", "histograms", marker="x")).__name__ == "Marker"
    assert cnnpl.compose(["callbacks=[minimal,histograms]"]).callbacks.histograms.marker == ""
    # the other built-ins are built from their modules when needed
    assert isinstance(cnnpl.build("callback", "filters", every_n_epochs=2), cnnpl.callbacks.FiltersCallback)
    assert registry.get("filters") is cnnpl.callbacks.FiltersCallback


@pytest.mark.slow  # subprocesses: a fresh process has not imported cnnpl.callbacks
def test_builtin_callback_names_from_the_command_line(cli, tmp_path: Path) -> None:
    write(tmp_path / "clash.py", MY_CALLBACK.format(name="histograms", override=""))
    result = cli("plugins=[./clash.py]", "--cfg", "job")
    assert result.returncode == 2
    assert result.stderr.startswith("cnnpl: error: plugin file ") and result.stderr.count("\n") == 1
    assert "callback 'histograms' is already registered by built-in" in result.stderr
    marker = tmp_path / "marker.txt"
    write(tmp_path / "mine.py", MY_CALLBACK.format(name="histograms", override=", override=True"))
    args = ("plugins=[./mine.py]", "callbacks=[minimal,histograms]", f"callbacks.histograms.marker={marker}")
    result = cli(*TINY, *args, "logger=csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.read_text() == "ran"  # the plugin's callback, built by its registered name


def test_callback_named_like_a_set_of_callbacks_is_refused(restore_registries) -> None:
    def minimal(every_n_epochs: int = 1) -> None:
        """Never chosen: callbacks=minimal is conf/callbacks/minimal.yaml."""

    with pytest.raises(cnnpl.DuplicateComponentError) as err:
        cnnpl.register("callback", "minimal", minimal)
    assert str(err.value) == (
        "callback 'minimal' cannot be registered: the set of callbacks callbacks=minimal "
        "(conf/callbacks/minimal.yaml) already has that name, and would be chosen instead of it; pick another name"
    )
    assert "minimal" not in cnnpl.list_components("callback")


@pytest.mark.parametrize("name", ["checkpoint", "lr_monitor", "progress_bar"])
def test_callback_named_like_an_entry_of_a_set_of_callbacks_is_refused(restore_registries, name: str) -> None:
    # was: callbacks=[default,checkpoint] merged it into Lightning's ModelCheckpoint entry (dirpath, monitor...)
    def callback(every: int = 1) -> None:
        """Would be merged into the set's entry of the same name."""

    with pytest.raises(cnnpl.DuplicateComponentError) as err:
        cnnpl.register("callback", name, callback)
    assert str(err.value) == (
        f"callback {name!r} cannot be registered: the set of callbacks callbacks=default (conf/callbacks/default.yaml) "
        "has an entry of that name, which it would be merged into; pick another name"
    )
    assert name not in cnnpl.list_components("callback")


def test_a_component_named_like_a_plugins_yaml_preset_is_refused_when_chosen(restore_registries) -> None:
    # cnnpl-example's conf/pool/softpool_sharp.yaml (a preset of its softpool) is on Hydra's search path
    preset = None
    try:
        import cnnpl_example

        path = Path(cnnpl_example.__file__).parent / "conf" / "pool" / "softpool_sharp.yaml"
        preset = path if path.is_file() else None
    except ImportError:
        pass
    if preset is None:
        pytest.skip("the example plugin (plugins/cnnpl-example) is not installed")
    assert cnnpl.compose(["data=shapes", "pool=softpool_sharp"]).pool.name == "softpool"  # the preset, alone

    class Sharp(torch.nn.AvgPool2d):
        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> None:
            super().__init__(kernel_size, stride, padding)

    cnnpl.register("pool", "softpool_sharp", Sharp)  # cnnpl's own conf/ has no such file: accepted here
    with pytest.raises(cnnpl.DuplicateComponentError) as err:  # was "Error merging 'pool/softpool_sharp' with schema"
        cnnpl.compose(["data=shapes", "pool=softpool_sharp"])
    source = cnnpl.get_registry("pool").entry("softpool_sharp").source
    assert str(err.value) == (
        f"pool=softpool_sharp: the pool 'softpool_sharp' that {source} "
        f"registered cannot be chosen: a plugin's YAML option of the same name ({preset}) is chosen instead; "
        "rename the component"
    )


def test_a_yaml_on_the_command_lines_searchpath_hiding_a_component_is_refused(tmp_path: Path, restore_registries):
    from cnnpl.cli import prepare

    plugin = write(tmp_path / "hidden_pool.py", MY_POOL.format(name="hidden_pool"))
    preset = write(tmp_path / "conf" / "pool" / "hidden_pool.yaml", "name: max\n")  # configures another pool
    with pytest.raises(cnnpl.DuplicateComponentError) as err:  # was "pool 'max' has no parameter 'lam'"
        prepare([f"plugins=[{plugin}]", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "pool=hidden_pool", *TINY])
    assert str(err.value) == (
        f"pool=hidden_pool: the pool 'hidden_pool' that file {plugin} registered cannot be chosen: a plugin's YAML "
        f"option of the same name ({preset}) is chosen instead; rename the component"
    )
    preset.write_text("name: hidden_pool\nlam: 0.25\n")  # the component's own option: accepted
    prepare(
        [f"plugins=[{plugin}]", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "pool=hidden_pool", "--cfg", "job"]
    )


@pytest.fixture
def plugin_conf_folder(tmp_path: Path, monkeypatch) -> Path:
    """``tmp_path`` appended to Hydra's search path, as a plugin's ``SearchPathPlugin`` adds its config folder."""
    import hydra._internal.utils as hydra_utils
    from hydra.core.config_search_path import ConfigSearchPath

    real = hydra_utils.create_config_search_path

    def with_folder(search_dir: str | None) -> ConfigSearchPath:
        path = real(search_dir)
        path.append(provider="a-plugin", path=f"file://{tmp_path}")
        return path

    monkeypatch.setattr(hydra_utils, "create_config_search_path", with_folder)
    return tmp_path


def test_a_plugins_own_yaml_option_for_its_component_is_no_shadowing_preset(
    tmp_path: Path, plugin_conf_folder: Path, restore_registries
) -> None:
    # a search path plugin's folder with pool/mine.yaml: "name: mine" configures the component itself (as
    # a built-in's YAML does); "name: max" is a preset of another pool, which Hydra would choose instead
    from cnnpl.config import shadowing_preset

    cnnpl.register("pool", "mine", torch.nn.MaxPool2d)
    write(tmp_path / "pool" / "mine.yaml", "name: mine\nkernel_size: 3\n")
    assert shadowing_preset("pool", "mine") is None  # was refused for a day
    cnnpl.register("pool", "theirs", torch.nn.MaxPool2d)
    write(tmp_path / "pool" / "theirs.yaml", "name: max\nkernel_size: 3\n")
    assert shadowing_preset("pool", "theirs") == str(tmp_path / "pool" / "theirs.yaml")


def test_the_listing_shows_a_plugins_yaml_options(
    tmp_path: Path, plugin_conf_folder: Path, restore_registries, capsys
) -> None:
    cnnpl.register("pool", "mine", torch.nn.MaxPool2d)
    write(tmp_path / "pool" / "mine.yaml", "name: mine\nkernel_size: 3\n")  # the component's own: listed as it
    write(tmp_path / "pool" / "wide_max.yaml", "# a preset\nname: max\nkernel_size: 3\nstride: null\n")
    write(tmp_path / "pool" / "broken.yaml", "- a list\n")
    write(tmp_path / "callbacks" / "lean.yaml", "defaults:\n  - minimal\n  - _self_\nlr_monitor: null\n")
    assert listing_main(["pool", "callbacks", "--json"]) == 0
    presets = json.loads(capsys.readouterr().out)["presets"]
    assert [row for row in presets["pool"] if row["path"].startswith(str(tmp_path))] == [
        {
            "name": "broken",
            "component": None,
            "settings": {},
            "path": str(tmp_path / "pool" / "broken.yaml"),
            "error": "not a mapping",
        },
        {
            "name": "wide_max",
            "component": "max",
            "settings": {"kernel_size": 3},
            "path": str(tmp_path / "pool" / "wide_max.yaml"),
            "error": None,
        },
    ]  # was: none of them, though pool=wide_max chose one
    assert [row for row in presets["callback"] if row["path"].startswith(str(tmp_path))] == [
        {
            "name": "lean",
            "component": None,
            "settings": {},
            "path": str(tmp_path / "callbacks" / "lean.yaml"),
            "error": None,
        }
    ]
    assert listing_main(["pool"]) == 0
    shown = capsys.readouterr().out
    assert re.search(
        rf"\n  wide_max +{re.escape(str(tmp_path / 'pool' / 'wide_max.yaml'))}\n +max with kernel_size: 3\n", shown
    )
    assert "  broken    " in shown and "(cannot be read: not a mapping)" in shown
    assert "YAML options of plugins (" in shown and f"  mine  {tmp_path}" not in shown


def test_a_plugin_callbacks_required_setting_left_unset_is_one_line_before_training(restore_registries) -> None:
    from lightning.pytorch import Callback

    from cnnpl.train import check_settings

    class NeedsEvery(Callback):
        def __init__(self, every: int) -> None:
            self.every = every

    cnnpl.register("callback", "needs_every", NeedsEvery)
    chosen = ["data=shapes", "callbacks=[minimal,needs_every]"]
    with pytest.raises(cnnpl.CnnplError) as err:  # was Hydra's MissingMandatoryValue traceback, from the build
        check_settings(cnnpl.compose(chosen))
    assert str(err.value) == (
        "callback 'needs_every' needs a value for callbacks.needs_every.every (it has no default); "
        "set it on the command line: callbacks.needs_every.every=..."
    )
    check_settings(cnnpl.compose([*chosen, "callbacks.needs_every.every=2"]))


# -- where plugins are looked for ---------------------------------------------------------------------


@pytest.fixture
def hydra_job(tmp_path: Path, monkeypatch):
    """Inside a Hydra job started in ``tmp_path / "start"`` that moved to its run directory (chdir=true)."""
    from hydra.core.hydra_config import HydraConfig

    start, run = tmp_path / "start", tmp_path / "run"
    run.mkdir(parents=True)
    start.mkdir()
    monkeypatch.setattr(HydraConfig.instance(), "cfg", OmegaConf.create({"hydra": {"runtime": {"cwd": str(start)}}}))
    monkeypatch.chdir(run)
    return start


def test_relative_plugins_are_found_where_the_command_started(hydra_job: Path, restore_registries) -> None:
    path = write(hydra_job / "chdir_pool.py", MY_POOL.format(name="chdir_pool"))
    write(hydra_job / "chdir_pool_module.py", MY_POOL.format(name="chdir_module_pool"))
    (by_path, by_name) = cnnpl.load_plugins(["./chdir_pool.py", "chdir_pool_module"])
    assert by_path.source == f"file {path}" and by_name.components == ("pool/chdir_module_pool",)
    assert cnnpl.load_plugins("./chdir_pool.py") == [by_path]  # once, and one spec alone is a list of one
    with pytest.raises(PluginError, match=rf"looked for {re.escape(str(hydra_job / 'missing.py'))}\)"):
        cnnpl.load_plugins(["./missing.py"])
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins(["missing_module_xyz"])
    assert str(err.value) == (
        f"plugin module 'missing_module_xyz' was not found (no module 'missing_module_xyz' in {hydra_job} or on "
        f"sys.path); install it, or name its file instead: plugins=[{hydra_job / 'missing_module_xyz.py'}]"
    )


def test_module_plugin_missing_a_dependency_says_which(tmp_path: Path, restore_registries, monkeypatch) -> None:
    # the dependency's name is a prefix of the plugin's: still not "plugin module ... was not found"
    path = write(tmp_path / "cnnpl_test_lab_pools.py", "import cnnpl_test_lab\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins(["cnnpl_test_lab_pools"])
    assert str(err.value) == (
        f"plugin module cnnpl_test_lab_pools failed to load: ModuleNotFoundError: No module named 'cnnpl_test_lab' "
        f"({path}, line 1); the plugin was found, but not the module 'cnnpl_test_lab' it imports: install it, or add "
        "the folder that holds it to PYTHONPATH"
    )


def test_errors_name_the_plugins_line_once(tmp_path: Path, restore_registries) -> None:
    path = write(
        tmp_path / "clash_line.py", "import torch, cnnpl\n\ncnnpl.register('pool', 'max', torch.nn.AvgPool2d)\n"
    )
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert str(err.value).endswith(f"pass override=True to replace it ({path}, line 3)")
    path = write(tmp_path / "syntax_line.py", "def broken(:\n")
    with pytest.raises(PluginError) as err:
        cnnpl.load_plugins([str(path)])
    assert re.fullmatch(rf"plugin file {path} failed to load: SyntaxError: [^(]+ \({path}, line 1\)", str(err.value))


# -- a plugin that replaces a built-in with YAML --------------------------------------------------------


def test_replacing_a_builtin_with_yaml_makes_its_parameters_settable(restore_registries) -> None:
    builtin = cnnpl.get_registry("pool").entry("avg")

    @cnnpl.register("pool", "avg", override=True)
    class ScaledAvg(torch.nn.AvgPool2d):
        """Average pooling times ``scale``."""

        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0, scale: float = 1.0):
            super().__init__(kernel_size, stride, padding)
            self.scale = scale

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = cnnpl.compose(["pool=avg", "pool.scale=2.0"])
    assert OmegaConf.to_container(cfg.pool) == {
        "name": "avg",  # conf/pool/avg.yaml, with the replacement's own parameter
        "kernel_size": None,
        "stride": None,
        "padding": None,
        "scale": 2.0,
    }
    assert not [w for w in caught if "ConfigStore schema" in str(w.message)]  # Hydra's merge, meant here
    assert build_model(cfg, num_classes=3, in_channels=3, input_size=(32, 32)).features.block1.pool.scale == 2.0
    with pytest.raises(cnnpl.CnnplError, match=r"^pool\.scale must be a number"):
        build_model(cnnpl.compose(["pool=avg", "pool.scale=abc"]), num_classes=3, in_channels=3, input_size=(32, 32))
    cnnpl.get_registry("pool")._entries["avg"] = builtin  # the built-in back: its YAML alone again
    assert "scale" not in cnnpl.compose(["pool=avg"]).pool
    with pytest.raises(cnnpl.CnnplError, match=r"^pool\.scale is not a setting of this config; "):
        cnnpl.compose(["pool=avg", "pool.scale=2.0"])


# -- render: the plugins of a finished run --------------------------------------------------------------


def finished_run(root: Path, plugins_value: object, forget: tuple[str, str, str]) -> Path:
    """A run of ``simple_cnn`` with the pool a plugin registered, started in ``root / "start"``; returns
    its checkpoint. The config says ``plugins: <plugins_value>``; then the plugin is forgotten, as in a new
    process (``forget``: the pool, the plugin's key in cnnpl.plugins, its module)."""
    from cnnpl.network import instantiate_node

    pool, key, module = forget
    run = root / "run"
    overrides = ["data=shapes", "data.num_train=40", "data.num_test=20", f"pool={pool}", "model.channels=[4,8]"]
    cfg = cnnpl.compose([*overrides, "model.hidden=[8]"], output_dir=str(run))
    datamodule = instantiate_node(cfg.data)
    datamodule.setup("fit")
    net = build_model(cfg, datamodule.num_classes, datamodule.in_channels, datamodule.input_size)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    cfg.plugins = plugins_value
    OmegaConf.save(cfg, run / "config.yaml")
    write(run / ".hydra" / "hydra.yaml", f"hydra:\n  runtime:\n    cwd: {root / 'start'}\n")
    del REGISTRIES["pool"]._entries[pool]
    del plugins._named[key]
    sys.modules.pop(module, None)
    return ckpt


def test_render_loads_the_runs_plugins_from_where_it_started(tmp_path: Path, restore_registries, monkeypatch):
    from cnnpl.render import load_checkpoint

    start = tmp_path / "start"
    path = write(start / "render_pool.py", MY_POOL.format(name="render_pool"))
    cnnpl.load_plugins([str(path)])
    # one spec, not a list: training accepts plugins=./render_pool.py
    ckpt = finished_run(tmp_path, "./render_pool.py", ("render_pool", f"file {path}", "cnnpl_plugin_render_pool"))
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    net, _, cfg = load_checkpoint(ckpt)
    assert type(net.features.block1.pool).__name__ == "HalfMaxPool" and cfg.plugins == "./render_pool.py"


def test_render_finds_a_module_plugin_where_the_run_started(tmp_path: Path, restore_registries, monkeypatch):
    from cnnpl.render import load_checkpoint

    start = tmp_path / "start"
    write(start / "render_module_pool.py", MY_POOL.format(name="render_module_pool"))
    with monkeypatch.context() as patch:  # training found it on sys.path: it ran in that folder
        patch.syspath_prepend(str(start))
        cnnpl.load_plugins(["render_module_pool"])
    forget = ("render_module_pool", "module render_module_pool", "render_module_pool")
    ckpt = finished_run(tmp_path, ["render_module_pool"], forget)
    monkeypatch.chdir(write(tmp_path / "elsewhere" / "x", "").parent)
    net, _, _ = load_checkpoint(ckpt)
    assert type(net.features.block1.pool).__name__ == "HalfMaxPool"
    assert str(start) not in sys.path  # only while loading
    (start / "render_module_pool.py").rename(start / "moved.py")  # gone: the hint names the run's folder
    del REGISTRIES["pool"]._entries["render_module_pool"]
    del plugins._named["module render_module_pool"]
    sys.modules.pop("render_module_pool")
    with pytest.raises(PluginError, match=rf"in {re.escape(str(start))} or on sys.path\); .*plugins=\[{start}/"):
        load_checkpoint(ckpt)


def test_render_can_skip_a_broken_installed_plugin(tmp_path: Path, rediscover, monkeypatch, capsys) -> None:
    from cnnpl.render import load_checkpoint
    from cnnpl.render import main as render_main

    path = write(tmp_path / "start" / "skip_pool.py", MY_POOL.format(name="skip_pool"))
    cnnpl.load_plugins([str(path)])
    ckpt = finished_run(tmp_path, [str(path)], ("skip_pool", f"file {path}", "cnnpl_plugin_skip_pool"))
    fake_distribution(tmp_path / "site", "broken-plugin", "broken", "broken_plugin_mod", BROKEN)
    rediscover(tmp_path / "site")
    with pytest.raises(PluginError, match=r"\(on the command line: skip_broken_plugins=true\)$"):
        load_checkpoint(ckpt)
    monkeypatch.setattr("cnnpl.render.render", lambda *args, **kwargs: [])  # the pictures are test_viz's
    assert render_main([f"ckpt={ckpt}", f"out={tmp_path / 'out'}", "skip_broken_plugins=true"]) == 0
    warning = capsys.readouterr().err
    assert (
        warning.startswith("cnnpl.render: warning: skipping broken plugin broken-plugin 1.0")
        and warning.count("\n") == 1
    )


def test_summary_can_skip_a_broken_installed_plugin_with_one_warning_line(tmp_path: Path, rediscover, capsys) -> None:
    from cnnpl.summary import main as summary_main

    fake_distribution(tmp_path / "site", "broken-plugin", "broken", "broken_plugin_mod", BROKEN)
    rediscover(tmp_path / "site")
    assert summary_main(["model=lenet5", "skip_broken_plugins=true"]) == 0
    warning = capsys.readouterr().err  # was Python's "config.py:452: PluginWarning: ..." and the source line
    assert warning.startswith("cnnpl.summary: warning: skipping broken plugin broken-plugin 1.0"), warning
    assert warning.count("\n") == 1


def test_a_file_that_is_not_python_is_not_taken_for_a_module(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not python\n")
    with pytest.raises(PluginError) as err:
        load_plugins(["notes.txt"], base=tmp_path)
    assert str(err.value) == (
        "plugin 'notes.txt' is a file but not Python: a plugin file ends in .py (a module name has no file ending)"
    )


def test_a_plugin_file_in_a_subfolder_imports_its_siblings(
    tmp_path: Path, restore_registries, forget_tmp_modules
) -> None:
    # as `python lab/lab_pool.py` would: the file's own folder is searched first while it loads
    write(tmp_path / "lab" / "cnnpl_test_lab_sizes.py", "WIDTH = 3\n")
    write(
        tmp_path / "lab" / "lab_pool.py",
        """
        import cnnpl
        import torch
        from cnnpl_test_lab_sizes import WIDTH

        @cnnpl.register("pool", "lab_sized_pool")
        class LabSizedPool(torch.nn.MaxPool2d):
            def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0, width: int = WIDTH):
                super().__init__(kernel_size, stride, padding)
        """,
    )
    path_before = list(sys.path)
    cnnpl.load_plugins(["lab/lab_pool.py"], base=tmp_path)  # was: ModuleNotFoundError: cnnpl_test_lab_sizes
    assert cnnpl.compose(["pool=lab_sized_pool"]).pool.width == 3
    assert sys.path == path_before  # the folder is searched while the file loads, not for the rest of the run


@pytest.mark.parametrize("order", [("lab_pools", "lab_models"), ("lab_models", "lab_pools")])
def test_plugin_files_in_a_subfolder_that_import_each_other_run_once(
    tmp_path: Path, restore_registries, forget_tmp_modules, order: tuple[str, str]
) -> None:
    write(
        tmp_path / "lab" / "lab_pools.py",
        """
        import cnnpl
        import torch

        @cnnpl.register("pool", "lab_sub_pool")
        class LabPool(torch.nn.MaxPool2d):
            pass
        """,
    )
    write(
        tmp_path / "lab" / "lab_models.py",
        """
        import cnnpl
        import torch
        from lab_pools import LabPool

        @cnnpl.register("model", "lab_sub_model")
        def lab_model(num_classes: int = 10) -> torch.nn.Module:
            return torch.nn.Sequential(LabPool(2), torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))
        """,
    )
    # was: lab_pools.py ran twice (named, then imported by lab_models.py): DuplicateComponentError
    cnnpl.load_plugins([f"./lab/{name}.py" for name in order], base=tmp_path)
    assert cnnpl.get_registry("pool").entry("lab_sub_pool").source == f"file {tmp_path / 'lab' / 'lab_pools.py'}"
    assert "lab_sub_model" in cnnpl.list_components("model")


@pytest.mark.parametrize(
    "specs",
    [
        ["./labpkg", "./user_of_labpkg.py"],  # a package folder, then a file beside it that imports it
        ["labpkg.lab_mod_pools", "./labpkg/lab_mod_user.py"],  # a module plugin, then a file beside its file
    ],
)
def test_a_plugin_loaded_already_is_not_run_again_by_a_file_beside_it(
    tmp_path: Path, restore_registries, forget_tmp_modules, specs: list[str]
) -> None:
    pools = """
        import cnnpl
        import torch

        @cnnpl.register("pool", "{name}")
        class Pool(torch.nn.MaxPool2d):
            pass
        """
    write(tmp_path / "labpkg" / "__init__.py", pools.format(name="labpkg_pool"))
    write(tmp_path / "labpkg" / "lab_mod_pools.py", pools.format(name="lab_mod_pool"))
    write(tmp_path / "user_of_labpkg.py", "import labpkg\n")
    write(tmp_path / "labpkg" / "lab_mod_user.py", "from lab_mod_pools import Pool\n")
    cnnpl.load_plugins(specs, base=tmp_path)  # was: the first one ran twice, DuplicateComponentError
    for stem in ("labpkg", "lab_mod_pools"):
        module = sys.modules.get(stem)
        assert module is None or module.__name__ == stem  # no alias left behind


# -- review fixes (helper-79): a plugin's settings checked as the docs say ---------------------------------

FORWARD_HINTS = """
from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import cnnpl
from torch import nn

if TYPE_CHECKING:
    from collections import OrderedDict  # never imported at run time: its hint cannot be resolved


class Mode(enum.Enum):
    MAX = "max"
    AVG = "avg"


@cnnpl.register("pool", "forward_hints")
class ForwardHints(nn.MaxPool2d):
    def __init__(
        self,
        kernel_size: int = 2,
        stride: int | None = None,
        padding: int = 0,
        lam: float = 0.5,
        extra: OrderedDict | None = None,
        mode: Mode = Mode.MAX,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.lam, self.mode = lam, mode


@cnnpl.register("pool", "not_a_layer")
class NotALayer:
    def __init__(self, kernel_size: int = 2) -> None:
        self.kernel_size = kernel_size
"""


def test_a_hint_that_cannot_be_resolved_leaves_the_others_checked(tmp_path: Path, restore_registries) -> None:
    load_plugins([str(write(tmp_path / "forward_hints.py", FORWARD_HINTS))])
    from cnnpl.config import _type_hints

    hints = _type_hints(cnnpl.registry.get_registry("pool").get("forward_hints"))
    assert hints["lam"] is float and "extra" not in hints  # was {}: every key unchecked
    with pytest.raises(cnnpl.CnnplError, match=r"^pool\.lam must be a number, got 'abc' \(pool 'forward_hints'\)$"):
        cnnpl.compose(["pool=forward_hints", "pool.lam=abc"])
    # an Enum default is the member (was null, which means "the architecture decides")
    cfg = cnnpl.compose(["pool=forward_hints"])
    assert OmegaConf.to_yaml(cfg.pool).splitlines()[-1] == "mode: MAX"
    model = build_model(cnnpl.compose(["pool=forward_hints", "pool.mode=AVG"]), 3, 3, (32, 32))
    assert model.features.block1.pool.mode.value == "avg"


def test_a_component_that_builds_no_module_is_named(tmp_path: Path, restore_registries) -> None:
    path = write(tmp_path / "forward_hints.py", FORWARD_HINTS)
    load_plugins([str(path)])
    with pytest.raises(cnnpl.CnnplError) as err:  # was "model 'simple_cnn' could not be built ...: not a Module"
        build_model(cnnpl.compose(["pool=not_a_layer"]), 3, 3, (32, 32))
    assert str(err.value) == (
        f"layer features.block1.pool: pool 'not_a_layer' (file {path}) built a NotALayer, not a torch.nn.Module: "
        "a pool must build a layer (subclass torch.nn.Module, or return one)"
    )


def test_a_parameter_called_name_is_refused_at_registration(restore_registries) -> None:
    class Named(torch.nn.MaxPool2d):
        def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0, name: str = "x"):
            super().__init__(kernel_size, stride, padding)

    with pytest.raises(ComponentSignatureError) as err:
        cnnpl.register("pool", "named", Named)
    assert str(err.value).endswith(
        "cannot be registered: its parameter 'name' is the config key pool.name, which chooses the pool "
        "(pool.name=named), so it could never be set; rename it"
    )
    assert "named" not in cnnpl.list_components("pool")


CALLBACK_PLUGIN = """
import cnnpl
from lightning.pytorch import Callback


@cnnpl.register("callback", "every_few")
class EveryFew(Callback):
    def __init__(self, every: int, tag: str = "x") -> None:
        self.every, self.tag = every, tag
"""


def test_a_plugin_callbacks_settings_are_checked_before_training(
    tmp_path: Path, restore_registries, monkeypatch
) -> None:
    from cnnpl import cli

    monkeypatch.chdir(tmp_path)  # the command that is not refused makes its outputs/<day>/<time> folder here
    monkeypatch.setattr(cli, "_claimed_run_dir", None)  # and records it: restored after the test
    path = write(tmp_path / "every_few.py", CALLBACK_PLUGIN)
    from cnnpl.cli import prepare

    with pytest.raises(cnnpl.CnnplError) as err:  # was: trained to the end with every='abc'
        prepare([f"plugins=[{path}]", "callbacks=[minimal,every_few]", "callbacks.every_few.every=abc", *TINY])
    assert str(err.value) == "callbacks.every_few.every must be an integer, got 'abc' (callback 'every_few')"
    with pytest.raises(cnnpl.CnnplError) as err:  # not set at all: missing, not "got '???'"
        prepare([f"plugins=[{path}]", "callbacks=[minimal,every_few]", *TINY])
    assert str(err.value) == (
        "callback 'every_few' needs a value for callbacks.every_few.every (it has no default); set it on the "
        "command line: callbacks.every_few.every=..."
    )
    # in Python, as the callback is built
    with pytest.raises(cnnpl.CnnplError, match=r"^callbacks\.every_few\.every must be an integer, got 'abc'"):
        cnnpl.registry.build("callback", "every_few", every="abc")
    assert cnnpl.registry.build("callback", "every_few", every=3).every == 3
    # a setting of Hydra's run time (${hydra:...}) is the run's to resolve: was "HydraConfig was not set"
    prepare([*TINY, "callbacks=minimal", "callbacks.checkpoint.dirpath=${hydra:runtime.output_dir}/ck"])
    # named in a list: what the plugins loaded registered, as a single option gets
    with pytest.raises(cnnpl.CnnplError, match=r"no option 'nope_cb'.*the plugins loaded \(file .*every_few\.py\) "):
        prepare(["callbacks=[default,nope_cb]", "--cfg", "job"])


def test_a_plugins_own_yaml_option_is_merged_without_hydras_warning(tmp_path: Path, restore_registries) -> None:
    load_plugins([str(write(tmp_path / "forward_hints.py", FORWARD_HINTS))])
    write(tmp_path / "conf" / "pool" / "forward_hints.yaml", "name: forward_hints\nlam: 0.25\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cnnpl.config.register_component_configs()  # its filter, as the command line sets it
        cfg = cnnpl.compose(["pool=forward_hints", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"])
    assert cfg.pool.lam == 0.25
    assert not [w for w in caught if "validated against ConfigStore schema" in str(w.message)], [
        str(w.message) for w in caught
    ]


def test_a_searchpath_folder_that_does_not_exist_is_named(tmp_path: Path, monkeypatch) -> None:
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    with pytest.raises(cnnpl.CnnplError) as err:  # was "data=my_images: no such option"
        prepare(["hydra.searchpath=[file://myconf]", "data=shapes", "--cfg", "job"])
    assert str(err.value).startswith(
        f"hydra.searchpath names file://myconf, which is no folder (looked for {tmp_path / 'myconf'}); give the folder"
    )
    (tmp_path / "myconf").mkdir()  # relative to where the command runs, as Hydra reads it
    prepare(["hydra.searchpath=[file://myconf]", "data=shapes", "--cfg", "job"])


def test_an_enum_setting_reads_back_from_the_saved_config(tmp_path: Path, restore_registries) -> None:
    from cnnpl.checkpoint import _flat
    from cnnpl.config import layer_factory

    load_plugins([str(write(tmp_path / "forward_hints.py", FORWARD_HINTS))])
    mode = cnnpl.get_registry("pool").get("forward_hints").__init__.__globals__["Mode"]
    for given in ([], ["pool.mode=AVG"]):
        cfg = cnnpl.compose(["pool=forward_hints", *given])
        saved = OmegaConf.create(OmegaConf.to_yaml(cfg))  # the run's config.yaml, which render and a resume read
        assert isinstance(saved.pool.mode, str)
        # render built the layer with the word 'MAX' (a plugin testing `mode is Mode.MAX` took its other branch)
        assert layer_factory("pool", saved.pool).params["mode"] is mode[saved.pool.mode]
        # a resume with the same command was refused: "pool.mode (run: MAX, now: Mode.MAX)"
        now, then = _flat(OmegaConf.to_container(cfg)), _flat(OmegaConf.to_container(saved))
        assert now["pool.mode"] == then["pool.mode"] == saved.pool.mode
    with pytest.raises(
        cnnpl.CnnplError, match=r"^pool\.mode must be one of MAX, AVG, got 'MIN' \(pool 'forward_hints'\)"
    ):
        layer_factory("pool", {"name": "forward_hints", "mode": "MIN"})
    # Optional[Mode] = None left at None: the constructor's own choice (was "must be one of MAX, AVG, got None")
    assert layer_factory("pool", {"name": "forward_hints", "extra": None, "mode": None}).params["mode"] is None


STR_ENUM_DEFAULTS = """
import enum

from torch import nn

import cnnpl


class Mode(str, enum.Enum):
    MAX = "max"
    AVG = "avg"


@cnnpl.register("pool", "str_enum_default")
class StrEnumDefault(nn.MaxPool2d):
    def __init__(self, kernel_size: int = 2, stride: int | None = None, mode: str = Mode.MAX, how=Mode.AVG) -> None:
        super().__init__(kernel_size, stride)
        if mode not in ("max", "avg") or how not in ("max", "avg"):
            raise ValueError(f"mode and how must be 'max' or 'avg', got {mode!r} and {how!r}")
        self.mode, self.how = mode, how
"""


def test_a_str_enum_default_reaches_the_layer_as_its_value(tmp_path: Path, restore_registries) -> None:
    from cnnpl.checkpoint import _flat
    from cnnpl.config import generated_config, layer_factory

    load_plugins([str(write(tmp_path / "str_enum_default.py", STR_ENUM_DEFAULTS))])
    cfg = cnnpl.compose(["pool=str_enum_default"])
    # a parameter typed `str` (or not typed) whose default is a str-mixin Enum member holds the member's value:
    # it was the word 'Mode.MAX' (OmegaConf's str() of the member), which the layer refused
    assert (cfg.pool.mode, cfg.pool.how) == ("max", "avg")
    assert generated_config("pool", "str_enum_default")["mode"] == "max"
    saved = OmegaConf.create(OmegaConf.to_yaml(cfg))  # the run's config.yaml: the same words, not 'AVG'
    assert (saved.pool.mode, saved.pool.how) == ("max", "avg")
    assert _flat(OmegaConf.to_container(cfg)) == _flat(OmegaConf.to_container(saved))
    layer = layer_factory("pool", saved.pool)()
    assert (layer.mode, layer.how) == ("max", "avg")
    model = build_model(cnnpl.compose(["pool=str_enum_default", "pool.mode=avg"]), 3, 3, (32, 32))
    assert model.features.block1.pool.mode == "avg"


def test_a_plugin_constructor_refusing_a_setting_its_own_way_is_one_line(restore_registries, tmp_path: Path) -> None:
    # was a traceback: only TypeError and ValueError were turned into the one line
    path = tmp_path / "bad_init.py"
    path.write_text(
        "import cnnpl\nfrom torch import nn\n\n\n"
        "@cnnpl.register('pool', 'assert_pool')\n"
        "class AssertPool(nn.MaxPool2d):\n"
        "    def __init__(self, kernel_size=2, lam: float = 0.5):\n"
        "        assert 0 <= lam <= 1, f'lam must be in [0, 1], got {lam}'\n"
        "        super().__init__(kernel_size)\n"
    )
    cnnpl.load_plugins([str(path)])
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.registry.get_registry("pool").build("assert_pool", lam=2.0)
    assert str(err.value) == (
        "pool 'assert_pool' could not be built with lam=2.0: AssertionError: lam must be in [0, 1], got 2.0 "
        f"({path}, line 8); check the pool.* settings (HYDRA_FULL_ERROR=1 shows the traceback)"
    )
    assert isinstance(err.value.__cause__, AssertionError)


def test_a_built_in_components_own_bug_keeps_its_traceback(restore_registries, monkeypatch) -> None:
    from cnnpl.layers import pooling

    def broken(*args, **kwargs):
        raise KeyError("a bug in cnnpl")

    monkeypatch.setattr(pooling.MixedPool, "__init__", broken)
    with pytest.raises(KeyError):
        cnnpl.registry.get_registry("pool").build("mixed", kernel_size=2)


def test_a_replacement_of_a_built_in_need_not_take_the_settings_its_yaml_leaves_alone(restore_registries) -> None:
    # was "conv 'conv2d' has no parameter 'init'" for every run once the plugin loaded: conf/conv/conv2d.yaml's
    # init: null and freeze: false, which the user never set
    from torch import nn

    from cnnpl.config import layer_factory

    @cnnpl.register("conv", "conv2d", override=True)
    class PlainConv(nn.Conv2d):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True) -> None:
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    factory = layer_factory("conv", cnnpl.compose(["data=shapes"]).conv)
    assert "init" not in factory.params and "freeze" not in factory.params
    assert isinstance(factory(in_channels=3, out_channels=4, kernel_size=3), PlainConv)
    with pytest.raises(
        cnnpl.CnnplError, match=r"^conv\.init is not a setting of conv=conv2d, but of conv=dilated, "
    ):  # the user's own: refused
        layer_factory("conv", cnnpl.compose(["data=shapes", "conv.init=sharpen"]).conv)


def test_cnnpls_own_warnings_are_one_line_in_the_tools(capsys) -> None:
    # helper-139: render printed the uneven-classes warning as Python does, "/…/render.py:241: UserWarning: …" and
    # the line of code that warned; a warning of anyone else keeps Python's format
    import os
    import warnings

    from cnnpl.plugins import plugin_warnings_on_one_line

    render_py = os.path.join(os.path.dirname(os.path.abspath(cnnpl.__file__)), "render.py")
    with plugin_warnings_on_one_line("cnnpl.render"):
        warnings.warn_explicit("the classes hold 4 to 9 images", UserWarning, filename=render_py, lineno=241)
        warnings.warn_explicit("someone else's", UserWarning, filename="/elsewhere/lib.py", lineno=3)
    err = capsys.readouterr().err
    assert err.startswith("cnnpl.render: warning: the classes hold 4 to 9 images\n")
    assert "someone else's" not in err  # Python's (pytest records it)
