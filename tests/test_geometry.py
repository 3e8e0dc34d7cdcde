"""Shape and parameter arithmetic: brute-force counts, real layers, the notes' numbers, error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from torch import nn

from cnnpl.errors import GeometryError
from cnnpl.geometry import (
    conv_parameters,
    dense_parameters,
    full_padding,
    output_size,
    padding_amounts,
    pair,
    pixel_uses,
    receptive_field,
    receptive_fields,
    same_padding,
    why_convolutions,
)


def windows(n: int, k: int, s: int, before: int, after: int, d: int) -> int:
    """Count the window positions by sliding one, as the notes draw it."""
    span, count, start = d * (k - 1) + 1, 0, 0
    while start + span <= n + before + after:
        count, start = count + 1, start + s
    return count


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 4), d=st.integers(1, 3)
)  # fmt: skip
def test_output_size_counts_the_windows(n, k, s, p, d):
    expected = windows(n, k, s, p, p, d)
    if expected == 0:
        with pytest.raises(GeometryError, match="is larger than the input"):
            output_size(n, k, s, p, d)
    else:
        assert output_size(n, k, s, p, d) == expected
        if d == 1:
            assert expected == math.floor((n + 2 * p - k) / s) + 1  # the notes' formula


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3))
def test_padding_modes(n, k, s, d):
    before, after = padding_amounts(n, k, s, "same", d)
    assert windows(n, k, s, before, after, d) == math.ceil(n / s) == output_size(n, k, s, "same", d)
    assert 0 <= after - before <= 1  # the odd zero goes after
    assert padding_amounts(n, k, s, "valid", d) == (0, 0)
    if d * (k - 1) + 1 <= n:
        assert output_size(n, k, s, "valid", d) == output_size(n, k, s, 0, d)
    full = output_size(n, k, 1, "full", d)
    assert full == n + d * (k - 1)  # n + f - 1 at d = 1
    assert padding_amounts(n, k, s, 3, d) == (3, 3)


def test_pair_takes_any_integer_kind_and_never_rounds():
    assert pair(3) == (3, 3) and pair([2, 5]) == (2, 5) and pair(OmegaConf.create([2, 5])) == (2, 5)
    assert pair(np.int64(4)) == (4, 4) and pair((np.int64(1), torch.tensor(2))) == (1, 2)
    assert pair(np.array([3, 3])) == pair(torch.tensor([3, 3])) == pair(torch.Size([3, 3])) == (3, 3)
    assert conv_parameters(4, 4, 3, groups=np.int64(2)) == 76
    with pytest.raises(
        GeometryError, match=r"^x must be an int or a \(height, width\) pair of ints, got \[1\.5, 2\.0\]$"
    ):
        pair(torch.tensor([1.5, 2.0]), "x")
    # a mapping of two (pool.kernel_size={a:2,b:2}) was a KeyError; one element of an array is no int
    for value in ({"a": 2, "b": 2}, OmegaConf.create({"a": 2, "b": 2}), {0: 3, 1: 4}, torch.tensor([3]), np.array([3])):
        with pytest.raises(GeometryError, match=r"^x must be an int or a \(height, width\) pair of ints"):
            pair(value, "x")


@pytest.mark.parametrize("d", [1, 2, 3])
def test_full_padding_gives_n_plus_d_f_minus_1_outputs(d):
    n, f = 5, 3
    assert full_padding(f, d) == d * (f - 1)
    assert output_size(n, f, 1, "full", d) == n + d * (f - 1)
    layer = nn.Conv2d(1, 1, f, padding=full_padding(f, d), dilation=d)
    assert layer(torch.zeros(1, 1, n, n)).shape[-1] == n + d * (f - 1)


def test_existing_helpers_keep_their_behaviour():
    assert output_size(32, 3) == 30
    assert output_size(7, 3, stride=2) == 3
    assert output_size(39, 3) == 37  # the notes' "simple convolutional network example"
    assert same_padding(32, 3) == (1, 1) and same_padding(32, 4) == (1, 2) and same_padding(5, 3, 2) == (1, 1)
    assert full_padding(5) == 4 and full_padding(3, dilation=2) == 4


def test_padding_matches_real_layers():
    x = torch.zeros(1, 1, 11, 9)
    for k, s, p in [(3, 1, 1), (5, 2, 0), (3, 2, 2), (4, 3, 1)]:
        out = nn.Conv2d(1, 1, k, s, p)(x)
        assert out.shape[2:] == (output_size(11, k, s, p), output_size(9, k, s, p))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: output_size(5, 3, stride=0), "stride must be >= 1, got 0"),
        (lambda: output_size(5, 3, padding=-1), "padding must be >= 0, got -1"),
        (lambda: output_size(5, 3, dilation=0), "kernel_size and dilation must be >= 1, got 3 and 0"),
        (lambda: output_size(3, 5), "kernel 5 (span 5 with dilation 1) is larger than the input 3 padded by 0"),
        (lambda: output_size(4, 3, dilation=2), "kernel 3 (span 5 with dilation 2) is larger than the input 4"),
        (lambda: output_size(4, 3, padding="half"), "padding must be an int or one of valid, same, full; got 'half'"),
        (lambda: padding_amounts(4, 3, 0, "same"), "stride must be >= 1, got 0"),
        (lambda: receptive_field([(3, 0)]), "layer 0: kernel_size, stride and dilation must be >= 1, got 3, 0, 1"),
        (lambda: receptive_field([(3,)]), "layer 0 of the stack must be (kernel_size, stride[, dilation]), got (3,)"),
        (lambda: conv_parameters(3, 8, 3, groups=2), "groups=2 must divide in_channels=3 and out_channels=8"),
        (lambda: conv_parameters(4, 4, 3, groups=0), "groups must be an int >= 1, got 0"),
        (lambda: conv_parameters(4, 4, 2.5), "kernel_size must be an int or a (height, width) pair of ints, got 2.5"),
        (lambda: pair([3, 1.5], "stride"), "stride must be an int or a (height, width) pair of ints, got [3, 1.5]"),
        (lambda: pair((3, 3, 3)), "size must be an int or a (height, width) pair of ints, got [3, 3, 3]"),
        (lambda: pair(True, "tiles"), "tiles must be an int or a (height, width) pair of ints, got true"),
    ],
)
def test_error_messages(call, message):
    with pytest.raises(GeometryError) as err:
        call()
    assert message in str(err.value)


def _measured_receptive_field(layers: list[nn.Module], size: int = 64) -> int:
    """Width of the input region that one central output unit's gradient reaches."""
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    y = nn.Sequential(*layers)(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    cols = x.grad[0, 0].abs().sum(0).nonzero()
    return int(cols.max() - cols.min() + 1)


def _ones_conv(k: int, s: int = 1, d: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, k, s, dilation=d, bias=False)
    nn.init.ones_(conv.weight)
    return conv


@pytest.mark.parametrize(
    "stack",
    [
        [(3, 1), (3, 1)],
        [(3, 1), (3, 1), (3, 1)],
        [(5, 2), (3, 1)],
        [(3, 1), (2, 2), (3, 1), (2, 2), (3, 1), (2, 2)],  # simple_cnn's features
        [(3, 1, 2), (3, 1, 4)],  # dilated
        [(7, 2), (3, 2), (3, 1)],  # a ResNet-like stem
    ],
)
def test_receptive_field_matches_the_gradient(stack):
    # average pooling stands in for pooling: every input of the window gets gradient (max would pick one)
    layers = [nn.AvgPool2d(2, 2) if tuple(layer) == (2, 2) else _ones_conv(*layer) for layer in stack]
    assert receptive_field(stack) == _measured_receptive_field(layers)
    assert receptive_fields(stack)[-1].jump == math.prod(layer[1] for layer in stack)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3),
    p=st.one_of(st.integers(0, 2), st.sampled_from(["valid", "same", "full"])), d=st.integers(1, 2),
)  # fmt: skip
def test_pixel_uses_is_the_gradient_of_an_all_ones_filter(n, k, s, p, d):
    # d(sum of outputs) / d(pixel) with every weight 1: the number of outputs whose window holds the pixel
    if d * (k - 1) + 1 > n + sum(padding_amounts(n, k, s, p, d)):
        return
    before, after = padding_amounts(n, k, s, p, d)
    image = torch.ones(1, 1, n, n, dtype=torch.float64, requires_grad=True)
    padded = torch.nn.functional.pad(image, (before, after, before, after))
    torch.nn.functional.conv2d(
        padded, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s, dilation=d
    ).sum().backward()
    assert pixel_uses(n, k, s, p, d) == image.grad[0, 0].long().tolist()


