"""The component registry: both registration forms, listing, and its error messages."""

from __future__ import annotations

import pytest
from torch import nn

import cnnpl
from cnnpl.errors import DuplicateComponentError, UnknownComponentError
from cnnpl.registry import Registry


def test_decorator_and_call_forms_register_and_build() -> None:
    reg = Registry("pool")

    @reg.register("twice")
    class Twice(nn.Module):
        def __init__(self, factor: int = 2) -> None:
            super().__init__()
            self.factor = factor

    reg.register("same", nn.Identity)
    assert reg.names() == ["same", "twice"]
    assert reg.build("twice", factor=3).factor == 3
    assert isinstance(reg.build("same"), nn.Identity)
    assert reg.entry("twice").source.endswith("test_registry")  # where it was defined


def test_duplicate_name_raises_naming_both_sources_unless_override() -> None:
    reg = Registry("conv")
    reg.register("a", nn.Identity)
    with pytest.raises(
        DuplicateComponentError, match=r"conv 'a' is already registered by module torch\..*override=True"
    ):
        reg.register("a", nn.ReLU)
    reg.register("a", nn.ReLU, override=True)
    assert reg.get("a") is nn.ReLU


def test_unknown_name_lists_available_and_suggests_close_matches() -> None:
    with pytest.raises(UnknownComponentError) as err:
        cnnpl.build("pool", "maxx")
    assert str(err.value).startswith("unknown pool 'maxx'; did you mean 'max'?")
    assert "Available: " in str(err.value) and "avg" in str(err.value)


def test_unknown_family_and_bad_names() -> None:
    with pytest.raises(UnknownComponentError, match="unknown component family 'pooling'"):
        cnnpl.list_components("pooling")
    with pytest.raises(ValueError, match="must be a Python identifier"):
        Registry("pool").register("my-pool", nn.Identity)


def test_misspelt_parameter_suggests_the_right_one() -> None:
    with pytest.raises(UnknownComponentError) as err:
        cnnpl.build("pool", "max", kernal_size=3)
    assert str(err.value) == (
        "pool 'max' has no parameter 'kernal_size'; did you mean 'kernel_size'? "
        "Parameters: kernel_size, stride, padding"
    )


def test_module_level_api_lists_the_builtins() -> None:
    assert set(cnnpl.FAMILIES) >= {"conv", "pool", "model"}
    assert {"conv2d"} <= set(cnnpl.list_components("conv"))
    assert {"max", "avg"} <= set(cnnpl.list_components("pool"))
    assert "simple_cnn" in cnnpl.list_components("model")
    assert cnnpl.list_components("pool") == sorted(cnnpl.list_components("pool"))


def test_global_register_and_override_roundtrip() -> None:
    class Probe(nn.Identity):
        pass

    cnnpl.register("act", "probe_identity", Probe)
    try:
        with pytest.raises(DuplicateComponentError):
            cnnpl.register("act", "probe_identity", nn.ReLU)
        assert isinstance(cnnpl.build("act", "probe_identity"), Probe)
    finally:
        cnnpl.get_registry("act")._entries.pop("probe_identity")
