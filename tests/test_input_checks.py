"""Bad input is refused with one line naming the key and the fix, before anything trains.

The data module's settings, the schedule builders, the component configs (words for numbers, a
layer an architecture cannot use), the system's switches, and the checks of :mod:`cnnpl.checks`
that :func:`cnnpl.train.train` runs; valid values still pass. Two tests run the real command line.
"""

from __future__ import annotations

import math
import shutil
import typing
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig, OmegaConf
from tests.conftest import TINY, run_cli

import cnnpl
from cnnpl.checks import (
    check_eval_shards,
    check_flags,
    check_fused_clipping,
    check_optimizer,
    check_precision,
    check_scheduler,
    check_tta,
)
from cnnpl.config import config_dir, layer_factory
from cnnpl.data import CIFAR10DataModule, ShapesDataModule
from cnnpl.distributed import EvalShardSampler
from cnnpl.errors import CnnplError, UnknownComponentError, first_few, yaml_word
from cnnpl.registry import Registry, get_registry, parameters_of
from cnnpl.system import ImageClassifier
from cnnpl.train import _least_fraction, check_eval_fractions


def compose(*overrides: str) -> DictConfig:
    return cnnpl.compose(["data=shapes", *overrides])


# -- geometry settings typed int | tuple[int, int]: generated from the registries ---------------------
def _pair_typed() -> list[tuple[str, str, str]]:
    """(family, name, key) of every conv and pool setting hinted ``int | tuple[int, int]`` (or ``| None``)."""
    pair = (int | tuple[int, int], int | tuple[int, int] | None)
    return [
        (family, name, key)
        for family in ("conv", "pool")
        for name in cnnpl.list_components(family)
        for key, hint in typing.get_type_hints(getattr(get_registry(family).get(name), "__init__", None)).items()
        if key in ("kernel_size", "stride", "dilation") and hint in pair
    ]


def _component_node(family: str, name: str) -> DictConfig:
    """The config ``<family>=<name>`` gives: its YAML, or the one generated from its signature."""
    from cnnpl.config import generated_config

    path = config_dir() / family / f"{name}.yaml"
    return OmegaConf.load(path) if path.is_file() else OmegaConf.create(generated_config(family, name))


@pytest.mark.parametrize(("family", "name", "key"), _pair_typed())
def test_a_geometry_setting_that_is_no_integer_or_pair_is_refused_naming_it(family: str, name: str, key: str) -> None:
    # was "conv 'conv2d' could not be built with freeze=False: too many values to unpack" at the first layer
    hint = typing.get_type_hints(get_registry(family).get(name).__init__)[key]
    null = " or null" if type(None) in typing.get_args(hint) else ""  # stride: None, the window's own
    for bad, shown in (
        ("abc", "'abc'"),
        ([3, 3, 3], "[3, 3, 3]"),
        (1.5, "1.5"),
        (True, "true"),
        ([2, "x"], "[2, 'x']"),
    ):
        node = _component_node(family, name)
        node[key] = bad
        with pytest.raises(CnnplError) as err:
            layer_factory(family, node)
        assert str(err.value) == (
            f"{family}.{key} must be an integer or a pair [height, width] of integers{null}, got {shown} "
            f"({family} {name!r})"
        )
    for good in (2, [2, 1], None):
        node = _component_node(family, name)
        node[key] = good
        layer_factory(family, node)


# -- the data module ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_size=1.5), "data.batch_size must be an integer >= 1, got 1.5"),
        (dict(batch_size=1e3), "data.batch_size must be an integer >= 1, got 1000.0 (write 1000)"),
        (dict(batch_size="abc"), "data.batch_size must be an integer >= 1, got 'abc'"),
        (dict(batch_size=True), "data.batch_size must be an integer >= 1, got true"),
        (dict(batch_size=0), "data.batch_size must be >= 1, got 0"),
        (
            dict(eval_batch_size=-5),
            "data.eval_batch_size must be >= 1 (or null for the default max(batch_size, 256)), got -5",
        ),
        (
            dict(eval_batch_size=0),
            "data.eval_batch_size must be >= 1 (or null for the default max(batch_size, 256)), got 0",
        ),
        (
            dict(eval_batch_size=2.5),
            "data.eval_batch_size must be an integer >= 1, or null for the default max(batch_size, 256), got 2.5",
        ),
        (dict(crop_padding=-1), "data.crop_padding must be >= 0, got -1"),
        (dict(crop_padding="abc"), "data.crop_padding must be an integer >= 0, got 'abc'"),
        (dict(cutout=4.5), "data.cutout must be an integer >= 0, got 4.5"),
        (dict(cutout=-2), "data.cutout must be >= 0, got -2"),
        (dict(num_workers="two"), "data.num_workers must be an integer >= 0, got 'two'"),
        (dict(seed="abc"), "data.seed must be an integer >= 0, got 'abc'"),
        (dict(seed=-1), "data.seed must be >= 0, got -1"),
        (
            dict(val_split="abc"),
            "data.val_split must be a number in [0, 1) (the fraction of the training set held out), got 'abc'",
        ),
        (
            dict(val_split=1.0),
            "data.val_split must be a number in [0, 1) (the fraction of the training set held out), got 1.0",
        ),
        (dict(num_train=2.5), "data.num_train must be an integer >= 2, got 2.5"),
        (dict(num_test=0), "data.num_test must be >= 1, got 0"),
        (dict(image_size="big"), "data.image_size must be an integer >= 8, got 'big'"),
        (dict(noise=-0.1), "data.noise must be a number >= 0 (the std of the added Gaussian noise), got -0.1"),
        (dict(noise="abc"), "data.noise must be a number >= 0 (the std of the added Gaussian noise), got 'abc'"),
    ],
)
def test_data_settings_of_the_wrong_kind_or_range_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(CnnplError) as err:
        ShapesDataModule(**kwargs)
    assert str(err.value) == message


def test_valid_data_settings_still_pass() -> None:
    dm = ShapesDataModule(batch_size=1, eval_batch_size=7, val_split=0, seed=0, crop_padding=0, cutout=0, noise=0)
    assert dm.eval_batch_size == 7
    assert ShapesDataModule(batch_size=300, eval_batch_size=None).eval_batch_size == 300  # null: the default
    assert ShapesDataModule(batch_size=16).eval_batch_size == 256
    assert ShapesDataModule(val_split=0.5).val_split == 0.5


def test_cifar10_download_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(CnnplError, match=r"^data\.download must be true or false, got 'maybe'$"):
        CIFAR10DataModule(root=tmp_path, download="maybe")


@pytest.mark.parametrize(
    ("root", "shown"),
    [
        (None, "null"),
        (123, "123 (for a folder named 123, quote it: data.root=\"'123'\")"),
        (True, "true"),
        (["a", "b"], "['a', 'b']"),
    ],
)
def test_cifar10_root_must_name_a_folder(root: object, shown: str) -> None:
    """helper-102: Path(root) failed inside instantiation ("expected str, bytes or os.PathLike object, not int")."""
    with pytest.raises(CnnplError) as err:
        CIFAR10DataModule(root=root)  # type: ignore[arg-type]
    assert str(err.value) == f"data.root must name a folder, got {shown}; give data.root=<folder>"


@pytest.mark.parametrize("exported", [True, False])
def test_an_empty_cifar10_root_is_refused(monkeypatch, exported: bool) -> None:
    """helper-139: an exported empty $CNNPL_DATA (conf/data/cifar10.yaml reads it) searched the working directory."""
    if exported:
        monkeypatch.setenv("CNNPL_DATA", "")
    else:
        monkeypatch.delenv("CNNPL_DATA", raising=False)
    why = " ($CNNPL_DATA is exported empty: unset it or export the folder)" if exported else ""
    with pytest.raises(CnnplError) as err:
        CIFAR10DataModule(root=cnnpl.compose([]).data.root if exported else " ")
    assert str(err.value) == f"data.root is empty{why}; give data.root=<folder> (data.root=. for the working directory)"


def test_cutout_must_be_smaller_than_the_images() -> None:
    dm = ShapesDataModule(num_train=20, num_test=10, image_size=8, cutout=8)
    message = (
        "data.cutout=8 is not smaller than the (8, 8) images: its square would zero from a quarter to all of "
        "every training image; use a side below 8 (about half the image side is usual: 16 on CIFAR-10) or "
        "data.cutout=0 for none"
    )
    with pytest.raises(CnnplError) as err:
        dm.setup()
    assert str(err.value) == message
    with pytest.raises(CnnplError):  # still not set up: the second call checks again
        dm.setup()
    ok = ShapesDataModule(num_train=20, num_test=10, image_size=8, cutout=7)
    ok.setup()
    assert ok.input_size == (8, 8)


