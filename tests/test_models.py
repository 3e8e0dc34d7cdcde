"""The architecture zoo, tested from the registry: every model x every window pool x conv2d / true_conv2d.

Small-input ("cifar") layouts keep this affordable on a CPU; canonical-size parameter counts are
compared with torchvision (and Keras' published Xception count) on the meta device, without a
forward pass; one canonical-size forward per architecture is marked slow.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnpl
from cnnpl import viz
from cnnpl.errors import CnnplError, GeometryError
from cnnpl.factory import LayerFactory
from cnnpl.models._util import count_parameters
from cnnpl.registry import Entry, get_registry, parameters_of

CIFAR = dict(num_classes=10, in_channels=3, input_size=(32, 32))
MODELS = cnnpl.list_components("model")
# window pools: a pool without kernel_size (global pooling) is a head, not a drop-in for a window
POOLS = [p for p in cnnpl.list_components("pool") if "kernel_size" in parameters_of(get_registry("pool").get(p))]
CONVS = [c for c in ("conv2d", "true_conv2d") if c in cnnpl.list_components("conv")]
HEAVY = {"vgg16", "vgg19", "resnet18", "resnet50", "inception_v3", "xception"}  # > 0.3 GMAC per 32x32 image
# Members of one architecture class share its code and differ only in their plan: every pool is tried on
# the first member, the others get pool=max (with each conv).
PLAN_VARIANTS = {"vgg19": "vgg16", "resnet50": "resnet18"}
# Models that build no pooling layer at 32x32: another pool= would test pool=max again, so they get pool=max
# only (test_pool_free_models_build_no_pooling_layer_at_cifar_size keeps this list true)
POOL_FREE_AT_CIFAR_SIZE = {"notes_example", "resnet18"}
ZOO = ("simple_cnn_bn", "notes_example", "lenet5", "vgg16", "vgg19", "resnet18", "resnet50", "inception_v3", "xception")


class _CountingFactory(LayerFactory):
    """A pool factory that records how many layers an architecture builds with it."""

    def __call__(self, **kwargs):  # type: ignore[override]
        self.params["calls"].append(kwargs)  # type: ignore[index]
        return LayerFactory(self.family, self.name)(**kwargs)

    def __post_init__(self) -> None:  # the "calls" list is bookkeeping, not a pool parameter
        pass


@cache
def pool_layers(model: str) -> int:
    """How many layers ``model`` builds through its ``pool`` factory at CIFAR size."""
    calls: list[dict] = []
    with torch.device("meta"):
        cnnpl.build("model", model, **CIFAR, pool=_CountingFactory("pool", "max", {"calls": calls}))
    return len(calls)


def _meta_build(model: str, **kwargs) -> nn.Module:
    """Build on the meta device: the structure and the geometry checks, without memory or initialisation."""
    with torch.device("meta"):
        return cnnpl.build("model", model, **{**CIFAR, **kwargs})


def _matrix():
    for model in MODELS:
        for pool in ["max"] if model in PLAN_VARIANTS or model in POOL_FREE_AT_CIFAR_SIZE else POOLS:
            for conv in CONVS if pool == "max" or model not in HEAVY else ["conv2d"]:
                marks = [pytest.mark.slow] if model in HEAVY else []
                yield pytest.param(model, pool, conv, id=f"{model}-{pool}-{conv}", marks=marks)


@pytest.fixture
def _no_onednn():
    # oneDNN's per-shape set-up dominates a single tiny step of a deep network (3-4x on Inception)
    with torch.backends.mkldnn.flags(enabled=False):
        yield


@pytest.mark.usefixtures("_no_onednn")
@pytest.mark.parametrize(("model", "pool", "conv"), list(_matrix()))
def test_cifar_size_trains(model: str, pool: str, conv: str) -> None:
    torch.manual_seed(0)
    net = cnnpl.build("model", model, **CIFAR, pool=cnnpl.factory("pool", pool), conv=cnnpl.factory("conv", conv))
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-2)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same random draws (dropout, mixed / stochastic pooling) before and after
        logits = net(x)
        assert logits.shape == (2, 10)
        assert torch.isfinite(logits).all()
        return F.cross_entropy(logits, y)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after < before, f"one SGD step did not reduce the loss ({before.item():.4f} -> {after.item():.4f})"


def test_pool_free_models_build_no_pooling_layer_at_cifar_size() -> None:
    # the models test_cifar_size_trains tries with pool=max only; the plan variants follow their first member
    assert {m for m in MODELS if m not in PLAN_VARIANTS and pool_layers(m) == 0} == POOL_FREE_AT_CIFAR_SIZE


@pytest.mark.usefixtures("_no_onednn")
@pytest.mark.parametrize("model", MODELS)
def test_stages_name_modules_with_feature_maps(model: str) -> None:
    net = cnnpl.build("model", model, **CIFAR)
    modules = dict(net.named_modules())
    assert net.stages, f"{model} names no stages"
    seen = {}
    hooks = [modules[s].register_forward_hook(lambda m, i, o, s=s: seen.__setitem__(s, o.shape)) for s in net.stages]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert list(seen) == net.stages  # in forward order
    assert all(len(shape) == 4 for shape in seen.values())  # (N, C, H, W) feature maps


def test_vgg16_stages_are_the_ends_of_its_five_blocks() -> None:
    # the notes' "feature maps extracted from block 1 ... block 5 in the VGG16 model": each block's last conv,
    # after its ReLU, right before the block's max pooling
    net = cnnpl.build("model", "vgg16", **CIFAR)
    assert net.stages == ["features.3", "features.8", "features.15", "features.22", "features.29"]
    kinds = [type(m).__name__ for m in net.features]  # cnnpl's Conv2d and MaxPool, torch's ReLU
    previous_pool = -1
    for stage, convs in zip(net.stages, [2, 2, 3, 3, 3], strict=True):
        index = int(stage.split(".")[1])
        assert kinds[previous_pool + 1 : index + 1] == ["Conv2d", "ReLU"] * convs, stage  # the whole block
        assert kinds[index + 1] == "MaxPool", stage  # the block's pooling right after
        previous_pool = index + 1
    assert previous_pool == len(kinds) - 1


# -- canonical sizes: parameter counts equal the references ----------------------------------------


def _torchvision(name: str, **kwargs) -> nn.Module:
    import torchvision

    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None, **kwargs)


def _ours(name: str, size: int, **kwargs) -> nn.Module:
    with torch.device("meta"):  # no memory, no initialisation cost; geometry is still traced
        return cnnpl.build("model", name, num_classes=1000, in_channels=3, input_size=(size, size), **kwargs)


@pytest.mark.parametrize(
    ("name", "size", "reference"),
    [
        ("vgg16", 224, 138_357_544),
        ("vgg19", 224, 143_667_240),
        ("resnet18", 224, 11_689_512),
        ("resnet50", 224, 25_557_032),
    ],
)
def test_parameter_count_equals_torchvision(name: str, size: int, reference: int) -> None:
    assert count_parameters(_ours(name, size)) == count_parameters(_torchvision(name)) == reference


@pytest.mark.parametrize(("aux_logits", "reference"), [(False, 23_834_568), (True, 27_161_264)])
def test_inception_v3_parameter_count_equals_torchvision(aux_logits: bool, reference: int) -> None:
    ours = _ours("inception_v3", 299, aux_logits=aux_logits)
    theirs = _torchvision("inception_v3", aux_logits=aux_logits, init_weights=False)
    assert count_parameters(ours) == count_parameters(theirs) == reference


def test_inception_v3_without_batch_norm_scales_counts_as_keras() -> None:
    # keras.applications.InceptionV3(weights=None).summary(): Total params 23,851,784 (23,817,352 trainable);
    # its batch norms have no scale (BatchNormalization(scale=False)): norm.scale=false
    net = _ours("inception_v3", 299, norm=cnnpl.factory("norm", "batch", scale=False))
    assert count_parameters(net) == 23_817_352 == 23_834_568 - 17_216
    assert count_parameters(net, with_running_stats=True) == 23_851_784


@pytest.mark.parametrize("model", [m for m in MODELS if "norm" in parameters_of(get_registry("model").get(m))])
def test_every_normalising_model_builds_and_trains_without_batch_norm_scales(model: str) -> None:
    torch.manual_seed(0)
    net = cnnpl.build(
        "model",
        model,
        num_classes=10,
        in_channels=3,
        input_size=(32, 32),
        norm=cnnpl.factory("norm", "batch", scale=False),
    )
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.weight is None and m.bias is not None for m in norms)
    net(torch.randn(2, 3, 32, 32)).square().mean().backward()
    assert all(m.bias.grad is not None for m in norms)


def test_a_batch_norm_without_scale_scales_by_one() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    plain, free = (
        cnnpl.build("norm", "batch", num_features=3),
        cnnpl.build("norm", "batch", num_features=3, scale=False),
    )
    assert "weight" not in free.state_dict() and torch.allclose(free(x), plain(x))  # a fresh scale is 1
    with pytest.raises(GeometryError, match=r"^batch norm: norm.scale must be true or false, got 'no'$"):
        cnnpl.build("norm", "batch", num_features=3, scale="no")


def test_xception_parameter_count_equals_keras() -> None:
    net = _ours("xception", 299)
    # keras.applications.Xception(weights=None).summary(): Total params 22,910,480 (22,855,952 trainable)
    assert count_parameters(net, with_running_stats=True) == 22_910_480
    assert count_parameters(net) == 22_855_952
    separable = [m for m in net.modules() if type(m).__name__ == "SeparableConv"]
    assert len(separable) == 34
    assert all(m.depthwise.groups == m.depthwise.in_channels for m in separable)


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * (c_in * k * k + 1)


def _dense(n_in: int, n_out: int) -> int:
    return n_out * (n_in + 1)


def test_lenet5_parameter_count_from_its_definition() -> None:
    # 32x32 -> c1 5x5 -> 28 -> s2 -> 14 -> c3 5x5 -> 10 -> s4 -> 5: 5*5*16 = 400 features
    expected = _conv(1, 6, 5) + _conv(6, 16, 5) + _dense(400, 120) + _dense(120, 84) + _dense(84, 10)
    assert expected == 61_706
    net = cnnpl.build("model", "lenet5", num_classes=10, in_channels=1, input_size=(32, 32))
    assert count_parameters(net) == expected


def test_simple_cnn_bn_parameter_count_is_the_notes_keras_model() -> None:
    # the notes: 64x64x3 input, 2 classes; 64 -> 62 -> 31 -> 29 -> 14 -> 12 -> 6, so 6*6*128 = 4608 features
    convs = _conv(3, 32, 3) + _conv(32, 64, 3) + _conv(64, 128, 3)
    dense = _dense(4608, 512) + _dense(512, 256) + _dense(256, 128) + _dense(128, 2)
    norm_channels = 3 + 32 + 64 + 128  # the input batch norm, then one per conv block
    net = cnnpl.build("model", "simple_cnn_bn", num_classes=2, in_channels=3, input_size=(64, 64))
    assert count_parameters(net) == convs + dense + 2 * norm_channels == 2_617_992
    # Keras counts the running mean and variance too ("non-trainable params")
    assert count_parameters(net, with_running_stats=True) == convs + dense + 4 * norm_channels == 2_618_446


def test_notes_example_has_the_notes_shapes() -> None:
    net = cnnpl.build("model", "notes_example", num_classes=10, in_channels=3, input_size=(39, 39))
    shapes, x = [], torch.zeros(1, 3, 39, 39)
    for block in net.features:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(10, 37, 37), (20, 17, 17), (40, 7, 7)]
    assert net.classifier[1].in_features == 7 * 7 * 40 == 1960
    assert count_parameters(net) == _conv(3, 10, 3) + _conv(10, 20, 5) + _conv(20, 40, 5) + _dense(1960, 10) == 44_950


@pytest.mark.slow
@pytest.mark.parametrize("model", ZOO)
def test_canonical_size_forward(model: str) -> None:
    size, channels, classes = {"lenet5": (32, 1, 10), "notes_example": (39, 3, 10), "simple_cnn_bn": (64, 3, 2)}.get(
        model, (299 if model in ("inception_v3", "xception") else 224, 3, 1000)
    )
    net = cnnpl.build("model", model, num_classes=classes, in_channels=channels, input_size=(size, size)).eval()
    with torch.no_grad():
        out = net(torch.randn(1, channels, size, size))
    assert out.shape == (1, classes)
    assert torch.isfinite(out).all()


# -- interchangeable parts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "pools"),
    [
        ("vgg16", {}, 5),  # the five 2x2 pooling layers
        ("lenet5", {}, 2),
        ("simple_cnn_bn", {}, 3),
        ("notes_example", {}, 0),  # no pooling in the notes' example
        ("resnet50", {}, 0),  # the CIFAR stem drops the stem pool
        ("resnet50", {"stem": "imagenet", "input_size": (64, 64)}, 1),  # the stem pool
        ("inception_v3", {}, 3),  # CIFAR stem pool + the stride-2 branches of Mixed_6a / Mixed_7a
        ("inception_v3", {"stem": "imagenet", "input_size": (75, 75)}, 4),
        ("inception_v3", {"branch_pool": None}, 3 + 9),  # + the stride-1 branches of 3 A, 4 C, 2 E blocks
        ("inception_v3", {"branch_pool": "pool"}, 3 + 9),  # the same, as the command line says it
        ("xception", {}, 4),  # blocks 2, 3, 4 and 13
    ],
)
def test_pool_factory_builds_the_documented_layers(model: str, kwargs: dict, pools: int) -> None:
    calls: list[dict] = []
    _meta_build(model, **kwargs, pool=_CountingFactory("pool", "avg", {"calls": calls}))
    assert len(calls) == pools


def test_inception_branch_pool_follows_pool_from_the_command_line() -> None:
    """helper-105: the documented model.branch_pool=null (follow pool=) reached the constructor as its default,
    avg, as null does for every built-in's setting; the word for it is pool."""
    from cnnpl.network import build_model

    def branch(*overrides: str) -> str:
        cfg = cnnpl.compose(["model=inception_v3", "pool=max", *overrides])
        net = build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
        kinds = {type(getattr(net, block).pool).__name__ for block in ("Mixed_5b", "Mixed_6b", "Mixed_7c")}
        assert len(kinds) == 1, kinds
        return kinds.pop()

    assert branch() == "AvgPool" and branch("model.branch_pool=null") == "AvgPool"  # the reference
    assert branch("model.branch_pool=pool") == "MaxPool"
    assert branch("model.branch_pool=mixed") == "MixedPool"
    with pytest.raises(
        CnnplError,
        match=r"^model\.branch_pool must be the name of a pool with a window \(avg, .*\) or pool "
        r"\(whatever pool= is\), got 'bogus'$",
    ):
        branch("model.branch_pool=bogus")


