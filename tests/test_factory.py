"""LayerFactory: how config parameters and an architecture's own choices combine."""

from __future__ import annotations

import pytest
import torch

import cnnpl
from cnnpl.errors import CnnplError, GeometryError, UnknownComponentError
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


def test_a_setting_of_another_option_names_the_options_that_take_it() -> None:
    # conv=conv2d +conv.kernel_depth=3 said "did you mean 'kernel_size'?", the advice for a misspelling
    with pytest.raises(UnknownComponentError) as err:
        LayerFactory("conv", "conv2d", {"kernel_depth": 3})
    assert str(err.value) == (
        "conv.kernel_depth is not a setting of conv=conv2d, but of conv=conv3d_channels; choose it "
        "(conv=conv3d_channels conv.kernel_depth=...)"
    )
    with pytest.raises(UnknownComponentError, match=r"^pool 'max' has no parameter 'kernal_size'; did you mean"):
        LayerFactory("pool", "max", {"kernal_size": 3})  # a setting of no option: a misspelling
    with pytest.raises(UnknownComponentError, match=r"^pool 'max' has no parameter 'p'"):  # two: as before
        LayerFactory("pool", "max", {"p": 1, "q": 2})


def test_a_fact_of_the_network_set_in_the_config_must_match_the_architectures() -> None:
    # pool=mixed_learned pool.granularity=channel pool.channels=5 built, then failed at the first batch
    pool = LayerFactory("pool", "mixed_learned", {"granularity": "channel", "channels": 5})
    with pytest.raises(GeometryError, match=r"^pool\.channels=5 contradicts the 32 this layer of the network has "):
        pool(kernel_size=2, channels=32)
    assert isinstance(
        LayerFactory("pool", "mixed_learned", {"channels": 32})(kernel_size=2, channels=32), torch.nn.Module
    )
    # norm.num_features=5: was torch's "running_mean should contain 3 elements not 5" at the first batch (helper-120)
    with pytest.raises(GeometryError, match=r"^norm\.num_features=5 contradicts the 3 this layer of the network has "):
        LayerFactory("norm", "batch", {"num_features": 5})(num_features=3)
    gated = LayerFactory("pool", "gated", {"channels": None})  # null: the architecture decides
    net = cnnpl.build("model", "simple_cnn", num_classes=10, pool=gated)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


class WindowOnly(torch.nn.Module):
    """A plugin's pool that takes no stride: its windows do not overlap, as torch's and Keras' do by default."""

    def __init__(self, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(x, self.kernel_size)


class WindowOnlyKwargs(WindowOnly):
    """The same, handing other keywords on to its base, which names no stride either (nn.Module's takes none)."""

    def __init__(self, kernel_size: int = 2, **kwargs) -> None:
        super().__init__(kernel_size)
        torch.nn.Module.__init__(self, **kwargs)
        self.kernel_size = kernel_size


@pytest.mark.parametrize("pool", [WindowOnly, WindowOnlyKwargs])
@pytest.mark.parametrize("model", ["simple_cnn", "lenet5", "vgg16"])
def test_a_pool_without_a_stride_takes_the_architectures_stride_the_size_of_its_window(
    model: str, pool: type, restore_registries
) -> None:
    # simple_cnn asked for 2x2 windows without a stride, and a pool that takes no stride built in it; since it
    # asks for stride 2, as VGG and LeNet do, the same stride as the window is what such a pool gives unasked
    cnnpl.register("pool", "window_only")(pool)
    shape = {"num_classes": 10, "in_channels": 3, "input_size": (32, 32)}
    net = cnnpl.build("model", model, **shape, pool=cnnpl.factory("pool", "window_only"))
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    if pool is WindowOnlyKwargs:  # a YAML of its own may say stride: null (the architecture decides), as max.yaml
        unset = LayerFactory("pool", "window_only", {"kernel_size": None, "stride": None, "padding": None})
        assert cnnpl.build("model", model, **shape, pool=unset)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(
        CnnplError, match=r"(calls its pool layers with stride=2, which|could not be built: .*'stride')"
    ):
        cnnpl.build("model", model, **shape, pool=cnnpl.factory("pool", "window_only", kernel_size=3))  # stride 2
