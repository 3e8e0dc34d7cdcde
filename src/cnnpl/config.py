"""Hydra glue: where ``conf/`` lives, config options generated from the registries, composing.

Every registered component becomes an option of its config group. Built-ins have readable YAML in
``conf/<family>/<name>.yaml``; any other registered component (a plugin, a notebook class) gets a
typed config generated from its constructor signature (a dataclass in Hydra's ConfigStore), so
``pool.beta=abc`` fails at composition when ``beta`` is hinted ``float``. A component config is
``name:`` plus the constructor's parameters; a ``null`` value means "the architecture decides"
(see :class:`cnnpl.factory.LayerFactory`); a required parameter nobody supplies is ``???``. A plugin
that replaces a built-in (``override=True``) keeps the built-in's YAML, and its own parameters are
added to it, so ``pool=avg pool.scale=2`` reaches the replacement's ``scale``.

Registered callbacks, the built-in ones included, become options of the ``callbacks`` group:
``callbacks=[default,<name>]`` adds one next to the default set.

:func:`check_configurable` and :func:`check_option_name` run on every registration, so a component
whose constructor cannot become a config, or whose name a YAML option of its group already takes
(``callbacks=minimal`` is a set of callbacks), is refused at once, with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import enum
import functools
import inspect
import pathlib
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from cnnpl.errors import CnnplError, DuplicateComponentError, first_line, yaml_word
from cnnpl.factory import FACTS, LayerFactory
from cnnpl.registry import SourceText, built_by, get_registry, parameters_of, setting_of_another

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

# Families whose registered components get generated options, and the group each one lands in.
CONFIG_GROUPS = {**{family: family for family in COMPONENT_GROUPS}, "callback": "callbacks"}

CONFIG_NAME = "train"
# Config groups a run can do without (``~logger``); every other group needs an option.
# the groups whose options are parts of a whole, to be merged: trainer=[default,ddp_cpu], callbacks=[default,gradcam]
MERGED_GROUPS = frozenset({"callbacks", "trainer", "experiment"})
OPTIONAL_GROUPS = frozenset({"logger", "callbacks", "experiment", "scheduler"})
# what no run can do without: `~seed` (Hydra's delete) failed with a traceback. (`~pool`, `~conv`, `~norm`, `~act`
# leave the layers to the architecture's own defaults, `~fit` and `~test` to true: those work.)
REQUIRED_KEYS = frozenset({"model", "optimizer", "data", "trainer", "system", "seed", "output_dir"})

# Leaf types OmegaConf can check; any other hint becomes an unchecked (Any) config key.
_LEAF_TYPES = (bool, int, float, str, pathlib.Path)


class ComponentSignatureError(CnnplError, TypeError):
    """A registered class or function whose constructor cannot be turned into a config."""


def config_dir() -> Path:
    """``conf/`` inside an installed wheel (``cnnpl/conf``), or at the top of the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"cnnpl's conf/ folder is missing (looked in {here / 'conf'} and {here.parents[1] / 'conf'})"
    )


def _plain(value: Any, hint: Any = Any) -> Any:
    """A parameter's default as a config holds it (``hint``: the parameter's type hint)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum) and isinstance(value, (str, int, float)) and not _is_enum(hint):
        # a str- or int-mixin member for a parameter not typed as its Enum (`mode: str = Mode.MAX`): its value,
        # which it equals; OmegaConf would store str(member), the word 'Mode.MAX', in a str setting
        return value.value
    if isinstance(value, pathlib.PurePath):
        return str(value)  # a Path-typed key takes the text back as a Path
    if isinstance(value, (list, dict, str, int, float, bool, enum.Enum)) or value is None:
        return value  # an Enum member: OmegaConf keeps it (and shows its name)
    return None  # objects (factories, modules) cannot live in a config: leave them to the caller


def _is_enum(hint: Any) -> bool:
    kind = _required(config_type(hint))
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def check_configurable(family: str, name: str, obj: Callable[..., Any]) -> None:
    """Refuse ``obj`` as ``family/name`` if its constructor cannot become a config.

    Every required parameter (no default) must either be supplied by the caller (an architecture
    passes ``in_channels`` to a conv; see :data:`SUPPLIED_BY_CALLER`) or carry a type hint, so the
    generated config knows what ``<family>.<param>=...`` may hold; and it must be passable by
    keyword, because architectures call factories with keywords only.
    Raises :class:`ComponentSignatureError` naming the parameter and the fix.
    """
    if family not in CONFIG_GROUPS:
        return
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError) as err:
        raise ComponentSignatureError(
            f"{family} {name!r} ({_describe(obj)}) cannot be registered: its signature cannot be read ({err}); "
            "register a class or a Python function with named, typed parameters instead"
        ) from None
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset()) | HIDDEN_FROM_CONFIG.get(family, frozenset())
    if family != "callback" and "name" in params and "name" not in supplied:
        raise ComponentSignatureError(
            f"{family} {name!r} ({_describe(obj)}) cannot be registered: its parameter 'name' is the config key "
            f"{family}.name, which chooses the {family} ({family}.name={name}), so it could never be set; rename it"
        )
    for pname, param in params.items():
        if param.default is not inspect.Parameter.empty or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise ComponentSignatureError(
                f"{family} {name!r} ({_describe(obj)}) cannot be registered: its required parameter {pname!r} "
                "is positional-only, but cnnpl passes every parameter by keyword; remove the '/' from its signature"
            )
        if pname not in supplied and param.annotation is inspect.Parameter.empty:
            raise ComponentSignatureError(
                f"{family} {name!r} ({_describe(obj)}) cannot be registered: its required parameter {pname!r} "
                f"has no type hint, so it cannot become the config key {family}.{pname}; add a type hint "
                f"({pname}: float, for example) or a default ({pname}=...)"
            )
        hint = _type_hints(obj).get(pname, Any) if pname not in supplied and family != "callback" else Any
        if not config_holds(hint):  # gate: nn.Module took gate=relu as the text 'relu' (helper-136)
            raise ComponentSignatureError(
                f"{family} {name!r} ({_describe(obj)}) cannot be registered: its required parameter {pname!r} is "
                f"typed {_hint_name(hint)}, which a config cannot hold (it holds numbers, text, true/false, lists "
                f"and mappings); take a setting and build the object inside ({pname}: str = ..., for example)"
            )


def config_holds(hint: Any) -> bool:
    """Whether a config value can be what ``hint`` asks for: False only for the objects a layer's settings are
    never given as text, numbers or lists (an ``nn.Module``, a tensor), alone or with None (``nn.Module | None``);
    a union with any other kind, and every other hint (``numbers.Real``, ``Iterable[int]``, a ``timedelta`` that a
    ``_target_`` node builds), are left to the checks of their kind (helper-138)."""
    import torch

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # nn.Module | str: a setting may give the text
        return any(config_holds(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return not (isinstance(hint, type) and issubclass(hint, (torch.nn.Module, torch.Tensor)))


def _hint_name(hint: Any) -> str:
    """``Module`` of ``torch.nn.Module``, ``Callable[[int], int]`` as written."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def check_option_name(family: str, name: str) -> None:
    """Refuse ``family/name`` when a YAML option of its group has that name and configures something else.

    ``conf/callbacks/minimal.yaml`` is a set of callbacks: Hydra would choose the YAML for
    ``<group>=<name>``, so the component could never be chosen. A YAML that says ``name: <name>`` is the
    component's own config (a built-in's). Raises :class:`DuplicateComponentError` naming the file. Only
    cnnpl's ``conf/`` is looked in; a plugin's YAML option (a preset such as cnnpl-example's
    ``pool/softpool_sharp.yaml``) is checked when the name is chosen (:func:`shadowing_preset`).
    """
    group = CONFIG_GROUPS.get(family)
    if group is None:
        return
    if family == "callback":
        _check_callback_entry_name(name)
    path = config_dir() / group / f"{name}.yaml"
    if not path.is_file():
        return
    node = _load_yaml(path)
    if isinstance(node, DictConfig) and node.get("name") == name:
        return
    taken = f"the set of callbacks {group}={name}" if family == "callback" else f"the option {group}={name}"
    raise DuplicateComponentError(
        f"{family} {name!r} cannot be registered: {taken} (conf/{group}/{name}.yaml) already has that name, "
        f"and would be chosen instead of it; pick another name"
    )


def _check_callback_entry_name(name: str) -> None:
    """Refuse a callback named like an entry of a set of callbacks that is no registered component (Lightning's
    ``checkpoint``, ``lr_monitor``, ``progress_bar``): ``callbacks=[default,<name>]`` would merge the
    component's config into that entry, which then builds one or the other with the other's settings."""
    from cnnpl.registry import BUILTIN_CALLBACKS

    if name in BUILTIN_CALLBACKS:
        return
    for path in sorted((config_dir() / "callbacks").glob("*.yaml")):
        node = _load_yaml(path)
        if isinstance(node, DictConfig) and name in node:
            raise DuplicateComponentError(
                f"callback {name!r} cannot be registered: the set of callbacks callbacks={path.stem} "
                f"(conf/callbacks/{path.name}) has an entry of that name, which it would be merged into; "
                "pick another name"
            )


def _type_hints(obj: Callable[..., Any]) -> dict[str, Any]:
    """The resolved parameter hints of a class's ``__init__`` or a function.

    A hint that cannot be resolved (a name imported under ``if TYPE_CHECKING:`` only, with ``from
    __future__ import annotations``) is left out, and its key unchecked; the others are resolved.
    """
    target = obj.__init__ if inspect.isclass(obj) else obj  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # one of them names what the module never imports: resolve them one by one
        pass
    hints = {}
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    for pname, annotation in dict(getattr(target, "__annotations__", None) or {}).items():
        holder = _hint_holder(pname, annotation)
        try:
            hints[pname] = typing.get_type_hints(holder, globalns=namespace)[pname]
        except Exception:
            continue
    return hints


