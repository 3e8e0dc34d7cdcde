"""The fast recipe's parts: fast_net's whitening, the system's hooks, lookahead, freezing, no validation split."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import OmegaConf
from tests.conftest import TINY
from tests.test_cli import scalars
from torch import nn

import cnnpl
from cnnpl import viz
from cnnpl.callbacks import FreezeAfter, Lookahead
from cnnpl.data.shapes import ShapesDataModule
from cnnpl.errors import CnnplError
from cnnpl.factory import factory
from cnnpl.models.fast_net import FastNet, PatchWhitening
from cnnpl.optim import Muon
from cnnpl.system import ImageClassifier

SMALL = dict(num_classes=10, widths=(8, 16, 16))


def correlated_images(n: int = 64, size: int = 16) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated (like photographs)."""
    base = torch.randn(n, 3, size, size)
    return base + 0.8 * base.roll(1, dims=3) + 0.6 * base.roll(1, dims=2) + 0.5 * base.mean(1, keepdim=True)


def test_whitening_filters_decorrelate_patches_to_unit_variance() -> None:
    images = correlated_images()
    layer = PatchWhitening(in_channels=3, kernel_size=2, eps=1e-6)
    layer.init_from_data(images)
    out = F.conv2d(images, layer.weight[:12])  # the positive half: one output per principal component
    flat = out.transpose(0, 1).reshape(12, -1).double()
    second_moment = flat @ flat.T / flat.shape[1]
    assert torch.allclose(second_moment, torch.eye(12, dtype=torch.double), atol=1e-3)
    assert torch.equal(layer.weight[12:], -layer.weight[:12])
    assert not layer.weight.requires_grad and layer.bias.requires_grad and bool(layer.initialised)


def test_whitening_orders_components_by_variance() -> None:
    images = correlated_images()
    layer = PatchWhitening(eps=0.0)
    layer.init_from_data(images)
    # un-whitened projections: filter norms are 1 / sqrt(eigenvalue), largest eigenvalue first
    norms = layer.weight[:12].flatten(1).norm(dim=1)
    assert torch.all(norms[1:] >= norms[:-1])


def test_fast_net_builds_from_the_registry_and_checks_its_widths() -> None:
    net = cnnpl.build("model", "fast_net", **SMALL)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.stages == ["features.group1", "features.group2", "features.group3"]
    with pytest.raises(CnnplError, match=r"model\.widths"):
        FastNet(num_classes=10, widths=(8, 0))
    with pytest.raises(CnnplError, match="bias_lr_scale"):
        FastNet(num_classes=10, bias_lr_scale=0)


def test_fast_net_convolutions_start_as_partial_identities() -> None:
    net = FastNet(**SMALL)
    conv = net.features.group2.conv2  # 16 -> 16 channels: the whole conv is an identity at first
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(conv(x), x)


def test_param_groups_cover_every_trainable_parameter_once() -> None:
    net = FastNet(**SMALL, bias_lr_scale=64)
    groups = net.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters() if p.requires_grad)
    norm_biases = {id(m.bias) for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in groups[0]["params"]} == norm_biases
    assert groups[0]["lr_scale"] == 64 and groups[0]["weight_decay_scale"] == 1 / 64
    assert not any(m.weight.requires_grad for m in net.modules() if isinstance(m, nn.BatchNorm2d))


