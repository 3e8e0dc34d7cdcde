"""A Keras-style model summary: every layer, its output shape and parameter count, and totals.

    python -m cnnpl.summary model=simple_cnn conv=depthwise_separable pool=avg
    python -m cnnpl.summary --input-size 64 64 --num-classes 100 model=simple_cnn

Arguments other than the ``--`` options are the training command's overrides, composed from the same
``conf/`` (:func:`cnnpl.config.compose`), and the network is built as training builds it
(:func:`cnnpl.network.build_model`), without loading any data or importing Lightning. The input facts
the data would supply come from the options; by default 3 channels, 10 classes and
``data.image_size`` (when the data config has one, e.g. ``data=shapes``) or 32 x 32 pixels, which is
what both bundled datasets give.

A row is a module with no children, or a component that reports its own ``output_shape`` (a
``depthwise_separable`` conv is one row, as a Keras layer is). A module registered under two names
(fast_net's whitening layer is ``whiten`` and ``features.whiten``) is one row, under its first name,
as in ``nn.Module.named_modules()``. Shapes are ``(C, H, W)`` per example,
from one forward pass of zeros in eval mode. :func:`summarize` gives the same table as data.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
from torch import nn

from cnnpl.errors import CnnplError, NeedsMoreMemory, out_of_memory, run_command, yaml_word

DEFAULT_IN_CHANNELS = 3
DEFAULT_NUM_CLASSES = 10
DEFAULT_INPUT_SIZE = (32, 32)  # pixels


@dataclass(frozen=True)
class Row:
    name: str  # dotted module path, as in state_dict keys
    kind: str  # class name
    output_shape: tuple[int, ...] | None  # per example; None when forward never reached the layer
    params: int  # parameters the row owns (its whole subtree for a component row), none counted twice
    trainable: int


@dataclass(frozen=True)
class Summary:
    input_shape: tuple[int, ...]
    rows: list[Row]

    @property
    def total(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable


def _is_row(module: nn.Module) -> bool:
    return next(module.children(), None) is None or hasattr(module, "output_shape")


def _count(params: Sequence[nn.Parameter], counted: set[int]) -> tuple[int, int]:
    """``(all, trainable)`` elements of ``params`` not in ``counted`` (ids), which it then records."""
    new = [p for p in dict.fromkeys(params) if id(p) not in counted]  # a tensor shared by two layers counts once
    counted.update(id(p) for p in new)
    return sum(p.numel() for p in new), sum(p.numel() for p in new if p.requires_grad)


def summarize(model: nn.Module, input_shape: Sequence[int]) -> Summary:
    """Rows for ``model`` on one ``(C, H, W)`` input, in the order the forward pass runs the modules (a
    module it does not run stays after the row registered before it), then the parameters containers own.

    Parameters a container holds directly (not inside a child) get a row of their own, and a module
    or parameter reached under a second name is counted under its first, so the rows always add up to
    ``sum(p.numel() for p in model.parameters())``.
    """
    rows_modules: list[tuple[str, nn.Module]] = []
    own: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()  # ids of the modules walked

    def walk(prefix: str, module: nn.Module) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        if prefix and _is_row(module):
            rows_modules.append((prefix, module))
            return
        if any(True for _ in module.parameters(recurse=False)):
            own.append((prefix or "(model)", module))
        for name, child in module.named_children():
            walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    shapes: dict[str, tuple[int, ...]] = {}
    ran: dict[str, int] = {}  # each row's place in the forward pass

    def hook_for(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            ran.setdefault(name, len(ran))
            if isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in rows_modules]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()

    counted: set[int] = set()  # (a parameter under two names counts under the one registered first)
    rows = [
        Row(name, type(m).__name__, shapes.get(name), *_count(list(m.parameters()), counted))
        for name, m in rows_modules
    ]
    place, order = -1.0, []
    for row in rows:  # ResNet registers its stem's pool before bn1 and act1, which run before it
        place = ran[row.name] if row.name in ran else place + 1e-6
        order.append(place)
    rows = [row for _, row in sorted(zip(order, rows, strict=True), key=lambda pair: pair[0])]
    rows += [
        Row(name, f"{type(m).__name__} (own)", None, *_count(list(m.parameters(recurse=False)), counted))
        for name, m in own
    ]
    return Summary(tuple(input_shape), rows)


def format_summary(summary: Summary, title: str = "") -> str:
    """The Keras-style table of ``summary`` as text."""
    header = ("Layer (type)", "Output shape (C, H, W)", "Param #")
    body = [
        (f"{r.name} ({r.kind})", "-" if r.output_shape is None else str(r.output_shape), f"{r.params:,}")
        for r in summary.rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(3)]
    width = sum(widths) + 4
    lines = [title] if title else []
    lines += [f"Input shape (C, H, W): {summary.input_shape}", "_" * width]
    lines.append(f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>{widths[2]}}")
    lines.append("=" * width)
    for cells in body:
        lines.append(f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:>{widths[2]}}")
    lines.append("=" * width)
    lines.append(f"Total params: {summary.total:,}")
    lines.append(f"Trainable params: {summary.trainable:,}")
    lines.append(f"Non-trainable params: {summary.non_trainable:,}")
    lines.append("_" * width)
    return "\n".join(lines)


class _OneLineParser(argparse.ArgumentParser):
    """argparse's errors as the tool's other errors: one line, with the flag meant where one is close."""

    def error(self, message: str) -> NoReturn:
        import difflib

        from cnnpl.config import config_groups

        flags = [flag for action in self._actions for flag in action.option_strings if flag not in ("-h", "--help")]
        given = re.findall(r"(--?[\w-]+)", message.partition(":")[2]) if "unrecognized" in message else []
        close = difflib.get_close_matches(given[0].replace("_", "-"), flags, n=1) if given else []
        hint = f"; did you mean {close[0]}?" if close else ""
        if given and not close and given[0].lstrip("-") in config_groups():  # --model vgg16: an override as a flag
            hint = f"; overrides are written key=value, without dashes: {given[0].lstrip('-')}=..."
        self.exit(2, f"cnnpl.summary: error: {message}{hint} (python -m cnnpl.summary --help lists the options)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """``--input-size H [W]`` in the usage and the help (argparse writes ``nargs="+"`` as ``H [W ...]``)."""

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        if action.dest == "input_size":
            return "H [W]"
        return super()._format_args(action, default_metavar)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m cnnpl.summary",
        formatter_class=_HelpFormatter,
        description="Print a Keras-style summary of the network the training config describes.",
        epilog="Example: python -m cnnpl.summary model=simple_cnn conv=depthwise_separable pool=avg",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, as for python -m cnnpl (model=..., conv=...)")
    # H [W], then any overrides (argparse would give them all to --input-size): main() splits them off
    parser.add_argument("--input-size", nargs="+", help="input height [width] (default: the data's, else 32)")
    parser.add_argument("--in-channels", type=int, help="input channels (default: the data's, else 3)")
    parser.add_argument("--num-classes", type=int, help="classes (default: the data's, else 10)")
    return parser


def _check_words(overrides: Sequence[str]) -> None:
    """Refuse what a summary cannot take, with the fix: a checkpoint (``ckpt_path=``: summary reads no
    weights, so it would show the default network), a bare component name (``vgg16``), a file or folder."""
    from pathlib import Path

    from cnnpl.config import bare_word_error, config_groups

    for word in overrides:
        key, sep, value = word.partition("=")
        if sep and key.lstrip("+") in ("ckpt", "ckpt_path") and value.strip() not in ("", "null", "None", "~"):
            raise CnnplError(
                f"{key}=: cnnpl.summary reads no checkpoint (it builds the network a config describes): leave "
                f"{key}= out, or draw a checkpoint's pictures with python -m cnnpl.render ckpt=..."
            )
        if sep or word.startswith("~"):
            continue
        error = bare_word_error(word)
        if error is not None and not (Path(word).exists() and word in config_groups()):  # a folder data/: below
            raise CnnplError(error)
        if Path(word).exists():
            raise CnnplError(
                f"{word!r} is a file or folder, not an override: cnnpl.summary takes the overrides of a run "
                "(model=..., conv=...), which its config.yaml holds"
            )


def model_summary(
    overrides: Sequence[str] = (),
    *,
    input_size: Sequence[int] | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
) -> tuple[Summary, str]:
    """Compose the config with ``overrides``, build its network, and return the summary and its title.
    What is not given (``None``) is the data's: ``data.image_size``, or what a data module of one's own knows
    without loading the images (its ``known_shape``); else 32x32, 3 channels, 10 classes."""
    from omegaconf import OmegaConf

    from cnnpl.config import compose
    from cnnpl.train import build_model, check_forward

    _check_words(overrides)
    cfg = compose(list(overrides), output_dir="outputs/summary")  # nothing is written there
    known = _data_shape(cfg) if None in (input_size, in_channels, num_classes) else None
    if known is not None:
        num_classes = known[0] if num_classes is None else num_classes
        in_channels = known[1] if in_channels is None else in_channels
        input_size = known[2] if input_size is None else input_size
    in_channels = DEFAULT_IN_CHANNELS if in_channels is None else in_channels
    num_classes = DEFAULT_NUM_CLASSES if num_classes is None else num_classes
    if input_size is None:
        image_size = OmegaConf.select(cfg, "data.image_size", default=None)
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)):
            raise CnnplError(f"data.image_size must be an integer (pixels a side), got {yaml_word(image_size)}")
        input_size = (image_size, image_size) if image_size else DEFAULT_INPUT_SIZE
    if len(input_size) == 1:
        input_size = (input_size[0], input_size[0])
    if len(input_size) != 2 or min(input_size) < 1 or in_channels < 1 or num_classes < 1:
        raise CnnplError(
            f"input size must be H [W] >= 1, in channels and classes >= 1; got {list(input_size)}, "
            f"{in_channels}, {num_classes}"
        )
    size = (int(input_size[0]), int(input_size[1]))
    unused: list[str] = []  # the families the architecture builds no layer of (simple_cnn: norm)
    try:
        model = build_model(cfg, num_classes=num_classes, in_channels=in_channels, input_size=size, unused=unused)
        check_forward(model, num_classes, in_channels, size, cfg.model.name, training=False)  # shapes: eval's
    except (MemoryError, RuntimeError, NeedsMoreMemory) as err:  # "DefaultCPUAllocator: can't allocate memory"
        if not isinstance(err, NeedsMoreMemory) and not out_of_memory(err):
            raise
        raise CnnplError(
            f"model={cfg.model.name} at {in_channels}x{size[0]}x{size[1]} needs more memory than this machine can "
            "give (its layers or one image's activations); give a smaller --input-size"
        ) from None
    chosen = [group for group in ("conv", "pool", "norm", "act") if group in cfg and group not in unused]
    title = " ".join([f"model={cfg.model.name}", *(f"{group}={cfg[group].name}" for group in chosen)])
    return summarize(model, (in_channels, *size)), title


def _data_shape(cfg: Any) -> tuple[int, int, tuple[int, int]] | None:
    """``(classes, channels, (height, width))`` of the data ``cfg`` describes, where its module knows them without
    loading the images (``known_shape``); None where it does not, or cannot be built (summary reads no data).
    Asked of a data module of one's own only: cnnpl's are Lightning's, whose import would double summary's
    start-up, and their shape is ``data.image_size`` or CIFAR-10's 32x32."""
    from omegaconf import OmegaConf

    from cnnpl.network import instantiate_node

    if str(OmegaConf.select(cfg, "data._target_", default="")).startswith("cnnpl."):
        return None
    try:
        datamodule = instantiate_node(cfg.data)
        known = datamodule.known_shape() if hasattr(datamodule, "known_shape") else None
    except Exception:  # a data setting summary does not need: the network's summary stands without it
        return None
    return known


