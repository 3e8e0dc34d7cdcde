"""Optimizers: Muon (``optimizer=muon``: the orthogonalization, the two kinds of step, the groups, bad settings),
and the fused step of torch's (cnnpl's default) kept across a resume."""

from __future__ import annotations

import copy
import inspect
import math
from functools import partial

import pytest
import torch
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf
from tests.test_fast import SMALL, _fit, _Record
from torch import nn

from cnnpl.config import config_dir
from cnnpl.data.shapes import ShapesDataModule
from cnnpl.errors import CnnplError
from cnnpl.models.fast_net import FastNet
from cnnpl.optim import Muon, keep_implementation, orthogonalize, placed_step
from cnnpl.system import ImageClassifier


@pytest.mark.parametrize("shape", [(16, 72), (72, 16), (32, 32)])
def test_orthogonalize_keeps_the_singular_vectors_and_flattens_the_singular_values(shape) -> None:
    torch.manual_seed(0)
    matrix = torch.randn(*shape) @ torch.diag(torch.logspace(0, 1, shape[1]))  # uneven singular values
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    result = orthogonalize(matrix, steps=5)
    singular_values = torch.linalg.svdvals(result)
    assert result.shape == matrix.shape
    assert singular_values.min() > 0.5 and singular_values.max() < 1.3
    # in the matrix's own singular basis the result is diagonal: the directions are kept
    core = u.T @ result @ vh.T
    off_diagonal = core - torch.diag(torch.diagonal(core))
    assert off_diagonal.abs().max() < 1e-3 * core.abs().max()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 4) -> None:
    torch.manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()


def test_everything_but_filters_takes_exactly_torch_sgd_steps() -> None:
    settings = dict(lr=0.1, momentum=0.85, nesterov=True, weight_decay=1e-2)
    model, reference = _model(), _model()
    conv, ref_conv = model[0].weight, reference[0].weight
    others = [p for p in model.parameters() if p is not conv]
    ref_others = [p for p in reference.parameters() if p is not ref_conv]
    _train(model, Muon(others, **settings))
    _train(reference, torch.optim.SGD(ref_others, **settings))
    for p, q in zip(others, ref_others, strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_a_filter_step_is_the_orthogonalized_nesterov_momentum_on_normalized_filters() -> None:
    model = _model()
    weight = model[0].weight
    optimizer = Muon([weight], filter_lr=0.2, filter_momentum=0.5, ns_steps=3)
    grads = [torch.randn_like(weight) for _ in range(2)]
    expected = weight.detach().clone()
    buffer = None
    for grad in grads:
        buffer = grad.clone() if buffer is None else 0.5 * buffer + grad
        direction = grad + 0.5 * buffer
        expected = expected * math.sqrt(8) / expected.norm()
        expected = expected - 0.2 * orthogonalize(direction.reshape(8, -1), 3).reshape(weight.shape)
        weight.grad = grad
        optimizer.step()
        assert torch.allclose(weight, expected, atol=1e-5)
    assert float(weight.norm()) != pytest.approx(math.sqrt(8))  # normalised before the step, not after


def test_groups_split_into_filters_and_the_rest_keeping_their_own_settings() -> None:
    model = _model()
    optimizer = Muon(
        [{"params": list(model[0].parameters()), "weight_decay": 0.5}, {"params": model[3].parameters(), "lr": 0.3}],
        lr=0.1,
        filter_lr=0.02,
        weight_decay=1e-3,
    )
    summary = [(g["orthogonalize"], g["lr"], g["weight_decay"], len(g["params"])) for g in optimizer.param_groups]
    assert summary == [(True, 0.02, 0.0, 1), (False, 0.1, 0.5, 1), (False, 0.3, 1e-3, 2)]
    assert not any("filter_lr" in g for g in optimizer.param_groups)
    # without normalising, the filters keep their group's weight decay
    unnormalized = Muon([{"params": model[0].parameters(), "weight_decay": 0.5}], normalize_filters=False)
    assert [g["weight_decay"] for g in unnormalized.param_groups] == [0.5, 0.5]


def test_tall_and_channels_last_filters_step_like_contiguous_ones() -> None:
    torch.manual_seed(0)
    tall = nn.Conv2d(3, 32, 3)  # a 32 x 27 matrix: more rows than columns
    grad = torch.randn_like(tall.weight)
    weights = []
    for memory_format in (torch.contiguous_format, torch.channels_last):
        conv = copy.deepcopy(tall).to(memory_format=memory_format)
        conv.weight.grad = grad.contiguous(memory_format=memory_format)
        Muon([conv.weight], filter_lr=0.1).step()
        weights.append(conv.weight.detach())
    expected = tall.weight * math.sqrt(32) / tall.weight.norm() - 0.1 * orthogonalize(grad.reshape(32, -1)).reshape(
        grad.shape
    )
    assert torch.allclose(weights[0], expected, atol=1e-6) and torch.allclose(weights[1], expected, atol=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(filter_lr=-1.0), "optimizer.filter_lr must be >= 0"),
        (dict(filter_momentum=1.0), r"optimizer.filter_momentum must be in \[0, 1\)"),
        (dict(ns_steps=0), "optimizer.ns_steps must be a whole number >= 1, got 0"),
        (dict(ns_steps=2.5), "optimizer.ns_steps must be a whole number >= 1, got 2.5"),  # range(2.5) at step 1
        (dict(momentum=0.0), r"optimizer.nesterov needs momentum and filter_momentum > 0 \(or nesterov=false\)"),
    ],
)
def test_bad_settings_name_the_key(settings, message) -> None:
    with pytest.raises(CnnplError, match=message):
        Muon(_model().parameters(), **settings)