class _Record(L.Callback):
    """Remembers the optimizer's groups and the whitening filters once training has started."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        if batch_idx == 0:
            self.groups = [(g["lr"], g["weight_decay"], len(g["params"])) for g in trainer.optimizers[0].param_groups]
            self.whiten = pl_module.net.whiten.weight.detach().clone()


def _fit(
    system: ImageClassifier, datamodule: ShapesDataModule, *callbacks: L.Callback, max_epochs: int = 1, **fit
) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(system, datamodule=datamodule, **fit)
    return trainer


def test_system_initialises_from_data_and_scales_the_groups() -> None:
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    net = FastNet(**SMALL, bias_lr_scale=10)
    sgd = partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-3)
    system = ImageClassifier(net, 10, sgd, init_samples=64)
    record = _Record()
    _fit(system, datamodule, record)

    expected = PatchWhitening()
    expected.init_from_data(datamodule.normalize(datamodule.split("train").images[:64]))
    assert torch.allclose(record.whiten, expected.weight)
    (bias_lr, bias_wd, n_biases), (lr, wd, _) = record.groups
    assert n_biases == 6 and bias_lr == pytest.approx(1.0) and bias_wd == pytest.approx(1e-4)
    assert lr == pytest.approx(0.1) and wd == pytest.approx(1e-3)


def test_resumed_training_keeps_the_checkpointed_whitening(tmp_path: Path) -> None:
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL), 10)
    trainer = _fit(system, datamodule)
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    trained = system.net.whiten.weight.detach().clone()

    fresh = ImageClassifier(FastNet(**SMALL), 10)
    record = _Record()
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    _fit(fresh, datamodule, record, max_epochs=2, ckpt_path=tmp_path / "a.ckpt")
    assert torch.equal(record.whiten, trained)  # not recomputed from data on resume


class _Sides(L.Callback):
    """Records the side of every training batch the network receives, per epoch."""

    def __init__(self) -> None:
        self.sides: dict[int, set[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.sides.setdefault(trainer.current_epoch, set()).add(batch[0].shape[-1])


def test_progressive_resizing_trains_small_first_and_resumes_at_the_right_size(tmp_path: Path) -> None:
    def datamodule() -> ShapesDataModule:
        return ShapesDataModule(num_train=200, num_test=20, batch_size=16, train_sizes=[16, 24])

    system = ImageClassifier(FastNet(**SMALL), 10)
    whole = _Sides()
    _fit(system, datamodule(), whole, max_epochs=3)
    assert whole.sides == {0: {16}, 1: {24}, 2: {32}}

    first = ImageClassifier(FastNet(**SMALL), 10)
    _fit(first, datamodule(), max_epochs=1).save_checkpoint(tmp_path / "epoch0.ckpt")
    resumed = _Sides()
    _fit(ImageClassifier(FastNet(**SMALL), 10), datamodule(), resumed, max_epochs=3, ckpt_path=tmp_path / "epoch0.ckpt")
    assert resumed.sides == {1: {24}, 2: {32}}


def test_flip_and_translate_tta_average_the_expected_views() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    images = torch.randn(2, 3, 8, 8)
    net(images)
    system = ImageClassifier(net, 10, tta_flip=True, tta_translate=1).eval()

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return (net(x) + net(x.flip(3))) / 2

    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    expected = mirrored(images) / 2 + (mirrored(padded[..., :8, :8]) + mirrored(padded[..., 2:, 2:])) / 4
    with torch.no_grad():
        assert torch.allclose(system._predict(images), expected, atol=1e-6)
        # what render's confusion matrix and PR curves predict with (helper-103: it ignored the run's views)
        assert torch.allclose(viz.predict(net, images, tta_flip=True, tta_translate=1), expected, atol=1e-6)
        assert torch.allclose(viz.predict(net, images), net(images), atol=1e-6)


def test_channels_last_gives_the_same_logits_and_compile_keeps_parameter_names() -> None:
    torch.manual_seed(0)
    net = FastNet(**SMALL).eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = net(images)
        system = ImageClassifier(net, 10, memory_format="channels_last")
        assert net.features.group1.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(system(images), expected, atol=1e-5)
    names = set(ImageClassifier(FastNet(**SMALL), 10).state_dict())
    assert set(ImageClassifier(FastNet(**SMALL), 10, compile=True).state_dict()) == names
    # only 4-D tensors change layout: a Conv3d's 5-D weights stay as they are
    conv3d = cnnpl.build("model", "simple_cnn", num_classes=10, conv=factory("conv", "conv3d_channels"))
    ImageClassifier(conv3d, 10, memory_format="channels_last")(images).sum().backward()
    with pytest.raises(CnnplError, match="memory_format"):
        ImageClassifier(FastNet(**SMALL), 10, memory_format="nhwc")


def _lookahead_step(callback: Lookahead, module: nn.Module, step: int, total: int) -> None:
    trainer = SimpleNamespace(global_step=step, estimated_stepping_batches=total)
    callback.on_train_batch_end(trainer, module, None, None, step - 1)  # type: ignore[arg-type]


def test_lookahead_follows_its_definition() -> None:
    module = nn.Linear(3, 2)
    callback = Lookahead(every=2, decay=0.5, ramp_power=1.0)
    total, slow = 6, None
    for step in range(1, total + 1):
        with torch.no_grad():
            module.weight.add_(1.0)  # a stand-in for an optimizer step
        before = module.weight.detach().clone()
        _lookahead_step(callback, module, step, total)
        if step % 2 == 0:
            decay = 1.0 if step == total else 0.5 * step / total
            slow = before.clone() if slow is None else decay * slow + (1 - decay) * before
            assert torch.allclose(module.weight, slow)  # the fast weights restart from the slow ones
        else:
            assert torch.equal(module.weight, before)


def test_lookahead_state_survives_a_checkpoint() -> None:
    module = nn.Linear(3, 2)
    callback = Lookahead(every=1)
    _lookahead_step(callback, module, 1, 10)
    restored = Lookahead(every=1)
    restored.load_state_dict(callback.state_dict())
    assert restored._last_step == 1 and torch.equal(restored.slow["weight"], callback.slow["weight"])
    with pytest.raises(CnnplError, match="lookahead"):
        Lookahead(decay=1.5)


def test_lookahead_averages_a_tensor_registered_under_two_names_once() -> None:
    # fast_net's whitening layer is net.whiten and net.features.whiten: its bias was blended twice a step
    net = FastNet(**SMALL)
    callback = Lookahead(every=1, decay=0.5, ramp_power=0.0)
    _lookahead_step(callback, net, 1, 10)
    assert "features.whiten.bias" not in callback.slow and "whiten.bias" in callback.slow
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    _lookahead_step(callback, net, 2, 10)
    start = callback.slow["whiten.bias"]  # after the step: slow = fast = start + 0.5
    assert torch.allclose(net.whiten.bias, start) and torch.allclose(
        net.classifier.weight, callback.slow["classifier.weight"]
    )
    moved = {name: (net.get_parameter(name) - before).mean().item() for name, before in [
        ("whiten.bias", start - 0.5), ("classifier.weight", callback.slow["classifier.weight"] - 0.5)]}  # fmt: skip
    assert moved == pytest.approx({"whiten.bias": 0.5, "classifier.weight": 0.5})
    # a checkpoint of before, with both names, still loads and updates, also on another device ("meta" stands in
    # for a GPU: a checkpoint loads onto the CPU, and dropping the second name once skipped the move)
    for device in ("cpu", "meta"):
        old = Lookahead(every=1, decay=0.5, ramp_power=0.0)
        slow = {**callback.slow, "features.whiten.bias": start.clone()}
        old.load_state_dict({"slow": {k: v.clone() for k, v in slow.items()}, "last_step": 2})
        _lookahead_step(old, copy.deepcopy(net).to(device), 3, 10)
        assert "features.whiten.bias" not in old.slow and {t.device.type for t in old.slow.values()} == {device}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"every": "abc"}, "callbacks.lookahead.every must be an integer >= 1, got 'abc'"),
        ({"every": 1.5}, "callbacks.lookahead.every must be an integer >= 1, got 1.5"),
        ({"decay": None}, "callbacks.lookahead.decay must be a number in [0, 1), got null"),
        ({"ramp_power": -1}, "callbacks.lookahead.ramp_power must be a number >= 0, got -1"),
    ],
)
def test_lookahead_settings_are_refused_by_name(settings: dict, message: str) -> None:
    with pytest.raises(CnnplError) as err:
        Lookahead(**settings)
    assert str(err.value) == message
    with pytest.raises(CnnplError, match=r"^callbacks\.freeze\.epochs must be an integer >= 0, got 'abc'$"):
        FreezeAfter(["net.whiten.bias"], epochs="abc")  # type: ignore[arg-type]


def test_lookahead_refuses_a_run_without_an_end() -> None:
    # its decay ramps over estimated_stepping_batches: an OverflowError after the first batch
    endless = SimpleNamespace(max_epochs=-1, max_steps=-1)
    with pytest.raises(CnnplError, match=r"^callbacks\.lookahead ramps its decay over the whole run"):
        Lookahead().setup(endless, None, "fit")  # type: ignore[arg-type]
    Lookahead().setup(SimpleNamespace(max_epochs=-1, max_steps=50), None, "fit")  # type: ignore[arg-type]


def test_lookahead_slow_weights_follow_the_module_to_its_device() -> None:
    # a checkpoint loads onto the CPU; a run resumed on a GPU has its module there ("meta" stands in)
    restored = Lookahead(every=1)
    restored.load_state_dict({"slow": {k: v.cpu() for k, v in nn.Linear(3, 2).state_dict().items()}, "last_step": 1})
    _lookahead_step(restored, nn.Linear(3, 2, device="meta"), 2, 10)
    assert {t.device.type for t in restored.slow.values()} == {"meta"}


class _EpochEnds(L.Callback):
    """The whitening bias and filters at each training epoch's end, and whether the bias took gradients."""

    def __init__(self) -> None:
        self.biases: list[torch.Tensor] = []
        self.filters: list[torch.Tensor] = []
        self.bias_trainable: list[bool] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.biases.append(pl_module.net.whiten.bias.detach().clone())
        self.filters.append(pl_module.net.whiten.weight.detach().clone())
        self.bias_trainable.append(pl_module.net.whiten.bias.requires_grad)


