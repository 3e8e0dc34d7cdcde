"""``python -m cnnpl.list`` (or ``cnnpl list``): every registered component, where it came from, its parameters.

    python -m cnnpl.list                      # all families
    python -m cnnpl.list pool conv            # some families
    python -m cnnpl.list plugins=[./my_pool.py] pool
    python -m cnnpl.list --json               # the same, machine-readable

Sources read ``built-in``, ``package <distribution> <version> (entry point <name> = <value>)``,
``file <path>`` or ``module <name>``. A parameter marked ``*`` is normally supplied by the
architecture (or, for models, by the data); setting it in the config forces it everywhere. A plugin's
YAML options (presets such as cnnpl-example's ``pool=softpool_sharp``, from a config folder it puts on
Hydra's search path) follow each family's components, with the component and settings they choose; the
callbacks' sets (``callbacks=minimal``) follow the callbacks. Broken installed plugins are listed with their
error instead of stopping the listing. Lightning is not imported.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnpl.config import (
    CONFIG_GROUPS,
    HIDDEN_FROM_CONFIG,
    SUPPLIED_BY_CALLER,
    plugin_yaml_options,
    searchpath_folders,
    shadowing_preset,
)
from cnnpl.errors import CnnplError
from cnnpl.plugins import PLUGINS_KEY, PluginWarning, load_plugins, loaded_plugins, split_plugin_overrides
from cnnpl.registry import FAMILIES, get_registry, parameters_of

USAGE = (
    "usage: python -m cnnpl.list [FAMILY ...] [plugins=[FILE_OR_MODULE,...]] [hydra.searchpath=[file://FOLDER,...]] "
    "[--json]"
)


def _annotation(param: inspect.Parameter, namespace: Mapping[str, Any]) -> str | None:
    """The type of ``param`` as written, with the names of type aliases in ``namespace`` (the module of the code that
    declares it) spelt out: ``IntPair`` is ``int | tuple[int, int]``, which a user can read without cnnpl's code."""
    if param.annotation is inspect.Parameter.empty:
        return None
    if not isinstance(param.annotation, str):
        return inspect.formatannotation(param.annotation)

    def spelt(match: re.Match[str]) -> str:
        value = namespace.get(match.group()) if match.group()[0] not in "'\"" else None  # not inside a literal
        aliased = isinstance(value, types.UnionType) or typing.get_origin(value) is not None  # not a TypeVar
        return inspect.formatannotation(value) if aliased else match.group()

    # postponed annotations: the text as written
    return re.sub(r"'[^']*'|\"[^\"]*\"|(?<![\w.])[A-Za-z_]\w*", spelt, param.annotation)


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)


