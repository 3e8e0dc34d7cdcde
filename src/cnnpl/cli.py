"""The command line: ``python -m cnnpl [overrides]``, a Hydra app over ``conf/train.yaml``.

Before Hydra composes anything, plugins are loaded: the installed ones (``import cnnpl`` did that)
and the files or modules named by ``plugins=[...]``, which is read out of the command line here,
so ``python -m cnnpl plugins=[./my_pool.py] pool=my_pool`` finds the option ``my_pool``. Then every
registered component gets its config option. ``skip_broken_plugins=true`` (or
``CNNPL_SKIP_BROKEN_PLUGINS=1``) skips installed plugins that fail to load, with a warning.
``cnnpl list`` (or ``python -m cnnpl list``) is ``python -m cnnpl.list``. Then the config is
composed once (a sweep once per swept value), so that an unknown option or key is one line, also with
``--help`` and ``--cfg``, and a run's component settings are checked (a ``???`` left, a word for a number),
a literal ``hydra.run.dir`` must be writable, a literal ``hydra.sweep.dir`` may not hold an earlier
sweep's runs unless the sweep continues them (``ckpt_path=last``), and a run directory (a sweep's job
folder) that holds an earlier command's ``.hydra/`` record gets this command's in ``.hydra-N/``. A folder
named by the time (Hydra's default) is made here, ``<time>-2`` when another command made it in the same second.

Errors a user can fix (:class:`cnnpl.CnnplError`) end the run with one line on stderr and exit
status 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Lightning is imported only when
training starts, so ``--help`` and ``--cfg job`` stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig

from cnnpl.config import (
    CONFIG_NAME,
    TOOLS,
    check_group_overrides,
    compose_plain,
    config_dir,
    hide_extension_warnings,
    hydra_mode,
    one_line_composition_error,
    register_component_configs,
    store_searchpath_options,
    tilde_folder_advice,
)
from cnnpl.errors import CnnplError, close_progress_bars, first_line, shown_cause, to_run_log, yaml_word
from cnnpl.overrides import (
    PROBE,
    config_overrides,
    folder_probe,
    given_values,
    has_sweep,
    interpolations_in,
    override_value,
)
from cnnpl.plugins import SKIP_BROKEN_ENV, load_plugins, plugin_warnings_on_one_line, split_plugin_overrides
from cnnpl.sweeps import (
    check_a_checkpoint_folder_each,
    check_sweep_subdir,
    check_sweep_values,
    check_sweeper_params,
    config_sweeps,
    sweep_dir_setting,
    sweep_jobs,
    sweep_variants,
    warn_unrun_sweep,
)

EXIT_USAGE = 2


def fail(err: CnnplError) -> NoReturn:
    """End the process with ``err`` on one line (or its traceback under ``HYDRA_FULL_ERROR=1``)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    close_progress_bars()  # a stopped run's bar: the line starts a line of its own
    print(f"cnnpl: error: {err}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def guarded(step: Callable[[], Any]) -> Any:
    """Run ``step``; a :class:`CnnplError` ends the process, a skipped plugin's warning is one stderr line.
    Of the processes torchrun or srun started on a machine, the first prints the refusal: the command line
    of the others is the same (:func:`cnnpl.distributed.beside_a_first_on_this_machine`)."""
    with plugin_warnings_on_one_line("cnnpl"):
        try:
            result = step()
        except CnnplError as err:
            from cnnpl.distributed import beside_a_first_on_this_machine

            if beside_a_first_on_this_machine() and os.environ.get("HYDRA_FULL_ERROR") != "1":
                sys.exit(EXIT_USAGE)
            fail(err)
    return result


# Hydra's flags that take a value (the next word), and those that take none
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}
PLAIN_FLAGS = {"-m", "--multirun", "--resolve", "-h", "--help", "--hydra-help"}
# the rest of Hydra's flags (--info takes a value or none); cnnpl answers --version itself
OTHER_FLAGS = {"--info", "-i", "--run", "-r", "--shell-completion", "-sc", "--experimental-rerun", "--version"}


def check_flags(args: list[str]) -> list[str]:
    """``args`` with each abbreviated flag written out (``--multi``: ``--multirun``, as Hydra's argparse reads it;
    cnnpl's own checks look for the whole flag). Refuses a flag Hydra does not have (``--versoin``), an
    ambiguous abbreviation, or a flag without its value (``--cfg`` last), in one line: Hydra printed its
    usage, seven lines, under the name ``__main__.py``."""
    import difflib

    from cnnpl.config import REQUIRED_KEYS, config_groups

    known = sorted(VALUE_FLAGS | PLAIN_FLAGS | OTHER_FLAGS)
    args = list(args)
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] in VALUE_FLAGS | {"--info", "-i"}:
            continue  # a flag's value
        flag, sep, value = arg.partition("=")
        if not arg.startswith("-") or arg == "--":
            continue
        if not arg.startswith("--") and flag not in known and any(flag.startswith(k) for k in known if k[1] != "-"):
            continue  # a short flag with its value attached (-cjob): argparse's to read
        if flag.startswith("--") and flag not in known:
            prefixed = [k for k in known if k.startswith(flag)]  # argparse takes a unique abbreviation (--hydra)
            if len(prefixed) > 1:
                raise CnnplError(f"{flag} is ambiguous: it could be {' or '.join(prefixed)}; write the whole flag")
            if prefixed:
                flag = prefixed[0]
                args[i] = f"{flag}{sep}{value}"
        if flag not in known:
            name = flag.lstrip("-")
            close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], n=1, cutoff=0.75)
            if name in config_groups() or name in REQUIRED_KEYS:  # --model vgg16
                raise CnnplError(f"{flag} is no flag: overrides are written key=value, without dashes: {name}=...")
            hint = f"; did you mean {close[0]}?" if close else ""
            raise CnnplError(
                f"unknown flag {flag}{hint} (python -m cnnpl --help lists them; overrides are written key=value, "
                "without dashes)"
            )
        if flag in VALUE_FLAGS and "=" not in arg and (i + 1 == len(args) or args[i + 1].startswith("-")):
            values = " (job, hydra or all)" if flag in ("--cfg", "-c") else ""
            raise CnnplError(f"{flag} takes a value{values}: {flag} <value>")
    return args


def flags_first(args: list[str]) -> list[str]:
    """``args`` with Hydra's flags (and their values) before the overrides: Hydra's argparse takes the overrides
    as one run of words, so ``data=shapes -m pool=max,avg`` failed there ("unrecognized arguments") after cnnpl
    had made the sweep's folder. Left as they are after ``--`` or with a flag it does not know."""
    if "--" in args:
        return args
    flags: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in VALUE_FLAGS and i + 1 < len(args):
            flags += args[i : i + 2]
            i += 2
            continue
        if arg in PLAIN_FLAGS or (arg.startswith("-") and "=" in arg and arg.partition("=")[0] in VALUE_FLAGS):
            flags.append(arg)
        elif arg.startswith("-"):  # --info [part], -sc ...: their own forms; Hydra is left to read them as given
            return args
        else:
            words.append(arg)
        i += 1
    return [*flags, *words]


def prepare(args: list[str]) -> list[str]:
    """Load the plugins ``args`` name and register every component's config; returns the args for Hydra."""
    args = flags_first(check_flags(args))
    specs, skip_broken, rest = split_plugin_overrides(args)
    if skip_broken is not None:  # processes started for this run (DDP workers re-run this command) inherit it
        os.environ[SKIP_BROKEN_ENV] = "1" if skip_broken else "0"
    load_plugins(specs, skip_broken=skip_broken)
    register_component_configs()
    check_group_overrides(rest)
    if {"-h", "--help"} & set(rest):
        store_searchpath_options(rest)
    rest = _multirun_flag_for_hydra_mode(rest)
    try:
        run_dir = _check_command(rest)
    except _ConfigSweeps:  # a config sets hydra.mode: MULTIRUN: Hydra sweeps without -m
        rest = ["-m", *rest]
        run_dir = _check_command(rest)
    _check_shared_run_dir(rest, run_dir)
    _warn_single_callback(rest)
    _check_resume_dir(rest)  # before _check_run_dir, which makes the folder to see that it can write there
    named = _new_named_run_dir(rest)
    _check_run_dir(rest)
    sweep = bool({"-m", "--multirun"} & set(rest))
    sweep_dir = sweep_dir_setting(rest) if sweep else None
    _check_sweep_dir(rest, sweep_dir)
    option = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    claimed = _claim_new_folder(rest, option, sweep_dir if sweep else run_dir)  # last: a refused command makes none
    global _claimed_run_dir
    if claimed is not None:
        folder, made = claimed
        _claimed_run_dir = None if sweep else (folder.absolute(), made)  # hydra.job.chdir=true moves into it
        return [*rest, f"{option}={override_value(str(folder))}"]
    if named is not None:  # hydra.run.dir=<a folder not there before>: a refused run leaves none either
        _claimed_run_dir = named
    return [*rest, *_keep_earlier_records(rest, sweep_dir)]


def _check_command(args: list[str]) -> str | None:
    """The checks of the command line as a whole, before any of its folders is looked at; returns a run's
    ``hydra.run.dir`` setting (:func:`_check_composes`)."""
    _check_output_dir(args)
    _check_folder_option(args)
    _check_config_name(args)
    return _check_composes(args)


class _ConfigSweeps(Exception):
    """Raised for a command without ``-m`` whose config sets ``hydra.mode: MULTIRUN`` (:func:`_check_composes`,
    :func:`_raise_if_config_sweeps`); :func:`prepare` checks it again as the same command with ``-m``."""