# -- schedules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scheduler=onecycle", "scheduler.pct_start=2"], "scheduler.pct_start must be a number in (0, 1), got 2"),
        (["scheduler=onecycle", "scheduler.pct_start=0"], "scheduler.pct_start must be a number in (0, 1), got 0"),
        (["scheduler=onecycle", "scheduler.div_factor=0"], "scheduler.div_factor must be a number > 0, got 0"),
        (
            ["scheduler=onecycle", "scheduler.final_div_factor=-1"],
            "scheduler.final_div_factor must be a number > 0, got -1",
        ),
        (["scheduler=triangle", "scheduler.start=-1"], "scheduler.start must be a number >= 0, got -1"),
        (["scheduler=triangle", "scheduler.end=-0.5"], "scheduler.end must be a number >= 0, got -0.5"),
        (
            ["scheduler=triangle", "scheduler.peak_fraction=1"],
            "scheduler.peak_fraction must be a number in (0, 1), got 1",
        ),
        (
            ["scheduler=cosine", "scheduler.final_lr_fraction=2"],
            "scheduler.final_lr_fraction must be a number in [0, 1], got 2",
        ),
        (
            ["scheduler=cosine", "scheduler.warmup_fraction=abc"],
            "scheduler.warmup_fraction must be a number in [0, 1), got 'abc'",
        ),
        (
            [
                "+scheduler._target_=torch.optim.lr_scheduler.StepLR",
                "+scheduler._partial_=true",
                "+scheduler.step_size=3",
            ],
            "scheduler config is invalid: StepLR.__init__() got an unexpected keyword argument 'total_steps'; "
            "a schedule is called as schedule(optimizer, total_steps=...)",
        ),
    ],
)
def test_bad_schedule_settings_are_refused_before_the_fit(overrides: list[str], message: str) -> None:
    cfg = compose(*overrides)
    with pytest.raises(CnnplError) as err:
        check_scheduler(instantiate(cfg.scheduler))
    assert str(err.value) == message


@pytest.mark.parametrize("scheduler", ["none", "cosine", "onecycle", "triangle"])
def test_the_shipped_schedules_pass(scheduler: str) -> None:
    cfg = compose(f"scheduler={scheduler}")
    check_scheduler(instantiate(cfg.scheduler) if cfg.get("scheduler") else None)


def test_the_fast_recipe_schedule_passes() -> None:
    check_scheduler(instantiate(cnnpl.compose(["experiment=fast_cifar10"]).scheduler))


# -- the optimizer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=abc"], "optimizer.lr must be a number, got 'abc'"),
        (["optimizer=sgd", "optimizer.momentum=abc"], "optimizer.momentum must be a number, got 'abc'"),
        # torch's SGD refuses only a negative momentum: at 1.5 the velocity grew without bound
        (["optimizer=sgd", "optimizer.momentum=1.5"], "optimizer.momentum must be in [0, 1) (0.9 is usual), got 1.5"),
        (["+optimizer.amsgrad=maybe"], "optimizer.amsgrad must be true or false, got 'maybe'"),
        (["+optimizer.betas=0.9"], "optimizer.betas must be a list of 2 numbers such as [0.9, 0.999], got 0.9"),
        (["optimizer=muon", "optimizer.filter_lr=abc"], "optimizer.filter_lr must be a number, got 'abc'"),
        (["optimizer.lr=-0.1"], "optimizer.lr must be >= 0, got -0.1"),
        (["optimizer.weight_decay=-1"], "optimizer.weight_decay must be >= 0, got -1"),
        (  # torch: "Nesterov momentum requires a momentum and zero dampening", naming neither key
            ["optimizer=sgd", "optimizer.momentum=0"],
            "optimizer.momentum=0 turns momentum off, but optimizer.nesterov=true needs it (cnnpl's sgd sets "
            "nesterov: true); add optimizer.nesterov=false for plain SGD",
        ),
        # torch reads any value by its truth: "false" would take the fused step
        (["optimizer.fused=abc"], "optimizer.fused must be true, false or null (torch chooses), got 'abc'"),
        (
            ["optimizer=sgd", "+optimizer.foreach=0"],
            "optimizer.foreach must be true, false or null (torch chooses), got 0",
        ),
        (
            ["+optimizer.foreach=true"],
            "optimizer.foreach=true and optimizer.fused=true are two implementations of the step (cnnpl's configs "
            "set fused: true); for torch's foreach step add optimizer.fused=null",
        ),
        (
            ["optimizer=sgd", "+optimizer.differentiable=true"],
            "optimizer config is invalid: `fused` does not support `differentiable`",
        ),
        (  # helper-137: "optimizer config is invalid: Invalid beta parameter at index 0: 1.5" named no setting
            ["+optimizer.betas=[1.5,0.999]"],
            "optimizer.betas=[1.5, 0.999]: Adam refuses it: Invalid beta parameter at index 0: 1.5",
        ),
        (
            ["optimizer=sgd", "+optimizer.dampening=0.5"],
            "optimizer.nesterov=True, optimizer.momentum=0.9, optimizer.dampening=0.5: SGD refuses them: Nesterov "
            "momentum requires a momentum and zero dampening",
        ),
    ],
)
def test_bad_optimizer_settings_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(CnnplError) as err:
        check_optimizer(instantiate(compose(*overrides).optimizer))
    assert str(err.value) == message


def test_a_misspelt_target_names_the_close_one() -> None:
    # helper-119: Hydra's "Error locating target ...; Are you sure that 'RMSProp' is importable ...", no suggestion
    from cnnpl.train import checked_optimizer

    with pytest.raises(CnnplError) as err:
        checked_optimizer(compose("optimizer._target_=torch.optim.RMSProp", "~optimizer.fused"))
    assert str(err.value) == (
        "optimizer._target_=torch.optim.RMSProp: torch.optim has no 'RMSProp'; did you mean torch.optim.RMSprop?"
    )


@pytest.mark.parametrize(
    ("target", "message"),  # each was Hydra's "Error locating target ..." in three sentences, without the key
    [
        (
            "torch.optim.Nothing",
            "torch.optim has no 'Nothing'; give the dotted path of an importable class or function",
        ),
        ("torch.optimm.SGD", "torch has no 'optimm'; did you mean torch.optim.SGD?"),  # a module part misspelt
        (
            "nosuch.Opt",
            "no module named 'nosuch'; install the package that has it, or give the dotted path of an "
            "importable class or function",
        ),
        ("SGD", "give the full dotted path of a class or function (package.module.Name)"),
    ],
)
def test_a_target_that_cannot_be_found_names_its_key_and_missing_part(target: str, message: str) -> None:
    from cnnpl.train import checked_optimizer

    with pytest.raises(CnnplError) as err:
        checked_optimizer(compose(f"optimizer._target_={target}", "~optimizer.fused"))
    assert str(err.value) == f"optimizer._target_={target}: {message}"


def test_a_callbacks_misspelt_target_is_one_line_with_its_full_key(tmp_path: Path) -> None:
    # helper-130: Hydra's "Error getting object at ..." four times (console and the run's log, which then kept the
    # refused run's folder), and the key without its callbacks. part
    overrides = ["+callbacks.histograms._target_=cnnpl.callbacks.HistogramCallback"]
    result = run_cli(*TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (
        "cnnpl: error: callbacks.histograms._target_=cnnpl.callbacks.HistogramCallback: cnnpl.callbacks has no "
        "'HistogramCallback'; did you mean cnnpl.callbacks.HistogramsCallback?\n"
    )
    assert not (tmp_path / "run").exists()


def test_a_target_whose_module_fails_to_import_keeps_the_modules_error(tmp_path: Path, monkeypatch) -> None:
    # the module is there but imports a package that is not: its own error, not "brokenpkg has no 'mod'"
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("")
    (tmp_path / "brokenpkg" / "mod.py").write_text("import nonexistent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from cnnpl.train import checked_optimizer

    with pytest.raises(CnnplError) as err:
        checked_optimizer(compose("optimizer._target_=brokenpkg.mod.Opt", "~optimizer.fused"))
    assert "No module named 'nonexistent_dependency'" in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "unknown"),
    [
        (["optimizer._target_=torch.optim.RMSprop"], ["fused"]),  # the adam config's other settings stay
        (["optimizer=sgd", "optimizer._target_=torch.optim.Adam"], ["momentum", "nesterov"]),
        (["+optimizer.momentun=0.9"], ["momentun"]),  # a typo of a setting of another optimizer
    ],
)
def test_settings_the_optimizer_does_not_take_are_named_together(overrides: list[str], unknown: list[str]) -> None:
    config = compose(*overrides).optimizer
    with pytest.raises(CnnplError) as err:
        check_optimizer(instantiate(config))
    name = config._target_.rpartition(".")[2]
    it = "them" if len(unknown) > 1 else "it"
    removals = " ".join(f"~optimizer.{key}" for key in unknown)
    assert str(err.value).startswith(f"{name} takes no setting {', '.join(unknown)} (its settings: lr, ")
    assert str(err.value).endswith(
        f"; remove {it} with {removals}, or pick a config of its own (optimizer=adam|adamw|muon|sgd)"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["optimizer=sgd"],
        ["optimizer=muon"],
        ["+optimizer.betas=[0.8,0.99]"],
        ["optimizer.fused=null"],
        ["optimizer.fused=null", "+optimizer.foreach=true"],
        ["optimizer.fused=false", "+optimizer.foreach=false"],
        ["optimizer._target_=torch.optim.RMSprop", "~optimizer.fused"],
    ],
)
def test_valid_optimizer_settings_pass(overrides: list[str]) -> None:
    check_optimizer(instantiate(compose(*overrides).optimizer))