def _split_input_size(parser: argparse.ArgumentParser, words: list[str] | None) -> tuple[list[int] | None, list[str]]:
    """``--input-size``'s words as ``(H [W], the overrides after them)``."""
    if words is None:
        return None, []
    size = [int(word) for word in words[:2] if word.lstrip("-").isdigit()]
    if not size or any(word.lstrip("-").isdigit() for word in words[len(size) :]):
        parser.error(f"--input-size takes H [W] (whole numbers), got {' '.join(words)}")
    return size, words[len(size) :]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (2 for a config or geometry the user can fix)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cnnpl.config import one_line_composition_error
    from cnnpl.plugins import plugin_warnings_on_one_line

    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    input_size, overrides = _split_input_size(parser, args.input_size)
    overrides = [*args.overrides, *overrides]
    try:
        with plugin_warnings_on_one_line("cnnpl.summary"):
            summary, title = model_summary(
                overrides, input_size=input_size, in_channels=args.in_channels, num_classes=args.num_classes
            )
    except CnnplError as err:
        print(f"cnnpl.summary: error: {err}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as err:  # one line, as python -m cnnpl prints it
        print(f"cnnpl.summary: error: {one_line_composition_error(err, overrides)}", file=sys.stderr)
        return 2
    print(format_summary(summary, title))
    return 0


if __name__ == "__main__":
    run_command(main)