def _multirun_flag_for_hydra_mode(args: list[str]) -> list[str]:
    """``args`` with ``-m`` first where Hydra runs them as a sweep without it (``hydra.mode=MULTIRUN``, Hydra's
    ``get_mode``), so that the sweep is checked, and its folder claimed, as one with ``-m`` is (it was checked as
    one run: "Ambiguous value for argument 'pool=max,avg' ... add --multirun"). Not where Hydra does not read the
    mode: a command that shows or tells (``--cfg``, ``--info``); nor beside ``--run``, which Hydra refuses with
    ``-m`` (it sweeps there too, checked as far as :func:`_sweeping` reads the mode). A config's own
    ``hydra.mode`` is composed for here where the command line sweeps a setting (no run could compose), and
    otherwise found where a check would refuse the command as one run (:func:`_raise_if_config_sweeps`)."""
    if any(_prints_only(arg) for arg in args) or {"-r", "--run", "-m", "--multirun"} & set(args):
        return args
    if _sweeping(args):
        return ["-m", *args]
    if any(arg.startswith("-") for arg in args) or not has_sweep(args):  # --config-name ...: Hydra's to compose
        return args
    from hydra.types import RunMode

    return ["-m", *args] if hydra_mode(args) == RunMode.MULTIRUN else args


def _raise_if_config_sweeps(args: list[str]) -> None:
    """Raise :class:`_ConfigSweeps` where a config sets ``hydra.mode: MULTIRUN`` for a command without ``-m``:
    called on the way to refusing it as one run (the config composed for its mode only then)."""
    from hydra.types import RunMode

    if not _sweeping(args) and not any(arg.startswith("-") for arg in args) and hydra_mode(args) == RunMode.MULTIRUN:
        raise _ConfigSweeps


def _sweeping(args: list[str]) -> bool:
    """Whether the command sweeps: ``-m`` / ``--multirun``, or Hydra's ``hydra.mode=MULTIRUN``."""
    modes = [value.strip().upper() for value in given_values(args, "hydra.mode")]
    return bool({"-m", "--multirun"} & set(args)) or modes[-1:] == ["MULTIRUN"]


def _check_output_dir(args: list[str]) -> None:
    """Refuse ``output_dir=<folder>`` on the command line (helper-141): it moves ``config.yaml``, the checkpoints and
    the TensorBoard files, but Hydra's ``.hydra/`` and ``cnnpl.log`` went to a folder of their own, a new one named
    by the time at each command (a resume's too), and each job of a sweep wrote into the same folder. The run's
    folder is Hydra's to choose. A folder in Hydra's (``${hydra:runtime.output_dir}/...``), the folder
    ``hydra.run.dir=`` names too, and a command that only prints stay; ``output_dir=`` from Python is the way
    there (:func:`cnnpl.compose`)."""
    given = given_values(args, "output_dir")
    if not given or any(_prints_only(arg) for arg in args):
        return
    value = given[-1].strip()
    sweep = _sweeping(args)
    inside = ("${hydra:runtime.output_dir}",) if sweep else ("${hydra:runtime.output_dir}", "${hydra:run.dir}")
    if value.startswith(inside) or value.lower() in ("", "null", "~"):  # in Hydra's folder; or none, train.py's to say
        return
    option = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    named = given_values(args, option)
    folder = override_value(value)
    if named and not sweep and _folder_named(named[-1]) == _folder_named(value):
        return
    _raise_if_config_sweeps(args)
    fix = (
        f"leave output_dir out: {option}={override_value(named[-1])} is the run's folder"
        if named
        else f"choose the run's folder with {option}={folder} instead"
        + (" (each job gets a subfolder)" if sweep else "")
    )
    raise CnnplError(
        f"output_dir={folder} would split the run: its config.yaml, checkpoints and tensorboard/ there, Hydra's "
        f".hydra/ and cnnpl.log in a folder of their own; {fix}"
    )


def _check_folder_option(args: list[str]) -> None:
    """Refuse ``hydra.run.dir=`` alone with ``-m``, and ``hydra.sweep.dir=`` alone without it (helper-141): Hydra
    reads only the other one, and the run went to a folder named by the time, the one given never made. A
    process a launcher started (a DDP worker) is left alone."""
    from cnnpl.distributed import is_worker

    if is_worker():
        return
    _check_folder_values(args)
    if any(_prints_only(arg) for arg in args):
        return
    sweep = _sweeping(args)
    given, other = ("hydra.run.dir", "hydra.sweep.dir") if sweep else ("hydra.sweep.dir", "hydra.run.dir")
    values = given_values(args, given)
    if not values or given_values(args, other):
        return
    folder = override_value(values[-1])
    if sweep:
        raise CnnplError(
            f"hydra.run.dir={folder} is a single run's folder, and this command sweeps (-m or hydra.mode=MULTIRUN) "
            f"into hydra.sweep.dir: give hydra.sweep.dir={folder}"
        )
    _raise_if_config_sweeps(args)
    raise CnnplError(  # helper-142: a sweep without its -m (pool=max,avg; a sweep's ckpt_path=last) is the likelier
        f"hydra.sweep.dir={folder} is a sweep's folder: add -m to sweep into it (python -m cnnpl -m ...), or give "
        f"hydra.run.dir={folder} for one run"
    )


def _check_folder_values(args: list[str]) -> None:
    """Refuse a folder setting Hydra reads as no text (``hydra.run.dir=null``, ``{a:1}``, ``[a]``): Hydra's traceback,
    after a folder named ``null`` was made here (helper-148); ``hydra.output_subdir=null`` is Hydra's "no record"."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    folders = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.output_subdir")
    for arg in args:
        if arg.lstrip("+").partition("=")[0] not in folders:
            continue
        try:  # [date]_run: not an override Hydra can read, which the command's own parse says (quote it)
            override = OverridesParser.create().parse_override(arg)
        except Exception:
            continue
        if override.is_sweep_override():
            continue
        key, value = override.get_key_element().lstrip("+"), override.value()
        if value is None and key != "hydra.output_subdir":
            raise CnnplError(f"{arg}: {key} names a folder; give a path ({key}=<folder>)")
        if isinstance(value, (dict, list)):
            kind = "mapping" if isinstance(value, dict) else "list"
            raise CnnplError(f"{arg}: a {kind} is no folder; give {key} a path ({key}=<folder>)")
        if isinstance(value, str) and "${" in value and not any(_prints_only(arg) for arg in args):
            _check_resolves({"folder": value}, key, value, alone=True, at="folder")  # an environment variable not set


def _check_interpolations(cfg: DictConfig, overrides: list[str], folder: tuple[str, str] | None) -> None:
    """Refuse a setting the run reads whose ``${...}`` cannot be resolved, in the run either: a key the config
    does not have (``data.batch_size=${model.nope}``), an environment variable not set (``${oc.env:NOPE}``), a
    resolver that is not there (``${oc.envv:X}``). They were OmegaConf's traceback when the setting was first
    read, after Hydra had made the run's folder. The settings are those of cnnpl's config (its groups and own
    keys) and the command line's ``overrides``: a config file's key cnnpl never reads is never resolved
    (helper-152). A single run's config also has its own ``hydra.run.dir`` checked, unless the command line
    gives its ``folder`` (key and text: :func:`_check_folder_resolves` reads it). Plugins are loaded first
    (:func:`_check_components`): one may register a resolver."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False)
    read = _read_keys() | {arg.lstrip("+~").partition("=")[0].split(".")[0] for arg in overrides}
    settings = [(key, value) for key, value in raw.items() if key in read and key != "hydra"]
    if folder is None and "hydra" in raw:  # a config's own (an experiment's)
        settings.append(("hydra.run.dir", raw["hydra"]["run"].get("dir")))
    for key, text in _interpolated(settings):
        _check_resolves(cfg, key, text)


def _unknown_hydra_key(error: str) -> str | None:
    """Why the ``hydra.*`` key an interpolation error names (``Interpolation key 'hydra.job.nme' not found``) is
    none of Hydra's settings (its schema, ``HydraConf``; a mapping of one's own, ``hydra.job.env_set``, takes any
    key); None where it is one, or the error names no such key."""
    import difflib

    from hydra.conf import HydraConf
    from omegaconf import OmegaConf

    named = re.search(r"key '(hydra\.[^']*)' not found", error)
    if named is None:
        return None
    node: Any = OmegaConf.to_container(OmegaConf.structured(HydraConf), resolve=False)
    path = named.group(1).split(".")
    for depth, part in enumerate(path[1:], start=1):
        if not isinstance(node, dict) or not node:  # a value of any kind (hydra.sweeper), or a mapping of one's own
            return None
        if part not in node:
            parent = ".".join(path[:depth])
            close = difflib.get_close_matches(part, list(node), n=1)
            hint = f"; did you mean {parent}.{close[0]}?" if close else f" (it has {', '.join(node)})"
            return f"Hydra has no setting {named.group(1)}{hint}"
        node = node[part]
    return None


def _check_folder_resolves(cfg: DictConfig, key: str, text: str) -> None:
    """Refuse the command line's ``hydra.run.dir`` (a sweep's ``hydra.sweep.dir``: ``key``), written ``text``,
    where Hydra could not resolve it with ``cfg`` (a key it lacks, ``${oc.env:...}`` not set) or it resolves
    to null (read at the config's top: Hydra's own node, typed, would take no null)."""
    from omegaconf import OmegaConf

    probe = folder_probe(cfg, text)
    _check_resolves(probe, key, text, at=PROBE)
    pieces = interpolations_in(text)
    try:
        whole = OmegaConf.select(probe, PROBE)
    except Exception:  # left by the check above: Hydra's own values (${hydra.job.name}), which it resolves itself
        return
    if pieces == [text]:
        return  # the whole setting: a null is refused above
    for piece in pieces:  # one inside a longer text: null is written None (runs/None/x, a folder of that name)
        probe[PROBE] = piece
        if OmegaConf.select(probe, PROBE) is None:
            raise CnnplError(
                f"{key}={text}: {piece} resolves to null, which the folder's name would read as None ({whole}); "
                "give it a value"
            )


