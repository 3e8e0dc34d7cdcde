"""The command line's overrides read as text, before Hydra parses them for a run: the values given to a key,
whether one sweeps, a value written back as an override, the ``${...}`` in a setting, and a copy of the config
to resolve a folder setting in. Used by :mod:`cnnpl.cli` and :mod:`cnnpl.sweeps`."""

from __future__ import annotations

import re

from omegaconf import DictConfig


def given_values(args: list[str], key: str) -> list[str]:
    """The values ``args`` give ``key`` (``+key`` too), in order, without the quotes around them
    (Lightning's DDP workers get ``hydra.run.dir="..."``)."""
    values = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+") == key:
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
            values.append(value[1:-1] if quoted else value)
    return values


def override_value(text: str) -> str:
    """``text`` as the value of a Hydra override: quoted unless it is a plain path."""

    if re.fullmatch(r"[A-Za-z0-9_/.:+-]+", text):
        return text
    return "'" + text.replace("'", "\\'") + "'"  # Hydra: in quotes only a quote needs its backslash


def interpolations_in(text: str) -> list[str]:
    """The outermost ``${...}`` of ``text``, in order (``a/${x}/${oc.env:Y,${z}}`` gives two; ``\\${x}`` none)."""
    found, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if depth == 0 and text.startswith("\\${", i):
            i += 3
            continue
        if text.startswith("${", i):
            start = i if depth == 0 else start
            depth, i = depth + 1, i + 2
            continue
        if depth and text[i] == "{":  # a mapping among a resolver's arguments
            depth += 1
        elif depth and text[i] == "}":
            depth -= 1
            if depth == 0:
                found.append(text[start : i + 1])
        i += 1
    return found


PROBE = "_cnnpl_folder_probe"  # where a folder setting is resolved with the config


def folder_probe(cfg: DictConfig, text: str) -> DictConfig:
    """A copy of ``cfg`` with ``text`` at its top, under :data:`PROBE`: read there, a folder setting of Hydra's
    resolves with the config (Hydra's own node, typed, would take no null)."""
    import copy

    from omegaconf import OmegaConf

    copied = copy.deepcopy(cfg)
    OmegaConf.set_struct(copied, False)
    copied[PROBE] = text
    return copied


def has_sweep(words: list[str]) -> bool:
    """Whether any of the overrides in ``words`` sweeps (``pool=max,avg``, ``seed=range(3)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([w for w in words if not w.startswith("-")])
    except Exception:  # Hydra names what it cannot parse
        return False
    return any(override.is_sweep_override() for override in parsed)


def config_overrides(words: list[str]) -> list[str]:
    """The overrides of ``words`` that the config composes from: not flags, not Hydra's own settings, except
    ``hydra.searchpath``, which adds config folders (docs/howto/own-images.md)."""
    return [
        arg
        for arg in words
        if not arg.startswith("-")
        and (not arg.lstrip("+~").startswith(("hydra.", "hydra/")) or arg.lstrip("+~").startswith("hydra.searchpath="))
    ]
