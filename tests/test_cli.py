"""The real command line, end to end, on tiny generated data."""

from __future__ import annotations

import datetime
import enum
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests.conftest import TINY, contents, run_cli

import cnnpl
from cnnpl.errors import CnnplError


def scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_trains_checkpoints_tests_and_logs(cli, tmp_path: Path) -> None:
    result = cli(*TINY, "trainer.max_epochs=2", "optimizer.lr=3e-3", env={"PYTHONWARNINGS": "default"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LeafSpec" not in result.stderr, result.stderr[-3000:]  # torch's FutureWarning about Lightning's code
    assert "Tip:" not in result.stdout + result.stderr  # Lightning's advertisements for litlogger and litmodels
    run = tmp_path / "run"

    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch") for name in checkpoints)
    best = next(p for p in (run / "checkpoints").iterdir() if p.name.startswith("epoch"))
    state = torch.load(best, weights_only=True)  # plain tensors and numbers only: safe to load
    assert state["epoch"] in (0, 1) and "net.features.block1.conv.weight" in state["state_dict"]

    logged = scalars(run)
    for tag in ("train/loss_epoch", "train/acc", "val/loss", "val/acc", "val/acc_top5", "test/loss", "test/acc"):
        assert tag in logged, f"{tag} missing from {sorted(logged)}"
    assert len(logged["val/acc"]) == 2 and len(logged["test/acc"]) == 1
    assert all(0.0 <= v <= 1.0 for v in logged["val/acc"])
    assert logged["test/acc"][0] > 0.2  # 10 classes: chance is 0.1; two tiny epochs already beat it
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "config.yaml").is_file()
    # Lightning's lines are printed once (through Hydra's handler, which also writes the run's log file)
    assert (result.stdout + result.stderr).count("`Trainer.fit` stopped") == 1
    log = (run / "cnnpl.log").read_text()
    assert "`Trainer.fit` stopped" in log and f"CPU kernels {torch.backends.cpu.get_cpu_capability()}" in log


def test_help_lists_every_group_and_option(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for line in ("model: ", "conv: ", "pool: ", "data: cifar10, shapes", "optimizer: adam", "scheduler: "):
        assert line in result.stdout
    assert "simple_cnn" in result.stdout and "avg, " in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pool=maxx", "cnnpl: error: pool=maxx: no such option; did you mean pool=max? the options of pool are "),
        # bare words were Hydra's "Error parsing override 'vgg16'; missing EQUAL at '<EOF>'"
        ("vgg16", "cnnpl: error: 'vgg16' is not an override; did you mean model=vgg16?"),
        ("pool", "cnnpl: error: 'pool' is not an override: a config group takes an option, pool=<option>"),
        (
            "gradcam",
            "cnnpl: error: 'gradcam' is not an override; did you mean callbacks=default (it holds gradcam; "
            "callbacks.gradcam.<setting>= changes it)?",
        ),
        # a misspelt or unknown one, and list not first, were Hydra's "missing EQUAL" still (helper-99)
        ("vgg61", "cnnpl: error: 'vgg61' is not an override; did you mean model=vgg16 or model=vgg19?"),
        ("list", "cnnpl: error: 'list' is not an override: python -m cnnpl list [<group>] lists the components; put "),
        (
            "render",
            "cnnpl: error: 'render' is not an override: python -m cnnpl render ckpt=<.ckpt> out=<folder> draws ",
        ),
        ("foo", "cnnpl: error: 'foo' is not an override: overrides are written key=value, such as model=vgg16 "),
        # Hydra's grammar: "no viable alternative at input '[1,'; See https://...", naming no override (helper-123)
        (
            "model.widths=[1,",
            "cnnpl: error: cannot read the override 'model.widths=[1,': no viable alternative at input '[1,'; quote a "
            "value that holds spaces, = or ~ ('key=\"a b\"') and close every [ and { (https://hydra.cc/docs/advanced/",
        ),
        (
            "gradcm",
            "cnnpl: error: 'gradcm' is not an override; did you mean callbacks=default (it holds gradcam; "
            "callbacks.gradcam.<setting>= changes it)?",
        ),
        # the settings of data.root were listed as its letters, "d, a, t, a" (helper-101)
        ("data.root.x=1", "cnnpl: error: data.root.x is not a setting of this config; to add a new key anyway"),
        (  # were "... is not a setting of this config; to add a new key anyway, write +callbacks.filter....=...",
            # which then failed: "callbacks.filter built a DictConfig, not a Lightning Callback" (helper-115)
            "callbacks.filter.every_n_epochs=5",
            "cnnpl: error: callbacks.filter.every_n_epochs is not a setting of this config: callbacks.filter does not "
            "exist; did you mean callbacks.filters.every_n_epochs?",
        ),
        (  # Hydra's "Could not delete from config. 'callbacks.gradcm' does not exist." (helper-98)
            "~callbacks.gradcm",
            "cnnpl: error: ~callbacks.gradcm: callbacks.gradcm is not a setting of this config, so there is nothing to "
            "delete; did you mean callbacks.gradcam?",
        ),
        (
            "pool.kernal_size=3",
            # not "to add a new key anyway, write +pool.kernal_size=...": pool=max, taking no **kwargs, refuses it
            "cnnpl: error: pool.kernal_size is not a setting of this config; did you mean pool.kernel_size?",
        ),
        (
            "optimizer.learning_rate=0.1",
            "cnnpl: error: optimizer.learning_rate is not a setting of this config; the settings of optimizer are "
            "_target_, _partial_, lr, weight_decay, fused; to add a new key anyway, write +optimizer.learning_rate=...",
        ),
        (
            "hydra.run.dir=/proc/cnnpl-run",
            "cnnpl: error: output directory '/proc/cnnpl-run' cannot be written (",
        ),
        (
            "callbacks=[default,bogus]",
            # the sets, and every registered callback (the built-in ones without importing them)
            "cnnpl: error: callbacks: no option 'bogus'; the options of callbacks are confusion_matrix, default, "
            "embedding, ",
        ),
        ("+pool.kernal_size=3", "cnnpl: error: pool 'max' has no parameter 'kernal_size'; did you mean 'kernel_size'?"),
        ("optimizer.lr=-0.1", "cnnpl: error: optimizer.lr must be >= 0, got -0.1"),  # was torch's wording
        (
            "optimizer._target_=torch.optim.RMSprop",  # the adam config's fused stays: RMSprop has none
            "cnnpl: error: RMSprop takes no setting fused (its settings: lr, ",
        ),
        ("data.batch_size=0", "cnnpl: error: data.batch_size must be >= 1, got 0"),
        (
            "logger=null",
            "cnnpl: error: 'logger=null' cannot unset the config group 'logger'; to go without it write ~logger",
        ),
    ],
)
def test_bad_input_ends_with_one_clear_message_before_training(
    cli, tmp_path: Path, override: str, message: str
) -> None:
    result = cli(*TINY, override)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, Hydra's errors included
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (  # was "...; remove them with ..., or pick a config of its own (optimizer=adam|...)": adam was chosen
            ["optimizer=adam"],
            "Adam takes no setting momentum, nesterov (its settings: lr, betas, eps, weight_decay, amsgrad, foreach, "
            "maximize, capturable, differentiable, fused, decoupled_weight_decay); experiment=fast_cifar10 sets them, "
            "and keeps them when optimizer= is swapped: remove them with ~optimizer.momentum ~optimizer.nesterov",
        ),
        (  # was "model 'simple_cnn' has no parameter 'widths'. Parameters: ...", with no way out named
            ["model=simple_cnn"],
            "(experiment=fast_cifar10 sets them, and keeps them when model= is swapped: remove them with "
            "~model.widths ~model.norm_momentum)",
        ),
        (  # was "callbacks.freeze.parameters: ...": the experiment's key is freeze_whitening
            ["model=simple_cnn", "~model.widths", "~model.norm_momentum"],
            "cnnpl: error: callbacks.freeze_whitening.parameters: net.whiten.bias not in the model",
        ),
    ],
)
def test_an_experiments_settings_left_by_a_swapped_group_are_named_with_the_way_out(
    cli, tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli(*TINY, "experiment=fast_cifar10", *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr[-2000:]
    assert "pick a config of its own" not in result.stderr
    assert not list((tmp_path / "run").rglob("*.ckpt"))


@pytest.mark.parametrize("override", ["seed=abc", "optimizer.lr=-1", "trainer.profiler=1"])
def test_a_run_refused_for_its_settings_leaves_no_folder(tmp_path: Path, override: str) -> None:
    # was: the one line, after Hydra had made the run's folder with its .hydra/ record and cnnpl.log
    result = run_cli("data=shapes", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("cnnpl: error: "), result.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_a_sweeps_misspelt_option_is_named_before_any_jobs_data_is_looked_for(tmp_path: Path) -> None:
    # was "CIFAR-10 not found under ... (in the sweep's job with pool=max)" where no data/ is (a fresh checkout)
    result = run_cli("-m", "pool=max,maxx", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("cnnpl: error: pool=maxx: no such option; did you mean pool=max?"), result.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_names_an_experiments_leftover_settings_as_a_run_does(tmp_path: Path) -> None:
    result = run_cli("-m", "data=shapes", "experiment=fast_cifar10", "optimizer=adam,sgd", cwd=tmp_path)
    assert result.returncode == 2
    assert "experiment=fast_cifar10 sets them, and keeps them when optimizer= is swapped" in result.stderr
    assert "(in the sweep's job with optimizer=adam)" in result.stderr and "pick a config" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data=shapes", "-m", "pool=max,avg"], ["-m", "data=shapes", "pool=max,avg"]),  # Hydra: unrecognized
        (["seed=1", "--cfg", "job", "pool=avg"], ["--cfg", "job", "seed=1", "pool=avg"]),
        (["seed=1", "-cn=train", "--multirun", "a=1"], ["-cn=train", "--multirun", "seed=1", "a=1"]),
        (["seed=1", "--", "-m"], ["seed=1", "--", "-m"]),  # after --, all are overrides: as given
        (["seed=1", "--info", "searchpath"], ["seed=1", "--info", "searchpath"]),  # a flag of its own form
    ],
)
def test_hydras_flags_go_before_the_overrides(args: list[str], expected: list[str]) -> None:
    from cnnpl.cli import flags_first

    assert flags_first(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [  # each was Hydra's usage, seven lines, then "__main__.py: error: unrecognized arguments" (helper-99)
        (["--versoin"], "unknown flag --versoin; did you mean --version? (python -m cnnpl --help lists them; "),
        (["seed=1", "--cfg"], "--cfg takes a value (job, hydra or all): --cfg <value>"),
        (["--model", "vgg16"], "--model is no flag: overrides are written key=value, without dashes: model=..."),
        (["--config", "x"], "--config is ambiguous: it could be --config-dir or --config-name or --config-path; "),
    ],
)
def test_a_flag_hydra_does_not_have_is_one_line(args: list[str], message: str) -> None:
    from cnnpl.cli import check_flags

    with pytest.raises(CnnplError) as err:
        check_flags(args)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "job"],
        ["--cfg=job"],
        ["-c", "job", "-p", "pool"],
        ["-cjob"],
        ["--info"],
        ["--info", "searchpath"],
        ["-m"],
    ],
)
def test_hydras_own_flags_pass(args: list[str]) -> None:
    from cnnpl.cli import check_flags

    assert check_flags(args) == args


def test_an_abbreviated_flag_is_written_out_for_cnnpls_own_checks() -> None:
    # argparse takes a unique abbreviation; cnnpl's checks look for the whole flag (helper-101: --multi skipped
    # the sweep's checks, --cf job read 'job' as an override)
    from cnnpl.cli import check_flags

    assert check_flags(["--multi", "a=1", "--cf", "job", "--hydra", "--resol=x"]) == [
        "--multirun", "a=1", "--cfg", "job", "--hydra-help", "--resolve=x"
    ]  # fmt: skip


def test_a_plugin_that_registered_nothing_is_named_when_its_option_is_missing(restore_registries, tmp_path) -> None:
    # was: "a plugin's pool becomes an option when plugins=[...] on the command line names it", which it did
    from cnnpl import plugins

    plugins._named.clear()  # only this test's plugin named (restore_registries puts the others back)
    (tmp_path / "noreg.py").write_text("import cnnpl\n")
    for option in ("noreg", "my_max"):  # helper-122: my_max, close to max, lost the hint to the did-you-mean
        with pytest.raises(CnnplError) as err:
            cnnpl.compose([f"plugins=[{tmp_path / 'noreg.py'}]", f"pool={option}"])
        assert str(err.value).endswith(
            f"the plugins loaded (file {tmp_path / 'noreg.py'}) registered nothing: is a @cnnpl.register('pool', "
            "'<name>') decorator missing?"
        )
    with pytest.raises(CnnplError) as err:  # in a list of callbacks too
        cnnpl.compose([f"plugins=[{tmp_path / 'noreg.py'}]", "callbacks=[default,my_filters]"])
    assert str(err.value).startswith("callbacks: no option 'my_filters'; did you mean filters?")
    assert str(err.value).endswith("registered nothing: is a @cnnpl.register('callback', '<name>') decorator missing?")
    (tmp_path / "my_pool.py").write_text(
        "import cnnpl\nfrom torch import nn\n\ncnnpl.register('pool', 'p1')(nn.MaxPool2d)\n"
    )
    with pytest.raises(CnnplError) as err:  # a misspelt model: the pool plugin is not to blame
        cnnpl.compose([f"plugins=[{tmp_path / 'my_pool.py'}]", "model=zzz"])
    assert "decorator missing" not in str(err.value) and "registered" not in str(err.value)
    with pytest.raises(CnnplError) as err:  # a typo of one of its own: the did-you-mean is enough
        cnnpl.compose([f"plugins=[{tmp_path / 'my_pool.py'}]", "pool=p1x"])
    assert str(err.value).startswith("pool=p1x: no such option; did you mean pool=p1?")
    assert "registered" not in str(err.value) and "plugins=[...]" not in str(err.value)