@pytest.mark.parametrize("model", ZOO)
def test_conv_factory_builds_every_convolution(model: str) -> None:
    net = _meta_build(model, conv=cnnpl.factory("conv", "true_conv2d"))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m).__name__ == "TrueConv2d" for m in convs)


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("model", MODELS)
def test_the_summary_lists_layers_in_the_order_the_forward_pass_runs_them(model: str, size: int) -> None:
    from cnnpl.summary import summarize

    # ResNet registers its stem's pool before bn1 and act1, so the summary showed the shapes shrink and grow back
    try:
        net = _meta_build(model, input_size=(size, size)).eval()
    except GeometryError:
        pytest.skip(f"{model} does not take {size}x{size} images")
    rows = [row.name for row in summarize(net, (3, size, size)).rows if row.output_shape is not None]
    ran: list[str] = []
    for name in rows:
        viz.find_layer(net, name).register_forward_hook(lambda *_, name=name: ran.append(name))
    net(torch.zeros(1, 3, size, size, device="meta"))
    assert list(dict.fromkeys(ran)) == rows


def test_resnet_keeps_its_parameter_order_which_checkpoints_hold_optimizer_state_by() -> None:
    # moving bn1 before the stem's pool made a checkpoint of pool=mixed_learned resume into a segfault
    net = _meta_build("resnet18", stem="imagenet", pool=cnnpl.factory("pool", "mixed_learned"))
    assert [name for name, _ in net.named_parameters()][:4] == [
        "conv1.weight",
        "maxpool.alpha_logit",
        "bn1.weight",
        "bn1.bias",
    ]