def test_the_config_builds_muon_and_the_system_scales_its_split_groups() -> None:
    factory = instantiate(OmegaConf.load(config_dir() / "optimizer" / "muon.yaml"))
    assert isinstance(factory, partial) and factory.func is Muon
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    net = FastNet(**SMALL, bias_lr_scale=10)
    before = copy.deepcopy(net.features.group1.conv1.weight)
    system = ImageClassifier(net, 10, partial(factory, lr=0.1, filter_lr=0.03, weight_decay=1e-3), init_samples=64)
    record = _Record()
    _fit(system, datamodule, record)
    # norm biases: lr x 10, decay / 10; the six filters: filter_lr; whitening bias and classifier: lr
    assert record.groups == [
        (pytest.approx(1.0), pytest.approx(1e-4), 6),
        (pytest.approx(0.03), 0.0, 6),
        (pytest.approx(0.1), pytest.approx(1e-3), 2),
    ]
    assert not torch.equal(before, net.features.group1.conv1.weight)


def test_a_group_the_optimizer_adds_of_its_own_keeps_its_settings() -> None:
    extra = nn.Parameter(torch.zeros(3))  # not the network's: no lr_scale applies to it

    def sgd_with_an_extra_group(groups):  # type: ignore[no-untyped-def]
        optimizer = torch.optim.SGD(groups, lr=0.1, weight_decay=1e-3)
        optimizer.add_param_group({"params": [extra], "lr": 0.5, "weight_decay": 0.0})
        return optimizer

    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL, bias_lr_scale=10), 10, sgd_with_an_extra_group, init_samples=64)
    record = _Record()
    _fit(system, datamodule, record)
    assert record.groups[-1] == (0.5, 0.0, 1)
    assert record.groups[0][:2] == (pytest.approx(1.0), pytest.approx(1e-4))  # the net's own groups still scaled


# -- the step's implementation: torch's fused step by default -------------------------------------


def _torch_optimizer_configs() -> list[str]:
    """cnnpl's optimizer configs of torch optimizers that have a fused step."""
    names = []
    for path in sorted((config_dir() / "optimizer").glob("*.yaml")):
        target = OmegaConf.load(path)["_target_"]
        if target.startswith("torch.optim.") and "fused" in inspect.signature(get_object(target)).parameters:
            names.append(path.stem)
    return names


def test_cnnpls_optimizers_of_torch_take_the_fused_step_unless_told_otherwise() -> None:
    names = _torch_optimizer_configs()
    assert names == ["adam", "adamw", "sgd"]
    param = nn.Parameter(torch.zeros(3))
    for name in names:
        factory = instantiate(OmegaConf.load(config_dir() / "optimizer" / f"{name}.yaml"))
        assert [g["fused"] for g in factory([param]).param_groups] == [True], name
        assert [g["fused"] for g in partial(factory, fused=False)([param]).param_groups] == [False], name
    system = ImageClassifier(nn.Linear(3, 2), 2)  # the Python API's default: the notes' Adam
    assert system.optimizer_factory.func is torch.optim.Adam and system.optimizer_factory.keywords["fused"] is True


def _stepped(optimizer: torch.optim.Optimizer, steps: int = 3) -> torch.optim.Optimizer:
    for step in range(steps):
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.full_like(p, 0.1 * (step + 1))
        optimizer.step()
    return optimizer