def test_the_tools_run_as_the_first_word_too(tmp_path: Path) -> None:
    # helper-123: python -m cnnpl list worked, summary and render were "'summary' is not an override"
    summary = run_cli("summary", "model=lenet5", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert "Trainable params: 62,006" in summary.stdout
    render = run_cli("render", f"ckpt={tmp_path / 'none.ckpt'}", f"out={tmp_path / 'pictures'}", cwd=tmp_path)
    assert render.returncode == 2
    assert render.stderr.startswith("cnnpl.render: error: ") and "none.ckpt" in render.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_overrides_after_a_double_dash_are_checked_like_the_others(tmp_path: Path) -> None:
    # argparse's end-of-options marker: Hydra reads what follows as overrides, so cnnpl checks them too
    result = run_cli("--", "model=vgg61", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("cnnpl: error: model=vgg61: no such option; did you mean model=vgg19?")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_hydra_setting_hydra_cannot_read_is_one_line_and_makes_no_folder(tmp_path: Path) -> None:
    result = run_cli("data=shapes", "hydra.run.dir=~/nope", cwd=tmp_path)  # ~ starts a deletion in Hydra's grammar
    assert result.returncode == 2
    assert result.stderr.startswith(  # was "LexerNoViableAltException: hydra.run.dir=~/nope", a caret under it
        "cnnpl: error: cannot read the override 'hydra.run.dir=~/nope': Hydra does not expand a ~ in a folder (it "
        "would make one named ~ here); write hydra.run.dir=$HOME/nope"
    ), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.iterdir())  # the run-folder check made ./~/nope before


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (["pool=max,bogus"], "cnnpl: error: pool=bogus: no such option; the options of pool are "),
        (
            ["seed=0,1", "pool.kernal_size=3,2"],
            "cnnpl: error: pool.kernal_size is not a setting of this config; did you",
        ),
        (["model=vgg61,simple_cnn"], "cnnpl: error: model=vgg61: no such option; did you mean model=vgg19? "),
        # what a run checks before building the network, checked for every job before the first trains
        (
            ["optimizer.lr=0.001,-1"],
            "cnnpl: error: optimizer.lr must be >= 0, got -1 (in the sweep's job with optimizer.lr=-1)",
        ),
        (["seed=0,-1"], "cnnpl: error: seed must be an integer in [0, 4294967295] (NumPy's range), got -1 (in the "),
        (["scheduler=onecycle", "scheduler.pct_start=0.3,2"], "(in the sweep's job with scheduler.pct_start=2)"),
        (  # true as typed, in the message and in the job's name (Hydra's sweep writes True)
            ["act=gelu", "act.approximate=none,true"],
            "cnnpl: error: act.approximate must be none or tanh, got true (act 'gelu') (in the sweep's job with "
            "act.approximate=true)",
        ),
        (["trainer.max_epochs=1,1.5"], "cnnpl: error: trainer.max_epochs must be an integer, got 1.5 (in the sweep"),
        (["data.batch_size=32,0"], "(in the sweep's job with data.batch_size=0)"),
        (["+trainer.accumulate_grad_batches=1,0"], "(in the sweep's job with +trainer.accumulate_grad_batches=0)"),
        # each job's network, built for the data's shape where the data module knows it without its files
        (
            ["pool.kernel_size=2,4"],
            "cnnpl: error: model=simple_cnn cannot take 3x32x32 images: layer features.block3.pool (MaxPool) cannot "
            "take input (128, 3, 3): kernel 4 (span 4 with "
            "dilation 1) is larger than the input 3 padded by 0 on each side; it fits without pool.kernel_size=4: "
            "leave it to the model (pool.kernel_size=null) (in the sweep's job with pool.kernel_size=4)",
        ),
        (["data.image_size=32,8"], "cannot take input (64, 1, 1): kernel 2 (span 2 with dilation 1) is larger than"),
        # augmentation against the images' side, and the validation split against the count: job #0 trained before
        (["data.cutout=8,40"], "cnnpl: error: data.cutout=40 is not smaller than the (32, 32) images"),
        (["data.val_split=0.2,0.999"], "leaving none to train on: use a smaller data.val_split or more training"),
        # the network's parameters for the optimizer, and a lookahead on a run without an end: job #0 trained before
        (["optimizer=muon", "model=simple_cnn_bn", "conv=conv2d,tiled"], "(in the sweep's job with conv=tiled)"),
        (
            ["+callbacks.la._target_=cnnpl.callbacks.Lookahead", "trainer.max_epochs=1,-1"],
            "cnnpl: error: callbacks.la ramps its decay over the whole run, which trainer.max_epochs=-1 leaves",
        ),
        # the network's parts the callbacks name, in each job's network: job #0 trained before
        (
            ["model=simple_cnn,lenet5", "callbacks.feature_maps.layers=[features.block2]"],
            "cnnpl: error: callbacks.feature_maps.layers: LeNet5 has no layer 'features.block2'",
        ),
        (
            [
                "model=simple_cnn,lenet5",
                "callbacks=[minimal,freeze]",
                "callbacks.freeze.epochs=1",
                "callbacks.freeze.parameters=[net.features.block1]",
            ],
            "cnnpl: error: callbacks.freeze.parameters: net.features.block1 not in the model; ",
        ),
    ],
)
def test_a_sweep_with_a_bad_value_ends_with_one_clear_message(tmp_path: Path, sweep: list[str], message: str) -> None:
    # each swept value is composed before Hydra starts the sweep: its own error is several lines, exit 1
    result = run_cli("-m", *TINY, *sweep, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "sweep").exists()