def _hint_holder(pname: str, annotation: Any) -> Callable[[], None]:
    """A function whose only annotation is ``pname: annotation``, for ``typing.get_type_hints`` to resolve alone."""

    def holder() -> None:
        return None

    holder.__annotations__ = {pname: annotation}
    return holder


def config_type(hint: Any) -> Any:
    """The OmegaConf type for a parameter hint: leaves, enums, lists, dicts and ``Optional`` of those, else Any.

    ``tuple[int, int]`` and ``Sequence[int]`` become ``List[int]`` (a config holds lists);
    unions of several types (``int | str``) cannot be checked by OmegaConf and become Any.
    """
    if hint is Any or hint is inspect.Parameter.empty:
        return Any
    if isinstance(hint, type) and issubclass(hint, pathlib.PurePath):
        return str  # held as text (OmegaConf writes a Path node as a Python object tag); the constructor gets a Path
    if isinstance(hint, type) and (issubclass(hint, _LEAF_TYPES) or issubclass(hint, enum.Enum)):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = config_type(rest[0])
            if typing.get_origin(inner) is dict:  # OmegaConf 2.3 cannot merge {k: v} onto a typed null dict
                return Any  # ('NoneType' object has no attribute 'get'): check_values checks it instead
            return Any if inner is Any else Optional[inner]  # noqa: UP045  (OmegaConf needs typing.Optional)
        return Any
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        kind = kinds.pop() if len(kinds) == 1 else None
        return kind if kind in _LEAF_TYPES else Any
    if origin in (list, tuple, Sequence, typing.Sequence):
        items = [a for a in args if a is not Ellipsis]
        inner = config_type(items[0]) if items and len(set(items)) == 1 else Any
        return list[inner] if inner is not Any else list[Any]
    if origin in (dict, Mapping, typing.Mapping):
        inner = config_type(args[1]) if len(args) == 2 and args[0] is str else Any
        return dict[str, inner]
    return Any


def _field(default: Any) -> Any:
    if isinstance(default, (list, dict)):  # dataclasses refuse shared mutable defaults
        return dataclasses.field(default_factory=lambda v=default: OmegaConf.to_container(OmegaConf.create(v)))
    return dataclasses.field(default=default)


def _fits(value: Any, kind: Any) -> bool:
    """Whether OmegaConf accepts ``value`` as the default of a ``kind`` field."""
    try:
        OmegaConf.structured(dataclasses.make_dataclass("_Probe", [("v", kind, _field(value))]))
    except Exception:
        return False
    return True


def config_schema(family: str, name: str, *, typed: bool = True) -> type:
    """A dataclass for ``family/name``'s generated option: ``name`` plus its parameters, typed from the hints."""
    obj = get_registry(family).get(name)
    hints = _type_hints(obj) if typed else {}
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset())
    hidden = HIDDEN_FROM_CONFIG.get(family, frozenset())
    fields: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=name))]
    for pname, param in parameters_of(obj).items():
        if pname in hidden or pname == "name":
            continue
        kind = config_type(hints.get(pname, Any))
        if pname in supplied:
            default: Any = None
        elif param.default is inspect.Parameter.empty:
            default = MISSING
        else:
            default = _plain(param.default, hints.get(pname, Any))
        if default is None and kind is not Any and typing.get_origin(kind) is not typing.Union:
            kind = Optional[kind]  # noqa: UP045
        if default is not MISSING and not _fits(default, kind):
            kind = Any
        fields.append((pname, kind, _field(default)))
    return dataclasses.make_dataclass(f"{family}_{name}", fields)


def _generated_node(family: str, name: str) -> Any:
    """The ConfigStore node for ``family/name``: a typed dataclass, or untyped if OmegaConf refuses the types."""
    for typed in (True, False):
        try:
            schema = config_schema(family, name, typed=typed)
            OmegaConf.structured(schema)
            return schema
        except Exception:
            continue
    return generated_config(family, name)


def generated_config(family: str, name: str) -> dict[str, Any]:
    """The config node of ``family/name`` derived from its signature: ``{"name": name, param: default}``."""
    node: dict[str, Any] = {"name": name}
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset())
    hidden = HIDDEN_FROM_CONFIG.get(family, frozenset())
    obj = get_registry(family).get(name)
    hints = _type_hints(obj)
    for pname, param in parameters_of(obj).items():
        if pname in hidden:
            continue
        if pname in supplied or param.default is inspect.Parameter.empty:
            node[pname] = None
        else:
            node[pname] = _plain(param.default, hints.get(pname, Any))
    return node


def callback_config(name: str) -> dict[str, Any]:
    """The ``callbacks/<name>`` option: one entry ``<name>`` that builds the registered callback.

    A default that cannot be read from a not-yet-imported built-in's source is left out (the
    constructor's own default applies).
    """
    node: dict[str, Any] = {"_target_": "cnnpl.registry.build", "_args_": ["callback", name]}
    obj = get_registry("callback").get(name)
    hints = _type_hints(obj)
    for pname, param in parameters_of(obj).items():
        if isinstance(param.default, SourceText):
            continue
        node[pname] = (
            MISSING if param.default is inspect.Parameter.empty else _plain(param.default, hints.get(pname, Any))
        )
    return {name: node}


def _unset_settings(family: str, name: str, yaml: DictConfig) -> dict[str, Any]:
    """The parameters of ``family/name`` that its YAML option does not set, with their defaults (``???``
    if required). Empty for a built-in; a plugin's replacement (``override=True``) may add some."""
    left_out = HIDDEN_FROM_CONFIG.get(family, frozenset()) | SUPPLIED_BY_CALLER.get(family, frozenset())
    unset = {}
    obj = get_registry(family).get(name)
    hints = _type_hints(obj)
    for pname, param in parameters_of(obj).items():
        if pname not in yaml and pname not in left_out:
            default = param.default
            unset[pname] = MISSING if default is inspect.Parameter.empty else _plain(default, hints.get(pname, Any))
    return unset


# YAML options extended with the settings of a plugin's replacement ("pool/avg"). Hydra merges a
# ConfigStore node into the YAML file of the same name ("automatic schema matching") and warns that
# this is deprecated; here it is what is meant, so the warning is silenced for these options only.
_EXTENDED: set[str] = set()
# Options generated for registered components: a plugin may ship a YAML option of the same name that
# says ``name: <component>`` (its own option, with presets of its settings), which Hydra merges the same way.
_GENERATED: set[str] = set()
# Of those, the ones register_component_configs stored for the registries as they were at its last call
_FROM_REGISTRIES: set[str] = set()


def hide_extension_warnings() -> None:
    """Silence Hydra's schema-matching warning for the options :func:`register_component_configs` extended.

    It calls this; call it again inside a new ``warnings.catch_warnings()`` block that composes.
    """
    options = sorted(_EXTENDED | _GENERATED)
    if options:  # one filter for all: every warning issued is matched against each filter
        either = "|".join(re.escape(option) for option in options)
        pattern = rf"\s*'(?:{either})' is validated against ConfigStore schema with the same name"
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)


@functools.cache
def _load_yaml(path: Path) -> Any:
    """A YAML option of ``conf/`` (read once: the folder does not change while cnnpl runs)."""
    return OmegaConf.load(path)


def _unstore(store: Any, group: str, name: str) -> None:
    """Take ``group/name`` out of Hydra's ConfigStore, which has no call for it."""
    node = store.repo
    for part in group.split("/"):
        node = node.get(part, {})
    node.pop(f"{name}.yaml", None)


def share_config_store_in_repository_copies() -> None:
    """Stop Hydra from deep-copying its ConfigStore each time it composes; idempotent.

    Each composition (and each group that ``--help`` lists: 111 of them) makes a
    ``CachingConfigRepository``, which deep-copies the repository of config sources so that
    re-initialising them cannot change the original. Hydra 1.3's structured-config source holds the
    ConfigStore itself, so every copy also deep-copies every stored node: with cnnpl's generated
    component configs about 5 ms a copy, half a second of ``python -m cnnpl --help``
    (benchmarks/bench_startup.py). The store is a process-wide singleton that hands out copies of
    its nodes (``ConfigStore.load``), so the copy may share it; Hydra's own sources fetch the live
    singleton since facebookresearch/hydra#2928 (not in a 1.3 release). Only this copy shares it:
    ``Singleton.get_state`` still snapshots the store.
    """
    import copy

    from hydra._internal.config_repository import CachingConfigRepository
    from hydra.core.config_store import ConfigStore

    if getattr(CachingConfigRepository.__init__, "_cnnpl_shares_store", False):
        return

    def copy_sharing_the_store(self: CachingConfigRepository, delegate: Any) -> None:
        store = ConfigStore.instance()
        self.delegate = copy.deepcopy(delegate, {id(store): store})
        self.cache = {}

    copy_sharing_the_store._cnnpl_shares_store = True  # type: ignore[attr-defined]
    CachingConfigRepository.__init__ = copy_sharing_the_store  # type: ignore[method-assign]