@functools.cache
def _read_keys() -> frozenset[str]:
    """The top-level keys cnnpl reads: its config's own and its groups' (``data``, ``model``, ...)."""
    from omegaconf import OmegaConf

    base = OmegaConf.load(config_dir() / f"{CONFIG_NAME}.yaml")
    groups = {str(next(iter(entry))) for entry in base.get("defaults", []) if isinstance(entry, Mapping)}
    return frozenset({str(key) for key in base} | groups)


def _interpolated(items: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """The dotted keys (``a.b[0]``) and texts of the settings among ``items`` (key and value pairs, nested
    mappings and lists) whose values have a ``${...}``."""
    for key, value in items:
        dotted = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, str) and "${" in value:
            yield dotted, value
        elif isinstance(value, Mapping):
            yield from _interpolated(value.items(), dotted)
        elif isinstance(value, list):
            yield from _interpolated(enumerate(value), dotted)


def _check_resolves(cfg: Any, key: str, text: str, alone: bool = False, at: str | None = None) -> None:
    """Refuse ``cfg``'s ``key`` (written ``text``; found at ``at`` if given) where its interpolation cannot be
    resolved now, nor in the run.
    Left to the run: Hydra's run-time values (``${hydra:runtime.output_dir}``, and ``${hydra.sweep.dir}`` in a
    job composed without Hydra's settings) and a ``???`` (the checks that name it). With ``alone`` (a setting of
    Hydra's read before the config is composed: a key of the config, a plugin's resolver or ``${oc.select:...}``
    may yet resolve it) only an environment variable not set is refused. A folder of Hydra's that resolves to
    null is refused too."""
    from hydra.core.utils import setup_globals
    from omegaconf import OmegaConf
    from omegaconf.errors import (
        InterpolationKeyError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
        UnsupportedInterpolationType,
    )

    setup_globals()  # Hydra's now resolver (registered again when Hydra starts)
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    try:
        value = OmegaConf.select(cfg, at or key, throw_on_resolution_failure=True)
    except InterpolationKeyError as err:
        missing = re.search(r"key '([^']*)'", str(err))
        if alone or missing is None:
            return
        if missing.group(1).split(".")[0].split("[")[0] == "hydra":  # Hydra's own: set as it runs, unless misspelt
            reason = _unknown_hydra_key(str(err))  # (${hydra.job.nme}: Hydra's traceback; helper-156)
            if reason is None:
                return
        else:
            reason = f"the config has no setting {_absolute_key(missing.group(1), key, text)} to take its value from"
    except UnsupportedInterpolationType as err:
        if alone:
            return
        name = first_line(str(err)).rpartition(" ")[2]
        reason = f"no resolver is named {name} (oc.env reads an environment variable, now the time: ${{now:%H-%M}})"
    except InterpolationToMissingValueError:
        return
    except InterpolationResolutionError as err:
        message = first_line(str(err))
        variable = re.search(r"Environment variable '([^']*)' not found", message)
        if variable is not None:
            name = variable.group(1)
            reason = f"environment variable {name} is not set; set it, or give a default: ${{oc.env:{name},<value>}}"
        elif alone or "HydraConfig was not set" in message:
            return
        else:
            reason = message
    else:
        if value is None and not alone and key in ("hydra.run.dir", "hydra.sweep.dir"):
            raise CnnplError(f"{key}={text} resolves to null, and {key} names a folder; give a path")
        return
    raise CnnplError(f"{key}={text}: {reason}")


def _absolute_key(missing: str, key: str, text: str) -> str:
    """The key an interpolation in setting ``key`` (written ``text``) names, where OmegaConf's message says
    ``missing``: ``${.nope}`` in ``logger.name`` is ``logger.nope`` (the message says ``nope``)."""
    relative = re.search(r"\$\{(\.+)" + re.escape(missing.lstrip(".")) + r"\}", text)
    dots = len(relative.group(1)) if relative else 0
    if not dots:
        return missing
    parts = key.split(".")[:-1]
    parts = parts[: max(len(parts) - (dots - 1), 0)]
    return ".".join([*parts, missing.lstrip(".")])


def _check_config_name(args: list[str]) -> None:
    """Refuse ``--config-name`` / ``-cn`` naming no config of cnnpl's ``conf/`` when no folder of one's own is
    given (``--config-dir`` / ``--config-path``): Hydra's "Cannot find primary config" came with its search path,
    several lines (helper-141)."""
    from cnnpl.config import config_dir

    def value_of(names: tuple[str, ...]) -> str | None:
        found = None
        for i, arg in enumerate(args):
            name, sep, value = arg.partition("=")
            if name in names:
                found = value if sep else (args[i + 1] if i + 1 < len(args) else None)
        return found

    folder = value_of(("--config-dir", "-cd"))
    if folder is not None and folder.startswith("~"):  # --config-dir=~/cfg: the shell expands no ~ after =
        raise CnnplError(
            f"--config-dir {folder}: Hydra does not expand ~; write --config-dir {folder} with a space instead of = "
            "(the shell expands it then), or the whole path"
        )
    if folder is not None and not Path(folder).is_dir():  # Hydra's "Additional config directory ..." and a hint
        raise CnnplError(f"--config-dir {folder}: no such folder; give the folder that holds your configs")
    name = value_of(("--config-name", "-cn"))
    if name is None or value_of(("--config-dir", "-cd", "--config-path", "-cp")) is not None:
        return
    stem = name.removesuffix(".yaml")
    if Path(stem).expanduser().is_absolute():  # helper-143: Hydra's "Cannot find primary config" and its search path
        folder, leaf = Path(stem).expanduser().parent, Path(stem).name
        raise CnnplError(
            f"--config-name {name} is a path; give its folder and its name apart: --config-dir {folder} "
            f"--config-name {leaf}"
        )
    group, _, option = stem.rpartition("/")
    if group and (config_dir() / group / f"{option}.yaml").is_file():  # experiment/pooling_study: an option
        raise CnnplError(
            f"--config-name {name} is an option of {group}, not a whole config; choose it: {group}={option}"
        )
    if not (config_dir() / f"{stem}.yaml").is_file():
        options = ", ".join(sorted(path.stem for path in config_dir().glob("*.yaml")))
        raise CnnplError(
            f"--config-name {name}: cnnpl's configs have no {stem}.yaml (its own: {options}); for a config of your "
            f"own, give its folder too: --config-dir <folder> --config-name {stem}"
        )


def _new_named_run_dir(args: list[str]) -> tuple[Path, tuple[Path, ...]] | None:
    """The folder ``hydra.run.dir=`` names, with the folders above it that are not there either (absolute,
    innermost first), when this command is the one to make it: a single run that runs something, in the first
    process. None otherwise. Read before :func:`_check_run_dir` makes it to see that it can write there."""
    from cnnpl.distributed import is_worker, launcher_world_size

    given = _literal_folders(args, "hydra.run.dir")
    if (
        not given
        or {"-m", "--multirun"} & set(args)
        or any(arg.startswith("-") for arg in args)
        or is_worker()
        or launcher_world_size() > 1
    ):
        return None
    folder = given[-1].absolute()  # as check_writable and Hydra take it (a ~ is a folder's name there)
    if not _absent(folder):
        return None
    return folder, tuple(itertools.takewhile(_absent, folder.parents))


def _check_shared_run_dir(args: list[str], setting: str | None) -> None:
    """Refuse, before Hydra makes it, a run folder named by the time in processes torchrun / srun started
    (:func:`cnnpl.distributed.check_shared_run_dir`). ``setting``: the config's (:func:`_check_composes`'s;
    None for a sweep or a flag, which run nothing here)."""
    if setting is None:
        return
    from cnnpl.distributed import check_shared_run_dir

    given = given_values(args, "hydra.run.dir")
    check_shared_run_dir(given[-1] if given else setting)


def _warn_single_callback(args: list[str]) -> None:
    """Warn when ``callbacks=<one callback>`` replaces the whole set: ``--help`` lists each registered
    callback as an option of ``callbacks``, and ``callbacks=gradcam`` reads like "add Grad-CAM", but the
    run then has no checkpoint callback (nothing to resume, the test takes the last weights) and no
    learning-rate monitor (Lightning adds its own progress bar). A set of callbacks (``default``,
    ``minimal``, ``full``) or a list is what was meant."""
    from cnnpl.config import callback_sets
    from cnnpl.distributed import is_worker
    from cnnpl.registry import LazyBuiltin, get_registry

    if SHOW_FLAGS & set(args) or is_worker():  # a DDP process re-running the command: the first one warned
        return
    from cnnpl.listing import set_callbacks

    sets = callback_sets()
    default = set_callbacks("default")
    registry = get_registry("callback")
    for arg in args:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") == "callbacks" and sep and value.replace(" ", "") in ("[]", "null"):  # (helper-130)
            print(
                f"cnnpl: warning: callbacks={value} leaves the run without callbacks: no checkpoints (the run cannot "
                "be resumed, and the test takes the last weights) and no learning-rate log; callbacks=minimal keeps "
                "those, without pictures",
                file=sys.stderr,
            )
            continue
        if key.lstrip("+") == "callbacks" and value.startswith("[") and value.endswith("]") and "]," not in value:
            _check_held_callback(value, sets, args)  # (not a sweep over lists, [a,b],[c]: each job its own; helper-134)
        if key.lstrip("+") != "callbacks" or not sep or value in sets or value not in registry.names():
            continue
        chosen = registry.get(value)
        if not isinstance(chosen, LazyBuiltin) and isinstance(chosen, type):  # a plugin's own checkpoint callback
            from lightning.pytorch.callbacks import ModelCheckpoint

            if issubclass(chosen, ModelCheckpoint):
                continue
        if value in default:  # callbacks=[default,gradcam] would reset the default's gradcam settings to its own
            advice = f"the default set already has {value}: leave callbacks= out, and set callbacks.{value}.<setting>="
        else:
            advice = f"to add {value} to the default set write callbacks=[default,{value}]"
        print(
            f"cnnpl: warning: callbacks={value} replaces the run's callbacks with {value} alone: no checkpoints (the "
            f"run cannot be resumed, and the test takes the last weights) and no learning-rate log; {advice}",
            file=sys.stderr,
        )