def test_pixel_uses_gives_the_notes_reason_for_padding():
    # the notes: edge pixels are used "only once", the middle ones "more than once"; in fact only the corners are once
    uses = pixel_uses(6, 3)
    assert uses[0] == [1, 2, 3, 3, 2, 1] and uses[2][2] == 9
    assert pixel_uses(6, 3, padding="same")[0] == [4, 6, 6, 6, 6, 4]
    assert pixel_uses(5, 2, stride=2)[-1] == [0] * 5  # a stride that does not fit leaves the last row out


def test_receptive_field_facts():
    assert receptive_field([(3, 1)] * 2) == receptive_field([(5, 1)]) == 5  # VGG: two 3x3 see what one 5x5 sees
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([]) == 1


def test_parameter_counts_match_real_layers():
    for c_in, c_out, k, g, bias in [
        (3, 6, 5, 1, True),
        (64, 128, 3, 1, False),
        (32, 64, 3, 4, True),
        (8, 8, 1, 8, True),
    ]:
        layer = nn.Conv2d(c_in, c_out, k, groups=g, bias=bias)
        assert conv_parameters(c_in, c_out, k, bias=bias, groups=g) == sum(p.numel() for p in layer.parameters())
    assert dense_parameters(512, 256) == sum(p.numel() for p in nn.Linear(512, 256).parameters())
    assert dense_parameters(512, 256, bias=False) == 512 * 256


