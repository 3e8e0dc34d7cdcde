"""Layer factories: what an architecture receives instead of a hard-coded layer class.

A :class:`LayerFactory` is a registered component with some parameters fixed by the config. The
architecture calls it with the parameters only it knows (channels, kernel size of that layer...);
parameters set in the config win over the architecture's, and a config value of ``None`` means
"let the architecture decide" (or the constructor's default), except for a plugin's setting typed
``X | None`` whose default is not None, which then gets None. So ``pool=avg`` swaps every pooling layer of a network and
``pool.kernel_size=3`` changes all of their kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnpl.errors import CnnplError, GeometryError, UnknownComponentError, yaml_word
from cnnpl.registry import (
    accepts_var_kwargs,
    check_kwargs,
    get_registry,
    keyword_chain,
    parameters_of,
    setting_of_another,
)

# Facts an architecture offers to every layer of a family; a layer that does not take one
# simply does not receive it (max pooling has no use for the channel count).
OPTIONAL_CONTEXT = frozenset({"channels", "norm", "act", "in_channels", "input_size", "num_classes", "layer_name"})
# What a family's layers get only when their constructor, or a base it hands **kwargs on to, names it: a
# pass-through subclass of nn.MaxPool2d (__init__(self, *args, **kwargs)) would hand it to torch's, which has
# no use for it; one of GatedPool, which needs it, gets it
PASSED_IF_NAMED = {"pool": frozenset({"channels"})}
# The facts of the network at a layer: a config value may not contradict the one the architecture passes
FACTS = frozenset({"channels", "in_channels", "num_features", "input_size", "num_classes"})


@dataclass(frozen=True)
class LayerFactory:
    """``family/name`` with config ``params``; calling it builds one layer."""

    family: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # settings whose null is passed on as None rather than read as "the default": a plugin's setting typed
    # ``X | None`` whose default is not None (:func:`cnnpl.config.layer_factory` finds them)
    none_passed: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # unknown names and misspelt parameters fail now, not when the first layer is built
        try:
            check_kwargs(self.target, dict(self.params), what=f"{self.family} {self.name!r}")
        except UnknownComponentError as err:  # +conv.kernel_depth=3 with conv=conv2d: a setting of another option
            from cnnpl.config import COMPONENT_GROUPS, no_config_setting  # (cnnpl.config imports this module)

            unknown = getattr(err, "unknown", [])
            another = (
                setting_of_another(self.family, self.name, unknown[0], no_config_setting(self.family))
                if len(unknown) == 1 and self.family in COMPONENT_GROUPS
                else None
            )
            if another is None:
                raise
            raise UnknownComponentError(another) from None

    @property
    def target(self) -> Any:
        return get_registry(self.family).get(self.name)

    def __call__(self, **kwargs: Any) -> nn.Module:
        """Build one layer; architectures pass everything by keyword."""
        for key in FACTS & kwargs.keys():
            value = self.params.get(key)
            if value is not None and _as_tuple(value) != _as_tuple(kwargs[key]):
                raise GeometryError(
                    f"{self.family}.{key}={yaml_word(value)} contradicts the {yaml_word(kwargs[key])} this layer of "
                    f"the network has (the architecture passes it); leave {self.family}.{key} unset (null)"
                )
        merged = {**kwargs, **{k: v for k, v in self.params.items() if v is not None or k in self.none_passed}}
        accepted = parameters_of(self.target)
        if not accepts_var_kwargs(self.target):
            merged = {k: v for k, v in merged.items() if k in accepted or k not in OPTIONAL_CONTEXT}
            reachable = set(accepted)
        else:
            chain, _ = keyword_chain(self.target)  # the bases the keywords are handed on to may name it
            reachable = set(accepted) | {name for function in chain for name in parameters_of(function)}
            named = PASSED_IF_NAMED.get(self.family, frozenset())  # set in the config, it is passed anyway
            merged = {
                k: v for k, v in merged.items() if k in reachable or k not in named or self.params.get(k) is not None
            }
        given = self.params.get("stride") is not None  # set in the config: passed as it is
        if self.family == "pool" and "stride" not in reachable and not given and _window_stride(merged):
            del merged["stride"]  # a stride the size of the window: what a pool without the setting does
        layer = get_registry(self.family).build(self.name, **merged)
        if not isinstance(layer, nn.Module):  # else the architecture's nn.Sequential would refuse it, blaming the model
            raise CnnplError(
                f"{self.family} {self.name!r} ({get_registry(self.family).entry(self.name).source}) built a "
                f"{type(layer).__name__}, not a torch.nn.Module: a {self.family} must build a layer (subclass "
                "torch.nn.Module, or return one)"
            )
        return layer

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.family}={self.name}({params})"


def _window_stride(kwargs: Mapping[str, Any]) -> bool:
    """Whether ``kwargs`` asks for a stride equal to the window (``kernel_size=2, stride=2``): the default of
    every pooling layer (torch's, Keras'), so a pool that takes no ``stride`` gives it without being asked."""
    stride, kernel = kwargs.get("stride"), kwargs.get("kernel_size")
    return stride is not None and kernel is not None and _pair(stride) == _pair(kernel)


def _pair(value: Any) -> Any:
    value = _as_tuple(value)
    return value if isinstance(value, tuple) else (value, value)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value  # ListConfig too


def factory(family: str, name: str, **params: Any) -> LayerFactory:
    """Shorthand: ``factory("pool", "avg")``."""
    return LayerFactory(family, name, params)
