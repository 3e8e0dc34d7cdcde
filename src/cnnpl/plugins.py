"""Plugins: components from installed packages and from explicitly named files or modules.

Three ways in, one result (a registered component that is also a config option):

* **installed packages** declare an entry point in the ``cnnpl.plugins`` group
  (``[project.entry-points."cnnpl.plugins"] example = "cnnpl_example"``). Importing ``cnnpl`` loads
  them all, once, before anything is composed, so their names exist for ``pool=...`` and for
  tests that parametrise over :func:`cnnpl.list_components` at collection time;
* **files or modules** named by the user: ``python -m cnnpl plugins=[./my_pool.py,my_pkg.pools]``
  or :func:`load_plugins` in Python. A relative path is relative to the folder the command started in
  (not the run directory Hydra may have moved to with ``hydra.job.chdir=true``), and a module is looked
  for there first, then on ``sys.path``;
* **in Python**: ``@cnnpl.register("pool", "my_pool")`` (no loading involved).

The entry point names a module (importing it registers its components) or a function taking no
arguments (called once). The registry records where each component came from, e.g.
``package cnnpl-example 0.1.0 (entry point example = cnnpl_example)`` or ``file /abs/my_pool.py``.

A file is executed once, however it is reached: named twice (as a path and as a module), or named
and also imported by another plugin (``from lab_pools import LabPool`` in ``lab_models.py``).

A plugin that fails to load (an exception, or ``sys.exit``) leaves none of its components behind. An
installed one that is broken does not break ``import cnnpl``: the failure is kept, and
:func:`load_plugins` (which the command line, :func:`cnnpl.compose` and ``cnnpl.list`` call) raises
:class:`PluginError` naming the distribution, the entry point and the exception, unless broken plugins
are skipped (``CNNPL_SKIP_BROKEN_PLUGINS=1`` or ``skip_broken_plugins=true``), which warns instead. A
named file or module that fails always raises: the user asked for it.

Nothing is imported implicitly: not from the working directory, not from a config file's folder. While a
named file runs, its folder is first on ``sys.path`` (as ``python <file>`` has it), so it can import the
modules beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
import traceback
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from cnnpl.errors import CnnplError, yaml_word
from cnnpl.registry import REGISTRIES, registering_from

ENTRY_POINT_GROUP = "cnnpl.plugins"
SKIP_BROKEN_ENV = "CNNPL_SKIP_BROKEN_PLUGINS"
PLUGINS_KEY = "plugins"  # the config / command-line key listing files and modules to load
SKIP_BROKEN_KEY = "skip_broken_plugins"  # a start-up switch, consumed before Hydra composes
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class PluginError(CnnplError):
    """A plugin that could not be found or loaded."""


class PluginWarning(UserWarning):
    """A broken installed plugin that was skipped, or a run's plugin file render found elsewhere."""


@dataclass(frozen=True)
class Plugin:
    """A plugin cnnpl tried to load: where from, what it registered, and why it failed if it did."""

    kind: str  # "package", "file" or "module"
    source: str  # the label the registry records for its components
    components: tuple[str, ...] = ()  # "family/name" of what it registered
    error: str | None = None  # the one-line reason it failed, None if loaded


_installed: list[Plugin] | None = None
_named: dict[str, Plugin] = {}  # files (by resolved path) and modules (by name) already loaded
_loaded_as: dict[Path, str] = {}  # a file (resolved) -> the key in _named of the plugin it was loaded as
_plugin_folders: set[Path] = set()  # the folders of the plugin files loaded (resolved): their siblings are theirs
_warned: set[str] = set()


_CNNPL_DIR = Path(__file__).resolve().parent
# Python's own library (importlib, argparse): its frames are often the deepest, never the plugin's mistake
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"])
_SITE_DIRS = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}


def _components_of(source: str) -> tuple[str, ...]:
    """``family/name`` of what ``source`` registered, replacements of other components included."""
    return tuple(
        f"{family}/{name}"
        for family, reg in REGISTRIES.items()
        for name, entry in sorted(reg._entries.items())
        if entry.source == source
    )