def test_why_convolutions_reproduces_the_notes():
    w = why_convolutions((3, 32, 32), filters=6, kernel_size=5)
    assert w.output_shape == (6, 28, 28)  # "28 x 28 x 6 dimensional output"
    assert w.conv == 456  # (5 x 5 x 3 + 1) x 6
    assert conv_parameters(1, 6, 5) == 156  # the notes' "6 x 26 = 156", counting one input channel
    assert w.dense_weights == 3072 * 4704 == 14_450_688  # "3072 x 4704 ≈ 14M"
    assert w.dense == 14_450_688 + 4704
    assert w.ratio > 30_000  # the notes' point: four orders of magnitude
    # the conv count does not depend on the image size; the dense one grows with its square
    assert why_convolutions((3, 64, 64)).conv == 456
    assert why_convolutions((3, 64, 64)).dense > 15 * w.dense


@pytest.mark.parametrize(
    ("call", "message"),
    [  # helper-131: a TypeError from inside, a float result, a ZeroDivisionError from .ratio
        (
            lambda: output_size(5, 3, 1, (1, 1)),
            "padding must be an int or one of valid, same, full for one axis, got (1, 1)",
        ),
        (lambda: output_size(5.5, 3), "n must be an int for one axis, got 5.5"),
        (lambda: output_size(5, (3, 3)), "kernel_size must be an int for one axis, got (3, 3)"),
        (lambda: why_convolutions(filters=0), "filters must be an int >= 1, got 0"),
        (lambda: why_convolutions(input_shape=(3, 32)), "input_shape must be a (C, H, W) volume, got (3, 32)"),
        (
            lambda: why_convolutions(input_shape=(3, 32, 0)),
            "each of input_shape's (C, H, W) must be an int >= 1, got 0",
        ),
    ],
)
def test_the_geometry_helpers_refuse_what_is_no_size(call, message) -> None:
    with pytest.raises(GeometryError) as err:
        call()
    assert str(err.value) == message