NEEDS_LAM = (
    "import cnnpl\n"
    "from torch import nn\n\n\n"
    "@cnnpl.register('pool', 'needs_lam')\n"
    "class NeedsLam(nn.MaxPool2d):\n"
    "    def __init__(self, lam: float, kernel_size: int = 2, stride: int | None = None, padding: int = 0):\n"
    "        super().__init__(kernel_size, stride, padding)\n"
)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (
            ["pool=max,needs_lam"],  # no value for its lam: the first job would have trained, the second failed
            "cnnpl: error: pool 'needs_lam' needs a value for pool.lam (it has no default); set it on the command "
            "line: pool.lam=... (in the sweep's job with pool=needs_lam)",
        ),
        (
            ["pool=needs_lam", "pool.lam=0.5,abc"],
            "cnnpl: error: pool.lam must be a number, got 'abc' (pool 'needs_lam') (in the sweep's job with "
            "pool.lam=abc)",
        ),
    ],
)
def test_a_sweep_job_whose_component_settings_cannot_work_is_refused_before_any_job(
    tmp_path: Path, sweep: list[str], message: str
) -> None:
    (tmp_path / "needs_lam.py").write_text(NEEDS_LAM)
    args = ["-m", *TINY, "plugins=[./needs_lam.py]", *sweep, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == message
    assert not (tmp_path / "sweep").exists()


def test_compositions_share_the_config_store_and_still_see_what_is_stored_later() -> None:
    # each composition (111 for --help) deep-copied the ConfigStore with every generated config in it
    import copy

    from hydra._internal.config_repository import CachingConfigRepository, ConfigRepository
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_store import ConfigStore

    from cnnpl.config import _unstore

    cfg = cnnpl.compose(["model=vgg16", "pool=mixed"])  # installs the sharing copy (register_component_configs)
    store = ConfigStore.instance()
    original = ConfigRepository(create_config_search_path(None))
    repository = CachingConfigRepository(original)
    [structured] = [src for src in repository.delegate.sources if src.scheme() == "structured"]
    assert structured.store is store and repository.delegate is not original  # only the store is shared
    assert repository.delegate.sources[0] is not original.sources[0]
    snapshot = copy.deepcopy(store)  # anything else that copies the store still gets a copy
    assert snapshot is not store and snapshot.repo.keys() == store.repo.keys()
    store.store(group="cnnpl_test_later", name="late", node={"answer": 42}, provider="test")
    try:
        assert repository.load_config("cnnpl_test_later/late").config.answer == 42
    finally:
        _unstore(store, "cnnpl_test_later", "late")
        store.repo.pop("cnnpl_test_later", None)
    assert cnnpl.compose(["model=vgg16", "pool=mixed"]) == cfg


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pool=maxx", "--help"], "cnnpl: error: pool=maxx: no such option; did you mean pool=max? "),
        (["pool.kernal_size=3", "--cfg", "job"], "cnnpl: error: pool.kernal_size is not a setting of this config; "),
    ],
)
def test_help_and_cfg_with_a_bad_override_end_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, cwd=tmp_path)  # Hydra's: a traceback for --help, a list of options for --cfg
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cfg_job_still_shows_a_config_with_a_value_to_fill_in(tmp_path: Path) -> None:
    (tmp_path / "needs_lam.py").write_text(NEEDS_LAM)
    result = run_cli("plugins=[./needs_lam.py]", "pool=needs_lam", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "lam: ???" in result.stdout


def test_missing_cifar10_explains_how_to_fix_it(cli, tmp_path: Path) -> None:
    result = cli(f"data.root={tmp_path / 'empty'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("cnnpl: error: CIFAR-10 not found under")
    assert "data.root=" in lines[-1] and "data=shapes" in lines[-1]


@pytest.mark.slow
def test_multirun_sweep_gives_each_job_its_own_directory_and_continues_in_it(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli("-m", *TINY, "pool=max,avg", "test=false", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    pools = [(job / ".hydra" / "overrides.yaml").read_text() for job in jobs]
    assert "pool=max" in pools[0] and "pool=avg" in pools[1]
    assert all((job / "checkpoints" / "last.ckpt").is_file() for job in jobs)
    # the same folder again: a new sweep is refused before Hydra rewrites the first one's records
    records = contents(sweep)
    again = run_cli("-m", *TINY, "pool=max,avg", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().startswith(f"cnnpl: error: hydra.sweep.dir '{sweep}' already holds an earlier sweep's")
    assert contents(sweep) == records
    # continuing it: job 0 resumes, job 1 (as if the sweep had stopped before it saved anything) starts over
    for path in jobs[1].glob("checkpoints/*.ckpt"):
        path.unlink()
    args = ["-m", *TINY, "pool=max,avg", "test=false", "ckpt_path=last", f"hydra.sweep.dir={sweep}"]
    continued = run_cli(*args, cwd=tmp_path, timeout=400)
    assert continued.returncode == 0, continued.stderr[-3000:]
    log = (jobs[1] / "cnnpl.log").read_text()
    assert f"no checkpoint in {jobs[1] / 'checkpoints'} yet, so this job of the sweep starts from the beginning" in log
    assert (jobs[1] / "checkpoints" / "last.ckpt").is_file()
    assert (jobs[1] / ".attempt-1" / "config.yaml").is_file()  # the discarded attempt's files, kept apart
    assert "ckpt_path=last" in (jobs[0] / ".hydra-2" / "overrides.yaml").read_text()
    assert (sweep / "multirun-2.yaml").read_bytes() == records[sweep / "multirun.yaml"]


@pytest.mark.parametrize("override", ["logger=null", "+callbacks=NULL", "experiment=Null"])
def test_compose_refuses_null_for_an_optional_group_and_points_to_tilde(override: str) -> None:
    group = override.split("=")[0].lstrip("+")
    with pytest.raises(cnnpl.CnnplError, match=f"cannot unset the config group '{group}'; .* write ~{group}"):
        cnnpl.compose([override])


@pytest.mark.parametrize(
    ("override", "message"),
    [  # were Hydra's "Config group override must be a string or a list. Got int", or "argument of type 'int' is
        # not iterable" from inside Hydra; pool=[max,avg] merged the two options into one without a word
        ("pool=1", r"^'pool=1': the options of pool are names \(avg, gated, .*, \.\.\.\), not numbers or true/false; "),
        ("pool=[1,2]", r"^'pool=\[1,2\]': the options of pool are names "),
        ("callbacks=[default,1]", r"^'callbacks=\[default,1\]': the options of callbacks are names "),
        ("logger=false", r"^'logger=false': the options of logger are names \(csv, tensorboard\), .*: logger=<name>, "),
    ],
)
def test_a_group_given_no_option_name_is_one_line(override: str, message: str) -> None:
    with pytest.raises(cnnpl.CnnplError, match=message):
        cnnpl.compose([override])
    # Hydra's own ways stay (helper-134): options that are parts of a whole merged in order, a mapping merged into
    # the option, a list of one
    assert cnnpl.compose(["trainer=[default,ddp_cpu]"]).trainer == cnnpl.compose(["trainer=ddp_cpu"]).trainer
    assert cnnpl.compose(["trainer={max_epochs:3}"]).trainer.max_epochs == 3
    assert cnnpl.compose(["model=[resnet18]"]).model.name == "resnet18"
    assert "pool" not in cnnpl.compose(["pool=[]"])  # as ~pool: the architecture's own pooling


@pytest.mark.parametrize(
    ("override", "message"),
    [  # helper-141: pool=[max,avg] was avg without a word (with -m: "Launching 1 jobs"); model=[] a traceback
        (
            "pool=[max,avg]",
            "'pool=[max,avg]' would merge 2 options of pool into one (avg, with settings of the others); choose one "
            "(pool=avg), or train each in a sweep: -m pool=max,avg",
        ),
        (
            "model=[vgg16,simple_cnn,vgg16]",
            "'model=[vgg16,simple_cnn,vgg16]' would merge 2 options of model into one (vgg16, with settings of "
            "the others); choose one (model=vgg16), or train each in a sweep: -m model=vgg16,simple_cnn",
        ),
        (
            "model=[]",
            "'model=[]' chooses no option of model, which every run needs; choose one: model=<name> (python -m cnnpl "
            "--help lists them)",
        ),
        ("data=[]", "'data=[]' chooses no option of data, which every run needs; "),
    ],
)
def test_a_list_of_options_for_one_component_is_one_line(override: str, message: str) -> None:
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.compose([override])
    assert str(err.value).startswith(message)


def test_a_list_for_a_group_of_settings_is_one_line() -> None:
    # helper-130: "Error merging override callbacks.filters=[1,2]: Cannot merge DictConfig with ListConfig"
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.compose(["callbacks.filters=[1,2]"])
    assert str(err.value) == (
        "callbacks.filters=[1,2]: callbacks.filters is a group of settings, which a list cannot replace; set one of "
        "them (callbacks.filters.<setting>=...)"
    )
    with pytest.raises(cnnpl.CnnplError, match=r"^\+\+callbacks\.filters=\[1,2\]: callbacks\.filters is a group of "):
        cnnpl.compose(["++callbacks.filters=[1,2]"])
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-149: a list inside a mapping given was told "is a list"
        cnnpl.compose(["callbacks={filters:[1]}"])
    assert str(err.value).startswith("callbacks={filters:[1]}: callbacks is a group of settings, which a list cannot")


@pytest.mark.parametrize("override", ["model=", "data=null", "optimizer=null"])
def test_compose_refuses_null_for_a_required_group_and_asks_for_an_option(override: str) -> None:
    group = override.split("=")[0]
    with pytest.raises(cnnpl.CnnplError, match=f"cannot unset the config group '{group}'; choose an option: {group}="):
        cnnpl.compose([override])


@pytest.mark.parametrize(
    ("override", "meant"), [("+ckpt_pth=last", "ckpt_path"), ("+fitt=false", "fit"), ("+seedd=3", "seed")]
)
def test_a_misspelt_top_level_setting_added_with_plus_is_refused(override: str, meant: str) -> None:
    # helper-127: each trained a fresh run from scratch (exit 0), the setting meant left at its default
    from cnnpl.config import check_group_overrides

    with pytest.raises(cnnpl.CnnplError) as err:
        check_group_overrides(["data=shapes", override])
    key = override.partition("=")[0].lstrip("+")
    assert str(err.value) == (
        f"{override!r} adds a top-level setting {key!r} that nothing reads; did you mean {meant}? (written without "
        f"the +: {meant}=...)"
    )
    check_group_overrides(["+note=run-1"])  # a key of a name of its own: kept in the run's config


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("hydra.run.dirr=/x", "hydra.run.dirr is not a setting of Hydra; did you mean hydra.run.dir?"),
        ("hydra.job.chdir=maybe", "hydra.job.chdir must be true or false, got 'maybe'"),
        (
            "+hydra.run.dirr=/x",
            "'+hydra.run.dirr=/x' adds hydra.run.dirr, which Hydra never reads; did you mean hydra.run.dir? (written "
            "without the +: hydra.run.dir=...)",
        ),
        (  # helper-141: "Input config does not have a `_target_` field" (in a sweep, when Hydra started its launcher)
            "hydra.launcher=joblib",
            "hydra.launcher=joblib: hydra.launcher holds the settings of Hydra's hydra/launcher group; choose one of "
            "its options with hydra/launcher=joblib (python -m cnnpl --hydra-help lists them)",
        ),
        (  # and in a sweep, Hydra's several lines; the group was read as "hydra", the option as "launcher/joblib"
            "hydra/launcher=joblib",
            "hydra/launcher=joblib: no such option; the options of hydra/launcher are basic",
        ),
        (  # helper-143: a mapping of settings is not a group (was told "hydra/sweep=/x")
            "hydra.sweep=/x",
            "Error merging override hydra.sweep=/x: Invalid type assigned: str is not a subclass of SweepDir",
        ),
        (  # helper-143: Hydra's "Unexpected type for root: NoneType" (no experiment sets the sweeper's params)
            "+hydra.sweeper.params.pool='max,avg'",
            "+hydra.sweeper.params.pool='max,avg': Hydra cannot set hydra.sweeper.params from the command line while "
            "no config sets it; sweep on the command line instead: -m pool=max,avg",
        ),
        (  # helper-143: joblib's setting on the basic launcher was told only the basic launcher's settings
            "hydra.launcher.n_jobs=2",
            "hydra.launcher.n_jobs is not a setting of Hydra; the settings of hydra.launcher are _target_; a setting "
            "of another launcher takes that launcher, chosen with hydra/launcher=<option> (python -m cnnpl "
            "--hydra-help lists those installed)",
        ),
        (  # Hydra's "Cannot convert 'dict' to string: '{}'" where a config sets the sweeper's params
            "+hydra.sweeper.params.data.batch_size='64,128'",
            "+hydra.sweeper.params.data.batch_size='64,128': Hydra reads the dots of a setting in hydra.sweeper.params "
            "as nesting; sweep on the command line instead: -m data.batch_size=64,128",
        ),
        (  # and "Sweeping over Hydra's configuration is not supported"
            "hydra.sweeper.params.seed=3,4",
            "hydra.sweeper.params.seed=3,4: Hydra sweeps none of its own settings; sweep on the command line instead: "
            "-m seed=3,4",
        ),
        (  # and "'NoneType' object has no attribute 'get'"
            "hydra.sweeper.params={pool:max}",
            "hydra.sweeper.params={pool:max}: Hydra cannot set hydra.sweeper.params from the command line while no "
            "config sets it; sweep on the command line instead: -m pool=max",
        ),
    ],
)
@pytest.mark.parametrize("sweep", [False, True])
def test_hydras_own_settings_misspelt_or_of_the_wrong_kind_are_one_line(
    tmp_path: Path, override: str, said: str, sweep: bool
):
    # helper-127: Hydra's six lines, whose advice (+hydra.rundir=...) was then kept and never read
    from cnnpl.cli import prepare

    folder = (
        [f"hydra.sweep.dir={tmp_path / 'run'}", "-m", "seed=0,1"] if sweep else [f"hydra.run.dir={tmp_path / 'run'}"]
    )
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare(["data=shapes", override, *folder])
    assert str(err.value).startswith(said)
    assert not (tmp_path / "run").exists()
    prepare(["data=shapes", "+hydra.job.env_set.MY_VAR=1", "--cfg", "job"])  # a mapping of one's own: kept


@pytest.mark.parametrize("sweep", [False, True])
def test_a_mistake_beside_a_hydra_setting_is_one_line(tmp_path: Path, sweep: bool) -> None:
    # helper-143: with any hydra.* setting, pool=maxx was Hydra's traceback (the check of Hydra's groups composed
    # the overrides outside the one-line conversion)
    from cnnpl.cli import prepare

    folder = ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"] if sweep else [f"hydra.run.dir={tmp_path / 'r'}"]
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare(["data=shapes", "pool=maxx", "hydra.job.chdir=true", *folder])
    assert str(err.value).startswith("pool=maxx: no such option; did you mean pool=max?")
    if sweep:  # a Hydra setting swept is Hydra's to refuse (it was told "add --multirun", with -m given)
        args = ["data=shapes", "hydra.job.chdir=true,false", *folder]
        assert sorted(prepare(args)) == sorted(args)


@pytest.mark.parametrize(
    ("override", "values"),
    [
        ("+hydra.sweeper.params.data.batch_size='64,128'", "64,128"),  # Hydra: "Cannot convert 'dict' to string"
        ("+hydra.sweeper.params.data.batch_size=64,128", "64,128"),  # Hydra: "Sweeping over Hydra's configuration"
        # helper-145: was told "to add the key, write +hydra.sweeper.params.data.batch_size=<value>", refused above
        ("hydra.sweeper.params={seed:'1,2',data.batch_size:'64,128'}", "64,128"),  # (note 45: was <value>,<value>)
        # note 45: a nested mapping was told "-m data=<value>,<value>"; a mapping for one setting was Hydra's "Cannot
        # convert 'dict' to string"
        ("hydra.sweeper.params={data:{batch_size:'64,128'}}", "64,128"),
        ("+hydra.sweeper.params.data={batch_size:'64,128'}", "64,128"),
        ("hydra.sweeper.params.data={batch_size:[64,128]}", "64,128"),
        # helper-147: Python's words (None, True, "[24, 28]") where an override needs null, true, [24,28]
        ("hydra.sweeper.params={data:{batch_size:null}}", "null"),
        ("hydra.sweeper.params={data:{batch_size:[[24,28],[28]]}}", "[24,28],[28]"),
        ("hydra.sweeper.params={data:{batch_size:'a b'}}", "'a b'"),
    ],
)
def test_adding_a_sweep_to_an_experiments_sweep_is_one_line_with_the_override_that_does(
    tmp_path: Path, override: str, values: str
) -> None:
    from cnnpl.cli import prepare

    words = ["-m", "experiment=pooling_study", "data=shapes", f"hydra.sweep.dir={tmp_path / 's'}"]
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare([*words, override])
    assert str(err.value).endswith(f"sweep on the command line instead: -m data.batch_size={values}")
    assert not (tmp_path / "s").exists()
    for fine in ("data.batch_size=64,128", "hydra.sweeper.params.seed='3,4'", "~hydra.sweeper.params.seed"):
        assert prepare([*words, fine]) == [*words, fine]  # the advice, a sweep replaced, a sweep dropped


def test_a_second_option_of_a_group_added_with_plus_is_one_line_with_the_fix() -> None:
    # helper-127: Hydra's "To override a value use 'override callbacks: minimal'", a defaults list's syntax
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.compose(["+callbacks=minimal"])
    assert str(err.value) == (
        "+callbacks=minimal adds a second option to callbacks, which has one; choose it without the +: "
        "callbacks=minimal"
    )


@pytest.mark.parametrize("override", ["hydra=1", "+hydra=x"])
def test_a_value_for_hydra_itself_is_one_line(override: str) -> None:
    # Hydra: "Config group override must be a string or a list. Got int"; hydr=1 suggests "hydra", which led here
    from cnnpl.config import check_group_overrides

    with pytest.raises(cnnpl.CnnplError) as err:
        check_group_overrides(["data=shapes", override])
    assert str(err.value) == (
        f"{override!r}: hydra holds Hydra's own settings and takes no value; set one of them, such as "
        "hydra.run.dir=<folder> (python -m cnnpl --cfg hydra shows them)"
    )


def test_a_sweep_an_experiment_sets_is_checked_job_by_job_before_the_first_trains(tmp_path: Path) -> None:
    from cnnpl.cli import prepare

    # experiment=pooling_study sweeps pool= in its hydra.sweeper.params: jobs max..mixed_learned trained, then
    # the sweep stopped at pool=gated
    words = ["-m", "experiment=pooling_study", "data=shapes", "optimizer=muon", "optimizer.normalize_filters=false"]
    with pytest.raises(
        CnnplError, match=r"features\.block1\.pool\.mask \(pool=gated\).+\(in the sweep's job with pool=gated\)$"
    ):
        prepare([*words, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert not (tmp_path / "sweep").exists()
    # the command line's own sweep of the setting replaces the config's (as Hydra's sweeper does)
    prepare([*words, "pool=max,avg", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    # an experiment swept on the command line sets no lists (Hydra composes without it): two jobs, no pool list
    words[1] = "experiment=pooling_study,keras_cifar10"
    prepare([*words, f"hydra.sweep.dir={tmp_path / 'sweep2'}"])


@pytest.mark.parametrize("flag", [["--cfg", "job"], ["--cfg=job"], ["-cjob"], ["--help"], ["--info"]])
def test_a_command_that_runs_nothing_makes_no_run_folder(tmp_path: Path, flag: list[str]) -> None:
    from cnnpl.cli import prepare

    for option in ("hydra.run.dir", "hydra.sweep.dir"):  # the writability check made it, empty
        sweep = ["-m"] if option == "hydra.sweep.dir" and "job" not in "".join(flag) else []
        prepare([*sweep, "data=shapes", f"{option}={tmp_path / 'shown'}", *flag])
        assert not (tmp_path / "shown").exists()
    for run in ([], ["-cn", "train"]):  # a run still has its folder checked (-cn, the config's name, too)
        with pytest.raises(CnnplError, match=r"cannot be written"):
            prepare([*run, "data=shapes", "hydra.run.dir=/proc/cnnpl-run"])


@pytest.mark.parametrize("key", sorted(cnnpl.config.REQUIRED_KEYS))
def test_deleting_what_every_run_needs_is_refused_in_one_line(key: str) -> None:
    with pytest.raises(cnnpl.CnnplError) as err:  # was Hydra's traceback ("Key 'seed' is not in struct")
        cnnpl.compose([f"~{key}"])
    assert str(err.value).startswith(f"'~{key}' deletes {key}, which every run needs; ")
    cnnpl.compose(["~pool", "~fit"])  # these leave the layer to the architecture, and fit to true


def test_tilde_drops_a_group_and_none_stays_an_option() -> None:
    cfg = cnnpl.compose(["~logger", "scheduler=none"])
    assert "logger" not in cfg and not cfg.scheduler


def test_hydra_searchpath_is_composed_with_the_config(tmp_path: Path) -> None:
    from cnnpl.cli import prepare

    (tmp_path / "my_conf" / "data").mkdir(parents=True)
    (tmp_path / "my_conf" / "data" / "my_images.yaml").write_text("defaults:\n  - shapes\n  - _self_\nnum_train: 40\n")
    args = [f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]", "data=my_images", f"hydra.run.dir={tmp_path / 'run'}"]
    assert prepare(args) == args  # docs/howto/own-images.md's way to add a config folder
    with pytest.raises(cnnpl.CnnplError, match=r"^data=my_images: no such option; "):
        prepare(["data=my_images"])


def test_help_lists_the_options_of_a_hydra_searchpath_folder(tmp_path: Path) -> None:
    # note 39: --help hydra.searchpath=[...] listed cnnpl's options alone (Hydra lists its starting search path)
    (tmp_path / "my_conf" / "data").mkdir(parents=True)
    (tmp_path / "my_conf" / "data" / "my_images.yaml").write_text("defaults:\n  - shapes\n  - _self_\nnum_train: 40\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"
    shown = run_cli("--help", searchpath, cwd=tmp_path, env={"PYTHONWARNINGS": "default"})
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "\ndata: cifar10, my_images, shapes\n" in shown.stdout
    chosen = run_cli("--help", searchpath, "data=my_images", cwd=tmp_path, env={"PYTHONWARNINGS": "default"})
    assert chosen.returncode == 0 and chosen.stderr == "", chosen.stderr  # no "validated against ConfigStore schema"
    assert "\ndata: cifar10, my_images, shapes\n" in chosen.stdout and "  num_train: 40\n" in chosen.stdout
    assert "\ndata: cifar10, shapes\n" in run_cli("--help", cwd=tmp_path).stdout
    assert not (tmp_path / "outputs").exists()


def test_a_relative_data_root_in_a_job_that_hydra_moved_says_so(tmp_path: Path) -> None:
    # helper-128: the sweep's check found mydata/ where the command started, the job (hydra.job.chdir=true) looked
    # for it in its own folder, and the message did not say why
    (tmp_path / "mydata" / "train").mkdir(parents=True)
    (tmp_path / "mydata" / "test").mkdir()
    args = ["-m", "seed=0", "hydra.job.chdir=true", "data.root=mydata", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli(*args, cwd=tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last.startswith("cnnpl: error: CIFAR-10 not found under ")
    assert last.endswith(
        "; data.root=mydata is relative, and hydra.job.chdir=true runs the job in its output folder: give an "
        "absolute path, or data.root='${hydra:runtime.cwd}/mydata'"
    )


def test_a_config_that_sets_a_sweep_run_without_m_is_warned_about(tmp_path: Path, monkeypatch, capsys) -> None:
    # helper-128: experiment=pooling_study without -m trained one run (seed 42, pool=max) without a word
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    prepare(["experiment=pooling_study", "data=shapes", f"hydra.run.dir={tmp_path / 'run'}"])
    assert capsys.readouterr().err == (
        "cnnpl: warning: experiment=pooling_study sets a sweep (seed, pool) that only runs with -m: this is one run, "
        "with the config's own values; add -m to run the sweep\n"
    )
    prepare(["-m", "experiment=pooling_study", "data=shapes", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    prepare(["data=shapes", f"hydra.run.dir={tmp_path / 'other'}"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["command line", "config"])
def test_hydra_mode_multirun_sweeps_as_m_does_checked_and_claimed_as_a_sweep(
    tmp_path: Path, monkeypatch, where
) -> None:
    # note 43: hydra.mode=MULTIRUN (Hydra sweeps without -m) was checked as one run: "Ambiguous value for argument
    # 'pool=max,avg' ... add --multirun", and a config's mode with hydra.sweep.dir: "is a sweep's folder: add -m"
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n")
    mode = (
        ["hydra.mode=MULTIRUN"]
        if where == "command line"
        else [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=mine"]
    )
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare([*mode, "data=shapes", "pool=max,maxx", f"hydra.sweep.dir={tmp_path / 'refused'}"])
    assert str(err.value).startswith("pool=maxx: no such option; did you mean pool=max?")
    assert str(err.value).endswith("(in the sweep's job with pool=maxx)")
    assert not (tmp_path / "refused").exists()
    for swept in (["pool=max,avg"], []):  # a sweep of one job
        args = [*mode, "data=shapes", *swept, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
        assert prepare(args) == ["-m", *args]
    assert prepare([*mode, "data=shapes", "--cfg", "job"]) == ["--cfg", "job", *mode, "data=shapes"]  # Hydra's
    assert not list(tmp_path.glob("outputs"))
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-146: "a sweep (-m) writes into ...", no -m typed
        prepare([*mode, "data=shapes", f"hydra.run.dir={tmp_path / 'run'}"])
    assert str(err.value) == (
        f"hydra.run.dir={tmp_path / 'run'} is a single run's folder, and this command sweeps (-m or "
        f"hydra.mode=MULTIRUN) into hydra.sweep.dir: give hydra.sweep.dir={tmp_path / 'run'}"
    )
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-145: the advice named hydra.run.dir for the config's mode
        prepare([*mode, "data=shapes", f"output_dir={tmp_path / 'out'}"])
    assert str(err.value).endswith(f"hydra.sweep.dir={tmp_path / 'out'} instead (each job gets a subfolder)")
    claimed = prepare([*mode, "data=shapes"])  # the sweep's folder the config names, by the time
    assert claimed[:-1] == ["-m", *mode, "data=shapes"] and claimed[-1].startswith("hydra.sweep.dir=outputs/multirun/")


def test_a_sweep_whose_jobs_share_one_checkpoint_folder_is_refused_before_any_trains(tmp_path: Path) -> None:
    # helper-145: callbacks.checkpoint.dirpath=/ckpts in a sweep: the second job found the first's checkpoints and
    # stopped, after the first had trained
    from cnnpl.cli import prepare

    folder = tmp_path / "ckpts"
    sweep = ["-m", "data=shapes", "pool=max,avg", f"hydra.sweep.dir={tmp_path / 's'}"]
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare([*sweep, f"callbacks.checkpoint.dirpath={folder}"])
    assert str(err.value) == (
        f"callbacks.checkpoint.dirpath={folder} is one folder for the sweep's jobs (the one with pool=max and the one "
        "with pool=avg): each would find the one before's checkpoints and stop; leave dirpath out (each job's "
        f"${{output_dir}}/checkpoints) or name a folder a job, such as callbacks.checkpoint.dirpath='{folder}/"
        "${hydra:job.num}'"
    )
    assert not (tmp_path / "s").exists() and not folder.exists()
    advised = f"callbacks.checkpoint.dirpath='{folder}/${{hydra:job.num}}'"
    assert prepare([*sweep, advised]) == [*sweep, advised]
    one_job = [
        "-m",
        "data=shapes",
        "pool=max",
        f"callbacks.checkpoint.dirpath={folder}",
        f"hydra.sweep.dir={tmp_path / 'one'}",
    ]
    assert prepare(one_job) == one_job
    # helper-146: jobs that only test read the folder; relative folders are a job's own where each job runs in its own
    tests = [*sweep, "fit=false", "ckpt_path=last", f"callbacks.checkpoint.dirpath={folder}"]
    assert prepare(tests) == tests
    own_folders = [*sweep, "callbacks.checkpoint.dirpath=ckpts", "hydra.job.chdir=true"]
    assert prepare(own_folders) == own_folders
    with pytest.raises(cnnpl.CnnplError, match=r"^callbacks.checkpoint.dirpath=ckpts is one folder for the sweep's"):
        prepare([*sweep, "callbacks.checkpoint.dirpath=ckpts"])


def test_a_configs_sweep_without_m_is_checked_job_by_job_not_at_its_base_values(tmp_path: Path, monkeypatch) -> None:
    # helper-145: an experiment with hydra.mode: MULTIRUN whose sweep sets a value its base config leaves unfit
    # ("fast") was refused as one run, "optimizer.lr must be a number, got 'fast'"; with -m it ran its 2 jobs
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "lrs.yaml").write_text(
        "# @package _global_\noptimizer:\n  lr: fast\nhydra:\n  mode: MULTIRUN\n  sweeper:\n    params:\n"
        "      optimizer.lr: 0.1,0.01\n"
    )
    args = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=lrs", "data=shapes"]
    claimed = prepare(args)  # no folder named: the config's mode found where the run's config is composed
    assert claimed[:-1] == ["-m", *args] and claimed[-1].startswith("hydra.sweep.dir=outputs/multirun/")


def test_two_commands_started_in_the_same_second_get_two_folders(tmp_path: Path, monkeypatch) -> None:

    from cnnpl import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    instant = datetime.datetime(2026, 12, 5, 7, 30, 1)
    monkeypatch.setattr(cli, "_clock", lambda: instant)
    run = Path("outputs/2026-12-05/07-30-01")
    # was: both commands got hydra.run.dir=outputs/2026-12-05/07-30-01, the second writing over the first's files
    monkeypatch.setattr(cli, "_claimed_run_dir", None)  # restored after the test
    assert cli.prepare(["data=shapes"]) == ["data=shapes", f"hydra.run.dir={run}"]
    # what a refused command removes: its folder, and those above it that it made (the first command of the day)
    assert cli._claimed_run_dir == (tmp_path / run, (tmp_path / run.parent, tmp_path / "outputs"))
    assert cli.prepare(["data=shapes"]) == ["data=shapes", f"hydra.run.dir={run}-2"]
    assert cli._claimed_run_dir == (tmp_path / f"{run}-2", ())
    assert cli.prepare(["data=shapes"]) == ["data=shapes", f"hydra.run.dir={run}-3"]
    sweep = Path("outputs/multirun/2026-12-05/07-30-01")
    assert cli.prepare(["-m", "seed=0,1", "data=shapes"])[-1] == f"hydra.sweep.dir={sweep}"
    assert cli.prepare(["-m", "seed=0,1", "data=shapes"])[-1] == f"hydra.sweep.dir={sweep}-2"

    def made() -> list[str]:  # the folders made, but those holding another
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not any(p.glob("*/")))

    assert made() == [f"{run}", f"{run}-2", f"{run}-3", f"{sweep}", f"{sweep}-2"]
    # a folder of the user's, a flag that runs nothing, a refused command, a launcher's process: nothing made
    given = ["data=shapes", f"hydra.run.dir={tmp_path / 'mine'}"]
    assert cli.prepare(given) == given
    assert cli.prepare(["data=shapes", "--cfg", "job"]) == ["--cfg", "job", "data=shapes"]  # Hydra's flags first
    with pytest.raises(CnnplError, match="no such option"):
        cli.prepare(["pool=maxx"])
    for refused in ("hydra.job.chdir=maybe", "hydra/launcher=nope"):  # Hydra's settings compose first (helper-127)
        with pytest.raises(CnnplError):
            cli.prepare(["data=shapes", refused])
    with_chdir = cli.prepare(["data=shapes", "hydra.job.chdir=true"])  # Hydra's settings that compose: a folder
    assert with_chdir == ["data=shapes", "hydra.job.chdir=true", f"hydra.run.dir={run}-4"]
    Path(with_chdir[-1].partition("=")[2]).rmdir()
    # torchrun: the time in the folder is refused (each process would read its own), not hidden by a -N folder
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # trainer=ddp_cpu's devices: torchrun's processes
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(CnnplError, match=r"^torchrun started 2 processes, which need one shared output directory"):
            cli.prepare(["data=shapes", "trainer=ddp_cpu"])
        # hydra.run.dir=<the user's folder>: one for every process, whose record the first writes
        record = ["hydra.output_subdir=null"] if rank == "1" else []
        assert cli.prepare([*given, "trainer=ddp_cpu"]) == [*given, "trainer=ddp_cpu", *record]
    assert made() == ["mine", f"{run}", f"{run}-2", f"{run}-3", f"{sweep}", f"{sweep}-2"]  # mine: checked writable
    # a folder whose name needs quotes is quoted as Hydra reads it
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnpl.overrides import override_value

    for folder in ("outputs/a b/c'd", "/tmp/x-1/07-30-01-2", "runs/été"):
        override = OverridesParser.create().parse_overrides([f"hydra.run.dir={override_value(folder)}"])[0]
        assert override.value() == folder


def test_a_folder_above_the_run_that_cannot_be_looked_into_is_left_to_the_writable_check(monkeypatch) -> None:
    from cnnpl import cli

    def denied(self: Path) -> bool:  # Path.exists on a folder whose parent another user keeps at 0700
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", denied)
    assert cli._absent(Path("/somewhere/outputs/2026-12-06")) is False  # was a traceback: not one the command made


NEEDS_THE_RUN = (
    "from hydra.core.hydra_config import HydraConfig\n"
    "import lightning as L\n\n\n"
    "class NeedsTheRun(L.Callback):  # reads Hydra's run-time config: builds only inside a job\n"
    "    def __init__(self):\n"
    "        self.folder = HydraConfig.get().runtime.output_dir\n\n"
    "    def check_network(self, pl_module):\n"
    "        pass\n"
)


def test_a_sweeps_callback_check_builds_only_callbacks_that_check_the_network(tmp_path: Path, monkeypatch) -> None:
    from cnnpl.train import _network_checking_callbacks

    (tmp_path / "needs_the_run.py").write_text(NEEDS_THE_RUN)
    monkeypatch.syspath_prepend(str(tmp_path))
    registered = [
        "callbacks=[default,freeze]",
        "callbacks.freeze.parameters=[net.features]",
        "callbacks.freeze.epochs=1",
    ]
    cfg = cnnpl.compose([*TINY, *registered, "+callbacks.run._target_=needs_the_run.NeedsTheRun"])
    built = _network_checking_callbacks(cfg)  # was: every callback built, and the sweep refused for this one
    assert sorted(type(c).__name__ for c in built) == [
        "FeatureMapsCallback",
        "FiltersCallback",
        "FreezeAfter",  # a registered component's node: cnnpl.registry.build, which Hydra's get_class logs about
        "GradCAMCallback",
    ]
    assert {c.name for c in built} == {"feature_maps", "filters", "freeze", "gradcam"}


def test_a_registered_callbacks_refusal_under_another_key_names_that_key() -> None:
    from cnnpl.train import _named_callback

    cfg = cnnpl.compose([*TINY, "callbacks=[minimal,freeze]", "callbacks.freeze.parameters=[]"])
    cfg.callbacks.freeze.epochs = 1
    # was: callbacks.freeze.parameters (Hydra's get_class found no class behind cnnpl.registry.build)
    with pytest.raises(CnnplError, match=r"^callbacks\.fw\.parameters must name at least one parameter$"):
        _named_callback(cfg.callbacks.freeze, "fw")


def test_a_run_started_where_its_folder_exists_writes_beside_it(tmp_path: Path) -> None:

    now = datetime.datetime.now()
    taken = []  # every folder the next two minutes would name, each holding another run's file
    for second in range(120):
        instant = now + datetime.timedelta(seconds=second)
        folder = tmp_path / "outputs" / instant.strftime("%Y-%m-%d") / instant.strftime("%H-%M-%S")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "another_run.txt").write_text("kept")
        taken.append(folder)
    result = run_cli(*TINY, "callbacks=minimal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(sorted(p.name for p in folder.iterdir()) == ["another_run.txt"] for folder in taken)
    runs = [folder.with_name(f"{folder.name}-2") for folder in taken if folder.with_name(f"{folder.name}-2").is_dir()]
    assert len(runs) == 1 and (runs[0] / ".hydra" / "config.yaml").is_file(), runs
    assert list((runs[0] / "checkpoints").glob("*.ckpt")), sorted(p.name for p in runs[0].iterdir())


def test_a_run_directory_given_again_keeps_the_first_commands_record(tmp_path: Path, monkeypatch) -> None:
    from cnnpl.cli import _check_run_dir, _keep_earlier_records

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert _keep_earlier_records([f"hydra.run.dir={run}"]) == []  # a new run directory
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra-2").mkdir()
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    assert _keep_earlier_records([f"hydra.run.dir={run}", "ckpt_path=last"]) == ["hydra.output_subdir=.hydra-3"]
    # helper-127: a folder named through an interpolation had its first record replaced, by a refused command too
    monkeypatch.setenv("RUNDIR", str(run))
    assert _keep_earlier_records(["hydra.run.dir=${oc.env:RUNDIR}"]) == ["hydra.output_subdir=.hydra-3"]
    day = tmp_path / "days" / datetime.date.today().strftime("%Y-%m-%d")
    (day / ".hydra").mkdir(parents=True)
    assert _keep_earlier_records([f"hydra.run.dir={day.parent}/${{now:%Y-%m-%d}}"]) == ["hydra.output_subdir=.hydra-2"]
    assert _keep_earlier_records(["hydra.run.dir=${model.name}"]) == []  # only the composed config says which
    shutil.rmtree(day.parent)
    # Lightning's DDP workers: the value quoted, their own output_subdir after it
    worker = [f'hydra.run.dir="{run}"', "hydra.output_subdir=null"]
    assert _keep_earlier_records(worker) == []
    _check_run_dir([f'hydra.run.dir="{run}"'])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no folder named with the quotes
    # torchrun / srun: every process runs the command; only the first writes the new record
    monkeypatch.setenv("RANK", "1")
    assert _keep_earlier_records([f"hydra.run.dir={run}"]) == ["hydra.output_subdir=null"]
    # helper-121: a rank that starts before the first (another node) writes no .hydra/ in a new folder either,
    # where the first would take it for a folder given again (.hydra-2)
    assert _keep_earlier_records([f"hydra.run.dir={tmp_path / 'new'}"]) == ["hydra.output_subdir=null"]


@pytest.mark.parametrize("sweep", [False, True])
def test_output_dir_on_the_command_line_is_refused_for_hydras_run_folder(tmp_path: Path, monkeypatch, sweep) -> None:
    # helper-141: output_dir=<folder> put config.yaml, checkpoints/ and tensorboard/ there, and .hydra/ and cnnpl.log
    # in outputs/<day>/<time>/ (a new one at each command); a sweep's second job found the first's checkpoints
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    option = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *(["-m", "seed=0,1"] if sweep else []), "output_dir=runs/a"])
    assert str(err.value) == (
        "output_dir=runs/a would split the run: its config.yaml, checkpoints and tensorboard/ there, Hydra's .hydra/ "
        f"and cnnpl.log in a folder of their own; choose the run's folder with {option}=runs/a instead"
        + (" (each job gets a subfolder)" if sweep else "")
    )
    assert not list(tmp_path.iterdir())
    # where it is Hydra's folder, or in it, it stays; so does a command that only prints
    assert prepare(["data=shapes", "output_dir=runs/b", "hydra.run.dir=runs/b"])
    assert prepare(["data=shapes", "output_dir=${hydra:runtime.output_dir}/x", "hydra.run.dir=runs/c"])
    assert prepare(["data=shapes", "--cfg", "job", "output_dir=runs/d"])
    # helper-142: no folder is left to the run's own message; the advice is quoted, and a folder given otherwise named
    assert prepare(["data=shapes", "output_dir=", "hydra.run.dir=runs/e"])
    with pytest.raises(CnnplError, match=r"output_dir='a b' .*; choose the run's folder with hydra.run.dir='a b' inst"):
        prepare(["data=shapes", "output_dir=a b"])
    with pytest.raises(CnnplError, match=r"; leave output_dir out: hydra.run.dir=runs/f is the run's folder$"):
        prepare(["data=shapes", "output_dir=runs/g", "hydra.run.dir=runs/f"])
    with pytest.raises(CnnplError, match=r"^output_dir='\$\{hydra:runtime.cwd\}/x' would split the run"):
        prepare(["data=shapes", "output_dir=${hydra:runtime.cwd}/x"])


def test_a_config_folder_that_is_not_there_is_one_line(tmp_path, monkeypatch) -> None:
    # helper-153: Hydra's "Additional config directory '/nonexist' not found" and its hint, 3 lines
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnplError) as err:
        prepare(["--config-dir", str(tmp_path / "nope"), "data=shapes"])
    assert (
        str(err.value) == f"--config-dir {tmp_path / 'nope'}: no such folder; give the folder that holds your configs"
    )
    with pytest.raises(CnnplError) as err:  # helper-154: the shell expands no ~ after =, and Hydra none
        prepare(["--config-dir=~/cfg", "data=shapes"])
    assert str(err.value) == (
        "--config-dir ~/cfg: Hydra does not expand ~; write --config-dir ~/cfg with a space instead of = (the shell "
        "expands it then), or the whole path"
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["hydra.run.dir=null"], "hydra.run.dir names a folder; give a path (hydra.run.dir=<folder>)"),
        (["hydra.run.dir=null", "--cfg", "job"], "hydra.run.dir names a folder; give a path (hydra.run.dir=<folder>)"),
        (["hydra.run.dir={a:1}"], "a mapping is no folder; give hydra.run.dir a path (hydra.run.dir=<folder>)"),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=[a]"],
            "a list is no folder; give hydra.sweep.dir a path (hydra.sweep.dir=<folder>)",
        ),
        (
            ["-m", "seed=0,1", "hydra.sweep.subdir=null"],
            "hydra.sweep.subdir names a folder; give a path (hydra.sweep.subdir=<folder>)",
        ),
        (  # the run's folder was made, then Hydra's traceback
            ["hydra.run.dir=runs/a", "hydra.output_subdir=[1]"],
            "a list is no folder; give hydra.output_subdir a path (hydra.output_subdir=<folder>)",
        ),
    ],
)
def test_a_folder_setting_that_is_no_path_is_refused_before_a_folder_is_made(tmp_path, monkeypatch, args, said) -> None:
    # helper-148: Hydra's traceback ("field 'hydra.run.dir' is not Optional"), after a folder named "null" was made
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    given = next(arg for arg in reversed(args) if arg.startswith("hydra."))
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *args])
    assert str(err.value) == f"{given}: {said}"
    assert not list(tmp_path.iterdir())
    assert prepare(["data=shapes", "hydra.run.dir='null'"])  # quoted: a folder of that name
    assert prepare(["data=shapes", "hydra.run.dir=runs/b", "hydra.output_subdir=null"])  # Hydra's "no record"
    with pytest.raises(CnnplError, match=r"^cannot read the override 'hydra\.run\.dir=\[date\]_run'"):  # (helper-149)
        prepare(["data=shapes", "hydra.run.dir=[date]_run"])


@pytest.mark.parametrize(
    ("arg", "said"),
    [
        ("data.batch_size=${model.nope}", "the config has no setting model.nope to take its value from"),
        (
            "data.batch_size=${oc.env:CNNPL_NOT_SET}",
            "environment variable CNNPL_NOT_SET is not set; set it, or give a default: ${oc.env:CNNPL_NOT_SET,<value>}",
        ),
        (
            "data.batch_size=${oc.envv:X}",
            "no resolver is named oc.envv (oc.env reads an environment variable, now the time: ${now:%H-%M})",
        ),
        (
            "model.channels=[8,${oc.env:CNNPL_NOT_SET}]",
            "environment variable CNNPL_NOT_SET is not set; set it, or give a default: ${oc.env:CNNPL_NOT_SET,<value>}",
        ),
        ("callbacks.checkpoint.dirpath=${model.nope}/x", "the config has no setting model.nope to take its value from"),
        ("hydra.run.dir=${model.nope}", "the config has no setting model.nope to take its value from"),
        ("logger.name=${.nope}", "the config has no setting logger.nope to take its value from"),  # relative
        (  # helper-156: a key Hydra does not have (Hydra's traceback as the run started)
            "callbacks.checkpoint.dirpath=${hydra.runtime.cwdd}/ck",
            "Hydra has no setting hydra.runtime.cwdd; did you mean hydra.runtime.cwd?",
        ),
        (
            "hydra.run.dir=runs/${oc.env:CNNPL_NOT_SET}",
            "environment variable CNNPL_NOT_SET is not set; set it, or give a default: ${oc.env:CNNPL_NOT_SET,<value>}",
        ),
    ],
)
def test_an_interpolation_that_cannot_be_resolved_is_one_line_before_a_folder_is_made(
    tmp_path, monkeypatch, arg, said
) -> None:
    # OmegaConf's traceback when the setting was first read (instantiating the data module), after Hydra had made
    # the run's folder and its cnnpl.log; for hydra.run.dir, Hydra's, before it made one
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNNPL_NOT_SET", raising=False)
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", arg])
    key = arg.partition("=")[0]
    shown = "model.channels[1]=${oc.env:CNNPL_NOT_SET}" if key == "model.channels" else arg
    assert str(err.value) == f"{shown}: {said}"
    assert not list(tmp_path.iterdir())
    with pytest.raises(CnnplError, match=r"^data.batch_size=\$\{model.nope\}: the config has no setting model.nope"):
        prepare(["-m", "data=shapes", "seed=0,1", "data.batch_size=${model.nope}"])  # each job of a sweep
    with pytest.raises(CnnplError, match=r"^hydra.sweep.dir=runs/\$\{model.nope\}: the config has no setting model"):
        prepare(["-m", "data=shapes", "seed=0,1", "hydra.sweep.dir=runs/${model.nope}"])  # helper-152: a traceback


@pytest.mark.parametrize(
    "args",
    [
        ["data.batch_size=${oc.env:CNNPL_SET}", "hydra.run.dir=runs/${oc.env:CNNPL_SET}"],
        ["hydra.run.dir=runs/${model.name}/${now:%H-%M}", "logger.name=b${data.batch_size}"],
        ["logger.name=${oc.env:CNNPL_NOT_SET,fallback}"],
        ["-m", "seed=0,1", "callbacks.checkpoint.dirpath=${hydra.sweep.dir}/ckpts/${seed}"],  # Hydra's, in the job
        ["logger.name=${hydra:job.name}"],  # Hydra's run-time values: the run's to read
        # helper-152: these ran before the check and were refused by its first version
        ["hydra.run.dir=runs/a", "hydra.output_subdir=${oc.env:CNNPL_NOT_SET,null}"],  # null: Hydra keeps no record
        ["+foo=runs/b", "hydra.run.dir=${oc.select:foo}"],  # a key of the config, read with it
        ["-m", "seed=0,1", "+foo=runs/c", "hydra.sweep.dir=${oc.select:foo}"],
        ["--cfg", "job", "hydra.run.dir=runs/${oc.env:CNNPL_NOT_SET}"],  # it only prints
        ["experiment=unread"],  # a config file's key that cnnpl never reads
        ["experiment=own_resolver", "hydra.run.dir=runs/${cnnpl_test_resolver:d}"],  # a plugin's, named by a config
    ],
)
def test_interpolations_the_run_can_resolve_are_left_to_it(tmp_path, monkeypatch, restore_registries, args) -> None:
    from omegaconf import OmegaConf

    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNPL_SET", "64")
    monkeypatch.delenv("CNNPL_NOT_SET", raising=False)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "unread.yaml").write_text(
        "# @package _global_\nnotes:\n  scratch: ${oc.env:CNNPL_NOT_SET}/cache\n"
    )
    (tmp_path / "own_resolver.py").write_text(
        "from omegaconf import OmegaConf\n"
        "OmegaConf.register_new_resolver('cnnpl_test_resolver', lambda x: 'r_' + x, replace=True)\n"
    )
    (tmp_path / "conf" / "experiment" / "own_resolver.yaml").write_text(
        f"# @package _global_\nplugins: [{tmp_path / 'own_resolver.py'}]\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    try:
        assert prepare(["data=shapes", searchpath, *args]) is not None
    finally:
        if OmegaConf.has_resolver("cnnpl_test_resolver"):
            OmegaConf.clear_resolver("cnnpl_test_resolver")


def test_a_folder_interpolation_that_resolves_to_null_is_refused(tmp_path, monkeypatch) -> None:
    # Hydra's traceback ("field 'hydra.run.dir' is not Optional"); note 46
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNNPL_NOT_SET", raising=False)
    for args in (
        ["hydra.run.dir=${oc.env:CNNPL_NOT_SET,null}"],
        ["-m", "seed=0,1", "hydra.sweep.dir=${oc.env:CNNPL_NOT_SET,null}"],
    ):
        key = args[-1].partition("=")[0]
        with pytest.raises(CnnplError) as err:
            prepare(["data=shapes", *args])
        assert str(err.value) == f"{args[-1]} resolves to null, and {key} names a folder; give a path"
    with pytest.raises(CnnplError) as err:  # inside a longer text: the run went to a folder runs/None/x
        prepare(["data=shapes", "hydra.run.dir=runs/${oc.env:CNNPL_NOT_SET,null}/x"])
    assert str(err.value) == (
        "hydra.run.dir=runs/${oc.env:CNNPL_NOT_SET,null}/x: ${oc.env:CNNPL_NOT_SET,null} resolves to null, which the "
        "folder's name would read as None (runs/None/x); give it a value"
    )
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv("CNNPL_NOT_SET", "set")
    assert prepare(["data=shapes", "hydra.run.dir=runs/${oc.env:CNNPL_NOT_SET,null}/x"])


def test_the_outermost_interpolations_of_a_text_are_found() -> None:
    from cnnpl.overrides import interpolations_in

    assert interpolations_in("a/${x}/${oc.env:Y,${z}}") == ["${x}", "${oc.env:Y,${z}}"]
    assert interpolations_in("${oc.create:{a:1}}/b") == ["${oc.create:{a:1}}"]  # a mapping among the arguments
    assert interpolations_in("\\${x}/${now:%H}-${now:%M}") == ["${now:%H}", "${now:%M}"]  # \${x} is escaped
    assert interpolations_in("runs/a") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [  # helper-153: Hydra's lines or traceback, an empty sweep folder left; or no job run, with exit status 0
        (
            ["model.channels=[32,64"],
            "cannot read the override 'model.channels=[32,64': no viable alternative at input '[32,64'; quote a value "
            "that holds spaces, = or ~ ('key=\"a b\"') and close every [ and { "
            "(https://hydra.cc/docs/advanced/override_grammar/basic/)",
        ),
        (["seed=range(0,2,0)"], "seed=range(0,2,0): range() arg 3 must not be zero"),
        (
            ["seed=interval(0,1)"],
            "seed=interval(0,1): Hydra's basic sweeper takes a list of values, not an interval (a sampling sweeper's, "
            "hydra/sweeper=optuna, takes one); list them: seed=0.0,...,1.0",
        ),
        (["seed=range(0,2,0.0)"], "seed=range(0,2,0.0): Invalid range values (start:0, stop:2, step:0)"),
        (["seed=range(0,0)"], "seed=range(0,0) gives no value, so the sweep would run no job"),
        (["pool=glob(zzz*)"], "pool=glob(zzz*) matches no option of pool ("),
        (  # job 0 trained, then job 1 found its checkpoints
            ["seed=0,1", "hydra.sweep.subdir=same"],
            "hydra.sweep.subdir=same names one folder (same) for the sweep's jobs with seed=0 and with seed=1: the "
            "second would find the first's checkpoints; add ${hydra.job.num} (the default), or a swept setting such "
            "as seed_${seed}",
        ),
        (  # helper-156: Hydra's traceback as the sweep started
            ["seed=0,1", "hydra.sweep.dir=sw/${hydra.job.nme}"],
            "hydra.sweep.dir=sw/${hydra.job.nme}: Hydra has no setting hydra.job.nme; did you mean hydra.job.name?",
        ),
        (  # helper-156: Hydra reads the time once for all the jobs
            ["seed=0,1", "hydra.sweep.subdir=${now:%H-%M-%S}"],
            "hydra.sweep.subdir=${now:%H-%M-%S} names one folder (",
        ),
        (  # the sweep dir's time is one for all its jobs
            ["experiment=pooling_study", "trainer.max_epochs=1", "hydra.sweep.subdir=same"],
            "hydra.sweep.subdir=same names one folder (same) for the sweep's jobs with seed=1 pool=max and with "
            "seed=2: ",
        ),
        (
            ["seed=0,1", "hydra.sweep.dir=sw/${now:%H}/${model.name}", "hydra.sweep.subdir=same"],
            "hydra.sweep.subdir=same names one folder (same) for the sweep's jobs with seed=0 and with seed=1: ",
        ),
        (
            ["seed=0,1", "hydra.sweep.subdir=${model.name}"],
            "hydra.sweep.subdir=${model.name} names one folder (simple_cnn) for the sweep's jobs with seed=0 and with "
            "seed=1: ",
        ),
        (  # note 48: each job's traceback as its fit started
            ["seed=0,1", "+callbacks.ft._target_=lightning.pytorch.callbacks.BackboneFinetuning"],
            "callbacks.ft: Lightning's BackboneFinetuning freezes and later unfreezes the LightningModule's `backbone`",
        ),
        (  # glob's jobs are checked before the first trains (job 0, avg, trained before job 1 was refused)
            ["pool=glob(*,exclude=[global_avg_max,global_max,mixed*,lp,gated,stochastic,soft*,max])"],
            "layer features.block1.pool: model 'simple_cnn' calls its pool layers with kernel_size=2, which pool "
            "'global_avg' does not take",
        ),
    ],
)
def test_a_sweep_that_would_fail_or_run_no_job_is_refused_before_its_folder_is_made(
    tmp_path, monkeypatch, args, message
) -> None:
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnplError) as err:
        prepare(["-m", "data=shapes", *args])
    assert str(err.value).startswith(message)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["seed=0,1", "hydra.sweep.subdir=s${seed}"],
        ["seed=0,1", "hydra.sweep.subdir=${hydra.job.num}_x"],
        ["fit=false", "ckpt_path=a.ckpt,b.ckpt", "hydra.sweep.subdir=same"],  # tests only: no checkpoint is saved
        ["seed=0", "hydra.sweep.subdir=same"],  # one job
        ["pool=glob(max*)", "seed=range(0,2)"],
        ["seed=1,2", "hydra.sweep.dir=sw/s${seed}", "hydra.sweep.subdir=run"],  # helper-154: the top folder parts them
        ["seed=0,1", "hydra.sweep.dir=sw/${hydra.job.name}"],  # helper-155: Hydra's own value, a traceback here
        ["experiment=sampled", "optimizer.lr=interval(0.001,0.1)"],  # helper-154: an experiment's sweeper samples it
        ["experiment=seeded", "seed=1,2", "hydra.sweep.subdir=run"],  # note 48: the experiment's sweep dir parts them
    ],
)
def test_sweeps_whose_jobs_have_folders_and_values_of_their_own_pass(tmp_path, monkeypatch, args) -> None:
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "sampled.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    _target_: my_sweepers.Sampling\n"
    )
    (tmp_path / "conf" / "experiment" / "seeded.yaml").write_text(
        "# @package _global_\nhydra:\n  sweep:\n    dir: sw/${now:%H-%M-%S}/s${seed}\n"
    )
    args = [*args, f"hydra.searchpath=[file://{tmp_path / 'conf'}]"]
    for name in ("a.ckpt", "b.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert prepare(["-m", "data=shapes", *args])[: len(args) + 2] == ["-m", "data=shapes", *args]


def test_a_subdir_one_swept_experiments_jobs_share_is_refused(tmp_path, monkeypatch) -> None:
    # helper-155: each value once composed (seeded with seed=0, timed with seed=0, seeded with seed=1) missed the
    # pair that shares a folder (timed with seed=0 and seed=1): jobs 0-2 trained, then job 3 was refused
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    for name, folder in (("seeded", "sw/${now:%H-%M-%S}/s${seed}"), ("timed", "sw/${now:%H-%M-%S}")):
        (tmp_path / "conf" / "experiment" / f"{name}.yaml").write_text(
            f"# @package _global_\nhydra:\n  sweep:\n    dir: {folder}\n"
        )
    args = ["-m", "data=shapes", "experiment=seeded,timed", "seed=0,1", "hydra.sweep.subdir=run"]
    with pytest.raises(CnnplError) as err:
        prepare([*args, f"hydra.searchpath=[file://{tmp_path / 'conf'}]"])
    assert str(err.value).startswith(
        "hydra.sweep.subdir=run names one folder (run) for the sweep's jobs with experiment=timed seed=0 "
        "and with experiment=timed seed=1: "
    )


def test_a_jobs_label_names_only_the_settings_that_vary() -> None:
    # helper-156: the experiment sweeps pool, the command line fixes it; the jobs were "seed=3 pool=max", "seed=4 ..."
    from cnnpl.sweeps import sweep_jobs

    jobs = sweep_jobs(["data=shapes", "experiment=pooling_study", "seed=3,4", "pool=max"])
    assert [label for _, label in jobs] == ["seed=3", "seed=4"]
    assert all("pool=max" in job for job, _ in jobs)
    jobs = sweep_jobs(["data=shapes", "experiment=pooling_study", "seed=3,4"])  # the experiment's pool sweep stays
    assert [label for _, label in jobs][:2] == ["seed=3 pool=max", "seed=3 pool=avg"]


def test_a_jobs_label_writes_true_as_typed_and_hydra_gets_its_own_words() -> None:
    from cnnpl.sweeps import sweep_jobs, sweep_variants

    sweep = ["act=gelu", "act.approximate=none,true", "data.flip=false,true"]
    jobs = sweep_jobs(sweep)
    assert [label for _, label in jobs][1:3] == [
        "act.approximate=none data.flip=true",
        "act.approximate=true data.flip=false",
    ]
    assert jobs[2][0] == ["act=gelu", "act.approximate=True", "data.flip=False"]  # what Hydra hands the job
    assert [label for _, label in sweep_variants(sweep)][1:] == ["act.approximate=true", "data.flip=true"]
    lists = sweep_jobs(["+model.flags=[true,false],[false,true]", "seed=1,2"])
    assert [label for _, label in lists][2] == "+model.flags=[false,true] seed=1"
    assert lists[2][0][0] == "+model.flags=[False,True]"  # a plugin model's list of switches


def test_a_glob_over_a_plugins_options_is_hydras(tmp_path, monkeypatch) -> None:
    # helper-155: a group only a plugin's search path folder has (no conf/augment/): Hydra's glob sees its options
    import cnnpl.config
    from cnnpl.sweeps import check_sweep_values

    plugin, mine = tmp_path / "plugin", tmp_path / "mine"
    for folder, name in ((plugin, "a1"), (plugin, "a2"), (mine, "a3")):
        (folder / "augment").mkdir(parents=True, exist_ok=True)
        (folder / "augment" / f"{name}.yaml").write_text("strength: 1\n")
    monkeypatch.setattr(cnnpl.config, "plugin_config_folders", lambda: [plugin])
    check_sweep_values(["+augment=glob(*)"], [])
    with pytest.raises(CnnplError) as err:
        check_sweep_values(["+augment=glob(*)", f"hydra.searchpath=[file://{mine}]"], [])
    assert str(err.value) == (
        "+augment=glob(*): Hydra's glob() does not see the options of hydra.searchpath folders, so the sweep would "
        "skip a3; list the options instead: +augment=a1,a2,a3"
    )


@pytest.mark.parametrize(
    ("glob", "message"),
    [  # note 48: Hydra launched pool=max alone for glob(max*), and 0 jobs for glob(sp_*), and said nothing
        ("glob(max*)", "would skip maxi; list the options instead: pool=max,maxi"),
        ("glob(sp_*)", "would skip sp_a; list the options instead: pool=sp_a"),
    ],
)
def test_a_glob_that_would_skip_a_searchpath_option_is_refused(tmp_path, monkeypatch, glob, message) -> None:
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "pool").mkdir(parents=True)
    for name in ("maxi", "sp_a"):
        (tmp_path / "conf" / "pool" / f"{name}.yaml").write_text("# @package pool\nname: max\n")
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    with pytest.raises(CnnplError) as err:
        prepare(["-m", "data=shapes", f"pool={glob}", searchpath])
    assert str(err.value) == (
        f"pool={glob}: Hydra's glob() does not see the options of hydra.searchpath folders, so the sweep {message}"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["conf"]  # no sweep folder made
    assert "pool=glob(av*)" in prepare(["-m", "data=shapes", "pool=glob(av*)", searchpath])  # none of the folder's


@pytest.mark.parametrize(
    ("args", "message"),
    [  # helper-141: Hydra read the other one; the run went to a folder named by the time, the given one never made
        (
            ["-m", "seed=0,1", "hydra.run.dir=runs/a"],
            "hydra.run.dir=runs/a is a single run's folder, and this command sweeps (-m or hydra.mode=MULTIRUN) into "
            "hydra.sweep.dir: give hydra.sweep.dir=runs/a",
        ),
        (  # helper-142: the likelier fix, a sweep's -m forgotten, comes first
            ["pool=max,avg", "hydra.sweep.dir=runs/a"],
            "hydra.sweep.dir=runs/a is a sweep's folder: add -m to sweep into it (python -m cnnpl -m ...), or give "
            "hydra.run.dir=runs/a for one run",
        ),
    ],
)
def test_a_folder_option_for_the_other_kind_of_command_is_refused(tmp_path, monkeypatch, args, message) -> None:
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *args])
    assert str(err.value) == message
    assert not list(tmp_path.iterdir())
    both = ["hydra.run.dir=runs/b", "hydra.sweep.dir=runs/c"]  # each for its own kind: one is read
    assert prepare(["data=shapes", *(args[:-1] if "-m" in args else []), *both])
    # Hydra's other way to sweep (helper-142): a sweep's folder is its own
    assert prepare(["data=shapes", "hydra.mode=MULTIRUN", "hydra.sweep.dir=runs/d"])