def _where(err: BaseException, origin: Path | None, fallback: str = "") -> str:
    """``file, line N`` of the deepest frame of ``err`` in the plugin's own code: inside ``origin`` (its file
    or package folder) when known, else outside cnnpl and Python's standard library (its import machinery
    included). Without such a frame, ``fallback`` if given, else the deepest frame; "" if there is none."""
    frames = traceback.extract_tb(err.__traceback__) if err.__traceback__ is not None else []

    def own(filename: str) -> bool:
        path = Path(filename)
        if origin is not None:
            return path == origin or origin in path.parents
        stdlib = _STDLIB_DIR in path.parents and not _SITE_DIRS & set(path.parents)
        return not filename.startswith("<frozen ") and _CNNPL_DIR not in path.parents and not stdlib

    frame = next((f for f in reversed(frames) if own(f.filename)), None)
    if frame is None and fallback:
        return fallback
    frame = frame or (frames[-1] if frames else None)
    return f"{frame.filename}, line {frame.lineno}" if frame is not None else ""


def place_in_code_of(err: BaseException, obj: object) -> str:
    """``file, line N`` of the deepest frame of ``err`` in the file that defines ``obj``'s class (a plugin's
    layer), "" when none is there (torch's own code raised, for a setting the plugin passed on) and for cnnpl's
    and torch's own classes."""
    import inspect

    if type(obj).__module__.startswith(("cnnpl.", "torch.")):
        return ""
    try:
        origin = Path(inspect.getfile(type(obj)))
    except (TypeError, OSError):  # a class without a file
        return ""
    unplaced = "\0"
    place = _where(err, origin, unplaced)
    return "" if place == unplaced else place


def _reason(err: BaseException, origin: Path | None = None, fallback: str = "") -> str:
    """``Type: message (file, line N)`` on one line, the place being in the plugin's code (see :func:`_where`)."""
    message, where = str(err), _where(err, origin, fallback)
    if isinstance(err, SyntaxError):  # the place is in the file, not a frame; str() would give it twice
        message = err.msg or "invalid syntax"
        where = f"{err.filename}, line {err.lineno}" if err.filename else ""
    if isinstance(err, SystemExit):  # str() is the bare exit code
        message = f"it exited with sys.exit({'' if err.code is None else repr(err.code)})"
    message = " ".join(message.split()) or "(no message)"
    return f"{type(err).__name__}: {message}{f' ({where})' if where else ''}"


def _exit_hint(err: BaseException) -> str:
    """The fix for a plugin that exits while it is imported; "" for other failures."""
    if isinstance(err, SystemExit):
        return (
            "; a plugin must not exit while it is imported (argparse's parse_args() at module level does: "
            "the command line is cnnpl's)"
        )
    return ""


def _missing_dependency(err: BaseException) -> str:
    """The fix for a plugin whose own imports fail (``import lab`` without ``lab`` installed); "" for others."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        return (
            f"; the plugin was found, but not the module {err.name!r} it imports: install it, or add the folder "
            "that holds it to PYTHONPATH"
        )
    return ""


def _distribution(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "(unknown distribution)"


def _entry_point_source(ep: importlib.metadata.EntryPoint) -> str:
    return f"package {_distribution(ep)} (entry point {ep.name} = {ep.value})"


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Plugin:
    source = _entry_point_source(ep)
    try:
        with _loading(source):
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, (ModuleType, type)):
                loaded()  # a register() hook rather than a module that registers on import
    except (Exception, SystemExit) as err:
        # an entry point naming a module or function that is not there fails inside importlib: name the entry point
        fallback = f"entry point {ep.name} = {ep.value} in the metadata of {_distribution(ep)}"
        return Plugin(
            "package",
            source,
            error=(
                f"plugin {source.removeprefix('package ')} in group {ENTRY_POINT_GROUP} failed to load: "
                f"{_reason(err, fallback=fallback)}{_exit_hint(err)}. Fix or uninstall it"
            ),
        )
    return Plugin("package", source, _components_of(source))


def installed_plugins() -> list[Plugin]:
    """The plugins of installed distributions, loaded on the first call (``import cnnpl`` makes it).

    Never raises: a plugin that fails is returned with its ``error``; see :func:`load_plugins`.
    """
    global _installed
    if _installed is None:
        _installed = []  # set first: a plugin that imports cnnpl.plugins must not start a second round
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))
        _installed.extend(_load_entry_point(ep) for ep in eps)
    return list(_installed)


def skip_broken_default() -> bool:
    """Whether ``CNNPL_SKIP_BROKEN_PLUGINS`` asks to skip broken installed plugins; a value that is neither
    yes nor no is refused (``maybe`` was read as no, helper-136)."""
    value = os.environ.get(SKIP_BROKEN_ENV, "").strip().lower()
    if value and value not in _TRUE | _FALSE:
        raise PluginError(
            f"{SKIP_BROKEN_ENV}={os.environ[SKIP_BROKEN_ENV]!r} is neither yes nor no: set it to 1 (skip broken "
            "plugins) or 0, or unset it"
        )
    return value in _TRUE


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or os.sep in spec or spec.startswith(("~", "."))


def plugin_specs(value: Any) -> list[str]:
    """The specs of a ``plugins`` config value: a list of them, one spec alone (``plugins: ./my_pool.py``), or none."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    if not isinstance(value, Sequence) or not all(isinstance(spec, (str, Path)) for spec in value):
        raise PluginError(
            "plugins must be plugin files or modules (plugins=[./my_pool.py,my_package.layers]), "
            f"got {yaml_word(value)}"
        )
    return [str(spec) for spec in value]


