"""Loading torchvision state dicts into the zoo (no downloads: torchvision's own random initialisation)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision

import cnnpl
from cnnpl.errors import CnnplError
from cnnpl.pretrained import load_pretrained

# (our name, torchvision constructor kwargs, our kwargs for torchvision's layout, smallest affordable input)
TORCHVISION_LAYOUTS = [
    pytest.param("resnet18", {}, {"stem": "imagenet"}, 64, id="resnet18"),
    pytest.param("resnet50", {}, {"stem": "imagenet"}, 64, id="resnet50", marks=pytest.mark.slow),
    pytest.param(
        "inception_v3",
        {"aux_logits": False, "init_weights": True},  # the aux head needs 299x299 inputs to build
        {"stem": "imagenet"},
        75,
        id="inception_v3",
        marks=pytest.mark.slow,
    ),
    pytest.param("vgg16", {}, {"head": "imagenet"}, 32, id="vgg16", marks=pytest.mark.slow),
    pytest.param("vgg19", {}, {"head": "imagenet"}, 32, id="vgg19", marks=pytest.mark.slow),
]


def _save_torchvision(name: str, path: Path, **kwargs) -> torch.nn.Module:
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    torch.save(reference.state_dict(), path)
    return reference


@pytest.mark.parametrize(("name", "tv_kwargs", "our_kwargs", "size"), TORCHVISION_LAYOUTS)
def test_torchvision_state_dict_gives_identical_outputs(name, tv_kwargs, our_kwargs, size, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = _save_torchvision(name, tmp_path / "weights.pth", **tv_kwargs)
    ours = cnnpl.build(
        "model", name, num_classes=1000, input_size=(size, size), pretrained=str(tmp_path / "weights.pth"), **our_kwargs
    ).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))
    # the norm factory is configured as the command line does; torchvision's Inception wants eps=1e-3
    assert list(ours.state_dict()) == list(reference.state_dict())  # in torchvision's order too


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    _save_torchvision("resnet18", path)
    return path


def test_new_head_for_another_number_of_classes(resnet18_file: Path) -> None:
    reference = torch.load(resnet18_file, weights_only=True)
    net = cnnpl.build("model", "resnet18", num_classes=10, input_size=(64, 64), stem="imagenet")
    report = load_pretrained(net, resnet18_file)
    assert report.fresh_head == ["fc.weight", "fc.bias"]
    assert net.fc.weight.shape == (10, 512)
    torch.testing.assert_close(net.layer4[1].conv2.weight, reference["layer4.1.conv2.weight"])
    with pytest.raises(
        CnnplError, match=r"the classifier head does not fit \(fc\.weight, fc\.bias\); set model\.new_head"
    ):
        load_pretrained(net, resnet18_file, new_head=False)


def test_new_head_true_starts_a_fresh_head_even_when_it_fits(resnet18_file: Path) -> None:
    net = cnnpl.build("model", "resnet18", num_classes=1000, input_size=(64, 64), stem="imagenet")
    before = net.fc.weight.detach().clone()
    report = load_pretrained(net, resnet18_file, new_head=True)
    assert report.fresh_head == ["fc.weight", "fc.bias"]
    assert torch.equal(net.fc.weight, before)


def test_freeze_features_leaves_only_the_head_trainable(resnet18_file: Path) -> None:
    net = cnnpl.build(
        "model", "resnet18", num_classes=10, input_size=(64, 64), stem="imagenet",
        pretrained=str(resnet18_file), freeze_features=True,
    )  # fmt: skip
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]


def test_mismatch_names_the_first_offending_keys(resnet18_file: Path) -> None:
    # the CIFAR stem's 3x3 conv1 is not torchvision's 7x7
    with pytest.raises(
        CnnplError,
        match=r"pretrained weights do not fit ResNet18: 1 with another shape: conv1\.weight \(file \(64, 3, 7, 7\), "
        r"model \(64, 3, 3, 3\)\); the model has the CIFAR stem \(model\.stem=cifar\): ImageNet weights need "
        r"model\.stem=imagenet$",  # helper-128: the fix was on the page only
    ):
        cnnpl.build("model", "resnet18", num_classes=10, input_size=(32, 32), pretrained=str(resnet18_file))


def test_the_stem_hint_is_for_imagenet_weights_only() -> None:
    # helper-129: a 1-channel CIFAR-stem file was told it needed model.stem=imagenet
    net = cnnpl.build("model", "resnet18", num_classes=10, input_size=(32, 32))
    state = {**net.state_dict(), "conv1.weight": torch.zeros(64, 1, 3, 3)}
    with pytest.raises(CnnplError) as err:
        load_pretrained(net, state)
    assert str(err.value).endswith("conv1.weight (file (64, 1, 3, 3), model (64, 3, 3, 3))")


def test_missing_and_unexpected_keys_are_named(resnet18_file: Path, tmp_path: Path) -> None:
    state = torch.load(resnet18_file, weights_only=True)
    del state["layer1.0.bn1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    net = cnnpl.build("model", "resnet18", num_classes=10, input_size=(64, 64), stem="imagenet")
    with pytest.raises(
        CnnplError, match=r"1 missing from the file: layer1\.0\.bn1\.weight; 1 the model does not have: extra\.weight"
    ):
        load_pretrained(net, tmp_path / "broken.pth")


def test_unreadable_files_fail_clearly(tmp_path: Path) -> None:
    net = cnnpl.build("model", "lenet5", num_classes=10)
    with pytest.raises(CnnplError, match=r"does not exist; set model\.pretrained"):
        load_pretrained(net, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CnnplError) as caught:
        load_pretrained(net, tmp_path / "junk.pth")
    assert str(caught.value) == (
        f"cannot read pretrained weights '{tmp_path / 'junk.pth'}': it is not a file written by torch.save "
        "(Unsupported operand 110); save a network's weights with torch.save(model.state_dict(), path)"
    )
    # a short text file: torch's old-format reader fails with a bare KeyError of the byte it read ("101")
    (tmp_path / "hello.pth").write_text("hello")
    with pytest.raises(CnnplError) as caught:
        load_pretrained(net, tmp_path / "hello.pth")
    assert str(caught.value) == (
        f"cannot read pretrained weights '{tmp_path / 'hello.pth'}': it is not a complete file written by torch.save "
        "(neither a zip archive nor an old-style torch file); save a network's weights with "
        "torch.save(model.state_dict(), path)"
    )
    with pytest.raises(CnnplError, match=r" is a folder; give a weights file \(a \.pth\) in it$"):
        load_pretrained(net, tmp_path)
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(CnnplError, match=r"not a state dict"):
        load_pretrained(net, tmp_path / "list.pth")
    with pytest.raises(CnnplError, match=r"freeze_features=true needs model\.pretrained"):
        cnnpl.build("model", "lenet5", num_classes=10, freeze_features=True)


def test_inception_without_aux_head_ignores_the_files_aux_weights(tmp_path: Path) -> None:
    with torch.device("meta"):
        reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    state = {k: torch.zeros(v.shape) for k, v in reference.state_dict().items()}
    net = cnnpl.build("model", "inception_v3", num_classes=1000, input_size=(75, 75), stem="imagenet")
    report = load_pretrained(net, state)
    assert not any(k.startswith("AuxLogits") for k in report.loaded)
    assert len(report.loaded) == len(net.state_dict())


@pytest.mark.slow
@pytest.mark.parametrize("unfrozen", [[], ["model.freeze_features=false"]])
def test_finetune_vgg16_without_weights_is_refused(unfrozen: list[str]) -> None:
    # its "pretrained: ???" had never applied (Hydra keeps model/vgg16.yaml's null under it): with
    # freeze_features=false the run fine-tuned random weights and reported that as its result
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["experiment=finetune_vgg16", "data=shapes", *unfrozen])
    assert cfg.model.pretrained is None
    with pytest.raises(CnnplError, match=r"^model\.(new_head|freeze_features)=true .*model\.pretrained"):
        build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))


def test_finetune_vgg16_experiment_trains_only_a_new_head(tmp_path: Path, tiny_overrides: list[str]) -> None:
    # the convolutional base of torchvision's vgg16 (the classifier is replaced anyway)
    torch.manual_seed(0)
    base = {k: v for k, v in torchvision.models.vgg16(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(base, tmp_path / "vgg16.pth")
    cfg = cnnpl.compose(
        ["experiment=finetune_vgg16", f"model.pretrained={tmp_path / 'vgg16.pth'}", *tiny_overrides,
         "data.num_train=64", "data.num_test=32", "logger=csv", "callbacks=minimal", "trainer.max_epochs=1",
         "scheduler=none"],
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    from cnnpl.network import build_model

    net = build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    assert net.classifier[-1].out_features == 10
    assert [n for n, p in net.named_parameters() if p.requires_grad] == [
        n for n, _ in net.named_parameters() if n.startswith("classifier.")
    ]
    torch.testing.assert_close(net.features[28].weight, base["features.28.weight"])
    metrics = cnnpl.train(cfg)
    assert "test/acc" in metrics
    # render rebuilds the run without its weights file (moved, or on another machine): the checkpoint has
    # every weight; new_head=true, which needs the file, must not stop it (it did for a day)
    from cnnpl.render import load_checkpoint

    (tmp_path / "vgg16.pth").unlink()
    rebuilt, _, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    trained = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    torch.testing.assert_close(rebuilt.classifier[-1].weight, trained["net.classifier.6.weight"])


def test_a_cnnpl_checkpoint_gives_its_networks_weights(tmp_path: Path) -> None:
    # a python -m cnnpl checkpoint keeps the network under "net." in Lightning's "state_dict", beside
    # tensors of the LightningModule's own (its metrics' states)
    trained = cnnpl.build("model", "simple_cnn_bn", num_classes=10, input_size=(32, 32))
    state = {f"net.{key}": value for key, value in trained.state_dict().items()}
    state["train_loss.mean_value"] = torch.tensor(0.5)
    torch.save({"state_dict": state, "epoch": 3, "global_step": 120}, tmp_path / "last.ckpt")
    fresh = cnnpl.build("model", "simple_cnn_bn", num_classes=10, input_size=(32, 32))
    report = load_pretrained(fresh, tmp_path / "last.ckpt", new_head=False)
    assert len(report.loaded) == len(trained.state_dict())
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_a_fresh_head_over_a_checkpoints_fitting_one_is_warned_about(tmp_path: Path, caplog) -> None:
    # helper-128: experiment=finetune_vgg16's second stage from the first stage's last.ckpt replaced the classifier
    # that stage trained (new_head=true) without a word
    from cnnpl.pretrained import apply_pretrained

    trained = cnnpl.build("model", "simple_cnn_bn", num_classes=10, input_size=(32, 32))
    torch.save({"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "last.ckpt")
    torch.save(trained.state_dict(), tmp_path / "weights.pth")
    with caplog.at_level("WARNING", logger="cnnpl.pretrained"):
        for new_head, file in ((None, "last.ckpt"), (True, "weights.pth"), (True, "last.ckpt")):
            fresh = cnnpl.build("model", "simple_cnn_bn", num_classes=10, input_size=(32, 32))
            apply_pretrained(fresh, str(tmp_path / file), new_head=new_head)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"SimpleCNNBN: model.new_head=true gave it a fresh classifier, though the one in {tmp_path / 'last.ckpt'} fits "
        "(a trained head, as a first fine-tuning stage leaves): give model.new_head=null to keep it"
    ]
    assert not torch.equal(fresh.classifier[-1].weight, trained.classifier[-1].weight)  # what it says


def test_a_cnnpl_checkpoint_with_a_layers_extra_state_loads(tmp_path: Path) -> None:
    # conv=locally_connected keeps its input size as extra state (a dict, no tensor) in every state dict
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["data=shapes", "model=lenet5", "conv=locally_connected"])
    trained = build_model(cfg, 10, 1, (32, 32))
    assert any(key.endswith("_extra_state") for key in trained.state_dict())
    torch.save({"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "last.ckpt")
    fresh = build_model(cfg, 10, 1, (32, 32))
    load_pretrained(fresh, tmp_path / "last.ckpt", new_head=False)
    for key, value in trained.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(fresh.state_dict()[key], value), key


def test_a_sweeps_check_of_its_jobs_loads_the_weights_without_a_word(tmp_path: Path, caplog) -> None:
    # helper-129: the check before a sweep's jobs built each job's network with its weights, and the fresh-head
    # warning came twice per job (once there, once in the job); a file that does not fit is still refused there
    from cnnpl.train import check_network_shape, checked_datamodule

    base = ["data=shapes", "model=simple_cnn_bn", "model.new_head=true"]
    datamodule = checked_datamodule(cnnpl.compose(base))
    num_classes, _, size = datamodule.known_shape()
    trained = cnnpl.build("model", "simple_cnn_bn", num_classes=num_classes, input_size=size)
    torch.save({"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}}, tmp_path / "last.ckpt")
    with caplog.at_level("INFO", logger="cnnpl.pretrained"):
        check_network_shape(cnnpl.compose([*base, f"model.pretrained={tmp_path / 'last.ckpt'}"]), datamodule)
    assert not [r for r in caplog.records if r.name == "cnnpl.pretrained"]
    assert not logging.getLogger("cnnpl.pretrained").disabled  # the job's own loading is still told

    other = cnnpl.build("model", "simple_cnn_bn", num_classes=num_classes, input_size=size, channels=[8, 16, 32])
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(CnnplError, match="pretrained weights do not fit SimpleCNNBN"):
        check_network_shape(cnnpl.compose([*base, f"model.pretrained={tmp_path / 'other.pth'}"]), datamodule)