def register_component_configs() -> None:
    """Add a generated option to each config group for every registered component without YAML.

    A component whose YAML option lacks some of its parameters (a plugin's replacement for a built-in,
    ``@register("pool", "avg", override=True)`` on a class that adds ``scale``) gets them added to the
    YAML, with their defaults, so ``pool.scale=2`` can be set; once the built-in is back, the YAML is
    alone again. Idempotent: call it again after registering more components (plugins, notebook classes); the
    option of a component no longer registered is taken out.
    """
    from hydra.core.config_store import ConfigStore

    share_config_store_in_repository_copies()
    store = ConfigStore.instance()
    conf = config_dir()
    stored: set[str] = set()
    for family, group in CONFIG_GROUPS.items():
        for name in get_registry(family).names():
            path = conf / group / f"{name}.yaml"
            if not path.is_file():
                node: Any = callback_config(name) if family == "callback" else _generated_node(family, name)
                stored.add(f"{group}/{name}")
            else:
                yaml = _load_yaml(path)
                unset = _unset_settings(family, name, yaml) if isinstance(yaml, DictConfig) else {}
                if not unset:
                    if f"{group}/{name}" in _EXTENDED:  # the built-in is back: its YAML alone again
                        _unstore(store, group, name)
                        _EXTENDED.discard(f"{group}/{name}")
                    continue
                node = {**OmegaConf.to_container(yaml), **unset}  # type: ignore[dict-item]
                _EXTENDED.add(f"{group}/{name}")
            store.store(group=group, name=name, node=node, provider="cnnpl")
            _GENERATED.add(f"{group}/{name}")
    for option in _FROM_REGISTRIES - stored:  # a component no longer registered: its option goes too (a test's
        group, _, name = option.rpartition("/")  # restored registries left "did you mean pool=kw_pool?")
        _unstore(store, group, name)
        _GENERATED.discard(option)
    _FROM_REGISTRIES.clear()
    _FROM_REGISTRIES.update(stored)
    hide_extension_warnings()


def config_groups() -> set[str]:
    """The config groups: the folders of ``conf/`` and every registry family's group (``callbacks``)."""
    return {path.name for path in config_dir().iterdir() if path.is_dir()} | set(CONFIG_GROUPS.values())


def group_family(group: str) -> str | None:
    """The registry family whose components are options of the config group ``group`` (``callbacks``:
    ``callback``); None for the other groups."""
    return next((family for family, g in CONFIG_GROUPS.items() if g == group), None)


def callback_sets() -> set[str]:
    """The sets of callbacks in ``conf/callbacks/`` (``default``, ``minimal``, ``full``): options of
    ``callbacks`` that are not one registered callback."""
    return {path.stem for path in (config_dir() / "callbacks").glob("*.yaml")}


def group_options(group: str) -> list[str]:
    """The options of a config group, sorted: its YAML files and, for a component group, the registered names."""
    family = group_family(group)
    registered = get_registry(family).names() if family else []
    return sorted({path.stem for path in (config_dir() / group).glob("*.yaml")} | set(registered))


