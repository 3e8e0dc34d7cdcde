"""Property-based tests: any conv / pool / input geometry either builds a working layer or model with the
shape :func:`cnnpl.geometry.output_size` predicts, or raises cnnpl's clear error; never another exception.

Generated from the registries (every window conv and pool), with hypothesis; ``derandomize=True``
keeps CI reproducible, small ``max_examples`` keeps it fast.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig

import cnnpl
from cnnpl.errors import CnnplError
from cnnpl.factory import LayerFactory
from cnnpl.geometry import output_size
from cnnpl.network import build_model

PROPERTY = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _builtin(family: str, name: str) -> bool:
    """cnnpl's own, or its example plugin's (which checks its geometry with cnnpl.geometry, as cnnpl's do)."""
    source = cnnpl.get_registry(family).entry(name).source
    return source == "built-in" or source.startswith("package cnnpl-example ")


# cnnpl's convs, whose spatial output follows the notes' formula over (kernel_size, stride, padding, dilation),
# and which refuse at build time what cannot fit; another plugin's layer may leave that to torch at its first
# input, which the model's own check then reports (tests/test_pooling.py, test_conv.py)
CONVS = [n for n in cnnpl.list_components("conv") if n != "pointwise" and _builtin("conv", n)]  # pointwise: 1x1
# cnnpl's pools with a window (global pools have none)
POOLS = [n for n in cnnpl.list_components("pool") if not n.startswith("global") and _builtin("pool", n)]
POOL_PARAMS = POOLS

sizes = st.integers(1, 12)
kernels = st.integers(1, 6)
strides = st.integers(1, 4)
paddings = st.one_of(st.integers(0, 4), st.sampled_from(["valid", "same", "full"]))


def accepts(target: object, name: str) -> bool:
    return name in inspect.signature(target).parameters


def predicted(
    h: int, w: int, kernel: int, stride: int, padding: int | str, dilation: int = 1
) -> tuple[int, int] | None:
    """The formula's (H', W'), or None when it says the window cannot fit."""
    try:
        return (output_size(h, kernel, stride, padding, dilation), output_size(w, kernel, stride, padding, dilation))
    except CnnplError:
        return None


def check_layer(layer: torch.nn.Module, channels: int, h: int, w: int, expected: tuple[int, int] | None) -> None:
    """Either the layer refuses the input with a CnnplError, or it maps it to the predicted size."""
    x = torch.randn(2, channels, h, w)
    if expected is None:
        # the formula says no: the layer must say so with cnnpl's error where it can report a shape
        if hasattr(layer, "output_shape"):
            with pytest.raises(CnnplError):
                layer.output_shape((channels, h, w))
        return
    if hasattr(layer, "output_shape"):
        reported = tuple(layer.output_shape((channels, h, w)))
        assert reported[1:] == expected, f"output_shape says {reported}, the formula {expected}"
    layer.train()
    y = layer(x)
    assert tuple(y.shape[2:]) == expected, f"output {tuple(y.shape)}, the formula {expected}"
    if hasattr(layer, "output_shape"):
        assert tuple(y.shape[1:]) == reported
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", CONVS)
@PROPERTY
@given(
    h=sizes,
    w=sizes,
    kernel=kernels,
    stride=strides,
    padding=paddings,
    dilation=st.integers(1, 3),
    channels=st.sampled_from([1, 2, 4]),
)
def test_conv_builds_with_the_predicted_shape_or_raises_cnnpl_error(
    name: str, h: int, w: int, kernel: int, stride: int, padding: int | str, dilation: int, channels: int
) -> None:
    target = cnnpl.get_registry("conv").get(name)
    params = dict(
        in_channels=channels, out_channels=4, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation
    )
    if accepts(target, "input_size"):
        params["input_size"] = (h, w)
    if name == "dilated" and padding != "same":
        # documented: dilated pads for the span its dilation adds, so valid, full and int paddings keep
        # the undilated kernel's planned size, up to an odd (d - 1)(f - 1) rounded down
        padding = {"valid": 0, "full": kernel - 1}.get(padding, padding) + (dilation - 1) * (kernel - 1) // 2
    expected = predicted(h, w, kernel, stride, padding, dilation)
    try:
        layer = cnnpl.build("conv", name, **params)
    except CnnplError:
        # only a layer built for one input size (locally connected, tiled) refuses, and only what cannot fit
        assert expected is None, f"{name} refused a geometry the formula gives {expected} for"
        return
    check_layer(layer, channels, h, w, expected)


@pytest.mark.parametrize("name", POOL_PARAMS)
@PROPERTY
@given(h=sizes, w=sizes, kernel=kernels, stride=st.one_of(st.none(), strides), padding=st.integers(0, 3))
def test_pool_builds_with_the_predicted_shape_or_raises_cnnpl_error(
    name: str, h: int, w: int, kernel: int, stride: int | None, padding: int
) -> None:
    target = cnnpl.get_registry("pool").get(name)
    params: dict[str, object] = dict(kernel_size=kernel, stride=stride, padding=padding)
    if accepts(target, "channels"):
        params["channels"] = 3
    try:
        layer = cnnpl.build("pool", name, **params)
    except CnnplError:
        assert padding > kernel // 2, f"{name} refused kernel {kernel}, padding {padding}"  # torch's own limit
        return
    check_layer(layer, 3, h, w, predicted(h, w, kernel, stride or kernel, padding))


@PROPERTY
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    conv_kernel=st.integers(1, 7),
    conv_padding=st.sampled_from(["same", "valid", 0, 1]),
    pool_kernel=st.integers(1, 4),
    pool_stride=st.integers(1, 4),
)
def test_simple_cnn_builds_and_classifies_or_raises_cnnpl_error(
    h: int, w: int, conv_kernel: int, conv_padding: int | str, pool_kernel: int, pool_stride: int
) -> None:
    conv = LayerFactory("conv", "conv2d", {"kernel_size": conv_kernel, "padding": conv_padding})
    pool = LayerFactory("pool", "max", {"kernel_size": pool_kernel, "stride": pool_stride})
    try:
        model = cnnpl.build("model", "simple_cnn", num_classes=7, input_size=(h, w), conv=conv, pool=pool)
    except CnnplError:
        # the architecture refused: the formula must agree that some layer cannot fit
        size = (h, w)
        try:
            for _ in range(3):  # three blocks of conv then pool
                size = tuple(
                    output_size(n, pool_kernel, pool_stride) for n in predicted_conv(size, conv_kernel, conv_padding)
                )
        except CnnplError:
            return
        raise AssertionError(f"simple_cnn refused {h}x{w} although every block fits (ends at {size})") from None
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, h, w))
    assert logits.shape == (2, 7)