@pytest.mark.parametrize("model", MODELS)
def test_dilated_convolutions_keep_every_architectures_planned_sizes(model: str) -> None:
    # conv=dilated was documented as a drop-in for any architecture, but a valid 3x3 at dilation 2 shrank by 4:
    # simple_cnn ran out of pixels, and inception_v3's stride-2 convs no longer matched their pool branches
    sizes: dict[str, list[tuple[int, ...]]] = {"conv2d": [], "dilated": []}
    for conv, shapes in sizes.items():
        net = _meta_build(model, conv=cnnpl.factory("conv", conv)).eval()
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        for m in convs:
            m.register_forward_hook(lambda m, i, out, shapes=shapes: shapes.append((m.dilation, *out.shape)))
        assert net(torch.randn(2, 3, 32, 32, device="meta")).shape == (2, 10)
    dilated = {d for d, *_ in sizes["dilated"]}
    assert (2, 2) in dilated  # the variant was used (a fixed layer, such as fast_net's whitening, keeps its own)
    assert [shape for _, *shape in sizes["dilated"]] == [shape for _, *shape in sizes["conv2d"]]


@pytest.mark.parametrize("model", [m for m in MODELS if "norm" in parameters_of(get_registry("model").get(m))])
def test_norm_factory_builds_every_normalisation(model: str) -> None:
    net = _meta_build(model, norm=cnnpl.factory("norm", "identity"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert net(torch.randn(2, 3, 32, 32, device="meta")).shape == (2, 10)


@pytest.mark.parametrize(
    ("model", "size", "kwargs"), [*((m, 32, {}) for m in MODELS), ("inception_v3", 299, {"aux_logits": True})]
)
def test_the_last_conv_layer_defined_runs_in_the_forward_pass(model: str, size: int, kwargs: dict) -> None:
    """Grad-CAM's default layer (``callbacks.gradcam``, ``cnnpl.render``) is the last conv layer defined."""
    with torch.device("meta"):
        net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(size, size), **kwargs)
    last = viz.conv_layers(net)[-1]
    ran: list[str] = []
    viz.find_layer(net, last).register_forward_hook(lambda *_: ran.append(last))
    net.eval()(torch.randn(2, 3, size, size, device="meta"))
    assert ran == [last]


def test_inception_and_xception_prefer_the_reference_batch_norm_eps() -> None:
    for model in ("inception_v3", "xception"):
        norms = [m for m in _meta_build(model).modules() if isinstance(m, nn.BatchNorm2d)]
        assert {m.eps for m in norms} == {1e-3}
    # a config value still wins over the architecture's preference
    net = _meta_build("xception", norm=cnnpl.factory("norm", "batch", eps=1e-5))
    assert {m.eps for m in net.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}


# -- impossible combinations fail at build time, naming the layer --------------------------------


@pytest.mark.parametrize(
    ("model", "kwargs", "message"),
    [
        ("vgg16", {"input_size": (16, 16)}, r"layer features\.30 \(MaxPool\) cannot take input \(512, 1, 1\)"),
        (  # helper-131: named a 1x1 map deep inside (Mixed_6a.branch3x3.conv) only
            "inception_v3",
            {"stem": "imagenet"},
            r"^model\.stem=imagenet needs images of at least 75x75 pixels, got 32x32; leave model\.stem to the input "
            r"size \(null, its default: cifar here\), or train on larger images$",
        ),
        (
            "inception_v3",
            {"aux_logits": True},
            r"layer AuxLogits\.conv1\.conv \(Conv2d\) cannot take input \(128, 1, 1\): .*; model\.aux_logits=true "
            r"needs inputs of about torchvision's 299 px \(Mixed_6e gives \(7, 7\) here\), "
            r"or set model\.aux_logits=false$",
        ),
        ("lenet5", {"input_size": (12, 12)}, r"layer features\.c3 \(Conv2d\) cannot take input \(6, 4, 4\)"),
        (  # a config forcing conv.padding=0 everywhere breaks the residual additions
            "resnet18",
            {"conv": LayerFactory("conv", "conv2d", {"padding": 0})},
            r"layer layer1\.0 \(BasicBlock\) cannot take input \(64, 30, 30\): main branch gives \(64, 26, 26\)",
        ),
    ],
)
def test_input_too_small_fails_at_build_naming_the_layer(model: str, kwargs: dict, message: str) -> None:
    with pytest.raises(GeometryError, match=message):
        _meta_build(model, **kwargs)


@pytest.mark.parametrize(
    ("overrides", "size", "message"),
    [
        (["model=vgg16"], (16, 16), "model=vgg16 cannot take 3x16x16 images: layer features.30 (MaxPool) cannot take"),
        (["model=lenet5"], (8, 8), "model=lenet5 cannot take 3x8x8 images: layer features.c3 (Conv2d) cannot take"),
    ],
)
def test_images_too_small_name_the_model_and_their_size(overrides: list[str], size: tuple, message: str) -> None:
    from cnnpl.network import build_model

    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose(overrides), 10, 3, size)
    assert str(err.value).startswith(message)
    with pytest.raises(CnnplError, match=r"^layer layer2\.0: conv2d: init='sobel_x' is a 3x3 kernel"):  # as it was
        build_model(cnnpl.compose(["model=resnet18", "conv.init=sobel_x"]), 10, 3, (32, 32))
    # branches that disagree whatever the size: not the images' fault
    with pytest.raises(GeometryError, match=r"^layer layer1\.0 \(BasicBlock\) cannot take input \(64, 16, 16\): main"):
        build_model(cnnpl.compose(["model=resnet18", "conv.stride=2"]), 10, 3, (32, 32))


