"""The command line: ``python -m cnnpl [overrides]``, a Hydra app over ``conf/train.yaml``.

Before Hydra composes anything, plugins are loaded: the installed ones (``import cnnpl`` did that)
and the files or modules named by ``plugins=[...]``, which is read out of the command line here,
so ``python -m cnnpl plugins=[./my_pool.py] pool=my_pool`` finds the option ``my_pool``. Then every
registered component gets its config option. ``skip_broken_plugins=true`` (or
``CNNPL_SKIP_BROKEN_PLUGINS=1``) skips installed plugins that fail to load, with a warning.
``cnnpl list`` (or ``python -m cnnpl list``) is ``python -m cnnpl.list``. Then the config is
composed once (a sweep once per swept value), so that an unknown option or key is one line, also with
``--help`` and ``--cfg``, and a run's component settings are checked (a ``???`` left, a word for a number),
a literal ``hydra.run.dir`` must be writable, and a run directory that holds an earlier command's
``.hydra/`` record gets this command's in ``.hydra-N/``.

Errors a user can fix (:class:`cnnpl.CnnplError`) end the run with one line on stderr and exit
status 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Lightning is imported only when
training starts, so ``--help`` and ``--cfg job`` stay fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig

from cnnpl.config import (
    CONFIG_NAME,
    check_group_overrides,
    compose_plain,
    config_dir,
    hide_extension_warnings,
    one_line_composition_error,
    register_component_configs,
)
from cnnpl.errors import CnnplError
from cnnpl.plugins import SKIP_BROKEN_ENV, PluginWarning, load_plugins, split_plugin_overrides

EXIT_USAGE = 2


def fail(err: CnnplError) -> NoReturn:
    """End the process with ``err`` on one line (or its traceback under ``HYDRA_FULL_ERROR=1``)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise err
    print(f"cnnpl: error: {err}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def guarded(step: Callable[[], Any]) -> Any:
    """Run ``step``; a :class:`CnnplError` ends the process, a skipped plugin's warning is one stderr line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)  # shown even under PYTHONWARNINGS=ignore
        try:
            result = step()
        except CnnplError as err:
            fail(err)
    for warning in caught:
        if issubclass(warning.category, PluginWarning):
            print(f"cnnpl: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return result


def prepare(args: list[str]) -> list[str]:
    """Load the plugins ``args`` name and register every component's config; returns the args for Hydra."""
    specs, skip_broken, rest = split_plugin_overrides(args)
    if skip_broken is not None:  # processes started for this run (DDP workers re-run this command) inherit it
        os.environ[SKIP_BROKEN_ENV] = "1" if skip_broken else "0"
    load_plugins(specs, skip_broken=skip_broken)
    register_component_configs()
    check_group_overrides(rest)
    _check_composes(rest)
    _check_run_dir(rest)
    return [*rest, *_keep_earlier_records(rest)]


SHOW_FLAGS = {"--help", "-h", "--cfg", "-c", "--resolve"}  # print the config instead of running
CFG_PARTS = {"job", "hydra", "all"}  # what --cfg prints


def _check_composes(args: list[str]) -> None:
    """Compose the config once before Hydra does, so that an unknown option or key is one line.

    Hydra would print its own error over several lines (exit status 1), or a traceback for
    ``--help``. A run (and each job of a sweep) also has its components' settings checked: a value
    still ``???`` or a word for a number. ``--help`` and ``--cfg job`` only compose (they show
    what is missing); other flags (``--config-name``, ``--info``, ...) are left to Hydra. A sweep
    (``-m``) is composed once per value of each swept setting (the others at their first value), as
    far as its values are plain words, numbers or lists. Hydra's own settings (``hydra.*``,
    ``hydra/...``) are left to Hydra.
    """
    words = [arg for i, arg in enumerate(args) if not (arg in CFG_PARTS and i and args[i - 1] in ("--cfg", "-c"))]
    flags = {arg for arg in words if arg.startswith("-")}
    if flags - {"-m", "--multirun"} - SHOW_FLAGS:
        return
    showing = bool(flags & SHOW_FLAGS)
    multirun = bool(flags & {"-m", "--multirun"})
    # hydra.searchpath adds config folders (docs/howto/own-images.md): compose sees it too
    overrides = [
        arg
        for arg in words
        if not arg.startswith("-")
        and (not arg.lstrip("+~").startswith(("hydra.", "hydra/")) or arg.lstrip("+~").startswith("hydra.searchpath="))
    ]
    for variant, job in _sweep_variants(overrides) if multirun else [(overrides, "")]:
        try:
            cfg = compose_plain(variant)
            if not showing:
                _check_components(cfg)
        except Exception as err:  # Hydra's and OmegaConf's composition errors, and the components' checks
            message = str(err) if isinstance(err, CnnplError) else one_line_composition_error(err, variant)
            raise CnnplError(f"{message} (in the sweep's job with {job})" if job else message) from None


def _check_components(cfg: DictConfig) -> None:
    """The checks of the components' settings that need nothing built (:func:`cnnpl.config.layer_factory`)."""
    from omegaconf.errors import InterpolationResolutionError

    from cnnpl.config import layer_factory

    load_plugins(cfg.get("plugins") or [])  # as train() does: a config file may name plugins of its own
    for family in ("model", "conv", "pool", "norm", "act"):
        if cfg.get(family):
            try:
                layer_factory(family, cfg[family])
            except InterpolationResolutionError:  # ${hydra:runtime.cwd}: Hydra sets it only for the run
                continue


def _sweep_variants(overrides: list[str]) -> list[tuple[list[str], str]]:
    """Single-job override lists that together try every value of every swept setting once, each with
    the swept settings' values it tries (``pool=avg``; the first job's are every swept setting's first).

    A sweep whose values are not plain (quoted strings, intervals for an optimiser sweeper) is left out:
    written back, they might not read the same, and a false refusal would be worse than Hydra's error.
    """
    import re

    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain = re.compile(r"[\w.\-/:]+|\[[\w.\-/:, ]*\]")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra names what it cannot parse
        return []
    base: list[str] = []
    swept: list[tuple[int, str, list[str]]] = []
    for override in parsed:
        if not override.is_sweep_override():
            base.append(override.input_line)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # an interval: no values to try
            continue
        if values and all(plain.fullmatch(value) for value in values):
            key = override.get_key_element()
            swept.append((len(base), key, values))
            base.append(f"{key}={values[0]}")
    variants = [(base, " ".join(base[position] for position, _, _ in swept))]
    for position, key, values in swept:
        for value in values[1:]:
            variants.append(([*base[:position], f"{key}={value}", *base[position + 1 :]], f"{key}={value}"))
    return variants


def _values(args: list[str], key: str) -> list[str]:
    """The values ``args`` give ``key`` (``+key`` too), in order, without the quotes around them
    (Lightning's DDP workers get ``hydra.run.dir="..."``)."""
    values = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+") == key:
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
            values.append(value[1:-1] if quoted else value)
    return values


def _literal_folders(args: list[str], key: str) -> list[Path]:
    """The folders ``args`` give ``key``, but those with an interpolation (``${now:...}``: left to Hydra)."""
    return [Path(value) for value in _values(args, key) if value and "${" not in value]


def _check_run_dir(args: list[str]) -> None:
    """Refuse an unwritable ``hydra.run.dir=`` (``hydra.sweep.dir=`` with ``-m``) now: Hydra would fail
    on it with a traceback. A folder with an interpolation (``${now:...}``) is left to Hydra."""
    from cnnpl.train import check_writable

    option = "hydra.sweep.dir" if {"-m", "--multirun"} & set(args) else "hydra.run.dir"
    for folder in _literal_folders(args, option):
        check_writable(folder, option)


def _keep_earlier_records(args: list[str]) -> list[str]:
    """``hydra.output_subdir=.hydra-N`` when ``hydra.run.dir=`` names a run directory that has a ``.hydra``.

    Hydra writes its record of a command (``config.yaml``, ``overrides.yaml``) before anything is
    checked; in a run directory given again (to resume, or by mistake) it would replace the first
    command's record even if this command is refused. This one's goes to the next free ``.hydra-N``.
    """
    if {"-m", "--multirun"} & set(args) or _values(args, "hydra.output_subdir"):
        return []  # a sweep's jobs have folders of their own; an output_subdir chosen (Lightning's workers: null)
    run_dirs = _literal_folders(args, "hydra.run.dir")
    run_dir = run_dirs[-1] if run_dirs else None  # Hydra takes the last
    if run_dir is None or not (run_dir / ".hydra").exists():
        return []
    if os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) != "0":
        # torchrun / srun start every process with this command; the first one's record is this one's
        return ["hydra.output_subdir=null"]
    n = 2
    while (run_dir / f".hydra-{n}").exists():
        n += 1
    return [f"hydra.output_subdir=.hydra-{n}"]


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
    try:
        metrics = train(cfg)
    except CnnplError as err:
        fail(err)
    return metrics.get("test/acc")


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


def main() -> None:
    args = sys.argv[1:]
    if "--version" in args:  # Hydra's own flag would print only its version
        print(versions())
        sys.exit(0)
    if args[:1] == ["list"]:
        from cnnpl.listing import main as list_main

        sys.exit(list_main(args[1:]))
    import hydra

    sys.argv = [sys.argv[0], *guarded(lambda: prepare(args))]
    hide_extension_warnings()  # guarded() set the warning filters back
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(run)
    app()
