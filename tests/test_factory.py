"""LayerFactory: how config parameters and an architecture's own choices combine."""

from __future__ import annotations

import pytest
import torch

import cnnpl
from cnnpl.errors import UnknownComponentError
from cnnpl.factory import LayerFactory


def test_none_means_architecture_decides_and_set_values_win() -> None:
    decided = LayerFactory("pool", "max", {"kernel_size": None, "stride": None})(kernel_size=2)
    assert decided.kernel_size == 2 and decided.stride == 2
    forced = LayerFactory("pool", "max", {"kernel_size": 3, "stride": None})(kernel_size=2)
    assert forced.kernel_size == 3


def test_optional_context_is_dropped_for_layers_that_do_not_take_it() -> None:
    pool = cnnpl.factory("pool", "avg")(kernel_size=2, channels=64)
    assert pool(torch.ones(1, 64, 4, 4)).shape == (1, 64, 2, 2)


def test_other_unknown_keywords_still_fail() -> None:
    with pytest.raises(UnknownComponentError, match="did you mean 'stride'"):
        cnnpl.factory("pool", "avg")(kernel_size=2, strides=2)


def test_misspelt_config_parameter_fails_when_the_factory_is_made() -> None:
    with pytest.raises(UnknownComponentError, match="pool 'max' has no parameter 'kernal_size'"):
        LayerFactory("pool", "max", {"kernal_size": 3})
    with pytest.raises(UnknownComponentError, match="unknown conv 'conv2'"):
        LayerFactory("conv", "conv2", {})