@pytest.mark.parametrize(
    ("overrides", "accelerator", "refused"),
    [
        (["trainer.precision=16-mixed", "+trainer.gradient_clip_val=1.0"], "cuda", True),
        (["trainer.precision=16", "+trainer.gradient_clip_val=0.5", "optimizer=sgd"], "mps", True),
        # Lightning's mixed-precision plugin refuses a fused step's clipping whatever it scales, also on the CPU:
        # was a traceback at the first step
        (["trainer.precision=16-mixed", "+trainer.gradient_clip_val=1.0"], "cpu", True),
        (["trainer.precision=bf16-mixed", "+trainer.gradient_clip_val=1.0"], "cuda", True),
        (["trainer.precision=bf16", "+trainer.gradient_clip_val=1.0", "optimizer=sgd"], "cpu", True),
        (["trainer.precision=32-true", "+trainer.gradient_clip_val=1.0"], "cpu", False),
        (["trainer.precision=16-mixed", "+trainer.gradient_clip_val=0"], "cuda", False),  # no clipping
        (["trainer.precision=16-mixed"], "cuda", False),
        (["trainer.precision=16-mixed", "+trainer.gradient_clip_val=1.0", "optimizer.fused=null"], "cuda", False),
        (["trainer.precision=16-mixed", "+trainer.gradient_clip_val=1.0", "optimizer=muon"], "cuda", False),
    ],
)
def test_clipping_mixed_precision_gradients_of_a_fused_step_is_refused(
    overrides: list[str], accelerator: str, refused: bool
) -> None:
    cfg = compose(*overrides)
    if not refused:
        check_fused_clipping(cfg, accelerator)
        return
    with pytest.raises(CnnplError) as err:
        check_fused_clipping(cfg, accelerator)
    precision, clip = cfg.trainer.precision, cfg.trainer.gradient_clip_val
    assert str(err.value) == (
        f"trainer.gradient_clip_val={clip} with trainer.precision={precision}: Lightning clips no gradients of a "
        "fused optimizer step (optimizer.fused=true) under mixed precision, where the step would unscale them itself "
        "after the clipping; set optimizer.fused=null (torch's default step)"
    )


# -- switches and what the run does -------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["fit=maybe"], "fit must be true or false, got 'maybe'"),
        (["test=1"], "test must be true or false, got 1"),
        (["keep_freed_memory=yes"], "keep_freed_memory must be true or false, got 'yes'"),
        (["system.tta_flip=maybe"], "system.tta_flip must be true or false, got 'maybe'"),
        (["system.compile=maybe"], "system.compile must be true or false, got 'maybe'"),
        (
            ["fit=false"],
            "nothing to test: fit=false tests a checkpoint; give ckpt_path=<file> or drop fit=false",
        ),
        (
            ["trainer.max_epochs=0"],
            "trainer.max_epochs=0 trains nothing (and the test would score an untrained network); give "
            "trainer.max_epochs >= 1, or fit=false ckpt_path=<file> to test a checkpoint",
        ),
        (
            ["+trainer.max_steps=0"],
            "trainer.max_steps=0 trains nothing (and the test would score an untrained network); give "
            "trainer.max_steps >= 1, or fit=false ckpt_path=<file> to test a checkpoint",
        ),
        *(
            (  # was a run that trained nothing, then tested the untrained network and exited 0
                [f"+trainer.limit_train_batches={zero}"],
                "trainer.limit_train_batches=0 trains nothing (and the test would score an untrained network); give "
                "trainer.limit_train_batches a number of batches >= 1 or a fraction of them in (0, 1], or fit=false "
                "ckpt_path=<file> to test a checkpoint",
            )
            for zero in ("0", "0.0")
        ),
    ],
)
def test_flags_must_be_booleans_and_the_run_must_do_something(overrides: list[str], message: str) -> None:
    with pytest.raises(CnnplError) as err:
        check_flags(compose(*overrides))
    assert str(err.value) == message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["fit=false", "ckpt_path=last"],
        ["test=false"],
        ["fit=false", "test=false"],  # a dry run: everything built and checked, nothing trained
        ["trainer.max_epochs=0", "fit=false", "ckpt_path=model.ckpt"],
        ["system.tta_flip=true", "system.compile=false", "keep_freed_memory=false"],
    ],
)
def test_valid_flags_pass(overrides: list[str]) -> None:
    check_flags(compose(*overrides))


# -- precision ----------------------------------------------------------------------------------

CAST = (
    "trainer.precision={value} casts the network to {dtype}, but cnnpl's data modules hand it float32 images "
    "(normalised after Lightning converts a batch), so the first step would fail; use trainer.precision="
)
ON_CPU = "32-true (the default) or bf16-mixed (float32 weights, bfloat16 computation)"
ON_GPU = "32-true (the default), bf16-mixed or 16-mixed (float32 weights, 16-bit computation)"


@pytest.mark.parametrize(
    ("value", "shown", "dtype"),
    [
        ("16-true", "16-true", "float16"),
        ("bf16-true", "bf16-true", "bfloat16"),
        ("64-true", "64-true", "float64"),
        ("64", "64", "float64"),  # an int on the command line
        ("'64'", "64", "float64"),  # the string alias
    ],
)
@pytest.mark.parametrize(("accelerator", "working"), [("cpu", ON_CPU), ("cuda", ON_GPU)])
def test_precisions_that_cast_the_network_are_refused(
    value: str, shown: str, dtype: str, accelerator: str, working: str
) -> None:
    cfg = compose(f"trainer.precision={value}")
    with pytest.raises(CnnplError) as err:
        check_precision(cfg.trainer, accelerator)
    assert str(err.value) == CAST.format(value=shown, dtype=dtype) + working


def test_transformer_engine_needs_a_gpu() -> None:
    cfg = compose("trainer.precision=transformer-engine")
    with pytest.raises(CnnplError) as err:
        check_precision(cfg.trainer, "cpu")
    assert str(err.value) == (
        f"trainer.precision=transformer-engine needs an NVIDIA GPU (this run's accelerator is cpu); use "
        f"trainer.precision={ON_CPU}"
    )


@pytest.mark.parametrize("value", ["32-true", "32", "bf16-mixed", "bf16"])
def test_the_precisions_that_train_on_a_cpu_pass(value: str) -> None:
    check_precision(compose(f"trainer.precision={value}").trainer, "cpu")


@pytest.mark.parametrize("value", ["16-mixed", "16"])
def test_float16_on_a_cpu_is_refused_for_what_lightning_runs_instead(value: str) -> None:
    # helper-135/137: Lightning ran bf16-mixed, with a warning of several lines, and config.yaml said 16-mixed
    with pytest.raises(CnnplError, match=rf"^trainer\.precision={value} on the CPU runs as bf16-mixed"):
        check_precision(compose(f"trainer.precision={value}").trainer, "cpu")
    check_precision(compose(f"trainer.precision={value}").trainer, "cuda")


# -- evaluation shards and test-time augmentation -----------------------------------------------


def test_evaluation_splits_must_have_an_image_for_every_process() -> None:
    dm = ShapesDataModule(num_train=40, num_test=3, val_split=0.1)  # val: 4 images, test: 3
    dm.setup("fit")
    for world_size in (1, 2, 3):
        check_eval_shards(dm, world_size)
    with pytest.raises(CnnplError) as err:
        check_eval_shards(dm, 4)
    assert str(err.value) == (
        "the test split of 3 images cannot be shared by 4 processes: use a larger split or fewer processes "
        "(trainer.devices x trainer.num_nodes)"
    )
    with pytest.raises(CnnplError) as err:
        check_eval_shards(dm, 5)
    assert str(err.value) == (  # helper-121: a validation split can also be left out
        "the val split of 4 images cannot be shared by 5 processes: use a larger split (or none: data.val_split=0) "
        "or fewer processes (trainer.devices x trainer.num_nodes)"
    )
    check_eval_shards(dm, 4, splits=("val",))  # test=false: the test split is never shared
    no_val = ShapesDataModule(num_train=20, num_test=5, val_split=0)
    no_val.setup("fit")
    check_eval_shards(no_val, 5)  # no validation split: nothing to share
    with pytest.raises(CnnplError, match=r"^an evaluation split of 3 images cannot be shared by 4 processes: "):
        EvalShardSampler(dm.split("test"), num_replicas=4, rank=0)  # the sampler's own message, as before


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("limit", [0.1, 0.3, 0.34, 0.5, 0.99, 1.0])
def test_a_fraction_of_evaluation_batches_is_refused_where_lightning_would_give_a_process_none(
    world: int, limit: float
) -> None:
    # the oracle is Lightning's own count for each process's share; under DDP a process refused alone was a
    # second, gloo traceback in the others (shares of 2 batches and 1 at 0.5)
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.trainer.connectors.data_connector import _parse_num_batches
    from lightning.pytorch.trainer.states import RunningStage

    dm = ShapesDataModule(num_train=40, num_test=7, val_split=0.1, eval_batch_size=3)  # test: 7 images, 3 a batch
    dm.setup("fit")
    trainer = SimpleNamespace(world_size=world, strategy=DDPStrategy(), limit_val_batches=1.0, limit_test_batches=limit)
    shares = [len(EvalShardSampler(dm.split("test"), world, rank)) for rank in range(world)]
    try:
        for share in shares:
            _parse_num_batches(RunningStage.TESTING, math.ceil(share / 3), limit)
    except MisconfigurationException:
        with pytest.raises(CnnplError, match=r"^trainer\.limit_test_batches=\S+ of the \d+ test batch"):
            check_eval_fractions(trainer, dm, ["val", "test"])
    else:
        check_eval_fractions(trainer, dm, ["val", "test"])
    check_eval_fractions(trainer, dm, ["val"])  # test=false: the test split is never evaluated