def test_freeze_after_trains_the_parameters_then_leaves_them_alone() -> None:
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    sgd = partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-2)
    system = ImageClassifier(FastNet(**SMALL), 10, sgd)
    start = system.net.whiten.bias.detach().clone()
    ends = _EpochEnds()
    # net.whiten.weight is frozen for good (requires_grad=False): naming it must not train it
    _fit(system, datamodule, FreezeAfter(["net.whiten.bias", "net.whiten.weight"], epochs=2), ends, max_epochs=4)
    assert not torch.equal(ends.biases[0], start) and not torch.equal(ends.biases[1], ends.biases[0])
    assert torch.equal(ends.biases[3], ends.biases[1]) and torch.equal(ends.biases[2], ends.biases[1])
    # frozen epochs compute no gradient for it; after training it is trainable again, as before
    assert ends.bias_trainable == [True, True, False, False]
    assert system.net.classifier.weight.requires_grad and system.net.whiten.bias.requires_grad
    assert not system.net.whiten.weight.requires_grad  # set from data once, then never trained
    assert all(torch.equal(f, ends.filters[0]) for f in ends.filters)


class _GroupEnds(L.Callback):
    """The first conv group's parameters at each training epoch's end, and which of them took gradients."""

    def __init__(self) -> None:
        self.values: list[list[torch.Tensor]] = []
        self.trainable: list[list[bool]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        group = list(pl_module.net.features.group1.parameters())
        self.values.append([p.detach().clone() for p in group])
        self.trainable.append([p.requires_grad for p in group])


def test_freeze_after_a_module_name_freezes_all_its_parameters() -> None:
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL), 10, partial(torch.optim.SGD, lr=0.1, momentum=0.9))
    group = system.net.features.group1
    before = [p.requires_grad for p in group.parameters()]
    assert any(before) and not all(before)  # conv filters and norm biases train, norm weights are fixed
    start = [p.detach().clone() for p in group.parameters()]
    classifier = system.net.classifier.weight.detach().clone()
    ends = _GroupEnds()
    _fit(system, datamodule, FreezeAfter(["net.features.group1"], epochs=1), ends, max_epochs=3)
    trained = [i for i, flag in enumerate(before) if flag]
    assert all(not torch.equal(ends.values[0][i], start[i]) for i in trained)  # trained in the first epoch
    assert all(torch.equal(a, b) for a, b in zip(ends.values[1], ends.values[0], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(ends.values[2], ends.values[0], strict=True))
    assert ends.trainable == [before, [False] * len(before), [False] * len(before)]
    assert [p.requires_grad for p in group.parameters()] == before  # restored when training ends
    assert not torch.equal(system.net.classifier.weight, classifier)  # the rest trained on


def test_freeze_after_under_ddp_drops_gradients_and_keeps_requires_grad() -> None:
    # DDP's gradient reduction expects the same parameters every step: only the gradients go
    layer = nn.Linear(2, 2)
    callback = FreezeAfter(["weight"], epochs=1)
    callback.setup(None, layer, "fit")  # type: ignore[arg-type]
    trainer = SimpleNamespace(current_epoch=1, strategy=DDPStrategy())
    callback.on_train_epoch_start(trainer, layer)  # type: ignore[arg-type]
    assert layer.weight.requires_grad
    layer.weight.grad = torch.ones_like(layer.weight)
    callback.on_before_optimizer_step(trainer, layer, None)  # type: ignore[arg-type]
    assert layer.weight.grad is None and layer.bias.requires_grad


def test_freeze_after_names_a_missing_parameter() -> None:
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL), 10)
    with pytest.raises(CnnplError, match=r"net\.whiten\.bais not in the model.*net\.whiten\.bias"):
        _fit(system, datamodule, FreezeAfter(["net.whiten.bais"], epochs=1))
    with pytest.raises(CnnplError, match=r"net\.features\.group1\.pool has no parameters to freeze"):
        _fit(system, datamodule, FreezeAfter(["net.features.group1.pool"], epochs=1))
    with pytest.raises(CnnplError, match="epochs must be an integer >= 0, got -1"):
        FreezeAfter(["net.whiten.bias"], epochs=-1)