@pytest.mark.parametrize("given", ["hydra.run.dir=", "hydra.run.dir=''", "hydra.run.dir= ", "-m hydra.sweep.dir="])
def test_an_empty_run_folder_is_refused(tmp_path: Path, monkeypatch, given: str) -> None:
    # helper-127: hydra.run.dir='' trained in the working directory (the repository's, by mistake)
    from cnnpl.cli import prepare

    monkeypatch.chdir(tmp_path)
    key = given.split()[-1].partition("=")[0]
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *given.split(" ", 1 if given.startswith("-m") else 0)])
    assert str(err.value) == (
        f"{key} is empty, which Hydra takes for the working directory, where a run's checkpoints, logs and .hydra/ "
        f"would lie among its files; give a folder ({key}=<folder>), or leave {key} out"
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (
            "hydra.run.dir=~/runs/a",
            "cannot read the override 'hydra.run.dir=~/runs/a': Hydra does not expand a ~ in a folder (it would make "
            "one named ~ here); write hydra.run.dir=$HOME/runs/a (the shell expands it) or the absolute path",
        ),
        (
            "hydra.run.dir='~/runs/a'",
            "hydra.run.dir=~/runs/a: Hydra does not expand a ~ in a folder (it would make one named ~ here); write "
            "hydra.run.dir=$HOME/runs/a (the shell expands it) or the absolute path",
        ),
    ],
)
def test_a_run_folder_under_a_tilde_names_home_instead(tmp_path: Path, given: str, said: str) -> None:
    # helper-127: the grammar error advised quoting, and the quoted value made a folder named ~ here
    result = run_cli("data=shapes", given, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"cnnpl: error: {said}"
    assert not list(tmp_path.iterdir())


def test_a_component_the_model_never_builds_gets_a_warning(cli, tmp_path: Path) -> None:
    from cnnpl.network import build_model

    for model, unused in (("simple_cnn", ["norm"]), ("simple_cnn_bn", []), ("resnet18", ["pool"])):
        found: list[str] = []
        build_model(cnnpl.compose([f"model={model}"]), 10, 3, (32, 32), found)
        assert found == unused, model
    result = cli(*TINY, "callbacks=minimal", "norm=identity", env={"PYTHONWARNINGS": "default"})
    assert result.returncode == 0, result.stderr[-2000:]
    said = "[WARNING] - model=simple_cnn builds no norm layers, so norm=identity changes nothing"
    assert said in result.stdout + result.stderr, result.stderr[-2000:]  # a log line, not a Python warning
    assert said in (tmp_path / "run" / "cnnpl.log").read_text()  # and in the run's log


class _Rule(enum.Enum):
    FIRST = "first"
    LAST = "last"


def test_a_value_of_the_wrong_type_says_why(restore_registries, capsys) -> None:
    from cnnpl.cli import prepare
    from cnnpl.summary import main as summary_main

    @cnnpl.register("pool", "typed_pool")
    class TypedPool(torch.nn.MaxPool2d):
        """Max pooling with a typed setting."""

        def __init__(
            self,
            kernel_size: int = 2,
            stride: int | None = None,
            padding: int = 0,
            lam: float = 0.5,
            rounds: int = 1,
            on: bool = True,
            sizes: list[int] | None = None,
            grid: list[list[int]] | None = None,
            rule: _Rule = _Rule.FIRST,
            label: str = "x",
        ):
            super().__init__(kernel_size, stride, padding)

    # the words of cnnpl's checks (note 44: "Error merging override pool.lam=abc: Value 'abc' of type 'str' could not
    # be converted to Float", OmegaConf's words for a typed config)
    reason = "pool.lam must be a number, got 'abc' (pool 'typed_pool')"
    with pytest.raises(cnnpl.CnnplError) as err:
        prepare(["pool=typed_pool", "pool.lam=abc"])
    assert str(err.value) == reason
    assert summary_main(["pool=typed_pool", "pool.lam=abc"]) == 2
    assert capsys.readouterr().err == f"cnnpl.summary: error: {reason}\n"
    for override, said in [
        ("pool.rounds=1.5", "pool.rounds must be an integer, got 1.5 (pool 'typed_pool')"),
        ("pool.rounds=[1,2]", "pool.rounds must be an integer, got [1, 2] (pool 'typed_pool')"),
        ("pool.on=maybe", "pool.on must be true or false, got 'maybe' (pool 'typed_pool')"),
        # helper-147: an item was named as the whole setting ("pool.sizes must be an integer")
        ("pool.sizes=[1,abc]", "pool.sizes[1] must be an integer, got 'abc' (pool 'typed_pool')"),
        # helper-147: OmegaConf's "Invalid value 'middle', expected one of [FIRST, LAST]", "field 'pool.lam' is not
        # Optional", "Cannot convert 'dict' to string"
        ("pool.rule=middle", "pool.rule must be FIRST or LAST, got 'middle' (pool 'typed_pool')"),
        ("pool.lam=null", "pool.lam cannot be null (pool 'typed_pool'): give it a value"),
        # helper-148: "Invalid type assigned: NoneType is not a subclass of int", "str is not a ListConfig, ..."
        ("pool.sizes=[1,null]", "pool.sizes[1] cannot be null (pool 'typed_pool'): give it a value"),
        ("pool.sizes=abc", "pool.sizes must be a list ([..., ...]), got abc (pool 'typed_pool')"),
        # helper-149: a list in a list was named as the whole setting, a null in it was OmegaConf's words
        ("pool.grid=[[1,2],3]", "pool.grid[1] must be a list ([..., ...]) (pool 'typed_pool')"),
        ("pool.grid=[[1,2],[3,null]]", "pool.grid[1][1] cannot be null (pool 'typed_pool'): give it a value"),
        (  # helper-148: "pool.sizes is a group of settings, which a list cannot replace"
            "pool.sizes={a:1}",
            "pool.sizes={a:1}: pool.sizes is a list, which a mapping cannot replace; give a list (pool.sizes=[...])",
        ),
        ("pool.label={a:1}", "pool.label must be text, got {'a': 1} (pool 'typed_pool')"),
    ]:
        with pytest.raises(cnnpl.CnnplError) as err:
            prepare(["pool=typed_pool", override])
        assert str(err.value) == said
    with pytest.raises(cnnpl.CnnplError) as err:  # helper-147: the option was shown "'typed_pool'", quotes and all
        prepare(["pool='typed_pool'", "pool.lam=abc"])
    assert str(err.value) == reason


def test_version_names_cnnpl_and_what_it_runs_on(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"cnnpl {version('cnnpl')} (Hydra {version('hydra-core')}, Lightning {version('lightning')}, "
        f"torch {version('torch')})"
    )


def test_an_unknown_component_says_how_a_plugin_makes_one(cli) -> None:
    result = cli(*TINY, "pool=bogus")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "; a plugin's pool becomes an option when plugins=[...] on the command line names it (a config file's "
        "plugins: list is read too late for that)"
    ), result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pool=maxx"], "pool=maxx: no such option; did you mean pool=max? the options of pool are "),
        (["pool.kernal_size=3"], "pool.kernal_size is not a setting of this config; did you mean pool.kernel_size?"),
        (["pool=softpool", "pool.beta=abc"], "pool.beta must be a number, got 'abc' (pool 'softpool')"),
        # a setting of another option of the group: +conv.kernel_depth=3, as advised, was refused by conv2d next
        (
            ["conv=conv2d", "conv.kernel_depth=3"],
            "conv.kernel_depth is not a setting of conv=conv2d, but of conv=conv3d_channels; choose it "
            "(conv=conv3d_channels conv.kernel_depth=...)",
        ),
        (
            ["pool.p=0.7"],
            "pool.p is not a setting of pool=max, but of pool=lp, pool=mixed; choose one of them (pool=lp pool.p=...)",
        ),
        (["model=vgg16", "model.widths=[1]"], "model.widths is not a setting of model=vgg16, but of model=fast_net; "),
        # the architecture's facts are no option's settings: not "but of conv=conv2d, conv=conv3d_channels, ..."
        (["conv.in_channels=3"], "conv.in_channels is not a setting of this config; the settings of conv are name, "),
        (["model.num_classes=3"], "model.num_classes is not a setting of this config; "),
        # another override wrong as well: its neighbours cannot be composed (this was an UnboundLocalError)
        (["pool.kernal_size=3", "pool.strid=2"], "pool.kernal_size is not a setting of this config; did you mean "),
        (["pool.p=0.7", "data.bogus=1"], "pool.p is not a setting of pool=max, but of pool=lp, pool=mixed; "),
        (  # pool=lp's settings, though data.bogus=1 keeps the whole config from composing
            ["pool=lp", "pool.q=1", "data.bogus=1"],
            "pool.q is not a setting of this config; the settings of pool are name, kernel_size, stride, padding, p, ",
        ),
        # a layer's channels are the network's: not offered as pool=gated's setting
        (["pool.channels=8"], "pool.channels is not a setting of this config; the settings of pool are name, "),
        # a node the config lacks: the callback to add to the set, or the close node (helper-115)
        (
            ["callbacks=minimal", "callbacks.filters.every_n_epochs=5"],
            "callbacks.filters.every_n_epochs: callbacks.filters is not in the run's callbacks (it holds checkpoint, "
            "lr_monitor, progress_bar); to add it, write callbacks=[minimal,filters] beside "
            "callbacks.filters.every_n_epochs=...",
        ),
        (
            ["experiment=fast_cifar10", "callbacks=[minimal,gradcam]", "callbacks.filters.layers=[x]"],
            "callbacks.filters.layers: callbacks.filters is not in the run's callbacks (it holds checkpoint, "
            "lr_monitor, progress_bar, gradcam, lookahead, freeze_whitening); to add it, write "
            "callbacks=[minimal,gradcam,filters] beside",
        ),
        (
            ["~callbacks.filter.every_n_epochs"],
            "~callbacks.filter.every_n_epochs: callbacks.filter does not exist, so there is nothing to delete; did you "
            "mean ~callbacks.filters.every_n_epochs?",
        ),
        (["optimzer.lr=0.1"], "optimzer.lr is not a setting of this config: optimzer does not exist; did you mean "),
        # under a null value: not "data.eval_batch_size does not exist; did you mean data.eval_batch_size.x?"
        (["data.eval_batch_size.x=1"], "data.eval_batch_size.x is not a setting of this config; to add a new key "),
        (  # not "write callbacks=[default,gradcam]", whose next advice was [default,gradcam,gradcam] (helper-118)
            ["~callbacks.gradcam", "callbacks.gradcam.every_n_epochs=3"],
            "callbacks.gradcam.every_n_epochs: ~callbacks.gradcam removes the callback this sets; give one of the two",
        ),
        # Hydra's "Could not append to config. An item is already at '...'.; Either remove + prefix: ..." (helper-137)
        (
            ["+trainer.limit_train_batches=2", "+trainer.limit_train_batches=3"],
            "+trainer.limit_train_batches=2 and +trainer.limit_train_batches=3: +trainer.limit_train_batches is given "
            "twice; give it once",
        ),
        (["+seed=3"], "+seed=3: seed is in the config already; set it without the +: seed=3"),
    ],
)
def test_compose_in_python_raises_the_command_lines_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(cnnpl.CnnplError) as err:  # not Hydra's exceptions of several lines
        cnnpl.compose(overrides)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_new_sweep_into_a_folder_with_an_earlier_sweeps_runs_is_refused_before_hydra_writes(tmp_path: Path) -> None:
    from cnnpl.cli import _check_sweep_dir, _keep_earlier_records
    from cnnpl.sweeps import sweep_dir_setting

    def check(args: list[str]) -> None:  # as prepare() calls them, with the sweep folder the config sets
        _check_sweep_dir(args, sweep_dir_setting(args))

    def keep(args: list[str]) -> list[str]:
        return _keep_earlier_records(args, sweep_dir_setting(args))

    sweep = tmp_path / "sweep"
    (sweep / "0" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("earlier sweep")
    args = ["-m", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    check(args)  # a job folder with Hydra's record only: no run started there
    (sweep / "0" / "config.yaml").write_text("fit: false\n")
    with pytest.raises(CnnplError) as caught:  # a run that only tested a checkpoint there: each job would refuse
        check(args)
    assert str(caught.value) == (
        f"hydra.sweep.dir '{sweep}' holds an earlier sweep's tests of checkpoints (fit=false: 0/); sweep into a new "
        "folder (hydra.sweep.dir=<new folder>), or delete those tests' files first"
    )
    check([*args, "fit=false", "ckpt_path=x.ckpt"])  # testing again there
    (sweep / "0" / "config.yaml").write_text("fit: false\ntest: false\n")
    check(args)  # a dry run's: nothing tested or trained there
    (sweep / "0" / "config.yaml").write_text("a run")
    with pytest.raises(CnnplError) as caught:
        check(args)
    assert str(caught.value) == (
        f"hydra.sweep.dir '{sweep}' already holds an earlier sweep's runs (0/); to continue that sweep give its own "
        "command again with ckpt_path=last, or sweep into a new folder (hydra.sweep.dir=<new folder>)"
    )
    check([*args, "fit=false"])  # testing its checkpoints
    check([*args, "fit=False"])
    check(["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'new'}"])
    # continuing: this command's records go to .hydra-2 in each job folder, the sweep's first multirun.yaml is kept
    assert keep([*args, "ckpt_path=last"]) == ["hydra.output_subdir=.hydra-2"]
    assert (sweep / "multirun-2.yaml").read_text() == "earlier sweep"
    assert keep([*args, "ckpt_path=last"]) == ["hydra.output_subdir=.hydra-3"]
    # continuing needs an earlier sweep's checkpoints in the folder named (a new folder would start every job anew)
    check([*args, "ckpt_path=last"])  # a job that started (its config.yaml) is a sweep to continue
    with pytest.raises(CnnplError) as caught:
        check(["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'new'}", "ckpt_path=last"])
    assert str(caught.value) == (
        f"ckpt_path=last continues a sweep in its folder, but '{tmp_path / 'new'}' holds no earlier sweep's runs; "
        "give the sweep's own command again with hydra.sweep.dir=<that sweep's folder> ckpt_path=last"
    )
    with pytest.raises(CnnplError, match=r"this command names no fixed hydra\.sweep\.dir"):
        check([*args, "hydra.sweep.dir=outputs/${now:%H-%M-%S}", "ckpt_path=last"])
    # the folder an experiment's config sets is the one checked (not only hydra.sweep.dir= on the command line)
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "mine.yaml").write_text(
        f"# @package _global_\nhydra:\n  sweep:\n    dir: {sweep}\n"
    )
    mine = ["-m", f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "experiment=mine", "seed=0,1"]
    with pytest.raises(CnnplError, match="already holds an earlier sweep's runs"):
        check(mine)
    check([*mine, "ckpt_path=last"])


def test_a_continued_sweep_whose_settings_differ_is_refused_before_hydra_writes(tmp_path: Path) -> None:
    # job 0 refused it, after Hydra had replaced the sweep's multirun.yaml with the refused command's
    from omegaconf import OmegaConf

    from cnnpl.checkpoint import atomic_torch_save
    from cnnpl.cli import _check_sweep_dir
    from cnnpl.config import compose_plain
    from cnnpl.sweeps import sweep_dir_setting

    sweep = tmp_path / "sweep"
    first = ["pool=avg", "seed=0", "data=shapes", "data.num_train=256"]  # job 0 of the sweeps below
    (sweep / "0" / "checkpoints").mkdir(parents=True)
    (sweep / "0" / "config.yaml").write_text(OmegaConf.to_yaml(compose_plain(first, output_dir=None), resolve=False))
    atomic_torch_save({"global_step": 8}, sweep / "0" / "checkpoints" / "last.ckpt")
    written = contents(sweep)
    args = ["-m", "pool=avg,max", "seed=0", "data=shapes", f"hydra.sweep.dir={sweep}", "ckpt_path=last"]

    def check(args: list[str]) -> None:
        _check_sweep_dir(args, sweep_dir_setting(args))

    check([*args, "data.num_train=256", "trainer.max_epochs=3"])  # the same settings, trained longer
    with pytest.raises(CnnplError) as caught:
        check([*args, "data.num_train=128"])
    assert str(caught.value) == (
        f"ckpt_path resumes the run in '{sweep / '0'}', but this command's settings differ from the ones it trained "
        "with: data.num_train (run: 256, now: 128); give the command that trained it again, with this ckpt_path "
        "(in the sweep's job with pool=avg)"
    )
    with pytest.raises(
        CnnplError, match=r"differ from the ones it trained with: data\.num_train \(run: 256, now: 5000\)"
    ):
        check(args)  # the setting left out
    # job 0 not known from the command line: glob(*) is Hydra's to sort (avg first), ${...} is read in the job
    check([*args[:1], "pool=glob(*)", *args[2:], "data.num_train=256"])
    check([*args, "data.num_train=${data.num_test},256"])
    check([*args[:1], "pool=shuffle(avg,max)", *args[2:], "data.num_train=128"])  # Hydra's random first job
    # job folders named otherwise: each job compares its own, on the command line or in a config file
    check([*args, "data.num_train=128", "hydra.sweep.subdir=${pool}"])
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "named.yaml").write_text(
        "# @package _global_\nhydra:\n  sweep:\n    subdir: ${hydra.job.override_dirname}\n"
    )
    check([*args, "data.num_train=128", f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "experiment=named"])
    check([*args, "data.num_train=128", "fit=false"])  # only testing
    assert contents(sweep) == written

    # helper-127: each job is compared, not only job 0, as Hydra numbers them (the settings' product, in order)
    (sweep / "1" / "checkpoints").mkdir(parents=True)
    second = ["pool=max", "seed=0", "data=shapes", "data.num_train=256"]
    (sweep / "1" / "config.yaml").write_text(OmegaConf.to_yaml(compose_plain(second, output_dir=None), resolve=False))
    atomic_torch_save({"global_step": 8}, sweep / "1" / "checkpoints" / "last.ckpt")
    written = contents(sweep)
    check([*args, "data.num_train=256"])
    with pytest.raises(CnnplError) as caught:
        check(["-m", "pool=avg,mixed", *args[2:], "data.num_train=256"])  # the second job's value changed
    assert str(caught.value) == (
        f"ckpt_path resumes the run in '{sweep / '1'}', but this command's settings differ from the ones it trained "
        "with: pool.name (run: max, now: mixed); give the command that trained it again, with this ckpt_path "
        "(in the sweep's job with pool=mixed)"
    )
    with pytest.raises(CnnplError) as caught:  # job 1 is pool=avg seed=1: the last setting turns fastest
        check([*args, "seed=0,1", "data.num_train=256"])
    assert str(caught.value).endswith("(in the sweep's job with pool=avg seed=1)"), caught.value
    # helper-132: hydra.sweeper.params on the command line number the jobs otherwise: left to each job
    check(["-m", "pool=avg,mixed", *args[2:], "data.num_train=256", "hydra.sweeper.params.seed=3"])
    assert contents(sweep) == written


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["callbacks=gradcam"], True),  # reads like "add Grad-CAM": the run would keep no checkpoint
        (["+callbacks=epoch_timer", "seed=1"], True),
        (["callbacks=[default,histograms]"], False),
        (["callbacks=minimal"], False),
        (["callbacks=default,full", "-m"], False),  # a sweep over sets
        (["callbacks=gradcam", "--cfg", "job"], False),  # only shows the config
    ],
)
def test_choosing_one_callback_for_the_whole_set_is_warned_about(capsys, args: list[str], warned: bool) -> None:
    from cnnpl.cli import _warn_single_callback

    _warn_single_callback(args)
    name = args[0].partition("=")[2]
    advice = (  # was "write callbacks=[default,gradcam]", which put gradcam's own every_n_epochs=1 over default's 5
        "the default set already has gradcam: leave callbacks= out, and set callbacks.gradcam.<setting>="
        if name == "gradcam"
        else f"to add {name} to the default set write callbacks=[default,{name}]"
    )
    expected = (
        f"cnnpl: warning: callbacks={name} replaces the run's callbacks with {name} alone: no checkpoints (the run "
        f"cannot be resumed, and the test takes the last weights) and no learning-rate log; {advice}\n"
    )
    assert capsys.readouterr().err == (expected if warned else "")


