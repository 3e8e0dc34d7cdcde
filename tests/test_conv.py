"""Convolution variants: numerics against independent references, registry-generated contract tests, errors.

References are explicit loops over output positions in NumPy (float64) and ``scipy.signal``; the
padding amounts they use are computed here from the definitions, not taken from cnnpl.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy import signal
from torch import nn
from torch.func import functional_call

import cnnpl
from cnnpl.config import config_dir, generated_config, layer_factory
from cnnpl.errors import GeometryError
from cnnpl.layers.conv import Conv2d, LocallyConnected, Tiled
from cnnpl.registry import get_registry

# -- independent references ------------------------------------------------------------------------


def ref_pads(n: int, k: int, s: int, padding: int | str | tuple[int, int], d: int, axis: int) -> tuple[int, int]:
    """(before, after) zeros along ``axis`` (0: height, 1: width), from the definitions of the padding modes."""
    if isinstance(padding, tuple):
        padding = padding[axis]
    span = d * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "full":
        return span - 1, span - 1
    if padding == "same":  # smallest total giving ceil(n / s) outputs; the odd zero goes after
        total = max((math.ceil(n / s) - 1) * s + span - n, 0)
        return total // 2, total - total // 2
    return padding, padding  # type: ignore[return-value]


def ref_conv(x, weight_at, bias_at, out_channels, k, s, d, padding, groups=1):
    """Cross-correlation by an explicit loop: ``weight_at(o, i, j)`` is the kernel ``(C_in/groups, k, k)``
    used for output channel ``o`` at output position ``(i, j)`` (so unshared and tiled variants fit)."""
    n, c, h, w = x.shape
    (top, bottom), (left, right) = ref_pads(h, k, s, padding, d, 0), ref_pads(w, k, s, padding, d, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = d * (k - 1) + 1
    out_h, out_w = (xp.shape[2] - span) // s + 1, (xp.shape[3] - span) // s + 1
    out = np.zeros((n, out_channels, out_h, out_w))
    per_in, per_out = c // groups, out_channels // groups
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, :, i * s : i * s + span : d, j * s : j * s + span : d]  # (N, C, k, k)
            for o in range(out_channels):
                g = o // per_out
                cin = patch[:, g * per_in : (g + 1) * per_in]
                out[:, o, i, j] = (cin * weight_at(o, i, j)).sum(axis=(1, 2, 3)) + bias_at(o, i, j)
    return out


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def run(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    module = module.double()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


# (in_channels, out_channels, kernel, stride, padding, dilation)
CASES = [
    (1, 1, 3, 1, 0, 1),
    (3, 2, 3, 1, "same", 1),
    (2, 4, 3, 2, "same", 1),
    (3, 2, 2, 2, "same", 1),
    (2, 2, 3, 1, "full", 1),
    (2, 3, 3, 3, 1, 1),
    (2, 2, 3, 1, "same", 2),
    (4, 2, 2, 1, "valid", 2),
    (2, 4, 3, 2, 2, 2),
    (2, 2, 3, 1, (1, 0), 1),  # (height, width) padding
    (2, 4, 3, 2, (0, 2), 2),
]
H, W = 8, 7  # non-square on purpose


def _x(c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, c, H, W))


def scipy_reference(op, x, w, b, k, s, p, d):
    """``op`` (SciPy's correlate2d or convolve2d) summed over input channels, with the kernel dilated
    by zeros and the output subsampled for the stride; ``(N, C_out, H', W')``."""
    cout, cin = w.shape[:2]
    (top, bottom), (left, right) = ref_pads(H, k, s, p, d, 0), ref_pads(W, k, s, p, d, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = d * (k - 1) + 1
    dil = np.zeros((cout, cin, span, span))
    dil[:, :, ::d, ::d] = w
    per_image = [
        np.stack([sum(op(xp[n, c], dil[o, c], mode="valid") for c in range(cin)) + b[o] for o in range(cout)])
        for n in range(len(x))
    ]
    return np.stack(per_image)[:, :, ::s, ::s]


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), CASES)
def test_conv2d_matches_loop_and_scipy(cin, cout, k, s, p, d):
    m = Conv2d(cin, cout, k, s, p, d)
    x = _x(cin)
    got = run(m, x)
    w, b = np64(m.weight), np64(m.bias)
    np.testing.assert_allclose(
        got, ref_conv(x, lambda o, i, j: w[o], lambda o, i, j: b[o], cout, k, s, d, p), atol=1e-10
    )
    # scipy: correlate each channel, dilate the kernel with zeros, subsample for the stride
    expect = scipy_reference(signal.correlate2d, x, w, b, k, s, p, d)
    np.testing.assert_allclose(got, expect, atol=1e-10)


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), CASES)
def test_true_conv2d_is_scipy_convolve(cin, cout, k, s, p, d):
    m = cnnpl.build(
        "conv", "true_conv2d", in_channels=cin, out_channels=cout, kernel_size=k, stride=s, padding=p, dilation=d
    )
    x = _x(cin, 1)
    got = run(m, x)
    w, b = np64(m.weight), np64(m.bias)
    expect = scipy_reference(signal.convolve2d, x, w, b, k, s, p, d)
    np.testing.assert_allclose(got, expect, atol=1e-10)


def test_true_conv2d_differs_from_conv2d_by_the_flip():
    conv = Conv2d(2, 3, 3, padding=1)
    true = cnnpl.build("conv", "true_conv2d", in_channels=2, out_channels=3, kernel_size=3, padding=1)
    true.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 6, 6)
    assert not torch.allclose(conv(x), true(x))
    with torch.no_grad():
        true.weight.copy_(conv.weight.flip(-2, -1))
    torch.testing.assert_close(conv(x), true(x))


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), [c for c in CASES if c[0] % 2 == 0 and c[1] % 2 == 0])
def test_grouped_matches_loop(cin, cout, k, s, p, d):
    m = cnnpl.build(
        "conv", "grouped", in_channels=cin, out_channels=cout, kernel_size=k, stride=s, padding=p, dilation=d
    )
    assert m.groups == 2
    x = _x(cin, 2)
    w, b = np64(m.weight), np64(m.bias)
    expect = ref_conv(x, lambda o, i, j: w[o], lambda o, i, j: b[o], cout, k, s, d, p, groups=2)
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)


def test_grouped_adapts_cardinality_and_keeps_depthwise_groups():
    assert cnnpl.build("conv", "grouped", in_channels=3, out_channels=32).groups == 1  # the RGB stem
    assert cnnpl.build("conv", "grouped", in_channels=12, out_channels=18, cardinality=4).groups == 3
    assert cnnpl.build("conv", "grouped", in_channels=16, out_channels=16, groups=16).groups == 16  # depthwise
    conv, grouped = Conv2d(64, 64, 3), cnnpl.build("conv", "grouped", in_channels=64, out_channels=64, cardinality=4)
    assert sum(p.numel() for p in grouped.parameters()) == 64 * 16 * 9 + 64
    assert sum(p.numel() for p in conv.parameters()) == 64 * 64 * 9 + 64


def test_grouped_refuses_groups_1_in_the_config_which_it_would_read_as_cardinality() -> None:
    # helper-120: conv=grouped conv.groups=1 built the same network as conv=grouped, without a word
    from cnnpl.config import layer_factory
    from cnnpl.errors import CnnplError

    with pytest.raises(CnnplError, match=r"^conv=grouped conv\.groups=1: grouped gives every ungrouped layer "):
        layer_factory("conv", cnnpl.compose(["conv=grouped", "conv.groups=1"]).conv)
    ungrouped = layer_factory("conv", cnnpl.compose(["conv=grouped", "conv.cardinality=1"]).conv)
    assert ungrouped(in_channels=64, out_channels=64, kernel_size=3).groups == 1


@pytest.mark.parametrize(
    ("k", "s", "p", "ref_p"),
    [(3, 1, 1, 2), (3, 2, 1, 2), (5, 1, 2, 4), (3, 1, 0, 1), (5, 2, 0, 2), (3, 1, "valid", 1), (3, 1, "same", "same"),
     (3, 2, "full", 3)],
)  # fmt: skip
def test_dilated_pads_for_the_span_it_adds(k, s, p, ref_p):
    m = cnnpl.build("conv", "dilated", in_channels=2, out_channels=3, kernel_size=k, stride=s, padding=p, dilation=2)
    x = _x(2, 3)
    w, b = np64(m.weight), np64(m.bias)
    np.testing.assert_allclose(
        run(m, x), ref_conv(x, lambda o, i, j: w[o], lambda o, i, j: b[o], 3, k, s, 2, ref_p), atol=1e-10
    )
    # the architecture's plan holds: the size the undilated kernel gives with p (a valid 3x3 shrinks by 2, not 4)
    assert m.output_shape((2, H, W))[1:] == Conv2d(2, 3, k, s, p).output_shape((2, H, W))[1:]


def test_dilated_scales_padding_pairs():
    m = cnnpl.build("conv", "dilated", in_channels=2, out_channels=2, kernel_size=3, padding=[1, 0], dilation=3)
    assert m.output_shape((2, H, W)) == (2, H, W - 2)  # height keeps its size, width shrinks as a valid 3x3's
    x = _x(2, 10)
    w, b = np64(m.weight), np64(m.bias)
    expect = ref_conv(x, lambda o, i, j: w[o], lambda o, i, j: b[o], 2, 3, 1, 3, (3, 2))
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)


@pytest.mark.parametrize(("s", "p"), [(1, 0), (2, 0), (2, "same"), (1, 1)])
def test_pointwise_is_channel_mixing(s, p):
    m = cnnpl.build("conv", "pointwise", in_channels=3, out_channels=5, stride=s, padding=p)
    x = _x(3, 4)
    w, b = np64(m.weight)[:, :, 0, 0], np64(m.bias)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if isinstance(p, int) else x
    expect = np.einsum("oc,nchw->nohw", w, xp)[:, :, ::s, ::s] + b[None, :, None, None]
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), CASES)
@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_separable_matches_two_loops(cin, cout, k, s, p, d, mult):
    m = cnnpl.build(
        "conv", "depthwise_separable", in_channels=cin, out_channels=cout, kernel_size=k, stride=s, padding=p,
        dilation=d, depth_multiplier=mult,
    )  # fmt: skip
    x = _x(cin, 5)
    dw, pw, pb = np64(m.depthwise.weight), np64(m.pointwise.weight), np64(m.pointwise.bias)
    assert m.depthwise.bias is None
    mid = ref_conv(x, lambda o, i, j: dw[o], lambda o, i, j: 0.0, cin * mult, k, s, d, p, groups=cin)
    expect = np.einsum("om,nmhw->nohw", pw[:, :, 0, 0], mid) + pb[None, :, None, None]
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)
    n_params = sum(t.numel() for t in m.parameters())
    assert n_params == cin * mult * k * k + cin * mult * cout + cout


@pytest.mark.parametrize(("cin", "cout", "depth", "dstride", "k", "s", "p"), [
    (5, 6, 3, 1, 3, 1, "same"),   # D' = 3, 2 filters, nothing dropped
    (5, 4, 2, 1, 3, 2, 1),        # D' = 4, 1 filter
    (6, 5, 3, 2, 2, 1, "valid"),  # D' = 2, 3 filters, 1 map dropped
    (2, 3, 3, 1, 3, 1, "full"),   # kernel_depth capped at 2: D' = 1, an ordinary conv
])  # fmt: skip
def test_conv3d_channels_matches_loop(cin, cout, depth, dstride, k, s, p):
    m = cnnpl.build(
        "conv", "conv3d_channels", in_channels=cin, out_channels=cout, kernel_size=k, stride=s, padding=p,
        kernel_depth=depth, depth_stride=dstride,
    )  # fmt: skip
    kd = min(depth, cin)
    d_out = (cin - kd) // dstride + 1
    filters = math.ceil(cout / d_out)
    assert (m.kernel_depth, m.depth_out, m.filters) == (kd, d_out, filters)
    x = _x(cin, 6)
    w, b = np64(m.weight), np64(m.bias)  # (F, 1, kd, k, k)
    maps = []
    for f in range(filters):  # filter-major: map f * D' + d is filter f at depth position d
        for dpos in range(d_out):
            sub = x[:, dpos * dstride : dpos * dstride + kd]
            maps.append(ref_conv(sub, lambda o, i, j, f=f: w[f, 0], lambda o, i, j, f=f: b[f], 1, k, s, 1, p)[:, 0])
    expect = np.stack(maps, axis=1)[:, :cout]
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)
    assert sum(t.numel() for t in m.parameters()) == filters * (kd * k * k + 1)


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), CASES)
def test_locally_connected_matches_loop(cin, cout, k, s, p, d):
    m = LocallyConnected(cin, cout, k, s, p, d, input_size=(H, W))
    _, out_h, out_w = m.output_shape((cin, H, W))
    x = _x(cin, 7)
    w, b = np64(m.weight), np64(m.bias)  # (H'W', C_out, C_in k k), (C_out, H', W')
    expect = ref_conv(
        x, lambda o, i, j: w[i * out_w + j, o].reshape(cin, k, k), lambda o, i, j: b[o, i, j], cout, k, s, d, p
    )
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)
    assert sum(t.numel() for t in m.parameters()) == out_h * out_w * (cout * cin * k * k + cout)


def test_locally_connected_materialises_lazily_and_fixes_its_input_size():
    m = cnnpl.build("conv", "locally_connected", in_channels=2, out_channels=3, kernel_size=3, padding="same")
    assert isinstance(m.weight, torch.nn.parameter.UninitializedParameter)
    assert m.output_shape((2, 6, 5)) == (3, 6, 5)  # what an architecture's shape trace calls at build time
    assert m.weight.shape == (30, 3, 18) and m.bias.shape == (3, 6, 5)
    with pytest.raises(GeometryError, match=r"locally_connected was built for 6x5 inputs .*, got 8x8"):
        m(torch.randn(1, 2, 8, 8))
    lazy = cnnpl.build("conv", "locally_connected", in_channels=2, out_channels=3, kernel_size=3)
    assert lazy(torch.randn(1, 2, 6, 6)).shape == (1, 3, 4, 4)  # or on the first forward pass
    fresh = cnnpl.build("conv", "locally_connected", in_channels=2, out_channels=3, kernel_size=3, padding="same")
    fresh.load_state_dict(m.state_dict())  # a checkpoint carries the input size
    x = torch.randn(2, 2, 6, 5)
    torch.testing.assert_close(fresh(x), m(x))


@pytest.mark.parametrize(("cin", "cout", "k", "s", "p", "d"), CASES)
@pytest.mark.parametrize("tiles", [2, (3, 2)])
def test_tiled_matches_loop(cin, cout, k, s, p, d, tiles):
    m = Tiled(cin, cout, k, s, p, d, tiles=tiles)
    th, tw = m.tiles
    x = _x(cin, 8)
    w, b = np64(m.weight), np64(m.bias)  # (t, t, C_out, C_in, k, k), (t, t, C_out)
    expect = ref_conv(x, lambda o, i, j: w[i % th, j % tw, o], lambda o, i, j: b[i % th, j % tw, o], cout, k, s, d, p)
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)


def test_tiled_with_groups_matches_loop():
    m = Tiled(4, 6, 3, 1, "same", groups=2, tiles=2)
    x = _x(4, 9)
    w, b = np64(m.weight), np64(m.bias)
    expect = ref_conv(
        x, lambda o, i, j: w[i % 2, j % 2, o], lambda o, i, j: b[i % 2, j % 2, o], 6, 3, 1, 1, "same", groups=2
    )
    np.testing.assert_allclose(run(m, x), expect, atol=1e-10)


def test_tiled_spans_conv2d_to_locally_connected():
    x = torch.randn(2, 3, 7, 6)
    one = Tiled(3, 4, 3, 1, 0, tiles=1)
    conv = Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.copy_(one.weight[0, 0])
        conv.bias.copy_(one.bias[0, 0])
    torch.testing.assert_close(one(x), conv(x))  # t = 1 is conv2d

    full = Tiled(3, 4, 3, 2, 1, tiles=(4, 3))  # output 4x3: one kernel per position
    local = LocallyConnected(3, 4, 3, 2, 1, input_size=(7, 6))
    assert local.out_size == (4, 3)
    with torch.no_grad():
        local.weight.copy_(full.weight.reshape(12, 4, 27))
        local.bias.copy_(full.bias.permute(2, 0, 1))
    torch.testing.assert_close(full(x), local(x))  # t = output size is locally_connected


# -- the notes' worked examples --------------------------------------------------------------------


def _one_channel(kernel: list[list[float]], padding: int | str = 0) -> Conv2d:
    m = Conv2d(1, 1, len(kernel), padding=padding)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(kernel, dtype=torch.float32)[None, None])
        m.bias.zero_()
    return m


def test_notes_single_channel_example():
    image = [[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]]
    out = _one_channel([[0, 1, 2], [2, 2, 0], [0, 1, 2]])(torch.tensor(image, dtype=torch.float32)[None, None])
    assert out[0, 0].tolist() == [[12, 12, 17], [10, 17, 19], [9, 6, 14]]


def test_notes_example_3_binary_image():
    image = [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
    out = _one_channel([[1, 0, 1], [0, 1, 0], [1, 0, 1]])(torch.tensor(image, dtype=torch.float32)[None, None])
    assert out[0, 0, 0, :2].tolist() == [4, 3]  # "Convolved feature" A and B


def test_notes_vertical_filter_gives_6_and_true_convolution_flips_it():
    image = torch.tensor([[7, 2, 3, 3, 8], [4, 5, 3, 8, 4], [3, 3, 2, 8, 4], [2, 8, 7, 2, 7], [5, 4, 4, 5, 4]])[
        None, None
    ]
    conv = Conv2d(1, 1, 3, init="vertical_edge")
    out = conv(image.float())
    assert out.shape == (1, 1, 3, 3) and out[0, 0, 0, 0].item() == 6
    true = cnnpl.build("conv", "true_conv2d", in_channels=1, out_channels=1, init="vertical_edge")
    assert true(image.float())[0, 0, 0, 0].item() == -6  # flipping 1 0 -1 columns negates them


@pytest.mark.parametrize("padding", [1, "same"])
def test_notes_padded_sharpen_gives_114(padding):
    image = [[60, 113, 56, 139, 85], [73, 121, 54, 84, 128], [131, 99, 70, 129, 127], [80, 57, 115, 69, 134]]
    image.append([104, 126, 123, 95, 130])
    out = _one_channel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], padding)(
        torch.tensor(image, dtype=torch.float32)[None, None]
    )
    assert out.shape == (1, 1, 5, 5)  # p = (f - 1) / 2 keeps the size
    assert out[0, 0, 0, 0].item() == 114


# -- generated from the registry: every conv, including ones registered later, gets these -----------


def _factory(name: str):
    """The conv factory a user gets with ``conv=<name>``: its YAML, or the config generated from its signature."""
    path = config_dir() / "conv" / f"{name}.yaml"
    node = OmegaConf.load(path) if path.is_file() else generated_config("conv", name)
    return layer_factory("conv", node)


CONVS = cnnpl.list_components("conv")


def test_registry_holds_every_variant_of_the_issue():
    expected = {"conv2d", "true_conv2d", "pointwise", "depthwise_separable", "grouped", "dilated"}
    assert expected | {"conv3d_channels", "locally_connected", "tiled"} <= set(CONVS)


def _builtin(name: str) -> bool:
    return get_registry("conv").entry(name).source == "built-in"


# "same" at any stride and "full" are cnnpl's convs' own; a plugin's conv (nn.Conv2d's padding) is tried on
# what torch's takes too
GEOMETRIES = [(1, "valid"), (1, "same"), (2, "same"), (3, "same"), (1, 1), (1, "full")]
TORCH_GEOMETRIES = [(1, "valid"), (1, "same"), (1, 1)]


@pytest.mark.parametrize(
    ("stride", "padding", "name"),
    [(s, p, n) for s, p in GEOMETRIES for n in CONVS if _builtin(n) or (s, p) in TORCH_GEOMETRIES],
)
def test_every_conv_shape_and_finite(name, stride, padding):
    layer = _factory(name)(in_channels=4, out_channels=6, kernel_size=3, stride=stride, padding=padding)
    x = torch.randn(2, 4, 9, 10)
    expect = layer.output_shape((4, 9, 10)) if hasattr(layer, "output_shape") else None
    y = layer(x)
    assert y.shape[:2] == (2, 6)
    if expect is not None:
        assert tuple(y.shape[1:]) == tuple(expect)
    if padding == "same":  # the contract of "same": ceil(n / s) for any stride
        assert tuple(y.shape[2:]) == (math.ceil(9 / stride), math.ceil(10 / stride))
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, param in layer.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), pname
            assert param.grad.abs().sum() > 0, f"{name}: {pname} gets no gradient"


@pytest.mark.parametrize("name", CONVS)
@pytest.mark.parametrize(("stride", "padding"), [(1, "same"), (2, 1)])
def test_every_conv_gradcheck_float64(name, stride, padding):
    layer = _factory(name)(in_channels=2, out_channels=2, kernel_size=3, stride=stride, padding=padding).double()
    if hasattr(layer, "output_shape"):
        layer.output_shape((2, 5, 4))  # lets lazy layers create their weights
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    layer(x)
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    params = [layer.get_parameter(n).detach().clone().requires_grad_(True) for n in names]

    def f(inp, *ps):
        return functional_call(layer, dict(zip(names, ps, strict=True)), (inp,))

    # fast mode checks the Jacobian along random directions: the same test, far fewer backward passes
    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("name", CONVS)
def test_every_conv_rejects_a_kernel_larger_than_its_input(name):
    from cnnpl.models._util import trace_shapes

    layer = _factory(name)(in_channels=2, out_channels=2, kernel_size=5, padding="valid")
    if min(getattr(layer, "kernel_size", (5, 5))) == 1:
        pytest.skip(f"{name} forces a 1x1 kernel, which fits any input")
    with pytest.raises(GeometryError, match=r"layer 0 \(\w+\) cannot take input \(2, 3, 3\)") as err:
        trace_shapes(torch.nn.Sequential(layer), (2, 3, 3))  # what architectures run at build time
    if hasattr(layer, "output_shape"):
        assert re.search(r"kernel 5 \(span \d+ with dilation \d\) is larger than the input 3", str(err.value))


@pytest.mark.parametrize("name", CONVS)
def test_every_conv_builds_simple_cnn(name):
    from cnnpl.network import build_model

    cfg = cnnpl.compose([f"conv={name}", "conv.padding=same", "model.channels=[4,8,8]", "model.hidden=[16]"])
    model = build_model(cfg, num_classes=3, in_channels=3, input_size=(16, 16))
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


# -- bad input: clear messages at build time --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("conv2d", {"stride": 0}, "conv2d: stride must be >= 1, got 0"),
        ("conv2d", {"padding": -1}, "conv2d: padding must be >= 0, got -1"),
        ("conv2d", {"padding": "half"}, "conv2d: padding must be an int or one of valid, same, full; got 'half'"),
        ("conv2d", {"padding": (1, -1)}, "conv2d: padding must be >= 0, got (1, -1)"),
        ("conv2d", {"padding": (1.5, 1)}, "conv2d: padding pair must hold two ints, got (1.5, 1)"),
        ("conv2d", {"dilation": 0}, "conv2d: dilation must be >= 1, got 0"),
        ("conv2d", {"kernel_size": 0}, "conv2d: kernel_size must be >= 1, got 0"),
        ("conv2d", {"groups": 4}, "conv2d: groups=4 must divide in_channels=6 and out_channels=8"),
        (  # helper-140: grouped's groups=4 meant "4 where they fit": cardinality
            "grouped",
            {"groups": 4},
            "grouped: groups=4 must divide in_channels=6 and out_channels=8; for up to 4 groups in each layer, as its "
            "channels allow, drop conv.groups and give conv.cardinality=4",
        ),
        ("tiled", {"tiles": 0}, "tiled: tiles must be >= 1, got 0"),
        ("true_conv2d", {"stride": 0}, "true_conv2d: stride must be >= 1, got 0"),
        ("pointwise", {"kernel_size": 3}, "pointwise cannot honour kernel_size=3: it is a 1x1 convolution"),
        ("depthwise_separable", {"groups": 2}, "depthwise_separable cannot honour groups=2"),
        ("conv3d_channels", {"groups": 2}, "conv3d_channels cannot honour groups=2"),
        ("locally_connected", {"groups": 2}, "locally_connected cannot honour groups=2"),
        ("locally_connected", {"stride": 0}, "locally_connected: stride must be >= 1, got 0"),
        ("conv2d", {"init": "sobelx"}, "conv2d init: unknown kernel 'sobelx'; did you mean 'sobel_x'"),
        (
            "conv2d",
            {"init": "sharpen", "kernel_size": 1},
            "conv2d: init='sharpen' is a 3x3 kernel and cannot be centred",
        ),
        ("conv2d", {"init": "sharpen", "kernel_size": 4}, "cannot be centred in a 4x4 kernel"),
        # a size that is not an int or a pair of ints: one line naming it, never rounded or cut
        ("conv2d", {"stride": 1.5}, "conv2d: stride must be an int or a (height, width) pair of ints, got 1.5"),
        ("conv2d", {"kernel_size": (3, 3, 3)}, "conv2d: kernel_size must be an int or a (height, width) pair"),
        ("conv2d", {"kernel_size": [3, 1.5]}, "conv2d: kernel_size must be an int or a (height, width) pair"),
        ("conv2d", {"dilation": True}, "conv2d: dilation must be an int or a (height, width) pair of ints, got true"),
        ("conv2d", {"groups": 0}, "conv2d: groups must be an int >= 1, got 0"),
        ("grouped", {"groups": 1.5}, "grouped: groups must be an int >= 1, got 1.5"),
        ("tiled", {"tiles": 2.5}, "tiled: tiles must be an int or a (height, width) pair of ints, got 2.5"),
        ("dilated", {"dilation": 0}, "dilated: dilation must be >= 1, got 0"),
        ("dilated", {"dilation": 2.0}, "dilated: dilation must be an int or a (height, width) pair of ints, got 2.0"),
        ("depthwise_separable", {"depth_multiplier": 1.5}, "depthwise_separable: depth_multiplier must be an int >= 1"),
        ("conv3d_channels", {"depth_stride": 1.5}, "conv3d_channels: depth_stride must be an int >= 1, got 1.5"),
        ("conv3d_channels", {"kernel_depth": 0}, "conv3d_channels: kernel_depth must be an int >= 1, got 0"),
        ("locally_connected", {"input_size": 7.5}, "locally_connected: input_size must be an int or a (height, width)"),
        ("pointwise", {"kernel_size": 1.5}, "pointwise: kernel_size must be an int or a (height, width) pair of ints"),
    ],
)
def test_bad_geometry_messages(name, kwargs, message):
    with pytest.raises(cnnpl.CnnplError) as err:
        cnnpl.build("conv", name, **{"in_channels": 6, "out_channels": 8, **kwargs})
    assert message in str(err.value)


@pytest.mark.parametrize("name", [name for name in CONVS if name != "pointwise" and _builtin(name)])  # 1x1 fits
def test_a_kernel_too_large_names_the_input_and_padding_as_given(name):
    from cnnpl.models._util import trace_shapes

    layer = cnnpl.build("conv", name, in_channels=2, out_channels=2, kernel_size=9, padding=2)
    padding = 6 if name == "dilated" else 2  # dilated pads for the span its dilation 2 adds: 2 + 8 / 2
    with pytest.raises(GeometryError, match=rf"larger than the input 3 padded by {padding} on each side"):
        trace_shapes(nn.Sequential(layer), (2, 3, 3))


@pytest.mark.parametrize("name", ["conv3d_channels", "locally_connected"])
def test_layers_that_do_not_check_channels_natively_refuse_the_wrong_count(name):
    # conv3d_channels would slide over the extra channels (more depth positions, the wrong filters' maps kept)
    layer = cnnpl.build("conv", name, in_channels=3, out_channels=4, kernel_size=3)
    assert layer(torch.randn(1, 3, 6, 6)).shape == (1, 4, 4, 4)
    with pytest.raises(GeometryError, match=f"^{name} was built for 3 input channels, got 5$"):
        layer(torch.randn(1, 5, 6, 6))


def test_integer_settings_take_numpy_and_torch_integers():
    grouped = cnnpl.build("conv", "conv2d", in_channels=4, out_channels=4, groups=np.int64(2))
    assert grouped.groups == 2
    layer = cnnpl.build("conv", "conv3d_channels", in_channels=4, out_channels=4, kernel_depth=np.int64(2))
    assert layer(torch.randn(1, 4, 5, 5)).shape == (1, 4, 3, 3)
    assert cnnpl.build("conv", "tiled", in_channels=2, out_channels=2, tiles=torch.tensor([2, 3])).tiles == (2, 3)


def test_dilated_takes_a_dilation_per_axis_and_scales_each_axis_padding():
    layer = cnnpl.build("conv", "dilated", in_channels=2, out_channels=3, dilation=(1, 2), padding=1)
    x = torch.randn(2, 2, 7, 9)
    assert layer.dilation == (1, 2) and layer.padding == (1, 2)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=(1, 2), dilation=(1, 2))
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (2, 3, 7, 9)  # "3x3, padding 1" keeps its size on both axes


def test_impossible_stack_names_the_layer():
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["conv.dilation=2"])  # simple_cnn's valid 3x3 convs at dilation 2 shrink 32x32 to nothing
    with pytest.raises(
        GeometryError, match=r"layer features\.block3\.pool \(MaxPool\) cannot take input \(128, 1, 1\)"
    ):
        build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    cfg = cnnpl.compose(["conv.kernel_size=7"])
    with pytest.raises(
        GeometryError, match=r"layer features\.block3\.conv \(Conv2d\) cannot take input \(64, 3, 3\).*kernel 7"
    ):
        build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))


# -- init and freeze from the classic kernels ------------------------------------------------------


def test_init_from_kernel_and_freeze_through_the_config():
    from cnnpl.kernels import kernel
    from cnnpl.network import build_model

    cfg = cnnpl.compose(["conv.init=sobel_x", "conv.freeze=true"])
    model = build_model(cfg, num_classes=10, in_channels=3, input_size=(32, 32))
    first = model.features.block1.conv
    torch.testing.assert_close(first.weight, (kernel("sobel_x") / 3).expand(32, 3, 3, 3))
    assert not first.weight.requires_grad and not first.bias.requires_grad and first.bias.abs().sum() == 0
    deeper = model.features.block2.conv.weight
    torch.testing.assert_close(deeper, (kernel("sobel_x") / 32).expand(64, 32, 3, 3))
    before = first.weight.clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    torch.testing.assert_close(first.weight, before)


def test_init_centres_a_kernel_in_a_larger_one():
    m = Conv2d(1, 2, 5, init="sharpen")
    assert m.weight[0, 0, 1:4, 1:4].tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert m.weight[0, 0].abs().sum().item() == 9  # the border stays zero
    assert all(p.requires_grad for p in m.parameters())  # init alone does not freeze


def test_filter_bank_gives_4d_kernels_for_pictures():
    local = LocallyConnected(2, 3, 3, padding="same", input_size=(5, 4))
    centre = (5 // 2) * 4 + 4 // 2
    torch.testing.assert_close(local.filter_bank(), local.weight.detach()[centre].reshape(3, 2, 3, 3))
    with pytest.raises(GeometryError, match="locally_connected has no weights yet"):
        LocallyConnected(2, 3, 3).filter_bank()
    tiled = Tiled(4, 6, 3, groups=2)
    torch.testing.assert_close(tiled.filter_bank(), tiled.weight.detach()[0, 0])
    assert tiled.filter_bank().shape == (6, 2, 3, 3)
    c3d = cnnpl.build("conv", "conv3d_channels", in_channels=5, out_channels=6, kernel_depth=3)
    assert c3d.filter_bank().shape == (2, 3, 3, 3)