@pytest.mark.parametrize(
    ("overrides", "layer", "cause"),
    [
        (["model=inception_v3", "conv=pointwise"], "Mixed_6a", "conv.kernel_size=1 is set"),  # not its padding 0
        (["model=resnet18", "conv=dilated", "conv.stride=2"], "layer1.0", "conv.stride=2 is set"),  # not dilation 2
        (["model=resnet18", "pool.kernel_size=3", "conv.stride=2"], "layer1.0", "conv.stride=2 is set"),
        (["model=resnet18", "conv.stride=2"], "layer1.0", "conv.stride=2 is set"),
        # helper-132: pointwise builds in resnet18, so only the stride is named (was: choose another conv too)
        (["model=resnet18", "conv=pointwise", "conv.stride=2"], "layer1.0", "conv.stride=2 is set"),
        (["model=xception", "conv.kernel_size=5"], "block2", "conv.kernel_size=5 is set"),
        (["model=inception_v3", "pool.kernel_size=2"], "Mixed_7a", "pool.kernel_size=2 is set"),
    ],
)
def test_branches_that_disagree_name_the_setting_that_made_them(overrides: list[str], layer: str, cause: str) -> None:
    # the layer alone left the user to guess that conv=pointwise (a 1x1 kernel everywhere) was the cause
    from cnnpl.network import build_model

    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose(overrides), 10, 3, (32, 32))
    message = str(err.value)
    assert message.startswith(f"layer {layer} (")
    assert "they cannot be " in message
    assert f"; {cause} for every layer of the {cause[:4]} family" in message
    # helper-131: the option's own setting is fixed with another option, any other with null (not both, in a circle)
    setting = cause.removesuffix(" is set")
    fix = (
        "conv=pointwise sets it, so choose a conv that leaves it to the model (conv=conv2d)"
        if setting == "conv.kernel_size=1"
        else f"leave it to the model ({setting.partition('=')[0]}=null)"
    )
    assert message.endswith(f"stride and padding: {fix}")
    assert "\n" not in message