def test_a_run_without_callbacks_is_warned_about(capsys) -> None:
    # helper-130: callbacks=[] ran without checkpoints without a word, where callbacks=gradcam is warned about
    from cnnpl.cli import _warn_single_callback

    _warn_single_callback(["callbacks=[]"])
    assert capsys.readouterr().err == (
        "cnnpl: warning: callbacks=[] leaves the run without callbacks: no checkpoints (the run cannot be resumed, "
        "and the test takes the last weights) and no learning-rate log; callbacks=minimal keeps those, without "
        "pictures\n"
    )
    _warn_single_callback(["callbacks=[]", "--cfg", "job"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("args", "changed"),
    [
        (["callbacks=[default,gradcam]"], {"gradcam": "every_n_epochs=1 where default has 5"}),
        (
            ["+callbacks=[ minimal , default , misclassified ]"],
            {"misclassified": "every_n_epochs=1 where default has 5"},
        ),
        (["callbacks=[default,gradcam]", "callbacks.gradcam.every_n_epochs=5"], {}),  # the set's value, given again
        (["callbacks=[full,gradcam]"], {}),  # full draws it every epoch too: nothing changes
        (["callbacks=[default,histograms]"], {}),  # not in the set: added
        # note 39: the set's params were written out whole, twelve interpolations on one line
        (["callbacks=[default,hparams]"], {"hparams": "params=null where default has a mapping of 12 keys"}),
        (["callbacks=[minimal,filters]"], {}),
    ],
)
def test_a_callback_named_after_a_set_that_holds_it_is_warned_about(
    capsys, args: list[str], changed: dict[str, str]
) -> None:
    # callbacks=[default,gradcam] reads like "add Grad-CAM", but puts gradcam's own every_n_epochs=1 over default's 5
    from cnnpl.cli import _warn_single_callback

    _warn_single_callback(args)
    value = args[0].partition("=")[2]
    owner = "default"
    expected = "".join(
        f"cnnpl: warning: callbacks={value}: the {owner} set already holds {name}, and naming it after the set puts "
        f"{name}'s own defaults over the set's ({what}); to change the set's {name}, leave it out of the list and "
        f"write callbacks.{name}.<setting>=\n"
        for name, what in changed.items()
    )
    assert capsys.readouterr().err == expected


def test_a_callback_named_before_a_set_that_holds_it_is_refused(tmp_path: Path) -> None:
    # helper-130: the set's entry merged over the registered callback's kept its _args_: "GradCAMCallback.__init__()
    # got multiple values for argument 'every_n_epochs'", once the data had loaded
    result = run_cli(*TINY, "callbacks=[gradcam,default]", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == (
        "cnnpl: error: callbacks=[gradcam,default]: the default set holds gradcam too, and a set named after a "
        "callback merges its entry over that callback's; write callbacks=default (callbacks.gradcam.<setting>= "
        "changes the set's gradcam)\n"
    )
    assert not (tmp_path / "run").exists()
    from cnnpl.cli import _warn_single_callback

    _warn_single_callback(["callbacks=[gradcam,minimal]"])  # minimal holds no gradcam: both are built
    _warn_single_callback(["-m", "callbacks=[minimal,gradcam,histograms],[minimal,default,histograms]"])  # 2 jobs
    for value, fixed in (  # helper-132: held by an earlier set too; the fix keeps the callbacks no set holds
        ("[default,gradcam,full]", "full"),  # full holds default: [default,full] builds what full does
        ("[full,gradcam,default]", "[full,default]"),  # default after full puts its own settings back
        ("[histograms,gradcam,default]", "[default,histograms]"),
        ('["gradcam",default]', "default"),  # quoted, as Hydra takes it too (helper-134)
        ("['gradcam', minimal, default]", "default"),  # default holds minimal's
    ):
        with pytest.raises(CnnplError, match=rf"; write callbacks={re.escape(fixed)} \(callbacks\.gradcam\."):
            _warn_single_callback([f"callbacks={value}"])


@pytest.mark.parametrize(
    ("args", "shown"),
    [(["-m", "pool=max,avg", "--help"], "--help"), (["--cfg", "job", "-m", "pool=max,avg"], "--cfg")],
)
def test_showing_the_config_of_a_sweep_is_one_line(tmp_path: Path, args: list[str], shown: str) -> None:
    # were Hydra's tracebacks: "Ambiguous value for argument 'pool=max,avg'" although -m was given, and
    # "Only one of --run, --multirun, --cfg, --info and --shell_completion can be specified"
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"cnnpl: error: {shown} shows one run's config and cannot be combined with -m: drop -m and give one value "
        "of each swept setting (pool=max,avg -> pool=max) to see that job's\n"
    )


def test_a_flags_value_that_names_a_group_is_no_bare_override(tmp_path: Path) -> None:
    result = run_cli("data=shapes", "--cfg", "job", "--package", "pool", cwd=tmp_path)  # Hydra: show pool only
    assert result.returncode == 0, result.stderr
    assert "name: max" in result.stdout and "optimizer" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [  # note 48: Hydra's "package 'pol' not found in config", nothing on what it has
        (
            ["--cfg", "job", "--package", "pol"],
            "--package pol: the run's config has no pol; give one of its keys: seed, ckpt_path, fit, ",
        ),
        (
            ["--cfg", "job", "--package=model.nope"],
            "--package model.nope: the run's config has no model.nope; give one of its keys: model.name, "
            "model.channels, model.hidden, model.dropout",
        ),
        (
            ["--cfg", "all", "-p", "hydra.nope"],
            "--package hydra.nope: the config has no hydra.nope; give one of its keys: hydra.run, hydra.sweep, ",
        ),
        (
            ["--cfg", "hydra", "--package", "run"],
            "--package run: Hydra's config has no run; give one of its keys: hydra",
        ),
        (["--cfg", "job", "--package", "pool", "pool=avgg"], "pool=avgg: no such option; did you mean pool=avg?"),
        (  # helper-155
            ["--cfg", "job", "--package", "hydra"],
            "--package hydra: the run's config has no hydra (Hydra's own settings: --cfg hydra); give one of its "
            "keys: ",
        ),
        (  # helper-155: a traceback
            ["--cfg", "job", "+foo=${nope}", "--package", "foo"],
            "--package foo: its value, ${nope}, cannot be resolved (Interpolation key 'nope' not found), which Hydra "
            "does to what --package picks; leave --package out: --cfg job shows it",
        ),
        # helper-156: Hydra's "package '...' not found in config" for a key that is there
        (
            ["--cfg", "hydra", "--package", "hydra.job.num"],
            "--package hydra.job.num: its value is ???, and Hydra reports such a package as not found; show the "
            "node it is in: --package hydra.job",
        ),
        (
            ["--cfg", "job", "--package", "ckpt_path"],
            "--package ckpt_path: its value is null, and Hydra reports such a package as not found; leave --package "
            "out: --cfg job shows it",
        ),
        (
            ["--cfg", "job", "--package", "output_dir"],
            "--package output_dir: its value, ${hydra:runtime.output_dir}, is filled only as the run starts, and "
            "Hydra reports such a package as not found; leave --package out: --cfg job shows it",
        ),
    ],
)
def test_a_package_the_config_lacks_is_one_line(args: list[str], message: str) -> None:
    from cnnpl.cli import prepare

    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *args])
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "hydra", "--package", "hydra.run"],
        ["--cfg", "job", "-p", "pool", "pool=avg"],
        ["--cfg", "job", "--package", "seed"],
        ["--cfg", "job", "--package", "model.channels"],
        ["--cfg", "job", "--package", "_global_"],
    ],
)
def test_a_package_the_config_has_is_hydras_to_print(args: list[str]) -> None:
    from cnnpl.cli import prepare

    assert sorted(prepare(["data=shapes", *args])) == sorted(["data=shapes", *args])