def _check_held_callback(value: str, sets: set[str], args: list[str]) -> None:
    """Warn when a list names a callback after a set that already holds it (``callbacks=[default,gradcam]``):
    Hydra merges the callback's own option over the set's entry, so its defaults replace the set's
    (Grad-CAM every epoch instead of every 5), which reads like "add Grad-CAM" but is not. Settings the
    command line gives (``callbacks.gradcam.every_n_epochs=5``) are not named. Named before such a set
    (``callbacks=[gradcam,default]``, ``[default,gradcam,full]``) it is refused: the set's entry merged over
    the registered one's builds neither (helper-130: "got multiple values for argument 'every_n_epochs'")."""
    from cnnpl.config import callback_config
    from cnnpl.listing import set_entries
    from cnnpl.registry import get_registry

    registered = get_registry("callback").names()
    words = [part.strip().strip("'\"") for part in value[1:-1].split(",")]  # Hydra unquotes "gradcam" too
    entries = {word: set_entries(word) for word in dict.fromkeys(words) if word in sets}
    for position, word in enumerate(words):
        named = [w for w in words[:position] if w not in sets and w in registered]
        if word in entries and (before := [name for name in named if name in entries[word]]):
            kept = _sets_kept([w for w in words if w in sets], entries) + [
                w for w in words if w not in sets and not any(w in held for held in entries.values())
            ]
            fixed = kept[0] if len(kept) == 1 else f"[{','.join(dict.fromkeys(kept))}]"
            raise CnnplError(
                f"callbacks={value}: the {word} set holds {', '.join(before)} too, and a set named after a callback "
                f"merges its entry over that callback's; write callbacks={fixed} (callbacks.{before[0]}.<setting>= "
                f"changes the set's {before[0]})"
            )
    held: dict[str, tuple[str, dict]] = {}  # callback -> (the set that holds it, the set's settings)
    for word in words:
        if word in entries:
            held.update({name: (word, node) for name, node in entries[word].items()})
        elif word in held and word in registered:
            owner, in_set = held[word]
            own = callback_config(word)[word]
            changed = [
                f"{key}={_brief(own[key])} where {owner} has {_brief(in_set[key])}"
                for key in own
                if not key.startswith("_")
                and key in in_set
                and own[key] != in_set[key]
                and not given_values(args, f"callbacks.{word}.{key}")
            ]
            if changed:
                print(
                    f"cnnpl: warning: callbacks={value}: the {owner} set already holds {word}, and naming it after "
                    f"the set puts {word}'s own defaults over the set's ({', '.join(changed)}); to change the "
                    f"set's {word}, leave it out of the list and write callbacks.{word}.<setting>=",
                    file=sys.stderr,
                )


def _sets_kept(named: list[str], entries: dict[str, dict]) -> list[str]:
    """The sets of a list that change what it builds: one that a later set merges over unchanged is left out
    (``[default,full]`` builds what ``full`` does; ``[full,default]`` puts default's settings back, both stay)."""
    from omegaconf import OmegaConf

    named = list(dict.fromkeys(named))
    return [
        name
        for i, name in enumerate(named)
        if not any(OmegaConf.merge(entries[name], entries[later]) == entries[later] for later in named[i + 1 :])
    ]


def _brief(value: Any) -> str:
    """A setting's value in a warning: the value itself, a mapping or list by its size (hparams' ``params``)."""
    if isinstance(value, Mapping):
        return f"a mapping of {len(value)} key{'s' * (len(value) != 1)}"
    if isinstance(value, list) and len(yaml_word(value)) > 40:
        return f"a list of {len(value)}"
    return yaml_word(value)


# Hydra's own config groups, chosen with hydra/<group>=<option> (hydra.launcher=joblib replaced the group's settings
# with a word); hydra.run, hydra.sweep, hydra.job are settings (helper-143)
HYDRA_GROUPS = frozenset(
    f"hydra.{group}"
    for group in ("launcher", "sweeper", "job_logging", "hydra_logging", "help", "hydra_help", "env", "output")
)
SHOW_FLAGS = {"--help", "-h", "--cfg", "-c", "--resolve"}  # print the config instead of running
CFG_PARTS = {"job", "hydra", "all"}  # what --cfg prints
INFO_FLAGS = {"--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc"}  # Hydra's, which run nothing


INFO_PARTS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")  # what --info prints


def _check_info(args: list[str]) -> None:
    """Refuse an ``--info`` part Hydra does not print (``--info foo``, or an override after it, ``--info
    model=vgg16``, which argparse reads as the part): Hydra's usage, eight lines, under the name ``__main__.py``."""
    for i, arg in enumerate(args):
        flag, sep, part = arg.partition("=")
        if flag not in ("--info", "-i") or "--" in args[:i]:
            continue
        if not sep:
            if i + 1 == len(args) or args[i + 1].startswith("-"):
                continue  # --info alone: all
            part = args[i + 1]
        if part not in INFO_PARTS:
            override = "=" in part or part.startswith(("+", "~"))  # ~callbacks.progress_bar (helper-155)
            after = f"; give the overrides after the part: {flag} all {part}" if override else ""
            raise CnnplError(
                f"{flag} takes {', '.join(INFO_PARTS[:-1])} or searchpath (all if none), got {part!r}{after}"
            )


def _package(args: list[str]) -> tuple[str | None, list[str]]:
    """The ``--package`` (``-p``) of ``args``, and ``args`` without it: it only chooses what ``--cfg`` prints."""
    for i, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if flag in ("--package", "-p") and "--" not in args[:i]:
            if sep:
                return value, [*args[:i], *args[i + 1 :]]
            if i + 1 < len(args):
                return args[i + 1], [*args[:i], *args[i + 2 :]]
    return None, args