def test_the_option_named_for_the_branches_builds_with_what_it_is_told_to_leave() -> None:
    # helper-134: conv=conv2d was advised, which keeps the stride and padding that break resnet18's blocks too
    from cnnpl.network import build_model

    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose(["model=resnet18", "conv=pointwise", "conv.stride=2", "conv.padding=1"]), **CIFAR)
    assert str(err.value).endswith(
        "conv=pointwise sets it, so choose a conv that leaves it to the model, and leave conv.stride=2 and "
        "conv.padding=1 to the model too (conv=conv2d conv.stride=null conv.padding=null)"
    )
    for left in (["conv.stride=2"], ["conv.padding=1"], ["conv.stride=2", "conv.padding=1"]):
        overrides = ["model=resnet18", "conv=conv2d", *left]
        with pytest.raises(GeometryError, match="they cannot be added"):  # neither alone: both are named
            build_model(cnnpl.compose(overrides), **CIFAR)
    build_model(cnnpl.compose(["model=resnet18", "conv=conv2d", "conv.stride=null", "conv.padding=null"]), **CIFAR)
    # helper-131: another family's setting breaks the branches once the conv is swapped (was the conv alone)
    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose(["model=inception_v3", "conv=pointwise", "pool.kernel_size=2"]), **CIFAR)
    assert str(err.value).endswith(
        "conv=pointwise sets it, so choose a conv that leaves it to the model, and leave pool.kernel_size=2 to the "
        "model too (conv=conv2d pool.kernel_size=null)"
    )
    with pytest.raises(GeometryError, match="they cannot be concatenated"):
        build_model(cnnpl.compose(["model=inception_v3", "conv=conv2d", "pool.kernel_size=2"]), **CIFAR)
    build_model(cnnpl.compose(["model=inception_v3", "conv=conv2d", "pool.kernel_size=null"]), **CIFAR)


def test_the_branches_causes_are_found_without_loading_the_pretrained_weights(tmp_path: Path, monkeypatch) -> None:
    # each rebuild that no longer disagreed loaded model.pretrained again (and logged it)
    import cnnpl.pretrained
    from cnnpl.network import build_model

    torch.save(build_model(cnnpl.compose(["model=resnet18"]), **CIFAR).state_dict(), tmp_path / "r.pth")
    read = []
    real = cnnpl.pretrained.read_state_dict
    monkeypatch.setattr(cnnpl.pretrained, "read_state_dict", lambda path: read.append(path) or real(path))
    with pytest.raises(GeometryError, match=r"; conv\.stride=2 is set for every layer of the conv family"):
        build_model(
            cnnpl.compose(["model=resnet18", f"model.pretrained={tmp_path / 'r.pth'}", "conv.stride=2"]), **CIFAR
        )
    assert read == []
    build_model(cnnpl.compose(["model=resnet18", f"model.pretrained={tmp_path / 'r.pth'}"]), **CIFAR)
    assert read == [str(tmp_path / "r.pth")]  # the weights themselves load where the network builds