def test_a_misspelt_cfg_part_is_one_line(tmp_path: Path) -> None:
    result = run_cli("data=shapes", "--cfg", "jobb", cwd=tmp_path)  # was "Error parsing override 'jobb'"
    assert result.returncode == 2
    assert result.stderr == "cnnpl: error: --cfg takes job (the run's config), hydra or all, got 'jobb'\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [  # note 48: argparse's usage, eight lines, under the name __main__.py
        (
            ["--info", "foo"],
            "--info takes all, config, defaults, defaults-tree, plugins or searchpath (all if none), got 'foo'",
        ),
        (
            ["-i", "foo"],
            "-i takes all, config, defaults, defaults-tree, plugins or searchpath (all if none), got 'foo'",
        ),
        (
            ["--info=foo"],
            "--info takes all, config, defaults, defaults-tree, plugins or searchpath (all if none), got 'foo'",
        ),
        (  # helper-155
            ["--info", "~callbacks.progress_bar"],
            "--info takes all, config, defaults, defaults-tree, plugins or searchpath (all if none), got "
            "'~callbacks.progress_bar'; give the overrides after the part: --info all ~callbacks.progress_bar",
        ),
        (
            ["--info", "model=vgg16"],
            "--info takes all, config, defaults, defaults-tree, plugins or searchpath (all "
            "if none), got 'model=vgg16'; give the overrides after the part: --info all model=vgg16",
        ),
    ],
)
def test_an_info_part_hydra_does_not_print_is_one_line(args: list[str], message: str) -> None:
    from cnnpl.cli import prepare

    with pytest.raises(CnnplError) as err:
        prepare(args)
    assert str(err.value) == message


