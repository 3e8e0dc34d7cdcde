"""The checks of a sweep (``python -m cnnpl -m ...``) before Hydra makes its folder: its swept values
(:func:`check_sweep_values`), one config for each swept value (:func:`sweep_variants`, :func:`sweep_jobs`, with the
sweeps a config sets: :func:`config_sweeps`), the folders its jobs would share (:func:`check_sweep_subdir`,
:func:`check_a_checkpoint_folder_each`; the sweep's own folder as the configs set it: :func:`sweep_dir_setting`),
and the sweeper's params set on the command line (:func:`check_sweeper_params`); and the warning for a config's
sweep given without ``-m`` (:func:`warn_unrun_sweep`). :mod:`cnnpl.cli` calls them; the one-run checks are its
own."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from cnnpl.config import (
    compose_plain,
    config_dir,
    one_line_composition_error,
    plugin_yaml_options,
    searchpath_folders,
    sweeps_in_mapping,
)
from cnnpl.errors import CnnplError
from cnnpl.overrides import PROBE, folder_probe, given_values, has_sweep, interpolations_in, override_value


def check_a_checkpoint_folder_each(composed: list[tuple[list[str], str, Any]], own: list[str]) -> None:
    """Refuse a sweep whose training jobs would share one checkpoint folder (``callbacks.checkpoint.dirpath=/ckpts``,
    a folder named without ``${...}``): the second job found the first's checkpoints and stopped, after the first
    had trained (helper-145). Not for jobs that only test (``fit=false``: they read the folder), nor for a relative
    folder where each job runs in its own (``hydra.job.chdir=true``). ``composed``: the jobs of
    :func:`cnnpl.cli._check_composes`, one for each swept value; ``own``: the command's Hydra settings."""
    from omegaconf import DictConfig, OmegaConf

    first_job: dict[str, str] = {}
    for variant, job, cfg in composed:
        node = OmegaConf.select(cfg, "callbacks.checkpoint", default=None)
        folder = OmegaConf.to_container(node, resolve=False).get("dirpath") if isinstance(node, DictConfig) else None
        if not isinstance(folder, str) or "${" in folder or cfg.get("fit") is False:
            continue
        if folder not in first_job:
            first_job[folder] = job
            continue
        if not Path(folder).expanduser().is_absolute():
            try:  # where each job runs: the config's own hydra.job.chdir (an experiment's), or the command's
                settings = compose_plain([*variant, *(arg for arg in own if not has_sweep([arg]))], hydra=True)
            except Exception:
                return  # Hydra says what is wrong as it starts
            if settings.hydra.job.chdir:
                return
        raise CnnplError(
            f"callbacks.checkpoint.dirpath={override_value(folder)} is one folder for the sweep's jobs (the one "
            f"with {first_job[folder]} and the one with {job}): each would find the one before's checkpoints and "
            "stop; leave dirpath out (each job's ${output_dir}/checkpoints) or name a folder a job, such as "
            f"callbacks.checkpoint.dirpath='{folder.rstrip('/')}/${{hydra:job.num}}'"
        )


def warn_unrun_sweep(cfg: Any, words: list[str]) -> None:
    """Warn when a run's config sets a sweep (``experiment=pooling_study``'s ``hydra.sweeper.params``) and the
    command has no ``-m``: Hydra runs one job with the config's own values, without a word."""
    from omegaconf import OmegaConf

    from cnnpl.config import chosen_experiment
    from cnnpl.distributed import is_worker

    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
    if not params or is_worker() or OmegaConf.select(cfg, "hydra.mode", default=None) == "MULTIRUN":
        return
    source = f"experiment={chosen_experiment(words)}" if chosen_experiment(words) else "the config"
    print(
        f"cnnpl: warning: {source} sets a sweep ({', '.join(str(key) for key in params)}) that only runs with -m: "
        "this is one run, with the config's own values; add -m to run the sweep",
        file=sys.stderr,
    )