def test_a_fraction_of_evaluation_batches_names_the_least_that_gives_one() -> None:
    dm = ShapesDataModule(num_train=40, num_test=7, val_split=0.1, eval_batch_size=3)
    dm.setup("fit")
    ddp = SimpleNamespace(world_size=2, strategy=DDPStrategy(), limit_val_batches=1.0, limit_test_batches=0.5)
    with pytest.raises(CnnplError) as err:  # shares of 4 images and 3: 2 batches and 1
        check_eval_fractions(ddp, dm, ["val", "test"])
    assert str(err.value) == (
        "trainer.limit_test_batches=0.5 of the 1 test batch of the shortest of 2 processes' shares is less than one "
        "batch; give at least 1.0, or a whole number of batches (+trainer.limit_test_batches=2)"
    )
    padded = SimpleNamespace(**{**vars(ddp), "strategy": SimpleNamespace()})  # FSDP: Lightning's sampler pads
    check_eval_fractions(padded, dm, ["val", "test"])  # shares of 4 images and 4: 2 batches each
    padded.limit_test_batches = 0.34
    with pytest.raises(CnnplError, match=r"^trainer\.limit_test_batches=0\.34 of the 2 test batches of the short"):
        check_eval_fractions(padded, dm, ["val", "test"])
    padded._accelerator_connector = SimpleNamespace(use_distributed_sampler=False)  # the whole split everywhere
    check_eval_fractions(padded, dm, ["val", "test"])  # 3 batches: 1 at 0.34
    one = SimpleNamespace(world_size=1, strategy=None, limit_val_batches=0.3, limit_test_batches=1.0)
    with pytest.raises(CnnplError) as err:  # val: 4 images
        check_eval_fractions(one, dm, ["val", "test"])
    assert str(err.value) == (
        "trainer.limit_val_batches=0.3 of the 2 validation batches is less than one batch; give at least 0.5, or a "
        "whole number of batches (+trainer.limit_val_batches=2)"
    )
    for length in range(1, 3000):  # rounding to nearest falls short: 1/49 reads 0.0204, and 49 * 0.0204 < 1
        least = float(_least_fraction(length))
        assert int(length * least) == 1 and least <= 1.0
        assert int(length * float(f"{least - 10 ** (math.floor(math.log10(least)) - 2):.3g}")) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "100",
            "system.tta_translate=100 shifts the 32x32 images by their whole side or more: use a shift below 32 "
            "(experiment=fast_cifar10 uses 1), or 0 for none",
        ),
        (
            "32",
            "system.tta_translate=32 shifts the 32x32 images by their whole side or more: use a shift below 32 "
            "(experiment=fast_cifar10 uses 1), or 0 for none",
        ),
        ("1.5", "system.tta_translate must be an integer >= 0 (a shift in pixels; 0: off), got 1.5"),
        ("abc", "system.tta_translate must be an integer >= 0 (a shift in pixels; 0: off), got 'abc'"),
        ("-1", "system.tta_translate must be an integer >= 0 (a shift in pixels; 0: off), got -1"),
    ],
)
def test_tta_translate_must_be_a_shift_below_the_image_side(value: str, message: str) -> None:
    cfg = compose(f"system.tta_translate={value}")
    with pytest.raises(CnnplError) as err:
        check_tta(cfg.system, (32, 32))
    assert str(err.value) == message


@pytest.mark.parametrize("value", [0, 1, 31])
def test_tta_translate_below_the_image_side_passes(value: int) -> None:
    check_tta(compose(f"system.tta_translate={value}").system, (32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tta_flip="maybe"), "system.tta_flip must be true or false, got 'maybe'"),
        (dict(compile="maybe"), "system.compile must be true or false, got 'maybe'"),
        (dict(tta_translate="abc"), "system.tta_translate must be an integer >= 0, got 'abc'"),
        (dict(init_samples=0), "system.init_samples must be an integer >= 1, got 0"),
        (dict(label_smoothing="abc"), "system.label_smoothing must be in [0, 1), got 'abc'"),
    ],
)
def test_the_system_refuses_switches_and_counts_of_the_wrong_kind(kwargs: dict, message: str) -> None:
    with pytest.raises(CnnplError) as err:
        ImageClassifier(torch.nn.Linear(2, 2), 2, **kwargs)
    assert str(err.value) == message


# -- components: words for numbers, layers an architecture cannot use ----------------------------


def build_model(cfg: DictConfig) -> torch.nn.Module:
    factories = {family: layer_factory(family, cfg[family]) for family in ("conv", "pool", "norm", "act")}
    return layer_factory("model", cfg.model)(num_classes=10, in_channels=3, input_size=(32, 32), **factories)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.dropout=abc"], "model.dropout must be a number, got 'abc' (model 'simple_cnn')"),
        (["model.hidden=abc"], "model.hidden must be a list of integers, got 'abc' (model 'simple_cnn')"),
        (
            ["model.channels=[32,abc]"],
            "model.channels must be a list of integers, got [32, 'abc'] (model 'simple_cnn')",
        ),
        (
            ["model.dropout=2"],
            "model.dropout must be in [0, 1) (the fraction of activations zeroed in training), got 2",
        ),
        (
            ["model.dropout=1"],
            "model.dropout must be in [0, 1) (the fraction of activations zeroed in training), got 1",
        ),
        (["pool=mixed", "pool.p=abc"], "pool.p must be a number, got 'abc' (pool 'mixed')"),
        (  # was "must be an integer or null": max takes a pair [height, width] too
            ["pool=max", "pool.stride=abc"],
            "pool.stride must be an integer or a pair [height, width] of integers or null, got 'abc' (pool 'max')",
        ),
        # an optional setting's message left out null, its default (helper-98)
        (
            ["model=vgg16", "model.new_head=maybe"],
            "model.new_head must be true, false or null, got 'maybe' (model 'vgg16')",
        ),
        # numbers out of range that built and trained a broken network, or failed at the first batch
        (
            ["model.hidden=[64,0]"],
            "simple_cnn: model.hidden must be a list of widths >= 1 (or [] for none), got [64, 0]",
        ),
        (
            ["model=simple_cnn_bn", "model.hidden=[-3]"],
            "simple_cnn_bn: model.hidden must be a list of widths >= 1 (or [] for none), got [-3]",
        ),
        # true for a number: Python's True is 1 (model.dropout=true zeroed every hidden activation in training)
        (["model.dropout=true"], "model.dropout must be a number, got true (model 'simple_cnn')"),
        (["pool=mixed", "pool.p=true"], "pool.p must be a number, got true (pool 'mixed')"),
        (["model=simple_cnn_bn", "norm.eps=-1"], "batch norm: norm.eps must be a number > 0 (1e-5 is usual), got -1"),
        (
            ["model=simple_cnn_bn", "norm.momentum=5"],
            "batch norm: norm.momentum must be in [0, 1] (0.1 is usual; null leaves it to the architecture), got 5",
        ),
    ],
)
def test_words_for_numbers_are_refused_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(CnnplError) as err:
        build_model(compose(*overrides))
    assert str(err.value) == message


@pytest.mark.parametrize(("output_dir", "shown"), [("", "''"), ("  ", "'  '"), (None, "null"), (123, "123")])
def test_an_output_folder_of_no_name_is_refused(output_dir: str | None, shown: str) -> None:
    from cnnpl.train import check_settings

    cfg = compose()
    cfg.output_dir = output_dir  # '' put the checkpoints in the file system's /checkpoints
    with pytest.raises(CnnplError) as err:
        check_settings(cfg)
    assert str(err.value) == (
        f"output_dir must name a folder, got {shown}; leave it to Hydra's run directory "
        "(hydra.run.dir=<folder> on the command line), or give one from Python: cnnpl.compose(..., output_dir=<folder>)"
    )


class _OwnData(ShapesDataModule):
    def __init__(self, root: str = "x", **kwargs: object) -> None:
        super().__init__(**kwargs)