@pytest.mark.parametrize("args", [["--info"], ["--info", "defaults", "model=vgg16"], ["model=vgg16", "--info"]])
def test_info_with_a_part_or_none_is_hydras(args: list[str]) -> None:
    from cnnpl.cli import prepare

    assert prepare(args) == args


def test_help_with_multirun_and_nothing_swept_still_shows_the_help(tmp_path: Path) -> None:
    result = run_cli("-m", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "== Configuration groups ==" in result.stdout, result.stderr[-2000:]


def test_a_bug_in_a_users_data_module_keeps_its_traceback_under_full_error(tmp_path: Path) -> None:
    # a sweep builds each job's data module before Hydra starts: its one line hid where the user's code failed
    (tmp_path / "buggy_data.py").write_text(
        "from cnnpl.data import ShapesDataModule\n\n\nclass Buggy(ShapesDataModule):\n"
        "    def __init__(self, **kwargs):\n        super().__init__(**kwargs)\n        self.x = helper_typo()\n"
    )
    args = ["-m", *TINY, "data._target_=buggy_data.Buggy", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Error in call to target 'buggy_data.Buggy'; NameError" in result.stderr  # was "...Buggy':; NameError"
    full = subprocess.run(  # run_cli takes HYDRA_FULL_ERROR out of the environment
        [sys.executable, "-m", "cnnpl", *args],
        cwd=tmp_path,
        env={**os.environ, **env, "HYDRA_FULL_ERROR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert full.returncode != 0
    assert 'buggy_data.py", line 7, in __init__' in full.stderr, full.stderr[-3000:]  # the user's own line
    assert not (tmp_path / "sweep").exists()


def test_cnnpls_own_warnings_are_one_line_like_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # helper-116: "/.../cnnpl/data/folder.py:257: UserWarning: ..." and then cnnpl's own source line
    import warnings

    import cnnpl.cli as cli_mod
    import cnnpl.data.folder

    ours = cnnpl.data.folder.__file__
    assert cli_mod._format_warning(UserWarning("left out 1 file"), UserWarning, ours, 81) == (
        "cnnpl: warning: left out 1 file\n"
    )
    theirs = cli_mod._format_warning(UserWarning("a plugin's"), UserWarning, "/home/me/my_plugin.py", 3, "warn()")
    assert theirs == "/home/me/my_plugin.py:3: UserWarning: a plugin's\n  warn()\n"  # Python's format
    deprecated = cli_mod._format_warning(DeprecationWarning("old"), DeprecationWarning, ours, 1, "x")
    assert deprecated.startswith(f"{ours}:1: DeprecationWarning: old")
    # main() twice in one process (helper-118): Lightning wraps the formatter main() set, and the second main()
    # took that wrapper for Python's, which then called itself: RecursionError at the next warning
    import lightning.pytorch  # noqa: F401

    monkeypatch.setattr(warnings, "formatwarning", cli_mod._PYTHON_FORMAT)  # as main() finds it; put back after
    monkeypatch.setattr(sys, "argv", ["cnnpl", "--version"])
    for _ in range(2):
        with pytest.raises(SystemExit):
            cli_mod.main()
        warnings.formatwarning = functools.partial(warnings.formatwarning)  # another library wraps it
    text = warnings.formatwarning(UserWarning("said"), UserWarning, ours, 1, None)
    assert text == "cnnpl: warning: said\n"
    assert warnings.formatwarning(UserWarning("x"), UserWarning, "/elsewhere.py", 2, "y").startswith("/elsewhere.py:2:")


def test_an_error_first_ends_the_line_of_a_progress_bar_the_stopped_run_left_open() -> None:
    # helper-137: "Epoch 0:   0%|          | 0/2 [00:00<?, ?it/s]cnnpl: error: the training loss became NaN ..."
    import io

    from tqdm import tqdm

    from cnnpl.errors import close_progress_bars

    out = io.StringIO()
    bar = tqdm(total=2, file=out, desc="Epoch 0")
    bar.update(1)
    assert not out.getvalue().endswith("\n")
    close_progress_bars()
    assert out.getvalue().endswith("\n") and bar.disable


@pytest.mark.parametrize(("given", "meant"), [("model=VGG16", "model=vgg16"), ("data=CIFAR10", "data=cifar10")])
def test_an_option_in_other_letter_case_is_named(given: str, meant: str) -> None:
    # helper-141: model=VGG16 got no did-you-mean (difflib's ratio of "VGG16" to "vgg16" is 0.4), and a plugin hint
    with pytest.raises(CnnplError) as err:
        cnnpl.compose([given])
    assert str(err.value).startswith(f"{given}: no such option; did you mean {meant}? ")
    assert "plugin" not in str(err.value)
    group, option = given.split("=")  # helper-142: in a list of options too
    with pytest.raises(CnnplError) as err:
        cnnpl.compose([f"{group}=[{option}]"])
    assert str(err.value).startswith(f"{group}: no option {option!r}; did you mean {meant.split('=')[1]}? ")


def test_a_misspelt_option_of_mixed_case_is_named() -> None:
    # helper-142: the name typed was lowered, the registered names were not: MyLPool missed MyLPPool
    from cnnpl.config import _closest_option

    assert _closest_option("MyLPool", ["max", "MyLPPool"]) == ["MyLPPool"]
    assert _closest_option("mylppool", ["max", "MyLPPool"]) == ["MyLPPool"]


@pytest.mark.parametrize(
    ("words", "message"),
    [  # helper-141: "'optimizer.lr' is not an override: overrides are written key=value", and for a list split at a
        # space "'160,160]' is not an override"; a misspelt tool name was told the same
        (
            ["optimizer.lr", "=", "0.1"],
            "'optimizer.lr' is followed by a space and =0.1: write optimizer.lr=0.1, with no spaces around the =",
        ),
        (["pool", "=avg"], "'pool' is followed by a space and =avg: write pool=avg, with no spaces around the ="),
        (
            ["optimizer.lr=", "0.1"],
            "'optimizer.lr=' is followed by a space and 0.1: write optimizer.lr=0.1, with no space after the =",
        ),
        (
            ["model.widths=[48,", "160,160]"],
            "'160,160]' is the rest of 'model.widths=[48,', split at a space: write the list without spaces "
            '(model.widths=[48,160,160]) or quote the whole override ("model.widths=[48, 160,160]")',
        ),
        (
            ["lsit"],
            "'lsit' is not an override; did you mean list? (python -m cnnpl list [<group>] lists the components)",
        ),
        (  # helper-143: three items kept two, "[48,160,"
            ["model.widths=[48,", "160,", "200]"],
            "'160,' is the rest of 'model.widths=[48,', split at a space: write the list without spaces "
            '(model.widths=[48,160,200]) or quote the whole override ("model.widths=[48, 160, 200]")',
        ),
        (["pool=max,", "avg"], "'avg' is the rest of 'pool=max,', split at a space: write pool=max,avg without spaces"),
        (["pool=max", ",avg"], "',avg' is the rest of 'pool=max', split at a space: write pool=max,avg without spaces"),
        (
            ["callbacks={a:", "1}"],
            "'1}' is the rest of 'callbacks={a:', split at a space: quote the whole override (\"callbacks={a: 1}\")",
        ),
    ],
)
def test_an_override_split_at_a_space_is_told_how_to_write_it(words: list[str], message: str) -> None:
    from cnnpl.config import check_group_overrides

    with pytest.raises(CnnplError) as err:
        check_group_overrides(["data=shapes", *words])
    assert str(err.value) == message


@pytest.mark.parametrize("given", [["--config-name=mine"], ["-cn", "mine"]])
def test_a_config_name_cnnpl_has_not_is_one_line(tmp_path: Path, given: list[str]) -> None:
    # helper-141: Hydra's "Cannot find primary config 'mine'" and its search path, several lines
    from cnnpl.cli import prepare

    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", *given])
    assert str(err.value) == (
        "--config-name mine: cnnpl's configs have no mine.yaml (its own: train); for a config of your own, give its "
        "folder too: --config-dir <folder> --config-name mine"
    )
    (tmp_path / "mine.yaml").write_text("defaults:\n  - train\n  - _self_\nseed: 3\n")
    assert prepare(["data=shapes", "--config-dir", str(tmp_path), *given, "--cfg", "job"])  # its folder given: Hydra's

    # helper-143: an option of a group, and a path, passed the check and failed in Hydra's several lines
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", "--config-name", "experiment/pooling_study"])
    assert str(err.value) == (
        "--config-name experiment/pooling_study is an option of experiment, not a whole config; choose it: "
        "experiment=pooling_study"
    )
    with pytest.raises(CnnplError) as err:
        prepare(["data=shapes", "--config-name", str(tmp_path / "mine.yaml")])
    assert str(err.value) == (
        f"--config-name {tmp_path / 'mine.yaml'} is a path; give its folder and its name apart: --config-dir "
        f"{tmp_path} --config-name mine"
    )
