"""Hydra glue: where ``conf/`` lives, config options generated from the registries, composing.

Every registered component becomes an option of its config group. Built-ins have readable YAML in
``conf/<family>/<name>.yaml``; any other registered component (a plugin, a notebook class) gets a
config generated from its constructor signature, stored in Hydra's ConfigStore. A component config
is ``name:`` plus the constructor's parameters; a ``null`` value means "the architecture decides"
(see :class:`cnnpl.factory.LayerFactory`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cnnpl.errors import CnnplError
from cnnpl.factory import LayerFactory
from cnnpl.registry import get_registry, parameters_of

# Families that are config groups of interchangeable layers / architectures.
COMPONENT_GROUPS = ("conv", "pool", "norm", "act", "model")

# Parameters an architecture (or the data, for models) supplies at build time; generated configs
# expose them as null so ``pool.kernel_size=3`` can still force a value everywhere.
SUPPLIED_BY_CALLER: dict[str, frozenset[str]] = {
    "conv": frozenset({"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"}),
    "pool": frozenset({"kernel_size", "stride", "padding", "channels"}),
    "norm": frozenset({"num_features"}),
    "act": frozenset(),
    "model": frozenset({"num_classes", "in_channels", "input_size", "conv", "pool", "norm", "act"}),
}
HIDDEN_FROM_CONFIG = {"model": frozenset({"num_classes", "in_channels", "input_size", "conv", "pool", "norm", "act"})}

CONFIG_NAME = "train"


def config_dir() -> Path:
    """``conf/`` inside an installed wheel (``cnnpl/conf``), or at the top of the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"cnnpl's conf/ folder is missing (looked in {here / 'conf'} and {here.parents[1] / 'conf'})"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (list, dict, str, int, float, bool)) or value is None:
        return value
    return None  # objects (factories, modules) cannot live in a config: leave them to the caller


def generated_config(family: str, name: str) -> dict[str, Any]:
    """The config node of ``family/name`` derived from its signature: ``{"name": name, param: default}``."""
    node: dict[str, Any] = {"name": name}
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset())
    hidden = HIDDEN_FROM_CONFIG.get(family, frozenset())
    for pname, param in parameters_of(get_registry(family).get(name)).items():
        if pname in hidden:
            continue
        if pname in supplied or param.default is inspect.Parameter.empty:
            node[pname] = None
        else:
            node[pname] = _plain(param.default)
    return node


def register_component_configs() -> None:
    """Add a generated option to each config group for every registered component without YAML."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    conf = config_dir()
    for family in COMPONENT_GROUPS:
        for name in get_registry(family).names():
            if not (conf / family / f"{name}.yaml").is_file():
                store.store(group=family, name=name, node=generated_config(family, name), provider="cnnpl")


def layer_factory(family: str, node: DictConfig | dict[str, Any]) -> LayerFactory:
    """The :class:`LayerFactory` a component config node describes."""
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    params = {str(k): v for k, v in dict(raw).items()}  # type: ignore[arg-type]
    name = params.pop("name", None)
    if not name:
        raise CnnplError(f"the {family} config has no 'name' key; choose one with {family}=<name>")
    return LayerFactory(family, str(name), params)


def compose(overrides: list[str], output_dir: str | None = None) -> DictConfig:
    """Compose ``conf/train.yaml`` with command-line style ``overrides``, outside a Hydra app.

    ``output_dir`` replaces Hydra's run directory (default ``outputs/api``).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_component_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="cnnpl"):
        cfg = hydra_compose(CONFIG_NAME, overrides=[*overrides, f"output_dir={output_dir or 'outputs/api'}"])
    return cfg
