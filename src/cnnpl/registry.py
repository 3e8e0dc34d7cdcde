"""Component registries: one :class:`Registry` per family of interchangeable parts.

Families: ``conv``, ``pool``, ``norm``, ``act``, ``model`` and ``callback``. Every family is a Hydra
config group of the same name, so a registered name is also a command-line word (``pool=mixed``).

The built-in callbacks import Lightning, which ``--help``, ``--cfg`` and the listing must not pay for:
they are registered by name and place (:data:`BUILTIN_CALLBACKS`) as :class:`LazyBuiltin` stand-ins,
whose signature is read from source; building one imports its module, which registers the real class.
A plugin that takes a built-in callback's name is refused like any other clash, whether or not
``cnnpl.callbacks`` has been imported.

    >>> import cnnpl
    >>> "conv2d" in cnnpl.list_components("conv")
    True
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
import importlib
import inspect
import numbers
import operator
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from cnnpl.errors import CnnplError, DuplicateComponentError, UnknownComponentError, yaml_word

T = TypeVar("T", bound=Callable[..., Any])

FAMILIES = ("conv", "pool", "norm", "act", "model", "callback")
# The layer factories cnnpl passes to a model by keyword (cnnpl.network.build_model): conv and pool to every
# model, norm and act to one that takes them
MODEL_FACTORIES = ("conv", "pool", "norm", "act")

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
    """``"; did you mean 'x'?"`` with the closest of ``choices``, or ``"."`` when none is close: either ends
    the sentence, so the list that follows reads the same with and without a suggestion."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."