def test_freezing_every_parameter_that_trains_is_refused_before_training() -> None:
    # helper-137: "element 0 of tensors does not require grad and does not have a grad_fn" at that epoch's first step
    system = ImageClassifier(FastNet(**SMALL), 10)
    with pytest.raises(CnnplError) as err:
        FreezeAfter(["net"], epochs=1).check_network(system)
    assert str(err.value) == (
        "callbacks.freeze.parameters: net holds every parameter that trains, so from epoch 1 on nothing would; "
        "freeze a part of the model, or end the run there (trainer.max_epochs=1)"
    )
    FreezeAfter(["net"], epochs=1).check_network(system, max_epochs=1)  # helper-138: what the advice says to do
    with pytest.raises(CnnplError, match="holds every parameter that trains"):
        FreezeAfter(["net"], epochs=1).check_network(system, max_epochs=2)
    for parameter in system.net.features.parameters():  # model.freeze_features: the head alone trains
        parameter.requires_grad_(False)
    with pytest.raises(CnnplError, match=r"holds every parameter that trains"):
        FreezeAfter([name for name, p in system.named_parameters() if p.requires_grad], epochs=0).check_network(system)
    FreezeAfter(["net.features"], epochs=0).check_network(system)  # frozen already: the rest trains


def test_freeze_after_callbacks_sharing_a_parameter_restore_it_as_it_was() -> None:
    # the whitening bias frozen by its own name after 1 epoch, and again with its module after 2
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL), 10)
    ends = _EpochEnds()
    _fit(system, datamodule, FreezeAfter(["net.whiten.bias"], 1), FreezeAfter(["net.whiten"], 2), ends, max_epochs=3)
    assert ends.bias_trainable == [True, False, False]
    assert system.net.whiten.bias.requires_grad and not system.net.whiten.weight.requires_grad