def test_a_loaded_state_keeps_the_implementation_the_optimizer_was_built_with() -> None:
    saved = _stepped(torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1)).state_dict()  # torch's default step
    assert saved["param_groups"][0]["fused"] is None
    plain = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1, fused=True)
    plain.load_state_dict(copy.deepcopy(saved))  # (torch keeps the saved "step" tensors, and steps them on)
    assert plain.param_groups[0]["fused"] is None  # torch takes the saved group's setting
    kept = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1, fused=True)
    keep_implementation(kept)
    kept.load_state_dict(copy.deepcopy(saved))
    assert kept.param_groups[0]["fused"] is True and kept.param_groups[0]["foreach"] is None
    assert torch.equal(kept.state_dict()["state"][0]["exp_avg"], saved["state"][0]["exp_avg"])  # the state loads
    # and steps on from it as the saved optimizer does, up to rounding
    reference = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1)
    reference.load_state_dict(copy.deepcopy(saved))
    _stepped(kept, 1)
    _stepped(reference, 1)
    torch.testing.assert_close(kept.param_groups[0]["params"][0], reference.param_groups[0]["params"][0])


def test_a_loaded_step_count_is_placed_where_the_fused_step_wants_it() -> None:
    """torch places a saved group's step counts by the saved setting (unfused: as they were); a fused
    step wants them in float32 on the parameter's device. A GPU's fused kernel refuses a count left on
    the CPU; on the CPU only the dtype shows it, here with a count saved in float64."""
    saved = _stepped(torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1)).state_dict()
    saved["state"][0]["step"] = saved["state"][0]["step"].double()
    unfused = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1)
    keep_implementation(unfused)
    unfused.load_state_dict(copy.deepcopy(saved))
    assert unfused.state_dict()["state"][0]["step"].dtype == torch.float64  # as torch leaves it
    fused = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1, fused=True)
    keep_implementation(fused)
    fused.load_state_dict(copy.deepcopy(saved))
    step = fused.state_dict()["state"][0]["step"]
    assert step.dtype == torch.float32 and step.device == fused.param_groups[0]["params"][0].device
    assert step.item() == 3


def test_a_group_added_after_the_optimizer_was_built_loads_with_the_same_implementation() -> None:
    """As Lightning's BackboneFinetuning adds groups while it unfreezes layers."""

    def built() -> torch.optim.Optimizer:
        optimizer = torch.optim.Adam([nn.Parameter(torch.ones(4))], lr=0.1, fused=True)
        keep_implementation(optimizer)
        optimizer.add_param_group({"params": [nn.Parameter(torch.ones(2))], "lr": 0.01})
        return optimizer

    saved = _stepped(built()).state_dict()
    for group in saved["param_groups"]:
        group["fused"] = None  # as if saved by torch's default step
    loaded = built()
    loaded.load_state_dict(saved)
    assert [g["fused"] for g in loaded.param_groups] == [True, True]
    assert [g["lr"] for g in loaded.param_groups] == [0.1, 0.01]


def test_step_counts_are_placed_where_each_implementation_reads_them() -> None:
    """A GPU is not needed to see where they go: a parameter on the meta device stands in for one."""
    param = torch.empty(3, device="meta")
    count = torch.tensor(5.0, dtype=torch.float64)
    fused = placed_step(count, param, on_device=True)
    assert fused.device.type == "meta" and fused.dtype == torch.float32
    # torch's default step reads its count on the CPU (a GPU count, from a fused run resumed with
    # optimizer.fused=null, comes back with .cpu(); no second device here to show it)
    unfused = placed_step(torch.tensor(5.0), torch.empty(3), on_device=False)
    assert unfused.device.type == "cpu" and unfused.dtype == torch.float32 and unfused.item() == 5


def test_the_state_of_an_optimizer_not_torchs_own_is_left_as_it_loads() -> None:
    """An optimizer without torch's fused / foreach switches (Muon, a plugin's) keeps its state as loaded."""

    class Counting(torch.optim.Optimizer):
        def __init__(self, params) -> None:  # type: ignore[no-untyped-def]
            super().__init__(params, {"lr": 0.1})

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["step"] = torch.tensor(1.0, device="meta")  # wherever it chooses

    saved = Counting([nn.Parameter(torch.ones(2))])
    saved.step()
    loaded = Counting([nn.Parameter(torch.ones(2))])
    keep_implementation(loaded)
    loaded.load_state_dict(saved.state_dict())
    assert loaded.state_dict()["state"][0]["step"].device.type == "meta"


# -- schedules: what they do to the optimizer, and settings they cannot take --------------------------


def _one_cycle(optimizer: torch.optim.Optimizer, **settings) -> None:
    from cnnpl.optim import one_cycle

    one_cycle(optimizer, total_steps=10, **settings)