def test_settings_that_gave_a_traceback_are_one_line() -> None:
    from cnnpl.network import instantiate_node
    from cnnpl.plugins import PluginError, plugin_specs
    from cnnpl.train import check_settings

    with pytest.raises(CnnplError) as err:  # "got multiple values for argument 'num_classes'", after the data loaded
        check_settings(compose("+system.num_classes=5"))
    assert str(err.value) == "system.num_classes is not a setting: the data gives it; remove +system.num_classes"
    with pytest.raises(CnnplError) as err:  # Hydra's "Expected a callable target, got '<module ...>'" and full_key
        instantiate_node(OmegaConf.create({"optimizer": {"_target_": "torch.optim.adam"}}).optimizer)
    assert str(err.value) == (
        "optimizer._target_=torch.optim.adam names no class or function (it is a 'module'); did you mean "
        "torch.optim.adam.Adam? give the class or function to build"
    )
    # helper-128: a data module of one's own (whose keys are not checked before the build) got "Error in call to
    # target ...: __init__() got an unexpected keyword argument 'val_splt'"
    mine = {"_target_": f"{__name__}._OwnData", "root": "x", "val_splt": 0.2}
    with pytest.raises(CnnplError) as err:
        instantiate_node(OmegaConf.create({"data": mine}).data)
    assert str(err.value) == f"data.val_splt is not a setting of {__name__}._OwnData; did you mean data.val_split?"
    for value in (123, [1, 2]):  # 'int' object is not iterable
        with pytest.raises(PluginError, match=r"^plugins must be plugin files or modules \(plugins=\[\./my_pool"):
            plugin_specs(value)
    assert plugin_specs(OmegaConf.create({"p": ["a.py", "b"]}).p) == ["a.py", "b"]


def test_lightning_callbacks_with_container_or_callable_hints_are_not_taken_for_numbers() -> None:
    from cnnpl.checks import check_on_off

    # GradientAccumulationScheduler(scheduling: dict[int, int]) was refused as "must be an integer", and
    # ThroughputMonitor(batch_size_fn: Callable[[Any], int]) crashed the check (unhashable type: 'list')
    check_on_off({"_target_": "lightning.pytorch.callbacks.GradientAccumulationScheduler", "scheduling": {0: 1}}, "c")
    check_on_off({"_target_": "lightning.pytorch.callbacks.ThroughputMonitor", "batch_size_fn": len}, "callbacks.t")
    with pytest.raises(CnnplError, match=r"^callbacks\.p\.refresh_rate must be an integer, got 'abc'$"):
        check_on_off({"_target_": "lightning.pytorch.callbacks.TQDMProgressBar", "refresh_rate": "abc"}, "callbacks.p")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # each was a traceback once the object was built or mid-run, or taken silently (helper-93)
        (["callbacks.checkpoint.save_top_k=1.5"], "callbacks.checkpoint.save_top_k must be an integer, got 1.5"),
        (
            ["+callbacks.checkpoint.train_time_interval=abc"],
            "callbacks.checkpoint.train_time_interval must be null or a time span "
            "({_target_:datetime.timedelta,minutes:5}), got 'abc'",
        ),
        (
            ["+callbacks.checkpoint.train_time_interval={seconds:1}"],
            "callbacks.checkpoint.train_time_interval must be a time span: write "
            "{_target_:datetime.timedelta,seconds:1}",
        ),
        (["+logger.flush_secs=abc"], "logger.flush_secs must be a number, got 'abc'"),
        (["+logger.max_queue=2.5"], "logger.max_queue must be an integer, got 2.5"),
        (["logger.name=123"], "logger.name must be a string or null, got 123"),
        (["logger.version=[1]"], "logger.version takes one value, not a list: an integer, a string or null; got [1]"),
        (  # helper-130: "must be an integer, a string or null" did not say that one layer is meant
            ["callbacks.gradcam.layer=[a,b]"],
            "callbacks.gradcam.layer takes one value, not a list: an integer, a string or null; got ['a', 'b']",
        ),
        (["logger.save_dir=''"], "logger.save_dir must name a folder, got ''; leave it to the run's folder"),
        (
            ["trainer.profiler=1"],
            "trainer.profiler must be a string, null or an object given as {_target_: ...}, got 1",
        ),
        (["+trainer.val_check_interval=false"], "trainer.val_check_interval must be a number, a string, null, a "),
        (["trainer.devices=true"], "trainer.devices must be an integer, a string or a list, got true"),
        (["trainer.devices=1.5"], "trainer.devices must be an integer, a string or a list, got 1.5"),
        (["trainer.num_nodes=abc"], "trainer.num_nodes must be an integer, got 'abc'"),
        (["+trainer.max_time=60"], "trainer.max_time must be a string, null, a mapping or a time span"),
        (["trainer.default_root_dir=123"], "trainer.default_root_dir must be a string or null, got 123"),
        (["+trainer.plugins=123"], "trainer.plugins must be null, a list or an object given as {_target_: ...}, got"),
        (  # the loosely typed callback below is checked where its hints say something (a vacuous pass otherwise)
            [f"+callbacks.own._target_={__name__}.LooselyTyped", "+callbacks.own.count=1.5"],
            "callbacks.own.count must be an integer, got 1.5",
        ),
        (["+trainer.logger=false"], "trainer.logger is cnnpl's to set: remove +trainer.logger and choose with logger="),
        (["+trainer.callbacks=[]"], "trainer.callbacks is cnnpl's to set: remove +trainer.callbacks and choose with"),
        (["+trainer.limit_test_batches=0"], "trainer.limit_test_batches=0 tests nothing (and reports no test metrics)"),
        # Lightning's words, naming no key, when the Trainer was built: a sweep's later job (helper-98)
        (["trainer.max_epochs=-5"], "trainer.max_epochs must be >= -1 (-1: no limit), got -5"),
        (
            ["trainer.accelerator=cpu", "trainer.devices=0"],
            "trainer.devices on the CPU is a number of processes, >= 1 (or auto: 1), got 0",
        ),
        # helper-121: Lightning's "`devices` selected with `CPUAccelerator` should be an int > 0", naming no key
        (
            ["trainer=ddp_cpu", "trainer.devices=-1"],
            "trainer.devices on the CPU is a number of processes, >= 1 "
            "(or auto: 1), got -1; -1 and device indices choose GPUs (trainer.accelerator=gpu)",
        ),
        (
            ["trainer.accelerator=cpu", "trainer.devices=[0,1]"],
            "trainer.devices on the CPU is a number of processes, >= 1 (or auto: 1), got [0, 1]",
        ),
        (
            ["trainer.accelerator=cpu", "trainer.devices=abc"],
            "trainer.devices on the CPU is a number of processes, >= 1 (or auto: 1), got 'abc'",
        ),
        (
            ["trainer.accelerator=gpu", "trainer.devices=-2"],
            "trainer.devices must be >= 1, -1 (all GPUs), auto or a list of GPU indices, got -2",
        ),
        (["trainer.num_nodes=0"], "trainer.num_nodes must be >= 1 (the machines the run spans), got 0"),
        (["trainer.strategy=dpp"], "trainer.strategy 'dpp' is not one of Lightning's strategies; did you mean ddp? "),
        (["trainer.accelerator=gpux"], "trainer.accelerator must be one of auto, cpu, gpu, cuda, mps, tpu, got 'gpux'"),
        (  # Lightning: "Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint`"
            ["+trainer.enable_checkpointing=false"],
            "trainer.enable_checkpointing=false turns checkpoints off, but callbacks.checkpoint saves them; to train "
            "without checkpoints drop it instead: ~callbacks.checkpoint (the test then runs on the final weights)",
        ),
    ],
)
def test_a_value_of_a_kind_its_argument_does_not_take_is_refused_naming_the_key(
    overrides: list[str], message: str
) -> None:
    from cnnpl.train import check_settings

    with pytest.raises(CnnplError) as err:
        check_settings(compose(*overrides))
    assert str(err.value).startswith(message)