def start_dir() -> Path:
    """The folder the command started in, which relative plugin paths are relative to.

    The working directory, unless a Hydra job has moved since (``hydra.job.chdir=true``): then Hydra's
    record of where the command ran, ``hydra.runtime.cwd``. Hydra is not imported to find out.
    """
    hydra_config = sys.modules.get("hydra.core.hydra_config")
    if hydra_config is not None and hydra_config.HydraConfig.initialized():  # inside a Hydra job
        return Path(hydra_config.HydraConfig.get().runtime.cwd)
    return Path.cwd()


@contextlib.contextmanager
def _first_on_sys_path(folder: Path) -> Iterator[None]:
    """``folder`` at the front of ``sys.path`` inside the block (as ``python -m`` puts the working directory)."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added and entry in sys.path:
            sys.path.remove(entry)


@contextlib.contextmanager
def _loading(key: str) -> Iterator[None]:
    """:func:`registering_from` ``key``; if the block raises, the modules it imported that registered something
    are forgotten too (their components are taken out), so that importing one again runs it again."""
    before = set(sys.modules)
    with registering_from(key):
        try:
            yield
        except BaseException:
            registered = {
                getattr(entry.obj, "__module__", None)
                for reg in REGISTRIES.values()
                for entry in reg._entries.values()
                if entry.source == key
            }
            for name in set(sys.modules) - before:
                if getattr(sys.modules[name], "__name__", None) in registered:
                    del sys.modules[name]
            raise


def _imported_from(location: Path) -> ModuleType | None:
    """The module already imported from the file ``location`` (resolved), under whatever name; None if none."""
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and Path(file).name == location.name and Path(file).resolve() == location:
            return module
    return None


@contextlib.contextmanager
def _loaded_siblings(folder: Path) -> Iterator[None]:
    """Inside the block, ``import <name>`` gives the module already loaded from ``folder/<name>.py`` or
    ``folder/<name>/__init__.py`` (as plugin ``cnnpl_plugin_<name>``, or as ``lab.<name>``) rather than
    running that file again: a plugin file importing another beside it (``from lab_pools import LabPool``)
    while :func:`_first_on_sys_path` has their folder first. Only for the block, where that import finds
    that file: afterwards ``<name>`` is whatever ``sys.path`` finds."""
    added = []
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            continue
        package = os.path.basename(file) == "__init__.py"
        holder = os.path.dirname(os.path.dirname(file) if package else file)
        if os.path.basename(holder) != folder.name:
            continue  # most modules: elsewhere, told by their path's text alone
        location = Path(file).resolve()
        name, parent = (location.parent.name, location.parent.parent) if package else (location.stem, location.parent)
        if parent == folder and name.isidentifier() and name not in sys.modules:
            sys.modules[name] = module
            added.append((name, module))
    try:
        yield
    finally:
        for name, module in added:
            if sys.modules.get(name) is module:
                del sys.modules[name]


@contextlib.contextmanager
def _own_siblings_first(folder: Path) -> Iterator[None]:
    """Inside the block, ``import <name>`` finds ``folder/<name>.py`` (or ``folder/<name>/``) although a module
    of that name was imported beside another plugin file, from its folder (``labA/helpers.py`` and
    ``labB/helpers.py``, each imported by the plugin beside it): as ``python labB/pb.py`` would, not
    ``labA``'s. Afterwards ``<name>`` is the first one again; the one imported here stays loaded under a
    name of its own (:func:`_loaded_siblings` finds it by its file for the next plugin of ``folder``).
    Only modules imported from another plugin file's folder are set aside, never an installed package."""
    hidden: dict[str, ModuleType] = {}
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
            continue
        file = _file_of(module)
        if file is None:
            continue
        depth = name.count(".") + (file.name == "__init__.py")  # helpers.sub: labA/helpers/sub.py -> labA
        holder = file.parents[depth] if depth < len(file.parents) else None
        if holder is not None and holder != folder and holder in _plugin_folders:
            hidden[name] = sys.modules.pop(name)
    try:
        yield
    finally:
        for name, module in hidden.items():
            imported_here = sys.modules.get(name)
            if imported_here is not None and imported_here is not module:
                sys.modules[f"cnnpl_sibling_{len(sys.modules)}_{name.replace('.', '_')}"] = imported_here
            sys.modules[name] = module