def check_sweeper_params(overrides: list[str], own: list[str]) -> None:
    """Refuse in one line a command line that sets ``hydra.sweeper.params`` where Hydra cannot: where it is null (no
    experiment sets it; helper-143: "Unexpected type for root: NoneType"), for a dotted setting (its dots read as
    nesting: "Cannot convert 'dict' to string"), or with a sweep as its value, unquoted ("Sweeping over Hydra's
    configuration is not supported"). Each says the sweep to write instead (``-m data.batch_size=64,128``), which
    Hydra's sweeper joins to the config's. ``overrides``: the config's, none of them a sweep."""
    swept = [arg for arg in own if arg.lstrip("+~").startswith(("hydra.sweeper.params.", "hydra.sweeper.params="))]
    if not swept:
        return

    def refuse(arg: str, reason: str) -> NoReturn:
        key, _, value = arg.lstrip("+~").partition("=")
        setting = key.removeprefix("hydra.sweeper.params").lstrip(".")
        values = value.strip("'" + '"')  # +hydra.sweeper.params.pool='max,avg' sweeps as -m pool=max,avg
        if "{" in value:  # hydra.sweeper.params={model:{dropout:'0.1,0.2'}}: -m model.dropout=0.1,0.2
            inner = sweeps_in_mapping(value)
            prefix = f"{setting}." if setting else ""
            example = " ".join(f"{prefix}{k}={v}" for k, v in inner.items()) or "<setting>=<value>,<value>"
        else:
            example = f"{setting}={values}" if setting else "<setting>=<value>,<value>"
        raise CnnplError(f"{arg}: {reason}; sweep on the command line instead: -m {example}")

    for arg in swept:
        if arg.startswith("~"):  # ~hydra.sweeper.params.seed drops a sweep the config sets
            continue
        if "." in arg.lstrip("+").partition("=")[0].removeprefix("hydra.sweeper.params").lstrip("."):
            refuse(arg, "Hydra reads the dots of a setting in hydra.sweeper.params as nesting")
        if has_sweep([arg]):
            refuse(arg, "Hydra sweeps none of its own settings")
        key, _, value = arg.lstrip("+").partition("=")
        if key != "hydra.sweeper.params" and value.lstrip().startswith("{"):  # "Cannot convert 'dict' to string"
            refuse(arg, "hydra.sweeper.params takes each sweep's values as text ('0.1,0.2'), not a mapping")
    from omegaconf import OmegaConf

    try:
        before = compose_plain([*overrides, *(arg for arg in own if arg not in swept)], hydra=True)
    except Exception:
        return  # something else is wrong too: the composition's own message
    if OmegaConf.select(before, "hydra.sweeper.params", default=None) is None:
        refuse(swept[0], "Hydra cannot set hydra.sweeper.params from the command line while no config sets it")


