"""Component registries: one :class:`Registry` per family of interchangeable parts.

Families: ``conv``, ``pool``, ``norm``, ``act``, ``model`` and ``callback``. Every family is a Hydra
config group of the same name, so a registered name is also a command-line word (``pool=mixed``).

    >>> import cnnpl
    >>> "conv2d" in cnnpl.list_components("conv")
    True
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from cnnpl.errors import CnnplError, DuplicateComponentError, UnknownComponentError

T = TypeVar("T", bound=Callable[..., Any])

FAMILIES = ("conv", "pool", "norm", "act", "model", "callback")

# Where a component came from; plugin loaders set this while they import a plugin
# (see :func:`registering_from`).
_current_source: list[str] = []
# The components being built by Registry.build, innermost last ("model 'simple_cnn'")
_building: list[str] = []


@dataclass(frozen=True)
class Entry:
    """A registered component: the class or factory, and where it came from."""

    name: str
    obj: Callable[..., Any]
    source: str


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Registry:
    """Maps names to classes or factories of one family.

    ``register`` works as a decorator (``@reg.register("name")``) or a plain call
    (``reg.register("name", obj)``). A name already taken raises :class:`DuplicateComponentError`
    naming both sources unless ``override=True``. Looking up a missing name raises
    :class:`UnknownComponentError` listing what is available and the closest matches.
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {sorted(self._entries)})"

    @overload
    def register(self, name: str, obj: None = None, *, override: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, override: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, override: bool = False) -> Any:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"{self.family} component name {name!r} must be a Python identifier "
                "(letters, digits and underscores) so it can be used on the command line"
            )

        def add(target: T) -> T:
            if not callable(target):
                raise TypeError(f"{self.family} {name!r}: can only register a class or a function, got {target!r}")
            # cnnpl's own modules are built-in even when a plugin's import is what first imported them
            builtin = _source_of(target) == "built-in"
            source = _current_source[-1] if _current_source and not builtin else _source_of(target)
            old = self._entries.get(name)
            if old is not None and not override and old.obj is not target:
                raise DuplicateComponentError(
                    f"{self.family} {name!r} is already registered by {old.source}; {source} tried to register "
                    f"it again. Pick another name, or pass override=True to replace it"
                )
            from cnnpl.config import check_configurable  # here, not at the top: config imports this module

            check_configurable(self.family, name, target)
            self._entries[name] = Entry(name, target, source)
            return target

        return add if obj is None else add(obj)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise UnknownComponentError(
                f"unknown {self.family} {name!r}{_did_you_mean(name, names)} Available: {', '.join(names) or '(none)'}"
            ) from None

    def get(self, name: str) -> Callable[..., Any]:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the component ``name`` with ``args`` and ``kwargs``, keywords checked against its signature first.

        A keyword the component does not take raises :class:`UnknownComponentError`: with a "did you
        mean" among the parameters it does take or, when another component is being built (an
        architecture building its layers, whose config keywords were checked when its factory was
        made), naming that component and the components of this family that take the keyword.
        A ``TypeError`` or ``ValueError`` from the constructor (``model.hidden=5``) becomes a
        :class:`CnnplError` naming the component and its settings.
        """
        obj = self.get(name)
        what = f"{self.family} {name!r}"
        if _building:
            self._check_caller_kwargs(name, obj, kwargs, caller=_building[-1])
        else:
            check_kwargs(obj, kwargs, what=what)
        _building.append(what)
        try:
            return obj(*args, **kwargs)
        except CnnplError:
            raise
        except (TypeError, ValueError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            settings = _settings(self.family, obj, kwargs)
            keys = f"callbacks.{name}" if self.family == "callback" else self.family
            raise CnnplError(
                f"{what} could not be built{f' with {settings}' if settings else ''}: {reason}; "
                f"check the {keys}.* settings (HYDRA_FULL_ERROR=1 shows the traceback)"
            ) from err
        finally:
            _building.pop()

    def _check_caller_kwargs(self, name: str, obj: Callable[..., Any], kwargs: dict[str, Any], *, caller: str) -> None:
        """Refuse a keyword that ``caller``'s code (not the config) passes and component ``name`` does not take."""
        if accepts_var_kwargs(obj):
            return
        params = parameters_of(obj)
        for key, value in kwargs.items():
            if key in params:
                continue
            takers = [n for n in self.names() if key in parameters_of(self.get(n)) or accepts_var_kwargs(self.get(n))]
            has = f"its parameters: {', '.join(params)}" if params else "it takes no parameters"
            choose = f"; choose a {self.family} that takes {key}: {self.family}={', '.join(takers)}" if takers else ""
            raise UnknownComponentError(
                f"{caller} calls its {self.family} layers with {key}={value!r}, which {self.family} {name!r} "
                f"does not take ({has}){choose}"
            )