def _check_package(package: str, args: list[str], overrides: list[str], own: list[str]) -> None:
    """Refuse a ``--package`` that names no node of what ``--cfg`` prints (``--cfg job --package pol``): Hydra's
    ``package 'pol' not found in config``, with nothing on what it has; and one Hydra cannot print, which it
    reports the same way: a value that is null, ``???`` (``hydra.job.num``) or filled as the run starts
    (``output_dir``), or that cannot be resolved (``${nope}``: a traceback)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    part = next((args[i + 1] for i, arg in enumerate(args[:-1]) if arg in ("--cfg", "-c")), None)
    if part not in CFG_PARTS or package == "_global_":
        return
    cfg = compose_plain([*overrides, *own], output_dir=None, hydra=part != "job")
    if part == "hydra":
        cfg = OmegaConf.create({"hydra": cfg.hydra})
    missing = object()
    above, _, leaf = package.rpartition(".")
    advice = f"show the node it is in: --package {above}" if above else f"leave --package out: --cfg {part} shows it"
    try:
        value = OmegaConf.select(cfg, package, default=missing, throw_on_missing=True)
    except MissingMandatoryValue:  # hydra.job.num (helper-155: said missing, and listed it)
        value = "???"
    except Exception as err:  # ${nope} (helper-155: a traceback); ${hydra:runtime.output_dir}: filled as it runs
        node = OmegaConf.select(cfg, above) if above else cfg
        raw = OmegaConf.to_container(node, resolve=False).get(leaf) if isinstance(node, DictConfig) else None
        if "${hydra:" in str(raw):
            why = "is filled only as the run starts, and Hydra reports such a package as not found"
        else:
            why = f"cannot be resolved ({first_line(err)}), which Hydra does to what --package picks"
        raise CnnplError(f"--package {package}: its value, {raw}, {why}; {advice}") from None
    if value is None or value == "???":
        raise CnnplError(
            f"--package {package}: its value is {yaml_word(None) if value is None else value}, and Hydra reports "
            f"such a package as not found; {advice}"
        )
    if value is not missing:
        return
    parent, node = "", cfg
    for key in package.split("."):
        child = node.get(key) if isinstance(node, DictConfig) else None
        if not isinstance(child, DictConfig):
            break
        parent, node = f"{parent}{key}.", child
    keys = ", ".join(f"{parent}{key}" for key in node) if isinstance(node, DictConfig) else ""
    printed = {"job": "the run's config", "hydra": "Hydra's config", "all": "the config"}[part]
    hydras = " (Hydra's own settings: --cfg hydra)" if part == "job" and package.split(".")[0] == "hydra" else ""
    raise CnnplError(f"--package {package}: {printed} has no {package}{hydras}; give one of its keys: {keys}")


def _check_composes(args: list[str]) -> str | None:
    """Compose the config once before Hydra does, so that an unknown option or key is one line; returns
    a run's ``hydra.run.dir`` setting as the config sets it, uninterpolated (None for a sweep or a flag).

    Hydra would print its own error over several lines (exit status 1), or a traceback for
    ``--help``. A run (and each job of a sweep) also has its components' settings checked: a value
    still ``???`` or a word for a number. ``--help`` and ``--cfg job`` only compose (they show
    what is missing); other flags (``--config-name``, ``--info``, ...) are left to Hydra. A sweep
    (``-m``) is composed once per value of each swept setting (the others at their first value), as
    far as its values are plain words, numbers or lists. Hydra's own settings (``hydra.*``,
    ``hydra/...``) are composed with a run's config (:func:`_check_hydra_settings`), a sweep's are left to Hydra.
    """
    for i, arg in enumerate(args[:-1]):
        if arg in ("--cfg", "-c") and args[i + 1] not in CFG_PARTS:  # Hydra: "Error parsing override 'jobb'"
            raise CnnplError(f"{arg} takes job (the run's config), hydra or all, got {args[i + 1]!r}")
    _check_info(args)
    package, args = _package(args)
    words = [
        arg
        for i, arg in enumerate(args)
        if arg != "--"  # argparse's end of options: Hydra reads the overrides after it as before it
        and not (arg in CFG_PARTS and i and args[i - 1] in ("--cfg", "-c"))
    ]
    flags = {arg for arg in words if arg.startswith("-")}
    if flags - {"-m", "--multirun"} - SHOW_FLAGS:
        return None
    showing = bool(flags & SHOW_FLAGS)
    multirun = bool(flags & {"-m", "--multirun"})
    if showing and multirun and (flags & {"--cfg", "-c"} or has_sweep(words)):  # Hydra would print a traceback
        shown = sorted(flags & SHOW_FLAGS)[0]
        raise CnnplError(
            f"{shown} shows one run's config and cannot be combined with -m: drop -m and give one value of each "
            "swept setting (pool=max,avg -> pool=max) to see that job's"
        )
    overrides = config_overrides(words)
    own = [arg for arg in words if not arg.startswith("-") and arg not in overrides]  # Hydra's settings
    if own:  # composed by Hydra alone, but read now: a value it cannot parse would be its several lines
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            OverridesParser.create().parse_overrides(own)
        except Exception as err:
            raise CnnplError(one_line_composition_error(err, own)) from None
    plain_run = not (showing or multirun)
    # hydra.rundir=/x, hydra.job.chdir=maybe: Hydra's several lines; +hydra.run.dirr: kept, never read. (The folders
    # alone, the usual ones, are checked where they are made.)
    if not multirun and any(arg.partition("=")[0] not in ("hydra.run.dir", "hydra.output_subdir") for arg in own):
        _check_hydra_settings(overrides, own)
    if multirun and not showing:
        check_sweeper_params([arg for arg in overrides if not has_sweep([arg])], own)
    if multirun and not showing and any(not arg.lstrip("+").startswith("hydra.sweep.") for arg in own):
        # helper-141: -m hydra/launcher=joblib was Hydra's several lines: composed with the settings that sweep nothing
        # (a Hydra setting swept, hydra.job.chdir=true,false, is Hydra's to refuse: "Sweeping over Hydra's configuration
        # is not supported"; helper-143)
        _check_hydra_settings(
            [arg for arg in overrides if not has_sweep([arg])], [arg for arg in own if not has_sweep([arg])]
        )
    if multirun and not showing:
        check_sweep_values(overrides, own)
        from cnnpl.distributed import check_sweep_job, launcher_world_size

        if launcher_world_size() > 1:  # every job's: not named after the first job (helper-135)
            check_sweep_job({})
        given, overrides = overrides, [*overrides, *config_sweeps(overrides)]
    # every job composed before any is checked: a misspelt option in a later job is named before the first
    # job's data is looked for
    composed = []
    for variant, job in sweep_variants(overrides) if multirun else [(overrides, "")]:
        with _naming_the_job(variant, job):
            cfg = compose_plain(variant, hydra=plain_run)  # a run's hydra.run.dir: _claim_new_folder's
            composed.append((variant, job, cfg))
    if plain_run:  # before a run's checks: a config's sweep may set what its config leaves unfit for one run
        from hydra.types import RunMode

        if cfg.hydra.mode == RunMode.MULTIRUN:
            raise _ConfigSweeps
    folder_key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    folder = next(((folder_key, value) for value in reversed(given_values(own, folder_key))), None)
    if multirun and not showing:
        check_a_checkpoint_folder_each(composed, own)
        check_sweep_subdir(composed, given, own)
    for variant, job, cfg in composed if not showing else []:
        with _naming_the_job(variant, job):
            _check_components(cfg, variant)
            _check_interpolations(cfg, variant, folder)
            if multirun:  # a run checks these itself, before it builds anything; a sweep's later jobs too late
                _check_job(cfg, variant)
            else:  # and now, before Hydra writes the run's record (.hydra/) for a run it then refuses
                _check_settings(cfg, variant)
    if folder is not None and "${" in folder[1] and not showing:  # with the (first job's) config, its plugins loaded
        _check_folder_resolves(composed[0][2], *folder)
    if package is not None and showing:
        _check_package(package, args, overrides, own)
    if not plain_run:
        return None
    from omegaconf import OmegaConf

    warn_unrun_sweep(cfg, words)
    setting = OmegaConf.to_container(cfg.hydra.run, resolve=False).get("dir")
    return setting if isinstance(setting, str) else None


def _check_hydra_settings(overrides: list[str], own: list[str]) -> None:
    """Compose Hydra's own settings of a run (``hydra.*``) with its config, so that a misspelt key or a value of the
    wrong kind is one line; and refuse a key added with ``+`` that is close to one Hydra has (``+hydra.run.dirr``:
    Hydra keeps it and never reads it). A key added to a mapping of one's own (``+hydra.job.env_set.X=1``) is kept."""
    import difflib

    from omegaconf import DictConfig, OmegaConf

    for arg in own:  # hydra.launcher=joblib: "Input config does not have a `_target_` field" when Hydra starts
        key, _, value = arg.lstrip("+").partition("=")
        if key in HYDRA_GROUPS and not value.lstrip().startswith("{"):
            group = key.replace(".", "/")
            raise CnnplError(
                f"{arg}: {key} holds the settings of Hydra's {group} group; choose one of its options with "
                f"{group}={value} (python -m cnnpl --hydra-help lists them)"
            )
    try:
        cfg = compose_plain([*overrides, *own], hydra=True)
    except Exception as err:
        check_sweeper_params(overrides, own)
        raise CnnplError(one_line_composition_error(err, own)) from None
    added = [arg for arg in own if arg.startswith("+hydra.")]
    if not added:
        return
    before = compose_plain([*overrides, *(arg for arg in own if arg not in added)], hydra=True)
    for arg in added:
        dotted = arg[1:].partition("=")[0]
        parent, _, leaf = dotted.rpartition(".")
        node = OmegaConf.select(before, parent, default=None)
        if not isinstance(node, DictConfig) or leaf in node or OmegaConf.get_type(node) in (dict, None):
            continue  # a mapping of one's own (hydra.job.env_set): any key is read
        close = difflib.get_close_matches(leaf, [str(key) for key in node], n=1)
        if close and OmegaConf.select(cfg, dotted, default=None) is not None:
            raise CnnplError(
                f"{arg!r} adds {dotted}, which Hydra never reads; did you mean {parent}.{close[0]}? (written without "
                f"the +: {parent}.{close[0]}=...)"
            )


@contextlib.contextmanager
def _naming_the_job(variant: list[str], job: str) -> Iterator[None]:
    """Hydra's and OmegaConf's composition errors, and the components' checks, as one line naming the sweep's job."""
    try:
        yield
    except Exception as err:
        message = str(err) if isinstance(err, CnnplError) else one_line_composition_error(err, variant)
        raise CnnplError(f"{message} (in the sweep's job with {job})" if job else message) from shown_cause(err)