def describe_parameters(family: str, obj: Any, decided: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """One dict per config parameter: name, type (None if unhinted), default, required, supplied_by_caller.

    Parameters a model receives from cnnpl itself (``num_classes``, the layer factories) are left out.
    ``decided``: those the option's YAML leaves null for the architecture to decide (``norm=batch``'s ``eps``,
    which Inception sets to 1e-3): supplied by the caller too, where the constructor has a default of its own.
    """
    supplied = SUPPLIED_BY_CALLER.get(family, frozenset()) | {
        name for name, param in parameters_of(obj).items() if name in decided and param.default is not None
    }
    hidden = HIDDEN_FROM_CONFIG.get(family, frozenset())
    declared = obj.__init__ if inspect.isclass(obj) else obj  # the signature's
    namespace = getattr(inspect.unwrap(declared), "__globals__", {})
    rows = []
    for name, param in parameters_of(obj).items():
        if name in hidden:
            continue
        required = param.default is inspect.Parameter.empty
        rows.append(
            {
                "name": name,
                "type": _annotation(param, namespace),
                "default": None if required else _json_value(param.default),
                "default_text": None if required else repr(param.default),
                "required": required,
                "supplied_by_caller": name in supplied,
            }
        )
    return rows


def _left_null(family: str, name: str) -> frozenset[str]:
    """The settings ``conf/<group>/<name>.yaml`` leaves null ("the architecture decides"); none without one."""
    from omegaconf import DictConfig, OmegaConf

    from cnnpl.config import config_dir

    path = config_dir() / CONFIG_GROUPS.get(family, family) / f"{name}.yaml"
    if not path.is_file():
        return frozenset()
    node = OmegaConf.load(path)
    return frozenset(str(k) for k, v in node.items() if v is None) if isinstance(node, DictConfig) else frozenset()


def collect(families: Sequence[str], searchpath: Sequence[Path] = ()) -> dict[str, Any]:
    """What the listing shows, as plain data (the ``--json`` output). ``searchpath``: the folders a
    ``hydra.searchpath=`` adds, whose YAML options are listed with the plugins'. A component that a YAML option
    of the same name hides (``shadowed_by``: its file) cannot be chosen."""
    components = {}
    for family in families:
        registry = get_registry(family)
        components[family] = [
            {
                "name": name,
                "source": registry.entry(name).source,
                "object": f"{registry.get(name).__module__}.{registry.get(name).__qualname__}",
                "parameters": describe_parameters(family, registry.get(name), _left_null(family, name)),
                "shadowed_by": shadowing_preset(CONFIG_GROUPS[family], name, searchpath),
            }
            for name in registry.names()
        ]
    plugins = [
        {"kind": p.kind, "source": p.source, "components": list(p.components), "error": p.error}
        for p in loaded_plugins()
    ]
    presets = {family: yaml_options(family, searchpath) for family in families}
    sets = callback_sets() if "callback" in families else []
    return {"plugins": plugins, "components": components, "presets": presets, "callback_sets": sets}


def callback_sets() -> list[dict[str, Any]]:
    """cnnpl's sets of callbacks (``conf/callbacks/<name>.yaml``: ``default``, ``full``, ``minimal``): each
    one's name and the callbacks it holds (:func:`set_callbacks`)."""
    from cnnpl.config import config_dir

    folder = config_dir() / "callbacks"
    return [{"name": path.stem, "callbacks": set_callbacks(path.stem)} for path in sorted(folder.glob("*.yaml"))]


def set_callbacks(name: str) -> list[str]:
    """The callbacks cnnpl's set ``callbacks=<name>`` holds, those of the sets its ``defaults:`` list includes
    too."""
    return list(set_entries(name))


def set_entries(name: str) -> dict[str, Any]:
    """Each callback cnnpl's set ``callbacks=<name>`` holds and its settings, merged as Hydra merges them: the
    sets its ``defaults:`` list includes first, its own entries over theirs (``full``'s gradcam every epoch)."""
    from omegaconf import OmegaConf

    from cnnpl.config import config_dir

    node = OmegaConf.load(config_dir() / "callbacks" / f"{name}.yaml")
    included = [
        OmegaConf.create(set_entries(other))
        for other in node.pop("defaults", None) or []
        if isinstance(other, str) and other != "_self_"
    ]
    return OmegaConf.to_container(OmegaConf.merge(*included, node), resolve=False)


def yaml_options(family: str, searchpath: Sequence[Path] = ()) -> list[dict[str, Any]]:
    """The plugins' YAML options of ``family``'s config group (and those of the ``searchpath`` folders) that are
    not a registered component's own option: each one's name, the component it chooses (its ``name:``; None for
    a set of callbacks), the settings it gives (those not null) and its file; ``error`` when the file cannot be
    read as a mapping. One that hides a registered component of its name is listed too (the one chosen)."""
    from omegaconf import DictConfig, OmegaConf

    registered = set(get_registry(family).names())
    rows = []
    for name, path in plugin_yaml_options(CONFIG_GROUPS[family], searchpath):
        if name in registered and shadowing_preset(CONFIG_GROUPS[family], name, searchpath) is None:
            continue  # a component's own YAML (name: <it>)
        row: dict[str, Any] = {"name": name, "component": None, "settings": {}, "path": str(path), "error": None}
        try:
            node = OmegaConf.load(path)
            if not isinstance(node, DictConfig):
                raise ValueError("not a mapping")
            settings = OmegaConf.to_container(node, resolve=False)
        except Exception as err:  # shown, not raised: the listing goes on, Hydra says more when it is chosen
            row["error"] = str(err).splitlines()[0] if str(err) else type(err).__name__
            rows.append(row)
            continue
        if family != "callback":
            row["component"] = settings.pop("name", None)
        settings.pop("defaults", None)
        row["settings"] = {key: value for key, value in settings.items() if value is not None}
        rows.append(row)
    return rows


def _format_parameter(row: dict[str, Any]) -> str:
    text = row["name"] + (f": {row['type']}" if row["type"] else "")
    text += " (required)" if row["required"] else f" = {row['default_text']}"
    return text + ("*" if row["supplied_by_caller"] else "")


def render(data: dict[str, Any]) -> str:
    """The human-readable listing."""
    lines = ["plugins:"]
    for plugin in data["plugins"]:
        status = f"BROKEN, not loaded: {plugin['error']}" if plugin["error"] else ", ".join(plugin["components"])
        lines.append(f"  {plugin['source']}: {status or '(registered nothing)'}")
    if not data["plugins"]:
        lines.append("  (none installed or named)")
    lines.append("(* = supplied by the architecture or the data unless set in the config)")
    for family, rows in data["components"].items():
        lines.append("")
        choose = "callbacks=[default,NAME]" if family == "callback" else f"{family}=NAME"
        lines.append(f"{family} ({len(rows)}): choose with {choose}")
        width = max((len(r["name"]) for r in rows), default=0)
        for row in rows:
            hidden = (
                f" (cannot be chosen: the YAML option {row['shadowed_by']} is; rename one)"
                if row.get("shadowed_by")
                else ""
            )
            lines.append(f"  {row['name']:<{width}}  {row['source']}{hidden}")
            params = ", ".join(_format_parameter(p) for p in row["parameters"]) or "(no parameters)"
            lines.append(f"  {'':<{width}}    {params}")
        sets = data.get("callback_sets", []) if family == "callback" else []
        if sets:
            lines.append(f"  sets of callbacks ({len(sets)}): choose with callbacks=NAME")
            width = max(len(row["name"]) for row in sets)
            lines.extend(f"  {row['name']:<{width}}  {', '.join(row['callbacks'])}" for row in sets)
        presets = data.get("presets", {}).get(family, [])
        if presets:
            option = "callbacks=NAME" if family == "callback" else f"{family}=NAME"
            lines.append(f"  YAML options of plugins ({len(presets)}): choose with {option}")
            width = max(len(r["name"]) for r in presets)
            for row in presets:
                lines.append(f"  {row['name']:<{width}}  {row['path']}")
                lines.append(f"  {'':<{width}}    {_describe_preset(row)}")
    return "\n".join(lines)


def _describe_preset(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"(cannot be read: {row['error']})"
    settings = ", ".join(f"{key}: {json.dumps(value, default=repr)}" for key, value in row["settings"].items())
    if row["component"] is None:
        return settings or "(no settings)"
    return f"{row['component']}" + (f" with {settings}" if settings else "")


def _family(word: str, searchpath: Sequence[Path] = ()) -> str:
    """The registry family ``word`` names: a family (``pool``), or its config group (``callbacks``)."""
    import difflib

    by_group = {group: family for family, group in CONFIG_GROUPS.items()}
    if word.startswith("-"):
        close = difflib.get_close_matches(word, ["--json", "--help"], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise CnnplError(f"unknown option {word!r}; {hint}{USAGE}")
    if word in FAMILIES or word in by_group:
        return by_group.get(word, word)
    from cnnpl.config import config_groups, group_options

    if word in config_groups():  # helper-141: experiment, data, optimizer are YAML options, not components
        plugins = [name for name, _ in plugin_yaml_options(word, searchpath)]  # helper-143: cnnpl-example's experiment
        shown = ", ".join(sorted({*group_options(word), *plugins}))
        raise CnnplError(
            f"{word} is a config group of options ({shown}), not a family of components; families: "
            f"{', '.join(FAMILIES)} (python -m cnnpl --help lists every group)"
        )
    close = difflib.get_close_matches(word, [*FAMILIES, *by_group, *sorted(config_groups())], n=1)  # datta: data
    hint = f"did you mean {by_group.get(close[0], close[0])}? " if close else ""
    raise CnnplError(f"unknown family {word!r}; {hint}families: {', '.join(FAMILIES)}. {USAGE}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        _print(USAGE)
        return 0
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    try:
        specs, _, rest = split_plugin_overrides(args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginWarning)  # broken plugins are shown in the listing itself
            load_plugins(specs, skip_broken=True)
        words = [a for a in rest if not a.lstrip("+~").startswith(f"{PLUGINS_KEY}=")]  # plugins= stays in rest
        searchpath = searchpath_folders(words)  # hydra.searchpath=[file://...]: its YAML options are listed too
        families = [_family(w, searchpath) for w in words if not w.lstrip("+").startswith("hydra.searchpath=")]
        data = collect(families or list(FAMILIES), searchpath)
    except CnnplError as err:
        print(f"cnnpl.list: error: {err}", file=sys.stderr)
        return 2
    _print(json.dumps(data, indent=2, default=repr) if as_json else render(data))
    return 0


def _print(text: str) -> None:
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `python -m cnnpl.list | head`: the reader has what it wanted
        # Python's recipe (docs of the signal module): stdout to devnull, so the flush at exit fails no more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