# Hydra's flags that take the next word as their value (--package pool: not an override)
HYDRA_VALUE_FLAGS = frozenset(
    {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p"}
    | {"--info", "-i", "--experimental-rerun"}
)


# the tools a first word of python -m cnnpl runs (list pool: the same as python -m cnnpl.list pool): each one's
# module, and what it takes and does
TOOLS = {
    "list": ("cnnpl.listing", "[<group>] lists the components"),
    "summary": ("cnnpl.summary", "[<overrides>] prints a network's layers"),
    "render": ("cnnpl.render", "ckpt=<.ckpt> out=<folder> draws a checkpoint's pictures"),
}


def _closest_option(option: str, options: Sequence[str]) -> list[str]:
    """The option ``option`` likely meant, as a list of none or one: the same name in other letter case first
    (``VGG16``: vgg16; helper-141), else the closest, letter case aside (helper-142: a plugin's ``MyLPPool``)."""
    import difflib

    lower = {name.lower(): name for name in options}
    same = lower.get(option.lower())
    if same is not None:
        return [same]
    return [lower[name] for name in difflib.get_close_matches(option.lower(), list(lower), n=1)]


def split_word_error(words: Sequence[str], i: int) -> str | None:
    """The fix for ``words[i]``, a word without ``=`` that the shell split off an override at a space
    (helper-141): ``optimizer.lr = 0.1``, ``optimizer.lr= 0.1``, ``model.widths=[48, 160]``. None otherwise."""
    word = words[i]
    before = words[i - 1] if i > 0 else ""
    after = words[i + 1] if i + 1 < len(words) else ""
    if after.startswith("=") and not word.startswith("-"):  # key = value, key =value
        value = after[1:] or (words[i + 2] if i + 2 < len(words) else "")
        return f"{word!r} is followed by a space and ={value}: write {word}={value}, with no spaces around the ="
    if before.endswith("=") and "=" not in before[:-1] and not before.startswith("-"):  # key= value
        return f"{before!r} is followed by a space and {word}: write {before}{word}, with no space after the ="
    if "=" in before and (before.count("[") > before.count("]") or before.count("{") > before.count("}")):
        parts = [before]  # up to the word that closes what it opened (helper-143: [48, 160, 200] kept two of three)
        for later in words[i:]:
            parts.append(later)
            joined = "".join(parts)
            if joined.count("[") <= joined.count("]") and joined.count("{") <= joined.count("}"):
                break
        whole = " ".join(parts)
        if "{" in whole:  # a mapping's "a: 1" keeps its space: quoted only
            return f'{word!r} is the rest of {before!r}, split at a space: quote the whole override ("{whole}")'
        tight = "".join(parts)
        return (
            f"{word!r} is the rest of {before!r}, split at a space: write the list without spaces ({tight}) or "
            f'quote the whole override ("{whole}")'
        )
    if "=" in before and (before.endswith(",") or word.startswith(",")):  # -m pool=max, avg (helper-143)
        return f"{word!r} is the rest of {before!r}, split at a space: write {before}{word} without spaces"
    return None


def bare_word_error(word: str) -> str | None:
    """The one-line fix for a command-line word without ``=`` that names an option or a group
    (``vgg16``: model=vgg16; ``pool``: pool=<option>), which Hydra would report as "missing EQUAL"."""
    groups = sorted(config_groups())
    if word in groups:
        return (
            f"{word!r} is not an override: a config group takes an option, {word}=<option> "
            "(python -m cnnpl --help lists them)"
        )
    from cnnpl.listing import set_callbacks

    sets = callback_sets()
    default = set_callbacks("default")

    def override(group: str, option: str = word) -> str:  # a callback alone would replace the set, checkpoints too
        if group != "callbacks" or option in sets:
            return f"{group}={option}"
        if option in default:  # [default,gradcam] would put gradcam's own defaults over the set's
            return f"callbacks=default (it holds {option}; callbacks.{option}.<setting>= changes it)"
        return f"callbacks=[default,{option}]"

    owners = [group for group in groups if word in group_options(group)]
    if owners:
        return f"{word!r} is not an override; did you mean {' or '.join(override(group) for group in owners)}?"
    if word in TOOLS:
        return f"{word!r} is not an override: python -m cnnpl {word} {TOOLS[word][1]}; put {word} first"
    tool = difflib.get_close_matches(word, list(TOOLS), n=1, cutoff=0.75)  # lsit (helper-141)
    if tool:
        return f"{word!r} is not an override; did you mean {tool[0]}? (python -m cnnpl {tool[0]} {TOOLS[tool[0]][1]})"
    options = [(group, option) for group in groups for option in group_options(group)]
    close = difflib.get_close_matches(word, [option for _, option in options], n=2, cutoff=0.75)
    if close:
        matches = [override(group, option) for group, option in options if option in close][:2]
        return f"{word!r} is not an override; did you mean {' or '.join(matches)}?"
    return None


def plugin_config_folders() -> list[Path]:
    """The config folders plugins add to Hydra's search path (the ``SearchPathPlugin`` classes in ``hydra_plugins``,
    such as cnnpl-example's ``cnnpl_example/conf``), in Hydra's order; not cnnpl's ``conf/`` or Hydra's own."""
    from hydra._internal.utils import create_config_search_path

    entries = [(entry.path, entry.provider) for entry in create_config_search_path(None).get_path()]
    return _config_folders(entries)


def _config_folders(entries: Sequence[tuple[str, str | None]]) -> list[Path]:
    """The local folders of Hydra search path entries ``(file://... or pkg://..., provider)``, but cnnpl's
    ``conf/`` and Hydra's own."""
    import importlib.resources

    folders = []
    for path, provider in entries:
        scheme, _, where = path.partition("://")
        if scheme == "file":
            folder = Path(where)
        elif scheme == "pkg" and provider != "hydra":
            package, _, inside = where.partition("/")
            try:
                folder = Path(str(importlib.resources.files(package).joinpath(inside)))
            except (ModuleNotFoundError, TypeError):
                continue
        else:
            continue
        if folder.resolve() != config_dir().resolve():
            folders.append(folder)
    return folders


def searchpath_folders(overrides: Sequence[str]) -> list[Path]:
    """The local folders a command line adds with ``hydra.searchpath=[file://..., pkg://...]`` (its last).

    Refuses a ``file://`` entry that is no folder: Hydra passes over it without a word, and the options
    in it are then reported missing (``data=my_images: no such option``), not the folder.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [token for token in overrides if token.lstrip("+").startswith("hydra.searchpath=")]
    if not given:
        return []
    try:
        value = OverridesParser.create().parse_overrides(given[-1:])[0].value()
    except Exception:  # Hydra says what it cannot parse
        return []
    entries = [str(entry) for entry in (value if isinstance(value, list) else [value])]
    for entry in entries:
        scheme, _, where = entry.partition("://")
        if scheme == "file" and not Path(where).is_dir():
            raise CnnplError(
                f"hydra.searchpath names {entry}, which is no folder (looked for {Path(where).absolute()}); give the "
                "folder that holds your config groups (data/, model/, ...): file:///absolute/path, or file://$PWD/..."
            )
    return _config_folders([(entry, "command line") for entry in entries])


def store_searchpath_options(overrides: Sequence[str]) -> None:
    """Have ``--help`` list the options of the folders ``hydra.searchpath=[file://...]`` adds: Hydra lists those of
    the search path it started with, and adds the override's folders only to compose. Each option not listed
    already is stored as an empty ConfigStore entry (the YAML file is what composes, and Hydra's warning that it
    matches an entry of its name is hidden as for the generated options; ``--help`` runs nothing)."""
    from hydra.core.config_store import ConfigStore

    folders = searchpath_folders(overrides)
    for group in sorted({path.name for folder in folders for path in folder.iterdir() if path.is_dir()}):
        listed = set(group_options(group)) | {name for name, _ in plugin_yaml_options(group)}
        for name, _ in plugin_yaml_options(group, folders):
            if name not in listed:
                ConfigStore.instance().store(group=group, name=name, node={})
                _GENERATED.add(f"{group}/{name}")
    hide_extension_warnings()


def plugin_yaml_options(group: str, searchpath: Sequence[Path] = ()) -> list[tuple[str, Path]]:
    """The YAML options (``<group>/<name>.yaml``) the plugins' config folders (and ``searchpath``'s, the folders
    ``hydra.searchpath=`` adds) add to ``group``, as ``(name, path)``: presets such as cnnpl-example's
    ``pool=softpool_sharp``, which the registry does not know. The first folder's file of a name is the one Hydra
    chooses."""
    found: dict[str, Path] = {}
    for folder in [*searchpath, *plugin_config_folders()]:
        for path in sorted((folder / group).glob("*.yaml")):
            found.setdefault(path.stem, path)
    return sorted(found.items())


def shadowing_preset(group: str, name: str, searchpath: Sequence[Path] = ()) -> str | None:
    """Where a plugin's YAML option ``<group>/<name>.yaml`` is, when a component registered by a plugin (not
    a built-in) has the same name and the YAML configures another one: Hydra would choose the YAML (a preset,
    such as cnnpl-example's ``pool/softpool_sharp.yaml``) and merge the component's generated config in as
    its schema. ``None`` otherwise, and for a YAML that says ``name: <name>`` (the component's own option).
    Plugins add their folders through Hydra's search path plugins, which only Hydra can list, so this is
    checked when the name is chosen, not when it is registered."""
    family = group_family(group)
    if family is None or name not in get_registry(family).names():
        return None
    if get_registry(family).entry(name).source == "built-in" or (config_dir() / group / f"{name}.yaml").is_file():
        return None  # a built-in's own YAML, or cnnpl's (check_option_name refused those at registration)
    for root in [*searchpath, *plugin_config_folders()]:
        path = root / group / f"{name}.yaml"
        if path.is_file():
            try:  # name: <name>: the component's own YAML option (as a built-in has), not a preset
                own = OmegaConf.load(path).get("name") == name
            except Exception:  # not a mapping, or not YAML: Hydra says what is wrong with it
                own = False
            return None if own else str(path)
    return None


def check_group_overrides(overrides: Sequence[str]) -> None:
    """Refuse ``group=null`` (``logger=null``), on which Hydra fails with a traceback, and a bare option or
    group name (``vgg16``), on which it says "missing EQUAL", with a one-line fix."""
    groups = config_groups()
    searchpath = searchpath_folders(overrides)  # hydra.searchpath=[file://...] (docs/howto/own-images.md)
    for i, token in enumerate(overrides):
        key, sep, value = token.partition("=")
        flag_value = i > 0 and overrides[i - 1] in HYDRA_VALUE_FLAGS  # --cfg job --package pool
        if not sep and not flag_value and not token.startswith(("-", "~")):
            raise CnnplError(
                split_word_error(overrides, i)
                or bare_word_error(token)
                or f"{token!r} is not an override: overrides are written key=value, such as model=vgg16 (python -m "
                "cnnpl --help lists the groups and their options)"
            )
        group = key.lstrip("+")
        if sep and group == "hydra":  # Hydra: "Config group override must be a string or a list. Got int"
            raise CnnplError(
                f"{token!r}: hydra holds Hydra's own settings and takes no value; set one of them, such as "
                "hydra.run.dir=<folder> (python -m cnnpl --cfg hydra shows them)"
            )
        if sep and key.startswith("+") and not key.startswith("++") and "." not in group and group != "hydra":
            _check_added_key(token, group, groups)
        if token.startswith("~") and (deleted := key[1:]) in REQUIRED_KEYS:
            fix = (
                f"choose another option instead: {deleted}=<name> (python -m cnnpl --help lists them)"
                if deleted in groups
                else "change its settings instead: system.<setting>=..."
                if deleted == "system"
                else f"give it another value instead: {deleted}=..."
            )
            raise CnnplError(f"{token!r} deletes {deleted}, which every run needs; {fix}")
        if sep and (preset := shadowing_preset(group, value.strip(), searchpath)):
            family = group_family(group)
            raise DuplicateComponentError(
                f"{token}: the {family} {value.strip()!r} that {get_registry(family).entry(value.strip()).source} "
                f"registered cannot be chosen: a plugin's YAML option of the same name ({preset}) is chosen "
                "instead; rename the component"
            )
        if sep and group in groups:
            _check_group_value(token, group)
        if not (sep and group in groups and value.strip().lower() in ("null", "")):
            continue
        if group in OPTIONAL_GROUPS:
            fix = f"to go without it write ~{group} (Hydra's delete), or choose an option: {group}=<name>"
        else:  # a run cannot do without it
            fix = f"choose an option: {group}=<name> (python -m cnnpl --help lists them)"
        raise CnnplError(f"{token!r} cannot unset the config group {group!r}; {fix}")


def _check_group_value(token: str, group: str) -> None:
    """Refuse a group override whose value, or a list item of it, is a number or true/false where an option name
    goes (``pool=1``, ``pool=[1,2]``: Hydra's "must be a string or a list. Got int", or a TypeError from inside
    it; helper-130). A mapping (``trainer={max_epochs:3}``, merged into the chosen option) and a list of options
    (``trainer=[default,ddp_cpu]``, merged in order) are Hydra's to compose (helper-134), where the options are
    parts of a whole (:data:`MERGED_GROUPS`) or a user's own presets; two of cnnpl's options of a component
    (``pool=[max,avg]``: the last one's name won) and no option of a group every run needs (``model=[]``) are
    refused (helper-141)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        [override] = OverridesParser.create().parse_overrides([token])
    except Exception:  # Hydra says why
        return
    if override.is_sweep_override() or override.is_delete():
        return
    value = override.value()
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value and group in REQUIRED_KEYS:  # Hydra: "Key 'model' is not in struct"
        raise CnnplError(
            f"{token!r} chooses no option of {group}, which every run needs; choose one: {group}=<name> (python -m "
            "cnnpl --help lists them)"
        )
    options = group_options(group)
    named = [item for item in items if isinstance(item, str) and item in options]
    own = list(dict.fromkeys(named))
    if len(own) > 1 and group not in MERGED_GROUPS:  # helper-141: the last option's name won, without a word
        last = named[-1]  # Hydra merges in order ([vgg16,simple_cnn,vgg16]: vgg16; helper-142)
        raise CnnplError(
            f"{token!r} would merge {len(own)} options of {group} into one ({last}, with settings of the others); "
            f"choose one ({group}={last}), or train each in a sweep: -m {group}={','.join(own)}"
        )
    if any(isinstance(item, (bool, int, float)) for item in items):
        shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
        optional = f", or go without it: ~{group}" if group in OPTIONAL_GROUPS else ""
        raise CnnplError(
            f"{token!r}: the options of {group} are names ({shown}), not numbers or true/false; choose one: "
            f"{group}=<name>{optional}"
        )


def _check_added_key(token: str, key: str, groups: set[str]) -> None:
    """Refuse ``+ckpt_pth=last``: a top-level key nothing reads, added where a setting of a close name was meant
    (the run trained from scratch). A key of a name of its own (``+note=...``) is kept in the config."""
    import difflib

    node = _load_yaml(config_dir() / f"{CONFIG_NAME}.yaml")
    known = sorted({str(k) for k in node if k not in ("defaults", "hydra")} | groups)
    if key in known:  # +seed=1: Hydra says it is there already (++seed=1 adds or overrides)
        return
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        raise CnnplError(
            f"{token!r} adds a top-level setting {key!r} that nothing reads; did you mean {close[0]}? (written "
            f"without the +: {close[0]}=...)"
        )


def _without_replaced_yaml_settings(family: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the settings of a built-in's YAML option that a plugin's replacement of it
    (``@register("conv", "conv2d", override=True)``) does not take, where they still hold the YAML's values:
    ``conf/conv/conv2d.yaml``'s ``init: null`` and ``freeze: false`` are the built-in's, not the user's (Hydra
    merges the replacement's settings into that YAML and cannot drop its keys). A value the command line
    changed stays, and is refused as a setting the replacement does not have."""
    from cnnpl.registry import accepts_var_kwargs

    group = CONFIG_GROUPS.get(family)
    registry = get_registry(family)
    if group is None or name not in registry or registry.entry(name).source == "built-in":
        return params
    path = config_dir() / group / f"{name}.yaml"
    target = registry.get(name)
    if not path.is_file() or accepts_var_kwargs(target):
        return params
    yaml = OmegaConf.to_container(_load_yaml(path), resolve=False)
    taken = parameters_of(target)
    left = {key for key in params if key not in taken and key != "name" and key in yaml and yaml[key] == params[key]}
    return {key: value for key, value in params.items() if key not in left}


def layer_factory(family: str, node: DictConfig | dict[str, Any]) -> LayerFactory:
    """The :class:`LayerFactory` a component config node describes."""
    if isinstance(node, DictConfig):
        missing = sorted(OmegaConf.missing_keys(node))  # full keys ("pool.lam") when the node has a parent
        if missing:
            key = missing[0] if missing[0].startswith(f"{family}.") else f"{family}.{missing[0]}"
            raise CnnplError(
                f"{family} {node.get('name')!r} needs a value for {key} (it has no default); "
                f"set it on the command line: {key}=..."
            )
    raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    params = {str(k): v for k, v in dict(raw).items()}  # type: ignore[arg-type]
    if "name" not in params:
        raise CnnplError(f"the {family} config has no 'name' key; choose one with {family}=<name>")
    name = params.pop("name")
    if not isinstance(name, str) or not name:  # model.name=true was "unknown model 'True'", null "has no 'name' key"
        raise CnnplError(
            f"{family}.name must name a registered {family}, got {yaml_word(name)}; choose one with {family}=<name> "
            f"(python -m cnnpl.list {family} lists them)"
        )
    params = _without_replaced_yaml_settings(family, name, params)
    LayerFactory(family, name, params)  # an unknown name or parameter fails here first
    check_values(family, name, params)
    own_check = getattr(get_registry(family).get(name), "_check_config", None)
    if callable(own_check):  # what a component's config can ask that its constructor cannot tell (conv=grouped)
        own_check(params)
    settings = constructor_settings(family, name, params)
    return LayerFactory(family, name, settings, _none_passed(family, name, settings))


def _none_passed(family: str, name: str, params: Mapping[str, Any]) -> frozenset[str]:
    """The settings of a plugin's ``family/name`` set to null that its constructor gets as None: typed
    ``X | None`` with a default that is not None (``scale: float | None = 1.0``; ``pool.scale=null`` was
    read as "the default", 1.0). Elsewhere null keeps meaning "the architecture decides" or "the default"
    (the built-ins' YAML, a caller-supplied ``kernel_size``)."""
    registry = get_registry(family)
    if registry.entry(name).source == "built-in":
        return frozenset()
    target = registry.get(name)
    hints = _type_hints(target)
    taken = parameters_of(target)
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset())
    return frozenset(
        key
        for key, value in params.items()
        if value is None
        and key in taken
        and key not in supplied
        and taken[key].default is not None
        and taken[key].default is not inspect.Parameter.empty
        and _plain(taken[key].default, hints.get(key, Any)) is not None  # not an object the config shows as null
        and _is_union(hints.get(key))
        and type(None) in typing.get_args(hints.get(key))
    )


def constructor_settings(family: str, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the constructor of ``family/name`` takes them: a word given for a setting its hint types
    as an Enum turned into the member (by name, else by value), text for a ``Path`` into a Path and a list for
    a ``tuple`` into a tuple. A config read from YAML (the run's ``config.yaml``, which render and a resume read)
    holds the member's name, where a composed one holds the member; a config holds a path as text and a tuple
    as a list."""
    hints = _type_hints(get_registry(family).get(name))
    settings = dict(params)
    for key, value in params.items():
        value = settings[key] = _check_optional_mapping(value, hints.get(key), f"{family}.{key}", f"{family} {name!r}")
        if (hinted := _as_hinted(value, hints.get(key, Any))) is not value:
            settings[key] = hinted
            continue
        kind = _required(config_type(hints.get(key, Any)))
        if not (isinstance(kind, type) and issubclass(kind, enum.Enum)) or isinstance(value, enum.Enum):
            continue
        if value is None:  # Optional[Mode] left at None: the constructor's own choice
            continue
        if isinstance(value, str) and value in kind.__members__:
            settings[key] = kind[value]
            continue
        try:
            settings[key] = kind(value)
        except ValueError:
            raise CnnplError(
                f"{family}.{key} must be one of {', '.join(kind.__members__)}, got {yaml_word(value)} "
                f"({family} {name!r})"
            ) from None
    return settings


# Settings that are fractions in [0, 1) wherever a component takes them, and what the fraction is of
FRACTIONS = {"dropout": "the fraction of activations zeroed in training"}


def check_callback_values(callbacks: Mapping[str, Any]) -> None:
    """:func:`check_values` for each registered callback a ``callbacks`` config node builds (a plugin's
    ``callbacks.my_cb.every=abc``), naming its key ``callbacks.<entry>.<setting>``."""
    for entry, node in callbacks.items():
        family, name = built_by(node) or ("", "")
        if family == "callback" and name in get_registry("callback").names():
            settings = {str(k): v for k, v in node.items() if not str(k).startswith("_")}
            check_values("callback", name, settings, keys=f"callbacks.{entry}")


def check_values(
    family: str,
    name: str,
    params: Mapping[str, Any],
    keys: str | None = None,
    *,
    from_config: bool = True,
    target: Callable[..., Any] | None = None,
) -> None:
    """Refuse words given for numbers (``model.dropout=abc``) and fractions out of range, naming ``<family>.<key>``.

    A YAML-backed component's config is not typed (a generated one is), so a word would reach the
    constructor and fail there with a traceback. Only strings are refused, and only where the type
    hint wants a number, an integer, a bool or a list of those: a layer's hints may be narrower
    than what it takes (a plugin's ``kernel_size: int`` that takes ``[3, 2]`` too). A ``dropout`` must be in [0, 1).
    ``keys``: the settings' place in the config (``callbacks.my_cb``); ``family`` by default. ``from_config=False``
    (:func:`cnnpl.build` from Python): a value for an object the config cannot give is the constructor's to judge.
    ``target``: the component itself, when it is not ``family/name`` of the global registries (a ``Registry`` of
    one's own).
    """
    keys = keys or family
    hints = _type_hints(target if target is not None else get_registry(family).get(name))
    for key, value in params.items():
        # what a config gives (text, numbers, lists, mappings: a layer's factory builds no _target_ node), not an
        # object Python passes (cnnpl.build("pool", "p", hook=nn.ReLU())); a callback's _target_ nodes are built
        plain = isinstance(value, (str, int, float, list, tuple, Mapping))  # (helper-136, helper-138)
        if from_config and family != "callback" and plain and not config_holds(hints.get(key, Any)):
            raise CnnplError(
                f"{keys}.{key} takes a {_hint_name(_without_none(hints[key])[0])}, which a config cannot give "
                f"(got {yaml_word(value)}); leave it null ({family} {name!r})"
            )
        _check_literal(value, hints.get(key), f"{keys}.{key}", f"{family} {name!r}", from_config)
        _check_length(value, hints.get(key), f"{keys}.{key}", f"{family} {name!r}")
        _check_optional_mapping(value, hints.get(key), f"{keys}.{key}", f"{family} {name!r}")
        pair = _pair_words(hints.get(key))
        if pair and not _is_pair_value(value, takes_word=pair.endswith("mode")):
            raise CnnplError(f"{keys}.{key} must be {pair}, got {yaml_word(value)} ({family} {name!r})")
        kind = _required(config_type(hints.get(key, Any)))
        wanted = _kind_words(kind)
        if wanted and _is_union(hints.get(key)) and type(None) in typing.get_args(hints.get(key)):
            wanted = wanted.replace("true or false", "true, false") + " or null"  # null: the default's own choice
        words = isinstance(value, str) or (isinstance(value, list) and any(isinstance(v, str) for v in value))
        # true / false for a number: Python reads True as 1 (model.dropout=true zeroed every activation); and a
        # number for true / false (model.freeze_features=1 read as true), a fraction for an integer
        switch = isinstance(value, bool) and kind in (int, float)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        switch = switch or (number and kind is bool) or (isinstance(value, float) and kind is int)
        # a list or mapping for true / false: truthy, so conv.bias=[true] (and [false]) trained with a bias, silently
        switch = switch or (kind is bool and isinstance(value, (list, tuple, Mapping)))
        if wanted and (words or switch):
            raise CnnplError(f"{keys}.{key} must be {wanted}, got {yaml_word(value)} ({family} {name!r})")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in FRACTIONS and number and kind is not int and not 0 <= value < 1:  # (a plugin's percent: an int)
            raise CnnplError(f"{keys}.{key} must be in [0, 1) ({FRACTIONS[key]}), got {yaml_word(value)}")


def _check_literal(value: Any, hint: Any, key: str, what: str, from_config: bool = True) -> None:
    """Refuse a value that a ``Literal[...]`` hint (perhaps ``| None``) does not list: the config types it only
    as the literals' kind (``str``), so ``pool.mode=bogus`` reached the constructor."""
    allowed = _without_none(hint)
    if len(allowed) != 1 or typing.get_origin(allowed[0]) is not typing.Literal or value is None:
        return
    literals = typing.get_args(allowed[0])
    if not any(value == lit and type(value) is type(lit) for lit in literals):
        words = [str(lit) if isinstance(lit, str) else repr(lit) for lit in literals]
        shown = yaml_word(value)
        if from_config and value in ("True", "False") and all(isinstance(lit, str) for lit in literals):
            shown = value.lower()  # act.approximate=true, which the config's text node made 'True'
        raise CnnplError(
            f"{key} must be {', '.join(words[:-1]) + ' or ' if len(words) > 1 else ''}{words[-1]}, got {shown} ({what})"
        )


def _check_length(value: Any, hint: Any, key: str, what: str) -> None:
    """Refuse a list of the wrong length for a fixed-length tuple hint (``tuple[int, int, int]``, perhaps
    ``| None``): the config holds any list of its items, so ``[1, 2]`` reached the constructor."""
    allowed = _without_none(hint)
    if len(allowed) != 1 or typing.get_origin(allowed[0]) is not tuple:
        return
    items = typing.get_args(allowed[0])
    if not items or Ellipsis in items or items == ((),):
        return
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) != len(items):
        raise CnnplError(f"{key} must be a list of {len(items)} values, got {yaml_word(_plain_list(value))} ({what})")


def _check_optional_mapping(value: Any, hint: Any, key: str, what: str) -> Any:
    """``value`` of a ``dict[str, X] | None`` setting as the constructor takes it, its values converted as
    OmegaConf converts those of a ``dict[str, X]`` one (``{a: no}`` -> ``{'a': False}``); a refusal of what
    the hint does not take. :func:`config_type` leaves such a setting untyped in the config (OmegaConf cannot
    merge a mapping onto its null), so OmegaConf checks and converts nothing. Other values pass as they are."""
    allowed = _without_none(hint)
    if value is None or not _is_union(hint) or type(None) not in typing.get_args(hint) or len(allowed) != 1:
        return value
    kind = config_type(allowed[0])
    if typing.get_origin(kind) is not dict:
        return value
    holder = dataclasses.make_dataclass("Setting", [("value", kind, dataclasses.field(default_factory=dict))])
    try:
        if not isinstance(value, Mapping):
            raise TypeError(value)
        merged = OmegaConf.merge(OmegaConf.structured(holder), {"value": value})
    except Exception:
        items = _MAPPING_WORDS.get(typing.get_args(kind)[1], "")
        raise CnnplError(
            f"{key} must be a mapping {{name: value, ...}}{' of ' + items if items else ''} or null, "
            f"got {yaml_word(value)} ({what})"
        ) from None
    return OmegaConf.to_container(merged.value)


_MAPPING_WORDS = {bool: "true / false values", int: "integers", float: "numbers", str: "words"}


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _without_none(hint: Any) -> list[Any]:
    """The kinds a hint allows besides None: ``X | Y | None`` -> ``[X, Y]``, ``X`` -> ``[X]``."""
    return [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]


def _plain_list(value: Any) -> Any:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


_PAIR = tuple[int, int]


def _pair_words(hint: Any) -> str:
    """What a geometry setting typed ``int | tuple[int, int]`` (perhaps ``| str``, ``| None``) takes, in
    words; "" for any other hint. OmegaConf cannot check such a union, so :func:`check_values` does."""
    if not _is_union(hint):
        return ""
    args = set(typing.get_args(hint)) - {type(None)}
    if not {int, _PAIR} <= args <= {int, _PAIR, str}:
        return ""
    words = "an integer or a pair [height, width] of integers" + (", or a mode" if str in args else "")
    return words + (" or null" if type(None) in typing.get_args(hint) else "")


def _is_pair_value(value: Any, *, takes_word: bool) -> bool:
    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if value is None or integer(value) or (takes_word and isinstance(value, str)):  # a mode is checked by the layer
        return True
    items = isinstance(value, Sequence) and not isinstance(value, str)  # a config's lists are ListConfigs
    return items and len(value) == 2 and all(integer(v) for v in value)


def _as_hinted(value: Any, hint: Any) -> Any:
    """``value`` with the text a ``Path`` hint (perhaps in a list, tuple or dict, perhaps ``| None``) gives as a
    Path, and the list a ``tuple`` hint gives as a tuple (a config holds lists: ``window + (1,)`` in a plugin's
    constructor failed on its own default), ``int | tuple[int, int]`` too; ``value`` itself where there is none
    to convert (a hint that takes a list as well, ``list[int] | tuple[int, ...]``, keeps the list)."""
    if isinstance(value, str):
        return pathlib.Path(value) if _required_path(hint) else value
    kinds = _without_none(hint)
    origin = typing.get_origin(kinds[0]) if len(kinds) == 1 else None
    args = typing.get_args(kinds[0]) if len(kinds) == 1 else ()
    if isinstance(value, (list, ListConfig)):
        tuple_hint = _tuple_hint_for(kinds, len(value))
        if tuple_hint is not None:
            value = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value  # a callback's
            args = typing.get_args(tuple_hint)
            fixed = args and Ellipsis not in args  # tuple[int, int]; else tuple[int, ...]
            item_hints = list(args) if fixed else [args[0] if args else Any] * len(value)
            return tuple(_as_hinted(v, h) for v, h in zip(value, item_hints, strict=True))
    if origin in (list, Sequence, typing.Sequence) and isinstance(value, list) and args:
        items = [_as_hinted(v, args[0]) for v in value]  # list[Path]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if origin in (dict, Mapping, typing.Mapping) and isinstance(value, dict) and len(args) == 2:
        items = {k: _as_hinted(v, args[1]) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    return value


def _tuple_hint_for(kinds: Sequence[Any], length: int) -> Any:
    """The tuple hint among ``kinds`` (a hint's types, ``None`` left out) that a list of ``length`` items is meant
    as: the only tuple of that length or of any length, where no kind takes a list itself; else None."""
    if any(kind in (list, Sequence, typing.Any) or typing.get_origin(kind) in (list, Sequence) for kind in kinds):
        return None  # a list is what it takes (or may take)
    fitting = []
    for kind in kinds:
        if kind is tuple:
            fitting.append(tuple[Any, ...])
        elif typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            if not args or Ellipsis in args or len(args) == length:
                fitting.append(kind)
    return fitting[0] if len(fitting) == 1 else None


def _required_path(hint: Any) -> bool:
    """Whether ``hint`` is ``Path`` (or a PurePath), perhaps ``| None``."""
    kinds = _without_none(hint)
    return len(kinds) == 1 and isinstance(kinds[0], type) and issubclass(kinds[0], pathlib.PurePath)


def _required(kind: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    if typing.get_origin(kind) is typing.Union:
        rest = [a for a in typing.get_args(kind) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    return kind


_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number"}
_LIST_WORDS = {bool: "a list of true / false values", int: "a list of integers", float: "a list of numbers"}


def _kind_words(kind: Any) -> str:
    """What a value of ``kind`` is, in words; "" for kinds not checked here (str, Any, nested lists)."""
    if kind in _KIND_WORDS:
        return _KIND_WORDS[kind]
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list and args and args[0] in _LIST_WORDS:
        return _LIST_WORDS[args[0]]
    return ""


def experiment_leftovers(settings: Sequence[str], typed: Sequence[str], experiment: str | None) -> str:
    """How to drop ``settings`` (``group.key``) that a component does not take, when the run's ``experiment``
    set them: an experiment's settings stay when the command line swaps one of its groups
    (``experiment=fast_cifar10 optimizer=adam`` keeps the recipe's SGD ``momentum``). "" when no experiment
    is chosen, or when ``typed`` (the command line's overrides) sets all of them itself."""
    typed_keys = {word.partition("=")[0].lstrip("+~") for word in typed}
    own = [setting for setting in settings if setting in typed_keys]  # the command line's: not left over
    settings = [setting for setting in settings if setting not in typed_keys]
    if not experiment or not settings:
        return ""
    it = "them" if len(settings) > 1 else "it"
    group = settings[0].split(".")[0]
    removals = " ".join(f"~{setting}" for setting in settings)
    drop = f"; and drop {', '.join(own)} from the command line" if own else ""
    return (
        f"experiment={experiment} sets {it}, and keeps {it} when {group}= is swapped: remove {it} with {removals}{drop}"
    )


def chosen_experiment(overrides: Sequence[str]) -> str | None:
    """The experiment the command-line ``overrides`` choose (the last ``experiment=``), or None."""
    chosen = None
    for word in overrides:
        key, _, value = word.lstrip("+").partition("=")
        if key == "experiment":
            chosen = value if value not in ("", "null") else None
    return chosen


def compose(overrides: Sequence[str] | str, output_dir: str | None = None) -> DictConfig:
    """Compose ``conf/train.yaml`` with command-line style ``overrides`` (a list, or one override), outside a
    Hydra app.

    ``output_dir`` replaces Hydra's run directory (default ``outputs/api``). As on the command line,
    ``plugins=[...]`` loads plugin files or modules first (and stays in the config), and
    ``skip_broken_plugins=true`` skips installed plugins that fail to load (with a warning) instead of
    raising :class:`cnnpl.plugins.PluginError`.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cnnpl.plugins import load_plugins, split_plugin_overrides

    if isinstance(overrides, str):  # compose("pool=max"): one override, not a list of its characters
        overrides = [overrides]
    specs, skip_broken, overrides = split_plugin_overrides(list(overrides))
    load_plugins(specs, skip_broken=skip_broken)
    register_component_configs()
    check_group_overrides(overrides)
    try:
        return compose_plain(overrides, output_dir=output_dir or "outputs/api")
    except (HydraException, OmegaConfBaseException) as err:  # one line, as the command line says it
        raise CnnplError(one_line_composition_error(err, overrides)) from None


SHOWN_KEYS = 15  # a config node's keys listed in an error, when it has no more


def compose_plain(overrides: list[str], output_dir: str | None = ".", hydra: bool = False) -> DictConfig:
    """``conf/train.yaml`` with ``overrides`` as Hydra composes it: no plugins loaded, no checks
    (``hydra``: with Hydra's own settings, ``hydra.sweep.dir`` ..., unresolved; ``output_dir=None``:
    the config's own, ``${hydra:runtime.output_dir}`` unless an override or a config file sets it).
    Inside a run (Hydra's app already initialized) the run's Hydra is set aside and put back after."""
    from hydra import compose

    extra = [] if output_dir is None else [f"output_dir={output_dir}"]
    with _cnnpls_hydra():
        return compose(CONFIG_NAME, overrides=[*overrides, *extra], return_hydra_config=hydra)


def hydra_mode(overrides: list[str]) -> Any:
    """The ``hydra.mode`` Hydra runs ``overrides`` in without ``-m`` or ``--multirun`` (its ``get_mode``: composed
    with sweeps allowed): ``RunMode.MULTIRUN`` where a config or the command line sets it; None where none does, or
    the config does not compose."""
    from hydra.core.global_hydra import GlobalHydra

    with _cnnpls_hydra():
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        return hydra.get_mode(config_name=CONFIG_NAME, overrides=overrides)


@contextlib.contextmanager
def _cnnpls_hydra() -> Iterator[None]:
    """Hydra initialized with cnnpl's config folder; inside a run (Hydra's app already initialized) the run's Hydra
    is set aside and put back after."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    running = GlobalHydra.instance().hydra  # Hydra's "GlobalHydra is already initialized" otherwise
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="cnnpl"):
            yield
    finally:
        if running is not None:
            GlobalHydra.instance().initialize(running)


def no_config_setting(family: str) -> frozenset[str]:
    """What the architecture passes to every layer of ``family`` and no option's config holds (a conv's
    ``in_channels``, a model's ``num_classes``): naming another option that "takes" it would mislead."""
    held: set[str] = set()
    for path in (config_dir() / CONFIG_GROUPS[family]).glob("*.yaml"):
        node = OmegaConf.load(path)
        held |= {str(key) for key in node} if isinstance(node, DictConfig) else set()
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset())
    return HIDDEN_FROM_CONFIG.get(family, frozenset()) | (supplied - held) | FACTS  # a layer's channels: the network's


def _missing_node(node: DictConfig, dotted: str, overrides: list[str], deleted: bool) -> str | None:
    """The message for a setting under a node the config lacks (``callbacks.filters.every_n_epochs`` with
    ``callbacks=minimal``, ``callbacks.filter.every_n_epochs``): the callback to add to the set, or the node
    close to the one named. None where neither is found."""
    import difflib

    parts = dotted.split(".")
    holder: Any = node
    depth = 0
    while depth < len(parts) - 1 and isinstance(holder, DictConfig) and parts[depth] in holder:  # a null is there
        holder, depth = holder[parts[depth]], depth + 1
    if not isinstance(holder, DictConfig) or parts[depth] in holder:  # data.eval_batch_size.x: under a value
        return None
    above, absent = ".".join(parts[:depth]), parts[depth]
    names = [str(k) for k in holder]
    if above == "callbacks" and absent in get_registry("callback").names() and not deleted:
        if f"~callbacks.{absent}" in overrides:
            return f"{dotted}: ~callbacks.{absent} removes the callback this sets; give one of the two"
        chosen = node.hydra.runtime.choices.get("callbacks")
        given = [o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+") == "callbacks"]
        now = chosen if chosen else (given[-1].strip("[]") if given else "default")
        held = f" (it holds {', '.join(names)})" if names else ""
        return (
            f"{dotted}: callbacks.{absent} is not in the run's callbacks{held}; to add it, write "
            f"callbacks=[{now},{absent}] beside {dotted}=..."
        )
    close = difflib.get_close_matches(absent, names, n=1)
    if not close:
        return None
    fixed = ".".join([*parts[:depth], close[0], *parts[depth + 1 :]])
    lacking = ".".join(parts[: depth + 1])
    if deleted:
        return f"~{dotted}: {lacking} does not exist, so there is nothing to delete; did you mean ~{fixed}?"
    return f"{dotted} is not a setting of this config: {lacking} does not exist; did you mean {fixed}?"


def tilde_folder_advice(key: str, value: str) -> str:
    """What to write instead of a run or sweep folder ``value`` that starts with ``~``, which Hydra does not
    expand: ``$HOME/...`` for ``~/...``, else the absolute path."""
    home = f"{key}=$HOME/{value[2:]} (the shell expands it) or " if value.startswith("~/") else ""
    return f"Hydra does not expand a ~ in a folder (it would make one named ~ here); write {home}the absolute path"


def one_line_composition_error(err: Exception, overrides: list[str]) -> str:
    """Hydra's message for ``err`` in one line, with the options or close keys it can name."""
    import difflib
    import re

    text = str(err)
    from hydra.errors import OverrideParseException

    if isinstance(err, OverrideParseException):  # Hydra names the override only sometimes, over several lines
        lines = [line for line in text.splitlines() if line.strip()]
        reasons = [
            line.strip()
            for line in lines
            if not line.strip().startswith(("Error parsing override", "See https://", "^"))
            and not line.endswith(f": {err.override}")
        ]
        reason = "; ".join(reasons) or "it does not follow Hydra's override grammar"
        lexer = [i for i, line in enumerate(lines) if line.endswith(f": {err.override}")]
        if not reasons and lexer and lexer[0] + 1 < len(lines) and lines[lexer[0] + 1].strip() == "^":
            # "LexerNoViableAltException: x=~/a" and a caret under the character it stopped at
            at = lines[lexer[0] + 1].index("^") - (len(lines[lexer[0]]) - len(err.override))
            if 0 <= at < len(err.override):
                reason = f"Hydra's grammar cannot read the {err.override[at]!r} at character {at + 1}"
        key, _, value = err.override.partition("=")
        if value.startswith("~") and key.lstrip("+") in ("hydra.run.dir", "hydra.sweep.dir"):
            # quoted as the grammar asks, Hydra makes a folder named ~ in the working directory (helper-127)
            return f"cannot read the override {err.override!r}: {tilde_folder_advice(key, value)}"
        return (
            f"cannot read the override {err.override!r}: {reason}; quote a value that holds spaces, = or ~ "
            "('key=\"a b\"') and close every [ and { (https://hydra.cc/docs/advanced/override_grammar/basic/)"
        )
    twice = re.match(r"Multiple values for ([\w/]+)\. To override a value use 'override [\w/]+: (.+)'", text)
    if twice:  # +callbacks=minimal: Hydra's advice is for a defaults list, not the command line (helper-127)
        group, option = twice.groups()
        return (
            f"+{group}={option} adds a second option to {group}, which has one; choose it without the +: "
            f"{group}={option}"
        )
    held = re.match(r"Could not append to config\. An item is already at '([^']+)'", text)
    if held:  # +key=v for a key the config (or an earlier +key=) has: Hydra's three sentences (helper-137)
        key = held.group(1)
        added = [o for o in overrides if o.partition("=")[0] == f"+{key}"]
        if len(added) > 1:
            return f"{' and '.join(added)}: +{key} is given twice; give it once"
        value = added[0].partition("=")[2] if added else "..."
        return f"+{key}={value}: {key} is in the config already; set it without the +: {key}={value}"
    missing = re.match(r"In '[^']*': Could not find '([^']+)/([^'/]+)'", text)  # hydra/launcher/joblib: hydra/launcher
    if missing:  # an unknown option of a config group: Hydra lists the group's options, one a line
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text.split("Config search path:")[0], flags=re.MULTILINE)
        close = _closest_option(option, options)
        hint = f"did you mean {group}={close[0]}? " if close else ""
        message = f"{group}={option}: no such option; {hint}the options of {group} are {', '.join(options)}"
        if group in CONFIG_GROUPS.values():  # a component group: perhaps a plugin's
            message += _plugin_hint(group, how=not close)
        return message
    key = re.match(r"Could not override '([^']+)'", text)
    deleted = re.match(r"Could not delete from config\. '([^']+)' does not exist", text)
    if key or deleted:  # a key the config does not have: name its neighbours
        dotted = (key or deleted).group(1)
        inner = re.search(r"^\s*full_key: (\S+)$", str(err.__cause__ or ""), flags=re.MULTILINE)
        if key and inner and inner.group(1).startswith(f"{dotted}."):  # pool.counts={b:2}: a new key in a mapping
            added = inner.group(1)
            if added.startswith("hydra.sweeper.params."):  # +hydra.sweeper.params.data.batch_size: refused too
                setting = added.removeprefix("hydra.sweeper.params.")
                why = (
                    "Hydra reads the dots of a setting there as nesting"
                    if "." in setting
                    else "a mapping merged into it adds none"
                )
                given = [o.lstrip("+").partition("=") for o in overrides if o.lstrip("+").startswith(f"{dotted}=")]
                sweeps = [
                    f"{key}={values}"
                    for key, values in (sweeps_in_mapping(given[-1][2]) if given else {}).items()
                    if key == setting or key.startswith(f"{setting}.")
                ]
                return (
                    f"{dotted} has no key {setting!r} ({why}); sweep on the command line instead: "
                    f"-m {' '.join(sweeps) or f'{setting}=<value>,<value>'}"
                )
            return (
                f"{dotted} has no key {added[len(dotted) + 1 :]!r} and a mapping given for it is merged into it; "
                f"to add the key, write +{added}=<value>"
            )
        parent, _, leaf = dotted.rpartition(".")
        rest = [o for o in overrides if o.partition("=")[0].lstrip("+~") != dotted]
        found, siblings, node = None, [], None
        # its neighbours, as the options chosen give them: with the other overrides, or, where another is wrong
        # too (pool.strid=2), with the groups' choices alone (pool=max, experiment=...)
        choices = [o for o in rest if "." not in o.partition("=")[0] and not o.startswith("~")]
        for attempt in (rest, choices):
            try:
                node = compose_plain(attempt, hydra=True)
            except Exception:
                continue
            found = OmegaConf.select(node, parent) if parent else node
            siblings = list(found) if isinstance(found, DictConfig) else []  # data.root.x: a word has no keys
            break
        if node is not None and parent and found is None:  # callbacks.filter.every_n_epochs: a missing node above
            missing = _missing_node(node, dotted, overrides, bool(deleted))
            if missing:
                return missing
        names = [str(k) for k in siblings]
        close = difflib.get_close_matches(leaf, names, n=1)
        chosen = found.get("name") if parent in COMPONENT_GROUPS and isinstance(found, DictConfig) else None
        if key and isinstance(chosen, str):  # conv=conv2d conv.kernel_depth=3, which +conv.kernel_depth would not
            # give conv2d either (its constructor refuses it): name the options that take it
            another = setting_of_another(parent, chosen, leaf, no_config_setting(parent))
            if another:
                return another
        if close:
            hint = f"did you mean {parent + '.' if parent else ''}{close[0]}? "
        elif parent and 0 < len(names) <= SHOWN_KEYS:
            hint = f"the settings of {parent} are {', '.join(names)}; "
        else:
            hint = ""
        if deleted:
            what = f"~{dotted}: {dotted} is not a setting of this config, so there is nothing to delete"
            return f"{what}; {hint.rstrip('; ')}" if hint else what
        typed = isinstance(found, DictConfig) and OmegaConf.get_type(found) not in (dict, None)
        if dotted.startswith("hydra.") and typed:  # a key Hydra's schema lacks is one it never reads, + or not
            said = (
                f"{dotted} is not a setting of Hydra; {hint.rstrip('; ') or 'python -m cnnpl --cfg hydra shows them'}"
            )
            if parent in ("hydra.launcher", "hydra.sweeper") and not close:  # -m hydra.launcher.n_jobs=2 (helper-143)
                kind = parent.removeprefix("hydra.")
                said += (
                    f"; a setting of another {kind} takes that {kind}, chosen with hydra/{kind}=<option> "
                    "(python -m cnnpl --hydra-help lists those installed)"
                )
            return said
        if isinstance(chosen, str) and not _takes_any_keyword(parent, chosen):  # +pool.bogus: "has no parameter"
            return f"{dotted} is not a setting of this config; {hint.rstrip('; ') or 'python -m cnnpl.list shows them'}"
        return f"{dotted} is not a setting of this config; {hint}to add a new key anyway, write +{dotted}=..."
    unloadable = re.match(r"In '[^']*': Could not load '([^'/]+)/([^']+)'", text)
    if unloadable:  # an unknown option inside a list of options (callbacks=[default,bogus])
        group, option = unloadable.groups()
        options = group_options(group)
        close = _closest_option(option, options)
        hint = f"did you mean {close[0]}? " if close else ""
        message = f"{group}: no option {option!r}; {hint}the options of {group} are {', '.join(options)}"
        if group in CONFIG_GROUPS.values():  # a component group: perhaps a plugin's
            message += _plugin_hint(group, how=not close)
        return message
    merging = re.match(r"Error merging override (\+{0,2}([\w.]+)=.*)", text)
    if merging and "Cannot merge DictConfig with ListConfig" in str(err.__cause__ or ""):  # callbacks.filters=[1,2]
        override, dotted = merging.groups()  # (helper-130: no word of what the key is)
        if re.search(r"^\s*object_type=list$", str(err.__cause__), flags=re.MULTILINE):  # pool.sizes={a:1} (helper-148)
            return f"{override}: {dotted} is a list, which a mapping cannot replace; give a list ({dotted}=[...])"
        return (
            f"{override}: {dotted} is a group of settings, which a list cannot replace; set one of them "
            f"({dotted}.<setting>=...)"
        )
    if merging:
        override, dotted = merging.groups()
        unconverted = _unconverted_value(dotted, override.partition("=")[2], str(err.__cause__ or ""), overrides)
        if unconverted:
            return unconverted
    lines = [line.strip() for line in text.split("Config search path:")[0].splitlines() if line.strip()]
    # "Error in call to target 'x':" then the reason: one line, without a colon before the semicolon
    return with_cause("; ".join(line.rstrip(":") for line in lines) or type(err).__name__, err)


def sweeps_in_mapping(value: str) -> dict[str, str]:
    """The command line's sweeps that a mapping given for ``hydra.sweeper.params`` holds, by dotted setting
    (``{model:{dropout:'0.1,0.2'}}``: ``{"model.dropout": "0.1,0.2"}``); empty where it is no mapping."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        mapping = OverridesParser.create().parse_override(f"params={value}").value()
    except Exception:
        return {}

    def flat(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, Mapping):
            for key, inner in node.items():
                yield from flat(inner, f"{prefix}.{key}" if prefix else str(key))
        else:  # a list: the sweep's values; text: as the sweeper reads it ('0.1,0.2')
            yield prefix, ",".join(map(_override_word, node)) if isinstance(node, list) else _override_word(node)

    return dict(flat(mapping, "")) if isinstance(mapping, Mapping) else {}


def _override_word(value: Any) -> str:
    """``value`` as a command line's override writes it: ``null``, ``true``, ``[24,28]``; text with a space or a
    character the shell or Hydra reads otherwise quoted (``'a b'``)."""
    if value is None or isinstance(value, bool):
        return yaml_word(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_override_word, value)) + "]"
    text = str(value)
    return text if re.fullmatch(r"[\w.\-+/:,]*", text) else "'" + text.replace("'", "\\'") + "'"


def _unconverted_value(dotted: str, given: str, cause: str, overrides: list[str]) -> str | None:
    """The one line of the checks' words for a typed config's value that OmegaConf could not convert
    (``pool=softpool pool.beta=abc``: "Error merging override pool.beta=abc: Value 'abc' of type 'str' could not
    be converted to Float"; an Enum's "Invalid value 'c', expected one of [A, B]"; "field 'pool.lam' is not
    Optional" and a null list item's "NoneType is not a subclass of int"; a mapping for text: "Cannot convert 'dict'
    to string"; "str is not a ListConfig, list or tuple"); None for any other cause. ``given``: the value as typed."""
    number = re.match(r"Value '(.*)' of type '(\w+)' could not be converted to (Float|Integer)\b", cause)
    switch = re.match(r"Value '(.*)' is not a valid bool \(type (\w+)\)", cause)
    member = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", cause)
    text = re.match(r"Cannot convert '(?:dict|list)' to string: '(.*)'", cause)
    item = re.search(r"^\s*full_key: (\S+)$", cause, flags=re.MULTILINE)  # pool.sizes=[1,abc]: pool.sizes[1]
    if item and item.group(1).startswith(dotted):
        dotted = item.group(1)
    elif item and item.group(1).isdigit():  # an item of a list in a list: its index alone (helper-149)
        dotted, given = f"{dotted}[{item.group(1)}]", ""
    nulls = (
        r"field '[^']*' is not Optional|Invalid type assigned: NoneType is not a subclass of|Incompatible value 'None'"
    )
    if re.match(nulls, cause):
        return f"{dotted} cannot be null{_chosen_option(dotted, overrides)}: give it a value"
    if re.match(r"Invalid value assigned: \w+ is not a ListConfig, list or tuple", cause):
        got = f", got {given}" if given else ""
        return f"{dotted} must be a list ([..., ...]){got}{_chosen_option(dotted, overrides)}"
    if member:
        names = member.group(2).split(", ")
        wanted = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        value, kind = member.group(1), "str"
    elif text:
        wanted, (value, kind) = "text", (text.group(1), "")
    elif number or switch:
        value, kind = (number or switch).group(1, 2)  # type: ignore[union-attr]
        wanted = "true or false" if switch else {"Float": "a number", "Integer": "an integer"}[number.group(3)]
    else:
        return None
    # a word quoted, as the checks show it; true, false and null as the command line writes them (yaml_word), also
    # in a list or mapping, which OmegaConf's message writes as Python does ("Value '[True]' of type 'list'")
    shown = repr(value) if kind == "str" else value.lower() if kind == "bool" else _python_text_as_yaml(value)
    return f"{dotted} must be {wanted}, got {shown}{_chosen_option(dotted, overrides)}"


def _python_text_as_yaml(text: str) -> str:
    """Python's text of a value (``[True, None]``) with true, false and null as the command line writes them;
    ``text`` itself where it is no Python literal."""
    import ast

    if not text.startswith(("[", "{", "(")):  # a number or a word: as OmegaConf wrote it
        return text
    try:
        return yaml_word(ast.literal_eval(text))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _chosen_option(dotted: str, overrides: list[str]) -> str:
    """`` (pool 'softpool')``: the option of a component group that ``dotted`` is a setting of, where the
    command line chose it; empty otherwise."""
    group = dotted.partition(".")[0]
    chosen = [o.partition("=")[2].strip("'\"") for o in overrides if o.lstrip("+").partition("=")[0] == group]
    return f" ({group_family(group)} {chosen[-1]!r})" if group_family(group) and chosen else ""


_PLUGIN_HINT = (
    "; a plugin's {group} becomes an option when plugins=[...] on the command line names it "
    "(a config file's plugins: list is read too late for that)"
)


def _takes_any_keyword(family: str, name: str) -> bool:
    """Whether ``family/name``'s constructor takes ``**kwargs`` (a key added with ``+`` could reach it); True where
    that cannot be told (an unknown name: the build says why)."""
    from cnnpl.registry import accepts_var_kwargs

    try:
        return accepts_var_kwargs(get_registry(family).get(name))
    except Exception:
        return True


def _plugin_hint(group: str, how: bool = True) -> str:
    """Where a component of ``group`` may come from: what the plugins the command line named registered in it
    (a plugin whose decorator is missing registers nothing), else how plugins=[...] makes one an option. Beside a
    did-you-mean (``how`` false) only that a plugin registered nothing: ``conv=my_conv2d`` is close to ``conv2d``."""
    from cnnpl.plugins import loaded_plugins

    family = group_family(group) or group
    named = [p for p in loaded_plugins() if p.kind in ("file", "module") and p.error is None]
    if not named:
        return (_PLUGIN_HINT.format(group=group) + _misnamed_entry_point_groups()) if how else ""
    theirs = [c.partition("/")[2] for p in named for c in p.components if c.startswith(f"{family}/")]
    sources = ", ".join(p.source for p in named)
    if theirs:
        return f"; the plugins loaded ({sources}) registered the {group} options {', '.join(theirs)}" if how else ""
    if not any(p.components for p in named):
        return (
            f"; the plugins loaded ({sources}) registered nothing: is a @cnnpl.register({family!r}, '<name>') "
            "decorator missing?"
        )
    return ""  # they registered components of other kinds: a misspelt option, which the list shows


def _misnamed_entry_point_groups() -> str:
    """An installed package's entry points in a group named like cnnpl's but not it (``cnnpl.plugin``), which
    cnnpl never reads (helper-136: the package was ignored without a word)."""
    import difflib
    import importlib.metadata

    from cnnpl.plugins import ENTRY_POINT_GROUP

    points = [ep for dist in importlib.metadata.distributions() for ep in dist.entry_points]
    groups = {ep.group for ep in points if ep.group != ENTRY_POINT_GROUP}
    close = difflib.get_close_matches(ENTRY_POINT_GROUP, sorted(groups), n=1, cutoff=0.8)
    if not close:
        return ""
    ep = next(ep for ep in points if ep.group == close[0])
    return (
        f" (an installed package declares the entry point {ep.name} = {ep.value} in the group {close[0]!r}, which "
        f"cnnpl does not read: its group is {ENTRY_POINT_GROUP!r})"
    )


def with_cause(message: str, err: BaseException) -> str:
    """``message: <what caused err>``: Hydra's "Error merging override pool.beta=abc" says only where it
    failed, OmegaConf's error that caused it says why ("Value 'abc' of type 'str' could not be converted
    to Float", its first line)."""
    cause = err.__cause__
    if cause is None:
        return message
    reason = first_line(cause) or type(cause).__name__
    return message if reason in message else f"{message}: {reason}"
