"""Helpers shared by the architectures: default factories, build-time shape checks, size adaptations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import nn

from cnnpl.errors import CnnplError, GeometryError, NeedsMoreMemory, UnknownComponentError, out_of_memory, yaml_word
from cnnpl.factory import LayerFactory
from cnnpl.geometry import infer_output_shape
from cnnpl.registry import accepts_var_kwargs, get_registry, parameters_of

DEFAULT_CONV = LayerFactory("conv", "conv2d")
DEFAULT_POOL = LayerFactory("pool", "max")
DEFAULT_NORM = LayerFactory("norm", "batch")
DEFAULT_ACT = LayerFactory("act", "relu")

# Inputs up to this many pixels on their longest side get an architecture's small-input ("cifar")
# layout when the config leaves the choice to the architecture (stem / head = null).
SMALL_INPUT_MAX = 64  # pixels

SIZE_LAYOUTS = ("imagenet", "cifar")


def has_chosen_kernel(module: nn.Module) -> bool:
    """Whether ``module`` is a conv built with ``init=<kernel>`` (``conv.init=sobel_x``): its weights are
    that kernel, which an architecture's own initialisation must leave as they are."""
    return getattr(module, "init", None) is not None


def trace_shapes(module: nn.Module, input_shape: Sequence[int], *, prefix: str = "") -> tuple[int, ...]:
    """Walk ``module``'s children in order and return the final output shape (batch axis dropped).

    Any layer whose geometry cannot work raises :class:`GeometryError` naming that layer, its input
    shape and the reason, so a bad combination fails when the model is built, not mid-training.
    Only plain ``nn.Sequential`` containers are walked into; other modules are treated as one layer
    (give a block an ``output_shape`` method, e.g. with :func:`trace_path`, to name its inner layers).
    """
    return trace_path(module.named_children(), input_shape, prefix=prefix)


def trace_path(
    layers: Iterable[tuple[str, nn.Module]], input_shape: Sequence[int], *, prefix: str = ""
) -> tuple[int, ...]:
    """:func:`trace_shapes` over an explicit ``(name, module)`` sequence (a path through a block)."""
    shape = tuple(input_shape)
    for name, child in layers:
        full = f"{prefix}{name}"
        if _keeps_shape(child):
            continue
        if isinstance(child, nn.Sequential):
            shape = trace_path(child.named_children(), shape, prefix=f"{full}.")
            continue
        try:
            shape = infer_output_shape(child, shape)
        except NeedsMoreMemory:  # an inner layer's: it names itself
            raise
        except GeometryError as err:
            if str(err).startswith("layer "):  # already names the inner layer: add the path to it
                raise GeometryError(f"layer {full}.{str(err)[len('layer ') :]}") from None
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {err}") from None
        except CnnplError as err:
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {err}") from None
        except RuntimeError as err:  # torch's shape errors (and NotImplementedError)
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            if out_of_memory(err):
                raise NeedsMoreMemory(
                    f"layer {full} ({type(child).__name__}) needs more memory than this machine can give for input "
                    f"{shape} ({reason}); use smaller images or a narrower network"
                ) from None
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {reason}") from None
        except Exception as err:  # a component's own check (assert, ValueError): still this layer, this input
            lines = str(err).splitlines()
            reason = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
            from cnnpl.plugins import place_in_code_of

            place = place_in_code_of(err, child)  # a plugin's: the line that raised
            reason += f" ({place})" if place else ""
            raise GeometryError(f"layer {full} ({type(child).__name__}) cannot take input {shape}: {reason}") from err
    return shape


def _keeps_shape(module: nn.Module) -> bool:
    """Normalisations and activations map ``(C, H, W)`` to itself: no need to run them to know."""
    if hasattr(module, "output_shape"):
        return False
    shape_preserving = tuple(
        obj for family in ("norm", "act") for obj in map(get_registry(family).get, get_registry(family).names())
        if isinstance(obj, type)
    )  # fmt: skip
    return isinstance(module, (*shape_preserving, nn.Identity, nn.Dropout))


def size_layout(choice: str | None, input_size: Sequence[int], *, what: str, imagenet_min: int = 1) -> str:
    """``"imagenet"`` or ``"cifar"``: ``choice`` checked, or picked from the input size when ``None``
    (``cifar`` up to :data:`SMALL_INPUT_MAX` px on the longest side, or with a side under
    ``imagenet_min``, the smallest input the architecture's ImageNet layout takes)."""
    if choice is None:
        small = max(input_size) <= SMALL_INPUT_MAX or min(input_size) < imagenet_min
        return "cifar" if small else "imagenet"
    if choice not in SIZE_LAYOUTS:
        raise CnnplError(
            f"{what} must be one of {', '.join(SIZE_LAYOUTS)} or null (by input size), got {yaml_word(choice)}"
        )
    if choice == "imagenet" and min(input_size) < imagenet_min:  # helper-131: a 1x1 map deep inside, named so
        size = "x".join(str(side) for side in input_size)
        raise GeometryError(
            f"{what}=imagenet needs images of at least {imagenet_min}x{imagenet_min} pixels, got {size}; leave {what} "
            "to the input size (null, its default: cifar here), or train on larger images"
        )
    return choice