def _benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / f"benchmarks/{name}.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_fast_cifar10_benchmark_takes_overrides_after_its_seeds() -> None:
    bench = _benchmark("fast_cifar10")
    args = bench.parse_args(["a=1", "--seeds", "0", "1", "trainer.max_epochs=13", "+b=[x]"])
    assert args.seeds == [0, 1] and args.overrides == ["a=1", "trainer.max_epochs=13", "+b=[x]"]
    assert bench.parse_args([]).seeds == [0, 1]
    with pytest.raises(SystemExit):
        bench.parse_args(["--seeds", "trainer.max_epochs=13"])


def test_tta_benchmark_averages_the_views_as_the_classifier_does() -> None:
    bench = _benchmark("bench_tta")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    images = torch.randn(5, 3, 8, 8)
    net(images)
    with torch.no_grad():
        views = bench.averages(bench.shifted_views(net, [images[:3], images[3:]]))
        for tta, name in [(dict(tta_flip=True, tta_translate=1), "flip + diag2 (the recipes')"), ({}, "none")]:
            expected = ImageClassifier(net, 10, **tta).eval()._predict(images)
            assert torch.allclose(views[name][1], expected, atol=1e-6)
    assert views["flip + diag2 (the recipes')"][0] == 6 and views["flip + ring8"][0] == 18


def test_no_validation_split_never_validates_on_the_test_set() -> None:
    datamodule = ShapesDataModule(num_train=100, num_test=20, val_split=0.0)
    datamodule.setup("fit")
    assert not datamodule.has_validation and datamodule.val_dataloader() == []
    assert len(datamodule.split("train")) == 100


@pytest.mark.parametrize(
    ("experiment", "widths", "epochs", "precision"),
    [("fast_cifar10_bf16", [64, 256, 256], 10, "bf16-mixed"), ("fast_cifar10_wide", [48, 192, 192], 12, "32-true")],
)
def test_the_other_cpu_recipes_are_the_fast_recipe_resized(
    experiment: str, widths: list[int], epochs: int, precision: str
) -> None:
    fp32, other = (cnnpl.compose([f"experiment={name}"]) for name in ("fast_cifar10", experiment))
    assert list(fp32.model.widths) == [32, 128, 128] and fp32.trainer.max_epochs == 14
    assert list(other.model.widths) == widths and other.trainer.max_epochs == epochs
    assert other.trainer.precision == precision and fp32.trainer.precision == "32-true"
    for key in ("model.widths", "trainer.max_epochs", "trainer.precision"):
        OmegaConf.update(other, key, OmegaConf.select(fp32, key), merge=False)
    assert OmegaConf.to_container(other) == OmegaConf.to_container(fp32)  # nothing else differs