def test_one_cycle_replaces_the_momentum_unless_told_to_keep_it() -> None:
    param = nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([param], lr=0.1, momentum=0.0)
    _one_cycle(sgd)  # torch's 1cycle: momentum from max_momentum, whatever the optimizer said
    assert sgd.param_groups[0]["momentum"] == 0.95
    sgd = torch.optim.SGD([param], lr=0.1, momentum=0.0)
    _one_cycle(sgd, cycle_momentum=False)
    assert sgd.param_groups[0]["momentum"] == 0.0
    adam = torch.optim.Adam([param], betas=(0.5, 0.999))
    _one_cycle(adam, base_momentum=0.6, max_momentum=0.7)
    assert adam.param_groups[0]["betas"] == (0.7, 0.999)
    # an optimizer without momentum: one line, not torch's ValueError inside the fit
    with pytest.raises(CnnplError, match=r"^scheduler=onecycle cycles the optimizer's momentum, and Adagrad has none"):
        _one_cycle(torch.optim.Adagrad([param]))
    _one_cycle(torch.optim.Adagrad([param]), cycle_momentum=False)
    with pytest.raises(CnnplError, match=r"^scheduler\.max_momentum must be a number in \[base_momentum, 1\)"):
        _one_cycle(sgd, base_momentum=0.9, max_momentum=0.8)


SCHEDULES = sorted(path.stem for path in (config_dir() / "scheduler").glob("*.yaml") if path.stem != "none")


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("steps", range(1, 13))
def test_every_schedule_runs_a_run_of_any_length(name: str, steps: int) -> None:
    # onecycle's peak fell on a warm-up of one step (0.25 x 4, 0.1 x 10): ZeroDivisionError inside torch
    node = OmegaConf.load(config_dir() / "scheduler" / f"{name}.yaml")
    for fraction in (0.1, 0.2, 0.25, 0.5):
        key = {"onecycle": "pct_start", "triangle": "peak_fraction", "cosine": "warmup_fraction"}.get(name)
        if key:
            node[key] = fraction
        param = nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
        schedule = instantiate(node)(optimizer, total_steps=steps)
        rates = []
        for _ in range(steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        assert all(math.isfinite(rate) and 0 <= rate <= 0.1 + 1e-12 for rate in rates), (fraction, rates)


@pytest.mark.parametrize(("pct_start", "steps"), [(0.25, 4), (0.1, 10), (0.5, 2), (0.2, 5)])
def test_a_one_step_warm_up_peaks_on_the_first_step(pct_start: float, steps: int) -> None:
    from cnnpl.optim import one_cycle

    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    schedule = one_cycle(optimizer, total_steps=steps, pct_start=pct_start)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[-1] < 1e-5 and rates == sorted(rates, reverse=True), rates


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # the preset's triangle settings stayed behind: "'DictConfig' object is not callable"
        (
            ["experiment=fast_cifar10", "scheduler=none"],
            "scheduler has settings (peak_fraction, start, end) but no schedule to take them (an experiment's, or "
            "added with +scheduler.*); for a constant learning rate remove them too: scheduler=none "
            "~scheduler.peak_fraction ~scheduler.start ~scheduler.end, or choose a schedule that takes them "
            "(scheduler=<name>)",
        ),
        (
            ["experiment=fast_cifar10", "scheduler=cosine"],
            "cosine takes no setting peak_fraction, start, end (its settings: warmup_fraction, final_lr_fraction); "
            "remove them with ~scheduler.peak_fraction ~scheduler.start ~scheduler.end",
        ),
        # checked on the run's own optimizer, not a dummy SGD with momentum: was a traceback inside the fit
        (
            ["optimizer._target_=torch.optim.Adagrad", "~optimizer.fused", "scheduler=onecycle"],
            "scheduler=onecycle cycles the optimizer's momentum, and Adagrad has none; "
            "set scheduler.cycle_momentum=false",
        ),
        # an endless run has no length to plan over: was an OverflowError inside the fit
        (
            ["trainer.max_epochs=-1", "scheduler=cosine"],
            "scheduler (cnnpl.optim.cosine) plans the learning rate over the whole run, which trainer.max_epochs=-1 "
            "leaves without an end",
        ),
        (  # Lightning reads a null max_epochs with a max_time as -1: an OverflowError inside the fit
            ["trainer.max_epochs=null", "+trainer.max_time=00:00:00:05", "scheduler=cosine"],
            "scheduler (cnnpl.optim.cosine) plans the learning rate over the whole run, which trainer.max_epochs=null "
            "with trainer.max_time leaves without an end",
        ),
        (
            ["+callbacks.la._target_=cnnpl.callbacks.Lookahead", "trainer.max_epochs=-1"],
            "callbacks.la ramps its decay over the whole run, which trainer.max_epochs=-1 leaves without an end",
        ),
        (  # the registered component, as callbacks=[...] builds it (a cnnpl.registry.build node)
            ["callbacks=[minimal,lookahead]", "trainer.max_epochs=-1"],
            "callbacks.lookahead ramps its decay over the whole run, which trainer.max_epochs=-1 leaves without an end",
        ),
    ],
)
def test_a_schedule_that_cannot_run_is_refused_in_one_line(overrides: list[str], message: str) -> None:
    from cnnpl.config import compose
    from cnnpl.train import checked_schedule

    with pytest.raises(CnnplError) as err:
        checked_schedule(compose(overrides))
    assert str(err.value).startswith(message) and "pick a config" not in str(err.value), str(err.value)
    checked_schedule(compose(["trainer.max_epochs=-1", "+trainer.max_steps=100", "scheduler=cosine"]))  # an end