def depthwise_conv(conv: LayerFactory, channels: int, *, layer: str, **kwargs: Any) -> nn.Module:
    """A depthwise convolution (``groups=channels``) from ``conv``; fails clearly if the variant cannot group.

    A variant that does not take ``groups``, or builds a layer whose ``groups`` differs, would
    silently change the architecture (and its parameter count), so it is refused at build time.
    """
    try:
        module = conv(in_channels=channels, out_channels=channels, groups=channels, **kwargs)
    except UnknownComponentError as err:
        if "groups" not in str(err):
            raise
        raise CnnplError(
            f"layer {layer} is a depthwise convolution (groups={channels}) but conv {conv.name!r} has no 'groups' "
            "parameter; choose a conv that supports groups (e.g. conv=conv2d)"
        ) from None
    except CnnplError as err:
        raise type(err)(f"layer {layer} is a depthwise convolution (groups={channels}): {err}") from None
    built = getattr(module, "groups", channels)
    if built != channels:
        raise CnnplError(
            f"layer {layer} asked conv {conv.name!r} for groups={channels} and got groups={built}"
            + (f" (conv.groups={conv.params['groups']} in the config wins)" if conv.params.get("groups") else "")
            + "; remove that setting or choose a conv that supports groups"
        )
    return module


def count_parameters(module: nn.Module, *, with_running_stats: bool = False) -> int:
    """Learnable parameters of ``module``; with ``with_running_stats``, plus batch-norm running mean and
    variance (what Keras reports as non-trainable parameters)."""
    total = sum(p.numel() for p in module.parameters())
    if with_running_stats:
        total += sum(
            b.numel() for n, b in module.named_buffers() if n.rsplit(".", 1)[-1] in ("running_mean", "running_var")
        )
    return total


def build_with_preferences(factory: LayerFactory, preferences: dict[str, Any], **kwargs: Any) -> nn.Module:
    """``factory(**kwargs)`` plus the ``preferences`` its component takes (e.g. a batch norm's ``eps``).

    An architecture's preference (Inception's ``eps=1e-3``) is not a requirement: a component without
    that parameter (``norm=identity``) is built without it, and a non-null config value still wins.
    """
    accepted = parameters_of(factory.target)
    extra = {k: v for k, v in preferences.items() if k in accepted or accepts_var_kwargs(factory.target)}
    return factory(**kwargs, **extra)


@contextmanager
def building(layer: str) -> Iterator[None]:
    """Name ``layer`` in any :class:`CnnplError` raised while it is built (a conv variant refusing a stride).

    Nested uses join the names: ``layer Mixed_6a.branch3x3: ...``.
    """
    try:
        yield
    except CnnplError as err:
        message = str(err)
        named = message.startswith("layer ")  # an inner layer already named itself: extend its path
        named_err = type(err)(f"layer {layer}.{message[len('layer ') :]}" if named else f"layer {layer}: {message}")
        raise named_err from err.__cause__  # a plugin's own error stays the cause: HYDRA_FULL_ERROR=1 shows it


def check_conv_widths(channels: Any, *, model: str) -> None:
    """Raise :class:`GeometryError` naming ``model`` unless ``channels`` lists one conv width >= 1 or more
    (helper-140: ``model.channels=[]`` built a network of no convolution, refused by the filters callback as
    having no conv layer; ``model.channels=32``, "'int' object is not iterable")."""
    if (
        isinstance(channels, (str, bytes))
        or not isinstance(channels, Sequence)
        or not channels
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels)
    ):
        shown = list(channels) if isinstance(channels, Sequence) and not isinstance(channels, str) else channels
        raise GeometryError(
            f"{model}: model.channels must list the widths of its conv blocks, one or more ints >= 1 (such as "
            f"[32,64,128]), got {yaml_word(shown)}"
        )


def dense_head(
    width: int, hidden: Sequence[int], num_classes: int, act: LayerFactory, dropout: float, *, model: str
) -> nn.Sequential:
    """Flatten, then a ``Linear`` + ``act`` (+ ``Dropout``) per width in ``hidden``, then the classes.

    Raises :class:`GeometryError` naming ``model`` for a width below 1 (a layer of no units trains
    nothing and passes nothing on).
    """
    if isinstance(hidden, (str, bytes)) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise GeometryError(
            f"{model}: model.hidden must be a list of widths >= 1 (or [] for none), got {yaml_word(list(hidden))}"
        )
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