def test_the_cpu_recipes_train_filters_with_muon_and_the_gpu_variant_with_sgd_and_cudnns_autotuner() -> None:
    recipes = {name: cnnpl.compose([f"experiment={name}"]) for name in ("fast_cifar10", "fast_cifar10_gpu")}
    muon, sgd = (instantiate(recipes[name].optimizer) for name in recipes)
    assert muon.func is Muon and muon.keywords["filter_lr"] == 0.02 and muon.keywords["lr"] == 0.375
    assert sgd.func is torch.optim.SGD and sgd.keywords == {"lr": 1.5, "momentum": 0.85, "nesterov": True,
                                                            "weight_decay": 1.33e-3, "fused": True}  # fmt: skip
    # cuDNN's autotuner, as airbench94 (a CPU run has no cuDNN; the default leaves it off)
    assert recipes["fast_cifar10_gpu"].trainer.benchmark is True and recipes["fast_cifar10"].trainer.benchmark is False


@pytest.mark.parametrize("experiment", ["fast_cifar10", "fast_cifar10_bf16"])
def test_fast_recipe_runs_end_to_end_without_validation(cli, tmp_path: Path, experiment: str) -> None:
    overrides = [o for o in TINY if not o.startswith(("data.batch_size", "data.num_train"))]
    result = cli(
        f"experiment={experiment}",
        *overrides,
        "data.num_train=960",
        "data.batch_size=64",
        "trainer.max_epochs=2",
        "model.widths=[16,32,32]",
        "data.train_sizes=[24]",  # progressive resizing: epoch 0 on 24x24 images, epoch 1 full size
        "+callbacks.freeze_group1._target_=cnnpl.callbacks.FreezeAfter",  # docs/speed.md's option,
        "+callbacks.freeze_group1.parameters=[net.features.group1]",  # the first conv group frozen
        "+callbacks.freeze_group1.epochs=1",  # for the second epoch
        env={"PYTHONWARNINGS": "default"},  # warnings shown, as a user sees them
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "across ranks is zero" not in result.stderr  # no empty validation loop
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch001.ckpt", "last.ckpt"]
    logged = scalars(run)
    assert not any(tag.startswith("val/") for tag in logged), sorted(logged)
    assert len(logged["test/acc"]) == 1 and logged["test/acc"][0] > 0.2
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["state_dict"]["net.whiten.initialised"]
    assert state["callbacks"]["Lookahead"]["last_step"] == 30  # 960 images / 64 x 2 epochs


@pytest.fixture
def bench_script(monkeypatch) -> Iterator[Callable[[str], Any]]:
    """``bench_script(name)`` imports ``benchmarks/<name>.py`` as the script runs (its folder first on the path:
    bench_overhead_paired imports train_cifar10 from it); the scripts' modules and the model train_cifar10
    registers (bench_tiny) are gone after the test, so that a later import in this process runs them again."""
    folder = Path(__file__).parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    models = cnnpl.get_registry("model")
    monkeypatch.setattr(models, "_entries", dict(models._entries))
    before = set(sys.modules)
    yield importlib.import_module
    for name in set(sys.modules) - before:
        if Path(vars(sys.modules[name]).get("__file__") or "/").parent == folder:
            del sys.modules[name]


def test_the_overhead_benchmarks_pair_and_time_every_step(bench_script) -> None:
    paired_bench = bench_script("bench_overhead_paired")
    timer_bench = sys.modules["train_cifar10"]
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    optimizer = partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)
    system = ImageClassifier(FastNet(**SMALL), 10, optimizer, memory_format="channels_last", label_smoothing=0.1)
    paired, timer = paired_bench.PairedPlainStep(), timer_bench.TrainTimer()
    initial = system.net.classifier.weight.detach().clone()
    _fit(system, datamodule, paired, timer, max_epochs=2)

    # one plain step after each of the 2 x 2 Lightning steps; the first of each epoch has no pair
    assert len(paired.lightning) == len(paired.plain) == 2
    result = paired.result()
    assert sum(paired.plain) < result.plain_total < result.training and result.throughput_ratio > 0
    # the plain loop trains its own copy of the network
    assert isinstance(paired.net, FastNet) and paired.net is not system.net
    trained = paired.net.classifier.weight
    assert not torch.equal(trained, initial) and not torch.equal(trained, system.net.classifier.weight)
    # TrainTimer: every step's end, a NaN at each epoch's start; no step spans it
    assert len(timer.step_ends) == 2 * 3 and sum(t != t for t in timer.step_ends) == 2
    assert timer.result.step == timer_bench.median_step(timer.step_ends) > 0
    assert timer_bench.median_step([float("nan"), 0.0, 1.0, float("nan"), 5.0, 5.5]) == 0.75