def _check_components(cfg: DictConfig, overrides: list[str]) -> None:
    """The checks of the components' settings that need nothing built (:func:`cnnpl.config.layer_factory`);
    ``overrides``: the command line's, which composed ``cfg``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    from cnnpl.config import check_callback_values, chosen_experiment, experiment_leftovers, layer_factory
    from cnnpl.errors import UnknownComponentError

    load_plugins(cfg.get("plugins") or [])  # as train() does: a config file may name plugins of its own
    for family in ("model", "conv", "pool", "norm", "act"):
        if cfg.get(family):
            try:
                layer_factory(family, cfg[family])
            except InterpolationResolutionError:  # ${hydra:runtime.cwd}: Hydra sets it only for the run
                continue
            except UnknownComponentError as err:  # a setting the chosen component does not take
                settings = [f"{family}.{key}" for key in getattr(err, "unknown", ())]
                advice = experiment_leftovers(settings, overrides, chosen_experiment(overrides))
                if advice:
                    raise CnnplError(f"{err} ({advice})") from None
                raise
    if cfg.get("callbacks"):
        from cnnpl.checks import check_filled

        with contextlib.suppress(InterpolationResolutionError):  # ${hydra:...}: left to the run
            for name, node in cfg.callbacks.items():  # a required setting still ??? first: named as missing
                check_filled(node, f"callbacks.{name}", f"callback {name!r}")
            check_callback_values(OmegaConf.to_container(cfg.callbacks, resolve=True))


def _check_settings(cfg: DictConfig, overrides: list[str]) -> None:
    """The checks of a run's settings that need nothing built and nothing of Hydra's run (the settings'
    kinds, the optimizer's and the schedule's); a setting that needs Hydra's run-time values is left to
    the run, which checks them all again. ``overrides``: the command line's, for the messages' advice."""
    from omegaconf.errors import InterpolationResolutionError

    from cnnpl.train import check_settings, checked_optimizer, checked_schedule

    with _command_line(overrides):
        for check in (check_settings, checked_optimizer, checked_schedule):
            try:
                check(cfg)
            except InterpolationResolutionError:
                continue


@contextlib.contextmanager
def _command_line(overrides: list[str]) -> Iterator[None]:
    """The checks' messages see the command line's ``overrides`` (:data:`cnnpl.checks.COMMAND_LINE`)."""
    from cnnpl.checks import COMMAND_LINE

    token = COMMAND_LINE.set(overrides)
    try:
        yield
    finally:
        COMMAND_LINE.reset(token)


def _check_job(cfg: DictConfig, overrides: list[str]) -> None:
    """The checks a run makes of its settings before it builds the network (:func:`cnnpl.train.check_settings`,
    the data module's, the optimizer's and the schedule's), and of its network where the data's shape is
    known without loading it (:func:`cnnpl.train.check_network_shape`), for one job of a sweep: a bad
    value in a later job is then refused before the first job trains. A setting that needs Hydra's
    run-time values (``${hydra:...}``) is left to the job. (Not for a single run: its data module and
    weights may need Hydra's run-time state or folder, ``hydra.job.chdir=true`` with relative paths.)"""
    from omegaconf.errors import InterpolationResolutionError

    from cnnpl.distributed import check_sweep_job
    from cnnpl.train import check_network_shape, checked_datamodule

    check_sweep_job(cfg.get("trainer") or {})  # a multi-process job: Hydra would have made the sweep's folder
    _check_settings(cfg, overrides)
    try:
        datamodule = checked_datamodule(cfg)
    except InterpolationResolutionError:
        return
    check_network_shape(cfg, datamodule)


def _literal_folders(args: list[str], key: str) -> list[Path]:
    """The folders ``args`` give ``key``: as written, or resolved where an interpolation names the same folder
    whenever it is read (``${oc.env:RUNDIR}``); not those named by the time (``${now:...}``: Hydra reads it
    when it makes the folder) or by other settings."""
    values = [value for value in given_values(args, key) if value and NEW_EACH_TIME not in value]
    return [folder for folder in map(_folder_named, values) if folder is not None]


def _folder_named(setting: str) -> Path | None:
    """The folder a ``hydra.run.dir`` / ``hydra.sweep.dir`` setting names now: as written, or with its
    interpolations resolved (``${oc.env:RUNDIR}``, ``${now:%Y-%m-%d}/myrun``); None where it reads other
    settings (``${model.name}``), which only the composed config gives, or names none."""
    if "${" not in setting:
        return Path(setting) if setting else None
    from hydra.core.utils import setup_globals
    from omegaconf import OmegaConf

    setup_globals()  # Hydra's now resolver (registered again when Hydra starts)
    try:
        resolved = OmegaConf.create({"folder": setting}).folder
    except Exception:
        return None
    return Path(str(resolved)) if isinstance(resolved, str) and resolved else None


def _prints_only(arg: str) -> bool:
    """Whether ``arg`` is a flag with which Hydra prints and runs nothing (``--cfg job``, ``-cjob``, ``--info``)."""
    return arg.partition("=")[0] in SHOW_FLAGS | INFO_FLAGS or (arg[:2] == "-c" and arg[2:] in CFG_PARTS)


def _fixed_folder(setting: str | None) -> Path | None:
    """The folder a ``hydra.run.dir`` / ``hydra.sweep.dir`` setting names, unless it has an interpolation
    (``${now:...}``: Hydra's to resolve) or there is none."""
    return Path(setting) if setting and "${" not in setting else None


def _check_run_dir(args: list[str]) -> None:
    """Refuse an unwritable ``hydra.run.dir=`` (``hydra.sweep.dir=`` with ``-m``) now: Hydra would fail
    on it with a traceback. A folder with an interpolation (``${now:...}``) is left to Hydra; so is any
    folder of a command that runs nothing (``--help``, ``--cfg job``, ``--info``: the check makes the folder)."""
    from cnnpl.train import check_writable

    if any(_prints_only(arg) for arg in args):
        return  # (--cfg=job and -cjob too; -cd / -cn, the config's folder and name, run as usual: checked then)
    option = "hydra.sweep.dir" if {"-m", "--multirun"} & set(args) else "hydra.run.dir"
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        given = [value.strip().strip("'\"").strip() for value in given_values(args, key)]
        if given and given[-1].startswith("~"):  # helper-127: quoted, a folder named ~ in the working directory
            raise CnnplError(f"{key}={given[-1]}: {tilde_folder_advice(key, given[-1])}")
        if given and not given[-1]:  # helper-127: it ran in the working directory
            raise CnnplError(
                f"{key} is empty, which Hydra takes for the working directory, where a run's checkpoints, logs and "
                f".hydra/ would lie among its files; give a folder ({key}=<folder>), or leave {key} out"
            )
    ckpt_path = ([None, *given_values(args, "ckpt_path")])[-1]
    for folder in _literal_folders(args, option):
        check_writable(folder, option, ckpt_path)


def _check_resume_dir(args: list[str]) -> None:
    """Refuse ``ckpt_path=last`` (a single run, training or ``fit=false``) before Hydra makes its run directory when
    that directory holds no ``checkpoints/last*.ckpt``: one named by the time (Hydra's default) is a new folder.
    The folder is the one Hydra will make (``${now:...}`` read now). Left to the run: a checkpoint folder or
    ``output_dir`` of its own (the command line's or a config file's), a folder named through another
    interpolation, and commands that do not compose (Hydra's error)."""

    words = [arg for arg in args if arg != "--"]
    ckpt_paths = given_values(words, "ckpt_path")
    if not ckpt_paths or ckpt_paths[-1] != "last" or any(arg.startswith("-") for arg in words):
        return  # nothing to resume; a sweep (_check_sweep_dir), or --help / --cfg (nothing runs)
    from omegaconf import OmegaConf

    try:
        composed = compose_plain(words, output_dir=None, hydra=True)
    except Exception:  # _check_composes has said why, or Hydra will
        return
    cfg = OmegaConf.to_container(composed, resolve=False)
    setting = cfg["hydra"]["run"].get("dir")
    checkpoint = (cfg.get("callbacks") or {}).get("checkpoint") or {}
    if (
        cfg.get("output_dir") != "${hydra:runtime.output_dir}"
        or checkpoint.get("dirpath") != "${output_dir}/checkpoints"
        or not isinstance(setting, str)
        or "${" in re.sub(r"\$\{now:[^}]*\}", "", setting)
    ):
        return
    from cnnpl.checkpoint import LAST, resolve_ckpt_path

    run_dir = Path(str(OmegaConf.select(composed, "hydra.run.dir")))  # the time now, as Hydra will read it
    resolve_ckpt_path(LAST, run_dir / "checkpoints", fit=cfg.get("fit") is not False)  # the run's own message


def _keep_earlier_records(args: list[str], sweep_dir: str | None = None) -> list[str]:
    """``hydra.output_subdir=.hydra-N`` when ``hydra.run.dir=`` names a run directory that has a ``.hydra``
    (with ``-m``: when a job folder of the sweep's folder, ``sweep_dir``
    (:func:`cnnpl.sweeps.sweep_dir_setting`), has one).

    Hydra writes its record of a command (``config.yaml``, ``overrides.yaml``) before anything is
    checked; in a run directory given again (to resume, or by mistake) it would replace the first
    command's record even if this command is refused. This one's goes to the next free ``.hydra-N``;
    a sweep's ``multirun.yaml`` is copied to ``multirun-N.yaml`` first.
    """
    if given_values(args, "hydra.output_subdir"):
        return []  # an output_subdir chosen (Lightning's workers: null)
    from cnnpl.distributed import is_worker

    if is_worker():
        # torchrun / srun start every process with this command; the first one's record is this one's. Always,
        # whatever names the folder: a rank that started before the first (another node) wrote .hydra/, and the
        # first took the folder for one given again (.hydra-2; helper-121)
        return ["hydra.output_subdir=null"]
    sweep = bool({"-m", "--multirun"} & set(args))
    run_dir_values = given_values(args, "hydra.run.dir")  # Hydra takes the last
    setting = sweep_dir if sweep else (run_dir_values[-1] if run_dir_values else None)
    # a folder named through an interpolation may be one given again too (${oc.env:RUNDIR}, ${now:%Y-%m-%d}/run)
    top = _folder_named(setting) if setting else None
    if top is None:
        return []
    run_dirs = [path for path in top.iterdir() if path.is_dir()] if sweep and top.is_dir() else [top]
    if not any((run_dir / ".hydra").exists() for run_dir in run_dirs):
        return []
    n = 2
    while any((run_dir / f".hydra-{n}").exists() for run_dir in run_dirs) or (top / f"multirun-{n}.yaml").exists():
        n += 1
    if sweep and (top / "multirun.yaml").is_file():
        import shutil

        shutil.copy2(top / "multirun.yaml", top / f"multirun-{n}.yaml")
    return [f"hydra.output_subdir=.hydra-{n}"]


NEW_EACH_TIME = "${now:"  # a folder named by the time is a new one at each command
# the folder _claim_new_folder made for this command's run, and those above it that it made (outputs/<day>/)
_claimed_run_dir: tuple[Path, tuple[Path, ...]] | None = None


def _claim_new_folder(args: list[str], option: str, setting: str | None) -> tuple[Path, tuple[Path, ...]] | None:
    """Make the folder a run (``option``: ``hydra.run.dir``) or a sweep (``hydra.sweep.dir``) named by the
    time writes to, and return it, or the first of ``<folder>-2``, ``<folder>-3``, ... that does not exist
    yet: two commands started in the same second would otherwise share one folder, and the second would
    write its checkpoints, logs and Hydra's record over the first one's. ``os.mkdir`` either makes a
    folder or fails, so of two processes only one gets each name. Returned with the folders above it that
    did not exist before (``outputs/<day>``; absolute, innermost first). ``setting``: the folder as the config
    sets it (``outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}``); None (nothing to do) when the command line sets
    it, when it is not named by the time alone, when nothing runs (a flag other than ``-m``), and in a
    process a launcher started (torchrun's ranks share the first one's folder, or
    :func:`cnnpl.distributed.check_launch` refuses the time in it)."""

    from cnnpl.distributed import is_worker, launcher_world_size

    if (
        setting is None
        or NEW_EACH_TIME not in setting
        or "${" in re.sub(r"\$\{now:[^}]*\}", "", setting)
        or given_values(args, option)
        or any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in args)
        or is_worker()
        or launcher_world_size() > 1
        or not _hydra_accepts(args)
    ):
        return None
    now = _clock()  # read once: the date and the time of one instant
    folder = Path(re.sub(r"\$\{now:([^}]*)\}", lambda match: now.strftime(match.group(1)), setting))
    from cnnpl.train import check_writable

    made = tuple(itertools.takewhile(_absent, folder.absolute().parents))
    check_writable(folder.parent, option)
    for n in range(1, 1000):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:  # parents: another refused command may have removed the day's folder it had made since
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate, made
    raise CnnplError(
        f"{str(folder)!r} and 998 more folders named after it exist; choose another with {option}=<folder>"
    )


def _absent(path: Path) -> bool:
    """Whether nothing is at ``path``; False where that cannot be known (a folder above it that cannot be read:
    :func:`cnnpl.train.check_writable` refuses it in one line)."""
    try:
        return not path.exists()
    except OSError:
        return False


def _hydra_accepts(args: list[str]) -> bool:
    """Whether Hydra's own settings on the command line (``hydra.job.chdir=...``, ``hydra/launcher=...``) compose
    (a run's were checked by :func:`_check_hydra_settings`, a sweep's are Hydra's to refuse): a command Hydra will
    refuse gets no folder."""
    own = [arg for arg in args if arg.lstrip("+~").startswith(("hydra.", "hydra/"))]
    if all(arg.lstrip("+~").startswith("hydra.searchpath=") for arg in own):
        return True  # composed already
    given = [arg for arg in args if not arg.startswith("-")]
    variants = sweep_variants(given)  # a sweep's first job: a list of values does not compose
    try:
        compose_plain(variants[0][0] if variants else given, hydra=True)
    except Exception:  # Hydra says what is wrong when it composes the same
        return False
    return True


def _clock() -> Any:
    """The time now (``datetime.now()``), as Hydra's ``${now:...}`` reads it."""
    from datetime import datetime

    return datetime.now()


def _check_sweep_dir(args: list[str], sweep_dir: str | None) -> None:
    """Refuse, before Hydra writes anything, a sweep (``-m``) into a fixed ``hydra.sweep.dir`` whose job
    folders hold an earlier sweep's runs or tests of checkpoints, unless it continues the runs (``ckpt_path=last``)
    or only tests (``fit=false``); and a sweep that continues (``ckpt_path=last``) but names no folder with an
    earlier sweep's runs in it. Each job would be refused anyway
    (:func:`cnnpl.checkpoint.check_fresh_run_dir`), but only after Hydra had replaced the earlier sweep's
    ``multirun.yaml`` and its jobs' ``.hydra/`` records. A continued sweep starts the jobs that have no
    checkpoint yet from the beginning (:func:`cnnpl.train.train`)."""
    if not {"-m", "--multirun"} & set(args) or given_values(args, "hydra.sweep.subdir"):
        return
    top = _fixed_folder(sweep_dir)  # sweep_dir: sweep_dir_setting's
    jobs = [job for job in top.iterdir() if job.is_dir()] if top is not None and top.is_dir() else []
    from cnnpl.checkpoint import run_kind

    kinds = {job.name: run_kind(job / "config.yaml") for job in jobs}

    runs = sorted(  # a job folder where a run trained (a fit=false run's config.yaml only tested)
        job.name for job in jobs if kinds[job.name] == "trained" or any((job / "checkpoints").glob("*.ckpt"))
    )
    ckpt_paths = [value for value in given_values(args, "ckpt_path") if value.lower() not in ("", "null")]
    testing = any(value.lower() == "false" for value in given_values(args, "fit"))
    if ckpt_paths and ckpt_paths[-1] == "last" and not testing:
        if runs:
            _check_jobs_resume(args, top)
            return
        if top is not None:
            where = f"{str(top)!r} holds no earlier sweep's runs"
        elif sweep_dir is None or NEW_EACH_TIME in sweep_dir:
            where = "this command names no fixed hydra.sweep.dir (with the time in it, the folder is a new one)"
        else:
            return  # a folder named through an interpolation (an environment variable): left to each job
        raise CnnplError(
            f"ckpt_path=last continues a sweep in its folder, but {where}; give the sweep's own command again "
            "with hydra.sweep.dir=<that sweep's folder> ckpt_path=last"
        )
    if ckpt_paths or testing:
        return  # each job continues from a file, or tests its checkpoints
    if runs:
        raise CnnplError(
            f"hydra.sweep.dir {str(top)!r} already holds an earlier sweep's runs ({_shown(runs)}); to continue that "
            "sweep give its own command again with ckpt_path=last, or sweep into a new folder "
            "(hydra.sweep.dir=<new folder>)"
        )
    # fit=false: each job would be refused, after Hydra had replaced the sweep's records (a dry run's may go)
    tests = sorted(name for name, kind in kinds.items() if kind == "tested")
    if tests:
        raise CnnplError(
            f"hydra.sweep.dir {str(top)!r} holds an earlier sweep's tests of checkpoints (fit=false: {_shown(tests)}); "
            "sweep into a new folder (hydra.sweep.dir=<new folder>), or delete those tests' files first"
        )


def _check_jobs_resume(args: list[str], top: Path | None) -> None:
    """Compare each job of a continued sweep (:func:`cnnpl.sweeps.sweep_jobs`) with the run in its folder
    (``top / "0"``, ...: :func:`cnnpl.checkpoint.check_resume_settings`), before Hydra replaces the sweep's
    ``multirun.yaml`` with this command's and the jobs before a differing one train again: a setting changed (one
    left out, or given another value, for every job or in one swept value) is refused here. A job whose folder holds no
    checkpoint starts from the beginning."""
    from omegaconf import OmegaConf

    from cnnpl.checkpoint import LAST, check_resume_settings, resolve_ckpt_path

    if top is None or any(arg.lstrip("+~").startswith("hydra.sweeper.") for arg in args):
        return  # (helper-132: the sweeper's params from the command line, which the composition here leaves out)
    for number, (job, settings) in enumerate(sweep_jobs(config_overrides([arg for arg in args if arg != "--"]))):
        folder = top / str(number)
        if not any((folder / "checkpoints").glob("last*.ckpt")) or not (folder / "config.yaml").is_file():
            continue  # the job starts from the beginning, or its folder is not where its checkpoints are
        try:
            cfg = compose_plain(job, output_dir=None, hydra=True)
        except Exception:  # _check_composes has said why
            return
        subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("subdir")
        if subdir != "${hydra.job.num}" or cfg.get("fit") is False:
            return  # job folders named otherwise, or only testing
        checkpoint = resolve_ckpt_path(LAST, folder / "checkpoints")
        with _naming_the_job(job, settings):  # the job's config, as its config.yaml holds it: no hydra node
            check_resume_settings(  # (the job warns itself of a config.yaml it cannot compare with)
                checkpoint, OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), warn=False
            )