# Words Hydra's override parser reads as values, whatever their case: pool=true is a bool, not a name
HYDRA_WORDS = {"true": "true", "false": "false", "null": "null", "inf": "infinity", "nan": "not-a-number"}


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
        self._deferred: dict[str, str] = {}  # built-ins known before their module is imported: name -> target

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
        # ASCII only: Python accepts "pööl" as an identifier, but Hydra's command-line parser does not
        if not isinstance(name, str) or not (name.isascii() and name.isidentifier()):
            raise ValueError(
                f"{self.family} component name {name!r} must be a Python identifier "
                "(ASCII letters, digits and underscores) so it can be used on the command line"
            )
        if name.lower() in HYDRA_WORDS:
            raise ValueError(
                f"{self.family} component name {name!r} cannot be used on the command line: Hydra reads "
                f"{self.family}={name} as {HYDRA_WORDS[name.lower()]}, not as a name; pick another name"
            )

        def add(target: T) -> T:
            if not callable(target):
                raise TypeError(f"{self.family} {name!r}: can only register a class or a function, got {target!r}")
            module_class = getattr(sys.modules.get("torch.nn"), "Module", None)  # (loaded where it is one)
            if module_class is not None and isinstance(target, module_class):  # register(..)(nn.MaxPool2d(2))
                raise TypeError(
                    f"{self.family} {name!r}: register the class {type(target).__name__}, not a layer made of it: "
                    f"cnnpl builds each layer from the config's settings"
                )
            # cnnpl's own modules are built-in even when a plugin's import is what first imported them
            builtin = _source_of(target) == "built-in"
            source = _current_source[-1] if _current_source and not builtin else _source_of(target)
            old = self._entries.get(name)
            if builtin and old is not None and self._deferred.get(name) == _target_of(target):
                if old.source == "built-in":  # the stand-in, now that the module is imported
                    self._entries[name] = Entry(name, target, source)
                return target  # otherwise a plugin replaced it on purpose (override=True): it stays
            if old is not None and not override and old.obj is not target:
                raise DuplicateComponentError(
                    f"{self.family} {name!r} is already registered by {old.source}; {source} tried to register "
                    f"it again. Pick another name, or pass override=True to replace it"
                )
            # here, not at the top: config imports this module
            from cnnpl.config import check_configurable, check_option_name

            if old is None and not builtin:
                check_option_name(self.family, name)
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
        """The registered object; a :class:`LazyBuiltin` for a built-in whose module is not imported yet."""
        return self.entry(name).obj

    def load(self, name: str) -> Callable[..., Any]:
        """The registered object itself: a built-in's module is imported (:meth:`LazyBuiltin.load`)."""
        obj = self.get(name)
        return obj.load() if isinstance(obj, LazyBuiltin) else obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def defer(self, name: str, target: str) -> None:
        """Register the built-in ``target`` (``"package.module:Class"``) by name, without importing it.

        Its module must register the object under ``name`` when imported; until then the registry holds
        a :class:`LazyBuiltin`. A plugin that registered ``name`` with ``override=True`` in the meantime
        keeps it: the module's registration then leaves the plugin's entry in place.
        """
        self._deferred[name] = target
        self._entries[name] = Entry(name, LazyBuiltin(self, name, target), "built-in")

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the component ``name`` with ``args`` and ``kwargs``, keywords checked against its signature first.

        A keyword the component does not take raises :class:`UnknownComponentError`: with a "did you
        mean" among the parameters it does take or, when another component is being built (an
        architecture building its layers, whose config keywords were checked when its factory was
        made), naming that component and the components of this family that take the keyword.
        A ``TypeError`` or ``ValueError`` from the constructor (``model.hidden=5``) becomes a
        :class:`CnnplError` naming the component and its settings.
        """
        obj = self.load(name)
        what = f"{self.family} {name!r}"
        if _building:
            self._check_caller_kwargs(name, obj, kwargs, caller=_building[-1])
        else:
            if self.family == "model":
                _check_takes_factories(obj, kwargs, what=what)
                if "input_size" in kwargs:
                    kwargs["input_size"] = _image_size(kwargs["input_size"], what)
            check_kwargs(obj, kwargs, what=what)
            if self.family == "model":  # the config's checks, for a Python caller too (dropout="0.5" was "'<' not
                # supported between instances of 'str' and 'int'"); the layers check their own, in Python's words
                from cnnpl.config import check_values

                given = {**_positional(obj, args), **kwargs}
                if self.entry(name).source == "built-in":  # a plugin's may take num_classes=0 (timm: no head)
                    for key in ("num_classes", "in_channels"):  # the data's on the command line; Python's own here
                        if key in given:
                            _check_count(given[key], key, what)
                check_values("model", name, given, from_config=False, target=obj)
            elif self.family == "callback":
                from cnnpl.config import check_values, constructor_settings

                check_values("callback", name, kwargs, keys=f"callbacks.{name}")
                kwargs = constructor_settings("callback", name, kwargs)
        _building.append(what)
        try:
            return obj(*args, **kwargs)
        except CnnplError:
            raise
        except Exception as err:
            # TypeError and ValueError: a setting the constructor refused. A plugin's constructor may refuse one
            # otherwise too (an assert, a KeyError of a lookup table): named with its place in the plugin's code.
            # Anything else from a built-in is cnnpl's bug: its traceback.
            if isinstance(err, (TypeError, ValueError)):
                reason = (str(err).splitlines() or [type(err).__name__])[0]
            elif self.entry(name).source != "built-in":
                from cnnpl.plugins import _reason

                reason = _reason(err)
            else:
                raise
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
            if self.entry(name).source != "built-in":  # a plugin's author needs the signature fixed (helper-136)
                choose = f"; add {key} to its signature (or **kwargs){choose.replace('; choose', ', or choose', 1)}"
            raise UnknownComponentError(
                f"{caller} calls its {self.family} layers with {key}={value!r}, which {self.family} {name!r} "
                f"does not take ({has}){choose}"
            )


def _check_takes_factories(obj: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> None:
    """Refuse a model that does not take the layer factories it is called with: the user never set them, so
    "no parameter 'conv'" would point at the config instead of the model's signature."""
    if accepts_var_kwargs(obj):
        return
    params = parameters_of(obj)
    missing = [f"{family}=" for family in MODEL_FACTORIES if family in kwargs and family not in params]
    if missing:
        raise UnknownComponentError(
            f"{what} must accept {', '.join(missing)} (the layer factories cnnpl passes to every model, with norm= "
            f"and act= if it takes them; see docs/plugins.md): add {'it' if len(missing) == 1 else 'them'} to its "
            "signature, or **kwargs"
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
    return ", ".join(f"{k}={yaml_word(v)}" for k, v in (changed or settings).items())


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


def _target_of(obj: Any) -> str:
    """``"package.module:QualName"`` of a class or function, as :meth:`Registry.defer` takes it."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"


class LazyBuiltin:
    # No docstring of its own: ``__doc__`` below is the component's, read from its source.

    def __init__(self, registry: Registry, name: str, target: str) -> None:
        """Stand in for the built-in ``target`` (``"package.module:Class"``) registered as ``name``.

        Calling it (or :meth:`load`) imports the module, whose ``register`` call replaces the stand-in
        in the registry with the real object, and calls that. Its ``__module__``, ``__qualname__``,
        signature and docstring are the real object's, read from the source, so listing it, or making
        its config option, imports nothing.
        """
        self._registry, self._name = registry, name
        module, _, qualname = target.partition(":")
        self.__module__, self.__qualname__, self.__name__ = module, qualname, qualname.rpartition(".")[2]

    def __repr__(self) -> str:
        family = self._registry.family
        return f"<{family} {self._name!r}: {self.__module__}.{self.__qualname__}, not imported yet>"

    @functools.cached_property
    def _static(self) -> tuple[inspect.Signature, str | None]:
        return static_signature(self.__module__, self.__qualname__)

    @property
    def __signature__(self) -> inspect.Signature:
        return self._static[0]

    @property  # type: ignore[misc]
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._static[1]

    def load(self) -> Callable[..., Any]:
        """Import the module and return the real object."""
        obj = getattr(importlib.import_module(self.__module__), self.__qualname__)
        entry = self._registry._entries.get(self._name)
        if entry is not None and entry.obj is self:  # the module registered nothing now: it was imported before
            self._registry._entries[self._name] = Entry(self._name, obj, "built-in")
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


class SourceText:
    """A default value that only running the code could give (``make_default()``): shown as written."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _NotStatic(Exception):
    """An expression whose value needs the code to run."""


_PACKAGE_DIR = Path(__file__).resolve().parent
_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
# What reading a module's source can raise: not a cnnpl module, a file that cannot be read or parsed
_UNREADABLE = (_NotStatic, OSError, SyntaxError, ValueError)


@functools.cache
def _module_tree(module: str) -> ast.Module:
    """The parsed source of the cnnpl module ``module``, found without importing it (or its package)."""
    parts = module.split(".")
    base = _PACKAGE_DIR.joinpath(*parts[1:])
    path = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if parts[0] != "cnnpl" or path is None:
        raise _NotStatic(module)
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _definition(module: str, name: str) -> tuple[str, ast.AST]:
    """``(module, node)`` defining the top-level ``name`` of ``module``: a class, a function, a constant's
    value, or (``from cnnpl import viz``) the module it names, as ``(module, tree)``."""
    for node in _module_tree(module).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(target, ast.Name) and target.id == name for target in targets):
                return module, node.value
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    try:  # a module (from cnnpl import viz) or a name defined in one
                        return f"{node.module}.{alias.name}", _module_tree(f"{node.module}.{alias.name}")
                    except _NotStatic:
                        return _definition(node.module, alias.name)
    raise _NotStatic(f"{module}.{name}")