def _forward_inputs(system: ImageClassifier) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The inputs of each forward of ``system.net`` and of the plain loop's copy of it (which gets the hook too)."""
    ours: list[torch.Tensor] = []
    plain: list[torch.Tensor] = []

    def record(net: nn.Module, args: tuple[torch.Tensor]) -> None:
        (ours if net is system.net else plain).append(args[0].detach().clone())

    system.net.register_forward_pre_hook(record)
    return ours, plain


def test_the_several_steps_prototype_steps_once_for_each_step_size_images(bench_script) -> None:
    paired_bench = bench_script("bench_overhead_paired")
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)  # a Lightning batch: 4 steps of 4
    optimizer = partial(torch.optim.SGD, lr=0.1)
    system = paired_bench.SeveralStepsClassifier(FastNet(**SMALL), 10, optimizer, step_size=4)
    ours, plain = _forward_inputs(system)
    paired = paired_bench.PairedPlainStep(step_size=4)
    trainer = _fit(system, datamodule, paired, max_epochs=2)

    assert trainer.global_step == 2 * 2 * 4  # 2 epochs of 2 Lightning batches, 4 optimizer steps each
    assert [len(x) for x in ours] == [len(x) for x in plain] == [4] * 16  # 4 plain steps after each batch
    for batch in range(4):  # each step trains on its own quarter of the batch
        quarters = ours[4 * batch : 4 * batch + 4]
        assert all(not torch.equal(a, b) for i, a in enumerate(quarters) for b in quarters[i + 1 :])
    # each kind of step timed per optimizer step; the first batch of each epoch is not paired
    assert len(paired.lightning) == len(paired.plain) == 2 and paired.step_size == 4
    assert paired.plain_total > 4 * sum(paired.plain) and paired.result().throughput_ratio > 0
    apart, together = paired_bench.augmentation_cost(datamodule, 4, 4, rounds=3)
    assert apart > 0 and together > 0


def test_the_plain_steps_run_in_blocks_for_the_control(bench_script) -> None:
    paired_bench = bench_script("bench_overhead_paired")
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    system = ImageClassifier(FastNet(**SMALL), 10, partial(torch.optim.SGD, lr=0.1))
    ours, plain = _forward_inputs(system)
    paired = paired_bench.PairedPlainStep(block=2)
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=5, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[paired],
    )  # fmt: skip
    trainer.fit(system, datamodule=datamodule)

    # a step each batch; in each epoch the plain steps run after batches 2 and 4 (only the second pair is
    # timed: nothing before the first), and the epoch's fifth is made up at its end, unpaired
    assert len(ours) == len(plain) == 10 and len(paired.lightning) == len(paired.plain) == 2
    assert paired.plain_total > 2 * sum(paired.plain)


def test_barebones_run_hands_out_several_steps_and_restores_the_batch_size(bench_script, monkeypatch) -> None:
    paired_bench = bench_script("bench_overhead_paired")
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    seen = {}

    def fit(cfg, dm, epochs, limit_batches, callback, classifier=None) -> None:  # None: not passed
        seen.update(batch_size=dm.batch_size, limit=limit_batches, callback=callback, classifier=classifier)

    monkeypatch.setattr(paired_bench, "barebones_fit", fit)
    paired_bench.barebones_run(None, datamodule, 1, 10, "as-configured", steps_per_batch=4)
    assert seen["batch_size"] == 64 and seen["limit"] == 3  # 10 steps: 3 batches of 4
    assert seen["classifier"].func is paired_bench.SeveralStepsClassifier
    assert seen["classifier"].keywords == {"step_size": 16} and seen["callback"].step_size == 16
    assert datamodule.batch_size == 16
    paired_bench.barebones_run(None, datamodule, 1, None, "as-configured", block=4)
    assert seen["batch_size"] == 16 and seen["classifier"] is None and seen["callback"].block == 4