def predicted_conv(size: tuple[int, ...], kernel: int, padding: int | str) -> tuple[int, ...]:
    return tuple(output_size(n, kernel, 1, padding) for n in size)


# The windowed layers of each model under conv.kernel_size / pool.kernel_size overrides, as
# (module path, kernel, stride, padding), from the models' documented plans: the config's kernel sizes
# win over the architecture's, strides and paddings stay the architecture's (pools keep padding 0, "valid").
Layer = tuple[str, int, int, str]


def spatial_plan(cfg: DictConfig, conv_kernel: int, pool_kernel: int) -> list[Layer]:
    model = cfg.model.name
    if model == "simple_cnn":  # per channel width: conv valid -> act -> pool of stride 2 (the notes' 2x2, stride 2)
        return [
            layer
            for i in range(1, len(cfg.model.channels) + 1)
            for layer in (
                (f"features.block{i}.conv", conv_kernel, 1, "valid"),
                (f"features.block{i}.pool", pool_kernel, 2, "valid"),
            )
        ]
    if model == "lenet5":  # c1 -> s2 -> c3 -> s4, valid convs, pools of stride 2
        return [
            ("features.c1", conv_kernel, 1, "valid"),
            ("features.s2", pool_kernel, 2, "valid"),
            ("features.c3", conv_kernel, 1, "valid"),
            ("features.s4", pool_kernel, 2, "valid"),
        ]
    if model == "notes_example":  # no pooling: valid convs of stride 1, 2, 2
        return [(f"features.conv{i}.conv", conv_kernel, s, "valid") for i, s in enumerate((1, 2, 2), 1)]
    if model == "tiny_net":  # per block: conv "same" -> norm -> act -> pool of stride 2
        return [
            layer
            for i in range(1, cfg.model.blocks + 1)
            for layer in (
                (f"features.block{i}.conv", conv_kernel, 1, "same"),
                (f"features.block{i}.pool", pool_kernel, 2, "valid"),
            )
        ]
    raise AssertionError(f"no spatial plan for {model}")