@pytest.mark.parametrize("model", ["simple_cnn", "lenet5", "vgg16", "fast_net", "notes_example"])
def test_conv_init_survives_the_architecture_s_own_initialisation(model: str) -> None:
    # vgg16 re-initialised every conv (He normal) after the factory wrote the kernel, and conv.freeze then froze
    # random filters; fast_net's dirac_ overwrote its first filters
    from cnnpl.kernels import kernel
    from cnnpl.network import build_model

    net = build_model(cnnpl.compose([f"model={model}", "conv.init=sobel_x", "conv.freeze=true"]), 10, 3, (32, 32))
    chosen = [m for m in net.modules() if getattr(m, "init", None) == "sobel_x"]
    assert chosen
    for conv in chosen:
        c_in = conv.weight.shape[1]
        expected = F.pad(kernel("sobel_x"), [(conv.weight.shape[-1] - 3) // 2] * 4) / c_in
        torch.testing.assert_close(conv.weight, expected.expand_as(conv.weight))
        assert not conv.weight.requires_grad


class _Ungrouped(nn.Conv2d):
    """A conv variant without a ``groups`` parameter."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)


class _Picky(nn.Conv2d):
    """A conv variant whose forward checks its input itself (with ``raises``), not through torch."""

    raises: type[Exception] = AssertionError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 8:
            raise self.raises(f"needs 8 pixels, got {x.shape[-1]}")
        return super().forward(x)


@pytest.mark.parametrize("raises", [AssertionError, ValueError, KeyError])
def test_a_layers_own_refusal_of_its_input_names_the_layer_at_build(
    monkeypatch: pytest.MonkeyPatch, raises: type[Exception]
) -> None:
    # was a traceback (AssertionError), or "model 'simple_cnn' could not be built ...; check the model.*
    # settings" (ValueError): the model's settings were fine, this conv refused the 6x6 input
    picky = type("Picky", (_Picky,), {"raises": raises})
    monkeypatch.setitem(get_registry("conv")._entries, "picky", Entry("picky", picky, "tests"))
    with pytest.raises(GeometryError) as err:
        cnnpl.build("model", "simple_cnn", **CIFAR, conv=cnnpl.factory("conv", "picky"))
    line = _Picky.forward.__code__.co_firstlineno + 2  # the raise: a layer not cnnpl's is named with it
    assert str(err.value) == (
        f"layer features.block3.conv (Picky) cannot take input (64, 6, 6): {raises.__name__}: "
        + ("'needs 8 pixels, got 6'" if raises is KeyError else "needs 8 pixels, got 6")
        + f" ({__file__}, line {line})"
    )


class _PassThroughPool(nn.MaxPool2d):
    """A pool plugin that hands its keywords on to torch's, which takes no ``channels``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("setting", ["conv.kernel_size=5", "conv.dilation=2"])
def test_vgg_pads_same_whatever_the_kernel(setting: str) -> None:
    """The notes: VGG "always used same padding". Padding 1 is that only for 3x3 undilated kernels: with a 5x5
    kernel every conv shrank the map, and the fifth block refused its 1x1 input."""
    from cnnpl.network import build_model

    net = build_model(cnnpl.compose(["model=vgg16", setting]), **CIFAR)
    for index in (0, 28):  # the first conv and the last
        conv = net.features[index]
        size = 32 // 16 if index == 28 else 32
        assert conv(torch.zeros(1, conv.in_channels, size, size)).shape[-2:] == (size, size)


@pytest.mark.parametrize("model", [m for m in MODELS if get_registry("model").entry(m).source == "built-in"])
def test_a_components_refusal_of_its_settings_names_the_layer(model: str) -> None:
    """``conv.padding=half`` is refused by the conv as it is built: the message says which layer of the network
    (``simple_cnn`` and ``fast_net`` named only the component)."""
    from cnnpl.network import build_model

    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose([f"model={model}", "conv.padding=half"]), **CIFAR)
    assert re.fullmatch(
        r"layer [\w.]+: conv2d: padding must be an int or one of valid, same, full; got 'half'", str(err.value)
    ), str(err.value)


@pytest.mark.parametrize("model", ["simple_cnn", "vgg16", "xception"])
def test_a_pass_through_pool_is_not_handed_the_channels_it_does_not_name(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    # was "pool 'pass_through' could not be built: _MaxPoolNd.__init__() got an unexpected keyword argument
    # 'channels'; check the pool.* settings"
    monkeypatch.setitem(get_registry("pool")._entries, "pass_through", Entry("pass_through", _PassThroughPool, "tests"))
    net = _meta_build(model, pool=cnnpl.factory("pool", "pass_through"))
    assert any(type(m) is _PassThroughPool for m in net.modules())


def test_a_pass_through_pool_whose_base_needs_the_channels_still_gets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    gated = get_registry("pool").get("gated")  # per-channel gates need channels=C

    class PassThroughGated(gated):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)

    monkeypatch.setitem(get_registry("pool")._entries, "my_gated", Entry("my_gated", PassThroughGated, "tests"))
    net = _meta_build("simple_cnn", pool=cnnpl.factory("pool", "my_gated", granularity="channel"))
    assert sum(type(m) is PassThroughGated for m in net.modules()) == 3


def test_depthwise_conv_from_a_variant_without_groups_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = get_registry("conv")
    monkeypatch.setitem(registry._entries, "ungrouped", Entry("ungrouped", _Ungrouped, "tests"))
    with pytest.raises(
        CnnplError, match=r"layer block2\.block2_sepconv1\.depthwise is a depthwise convolution \(groups=64\)"
    ):
        cnnpl.build("model", "xception", **CIFAR, conv=cnnpl.factory("conv", "ungrouped"))


def test_config_groups_cannot_override_a_depthwise_conv() -> None:
    with pytest.raises(CnnplError, match=r"layer block2\.block2_sepconv1\.depthwise"):
        cnnpl.build("model", "xception", **CIFAR, conv=cnnpl.factory("conv", "conv2d", groups=1))


def test_conv_variant_refusal_names_the_layer() -> None:
    if "pointwise" not in cnnpl.list_components("conv"):
        pytest.skip("no pointwise conv registered")
    with pytest.raises(GeometryError, match=r"^layer features\.0: "):
        cnnpl.build("model", "vgg16", **CIFAR, conv=cnnpl.factory("conv", "pointwise"))


@pytest.mark.parametrize("model", ["vgg16", "resnet50", "inception_v3", "xception"])
def test_size_layout_is_picked_by_input_size_and_checked(model: str) -> None:
    key = "head" if model.startswith("vgg") else "stem"
    assert getattr(_meta_build(model), key) == "cifar"
    assert getattr(_meta_build(model, input_size=(299, 299)), key) == "imagenet"
    with pytest.raises(CnnplError, match=rf"model\.{key} must be one of imagenet, cifar"):
        _meta_build(model, **{key: "tiny"})


@pytest.mark.parametrize("model", ["vgg16", "resnet50", "inception_v3", "xception"])
@pytest.mark.parametrize("size", [(64, 64), (65, 65), (70, 70), (74, 74), (75, 75), (32, 100), (100, 32)])
def test_the_layout_picked_by_input_size_fits_that_size(model: str, size: tuple[int, int]) -> None:
    # Inception's reference stem needs 75 px a side: 65-74 px, or a short side, get the CIFAR stem
    net = _meta_build(model, input_size=size)
    assert net(torch.randn(2, 3, *size, device="meta")).shape == (2, 10)


@pytest.mark.usefixtures("_no_onednn")
@pytest.mark.parametrize("model", [m for m in MODELS if "act" in parameters_of(get_registry("model").get(m))])
def test_an_in_place_activation_computes_what_the_out_of_place_one_does(model: str) -> None:
    # act.inplace=true (conf/act/relu.yaml) saves memory; where an activation's input is also used
    # elsewhere (a residual shortcut) the architecture must not let it overwrite that input
    outputs = []
    for inplace in (False, True):
        torch.manual_seed(0)
        net = cnnpl.build("model", model, **CIFAR, act=LayerFactory("act", "relu", {"inplace": inplace}))
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        logits = net.train()(x)
        logits.square().sum().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        outputs.append((logits.detach(), grads))
    (out, grads), (out_inplace, grads_inplace) = outputs
    torch.testing.assert_close(out_inplace, out)
    for g, g_inplace in zip(grads, grads_inplace, strict=True):
        torch.testing.assert_close(g_inplace, g)


@pytest.mark.parametrize("model", ["lenet5", "vgg16", "xception"])
def test_model_builds_from_its_config(model: str) -> None:
    from cnnpl.network import build_model

    cfg = cnnpl.compose([f"model={model}", "data=shapes", "pool=avg"])
    net = build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    assert type(net) is get_registry("model").get(model)
    assert any(isinstance(m, nn.AvgPool2d) for m in net.modules())


def test_config_path_gives_the_reference_count_when_bias_is_left_to_the_architecture() -> None:
    from cnnpl.network import build_model

    # ResNet's convs have no bias; a conv config with bias: null lets the architecture say so
    cfg = cnnpl.compose(["model=resnet50", "data=shapes", "conv.bias=null"])
    with torch.device("meta"):
        net = build_model(cfg, num_classes=1000, in_channels=3, input_size=(224, 224))
    assert count_parameters(net) == 25_557_032


@pytest.mark.parametrize(
    ("overrides", "size", "advice"),
    [  # helper-131: the message named the layer only, and for pool.stride=4 a conv
        (["pool.stride=4"], 32, "; it fits without pool.stride=4: leave it to the model (pool.stride=null)"),
        (  # helper-140: a pair was written (2, 3), which the command line cannot take back
            ["pool.stride=[2,3]", "pool.kernel_size=[2,3]"],
            32,
            "; it fits without pool.stride=[2,3]: leave it to the model (pool.stride=null)",
        ),
        (
            ["pool.kernel_size=5", "conv.kernel_size=5"],
            32,
            "; it fits without conv.kernel_size=5 and pool.kernel_size=5: leave them to the model "
            "(conv.kernel_size=null pool.kernel_size=null)",
        ),
        ([], 16, "; it takes images of at least 22x22"),  # 22 -> 20 -> 10 -> 8 -> 4 -> 2 -> 1
        (["model=vgg16"], 16, "; it takes images of at least 32x32"),
    ],
)
def test_a_network_too_large_for_its_images_says_what_would_fit(overrides: list[str], size: int, advice: str) -> None:
    from cnnpl.network import build_model

    with pytest.raises(GeometryError) as err:
        build_model(cnnpl.compose(overrides), 10, 3, (size, size))
    assert str(err.value).startswith(f"model={cnnpl.compose(overrides).model.name} cannot take 3x{size}x{size} images")
    assert str(err.value).endswith(advice)
    if "at least" in advice:  # what it says: that size builds, one pixel less does not
        side = int(advice.rpartition("x")[2])
        build_model(cnnpl.compose(overrides), 10, 3, (side, side))
        with pytest.raises(GeometryError):
            build_model(cnnpl.compose(overrides), 10, 3, (side - 1, side - 1))
    else:  # and without the settings it names
        build_model(cnnpl.compose(["model=simple_cnn"]), 10, 3, (size, size))


@pytest.mark.parametrize(("size", "fits"), [((32, 8), (32, 22)), ((8, 40), (22, 40))])
def test_images_short_on_one_side_are_told_that_side(size: tuple[int, int], fits: tuple[int, int]) -> None:
    # helper-132: a 32x8 image was told "at least 22x22", where 32x22 is what it takes
    from cnnpl.network import build_model

    cfg = cnnpl.compose([])
    with pytest.raises(GeometryError) as err:
        build_model(cfg, 10, 3, size)
    assert str(err.value).endswith(f"; it takes images of at least 22 pixels a side ({fits[0]}x{fits[1]})")
    build_model(cfg, 10, 3, fits)
    with pytest.raises(GeometryError):
        build_model(cfg, 10, 3, (fits[0] - (size[0] < 22), fits[1] - (size[1] < 22)))


def test_a_run_s_advice_composes_an_option_beside_the_run_s_hydra() -> None:
    # in a run (Hydra's app initialized) compose_plain met "GlobalHydra is already initialized", and the branches'
    # advice, which composes conv=pointwise to find its own settings, said conv.kernel_size=null, which it refuses
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cnnpl.config import compose_plain, config_dir
    from cnnpl.network import build_model

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        running = GlobalHydra.instance().hydra
        assert compose_plain(["conv=pointwise"], output_dir=None).conv.kernel_size == 1
        assert GlobalHydra.instance().hydra is running  # the run's own, put back
        with pytest.raises(GeometryError, match=r"so choose a conv that leaves it to the model \(conv=conv2d\)$"):
            build_model(cnnpl.compose(["model=inception_v3", "conv=pointwise"]), **CIFAR)


@pytest.mark.parametrize(
    ("override", "message"),
    [  # helper-140: -1 was torch's "negative dimension" traceback, 0 a misleading conv2d message; a logit scale of
        # 0 trained nothing without a word; norm_eps=-1 was refused as norm.eps
        ("model.whiten_kernel=-1", "model.whiten_kernel must be an int >= 1 (the side of a whitened patch), got -1"),
        ("model.whiten_kernel=0", "model.whiten_kernel must be an int >= 1 (the side of a whitened patch), got 0"),
        (
            "model.logit_scale=0",
            "model.logit_scale must be a finite number other than 0 (it multiplies the logits), got 0",
        ),
        (
            "model.logit_scale=inf",
            "model.logit_scale must be a finite number other than 0 (it multiplies the logits), got inf",
        ),
        ("model.norm_eps=-1", "model.norm_eps must be a number > 0, got -1"),
        ("model.norm_momentum=2", "model.norm_momentum must be between 0 and 1, got 2"),
    ],
)
def test_fast_net_settings_out_of_range_are_one_line(override: str, message: str) -> None:
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["model=fast_net", override])
    with pytest.raises(CnnplError) as err:
        build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    assert str(err.value) == message