def config_sweeps(overrides: list[str], given: bool = False) -> list[str]:
    """The sweeps a config sets (``hydra.sweeper.params``: ``experiment=pooling_study``'s ``pool``) that the
    command line does not, as overrides (``pool=max,avg,...``), so that :func:`sweep_variants` tries them too;
    ``given``: those the command line sets too, as Hydra's sweeper reads them first. Composed as Hydra's sweeper
    composes (without the swept settings); nothing where that does not compose."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:  # composed as Hydra's sweeper does: without the swept settings (experiment=a,b sets no lists)
        parsed = OverridesParser.create().parse_overrides(overrides)
        cfg = compose_plain([o.input_line for o in parsed if not o.is_sweep_override()], hydra=True)
    except Exception:
        return []
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
    typed = {arg.partition("=")[0].lstrip("+~") for arg in overrides}
    return [f"{key}={value}" for key, value in params.items() if given or str(key).lstrip("+~") not in typed]


def sweep_jobs(overrides: list[str]) -> list[tuple[list[str], str]]:
    """Each job of the sweep ``overrides`` make, in the order Hydra's basic sweeper numbers them (``0/``, ``1/``,
    ...: its own ``split_arguments``, over ``hydra.sweeper.params`` and then the command line), with the swept
    settings' values it has (``pool=avg seed=1``). Empty where a job's values are not known before Hydra starts
    or might not read back the same (:func:`sweep_variants`: ``shuffle(...)``, ``glob(*)``, ``${...}``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not sweep_variants([*overrides, *config_sweeps(overrides)], complete=True):
        return []
    try:
        parsed = OverridesParser.create().parse_overrides([*config_sweeps(overrides, given=True), *overrides])
        [jobs] = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # Hydra says why as it starts
        return []
    last = {override.get_key_element(): override.is_sweep_override() for override in parsed}  # the last one rules
    swept = {key for key, sweep in last.items() if sweep}  # not a config's sweep that the command line fixed

    def label(job: list[str]) -> str:
        settings = (override.partition("=") for override in job)
        return " ".join(f"{key}={_as_typed(value)}" for key, _, value in settings if key in swept)

    return [(job, label(job)) for job in jobs]


def sweep_variants(overrides: list[str], complete: bool = False) -> list[tuple[list[str], str]]:
    """Single-job override lists that together try every value of every swept setting once, each with
    the swept settings' values it tries (``pool=avg``; the first job's are every swept setting's first).

    A sweep whose values are not plain (quoted strings, intervals for an optimiser sweeper) is left out:
    written back, they might not read the same, and a false refusal would be worse than Hydra's error.
    ``complete``: none at all where one is left out (its setting would read as its default).
    """

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
        values = sweep_values(override)
        shuffled = getattr(override.value(), "shuffle", False)  # shuffle(...): another first job each time
        if values and all(plain.fullmatch(value) for value in values) and not (complete and shuffled):
            key = override.get_key_element()
            swept.append((len(base), key, values))
            base.append(f"{key}={values[0]}")
        elif complete:
            return []
    variants = [(base, " ".join(base[position] for position, _, _ in swept))]
    for position, key, values in swept:
        for value in values[1:]:
            variants.append(([*base[:position], f"{key}={value}", *base[position + 1 :]], f"{key}={value}"))
    return variants


def sweep_values(override: Any) -> list[str]:
    """The values a sweep ``override`` (parsed) tries, as text; none for an interval (an optimiser sweeper's) or
    a sweep Hydra cannot enumerate (``range(0,2,0)``). A ``glob(...)`` of a group's options is matched against the
    options cnnpl knows (its files, the registries', a plugin's YAML), as Hydra matches it (one that matches a
    ``hydra.searchpath`` folder's option, which Hydra's glob does not see, is refused in
    :func:`check_sweep_values`)."""
    from hydra.core.override_parser.types import Glob

    value = override.value()
    if isinstance(value, Glob):
        group = override.get_key_element().lstrip("+~")
        return value.filter(known_options(group))
    try:
        words = list(override.sweep_string_iterator())
    except Exception:
        return []
    return [_as_typed(word) for word in words]


def _as_typed(word: str) -> str:
    """A swept value as the command line writes it: Hydra's sweep writes true and false as Python does (``True``,
    ``[1,True]``). Quoted text would change too, but :func:`sweep_variants` leaves a sweep of quoted values out."""
    return re.sub(r"\b(True|False)\b", lambda match: match.group(1).lower(), word)


def known_options(group: str) -> list[str]:
    from cnnpl.config import group_options, plugin_yaml_options

    if not (config_dir() / group).is_dir():
        return []
    return sorted({*group_options(group), *(name for name, _ in plugin_yaml_options(group))})


def check_sweep_values(overrides: list[str], own: list[str]) -> None:
    """Refuse, before the sweep's folder is made, a sweep Hydra would end in a traceback or its own lines, or run
    with no job (helper-153): an override it cannot read (``model.channels=[32,64``; without ``-m`` the
    composition names it), ``range(0,2,0)``, an ``interval(...)`` for Hydra's basic sweeper (an optimiser
    sweeper's, ``hydra/sweeper=optuna``, samples it), a sweep of no value (``range(0,0)``, a ``glob(...)``
    that matches no option: Hydra launched 0 jobs and said nothing), and a ``glob(...)`` that matches an option
    of a ``hydra.searchpath`` folder (Hydra skipped it silently)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob, IntervalSweep
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as err:
        raise CnnplError(one_line_composition_error(err, overrides)) from None
    for override in parsed:
        if not override.is_sweep_override():
            continue
        line, value = override.input_line, override.value()
        if isinstance(value, IntervalSweep):
            if not basic_sweeper(overrides, own):  # one an experiment chose too (Optuna's samples it)
                continue
            raise CnnplError(
                f"{line}: Hydra's basic sweeper takes a list of values, not an interval (a sampling sweeper's, "
                f"hydra/sweeper=optuna, takes one); list them: {override.get_key_element()}={value.start},...,"
                f"{value.end}"
            )
        if isinstance(value, Glob):
            group = override.get_key_element().lstrip("+~")
            options = known_options(group)
            seen = {*options, *(name for name, _ in plugin_yaml_options(group))}  # a plugin's: Hydra's glob sees it
            added = {name for name, _ in plugin_yaml_options(group, searchpath_folders([*overrides, *own]))}
            unseen = value.filter(sorted(added - seen))
            if unseen:  # Hydra's glob sees no hydra.searchpath folder's options: skipped silently, or 0 jobs
                listed = ",".join(value.filter(sorted(seen | added)))
                raise CnnplError(
                    f"{line}: Hydra's glob() does not see the options of hydra.searchpath folders, so the sweep "
                    f"would skip {', '.join(unseen)}; list the options instead: {override.get_key_element()}={listed}"
                )
            if options and not value.filter(options):
                raise CnnplError(
                    f"{line} matches no option of {group} ({', '.join(options)}), so the sweep would run no job"
                )
            continue
        try:
            values = list(override.sweep_string_iterator())
        except (ValueError, HydraException) as err:  # range(0,2,0); range(0,2,0.0): "Invalid range values"
            raise CnnplError(f"{line}: {err}") from None
        if not values:
            raise CnnplError(f"{line} gives no value, so the sweep would run no job")


def basic_sweeper(overrides: list[str], own: list[str]) -> bool:
    """Whether the sweep runs under Hydra's basic sweeper: the command line's and its configs' choice (an
    experiment's ``override /hydra/sweeper: optuna``); true where that does not compose (Hydra says why)."""
    try:
        cfg = compose_plain(
            [*(o for o in overrides if not has_sweep([o])), *(o for o in own if not has_sweep([o]))], hydra=True
        )
    except Exception:
        return True
    return str(cfg.hydra.sweeper.get("_target_", "")).endswith(".BasicSweeper")


SUBDIR_JOBS = 64  # a sweep of experiments with sweep dirs of their own: up to this many jobs compared one by one


def check_sweep_subdir(composed: list[tuple[list[str], str, Any]], overrides: list[str], own: list[str]) -> None:
    """Refuse a ``hydra.sweep.subdir`` that names one folder for several jobs of the sweep (``same``,
    ``${model.name}`` in a sweep of seeds): job 0 trained, and the next found its checkpoints and stopped
    (helper-153). Each job's folder is its sweep dir (the command line's, else its config's) joined with the
    subdir, read with its config: ``composed`` (:func:`cnnpl.cli._check_composes`'s, one for each swept value),
    or every job of the command's ``overrides`` (:func:`sweep_jobs`, up to :data:`SUBDIR_JOBS`) where the jobs'
    configs set other sweep dirs (experiments swept: one may part its jobs by seed and another not; helper-155).
    The time (``${now:...}``) is one for all jobs, as Hydra reads it; Hydra's own values (``${hydra.job.num}``,
    the default) make each one another folder."""
    from omegaconf import OmegaConf

    given = given_values(own, "hydra.sweep.subdir")
    if not given or len(composed) < 2:
        return
    when = datetime.now()
    text = _at(given[-1], when)
    top = ([None, *given_values(own, "hydra.sweep.dir")])[-1]  # ${seed} there parts the jobs too (helper-154)
    settings = [arg for arg in own if not has_sweep([arg])]
    parents = [top] * len(composed) if top is not None else _config_sweep_dirs(composed, own)
    jobs = sweep_jobs(overrides) if len(set(parents)) > 1 else []
    if 2 <= len(jobs) <= SUBDIR_JOBS:
        composed = [(job, label, compose_plain([*job, *settings], hydra=True)) for job, label in jobs]
        parents = [OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("dir") for _, _, cfg in composed]
    named: dict[str, tuple[str, str]] = {}
    for (_, job, cfg), parent in zip(composed, parents, strict=True):
        if cfg.get("fit") is False:  # tests a checkpoint: it saves none for another job to find
            continue
        probe = folder_probe(cfg, text)
        try:
            sub = str(OmegaConf.select(probe, PROBE, throw_on_resolution_failure=True))
            probe[PROBE] = _at(parent, when) or ""
            folder = os.path.join(str(OmegaConf.select(probe, PROBE, throw_on_resolution_failure=True)), sub)
        except Exception:  # ${hydra.job.num}, ${hydra:job.override_dirname}: Hydra's, one for each job
            return
        if folder in named:
            first, first_sub = named[folder]
            raise CnnplError(
                f"hydra.sweep.subdir={given[-1]} names one folder ({sub if sub == first_sub else folder}) for the "
                f"sweep's jobs with {first} and with {job}: the second would find the first's checkpoints; add "
                "${hydra.job.num} (the default), or a swept setting such as seed_${seed}"
            )
        named[folder] = (job, sub)


def _config_sweep_dirs(composed: list[tuple[list[str], str, Any]], own: list[str]) -> list[str | None]:
    """The ``hydra.sweep.dir`` each of ``composed``'s configs sets (:func:`sweep_dir_setting`): read again only for
    a job whose overrides differ from the first's in a group's choice (``experiment=...``, whose config may set
    it), not in a setting's value (``seed=3``; composing each of 64 seeds took 8 s)."""
    from omegaconf import DictConfig

    from cnnpl.config import config_groups

    groups, (first, _, _) = config_groups(), composed[0]
    dirs = [sweep_dir_setting([*first, *own])]
    for variant, _, cfg in composed[1:]:
        keys = {arg.partition("=")[0].lstrip("+~") for arg in set(variant) ^ set(first)}
        try:
            values_only = all(
                "." in key or (key not in groups and key in cfg and not isinstance(cfg[key], DictConfig))
                for key in keys
            )
        except Exception:  # a value that does not resolve: its job's check says why
            values_only = False
        dirs.append(dirs[0] if values_only else sweep_dir_setting([*variant, *own]))
    return dirs


def _at(folder: str | None, when: datetime) -> str | None:
    """``folder`` with its time (``${now:%H-%M-%S}``: Hydra reads it once for all the jobs of a sweep) read at
    ``when``."""
    for piece in interpolations_in(folder or ""):
        if piece.startswith("${now:"):
            folder = folder.replace(piece, when.strftime(piece[len("${now:") : -1]))
    return folder


def sweep_dir_setting(args: list[str]) -> str | None:
    """``hydra.sweep.dir`` as the command line and the configs it chooses (an experiment's ``hydra:``) set
    it, uninterpolated (``outputs/multirun/${now:...}`` by default); the command line's alone when the
    config does not compose (Hydra will say why)."""
    from omegaconf import OmegaConf

    given = [arg for arg in args if not arg.startswith("-")]
    variants = sweep_variants(given)  # the first job's overrides: a list of values does not compose
    try:
        cfg = compose_plain(variants[0][0] if variants else given, hydra=True)
        setting = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("dir")
    except Exception:
        values = given_values(args, "hydra.sweep.dir")
        return values[-1] if values else None
    return setting if isinstance(setting, str) else None