def _static_value(node: ast.AST, module: str) -> Any:
    """The value of a default written with constants, containers, arithmetic and module constants."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_static_value(item, module) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        return {_static_value(k, module): _static_value(v, module) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _static_value(node.operand, module)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_static_value(node.left, module), _static_value(node.right, module))
    if isinstance(node, ast.Name):  # a constant of the module: DEFAULT_METRICS
        return _static_value(*reversed(_definition(module, node.id)))
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):  # viz.DEMO_KERNELS
        owner, tree = _definition(module, node.value.id)
        if isinstance(tree, ast.Module):
            return _static_value(*reversed(_definition(owner, node.attr)))
    raise _NotStatic(type(node).__name__)


def static_signature(module: str, qualname: str) -> tuple[inspect.Signature, str | None]:
    """The signature and docstring of the class or function ``module:qualname``, read from source.

    For a cnnpl module only (it is found in the package folder, so no ``__init__`` runs). A class without
    an ``__init__`` of its own takes the one of its first base, followed through the cnnpl modules. A
    default that only running the code could give is a :class:`SourceText`; a signature the source
    does not tell is ``(*args, **kwargs)``. Annotations are the text as written (as under
    ``from __future__ import annotations``).
    """
    unknown = inspect.Signature(
        [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]
    )
    try:
        where, node = _definition(module, qualname)
    except _UNREADABLE:
        return unknown, None
    doc = ast.get_docstring(node) if isinstance(node, (ast.ClassDef, ast.FunctionDef)) else None
    while isinstance(node, ast.ClassDef):  # a class: its __init__, or its first base's
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is not None:
            return _signature(init, where, method=True), doc
        if not (node.bases and isinstance(node.bases[0], ast.Name)):
            return unknown, doc
        try:
            where, node = _definition(where, node.bases[0].id)
        except _UNREADABLE:
            return unknown, doc
    if isinstance(node, ast.FunctionDef):
        return _signature(node, where, method=False), doc
    return unknown, doc


def _signature(function: ast.FunctionDef, module: str, *, method: bool) -> inspect.Signature:
    P = inspect.Parameter

    def parameter(arg: ast.arg, kind: Any, default: ast.expr | None = None) -> inspect.Parameter:
        annotation = ast.unparse(arg.annotation) if arg.annotation is not None else P.empty
        if default is None:
            return P(arg.arg, kind, annotation=annotation)
        try:
            value = _static_value(default, module)
        except (*_UNREADABLE, ArithmeticError, TypeError, RecursionError):
            value = SourceText(ast.unparse(default))
        return P(arg.arg, kind, default=value, annotation=annotation)

    args = function.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [
        parameter(arg, P.POSITIONAL_ONLY if i < len(args.posonlyargs) else P.POSITIONAL_OR_KEYWORD, default)
        for i, (arg, default) in enumerate(zip(positional, defaults, strict=True))
    ][1 if method else 0 :]  # without self
    if args.vararg:
        params.append(parameter(args.vararg, P.VAR_POSITIONAL))
    params += [
        parameter(arg, P.KEYWORD_ONLY, default) for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg:
        params.append(parameter(args.kwarg, P.VAR_KEYWORD))
    returns = ast.unparse(function.returns) if function.returns is not None else inspect.Signature.empty
    return inspect.Signature(params, return_annotation=returns)


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


def located(target: str) -> Any:
    """What the dotted path ``target`` names (``hydra.utils.get_object``), without the three-line error Hydra logs
    when it names nothing: the callers say why in one line, or leave it to the build (helper-130: four copies
    on the console, and in the run's log)."""
    import logging

    from hydra.utils import get_object

    hydra_log = logging.getLogger("hydra.utils")
    was, hydra_log.disabled = hydra_log.disabled, True
    try:
        return get_object(target)
    finally:
        hydra_log.disabled = was


def keyword_chain(obj: Callable[..., Any]) -> tuple[list[Callable[..., Any]], bool]:
    """The callables a keyword argument of ``obj`` can reach: a class's ``__init__``, then, while each
    passes ``**kwargs`` on, its bases' (for a function, the function); and whether the last of them still
    takes ``**kwargs`` (then a keyword none of them names may yet be read further on)."""
    inits = [c.__init__ for c in inspect.getmro(obj) if "__init__" in vars(c)] if inspect.isclass(obj) else [obj]
    chain: list[Callable[..., Any]] = []
    for init in inits:
        chain.append(init)
        if not accepts_var_kwargs(init):
            return chain, False
    return chain, True


def setting_of_another(family: str, chosen: str, setting: str, hidden: Collection[str] = ()) -> str | None:
    """What to say of ``family.setting`` given for ``family=chosen``, which does not take it, when other registered
    components of ``family`` name it in their constructor (``conv.kernel_depth`` with ``conv=conv2d``); None when
    none does, or it is one of the ``hidden`` settings (a model's ``conv``: no config setting)."""
    registry = get_registry(family)
    elsewhere = []
    for name in registry.names() if setting not in hidden else ():
        try:
            if name != chosen and setting in parameters_of(registry.get(name)):
                elsewhere.append(name)
        except Exception:  # a component whose signature cannot be read is left out, not the message
            continue
    if not elsewhere:
        return None
    options = ", ".join(f"{family}={name}" for name in elsewhere)
    which = "it" if len(elsewhere) == 1 else "one of them"
    return (
        f"{family}.{setting} is not a setting of {family}={chosen}, but of {options}; choose {which} "
        f"({family}={elsewhere[0]} {family}.{setting}=...)"
    )


def check_kwargs(obj: Callable[..., Any], kwargs: dict[str, Any], *, what: str) -> None:
    if accepts_var_kwargs(obj):
        return
    params = parameters_of(obj)
    for key in kwargs:
        if key not in params:
            err = UnknownComponentError(
                f"{what} has no parameter {key!r}{_did_you_mean(key, list(params))} "
                f"Parameters: {', '.join(params) or '(none)'}"
            )
            err.unknown = [k for k in kwargs if k not in params]  # all of them, for the command line's advice
            raise err


# The built-in callbacks (cnnpl.callbacks), registered by name so that listing them, or giving them
# config options, does not import Lightning; each module registers its class when it is imported.
# tests/test_registry.py checks this table against what the modules register.
BUILTIN_CALLBACKS = {
    "confusion_matrix": "cnnpl.callbacks.diagnostics:ConfusionMatrixCallback",
    "embedding": "cnnpl.callbacks.embedding:EmbeddingCallback",
    "feature_maps": "cnnpl.callbacks.feature_maps:FeatureMapsCallback",
    "filters": "cnnpl.callbacks.filters:FiltersCallback",
    "freeze": "cnnpl.callbacks.freeze:FreezeAfter",
    "gradcam": "cnnpl.callbacks.gradcam:GradCAMCallback",
    "histograms": "cnnpl.callbacks.histograms:HistogramsCallback",
    "hparams": "cnnpl.callbacks.hparams:HParamsCallback",
    "kernels_demo": "cnnpl.callbacks.kernels_demo:KernelsDemoCallback",
    "lookahead": "cnnpl.callbacks.averaging:Lookahead",
    "misclassified": "cnnpl.callbacks.diagnostics:MisclassifiedCallback",
    "per_class_accuracy": "cnnpl.callbacks.diagnostics:PerClassAccuracyCallback",
    "pr_curves": "cnnpl.callbacks.diagnostics:PRCurvesCallback",
}

REGISTRIES: dict[str, Registry] = {family: Registry(family) for family in FAMILIES}
for _name, _target in BUILTIN_CALLBACKS.items():
    REGISTRIES["callback"].defer(_name, _target)


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


def chosen_component(module: Any, components: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(family, name)`` of the run's choice (``components``: ``{"conv": "tiled", ...}``) whose registered
    class ``module`` is an instance of; None when it is none of them (a layer the architecture built)."""
    for family, name in (components or {}).items():
        registry = get_registry(family)
        if isinstance(name, str) and name in registry.names():
            obj = registry.get(name)
            if isinstance(obj, type) and isinstance(module, obj):
                return family, name
    return None


def _positional(obj: Callable[..., Any], args: tuple[Any, ...]) -> dict[str, Any]:
    """``args`` by the names of the parameters they are given for (``cnnpl.build("model", "simple_cnn", 0)``:
    ``{"num_classes": 0}``); those past the named parameters are left out (the constructor says what is wrong)."""
    if not args:
        return {}
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return {}
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return dict(zip(names, args, strict=False))


def _check_count(value: Any, key: str, what: str) -> None:
    """Refuse a class or channel count that is not a positive integer (``num_classes=0`` built a network with an
    empty last layer, torch's warning only; ``-3``: "Trying to create tensor with negative dimension")."""
    from cnnpl.geometry import as_int  # (it imports torch: here, not at the top)

    count = as_int(value)  # numpy's and torch's integers too
    if count is None or count < 1:
        raise CnnplError(f"{what}: {key} must be a positive integer, got {yaml_word(value)}")


def _image_size(value: Any, what: str) -> Any:
    """An architecture's ``input_size`` as ``(height, width)``: one int is a square's side (``input_size=12`` failed
    inside the model with "Value after * must be an iterable, not int"); anything else is refused in one line."""
    if value is None:  # the architecture's own default, or its refusal
        return value
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if (
        isinstance(pair, (list, tuple))
        and len(pair) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in pair)
    ):
        return tuple(int(v) for v in pair)  # numpy's integers too
    raise CnnplError(
        f"{what}: input_size must be (height, width) in pixels, or one int for a square; got {yaml_word(value)} (the "
        "channels are in_channels=)"
    )


def build(family: str, name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Build the component ``family/name``; see :meth:`Registry.build`."""
    return get_registry(family).build(name, *args, **kwargs)


def built_by(node: Any) -> tuple[str, str] | None:
    """The ``(family, name)`` of the registered component a config node builds through :func:`build`
    (``{_target_: cnnpl.registry.build, _args_: [callback, freeze]}``, as ``callbacks=[freeze]`` writes it, or
    ``cnnpl.build``); None for any other node. Nothing is imported or checked: the name may not be registered."""
    if not isinstance(node, Mapping) or node.get("_target_") not in (f"{__name__}.build", "cnnpl.build"):
        return None
    args = list(node.get("_args_") or [])
    return (str(args[0]), str(args[1])) if len(args) == 2 else None


def list_components(family: str) -> list[str]:
    """The sorted names registered under ``family``."""
    return get_registry(family).names()