def _shown(jobs: list[str]) -> str:
    """The first job folders of a sweep, for a message."""
    return ", ".join(f"{name}/" for name in jobs[:3]) + (" ..." if len(jobs) > 3 else "")


def _log_through_hydra() -> None:
    """Print each Lightning log line once, through Hydra's handlers (console and the run's log file).

    Lightning gives its loggers a console handler of their own; under Hydra, whose root handler
    prints too, every line would appear twice.
    """
    import logging

    import lightning.pytorch  # noqa: F401  (attaches Lightning's handlers, which are removed here)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


def run(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and return ``test/acc`` (what a sweeper would optimise)."""
    from cnnpl.train import train

    _log_through_hydra()
    started = time.time()
    record, before = _extra_record()
    others = _OthersThanLightning()
    logging.getLogger().addHandler(others)
    try:
        try:
            metrics = train(cfg)
        except (OSError, RuntimeError, MemoryError) as err:  # a full disk under a log, no memory: 40-140 lines
            said = _stopped_by_the_machine(err, Path(str(cfg.get("output_dir", "."))))
            if said is None:
                raise
            raise CnnplError(said) from err  # HYDRA_FULL_ERROR=1 shows the traceback
    except CnnplError as err:
        import shutil

        if record is not None and before is not None and _written(record.parent, record) == before:
            shutil.rmtree(record, ignore_errors=True)
        folder = _unused_new_folder(lightning_only=others.count == 0)
        if folder is not None and _claimed_run_dir is not None:
            shutil.rmtree(folder, ignore_errors=True)
            for above in _claimed_run_dir[1]:  # outputs/<day>/ where the command made it, unless another uses it
                try:
                    above.rmdir()
                except OSError:
                    break
        elif others.count:  # the folder stays, and this command wrote to its log: which says why it stopped
            to_run_log(f"cnnpl: error: {err}")
        fail(err)
    except Exception as err:  # a bug, or a plugin's or one's own code failing: Hydra prints the traceback on stderr,
        # and the run's log, which ended at the line before, says why the run stopped too
        with contextlib.suppress(Exception):  # (an error whose str() fails: Hydra's to show, not this line's)
            rank = _process_rank()
            where = f" on rank {rank}" if rank is not None else ""
            to_run_log(
                f"cnnpl: the run stopped on an error{where}{_other_processes_logs(started)}: {_headline(err)}", err
            )
        raise
    finally:
        logging.getLogger().removeHandler(others)
    return metrics.get("test/acc")


def _headline(err: BaseException) -> str:
    """``RuntimeError: <its first line>``; a message that ends where its cause says why (Hydra's "Error in call to
    target 'x':") goes on with the cause's."""
    line = first_line(err)
    said = f"{type(err).__name__}: {line}" if line else type(err).__name__
    if err.__cause__ is not None and (not line or line.endswith(":")):
        said = f"{said.rstrip(':')}: {_headline(err.__cause__)}"
    return said


def _process_rank() -> int | None:
    """This process's rank in a running process group of several; None without one."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return dist.get_rank()


def _other_processes_logs(since: float) -> str:
    """`` (the other processes' logs: train_ddp_process_1.log)``: where Lightning's launcher started more processes
    in the run's folder, whose own error (the cause of this one's "Connection closed by peer") is in their logs;
    only the logs written since this run started (``since``), not an earlier run's in the same folder."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    config = HydraConfig.get()
    if config.job.name.startswith("train_ddp_process_"):  # one of them: the first process's log is cnnpl.log
        return ""
    logs = sorted(
        path.name
        for path in Path(config.runtime.output_dir).glob("train_ddp_process_*.log")
        if path.stat().st_mtime >= since - 10  # (a file server's clock a little behind this machine's)
    )
    return f" (the other processes' logs: {', '.join(logs)})" if logs else ""


def _stopped_by_the_machine(err: BaseException, run_dir: Path) -> str | None:
    """What to say of a run the machine stopped: a write the file system refused (full, over quota, read-only)
    somewhere in ``err``'s chain (a logger's file, the run's config.yaml; a checkpoint says it itself), or memory
    that could not be allocated (a wide layer, one batch's activations); None for any other error. ``run_dir``:
    the run's folder, whose ``checkpoints/last.ckpt`` a resume would continue from."""
    import errno

    from cnnpl.errors import os_error_in, out_of_memory

    if out_of_memory(err):  # helper-127
        return (
            f"the run ran out of memory ({str(err).splitlines()[0] if str(err) else type(err).__name__}); run it again "
            "in a new folder (hydra.run.dir=<new folder>) with a smaller data.batch_size or a smaller network "
            "(python -m cnnpl.summary shows its size)"
        )
    refused = os_error_in(err, (errno.ENOSPC, errno.EDQUOT, errno.EROFS))
    if refused is None:
        return None
    where = f" {refused.filename}" if refused.filename else ""
    fix = "make it writable" if refused.errno == errno.EROFS else "make room there"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        then = f"{fix} and resume with the run's command plus hydra.run.dir={run_dir} ckpt_path=last"
    else:
        then = f"no checkpoint was saved yet: {fix} and run it again in a new folder (hydra.run.dir=<new folder>)"
    return f"the run stopped: cannot write{where}: {refused.strerror}; {then}"


class _OthersThanLightning(logging.Handler):
    """Counts the log records that reach the run's log from anywhere but Lightning (whose start-up lines, "GPU
    available: ...", also went to the console): a refused run's log that holds only those is not worth a
    folder (:func:`_unused_new_folder`)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.partition(".")[0] not in ("lightning", "lightning_fabric"):
            self.count += 1


def _unused_new_folder(lightning_only: bool = False) -> Path | None:
    """The run folder made for this command (:func:`_claim_new_folder`) when it holds nothing but Hydra's
    record and an empty log, or with ``lightning_only`` a log of Lightning's start-up lines alone: a command
    refused inside the run (``data.batch_size=-1``, a component that does not fit, a check made once the
    Trainer exists) leaves no folder then. None for any other folder, or one the run wrote to."""
    from hydra.core.hydra_config import HydraConfig

    if _claimed_run_dir is None or not HydraConfig.initialized():
        return None
    claimed, _ = _claimed_run_dir
    folder = Path(HydraConfig.get().runtime.output_dir)
    log = folder / f"{HydraConfig.get().job.name}.log"
    subdir = HydraConfig.get().output_subdir
    with contextlib.suppress(OSError):
        if (
            folder.samefile(claimed)
            and {path.name for path in folder.iterdir()} <= {str(subdir), log.name}
            and (not log.exists() or lightning_only or log.stat().st_size == 0)
        ):
            return folder
    return None


def _extra_record() -> tuple[Path | None, dict[str, tuple[int, int]] | None]:
    """Hydra's record of this command when it went to a ``.hydra-N`` (:func:`_keep_earlier_records`: the
    run folder holds an earlier command's), and what the run folder held besides (:func:`_written`); (None,
    {}) otherwise. A command refused before it wrote anything leaves no record (a second run where the first
    one's checkpoints are left ``.hydra-2/``)."""
    from hydra.core.hydra_config import HydraConfig

    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else None
    if not subdir or not re.fullmatch(r"\.hydra-[0-9]+", str(subdir)):
        return None, {}
    record = Path(HydraConfig.get().runtime.output_dir) / str(subdir)
    return record, _written(record.parent, record)


def _written(folder: Path, record: Path) -> dict[str, tuple[int, int]] | None:
    """Size and modification time of each entry under ``folder`` but its hidden folders (the records, a run's
    ``.attempt-N``) and Hydra's log of the job; None for a folder of more than :data:`WALKED` entries (a run
    started in a project's own folder, ``hydra.run.dir=.``): its record is kept then."""
    from hydra.core.hydra_config import HydraConfig

    log = folder / f"{HydraConfig.get().job.name}.log"
    state: dict[str, tuple[int, int]] = {}
    for top, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in [*folders, *files]:
            path = Path(top) / name
            if path in (log, record):
                continue
            with contextlib.suppress(OSError):
                st = path.stat()
                state[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
        if len(state) > WALKED:
            return None
    return state


WALKED = 20_000  # entries of a run folder compared before and after a refused command


def versions() -> str:
    """``cnnpl X (Hydra Y, Lightning Z, torch W)``, from the installed packages' metadata (nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    others = ", ".join(
        f"{name} {of(package)}"
        for name, package in (("Hydra", "hydra-core"), ("Lightning", "lightning"), ("torch", "torch"))
    )
    return f"cnnpl {of('cnnpl')} ({others})"


class _EndsQuietly:
    """``sys.stdout`` while Hydra prints (``--cfg job``, ``--info``): a reader that stopped early (``| head``)
    ends the command with status 1, as :func:`cnnpl.errors.run_command` does, instead of the traceback that
    Hydra prints for the BrokenPipeError (``SystemExit`` passes through its ``except Exception``, and through
    logging's, which prints "--- Logging error ---" for ``--info``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._stop()

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._stop()

    def _stop(self) -> NoReturn:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())  # the flush at exit fails no more
        raise SystemExit(1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_PYTHON_FORMAT = warnings.formatwarning  # as this module found it, before main() puts _format_warning in its place


def _format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """cnnpl's own warnings as one line, as its errors are (``cnnpl: warning: ...``), not as Python shows them:
    the line of cnnpl's code that warned, which tells a user nothing. Other warnings keep Python's format."""
    package = os.path.dirname(os.path.abspath(__file__))
    if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(package + os.sep):
        return f"cnnpl: warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


EXIT_SIGINT = 130  # the shell's status for a command Ctrl-C ended


def main() -> None:
    if warnings.formatwarning is _PYTHON_FORMAT:  # once: a later main() (tests) finds ours, or Lightning's around it
        warnings.formatwarning = _format_warning
    args = sys.argv[1:]
    if "--version" in args:  # Hydra's own flag would print only its version
        print(versions())
        sys.exit(0)
    if args[:1] and args[0] in TOOLS:  # python -m cnnpl summary ...: the tool's own command line
        import importlib

        sys.exit(importlib.import_module(TOOLS[args[0]][0]).main(args[1:]))
    import hydra

    try:
        sys.argv = [sys.argv[0], *guarded(lambda: prepare(args))]
        hide_extension_warnings()  # guarded() set the warning filters back
        if any(_prints_only(arg) for arg in sys.argv[1:]):
            sys.stdout = _EndsQuietly(sys.stdout)  # type: ignore[assignment]
        app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(run)
        app()
    except KeyboardInterrupt:  # Ctrl-C before Lightning's fit, which handles its own: Python's traceback
        if _sweeping(sys.argv[1:]):  # earlier jobs may have trained (prepare's -m for hydra.mode=MULTIRUN there)
            from cnnpl.distributed import CONTINUE_SWEEP

            said = f"; {CONTINUE_SWEEP}"
        else:
            said = " before this run's training started; nothing was trained"
        print(f"cnnpl: interrupted (Ctrl-C){said}", file=sys.stderr)
        sys.exit(EXIT_SIGINT)
