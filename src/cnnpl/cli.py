"""The command line: ``python -m cnnpl [overrides]``, a Hydra app over ``conf/train.yaml``.

Before Hydra composes anything, plugins are loaded: the installed ones (``import cnnpl`` did that)
and the files or modules named by ``plugins=[...]``, which is read out of the command line here,
so ``python -m cnnpl plugins=[./my_pool.py] pool=my_pool`` finds the option ``my_pool``. Then every
registered component gets its config option. ``skip_broken_plugins=true`` (or
``CNNPL_SKIP_BROKEN_PLUGINS=1``) skips installed plugins that fail to load, with a warning.
``cnnpl list`` (or ``python -m cnnpl list``) is ``python -m cnnpl.list``.

Errors a user can fix (:class:`cnnpl.CnnplError`) end the run with one line on stderr and exit
status 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Lightning is imported only when
training starts, so ``--help`` and ``--cfg job`` stay fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from omegaconf import DictConfig

from cnnpl.config import CONFIG_NAME, check_group_overrides, config_dir, register_component_configs
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
    _check_run_dir(rest)
    return [*rest, *_keep_earlier_records(rest)]


def _check_run_dir(args: list[str]) -> None:
    """Refuse an unwritable ``hydra.run.dir=`` now: Hydra would fail on it with a traceback."""
    from pathlib import Path

    from cnnpl.train import check_writable

    if {"-m", "--multirun"} & set(args):  # a sweep writes under hydra.sweep.dir instead
        return
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.run.dir" and value and "${" not in value:
            check_writable(Path(value))


def _keep_earlier_records(args: list[str]) -> list[str]:
    """``hydra.output_subdir=.hydra-N`` when ``hydra.run.dir=`` names a run directory that has a ``.hydra``.

    Hydra writes its record of a command (``config.yaml``, ``overrides.yaml``) before anything is
    checked; in a run directory given again (to resume, or by mistake) it would replace the first
    command's record even if this command is refused. This one's goes to the next free ``.hydra-N``.
    """
    from pathlib import Path

    if {"-m", "--multirun"} & set(args):
        return []
    run_dir = None
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.output_subdir":
            return []  # chosen by the user (or Lightning, for its DDP processes)
        if key.lstrip("+") == "hydra.run.dir" and value and "${" not in value:
            run_dir = Path(value)
    if run_dir is None or not (run_dir / ".hydra").exists():
        return []
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


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["list"]:
        from cnnpl.listing import main as list_main

        sys.exit(list_main(args[1:]))
    import hydra

    sys.argv = [sys.argv[0], *guarded(lambda: prepare(args))]
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(run)
    app()