def test_the_phase_benchmark_times_each_phase_of_both_steps(bench_script) -> None:
    bench = bench_script("bench_step_phases")
    fetch = torch.utils.data.dataloader._BaseDataLoaderIter.__next__
    datamodule = ShapesDataModule(num_train=200, num_test=20, batch_size=16)
    optimizer = partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)
    system = ImageClassifier(FastNet(**SMALL), 10, optimizer, memory_format="channels_last", label_smoothing=0.1)
    timer = bench.PhaseTimer()
    initial = system.net.classifier.weight.detach().clone()
    _fit(system, datamodule, timer, max_epochs=2)

    # one hand-written step after each of the 2 x 2 Lightning steps; the first of each epoch is not paired
    assert len(timer.lightning) == len(timer.plain) == 2
    for lightning, plain in zip(timer.lightning, timer.plain, strict=True):
        # every phase was timed in its step, in the order PHASES lists them
        for _, ours, theirs in [*bench.PHASES, ("step", *bench.TOTAL)]:
            assert bench.span(lightning, ours) > 0
            assert theirs is None or bench.span(plain, theirs) > 0
        assert lightning["batch_end"] < plain["start"]  # the hand-written step runs after Lightning's
    # the hand-written step trains its own copy of the network, which has none of the timing hooks
    assert isinstance(timer.net, FastNet) and timer.net is not system.net
    trained = timer.net.classifier.weight
    assert not torch.equal(trained, initial) and not torch.equal(trained, system.net.classifier.weight)
    assert not timer.net._forward_pre_hooks and not timer.net._forward_hooks
    # the wrapped DataLoader and data module methods are put back when the fit ends
    assert torch.utils.data.dataloader._BaseDataLoaderIter.__next__ is fetch
    assert "on_after_batch_transfer" not in vars(datamodule)


class HookCostSpy(L.Callback):
    """What a run ran with: its profiler, whether its callbacks' unused batch hooks were left, the NVML check."""

    last: HookCostSpy | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.profiler = type(trainer.profiler).__name__
        self.unused_hooks_left = [cb.on_after_backward is not None for cb in trainer.callbacks]
        self.setattr = type(pl_module).__setattr__
        self.nvml = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
        HookCostSpy.last = self


def test_the_overhead_benchmark_can_put_lightnings_hook_costs_back(tmp_path: Path, bench_script, monkeypatch) -> None:
    bench = bench_script("train_cifar10")
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning leaves it
    spy = f"+callbacks.spy._target_={HookCostSpy.__module__}.HookCostSpy"
    seen, metrics = [], []
    for i, costs in enumerate([bench.lightning_hook_costs(), contextlib.nullcontext()]):
        with costs as profiler:
            overrides = [*TINY, spy, *([profiler] if profiler else [])]
            metrics.append(cnnpl.train(cnnpl.compose(overrides, output_dir=str(tmp_path / str(i)))))
        assert HookCostSpy.last is not None
        seen.append(HookCostSpy.last)
    assert metrics[0] == metrics[1] and "test/acc" in metrics[0]  # the savings change no result
    lightnings, cnnpls = seen
    assert lightnings.profiler == "PassThroughProfiler" and cnnpls.profiler == "NullProfiler"
    assert all(lightnings.unused_hooks_left) and not any(cnnpls.unused_hooks_left)  # no callback uses it
    assert lightnings.setattr is nn.Module.__setattr__ and cnnpls.setattr is ImageClassifier.__setattr__
    assert lightnings.nvml == "1" and cnnpls.nvml == ("1" if nvml_loads() else None)  # dropped where NVML is missing
    assert ImageClassifier.__setattr__ is not nn.Module.__setattr__  # put back after the run


def nvml_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_the_python_gaps_benchmark_times_each_kind_of_gap(monkeypatch, capsys) -> None:
    bench = _benchmark("bench_python_gaps")
    argv = ["bench_python_gaps.py", "--batch-size", "2", "--objects", "50", "--blocks", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "ms |" not in line]
    cells = {cols[0]: cols[1:] for cols in ([c.strip() for c in row.split("|")[1:-1]] for row in rows)}
    assert list(cells) == ["none", "touch", "spin"]
    assert float(cells["none"][2]) == 0 and cells["none"][3] == ""  # no gaps: nothing to compare
    for kind in ("touch", "spin"):  # timed in the step, against five gaps' time alone
        assert float(cells[kind][0]) > 0 and float(cells[kind][2]) > 0 and float(cells[kind][3]) != 0