class LooselyTyped(L.Callback):
    """A user's own callback with hints that say little: any value of these is the constructor's to judge."""

    def __init__(
        self,
        tag: typing.Any = None,
        names: Iterable[str] = ("a",),
        opts: MutableMapping[str, int] | None = None,
        fn: Callable[[int], int] | None = None,
        count: int = 1,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()


@pytest.mark.parametrize(
    "overrides",
    [
        ["+trainer.max_time={minutes:1}"],
        ["+trainer.max_time=00:00:01:00"],
        ["+trainer.val_check_interval={seconds:1}"],
        ["+trainer.val_check_interval=0.5"],
        ["+callbacks.checkpoint.train_time_interval={_target_:datetime.timedelta,seconds:1}"],
        ["+logger.flush_secs=30", "+logger.purge_step=null", "+logger.filename_suffix=.x"],
        ["+trainer.limit_test_batches=0", "test=false"],
        ["+trainer.enable_checkpointing=false", "~callbacks.checkpoint"],
        ["trainer.devices='2'"],  # (a list of indices, [0], chooses GPUs: refused on the CPU)
        ["trainer.strategy=DDP", "+trainer.max_steps=-1", "+trainer.num_sanity_val_steps=-1"],  # Lightning lowers it
        # cnnpl's own callbacks take one name, a child's index, or true for gradcam.target (helper-94)
        [
            "callbacks.filters.layers=features.block2",
            "callbacks.feature_maps.layers=0",
            "callbacks.gradcam.target=true",
        ],
        ["callbacks.kernels_demo.kernels=sharpen", "callbacks.gradcam.layer=0"],
        ["experiment=fast_cifar10", "callbacks.freeze_whitening.parameters=net.whiten"],
        [f"+callbacks.own._target_={__name__}.LooselyTyped", "+callbacks.own.tag=x", "+callbacks.own.names=[a]"],
        [f"+callbacks.own._target_={__name__}.LooselyTyped", "+callbacks.own.opts={a:1}", "+callbacks.own.fn=null"],
        [f"+callbacks.own._target_={__name__}.LooselyTyped", "+callbacks.own.device=cpu"],  # torch.device("cpu")
    ],
)
def test_values_of_the_kinds_their_arguments_take_still_pass(overrides: list[str]) -> None:
    from cnnpl.train import check_settings

    check_settings(compose(*overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [  # Python reads 1 as true: each was taken as true
        (["data.flip=1"], "data.flip must be true, false or alternate, got 1"),
        (["model=resnet18", "model.freeze_features=1"], "model.freeze_features must be true or false, got 1"),
        (["callbacks=[minimal,filters]", "callbacks.filters.rgb=1"], "callbacks.filters.rgb must be true or false"),
        (["callbacks=[minimal,filters]", "callbacks.filters.max_filters=2.5"], "callbacks.filters.max_filters must be"),
    ],
)
def test_a_number_for_a_switch_and_a_fraction_for_a_count_are_refused(overrides: list[str], message: str) -> None:
    from cnnpl.train import build_callbacks, checked_datamodule

    cfg = compose(*overrides)
    with pytest.raises(CnnplError) as err:
        checked_datamodule(cfg)
        build_model(cfg)
        build_callbacks(cfg)
    assert str(err.value).startswith(message)


def test_a_picture_callbacks_counts_take_no_true() -> None:
    for name, key in (("filters", "max_filters"), ("feature_maps", "cell_size"), ("gradcam", "scale")):
        with pytest.raises(CnnplError, match=rf"^callbacks\.{name}\.{key} must be an integer"):
            cnnpl.get_registry("callback").get(name)(**{key: True})


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model.dropout=0.5"],
        ["model.hidden=[64]"],
        ["model.hidden=[]"],
        ["pool=mixed", "pool.p=1"],
        ["model=simple_cnn_bn", "norm.momentum=null"],
        ["model=simple_cnn_bn", "norm.momentum=0", "norm.eps=1e-3"],
        ["model=simple_cnn_bn", "norm.scale=false"],
    ],
)
def test_valid_component_settings_still_build(overrides: list[str]) -> None:
    assert build_model(compose(*overrides))(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_a_global_pool_in_a_windowed_architecture_says_the_architecture_asked_for_the_window() -> None:
    with pytest.raises(UnknownComponentError) as err:
        build_model(compose("pool=global_avg"))
    message = str(err.value)
    pools = get_registry("pool")
    windowed = [name for name in pools.names() if "kernel_size" in parameters_of(pools.get(name))]
    assert message == (
        "layer features.block1.pool: model 'simple_cnn' calls its pool layers with kernel_size=2, which pool "
        "'global_avg' does not take "
        f"(it takes no parameters); choose a pool that takes kernel_size: pool={', '.join(windowed)}"
    )


def test_a_plugin_layer_without_a_parameter_its_architecture_passes_is_told_to_take_it(restore_registries) -> None:
    # helper-136: its author was told "choose a pool that takes kernel_size", where the signature is what to fix
    class Halve(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[..., ::2, ::2]

    cnnpl.register("pool", "halve", Halve)
    with pytest.raises(UnknownComponentError) as err:
        build_model(compose("pool=halve"))
    assert str(err.value).startswith(
        "layer features.block1.pool: model 'simple_cnn' calls its pool layers with kernel_size=2, which pool 'halve' "
        "does not take (it takes no parameters); add kernel_size to its signature (or **kwargs), or choose a pool "
        "that takes kernel_size: pool=avg, "
    )


def test_a_parameter_the_user_misspells_keeps_its_did_you_mean() -> None:
    with pytest.raises(UnknownComponentError) as err:
        build_model(compose("+pool.kernal_size=3"))
    assert str(err.value).startswith("pool 'max' has no parameter 'kernal_size'; did you mean 'kernel_size'?")
    with pytest.raises(UnknownComponentError) as err:  # set by the user: the user's word, not the model's
        build_model(compose("pool=global_avg", "+pool.kernel_size=3"))
    assert str(err.value).startswith(  # the user's word, with the pools that take it
        "pool.kernel_size is not a setting of pool=global_avg, but of pool=avg, pool=gated, pool=lp, pool=max, "
    )


class Fragile(torch.nn.Module):
    """A component whose constructor fails on a value of the wrong kind, as torch layers do."""

    def __init__(self, num_classes: int = 10, width: int = 4, scale: float = 1.0) -> None:
        super().__init__()
        if scale > 0:  # a TypeError for a word
            self.linear = torch.nn.Linear(width, num_classes)


def test_a_constructor_error_names_the_component_and_the_settings_that_differ() -> None:
    registry = Registry("model")
    registry.register("fragile", Fragile)
    with pytest.raises(CnnplError) as err:
        registry.build("fragile", num_classes=10, width=4, scale=None)  # what the value checks let through
    assert str(err.value) == (
        "model 'fragile' could not be built with scale=null: '>' not supported between instances of 'NoneType' and "
        "'int'; check the model.* settings (HYDRA_FULL_ERROR=1 shows the traceback)"
    )
    assert isinstance(err.value.__cause__, TypeError)  # HYDRA_FULL_ERROR=1 shows the original
    with pytest.raises(CnnplError) as err:  # a word for a number: the command line's check, from Python too
        registry.build("fragile", num_classes=10, width=4, scale="abc")
    assert str(err.value) == "model.scale must be a number, got 'abc' (model 'fragile')"
    assert isinstance(registry.build("fragile", width=3), Fragile)
    with pytest.raises(CnnplError) as err:  # a real model: the settings shown leave out what the caller supplies
        build_model(compose("model.hidden=5"))
    assert str(err.value) == (
        "model 'simple_cnn' could not be built with hidden=5: 'int' object is not iterable; check the model.* settings "
        "(HYDRA_FULL_ERROR=1 shows the traceback)"
    )


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=1.5", "cnnpl: error: data.batch_size must be an integer >= 1, got 1.5"),
        (
            "pool=global_avg",
            "cnnpl: error: layer features.block1.pool: model 'simple_cnn' calls its pool layers with kernel_size=2, "
            "which pool 'global_avg' does not take (it takes no parameters); choose a pool that takes kernel_size: "
            "pool=avg, ",
        ),
    ],
)
def test_the_command_line_refuses_with_one_line(cli, tmp_path: Path, override: str, message: str) -> None:
    result = cli(*TINY, override)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(message), result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_training_and_test_images_of_different_sizes_are_refused_at_setup() -> None:
    from cnnpl.data.base import InMemoryImageDataModule, Split

    class TwoSizes(InMemoryImageDataModule):
        def load(self) -> tuple[Split, Split, list[str]]:
            labels = torch.zeros(8, dtype=torch.int64)
            train = Split(torch.zeros(8, 3, 32, 32, dtype=torch.uint8), labels)
            return train, Split(torch.zeros(8, 3, 24, 24, dtype=torch.uint8), labels), ["a", "b"]

    with pytest.raises(CnnplError) as err:
        TwoSizes(batch_size=4, val_split=0).setup("fit")
    assert str(err.value) == (
        "the training images are (3, 32, 32) (channels, height, width) but the test images (3, 24, 24): a network "
        "takes one size; resize one split to the other's size"
    )


# -- the network, run once on blank images before training ---------------------------------------------


class _Draws(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)  # random numbers even in eval mode


def _net(*layers: torch.nn.Module) -> torch.nn.Module:
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (
            _net(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(4, 8, 3)),
            "model=m fails on a batch of 2 3x8x8 images in layer 1 (Conv2d): RuntimeError: Given groups=1, weight of "
            "size [8, 4, 3, 3], expected input[2, 8, 6, 6] to have 4 channels, but got 8 channels instead; check that "
            "its components fit each other (a conv, pool or norm plugin must keep the shapes the network expects)",
        ),
        (
            _net(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5)),
            "model=m returns (2, 5) for a batch of 2 3x8x8 images; a model must return one tensor of "
            "(N, num_classes) = (2, 10) logits",
        ),
        (
            _net(torch.nn.Conv2d(3, 10, 1)),
            "model=m returns (2, 10, 8, 8) for a batch of 2 3x8x8 images; a model must return one tensor of "
            "(N, num_classes) = (2, 10) logits",
        ),
    ],
)
def test_a_network_that_cannot_classify_a_batch_is_refused(net: torch.nn.Module, message: str) -> None:
    from cnnpl.train import check_forward

    with pytest.raises(CnnplError) as err:
        check_forward(net, 10, 3, (8, 8), "m")
    assert str(err.value) == message
    assert net.training  # back in the mode it came in


