"""The component registry: both registration forms, listing, and its error messages."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import typing

import pytest
import torch
from torch import nn

import cnnpl
import cnnpl.callbacks  # registers the built-in callbacks
from cnnpl import viz
from cnnpl.errors import CnnplError, DuplicateComponentError, UnknownComponentError
from cnnpl.registry import (
    BUILTIN_CALLBACKS,
    LazyBuiltin,
    Registry,
    SourceText,
    built_by,
    get_registry,
    list_components,
    static_signature,
)


def test_decorator_and_call_forms_register_and_build() -> None:
    reg = Registry("pool")

    @reg.register("twice")
    class Twice(nn.Module):
        def __init__(self, factor: int = 2) -> None:
            super().__init__()
            self.factor = factor

    reg.register("same", nn.Identity)
    assert reg.names() == ["same", "twice"]
    assert reg.build("twice", factor=3).factor == 3
    assert isinstance(reg.build("same"), nn.Identity)
    assert reg.entry("twice").source.endswith("test_registry")  # where it was defined


def test_duplicate_name_raises_naming_both_sources_unless_override() -> None:
    reg = Registry("conv")
    reg.register("a", nn.Identity)
    with pytest.raises(
        DuplicateComponentError, match=r"conv 'a' is already registered by module torch\..*override=True"
    ):
        reg.register("a", nn.ReLU)
    reg.register("a", nn.ReLU, override=True)
    assert reg.get("a") is nn.ReLU


def test_only_classes_and_functions_register() -> None:
    # helper-136: a layer (nn.MaxPool2d(2)) registered, then failed at build with "MaxPool2d.forward() got an
    # unexpected keyword argument 'kernel_size'"
    reg = Registry("pool")
    with pytest.raises(TypeError, match=r"^pool 'p': register the class MaxPool2d, not a layer made of it: cnnpl"):
        reg.register("p", nn.MaxPool2d(2))
    with pytest.raises(TypeError, match=r"^pool 'p': can only register a class or a function, got 3$"):
        reg.register("p", 3)
    assert reg.names() == []
    reg.register("p", nn.MaxPool2d)


def test_two_classes_of_one_module_cannot_share_a_name() -> None:
    class First(nn.Identity):
        pass

    class Second(nn.Identity):
        pass

    reg = Registry("pool")
    reg.register("twin", First)
    assert reg.register("twin", First) is First  # the same class again (a module imported twice) is no clash
    # the same source, another class: replacing it silently would build the wrong layer
    with pytest.raises(
        DuplicateComponentError,
        match=r"^pool 'twin' is already registered by module (\w+\.)*test_registry; module (\w+\.)*test_registry tried",
    ):
        reg.register("twin", Second)
    assert reg.get("twin") is First


def test_unknown_name_lists_available_and_suggests_close_matches() -> None:
    with pytest.raises(UnknownComponentError) as err:
        cnnpl.build("pool", "maxx")
    assert str(err.value).startswith("unknown pool 'maxx'; did you mean 'max'?")
    assert "Available: " in str(err.value) and "avg" in str(err.value)


def test_unknown_family_and_bad_names() -> None:
    with pytest.raises(UnknownComponentError, match="unknown component family 'pooling'"):
        cnnpl.list_components("pooling")
    with pytest.raises(ValueError, match="must be a Python identifier"):
        Registry("pool").register("my-pool", nn.Identity)
    assert "pööl".isidentifier()  # to Python, but the command line's parser (Hydra's) refuses it
    with pytest.raises(
        ValueError, match=r"'pööl' must be a Python identifier \(ASCII letters, digits and underscores\)"
    ):
        Registry("pool").register("pööl", nn.Identity)


@pytest.mark.parametrize(
    ("name", "read_as"), [("true", "true"), ("NULL", "null"), ("Inf", "infinity"), ("nan", "not-a-number")]
)
def test_names_hydra_reads_as_values_are_refused(name: str, read_as: str) -> None:
    # registered before, then pool=true failed: "Config group override must be a string or a list. Got bool"
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert not isinstance(OverridesParser.create().parse_override(f"pool={name}").value(), str)  # Hydra's reading
    with pytest.raises(ValueError) as err:
        Registry("pool").register(name, nn.Identity)
    assert str(err.value) == (
        f"pool component name {name!r} cannot be used on the command line: Hydra reads pool={name} as {read_as}, "
        "not as a name; pick another name"
    )
    Registry("pool").register(f"{name}_pool", nn.Identity)  # a name that only starts with one is fine


def test_misspelt_parameter_suggests_the_right_one() -> None:
    with pytest.raises(UnknownComponentError) as err:
        cnnpl.build("pool", "max", kernal_size=3)
    assert str(err.value) == (
        "pool 'max' has no parameter 'kernal_size'; did you mean 'kernel_size'? "
        "Parameters: kernel_size, stride, padding"
    )


def test_messages_without_a_close_match_read_the_same() -> None:
    with pytest.raises(UnknownComponentError) as err:
        cnnpl.build("pool", "max", zzz=2)
    assert str(err.value) == "pool 'max' has no parameter 'zzz'. Parameters: kernel_size, stride, padding"
    with pytest.raises(UnknownComponentError, match=r"^unknown pool 'zzzz'\. Available: avg, "):
        cnnpl.build("pool", "zzzz")
    with pytest.raises(UnknownComponentError, match=r"^unknown component family 'zzz'\. Families: conv, pool, "):
        cnnpl.list_components("zzz")


def test_module_level_api_lists_the_builtins() -> None:
    assert set(cnnpl.FAMILIES) >= {"conv", "pool", "model"}
    assert {"conv2d"} <= set(cnnpl.list_components("conv"))
    assert {"max", "avg"} <= set(cnnpl.list_components("pool"))
    assert "simple_cnn" in cnnpl.list_components("model")
    assert cnnpl.list_components("pool") == sorted(cnnpl.list_components("pool"))


def test_what_cnnpl_registers_reads_built_in_also_torchs_classes() -> None:
    # helper-123: relu, gelu, silu and tanh (torch's classes, registered by cnnpl.layers.activation) were listed as
    # "module torch.nn.modules.activation"
    from cnnpl.registry import REGISTRIES

    assert {cnnpl.get_registry("act").entry(name).source for name in ("relu", "gelu", "silu", "tanh")} == {"built-in"}
    sources = {entry.source for registry in REGISTRIES.values() for entry in registry._entries.values()}
    assert not [source for source in sources if source.startswith(("module torch", "module cnnpl"))]


def test_global_register_and_override_roundtrip() -> None:
    class Probe(nn.Identity):
        pass

    cnnpl.register("act", "probe_identity", Probe)
    try:
        with pytest.raises(DuplicateComponentError):
            cnnpl.register("act", "probe_identity", nn.ReLU)
        assert isinstance(cnnpl.build("act", "probe_identity"), Probe)
    finally:
        cnnpl.get_registry("act")._entries.pop("probe_identity")


def test_builtin_callbacks_table_matches_what_their_modules_register() -> None:
    registry = cnnpl.get_registry("callback")
    builtins = {name: registry.get(name) for name in registry.names() if registry.entry(name).source == "built-in"}
    assert {name: f"{obj.__module__}:{obj.__qualname__}" for name, obj in builtins.items()} == BUILTIN_CALLBACKS


@pytest.mark.parametrize("name", sorted(BUILTIN_CALLBACKS))
def test_builtin_callback_stand_in_reads_signature_and_docstring_from_source(name: str) -> None:
    reg = Registry("callback")
    reg.defer(name, BUILTIN_CALLBACKS[name])
    stand_in = reg.get(name)
    assert isinstance(stand_in, LazyBuiltin)
    real = cnnpl.get_registry("callback").get(name)
    assert (stand_in.__module__, stand_in.__qualname__) == (real.__module__, real.__qualname__)
    assert inspect.signature(stand_in) == inspect.signature(real)  # names, kinds, defaults and hints
    assert inspect.getdoc(stand_in) == inspect.getdoc(real)
    loading = Registry("callback")
    loading.defer(name, BUILTIN_CALLBACKS[name])
    assert loading.load(name) is real and loading.get(name) is real  # load: the class, no stand-in left
    built = reg.build(name, **({"parameters": ["x"], "epochs": 1} if name == "freeze" else {}))
    assert type(built) is real and reg.get(name) is real  # building imports it and puts it in place


def test_built_by_reads_the_component_a_registry_node_names_and_nothing_else() -> None:
    from omegaconf import OmegaConf

    from cnnpl.config import callback_config

    node = callback_config("freeze")["freeze"]
    assert built_by(node) == ("callback", "freeze")
    assert built_by(OmegaConf.create(node)) == ("callback", "freeze")  # as Hydra hands it over
    assert built_by({"_target_": "cnnpl.build", "_args_": ["callback", "freeze"]}) == ("callback", "freeze")  # alias
    assert built_by({"_target_": "cnnpl.registry.build", "_args_": ["callback", "not_there"]}) == (
        "callback",
        "not_there",
    )
    for other in (
        {"_target_": "cnnpl.registry.build", "_args_": ["callback"]},
        {"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitor": "val/loss"},
        {"_args_": ["callback", "freeze"]},
        None,
        "freeze",
    ):
        assert built_by(other) is None, other


def test_static_signature_reads_what_the_source_tells() -> None:
    signature, doc = static_signature("cnnpl.callbacks.averaging", "Lookahead")
    assert signature.parameters["decay"].default == 0.95**5 and doc.startswith("Every ``every`` optimizer steps")
    signature, _ = static_signature("cnnpl.callbacks.kernels_demo", "KernelsDemoCallback")  # = viz.DEMO_KERNELS
    assert signature.parameters["kernels"].default == viz.DEMO_KERNELS
    assert static_signature("cnnpl.viz", "feature_map_grid")[0] == inspect.signature(viz.feature_map_grid)
    signature, _ = static_signature("cnnpl.models.simple_cnn", "SimpleCNN")
    conv = signature.parameters["conv"].default  # LayerFactory("conv", "conv2d"): only running it could tell
    assert isinstance(conv, SourceText) and repr(conv) == "DEFAULT_CONV"
    assert signature.parameters["channels"].default == (32, 64, 128)
    unknown, doc = static_signature("cnnpl.no_such_module", "Nothing")
    assert str(unknown) == "(*args, **kwargs)" and doc is None


def test_the_listing_takes_a_config_groups_name_and_suggests_a_family(capsys) -> None:
    from cnnpl.listing import main

    assert main(["callbacks", "--json"]) == 0  # the config group's name, as on the command line
    assert set(json.loads(capsys.readouterr().out)["components"]) == {"callback"}
    assert main(["pools"]) == 2
    assert capsys.readouterr().err.startswith(
        "cnnpl.list: error: unknown family 'pools'; did you mean pool? families: "
    )
    assert main(["--jsn"]) == 2
    assert capsys.readouterr().err.startswith("cnnpl.list: error: unknown option '--jsn'; did you mean --json? usage: ")
    assert main(["datta"]) == 2  # helper-143: a misspelt group of YAML options got no suggestion
    assert capsys.readouterr().err.startswith("cnnpl.list: error: unknown family 'datta'; did you mean data? ")
    # helper-141: a group of YAML options was an "unknown family" with the usage
    assert main(["data"]) == 2
    assert capsys.readouterr().err == (
        "cnnpl.list: error: data is a config group of options (cifar10, shapes), not a family of components; "
        "families: conv, pool, norm, act, model, callback (python -m cnnpl --help lists every group)\n"
    )


def test_the_listing_names_a_plugins_options_of_a_group_of_yaml_options(tmp_path, capsys) -> None:
    # helper-143: cnnpl.list experiment named conf/'s experiments, not the plugin's experiment=cnnpl_example
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 1\n")
    from cnnpl.config import group_options
    from cnnpl.listing import main

    assert main(["experiment", f"hydra.searchpath=[file://{tmp_path}]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnpl.list: error: experiment is a config group of options (")
    shown = err.split("(", 1)[1].split(")", 1)[0].split(", ")
    installed = ["cnnpl_example"] if importlib.util.find_spec("cnnpl_example") else []  # the plugin's own
    assert shown == sorted([*group_options("experiment"), "mine", *installed])


def test_the_listing_shows_the_yaml_options_of_a_searchpath_folder(tmp_path, capsys) -> None:
    # helper-122: "unknown family 'hydra.searchpath=[...]'", though the option composes in a run
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "max3.yaml").write_text("name: max\nkernel_size: 3\n")
    from cnnpl.listing import main

    assert main(["pool", f"hydra.searchpath=[file://{tmp_path}]", "--json"]) == 0
    [row] = [row for row in json.loads(capsys.readouterr().out)["presets"]["pool"] if row["name"] == "max3"]
    assert (row["component"], row["settings"], row["path"]) == (
        "max",
        {"kernel_size": 3},
        str(tmp_path / "pool" / "max3.yaml"),
    )


def test_the_listing_says_which_component_a_yaml_option_of_its_name_hides(tmp_path, capsys, restore_registries) -> None:
    # helper-122: a plugin's pool named like a YAML option of another plugin was listed as if it could be chosen,
    # and the YAML option, the one chosen, was left out
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "sharp.yaml").write_text("name: max\nkernel_size: 3\n")
    cnnpl.register("pool", "sharp", nn.MaxPool2d)
    from cnnpl.listing import main

    assert main(["pool", f"hydra.searchpath=[file://{tmp_path}]"]) == 0
    out = capsys.readouterr().out
    yaml = tmp_path / "pool" / "sharp.yaml"
    hidden = f"module torch.nn.modules.pooling (cannot be chosen: the YAML option {yaml} is; rename one)"
    assert re.search(rf"\n  sharp +{re.escape(hidden)}\n", out)
    assert re.search(rf"\n  sharp +{re.escape(str(yaml))}\n +max with kernel_size: 3\n", out)  # the one chosen


def test_the_listing_shows_the_sets_of_callbacks(capsys) -> None:
    # plugin.md sends a plugin's author to the listing for the names taken, sets included; it showed none
    from cnnpl.config import compose_plain, config_dir
    from cnnpl.listing import main

    assert main(["callback", "--json"]) == 0
    sets = {row["name"]: row["callbacks"] for row in json.loads(capsys.readouterr().out)["callback_sets"]}
    assert set(sets) == {path.stem for path in (config_dir() / "callbacks").glob("*.yaml")}
    for name, held in sets.items():  # what each set gives a run, its defaults' callbacks included
        assert held == list(compose_plain([f"callbacks={name}"]).callbacks), name
    assert main(["callback"]) == 0
    out = capsys.readouterr().out
    assert "  sets of callbacks (3): choose with callbacks=NAME\n" in out
    assert "\n  minimal  checkpoint, lr_monitor, progress_bar\n" in out
    assert main(["pool", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["callback_sets"] == []


def test_the_listing_marks_what_an_options_yaml_leaves_to_the_architecture(capsys) -> None:
    # helper-120: batch's eps and momentum showed as fixed defaults, though Inception sets eps 1e-3 unless set
    from omegaconf import OmegaConf

    from cnnpl.config import CONFIG_GROUPS, config_dir
    from cnnpl.listing import main

    assert main(["--json"]) == 0
    components = json.loads(capsys.readouterr().out)["components"]
    for family, rows in components.items():  # generated from the YAMLs: a null there is the architecture's choice
        for row in rows:
            path = config_dir() / CONFIG_GROUPS[family] / f"{row['name']}.yaml"
            nulls = {k for k, v in OmegaConf.load(path).items() if v is None} if path.is_file() else set()
            for param in row["parameters"]:
                if param["name"] in nulls and param["default"] is not None:
                    assert param["supplied_by_caller"], (family, row["name"], param["name"])
    batch = {p["name"]: p for p in next(r for r in components["norm"] if r["name"] == "batch")["parameters"]}
    assert batch["eps"]["supplied_by_caller"] and batch["momentum"]["supplied_by_caller"]
    assert not batch["scale"]["supplied_by_caller"]


@pytest.mark.parametrize("flag", ["--json", "--help"])
def test_the_listing_piped_into_a_reader_that_stops_ends_quietly(flag: str) -> None:
    # `python -m cnnpl.list | head` ended in a BrokenPipeError traceback
    import subprocess
    import sys

    listing = subprocess.Popen(
        [sys.executable, "-m", "cnnpl.list", flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.close()  # the reader is gone before the listing writes
    stderr = listing.stderr.read().decode()
    assert listing.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_an_architectures_input_size_is_a_pair_or_one_side() -> None:
    # helper-128: input_size=12 failed inside the model ("Value after * must be an iterable, not int"), (3, 12, 12)
    # with "too many values to unpack"
    square = cnnpl.build("model", "simple_cnn", num_classes=10, input_size=36)
    assert square(torch.zeros(1, 3, 36, 36)).shape == (1, 10)
    for wrong, shown in (((3, 36, 36), "(3, 36, 36)"), (0, "0"), ((36, "36"), "(36, '36')"), (True, "true")):
        with pytest.raises(CnnplError) as err:
            cnnpl.build("model", "simple_cnn", num_classes=10, input_size=wrong)
        assert str(err.value) == (
            f"model 'simple_cnn': input_size must be (height, width) in pixels, or one int for a square; got "
            f"{shown} (the channels are in_channels=)"
        )


@pytest.mark.parametrize(
    "model", [n for n in list_components("model") if get_registry("model").entry(n).source == "built-in"]
)
def test_a_model_built_from_python_gets_the_command_lines_checks(model: str) -> None:
    # note 42-45: cnnpl.build("model", "simple_cnn", num_classes=0) built a network with an empty last layer (torch's
    # warning only), num_classes=-3 was torch's "negative dimension", dropout="0.5" "'<' not supported between ..."
    for key, wrong, shown in [
        ("num_classes", 0, "0"),
        ("num_classes", -3, "-3"),
        ("num_classes", 10.0, "10.0"),
        ("in_channels", True, "true"),
    ]:
        with pytest.raises(CnnplError) as err:
            cnnpl.build("model", model, **{"num_classes": 10, key: wrong})
        assert str(err.value) == f"model {model!r}: {key} must be a positive integer, got {shown}"
    with pytest.raises(CnnplError) as err:  # given by position (helper-147: was built)
        cnnpl.build("model", model, 0)
    assert str(err.value) == f"model {model!r}: num_classes must be a positive integer, got 0"
    if "dropout" in inspect.signature(get_registry("model").get(model)).parameters:
        for wrong, says in [("0.5", "must be a number, got '0.5'"), (1.5, "must be in [0, 1)")]:
            with pytest.raises(CnnplError, match=re.escape(f"model.dropout {says}")):
                cnnpl.build("model", model, num_classes=10, dropout=wrong)


def test_a_plugins_model_keeps_its_own_meaning_of_its_settings(restore_registries) -> None:
    # helper-147: num_classes=0 (timm's "no head"), None or a tuple, and a dropout in percent were refused as the
    # built-in models' counts and fractions
    @cnnpl.register("model", "headless")
    class Headless(nn.Module):
        def __init__(self, num_classes: int | tuple[int, int] | None = None, in_channels: int = 3, dropout: int = 50):
            super().__init__()
            self.num_classes, self.dropout = num_classes, dropout

    for num_classes in (0, None, (3, 4)):
        assert cnnpl.build("model", "headless", num_classes=num_classes).num_classes == num_classes
    assert cnnpl.build("model", "headless", num_classes=0, dropout=50).dropout == 50
    with pytest.raises(CnnplError) as err:  # what its hints say is still checked
        cnnpl.build("model", "headless", num_classes=0, dropout="50")
    assert str(err.value) == "model.dropout must be an integer, got '50' (model 'headless')"


def test_a_models_counts_may_be_numpys_or_torchs_integers() -> None:
    import numpy as np

    for count in (np.int64(4), torch.tensor(4)):
        net = cnnpl.build("model", "simple_cnn", num_classes=count, in_channels=count)
        assert net(torch.zeros(1, 4, 32, 32)).shape == (1, 4)


def test_the_option_of_a_component_no_longer_registered_goes_with_it() -> None:
    # session 43: a test's pool, registered and composed, stayed an option of pool after the registries were restored
    # ("pool=lab_pool: no such option; did you mean pool=kw_pool?" in a later test of the same process)
    from torch import nn

    from cnnpl.config import register_component_configs
    from cnnpl.registry import REGISTRIES

    saved = dict(REGISTRIES["pool"]._entries)
    try:
        cnnpl.register("pool", "gone_pool")(nn.MaxPool2d)
        assert cnnpl.compose(["pool=gone_pool"]).pool.name == "gone_pool"
    finally:
        REGISTRIES["pool"]._entries = saved
    register_component_configs()
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.compose(["pool=gone_pool"])
    assert "gone_pool" not in str(err.value).partition("the options of pool are ")[2]


READABLE_TYPE_WORDS = {
    *("Any", "Mapping", "None", "Sequence", "Literal", "bool", "float", "int", "str", "tuple", "list", "dict")
}


@pytest.mark.parametrize("family", cnnpl.FAMILIES)
def test_the_listing_spells_out_cnnpls_type_aliases(family: str) -> None:
    # note 43: the listing showed `kernel_size: IntPair`, `padding: ConvPadding`, names only cnnpl's code defines
    from cnnpl.listing import describe_parameters

    for name in cnnpl.list_components(family):
        for row in describe_parameters(family, get_registry(family).get(name)):
            unquoted = re.sub(r"'[^']*'", "", row["type"] or "")  # Literal['none', 'tanh']: the values are words
            words = set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", unquoted))
            assert words <= READABLE_TYPE_WORDS, (family, name, row)
    if family == "conv":
        rows = {row["name"]: row["type"] for row in describe_parameters("conv", get_registry("conv").get("conv2d"))}
        assert (rows["kernel_size"], rows["padding"]) == ("int | tuple[int, int]", "int | str | tuple[int, int]")


_Pair = int | tuple[int, int]
_T = typing.TypeVar("_T")


def _annotated(a: _Pair = 1, b: typing.Literal["_Pair"] = "_Pair", c: _T | None = None) -> None: ...


def test_the_listing_spells_out_an_alias_but_not_a_word_in_quotes_nor_a_type_variable() -> None:
    # helper-145: Literal["max"] read "Literal['Optional[int]']" where a module named an alias max; T read ~T
    from cnnpl.listing import _annotation

    written = [_annotation(param, globals()) for param in inspect.signature(_annotated).parameters.values()]
    assert written == ["int | tuple[int, int]", "typing.Literal['_Pair']", "_T | None"]


def test_gelu_says_what_approximate_takes_when_built() -> None:
    # helper-153/154: torch checked it only in the forward ("approximate argument must be either none or tanh")
    with pytest.raises(CnnplError, match=r"approximate must be none or tanh, got 'fast'"):
        cnnpl.build("act", "gelu", approximate="fast")
    layer = cnnpl.build("act", "gelu", approximate="tanh")
    assert isinstance(layer, torch.nn.GELU) and layer.approximate == "tanh"
    assert torch.equal(layer(torch.ones(2)), torch.nn.GELU(approximate="tanh")(torch.ones(2)))
