"""The notes' Keras CIFAR-10 network, built from the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnpl
from cnnpl.errors import GeometryError


def test_parameter_count_and_output_shape_match_the_notes() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 258_762
    assert net(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_layer_sequence_is_the_keras_model() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 32, (3, 3), (0, 0)),
        (32, 64, (3, 3), (0, 0)),
        (64, 128, (3, 3), (0, 0)),
    ]
    dense = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512, 256), (256, 128), (128, 10)]
    assert net.stages == ["features.block1", "features.block2", "features.block3"]


def test_pool_factory_replaces_every_pooling_layer() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10, pool=cnnpl.factory("pool", "avg"))
    pools = [type(m).__name__ for m in net.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert pools == ["AvgPool", "AvgPool", "AvgPool"]


def test_facts_come_from_the_caller() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=100, in_channels=1, input_size=(28, 28))
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 100)


def test_input_too_small_fails_at_build_naming_the_layer() -> None:
    with pytest.raises(GeometryError, match=r"layer features\.block3\.conv \(Conv2d\) cannot take input \(64, 1, 1\)"):
        cnnpl.build("model", "simple_cnn", num_classes=10, input_size=(12, 12))
