"""Building the network from a composed config, and saying in one line why one cannot be built.

:func:`build_model` builds the architecture the config names with the conv, pool, norm and act components it
chooses. Where that fails, the functions here find the cause a user can fix: a setting the component does not
take, a ``_target_`` that does not import, an input too small for the network's stride (and the smallest side
that works), branches whose shapes disagree, or a component the architecture never calls.
:mod:`cnnpl.train` runs what is built.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig

from cnnpl.config import layer_factory
from cnnpl.errors import CnnplError, GeometryError, first_few, shown_cause, yaml_word
from cnnpl.factory import LayerFactory


def _target_not_found(node: Any) -> str | None:
    """The message for a ``_target_`` that cannot be found, naming its key and the part of its dotted path that
    is missing, with the close name where there is one (``torch.optim.RMSProp``: did you mean
    ``torch.optim.RMSprop``?; ``torch.optimm.SGD``: ``torch.optim.SGD``?); None when every part is there (a
    module that fails on import: Hydra's message gives its error)."""
    import importlib

    target = str(node.get("_target_", "")) if hasattr(node, "get") else ""
    key = node._get_full_key(None) if isinstance(node, DictConfig) and node._key() else "its"  # callbacks.x
    parts = target.split(".")
    found: Any = None
    for depth in range(len(parts) - 1, 0, -1):  # the longest prefix that imports
        prefix = ".".join(parts[:depth])
        try:
            found = importlib.import_module(prefix)
            break
        except ModuleNotFoundError as err:
            this_one = err.name is not None and (prefix == err.name or prefix.startswith(f"{err.name}."))
            if not this_one:  # the module is there, and imports a missing one: Hydra's message gives its error
                return None
        except Exception:  # a module that fails on import: Hydra's message gives its error
            return None
    else:
        if len(parts) == 1:  # _target_=SGD
            return f"{key}._target_={target}: give the full dotted path of a class or function (package.module.Name)"
        return (
            f"{key}._target_={target}: no module named {parts[0]!r}; install the package that has it, or give the "
            "dotted path of an importable class or function"
        )
    while depth < len(parts) and hasattr(found, parts[depth]):
        found, depth = getattr(found, parts[depth]), depth + 1
    if depth == len(parts):
        return None
    missing, above = parts[depth], ".".join(parts[:depth])
    names = [name for name in dir(found) if not name.startswith("_")]
    if depth == len(parts) - 1:  # the last part names what is built
        names = [name for name in names if callable(getattr(found, name, None))]
    close = [name for name in names if name.lower() == missing.lower()] or difflib.get_close_matches(
        missing, names, n=1, cutoff=0.75
    )
    fix = (
        f"did you mean {'.'.join([*parts[:depth], close[0], *parts[depth + 1 :]])}?"
        if close
        else "give the dotted path of an importable class or function"
    )
    return f"{key}._target_={target}: {above} has no {missing!r}; {fix}"


def instantiate_node(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that surfaces a :class:`CnnplError` raised inside the target."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, CnnplError):
            raise cause from None
        if cause is None and str(err).startswith("Expected a callable target"):  # _target_=torch.optim.adam
            lines = str(err).splitlines()
            key = _full_key(err) or "its"
            raw = node.get("_target_") if hasattr(node, "get") else "?"
            if not isinstance(raw, str):  # _target_=null was "=None ... (it is a 'NoneType')"
                raise CnnplError(
                    f"{key}._target_ must be the dotted path of a class or function to build "
                    f"(torch.optim.SGD), got {yaml_word(raw)}"
                ) from None
            target = raw
            module = sys.modules.get(target)  # a module: Hydra imported it
            last = target.rpartition(".")[2].lower()
            same = [name for name in dir(module) if name.lower() == last and callable(getattr(module, name, None))]
            hint = f"did you mean {target}.{same[0]}? " if module is not None and same else ""
            raise CnnplError(
                f"{key}._target_={target} names no class or function (it is a {lines[0].rsplit(' of type ', 1)[-1]}"
                f"); {hint}give the class or function to build"
            ) from None
        locating = isinstance(cause, ImportError) and str(err).startswith("Error locating target")
        missing = _target_not_found(node) if locating else None
        if missing is not None:  # _target_=torch.optim.RMSProp: Hydra's three sentences, no key and no suggestion
            raise CnnplError(missing) from None
        unknown = _unknown_keyword(node, cause, _full_key(err))
        if unknown is not None:  # data.val_splt on a data module of one's own: the class's TypeError alone
            raise CnnplError(unknown) from None
        # Lightning's refusals of its environment at the Trainer's build are RuntimeErrors too (SLURM's --ntasks
        # without --ntasks-per-node: Hydra's five lines, helper-135)
        target = str(node.get("_target_", "")) if hasattr(node, "get") else ""
        lightnings = isinstance(cause, RuntimeError) and target.startswith("lightning.")
        if lightnings or isinstance(cause, (TypeError, ValueError, MisconfigurationException, ImportError)):
            # ImportError: a package the setting needs (accelerator=tpu: torch_xla), or a _target_ not found;
            # Hydra's hint names an environment variable that shows nothing more here
            first = str(err).splitlines()[0].replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception.", ":")
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            reason = "; ".join(line.rstrip(":") for line in lines) if len(lines) > 1 else str(cause)
            key = _full_key(err)
            if key and not isinstance(cause, ImportError):  # callbacks.checkpoint.mode=maxx: name the settings' key
                first = f"{key} ({first.removeprefix('Error in call to target ').rstrip(':').strip(chr(39))}):"
            raise CnnplError(f"{first} {reason}") from shown_cause(cause)
        raise


def _full_key(err: BaseException) -> str:
    """The config key Hydra's instantiation error names on its last line (``full_key: callbacks.checkpoint``), or
    ``""``."""
    last = str(err).splitlines()[-1] if str(err) else ""
    return last.removeprefix("full_key: ") if last.startswith("full_key: ") else ""


def _unknown_keyword(node: Any, cause: BaseException | None, key: str) -> str | None:
    """What to say of a setting the ``_target_`` of ``node`` (the config's ``key``) refused as an unexpected
    keyword (its ``TypeError``), with the one meant among those it and its bases take; None for any other error.
    Asked after the build (a class of one's own may take keywords its signature does not show)."""
    import difflib

    from cnnpl.registry import keyword_chain, located, parameters_of

    found = (
        re.search(r"got an unexpected keyword argument '(\w+)'", str(cause)) if isinstance(cause, TypeError) else None
    )
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if found is None or not isinstance(target, str) or found.group(1) not in node:
        return None

    try:
        chain, _ = keyword_chain(located(target))
        names = list(dict.fromkeys(n for f in chain for n in parameters_of(f) if n not in ("self", "args", "kwargs")))
    except Exception:  # no signature to read: Hydra's message as it is
        return None
    where = f"{key}." if key else ""
    close = difflib.get_close_matches(found.group(1), names, n=1)
    hint = f"did you mean {where}{close[0]}?" if close else f"it takes {first_few(names, 8)}"
    return f"{where}{found.group(1)} is not a setting of {target}; {hint}"


@dataclass(frozen=True, repr=False)
class _CountedFactory(LayerFactory):
    """A :class:`LayerFactory` that counts the layers built with it."""

    built: list[int] = field(default_factory=list, compare=False)

    def __call__(self, **kwargs: Any) -> torch.nn.Module:
        self.built.append(1)
        return super().__call__(**kwargs)


# what a block says when its parallel branches give different sizes (resnet's and xception's shortcut, inception's)
_BRANCHES_DISAGREE = re.compile(r"; they cannot be (added|concatenated)$")
_GEOMETRY = ("kernel_size", "stride", "padding", "dilation")
_KEEPS_GEOMETRY = {"conv": "conv2d", "pool": "max"}  # a component that leaves every geometry setting to the model


def _branch_causes(
    build: Callable[[Mapping[str, LayerFactory]], Any], factories: Mapping[str, LayerFactory]
) -> list[str]:
    """The config's ``family.key=value`` settings of a kernel size, stride, padding or dilation without which
    the network ``build`` makes from ``factories`` no longer has branches that disagree (each is left to the
    architecture in turn; ``conv=dilated``'s own ``dilation: 2`` keeps the sizes and is not named). All of
    them when none alone is the cause; none when the config sets none."""
    settings = [
        (family, key, value)
        for family, made in factories.items()
        for key, value in made.params.items()
        if key in _GEOMETRY and value is not None
    ]

    def disagrees(family: str, key: str) -> bool:
        made = factories[family]
        params = {**made.params, key: None}
        try:
            build({**factories, family: LayerFactory(made.family, made.name, params, made.none_passed)})
        except GeometryError as err:
            return bool(_BRANCHES_DISAGREE.search(str(err)))
        except Exception:  # refused otherwise (conv=pointwise without its 1x1 kernel): this setting was the cause
            return False
        return False

    causes = [setting for setting in settings if not disagrees(setting[0], setting[1])] or settings
    return [f"{family}.{key}={value}" for family, key, value in causes]


def _too_small_causes(
    build: Callable[[Mapping[str, LayerFactory]], Any], factories: Mapping[str, LayerFactory]
) -> list[str]:
    """The config's ``family.key=value`` geometry settings (:data:`_GEOMETRY`) without which, each left to the
    architecture in turn, the network ``build`` makes from ``factories`` has no window larger than what reaches
    it (``pool.stride=4``, ``conv.kernel_size=7``); all of them where only all together make it so."""
    settings = [
        f"{family}.{key}={_typed(value)}"
        for family, made in factories.items()
        for key, value in made.params.items()
        if key in _GEOMETRY and value is not None
    ]
    causes = [setting for setting in settings if _builds_without(build, factories, [setting])]
    if not causes and len(settings) > 1 and _builds_without(build, factories, settings):
        return [" and ".join(settings)]
    return causes


def smallest_square(builds: Callable[[int], bool], side: int, largest: int = 1024) -> int | None:
    """The smallest square side above ``side`` at which ``builds`` (which failed at ``side``) succeeds: doubled
    until it does, then halved back (the layers' sizes shrink with the input); None up to ``largest``."""
    low, high = side, min(side * 2, largest)
    while not builds(high):
        if high >= largest:
            return None
        low, high = high, min(high * 2, largest)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if builds(middle) else (middle, high)
    return high


def _too_small_advice(
    build: Callable[[Mapping[str, LayerFactory]], Any], factories: Mapping[str, LayerFactory], size: tuple[int, int]
) -> str:
    """What to say of a window larger than what reaches it (helper-131: the layer alone was named): the settings
    that make it so (:func:`_too_small_causes`), else the smallest images the network takes: square ones for
    square ``size``, else each side raised to the smallest that builds (32x8 images: 32x22, not 22x22)."""
    causes = _too_small_causes(build, factories)
    if causes:
        # one setting; several only together (a and b); several, each alone (a or b)
        which = "one" if len(causes) > 1 else "them" if " and " in causes[0] else "it"
        return (
            f"; it fits without {' or without '.join(causes)}: leave {which} to the model "
            f"({' or '.join(' '.join(_nulled(part) for part in cause.split(' and ')) for cause in causes)})"
        )

    height, width = size

    def builds(side: int) -> bool:
        try:
            build(factories, size=(max(height, side), max(width, side)))
        except Exception:
            return False
        return True

    smallest = smallest_square(builds, max(min(size), 1))
    if smallest is None:
        return ""
    if height == width:
        return f"; it takes images of at least {smallest}x{smallest}"
    return f"; it takes images of at least {smallest} pixels a side ({max(height, smallest)}x{max(width, smallest)})"


def _why_branches_disagree(
    causes: list[str],
    model_name: str,
    factories: Mapping[str, LayerFactory],
    build: Callable[[Mapping[str, LayerFactory]], Any] | None = None,
) -> str:
    """What to say of ``causes`` (:func:`_branch_causes`), when a block's branches disagree: a setting that comes
    with the chosen option (``conv=pointwise``'s ``kernel_size: 1``) is that option's doing, and another option
    the fix; any other (``conv.stride=2``) is left to the model with null (helper-131: "set it to null" sent
    conv=pointwise to its own refusal, and "choose conv=conv2d" was said to conv2d). Where ``build`` (as
    :func:`_branch_causes` takes it) succeeds with the others alone left to the model, the option is not named."""
    own = [cause for cause in causes if _comes_with_option(cause, factories)]
    others = [cause for cause in causes if cause not in own]
    if own and others and build is not None and _builds_without(build, factories, others):
        own = []  # (helper-132: resnet18 conv=pointwise conv.stride=2 builds without the stride)
    named = [*others, *own]

    def pronoun(settings: list[str]) -> str:
        return "it" if len(settings) == 1 else "them"

    fixes = [f"leave {pronoun(others)} to the model ({' '.join(_nulled(c) for c in others)})"] if others else []
    for family in dict.fromkeys(cause.partition(".")[0] for cause in own):
        its = [cause for cause in own if cause.startswith(f"{family}.")]
        also = _also_left_with_swap(family, factories, build, others) if build is not None else []
        too = f", and leave {' and '.join(also)} to the model too" if also else ""
        written = " ".join([f"{family}={_KEEPS_GEOMETRY.get(family, '...')}", *map(_nulled, also)])
        fixes.append(
            f"{family}={factories[family].name} sets {pronoun(its)}, so choose a {family} that leaves {pronoun(its)} "
            f"to the model{too} ({written})"
        )
    families = list(dict.fromkeys(cause.partition(".")[0] for cause in named))
    return (
        f"{' and '.join(named)} {'is' if len(named) == 1 else 'are'} set for every layer of the "
        f"{' and '.join(families)} famil{'y' if len(families) == 1 else 'ies'}, but model={model_name}'s parallel "
        f"branches only line up with each layer's own kernel size, stride and padding: {', and '.join(fixes)}"
    )


def _also_left_with_swap(
    family: str,
    factories: Mapping[str, LayerFactory],
    build: Callable[[Mapping[str, LayerFactory]], Any],
    left: list[str],
) -> list[str]:
    """The command line's geometry settings that would still have to be left to the model for ``build`` to
    succeed once ``family`` is the option of :data:`_KEEPS_GEOMETRY` and the settings ``left`` are left to the
    model (helper-134: resnet18 ``conv=pointwise conv.stride=2 conv.padding=1`` was sent to ``conv=conv2d``, which
    keeps the stride and padding that break it too; inception_v3 ``conv=pointwise pool.kernel_size=2`` to
    ``conv=conv2d``, where the pool's window breaks it). None where the swap alone builds, or where no choice of
    them (one, or all) does."""
    keep = _KEEPS_GEOMETRY.get(family)
    if keep is None:
        return []
    given = [
        f"{other}.{key}={value}"
        for other, made in factories.items()
        for key, value in made.params.items()
        if key in _GEOMETRY
        and value is not None
        and f"{other}.{key}={value}" not in left
        and not _comes_with_option(f"{other}.{key}={value}", factories)
    ]
    own = {setting.partition("=")[0].partition(".")[2] for setting in given if setting.startswith(f"{family}.")}
    swapped = {
        **factories,
        family: LayerFactory(family, keep, {k: v for k, v in factories[family].params.items() if k in own}),
    }
    if not given or _builds_without(build, swapped, left):
        return []
    for also in [*([setting] for setting in given), given]:
        if _builds_without(build, swapped, [*left, *also]):
            return also
    return []


def _builds_without(
    build: Callable[[Mapping[str, LayerFactory]], Any], factories: Mapping[str, LayerFactory], settings: list[str]
) -> bool:
    """Whether ``build`` succeeds with ``settings`` (``conv.stride=2``) left to the architecture."""
    changed = dict(factories)
    for setting in settings:
        family, _, rest = setting.partition(".")
        made = changed[family]
        params = {**made.params, rest.partition("=")[0]: None}
        changed[family] = LayerFactory(made.family, made.name, params, made.none_passed)
    try:
        build(changed)
    except Exception:
        return False
    return True


def _typed(value: Any) -> str:
    """``value`` as the command line writes it: ``[1,2]`` for a pair (helper-140: ``(1, 2)`` could not be pasted)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_typed(item) for item in value) + "]"
    return yaml_word(value) if value is None or isinstance(value, bool) else str(value)


def _nulled(setting: str) -> str:
    """``conv.stride=null`` of ``conv.stride=2``."""
    return f"{setting.partition('=')[0]}=null"


def _comes_with_option(setting: str, factories: Mapping[str, LayerFactory]) -> bool:
    """Whether ``setting`` (``conv.kernel_size=1``) is the chosen option's own value (``conv/pointwise.yaml``'s)."""
    from cnnpl.config import compose_plain

    family, _, rest = setting.partition(".")
    key = rest.partition("=")[0]
    try:
        own = compose_plain([f"{family}={factories[family].name}"], output_dir=None)[family].get(key)
    except Exception:  # an option the config does not compose alone: taken as given
        return False
    return own is not None and f"{family}.{key}={own}" == setting


def build_model(
    cfg: DictConfig,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    unused: list[str] | None = None,
) -> torch.nn.Module:
    """The network ``cfg.model`` describes, with the conv / pool / norm / act factories of ``cfg``.

    ``unused``, if given, receives the families whose factory the architecture never called
    (``simple_cnn`` has no norm layers, ``resnet18`` no pooling through ``pool``).
    """
    model = layer_factory("model", cfg.model)
    factories = {}
    for family in ("conv", "pool", "norm", "act"):
        if family in cfg:
            made = layer_factory(family, cfg[family])
            factories[family] = _CountedFactory(made.family, made.name, made.params, made.none_passed)

    def build(
        factories: Mapping[str, LayerFactory], model: LayerFactory = model, size: tuple[int, int] = input_size
    ) -> torch.nn.Module:
        return model(num_classes=num_classes, in_channels=in_channels, input_size=size, **factories)

    try:
        net = build(factories)
    except GeometryError as err:
        rebuild = build
        if model.params.get("pretrained"):  # the causes' rebuilds look at shapes: no loading the weights again
            params = {**model.params, "pretrained": None}
            rebuild = functools.partial(build, model=LayerFactory(model.family, model.name, params, model.none_passed))
        if _BRANCHES_DISAGREE.search(str(err)) and (causes := _branch_causes(rebuild, factories)):
            # conv=pointwise in inception_v3, conv.stride=2 in resnet18: the message names the layer, this the cause
            why = _why_branches_disagree(causes, cfg.model.get("name", "?"), factories, rebuild)
            raise GeometryError(f"{err}; {why}") from None
        if " is larger than the input " not in str(err):  # not a window too large for what reaches it:
            raise  # a component's own settings, or a block's branches that disagree
        # the shape trace names the layer; say which model and which images it was traced for, and why
        size = f"{in_channels}x{input_size[0]}x{input_size[1]}"
        advice = _too_small_advice(rebuild, factories, tuple(input_size))
        raise GeometryError(f"model={cfg.model.get('name', '?')} cannot take {size} images: {err}{advice}") from None
    if unused is not None:
        unused.extend(family for family, made in factories.items() if not made.built)
    return net


def warn_unused_components(model_name: str, unused: list[str]) -> None:
    """Warn when the command line chose a component the architecture never builds (``norm=identity`` for
    ``simple_cnn``, which has no norm layers): that choice changes nothing. Only under the CLI, which
    knows what the user typed; a group's default is no choice."""
    from hydra.core.hydra_config import HydraConfig

    if not unused or not HydraConfig.initialized():
        return

    def group(override: str) -> str:  # "norm" of norm=identity, +norm.eps=1e-3, ~norm
        return override.lstrip("+~").partition("=")[0].split(".")[0]

    typed = [o for o in HydraConfig.get().overrides.task if group(o) in unused]
    if typed:
        from lightning.pytorch.utilities.rank_zero import rank_zero_only

        families = " or ".join(sorted({group(o) for o in typed}))
        if rank_zero_only.rank == 0:  # a log line as the run's others: on the console and in its cnnpl.log
            logging.getLogger(__name__).warning(
                "model=%s builds no %s layers, so %s changes nothing (python -m cnnpl.summary model=... shows the "
                "layers a model builds)",
                model_name,
                families,
                " ".join(typed),
            )


def warn_identical_filters(net: torch.nn.Module) -> None:
    """Warn when a trained conv layer starts every filter from the same kernel (``conv.init=sobel_x`` without
    ``conv.freeze=true``): filters that start equal get equal gradients and stay equal, so such a layer learns
    one filter however many it has (helper-126: a shapes run fell from 97% to 39%)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    layers = [
        module
        for module in net.modules()
        if isinstance(getattr(module, "init", None), str)
        and isinstance(getattr(module, "weight", None), torch.nn.Parameter)
        and module.weight.requires_grad
        and module.weight.shape[0] > 1
    ]
    if layers and rank_zero_only.rank == 0:
        logging.getLogger(__name__).warning(
            "conv.init=%s starts every filter of a layer the same, and filters that start the same are trained "
            "the same: each conv layer before the last learns one filter; add conv.freeze=true for a fixed bank of "
            "%s filters, or leave conv.init out to train filters of their own",
            layers[0].init,
            layers[0].init,
        )