def _alias(stem: str, module: ModuleType, location: Path) -> None:
    """Make ``import stem`` give ``module``, loaded from ``location``, where it would run that same file.

    So a plugin importing another (``from lab_pools import LabPool``) does not run it a second time.
    A name taken already, or that would find another file, is left alone.
    """
    if not stem.isidentifier() or stem in sys.modules:
        return
    try:
        found = importlib.util.find_spec(stem)
    except (ImportError, ValueError):
        return
    if found is not None and found.origin and Path(found.origin).resolve() == location:
        sys.modules[stem] = module


def _import(spec: str) -> ModuleType:
    """``importlib.import_module(spec)``, unless the file it would run was loaded already under another name
    (``plugins=[./my_pool.py,my_pool]``): then that module, which ``spec`` names from now on too."""
    if spec not in sys.modules:
        found = importlib.util.find_spec(spec)
        loaded = _imported_from(Path(found.origin).resolve()) if found is not None and found.origin else None
        if loaded is not None:
            sys.modules[spec] = loaded
            parent, _, child = spec.rpartition(".")
            if parent:  # as an import would: pkg.mod is an attribute of pkg
                setattr(sys.modules[parent], child, loaded)
    return importlib.import_module(spec)


def _file_of(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if isinstance(file, str) else None


def _record(kind: str, key: str, module: ModuleType) -> Plugin:
    """Record (and return) the plugin ``key``, loaded as ``module``.

    A file that was loaded as another plugin (``plugins=[my_pool,./my_pool.py]``) is that plugin. The
    components of a module imported before without being named (``import lab_pools`` in ``lab_models.py``)
    move to ``key``, as if it had been loaded first: the record is the same in either order.
    """
    file = _file_of(module)
    owner = _loaded_as.get(file) if file is not None else None
    if owner is not None and owner != key and owner in _named:
        _named[key] = _named[owner]
        return _named[key]
    if file is not None:
        _loaded_as[file] = key
    moved: set[str] = set()
    for family, reg in REGISTRIES.items():
        for name, entry in list(reg._entries.items()):
            importer = entry.source in _named or entry.source == f"module {module.__name__}"
            if entry.source != key and importer and getattr(entry.obj, "__module__", None) == module.__name__:
                reg._entries[name] = replace(entry, source=key)
                moved.add(f"{family}/{name}")
    for other, plugin in list(_named.items()):
        if moved & set(plugin.components):
            _named[other] = replace(plugin, components=tuple(c for c in plugin.components if c not in moved))
    _named[key] = Plugin(kind, key, _components_of(key))
    return _named[key]


def _load_file(spec: str, base: Path) -> Plugin:
    path = Path(spec).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    key = f"file {path}"
    if key in _named:
        return _named[key]
    if path.is_dir():
        init = path / "__init__.py"
        if not init.is_file():
            raise PluginError(f"plugin {spec!r} is a folder without __init__.py; name a .py file or a package folder")
        location, search = init, [str(path)]
    elif path.is_file():
        location, search = path, None
    else:
        raise PluginError(f"plugin file {spec!r} does not exist (looked for {path}); give a path to a .py file")
    module = _imported_from(location)  # as a module plugin, or by another plugin's import: not run again
    if module is None:
        stem = path.stem if path.suffix == ".py" else path.name
        module_name = f"cnnpl_plugin_{stem}" if stem.isidentifier() else "cnnpl_plugin"
        if module_name in sys.modules:  # another file with the same name: keep both importable
            module_name = f"{module_name}_{len(_named)}"
        module_spec = importlib.util.spec_from_file_location(module_name, location, submodule_search_locations=search)
        if module_spec is None or module_spec.loader is None:  # (the loader goes by the suffix)
            raise PluginError(f"plugin file {path} cannot be imported as Python: name it with .py ({path.name}.py)")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # dataclasses, pickling and relative imports need it there
        try:  # its own folder searched first while it runs, as `python <file>` would: it imports its siblings
            folder = path.parent
            _plugin_folders.add(folder)
            with _first_on_sys_path(folder), _own_siblings_first(folder), _loaded_siblings(folder), _loading(key):
                module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            sys.modules.pop(module_name, None)
            raise PluginError(
                f"plugin file {path} failed to load: {_reason(err, path)}{_missing_dependency(err)}{_exit_hint(err)}"
            ) from err
        _alias(stem, module, location)
    return _record("file", key, module)


def _load_module(spec: str, base: Path) -> Plugin:
    key = f"module {spec}"
    if key in _named:
        return _named[key]
    if not all(part.isidentifier() for part in spec.split(".")):
        raise PluginError(f"plugin {spec!r} is neither a module name (a.b.c) nor a path to a .py file")
    try:
        with _first_on_sys_path(base), _loading(key):
            module = _import(spec)
    except ModuleNotFoundError as err:
        if err.name and (spec == err.name or spec.startswith(f"{err.name}.")):  # the plugin, or its package
            if (base / spec).is_file():  # plugins=notes.txt: a file, but not Python
                raise PluginError(
                    f"plugin {spec!r} is a file but not Python: a plugin file ends in .py (a module name has no "
                    "file ending)"
                ) from err
            file = Path(*spec.split(".")).with_suffix(".py")
            shown = f"./{file}" if base == Path.cwd() else str(base / file)
            raise PluginError(
                f"plugin module {spec!r} was not found (no module {err.name!r} in {base} or on sys.path); "
                f"install it, or name its file instead: {PLUGINS_KEY}=[{shown}]"
            ) from err
        raise PluginError(f"plugin module {spec} failed to load: {_reason(err)}{_missing_dependency(err)}") from err
    except (Exception, SystemExit) as err:
        raise PluginError(f"plugin module {spec} failed to load: {_reason(err)}{_exit_hint(err)}") from err
    return _record("module", key, module)


def load_plugins(
    specs: Sequence[str] | str = (), *, skip_broken: bool | None = None, base: str | Path | None = None
) -> list[Plugin]:
    """Make sure the installed plugins and ``specs`` (files or module names) are loaded; each loads once.

    A spec is a path (it ends in ``.py`` or contains a ``/``) or a module name. A relative path is
    relative to ``base``, and a module is looked for in ``base`` before ``sys.path``; ``base`` defaults
    to the folder the command started in (:func:`start_dir`). Raises :class:`PluginError` for a broken
    installed plugin unless ``skip_broken`` (default: ``CNNPL_SKIP_BROKEN_PLUGINS``, or true when an
    earlier call of this process skipped the same broken plugins), in which case it warns
    (:class:`PluginWarning`, once a plugin) and goes on; a spec that fails always raises. Returns the plugins
    loaded by this call's specs, in order.
    """
    specs = plugin_specs(specs)
    folder = Path(base) if base is not None else start_dir()
    broken = [p for p in installed_plugins() if p.error]
    skip = skip_broken_default() if skip_broken is None else skip_broken
    if skip_broken is None and broken and all(p.source in _warned for p in broken):
        skip = True  # skipped on request earlier in this process: compose(skip_broken_plugins=true), then train
    if broken and not skip:
        more = f" ({len(broken) - 1} more broken plugin(s) after this one)" if len(broken) > 1 else ""
        skipping = f", or skip broken plugins with {SKIP_BROKEN_ENV}=1 (on the command line: {SKIP_BROKEN_KEY}=true)"
        raise PluginError(f"{broken[0].error}{skipping}{more}")
    for plugin in broken:
        if plugin.source not in _warned:
            _warned.add(plugin.source)
            warnings.warn(f"skipping broken {plugin.error}", PluginWarning, stacklevel=2)
    return [_load_file(spec, folder) if _is_path(spec) else _load_module(spec, folder) for spec in specs]


@contextlib.contextmanager
def plugin_warnings_on_one_line(prog: str) -> Iterator[None]:
    """Print each skipped broken plugin's warning raised inside as one ``<prog>: warning: ...`` line on
    stderr, even under ``PYTHONWARNINGS=ignore``, and cnnpl's own warnings the same way (helper-139: render
    showed the uneven-classes warning as Python does, with the line of cnnpl's code that warned); other
    warnings are shown as Python shows them."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        yield
    for warning in caught:
        own = issubclass(warning.category, UserWarning) and os.path.abspath(warning.filename).startswith(package)
        if issubclass(warning.category, PluginWarning) or own:
            print(f"{prog}: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)


def loaded_plugins() -> list[Plugin]:
    """Every plugin tried so far: installed ones (broken ones with their error) and named ones, each once
    (a file named both as a path and as a module is one plugin)."""
    return [*installed_plugins(), *dict.fromkeys(_named.values())]


def _parse_override(token: str) -> tuple[str, object]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        override = OverridesParser.create().parse_overrides([token])[0]
    except HydraException as err:  # plugins=[~/a.py]: the grammar's reason, and how to quote, in one line
        from cnnpl.config import one_line_composition_error

        raise CnnplError(one_line_composition_error(err, [token])) from None
    if override.is_sweep_override():
        key, _, value = token.partition("=")
        if override.key_or_group == "plugins" and "(" not in value:  # plugins=a.py,b.py: several, not a sweep
            items = [item for choice in override.sweep_iterator() for item in _as_list(choice)]  # [a],[b]: a, b
            listed = ",".join(dict.fromkeys(str(item) for item in items))
            raise CnnplError(f"{token!r}: several plugins are one list, {key}=[{listed}]; plugins cannot be swept (-m)")
        raise CnnplError(f"{token!r}: {override.key_or_group} cannot be swept; give one value")
    return override.key_or_group, override.value()


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def split_plugin_overrides(args: Sequence[str]) -> tuple[list[str], bool | None, list[str]]:
    """Read ``plugins=[...]`` and ``skip_broken_plugins=...`` out of command-line style ``args``.

    Returns the plugin specs, the skip switch (None if not given) and the args for Hydra:
    ``plugins=`` stays (it is a config key, so the saved config records it), ``skip_broken_plugins=``
    is removed (a start-up switch like the environment variable). ``plugins=`` given twice is refused (the last
    one replaced the first without a word, helper-136); the switch's last occurrence wins.
    """
    specs: list[str] = []
    skip: bool | None = None
    rest: list[str] = []
    given: list[str] = []
    for token in args:
        key = token.split("=", 1)[0].lstrip("+~") if "=" in token and not token.startswith("-") else ""
        if key == PLUGINS_KEY:
            _, value = _parse_override(token)
            if given:
                both = ",".join(dict.fromkeys([*specs, *plugin_specs(value)]))
                raise CnnplError(
                    f"{given[0]} and {token}: plugins= given twice, where the second would replace the first; give "
                    f"one list: plugins=[{both}]"
                )
            given.append(token)
            specs = plugin_specs(value)
        elif key == SKIP_BROKEN_KEY:
            _, value = _parse_override(token)
            if not isinstance(value, bool):
                raise CnnplError(f"{SKIP_BROKEN_KEY} must be true or false, got {yaml_word(value)}")
            skip = value
            continue
        rest.append(token)
    return specs, skip, rest


installed_plugins()  # importing cnnpl loads the installed plugins (failures are kept, not raised)