@pytest.mark.parametrize("model", ["simple_cnn", "simple_cnn_bn"])
@pytest.mark.parametrize(("given", "shown"), [("[]", "[]"), ("32", "32"), ("[0,4]", "[0, 4]")])
def test_conv_widths_that_build_no_conv_block_are_one_line(model: str, given: str, shown: str) -> None:
    # helper-140: model.channels=[] built a network without a convolution (blamed on the filters callback, or
    # trained as it was with callbacks=minimal); 32 was "'int' object is not iterable"
    from cnnpl.network import build_model

    cfg = cnnpl.compose([f"model={model}", f"model.channels={given}"])
    with pytest.raises(CnnplError) as err:
        build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    assert str(err.value) == (
        f"{model}: model.channels must list the widths of its conv blocks, one or more ints >= 1 (such as "
        f"[32,64,128]), got {shown}"
    )


@pytest.mark.parametrize("given", ["global_avg", "maxx"])
def test_inception_branch_pool_names_only_pools_with_a_window(given: str) -> None:
    # helper-140: global_avg was blamed on pool= ("choose a pool that takes kernel_size: pool=avg, ..."), and the
    # list for a misspelt name offered the global pools
    from cnnpl.network import build_model

    with pytest.raises(CnnplError) as err:
        build_model(cnnpl.compose(["model=inception_v3", f"model.branch_pool={given}"]), 10, 3, (32, 32))
    message = str(err.value)
    assert message.startswith("model.branch_pool must be the name of a pool with a window (avg, ")
    assert message.endswith(f"or pool (whatever pool= is), got {given!r}")
    assert "global" not in message.replace(given, "")


def test_inception_branch_pool_takes_a_plugin_pool_of_keyword_arguments(restore_registries) -> None:
    # helper-142: a pool taking **kwargs built with pool= but was refused as model.branch_pool
    from cnnpl.layers.pooling import AvgPool
    from cnnpl.network import build_model

    @cnnpl.register("pool", "kw_pool")
    class KwPool(nn.Module):
        def __init__(self, **kwargs) -> None:
            super().__init__()
            self.pool = AvgPool(kwargs["kernel_size"], kwargs.get("stride"), kwargs.get("padding", 0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pool(x)

    net = build_model(cnnpl.compose(["model=inception_v3", "model.branch_pool=kw_pool"]), 10, 3, (32, 32))
    assert isinstance(net.Mixed_5b.pool, KwPool)