class _HalvesInTraining(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x[:, : x.shape[1] // 2] if self.training else x  # a plugin's bug in its training branch only


def test_a_network_that_fails_only_in_training_mode_is_refused_and_a_passing_one_keeps_its_state() -> None:
    # note 42: the check ran eval mode only; such a pool failed at the first step, with a traceback
    from cnnpl.train import check_forward

    net = _net(torch.nn.Conv2d(3, 8, 3), _HalvesInTraining(), torch.nn.Conv2d(8, 8, 3))
    with pytest.raises(CnnplError) as err:
        check_forward(net, 10, 3, (8, 8), "m")
    assert str(err.value).startswith(
        "model=m fails on a batch of 2 3x8x8 images in training mode in layer 2 (Conv2d): RuntimeError: Given "
        "groups=1, weight of size [8, 8, 3, 3], expected input[2, 4, 6, 6] to have 8 channels, but got 4 channels"
    )
    net = _net(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        _HalvesInTraining().eval(),  # left in eval mode, Lightning trains it so: halves nothing
        torch.nn.Dropout(),
        torch.nn.Flatten(),
        torch.nn.LazyLinear(10),
    )
    check_forward(net, 10, 3, (8, 8), "m")  # passes in both modes, on blank images
    # the training pass ran on a copy: the network's batch statistics, its layer's count and its mode are its own
    assert net[1].num_batches_tracked.item() == 0 and torch.equal(net[1].running_mean, torch.zeros(8))
    assert net[2].calls == 1 and net.training and not net[2].training


class _ViewsInTraining(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = x.view(2, -1, 5)  # fails before any layer runs
        return self.fc(self.conv(x).flatten(1))


def test_a_failure_in_training_mode_before_any_layer_names_no_layer_of_the_eval_pass() -> None:
    # helper-146: was "... in training mode after layer fc (Linear)": the eval pass's last layer
    from cnnpl.train import check_forward

    with pytest.raises(CnnplError) as err:
        check_forward(_ViewsInTraining(), 10, 3, (8, 8), "m")
    assert str(err.value).startswith(
        "model=m fails on a batch of 2 3x8x8 images in training mode: RuntimeError: shape '[2, -1, 5]' is invalid"
    )
    check_forward(_ViewsInTraining(), 10, 3, (8, 8), "m", training=False)  # python -m cnnpl.summary: eval's only


class _Allocates(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 240 GB")


def test_a_network_too_large_for_the_memory_is_not_blamed_on_its_components() -> None:
    # helper-123: "fails ...; check that its components fit each other (a conv, pool or norm plugin must ...)"
    from cnnpl.errors import NeedsMoreMemory
    from cnnpl.train import check_forward

    with pytest.raises(NeedsMoreMemory) as err:
        check_forward(_net(_Allocates()), 10, 3, (8, 8), "m")
    assert str(err.value) == (
        "model=m needs more memory than this machine can give for a batch of 2 3x8x8 images in layer 0 (_Allocates) "
        "([enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: 240 GB); use smaller "
        "images or a narrower network"
    )


def test_the_blank_batch_leaves_the_random_state_and_the_statistics_alone() -> None:
    from cnnpl.train import check_forward

    net = _net(_Draws(), torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    state, stats = torch.get_rng_state(), net[1].running_mean.clone()
    check_forward(net, 10, 3, (8, 8), "m")
    assert torch.equal(torch.get_rng_state(), state) and torch.equal(net[1].running_mean, stats)


def test_a_callback_component_that_builds_no_callback_is_refused() -> None:
    from cnnpl.train import build_callbacks

    with pytest.raises(CnnplError) as err:
        build_callbacks(compose("callbacks=minimal", "+callbacks.odd._target_=builtins.dict"))
    assert str(err.value) == (
        "callbacks.odd built a dict, not a Lightning Callback: its _target_ (or the registered component) must make "
        "a lightning.pytorch.Callback"
    )


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("{_target_:cnnpl.callbacks.FreezeAfter,parameters:[],epochs:1}", "callbacks.mine.parameters must name at"),
        ("{_target_:cnnpl.callbacks.Lookahead,every:0}", "callbacks.mine.every must be an integer >= 1, got 0"),
        ("{_target_:cnnpl.callbacks.FiltersCallback,every_n_epochs:0}", "callbacks.mine.every_n_epochs must be an"),
    ],
)
def test_a_callbacks_message_names_it_by_the_configs_key(node: str, message: str) -> None:
    # was callbacks.freeze / lookahead / filters: the registry's name, which the run's config does not have
    from cnnpl.train import build_callbacks

    with pytest.raises(CnnplError) as err:
        build_callbacks(compose("callbacks=minimal", f"+callbacks.mine={node}"))
    assert str(err.value).startswith(message)


def test_a_callback_built_under_another_key_names_that_key_when_it_fails_later() -> None:
    from cnnpl.train import build_callbacks

    [freeze] = [c for c in build_callbacks(compose("experiment=fast_cifar10")) if type(c).__name__ == "FreezeAfter"]
    assert freeze.name == "freeze_whitening"
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(CnnplError) as err:
        freeze.setup(None, typing.cast(typing.Any, net), "fit")
    message = str(err.value)
    assert message.startswith("callbacks.freeze_whitening.parameters: net.whiten.bias not in the model")
    assert message.endswith("or drop the callback with ~callbacks.freeze_whitening")


@pytest.mark.parametrize(
    ("typed", "advice"),
    [
        (
            ["experiment=fast_cifar10", "optimizer=adam"],
            "experiment=fast_cifar10 sets it, and keeps it when "
            "optimizer= is swapped: remove it with ~optimizer.momentum",
        ),
        (["+experiment=a", "experiment=null"], ""),  # the last choice counts
        (["experiment=fast_cifar10", "+optimizer.momentum=0.9"], ""),  # typed: the experiment did not set it
        (["optimizer=adam"], ""),
    ],
)
def test_an_experiments_leftover_settings_are_named_as_the_experiments(typed: list[str], advice: str) -> None:
    from cnnpl.config import chosen_experiment, experiment_leftovers

    assert experiment_leftovers(["optimizer.momentum"], typed, chosen_experiment(typed)) == advice


def test_a_leftover_the_command_line_set_itself_is_not_named_among_the_experiments() -> None:
    from cnnpl.config import experiment_leftovers

    typed = ["experiment=fast_cifar10", "optimizer=adam", "optimizer.momentum=0.5"]  # nesterov is still the recipe's
    assert experiment_leftovers(["optimizer.momentum", "optimizer.nesterov"], typed, "fast_cifar10") == (
        "experiment=fast_cifar10 sets it, and keeps it when optimizer= is swapped: remove it with ~optimizer.nesterov; "
        "and drop optimizer.momentum from the command line"
    )


def test_a_pool_plugin_of_the_wrong_shape_is_refused_before_training(cli, tmp_path: Path) -> None:
    (tmp_path / "halving.py").write_text(
        "import cnnpl\n"
        "from torch import nn\n\n\n"
        "@cnnpl.register('pool', 'halving')\n"
        "class Halving(nn.MaxPool2d):  # keeps half the channels\n"
        "    def forward(self, x):\n"
        "        return super().forward(x)[:, : x.shape[1] // 2]\n"
    )
    result = cli(*TINY, "plugins=[./halving.py]", "pool=halving")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(
        "cnnpl: error: model=simple_cnn fails on a batch of 2 3x32x32 images in layer features.block2.conv (Conv2d): "
        "RuntimeError: Given groups=1"
    ), result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["+trainer.limit_train_batche=5"],  # Lightning's TypeError named no argument
            "trainer.limit_train_batche is not an argument of lightning.pytorch.Trainer; did you mean "
            "trainer.limit_train_batches?",
        ),
        (
            ["+callbacks.checkpoint.save_lst=true"],  # through cnnpl's ModelCheckpoint(**kwargs) to Lightning's
            "callbacks.checkpoint.save_lst is not an argument of cnnpl.callbacks.ModelCheckpoint; did you mean "
            "callbacks.checkpoint.save_last?",
        ),
        (
            ["+trainer.zzz=1"],
            "trainer.zzz is not an argument of lightning.pytorch.Trainer (its arguments: accelerator, strategy, ",
        ),
    ],
)
def test_a_trainer_or_callback_key_that_is_no_argument_is_refused(overrides: list[str], message: str) -> None:
    from cnnpl.checks import check_arguments

    cfg = compose(*overrides)
    with pytest.raises(CnnplError) as err:
        check_arguments(cfg.trainer, "trainer")
        for name, node in cfg.callbacks.items():
            check_arguments(node, f"callbacks.{name}")
    assert str(err.value).startswith(message)