def _settings(family: str, obj: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """``key=value, ...`` of the config's settings among ``kwargs``: those that differ from the defaults, or all.

    What the caller supplies (channels, the layer factories of a model) is left out.
    """
    from cnnpl.config import HIDDEN_FROM_CONFIG, SUPPLIED_BY_CALLER  # config imports this module

    left_out = SUPPLIED_BY_CALLER.get(family, frozenset()) | HIDDEN_FROM_CONFIG.get(family, frozenset())
    params = parameters_of(obj)
    settings = {k: v for k, v in kwargs.items() if k not in left_out}

    def default(key: str) -> Any:
        value = params[key].default if key in params else inspect.Parameter.empty
        return list(value) if isinstance(value, tuple) else value

    changed = {k: v for k, v in settings.items() if not _equal(v, default(k))}
    return ", ".join(f"{k}={v!r}" for k, v in (changed or settings).items())


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # tensors and other values without a plain truth value
        return False


@contextlib.contextmanager
def registering_from(source: str) -> Iterator[None]:
    """Record ``source`` as the origin of everything registered inside the block.

    If the block raises, what it registered is taken out again (and what it overrode put back), so
    a plugin that fails half-way leaves none of its components behind. Built-ins its import
    happened to pull in stay: their modules stay imported.
    """
    saved = {family: dict(reg._entries) for family, reg in REGISTRIES.items()}
    _current_source.append(source)
    try:
        yield
    except BaseException:
        for family, reg in REGISTRIES.items():
            for name, entry in list(reg._entries.items()):
                if entry.source != source:
                    continue
                if name in saved[family]:
                    reg._entries[name] = saved[family][name]
                else:
                    del reg._entries[name]
        raise
    finally:
        _current_source.pop()


def _source_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return "built-in" if module.startswith("cnnpl.") else f"module {module}"


def parameters_of(obj: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-usable parameters of a class's ``__init__`` or of a function."""
    sig = inspect.signature(obj)
    return {
        n: p
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def accepts_var_kwargs(obj: Callable[..., Any]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(obj).parameters.values())


def check_kwargs(obj: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> None:
    if accepts_var_kwargs(obj):
        return
    params = parameters_of(obj)
    for key in kwargs:
        if key not in params:
            raise UnknownComponentError(
                f"{what} has no parameter {key!r}{_did_you_mean(key, list(params))} "
                f"Parameters: {', '.join(params) or '(none)'}"
            )


REGISTRIES: dict[str, Registry] = {family: Registry(family) for family in FAMILIES}


def get_registry(family: str) -> Registry:
    try:
        return REGISTRIES[family]
    except KeyError:
        raise UnknownComponentError(
            f"unknown component family {family!r}{_did_you_mean(family, list(REGISTRIES))} "
            f"Families: {', '.join(REGISTRIES)}"
        ) from None


@overload
def register(family: str, name: str, obj: None = None, *, override: bool = False) -> Callable[[T], T]: ...


@overload
def register(family: str, name: str, obj: T, *, override: bool = False) -> T: ...


def register(family: str, name: str, obj: Any = None, *, override: bool = False) -> Any:
    """Register ``obj`` (or, used as a decorator, the decorated class or function) as ``family/name``."""
    return get_registry(family).register(name, obj, override=override)


def build(family: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Build the component ``family/name``; see :meth:`Registry.build`."""
    return get_registry(family).build(name, *args, **kwargs)


def list_components(family: str) -> list[str]:
    """The sorted names registered under ``family``."""
    return get_registry(family).names()