@pytest.mark.parametrize("conv", ["locally_connected", "tiled"])
def test_muon_refuses_parameters_that_are_no_filter_bank(conv: str) -> None:
    # it orthogonalized locally_connected's per-position weights as one matrix and normalised its 3-D bias
    from cnnpl.checks import check_muon_filters
    from cnnpl.config import compose
    from cnnpl.network import build_model
    from cnnpl.train import checked_optimizer

    cfg = compose(["model=simple_cnn_bn", f"conv={conv}", "optimizer=muon"])
    net = build_model(cfg, 10, 3, (32, 32))
    with pytest.raises(
        CnnplError, match=rf"^optimizer=muon steps every parameter .* but features\.block1\.conv\.\w+ \(conv={conv}\)"
    ):
        check_muon_filters(net, checked_optimizer(cfg), {"conv": conv})
    # a pool's parameter is named with its pool, not blamed on the conv
    cfg = compose(["model=simple_cnn_bn", "pool=gated", "optimizer=muon"])
    with pytest.raises(
        CnnplError, match=r"features\.block1\.pool\.mask \(pool=gated\) of shape \(1, 1, 2, 2\) .* choose another pool"
    ):
        check_muon_filters(
            build_model(cfg, 10, 3, (32, 32)), checked_optimizer(cfg), {"conv": "conv2d", "pool": "gated"}
        )
    for fine in ("conv2d", "conv3d_channels", "depthwise_separable"):
        cfg = compose(["model=simple_cnn_bn", f"conv={fine}", "optimizer=muon"])
        check_muon_filters(build_model(cfg, 10, 3, (32, 32)), checked_optimizer(cfg), {"conv": fine})


def test_muon_resetting_filters_in_a_network_without_norm_layers_is_warned_about(caplog) -> None:
    # helper-128: docs/training.md calls normalize_filters harmful without a batch norm after each conv; no word
    from cnnpl.checks import warn_muon_without_norm
    from cnnpl.config import compose
    from cnnpl.network import build_model
    from cnnpl.train import checked_optimizer

    with caplog.at_level("WARNING", logger="cnnpl.checks"):
        for overrides in (
            ["model=simple_cnn", "optimizer=muon"],
            ["model=simple_cnn", "optimizer=muon", "optimizer.normalize_filters=false"],
            ["model=simple_cnn_bn", "optimizer=muon"],
            ["model=simple_cnn"],
            ["model=simple_cnn_bn", "norm=identity", "optimizer=muon"],
            ["model=simple_cnn", "norm=identity", "optimizer=muon"],
        ):
            cfg = compose(overrides)
            unused: list[str] = []
            net = build_model(cfg, 10, 3, (32, 32), unused)
            norm = cfg.norm.name if "norm" not in unused else None  # as train.run: the norm the model built
            warn_muon_without_norm(net, checked_optimizer(cfg), cfg.model.name, norm)
    start = (
        "optimizer=muon resets every conv's filters to the norm sqrt(out_channels) before each step "
        "(optimizer.normalize_filters=true), which only a batch norm after each conv makes harmless, and "
    )
    remedy = "add optimizer.normalize_filters=false (the filters then take weight_decay), "
    assert [r.getMessage() for r in caplog.records] == [
        f"{start}model=simple_cnn has no normalization layers: {remedy}or train a model with batch norm "
        "(simple_cnn_bn, fast_net)",
        # helper-129: a batch-norm model without its batch norms is told of norm=batch, not of itself
        f"{start}model=simple_cnn_bn with norm=identity has no normalization layers: {remedy}or norm=batch",
        f"{start}model=simple_cnn has no normalization layers: {remedy}or train a model with batch norm "
        "(simple_cnn_bn, fast_net)",
    ]