def test_every_configured_trainer_and_callback_key_is_an_argument() -> None:
    from cnnpl.checks import check_arguments

    experiments = sorted(path.stem for path in (config_dir() / "experiment").glob("*.yaml"))
    assert "fast_cifar10" in experiments
    sets = [[], *([f"experiment={e}"] for e in experiments), ["callbacks=full"], ["trainer=ddp_cpu"], ["trainer=ddp"]]
    for overrides in sets:
        cfg = compose(*overrides)
        check_arguments(cfg.trainer, "trainer")
        for name, node in (cfg.get("callbacks") or {}).items():
            check_arguments(node, f"callbacks.{name}")


def test_the_blank_batch_keeps_each_submodules_own_mode() -> None:
    from cnnpl.train import check_forward

    net = _net(torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    net[0].eval()  # a part kept in eval mode on purpose (fixed statistics): Lightning leaves it so
    check_forward(net, 10, 3, (8, 8), "m")
    assert net.training and not net[0].training and net[2].training


def test_a_hydra_interpolation_in_a_component_setting_is_left_to_the_run() -> None:
    from cnnpl.cli import _check_composes

    _check_composes(["model=lenet5", "model.pretrained=${hydra:runtime.cwd}/l5.pth"])  # Hydra sets it for the run


def test_messages_name_the_first_few_and_count_the_rest() -> None:
    # one wording for the five messages that built it themselves (checkpoints, weights, images, pictures)
    assert first_few([]) == "" and first_few(["a"]) == "a" and first_few(["a", "b", "c"]) == "a, b, c"
    assert first_few(["a", "b", "c", "d"]) == "a, b, c and 1 more"
    assert first_few(["a", "b", "c"], 1) == "a and 2 more"
    assert first_few(["w", "x", "y", "z"], 2, "sizes") == "w, x and 2 more sizes"


def _holding_itself() -> list[object]:
    items: list[object] = [1]
    items.append(items)
    return items


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ("true", "'true'"),  # text stays quoted: the command line wrote "'true'"
        (1.5, "1.5"),
        ([64, None], "[64, null]"),
        ((1, True), "(1, true)"),
        ((None,), "(null,)"),
        ({"a": {"b": False}}, "{'a': {'b': false}}"),
        (OmegaConf.create({"a": [None, "${b}"]}), "{'a': [null, '${b}']}"),  # read as written, not resolved
        (OmegaConf.create([True]), "[true]"),
        (OmegaConf.create({"a": True})._get_node("a"), "true"),  # a leaf node
        (DictConfig(None), "null"),
        (_holding_itself(), "[1, [...]]"),  # never raises: repr's words for a list that holds itself
    ],
)
def test_a_value_in_a_message_is_written_as_the_command_line_writes_it(value: object, shown: str) -> None:
    # the 90-odd "got {value!r}" messages said None, True and False for what a user wrote null, true and false
    assert yaml_word(value) == shown


def test_a_value_that_cannot_be_shown_does_not_hide_the_message() -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    shown = yaml_word(Unprintable())  # object's own words, not the repr's error
    assert shown.startswith("<") and "Unprintable object at 0x" in shown


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=null"], "optimizer.lr must be a number, got null"),
        (
            ["scheduler=onecycle", "scheduler.cycle_momentum=null"],
            "scheduler.cycle_momentum must be true or false, got null",
        ),
        (
            ["conv.stride=[1,true]"],
            "conv.stride must be an integer or a pair [height, width] of integers, got [1, true] (conv 'conv2d')",
        ),
        # helper-157: these said 'True', '[1, None]', "=None ... (it is a 'NoneType')", [True] and {a:True}
        (
            ["model.name=true"],
            "model.name must name a registered model, got true; choose one with model=<name> "
            "(python -m cnnpl.list model lists them)",
        ),
        (
            ["pool.name=[1,null]"],
            "pool.name must name a registered pool, got [1, null]; choose one with pool=<name> "
            "(python -m cnnpl.list pool lists them)",
        ),
        (
            ["optimizer._target_=null"],
            "optimizer._target_ must be the dotted path of a class or function to build (torch.optim.SGD), got null",
        ),
        (["pool=softpool", "pool.beta=[true]"], "pool.beta must be a number, got [true] (pool 'softpool')"),
        (["conv=tiled", "conv.bias=[false]"], "conv.bias must be true or false, got [false] (conv 'tiled')"),
        # a null for Lightning's int: "'>' not supported between 'NoneType' and 'int'" in trainer.fit, a traceback
        (
            ["callbacks.progress_bar.refresh_rate=null"],
            "callbacks.progress_bar.refresh_rate must be an integer, got null",
        ),
        (["callbacks.checkpoint.save_top_k=null"], "callbacks.checkpoint.save_top_k must be an integer, got null"),
        (
            ["logger=csv", "logger.name={a:true}"],
            "logger.name={'a': true} is not text: Hydra reads an override value in braces as a mapping; quote it, "
            "e.g. 'logger.name=\"{a:true}\"'",
        ),
    ],
)
def test_a_refused_null_or_true_is_shown_as_written(overrides: list[str], message: str) -> None:
    from cnnpl.cli import prepare

    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *overrides])
    assert str(err.value) == message


def test_a_network_built_from_python_shows_a_refused_value_as_the_command_line_writes_it() -> None:
    for widths, shown in (([1, None], "[1, null]"), ([64, True], "[64, true]"), ([64, 2.5], "[64, 2.5]")):
        with pytest.raises(CnnplError) as err:  # [1, None] was "'<' not supported between 'NoneType' and 'int'"
            cnnpl.build("model", "fast_net", num_classes=10, widths=widths)
        assert str(err.value) == f"model.widths must be a non-empty list of positive channel counts, got {shown}"
    cfg = compose("pool=mixed_learned", "pool.granularity=true")
    with pytest.raises(CnnplError) as err:
        build_model(cfg)
    assert str(err.value).endswith("unknown mixed_learned pooling granularity true; choose one of layer, channel")


def test_a_null_refused_as_the_network_is_built_is_shown_as_written(tmp_path: Path) -> None:
    # caught after composing, as the LightningModule is built: still one line before any training, with null
    result = run_cli(*TINY, "system.label_smoothing=null", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == "cnnpl: error: system.label_smoothing must be in [0, 1), got null"
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[a,b]", "got ['a', 'b']"),
        ("true", "got true"),
        ("12", "got 12 (for a file named 12, quote it: ckpt_path=\"'12'\")"),
    ],
)
def test_a_ckpt_path_that_is_no_file_name_is_refused_as_such(value: str, said: str) -> None:
    # helper-127: ckpt_path=[a,b] and ckpt_path=true were "does not exist"
    from cnnpl.train import check_settings

    with pytest.raises(CnnplError) as err:
        check_settings(compose(f"ckpt_path={value}"))
    assert str(err.value) == f"ckpt_path must be a .ckpt file or last, {said}"


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("callbacks.checkpoint.save_top_k=-2", "Invalid value for save_top_k=-2. Must be >= -1"),
        ("callbacks.checkpoint.mode=maxx", "`mode` can be min, max but got maxx"),
    ],
)
def test_a_value_lightning_refuses_names_the_key_of_its_settings(override: str, said: str) -> None:
    # helper-127: "Error in call to target 'cnnpl.callbacks.checkpoint.ModelCheckpoint': ...", naming no key
    from cnnpl.train import build_callbacks

    with pytest.raises(CnnplError) as err:
        build_callbacks(compose(override))
    assert str(err.value) == f"callbacks.checkpoint (cnnpl.callbacks.checkpoint.ModelCheckpoint): {said}"


def test_a_run_without_an_end_is_told_so(tmp_path) -> None:
    # helper-141: trainer.max_epochs=-1 trained on without a word (the test never came); a step or time limit ends it
    import warnings

    from cnnpl.train import train

    def warned(*overrides: str) -> list[str]:
        cfg = cnnpl.compose([*TINY, "data.num_train=64", "test=false", *overrides], output_dir=str(tmp_path / "r"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train(cfg)
        shutil.rmtree(tmp_path / "r")
        return [str(w.message) for w in caught if "trains until stopped" in str(w.message)]

    # ended by a callback of one's own (early stopping at once), which the warning could not foresee: said
    stop = [
        "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.stop.monitor=val/acc",
        "+callbacks.stop.mode=max",
        "+callbacks.stop.stopping_threshold=0.0",
    ]
    assert warned("trainer.max_epochs=-1", *stop) == [
        "trainer.max_epochs=-1 trains until stopped (Ctrl-C; SIGTERM saves last.ckpt), and the test comes only after "
        "an end: give trainer.max_epochs=<N>, +trainer.max_steps=<N> or +trainer.max_time=<DD:HH:MM:SS> for one"
    ]
    assert warned("trainer.max_epochs=-1", "+trainer.max_steps=1") == []  # an end: no word
    assert warned("trainer.max_epochs=-1", "+trainer.fast_dev_run=true", "callbacks=minimal") == []