def torch_trace(plan: list[Layer], image: int) -> tuple[str | None, tuple[int, int]]:
    """Slide each window of ``plan`` over an ``image`` x ``image`` map with torch, not cnnpl's size
    arithmetic: the first layer torch cannot run (or that leaves an empty map) and its input size,
    or None and the final size.

    Every window goes through ``F.max_pool2d``: unpadded, a conv's window moves as a pooling window
    of the same kernel and stride does (``F.conv2d`` would give the same sizes, at milliseconds a call
    on a small CPU against microseconds), and every windowed pool here has max pooling's windows.
    """
    x = torch.zeros(1, 1, image, image)
    for name, kernel, stride, padding in plan:
        # "same" at stride 1: kernel - 1 zeros on each axis, the odd one after (TensorFlow's rule)
        x_in = F.pad(x, ((kernel - 1) // 2, kernel // 2) * 2) if padding == "same" else x
        try:
            y = F.max_pool2d(x_in, kernel, stride)
        except RuntimeError:  # torch: "Output size is too small"
            return name, (x.shape[2], x.shape[3])
        if y.numel() == 0:
            return name, (x.shape[2], x.shape[3])
        x = y
    return None, (x.shape[2], x.shape[3])


def smallest_image(plan: list[Layer]) -> int:
    """The smallest square image torch runs every layer of ``plan`` on, by bisection: fitting is
    monotone, as a larger input never gives a layer a smaller map."""

    def fits(n: int) -> bool:
        return torch_trace(plan, n)[0] is None

    too_small, large_enough = 0, 1
    while not fits(large_enough):
        too_small, large_enough = large_enough, 2 * large_enough
    while large_enough - too_small > 1:
        middle = (too_small + large_enough) // 2
        too_small, large_enough = (too_small, middle) if fits(middle) else (middle, large_enough)
    return large_enough


def build_or_refuse(cfg: DictConfig, plan: list[Layer], image: int) -> torch.nn.Module | None:
    """``build_model`` at ``image`` x ``image``: the network when torch runs every layer of ``plan`` there,
    else None after checking that cnnpl refused, naming the first layer that cannot fit and its input."""
    misfit, size = torch_trace(plan, image)
    model = cfg.model.name
    try:
        net = build_model(cfg, num_classes=10, in_channels=3, input_size=(image, image))
    except CnnplError as err:
        assert misfit is not None, f"{model} refused {image}x{image} although every layer fits (ends at {size}): {err}"
        h, w = size
        named = f"model={model} cannot take 3x{image}x{image} images: layer {misfit} "
        assert str(err).startswith(named) and re.search(rf"input \(\d+, {h}, {w}\)", str(err)), (
            f"expected the refusal to name {misfit} and its {h}x{w} input, got: {err}"
        )
        return None
    assert misfit is None, f"{model} built for {image}x{image} although {misfit} cannot take {size}"
    return net


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    model=st.sampled_from(["simple_cnn", "lenet5", "notes_example", "tiny_net"]),
    pool=st.sampled_from(["max", "avg", "mixed", "lp", "stochastic"]),
    pool_kernel=st.integers(1, 5),
    conv_kernel=st.integers(1, 9),
    image=st.integers(4, 40),
)
@example(model="simple_cnn", pool="max", pool_kernel=2, conv_kernel=3, image=21)  # 19 9 7 3 1: pool refuses 1x1
@example(model="tiny_net", pool="avg", pool_kernel=4, conv_kernel=3, image=7)  # 7 2 2: pool refuses 2x2
def test_config_overrides_build_a_model_or_raise_cnnpl_error(
    model: str, pool: str, pool_kernel: int, conv_kernel: int, image: int
) -> None:
    """The model builds exactly when torch can run every conv and pool window on the image, and then
    maps it to torch's feature map; otherwise cnnpl's refusal names the first layer that cannot fit
    and the size that layer was given. Also checked at the edge, where an off-by-one in a size check
    shows: the smallest image the network fits, and one pixel less."""
    cfg = cnnpl.compose(
        [f"model={model}", f"pool={pool}", f"pool.kernel_size={pool_kernel}", f"conv.kernel_size={conv_kernel}"],
        output_dir="unused",
    )
    plan = spatial_plan(cfg, conv_kernel, pool_kernel)
    smallest = smallest_image(plan)
    for edge in range(max(smallest - 1, 1), smallest + 1):
        build_or_refuse(cfg, plan, edge)
    net = build_or_refuse(cfg, plan, image)
    if net is None:
        return
    net.eval()
    x = torch.randn(1, 3, image, image)
    with torch.no_grad():
        assert tuple(net.features(x).shape[2:]) == torch_trace(plan, image)[1]
        assert net(x).shape == (1, 10)
