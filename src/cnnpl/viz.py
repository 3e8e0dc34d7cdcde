"""Pictures of what a CNN learned: plain functions for notebooks, the callbacks and ``cnnpl.render``.

Image-valued functions return float tensors ``(C, H, W)`` in [0, 1] (``C`` = 1 for grayscale, 3 for
colour), ready for ``SummaryWriter.add_image`` or :func:`save_png`. Functions whose picture needs text
(axes, class names) return a matplotlib ``Figure`` drawn with the Agg backend (:func:`figure_to_tensor`
turns one into an image tensor). Every function that runs the network puts it in eval mode for the call
and restores each module's previous mode afterwards, so BatchNorm statistics are never disturbed.

What is here, after the notes' "Visualizing learning in Convolutional Neural Networks":

- filters: :func:`conv_weight`, :func:`filters_grid` (filters x input channels, grayscale),
  :func:`filters_rgb` (one colour tile per filter, for layers that read RGB);
- feature maps: :func:`pick_images`, :func:`feature_maps`, :func:`feature_map_grid`;
- the classic kernels demo: :func:`kernels_demo`, :func:`kernels_demo_grid`, :func:`kernels_demo_figure`
  (blur, sharpen, edges, lines via :mod:`cnnpl.kernels`);
- diagnostics: :func:`predict`, :func:`confusion_matrix`, :func:`per_class_accuracy`,
  :func:`confusion_matrix_figure`, :func:`per_class_accuracy_figure`, :func:`misclassified_figure`,
  :func:`pr_curves_figure`;
- Grad-CAM: :func:`grad_cam`, :func:`grad_cam_overlay`;
- the penultimate-layer embedding: :func:`embedding`;
- layout helpers: :func:`normalize_01`, :func:`upscale`, :func:`tile`, :func:`grid`, :func:`apply_colormap`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnpl.errors import CnnplError, yaml_word

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "apply_colormap",
    "cam_layer",
    "confusion_matrix",
    "confusion_matrix_figure",
    "conv_groups",
    "conv_layers",
    "conv_weight",
    "embedding",
    "eval_mode",
    "feature_map_grid",
    "feature_maps",
    "figure_to_tensor",
    "filters_grid",
    "filters_rgb",
    "find_layer",
    "grad_cam",
    "grad_cam_overlay",
    "grid",
    "kernels_demo",
    "kernels_demo_figure",
    "kernels_demo_grid",
    "last_linear",
    "misclassified_figure",
    "normalize_01",
    "per_class_accuracy",
    "per_class_accuracy_figure",
    "pick_images",
    "pr_curves_figure",
    "predict",
    "reads_rgb",
    "save_png",
    "tile",
    "upscale",
]


# -- layout -----------------------------------------------------------------------------------------


def normalize_01(x: torch.Tensor) -> torch.Tensor:
    """``(x - min) / (max - min)`` over the whole tensor, as the notes normalise filters; a constant -> 0."""
    x = x.detach().float()
    lo, hi = x.min(), x.max()
    span = hi - lo
    if span <= 0:
        return torch.zeros_like(x)
    return (x - lo) / span


def upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Nearest-neighbour enlargement of the last two axes by an integer ``scale`` (every pixel a block)."""
    if scale < 1:
        raise CnnplError(f"scale must be >= 1, got {scale}")
    if scale == 1:
        return x
    return x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def tile(cells: torch.Tensor, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Lay out ``cells (R, K, C, h, w)`` as one image ``(C, R*h + (R+1)*pad, K*w + (K+1)*pad)``.

    Cell ``[r, k]`` lands in row ``r``, column ``k``; ``pad`` pixels of ``pad_value`` separate the cells
    and frame the whole picture.
    """
    if cells.dim() != 5:
        raise CnnplError(f"tile() needs cells shaped (rows, cols, C, h, w), got {tuple(cells.shape)}")
    rows, cols, c, h, w = cells.shape
    out = torch.full((c, rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad), float(pad_value))
    for r in range(rows):
        top = pad + r * (h + pad)
        for k in range(cols):
            left = pad + k * (w + pad)
            out[:, top : top + h, left : left + w] = cells[r, k]
    return out


def grid(images: torch.Tensor, ncol: int | None = None, pad: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """``images (N, C, h, w)`` in rows of ``ncol`` (default ``ceil(sqrt(N))``); empty places get ``pad_value``."""
    n, c, h, w = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    cells = torch.full((nrow * ncol, c, h, w), float(pad_value))
    cells[:n] = images.detach().float().cpu()
    return tile(cells.view(nrow, ncol, c, h, w), pad, pad_value)


def _colormap_lut(name: str) -> torch.Tensor:
    try:
        from matplotlib import colormaps
    except ImportError:
        raise CnnplError("colormaps need matplotlib: pip install matplotlib, or use cmap=null") from None

    try:
        cmap = colormaps[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), list(colormaps), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CnnplError(
            f"unknown matplotlib colormap {name!r}; {hint}try 'viridis', 'inferno', 'jet' or 'gray' (null: grayscale)"
        ) from None
    return torch.tensor(cmap(torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def apply_colormap(x: torch.Tensor, name: str = "viridis") -> torch.Tensor:
    """Values in [0, 1] ``(..., h, w)`` -> colours ``(..., 3, h, w)`` through a matplotlib colormap."""
    lut = _colormap_lut(name)
    idx = (x.detach().float().cpu().clamp(0, 1) * 255).round().long()
    return lut[idx].movedim(-1, -3)


# -- modules ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block; every submodule gets its own previous mode back.

    The ``training`` flags are set directly, not through ``eval()``: the callbacks draw on rank 0
    alone, and a module's ``train()`` may start a collective (``MixedPool`` with
    ``eval_rule="history"`` broadcasts rank 0's counts) that the other ranks would never join.
    """
    modes = [(m, m.training) for m in module.modules()]
    for m, _ in modes:
        m.training = False
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Run a compiled network (``system.compile=true``: ``torch.compile``) as written for the block.

    Compiled, it traces the hooks these functions add into its graph, or ignores them once traced:
    feature maps then come from the trace, and Grad-CAM's gradient with respect to a captured output
    fails (``The differentiated Tensor ... appears to not have been used in the graph``).
    """
    with torch.compiler.set_stance("force_eager"):  # torch's sets the stance when made: made in the block
        yield


def find_layer(net: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (as in ``net.named_modules()``); an unknown name lists the real ones."""
    modules = dict(net.named_modules())
    if name in modules and name != "":
        return modules[name]
    import difflib

    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    shown = ", ".join(names[:80]) + (f", ... ({len(names) - 80} more)" if len(names) > 80 else "")
    raise CnnplError(f"{type(net).__name__} has no layer {name!r}{hint}; its layers: {shown}")


def _has_conv_weight(module: nn.Module) -> bool:
    if callable(getattr(module, "filter_bank", None)):  # variants whose weight is not 4-D
        return True
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 4


def _filters_of(module: nn.Module) -> torch.Tensor:
    """The layer's kernels as ``(out, in, kh, kw)``: ``filter_bank()`` where a layer offers one."""
    bank = getattr(module, "filter_bank", None)
    return bank() if callable(bank) else module.weight.detach()  # type: ignore[operator]


def conv_layers(net: nn.Module) -> list[str]:
    """Names of the modules with a 4-D ``(out, in, kh, kw)`` weight or a ``filter_bank()``, in definition order."""
    return [name for name, m in net.named_modules() if name and _has_conv_weight(m)]


def conv_weight(net: nn.Module, name: str | None = None) -> tuple[str, torch.Tensor]:
    """``(layer name, weight (out, in, kh, kw))`` of conv layer ``name``, or of the first conv layer.

    ``name`` may also be a block (``features.block1``): its first conv layer is used.
    """
    if name is None:
        convs = conv_layers(net)
        if not convs:
            raise CnnplError(f"{type(net).__name__} has no convolution layer (no module with a 4-D weight)")
        name = convs[0]
    layer = find_layer(net, name)
    if _has_conv_weight(layer):
        return name, _filters_of(layer)
    inner = conv_layers(layer)
    if not inner:
        raise CnnplError(
            f"layer {name!r} has no convolution weight to show; conv layers: {', '.join(conv_layers(net)) or '(none)'}"
        )
    return f"{name}.{inner[0]}", _filters_of(find_layer(layer, inner[0]))


def conv_groups(net: nn.Module, layer: str) -> int:
    """How many groups conv layer ``layer`` splits its input channels into: 1 but for grouped and
    depthwise convolutions, whose weight is ``(out, in / groups, kh, kw)``."""
    return int(getattr(find_layer(net, layer), "groups", 1))


def reads_rgb(net: nn.Module, layer: str) -> bool:
    """Whether conv layer ``layer`` (as :func:`conv_weight` names it) reads the input image's colours.

    True for the network's first conv layer when its kernels hold one ``kh x kw`` slice per input
    channel, three of them, with no groups: only then is a filter's slice ``c`` what it does to
    colour ``c``. A later layer with 3 input channels, a grouped or depthwise layer, or a layer whose
    ``filter_bank()`` stacks something else (``conv3d_channels``: taps along the channel axis) is not.
    """
    convs = conv_layers(net)
    if not convs or convs[0] != layer:
        return False
    module = find_layer(net, layer)
    if getattr(module, "groups", 1) != 1 or not getattr(module, "filters_by_input_channel", True):
        return False
    return _filters_of(module).shape[1] == 3


# -- filters ----------------------------------------------------------------------------------------


def filters_grid(
    weight: torch.Tensor,
    max_filters: int | None = None,
    max_channels: int | None = None,
    scale: int = 8,
    pad: int = 1,
    pad_value: float = 1.0,
    groups: int = 1,
) -> torch.Tensor:
    """The notes' filter plot: one row per filter, one column per input channel, grayscale.

    ``weight (out, in, kh, kw)`` is normalised to [0, 1] with the min and max of the whole layer (as the
    notes do), then the first ``max_filters`` filters and ``max_channels`` channels are laid out, each
    ``kh x kw`` kernel enlarged ``scale`` times. Returns ``(1, H, W)`` with
    ``H = F*kh*scale + (F+1)*pad`` and ``W = C*kw*scale + (C+1)*pad``.

    For a grouped or depthwise layer (``groups`` > 1, ``weight (out, in / groups, kh, kw)``) the
    columns are still every input channel: a filter's row is blank (``pad_value``) under the channels
    outside its group, so a depthwise layer shows as a diagonal.
    """
    if weight.dim() != 4:
        raise CnnplError(f"filters_grid() needs a conv weight (out, in, kh, kw), got shape {tuple(weight.shape)}")
    if groups < 1 or len(weight) % groups:
        raise CnnplError(f"filters_grid(): groups={groups} must be >= 1 and divide the {len(weight)} filters")
    w01 = normalize_01(weight.cpu())
    if groups > 1:
        out, per_group = w01.shape[:2]
        rows = torch.arange(out).unsqueeze(1)
        columns = rows // (out // groups) * per_group + torch.arange(per_group)  # each filter's own channels
        full = torch.full((out, per_group * groups, *w01.shape[2:]), float(pad_value), dtype=w01.dtype)
        full[rows, columns] = w01
        w01 = full
    w01 = w01[:max_filters, :max_channels]
    cells = upscale(w01, scale).unsqueeze(2)  # (F, C, 1, kh*s, kw*s)
    return tile(cells, pad, pad_value)


def filters_rgb(
    weight: torch.Tensor, max_filters: int | None = None, scale: int = 8, ncol: int = 8, pad: int = 1
) -> torch.Tensor:
    """Each filter of a layer that reads RGB as a colour tile ``(3, kh, kw)``, normalised as in :func:`filters_grid`."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise CnnplError(f"filters_rgb() needs a conv weight reading 3 channels, got shape {tuple(weight.shape)}")
    w01 = normalize_01(weight.cpu())[:max_filters]
    return grid(upscale(w01, scale), ncol=min(ncol, len(w01)), pad=pad)


# -- images and feature maps -----------------------------------------------------------------------


SPLITS = ("train", "val", "test")


def check_split_name(split: str) -> None:
    if split not in SPLITS:
        raise CnnplError(f"split must be one of {', '.join(SPLITS)}, got {yaml_word(split)}")


def pick_split(datamodule: Any, split: str | None = None) -> str:
    """``split`` if it names a split with images; by default ``val``, or ``test`` for a run without
    a validation split (``data.val_split=0``, as ``experiment=fast_cifar10``). Else :class:`CnnplError`.

    The split the pictures show: the callbacks' fixed images and ``python -m cnnpl.render``'s.
    """
    if split is None:
        return "val" if len(datamodule.split("val")) else "test"
    check_split_name(split)
    if not len(datamodule.split(split)):
        others = [s for s in SPLITS if s != split and len(datamodule.split(s))]
        hint = f"; pass {' or '.join(f'split={s}' for s in others)}" if others else ""
        setting = " (the run has data.val_split=0)" if split == "val" else ""
        raise CnnplError(f"the {split} split has no images{setting}{hint}")
    return split


def pick_images(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` images, one class after another: the first image of class 0, of class 1, ...

    Deterministic (depends only on the order of ``labels``) and spread over the classes, so the same
    pictures come back every epoch and every run with the same split.
    """
    labels = labels.cpu()
    chosen: list[int] = []
    taken = torch.zeros(len(labels), dtype=torch.bool)
    classes = torch.unique(labels, sorted=True).tolist()
    while len(chosen) < min(n, len(labels)):
        for c in classes:
            free = ((labels == c) & ~taken).nonzero().flatten()
            if len(free) and len(chosen) < n:
                chosen.append(int(free[0]))
                taken[free[0]] = True
    return torch.tensor(chosen, dtype=torch.long)


def feature_maps(net: nn.Module, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{name: output (N, C', h, w)}`` of ``layers`` when normalised ``images (N, C, H, W)`` go through ``net``."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:

        def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            # a copy: an in-place activation after the layer (act.inplace=true) would change these values
            captured[name] = (out[0] if isinstance(out, (tuple, list)) else out).detach().clone()

        handles.append(find_layer(net, name).register_forward_hook(hook))
    try:
        with eval_mode(net), torch.no_grad(), eager():
            net(images)
    finally:
        for h in handles:
            h.remove()
    skipped = [name for name in layers if name not in captured]
    if skipped:
        raise CnnplError(f"layer {skipped[0]!r} did not run in {type(net).__name__}'s forward pass; name one that does")
    return {name: captured[name] for name in layers}


def feature_map_grid(
    fmap: torch.Tensor,
    max_channels: int | None = 32,
    ncol: int | None = None,
    cell_size: int = 32,
    cmap: str | None = None,
    pad: int = 1,
) -> torch.Tensor:
    """One image's feature map ``(C, h, w)`` as a grid of its first ``max_channels`` channels.

    Each channel is normalised to [0, 1] on its own (a constant channel gets the lowest colour), enlarged
    to at least ``cell_size`` pixels by an integer factor, and drawn in grayscale (``(1, H, W)``) or
    through the matplotlib colormap ``cmap`` (``(3, H, W)``).
    """
    if fmap.dim() != 3:
        raise CnnplError(f"feature_map_grid() needs one image's map (C, h, w), got shape {tuple(fmap.shape)}")
    maps = fmap.detach().float().cpu()[:max_channels]
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    span = hi - lo
    maps = torch.where(span > 0, (maps - lo) / span.clamp_min(1e-12), torch.zeros_like(maps))
    maps = upscale(maps, max(1, math.ceil(cell_size / max(maps.shape[-2:]))))
    cells = apply_colormap(maps, cmap) if cmap else maps.unsqueeze(1)
    return grid(cells, ncol=ncol, pad=pad)


# -- the notes' classic kernels ---------------------------------------------------------------------


DEMO_KERNELS = ("box_blur", "sharpen", "edge", "vertical_edge", "horizontal_edge")  # the notes' examples


def kernels_demo(images: torch.Tensor, names: Sequence[str] = DEMO_KERNELS) -> torch.Tensor:
    """The notes' "effect of different types of filters": ``(N, 1 + K, 3, H, W)`` in [0, 1].

    Column 0 is each image ``(N, C, H, W)`` in [0, 1]; column ``1 + j`` its response to the kernel
    ``names[j]`` of :mod:`cnnpl.kernels` ("same" padding). A kernel whose weights sum to one (blur,
    sharpen) makes an image: it is filtered per channel and clipped to [0, 1]. A kernel that sums to
    zero (edge and line detectors) makes a response: the channel mean is filtered and the magnitude is
    shown in grayscale, scaled by its largest value over all the images (so a flat region is black).
    """
    from cnnpl import kernels

    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    columns = [x]
    for name in names:
        total = float(kernels.kernel(name).sum())
        if abs(total - 1.0) < 1e-6:
            columns.append(kernels.apply_kernels(x, [name])[name].clamp(0, 1))
        else:
            response = kernels.apply_kernels(x, [name], grayscale=True)[name].abs()
            peak = float(response.max())
            columns.append((response / peak if peak > 0 else response).expand(-1, 3, -1, -1))
    return torch.stack(columns, dim=1)


def kernels_demo_grid(images: torch.Tensor, names: Sequence[str] = DEMO_KERNELS, scale: int = 2) -> torch.Tensor:
    """:func:`kernels_demo` as one image ``(3, H, W)``: a row per image, a column per kernel (the image first)."""
    return tile(upscale(kernels_demo(images, names), scale), pad=2)


def kernels_demo_figure(images: torch.Tensor, names: Sequence[str] = DEMO_KERNELS) -> Figure:
    """:func:`kernels_demo` as a figure whose columns are titled with the kernel names."""
    cells = kernels_demo(images, names)
    n, k = cells.shape[:2]
    fig = _figure(1.5 * k, 1.5 * n + 0.3)
    titles = ["image", *names]
    for i in range(n):
        for j in range(k):
            ax = fig.add_subplot(n, k, i * k + j + 1)
            ax.imshow(cells[i, j].permute(1, 2, 0).numpy(), vmin=0, vmax=1)
            ax.axis("off")
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
    return fig


# -- predictions and diagnostics --------------------------------------------------------------------


def predict(
    net: nn.Module, images: torch.Tensor, batch_size: int = 512, tta_flip: bool = False, tta_translate: int = 0
) -> torch.Tensor:
    """Logits ``(N, classes)`` for normalised ``images (N, C, H, W)``, in batches, in eval mode, on CPU;
    averaged over the run's test-time augmentations (``system.tta_flip``, ``system.tta_translate``: see
    :func:`test_time_logits`), as its validation and test scored them."""
    device = next(net.parameters()).device
    out = []
    with eval_mode(net), torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            out.append(test_time_logits(net, batch, tta_flip, tta_translate).float().cpu())
    return torch.cat(out)


def test_time_logits(
    forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, flip: bool = False, translate: int = 0
) -> torch.Tensor:
    """``forward(images)``'s logits, averaged over the test-time augmentations switched on: ``flip``, each
    image and its mirror image; ``translate`` > 0, also the images shifted ``translate`` pixels up-left and
    down-right (reflected at the border), weighted 1/2 for the unshifted views and 1/4 for each shift."""

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        return (forward(x) + forward(x.flip(3))) / 2 if flip else forward(x)

    logits = mirrored(images)
    if translate:
        t, (h, w) = translate, images.shape[-2:]
        padded = F.pad(images, (t, t, t, t), mode="reflect")
        up_left, down_right = padded[..., :h, :w], padded[..., 2 * t :, 2 * t :]
        logits = logits / 2 + (mirrored(up_left) + mirrored(down_right)) / 4
    return logits


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)``: row = true class, column = predicted class."""
    idx = labels.long().cpu() * num_classes + preds.long().cpu()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix (NaN for a class with no images)."""
    totals = cm.sum(1).double()
    return torch.where(totals > 0, cm.diagonal().double() / totals.clamp_min(1), torch.full_like(totals, math.nan))


def _figure(width: float, height: float, layout: str | None = None) -> Figure:
    """A figure not registered with pyplot (no GUI, no global state), drawn later with Agg.

    Fixed margins by default: constrained layout costs as much as the drawing (the callbacks draw
    every few epochs, inside the 3% budget).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CnnplError(
            "this picture needs matplotlib: pip install 'cnnpl[viz]' (or: pip install matplotlib)"
        ) from None
    return Figure(figsize=(width, height), dpi=100, layout=layout)


def confusion_matrix_figure(cm: torch.Tensor, class_names: Sequence[str], normalize: bool = True) -> Figure:
    """The confusion matrix as a heat map, rows = true class; cells show row fractions (or counts)."""
    cm = cm.cpu()
    k = len(class_names)
    values = cm.double() / cm.sum(1, keepdim=True).clamp_min(1) if normalize else cm.double()
    size = max(4.0, 0.5 * k + 2)
    fig = _figure(size + 1, size)
    longest = max((len(str(c)) for c in class_names), default=1)
    margin = min(0.35, (0.075 * longest + 0.5) / size)  # room for the tick labels, in figure fractions
    fig.subplots_adjust(left=margin, bottom=margin, right=0.93, top=0.94)
    ax = fig.add_subplot()
    im = ax.imshow(values.numpy(), cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    ax.set_xticks(range(k), list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(k), list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({int(cm.sum())} images)")
    if k <= 20:
        top = 1.0 if normalize else float(values.max()) or 1.0  # the colour scale's top
        for i in range(k):
            for j in range(k):
                v = float(values[i, j])
                text = f"{v:.2f}" if normalize else str(int(v))
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")
    return fig


def per_class_accuracy_figure(accuracy: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """A horizontal bar per class with its accuracy (recall); a class with no images (NaN) has no bar and reads
    "n/a" (helper-139: it read 0.00, as if every image of it were wrong)."""
    k = len(class_names)
    fig = _figure(6, max(2.5, 0.3 * k + 1), layout="constrained")
    ax = fig.add_subplot()
    acc = accuracy.double().tolist()
    ax.barh(range(k), [0.0 if math.isnan(a) else a for a in acc], color="tab:blue")
    ax.set_yticks(range(k), list(class_names))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    for i, a in enumerate(acc):
        seen = not math.isnan(a)
        label = f"{a:.2f}" if seen else "n/a (no images)"
        ax.text(min(a + 0.01, 0.9) if seen else 0.01, i, label, va="center", fontsize=8)
    return fig


def misclassified_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    class_names: Sequence[str],
    ncol: int = 8,
    scale: int = 3,
) -> Figure:
    """``images (N, C, H, W)`` in [0, 1] in a grid of ``ncol`` columns, each titled ``true -> predicted``.

    Drawn as one image with text above each cell (one axes, not one per image: several times faster).
    """
    n = len(images)
    ncol = max(1, min(ncol, n))
    nrow = max(1, math.ceil(n / ncol))
    if n == 0:
        fig = _figure(4, 1)
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return fig
    pixels = images.detach().float().cpu().clamp(0, 1)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    h, w = pixels.shape[-2] * scale, pixels.shape[-1] * scale
    label_h = 24  # pixels of room above each image for its two-line title
    cells = torch.ones(nrow * ncol, 3, h + label_h, w)
    cells[:n, :, label_h:] = upscale(pixels, scale)
    picture = tile(cells.view(nrow, ncol, 3, h + label_h, w), pad=4)
    fig = _figure(picture.shape[2] / 100, picture.shape[1] / 100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(picture.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    for i in range(n):
        r, k = divmod(i, ncol)
        x = 4 + k * (w + 4) + w / 2
        y = 4 + r * (h + label_h + 4) + label_h / 2
        title = f"{class_names[int(labels[i])]} ->\n{class_names[int(preds[i])]}"
        ax.text(x, y, title, ha="center", va="center", fontsize=7, linespacing=1.0)
    return fig


def pr_curves_figure(probs: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """One-vs-rest precision-recall curve per class from ``probs (N, classes)``, with average precision."""
    fig = _figure(7, 5, layout="constrained")
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        precision, recall, ap = _pr_curve(probs[:, c], labels == c)
        ax.plot(recall.numpy(), precision.numpy(), label=f"{name} (AP {ap:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def _pr_curve(scores: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    order = scores.argsort(descending=True)
    hits = positive[order].double()
    tp = hits.cumsum(0)
    precision = tp / torch.arange(1, len(hits) + 1, dtype=torch.float64)
    recall = tp / hits.sum().clamp_min(1)
    ap = float((precision * hits).sum() / hits.sum().clamp_min(1))
    return precision, recall, ap


def figure_to_tensor(fig: Figure) -> torch.Tensor:
    """Render a matplotlib figure (Agg) to an RGB tensor ``(3, H, W)`` in [0, 1]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8)
    h, w = canvas.get_width_height()[::-1]
    return rgba.view(h, w, 4)[..., :3].permute(2, 0, 1).float() / 255


# -- Grad-CAM ---------------------------------------------------------------------------------------


def grad_cam(
    net: nn.Module, images: torch.Tensor, layer: str, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM (Selvaraju et al. 2017) heat maps of ``layer`` for normalised ``images (N, C, H, W)``.

    For each image, the class score ``target[i]`` (default: the predicted class) is differentiated
    with respect to the layer's output ``A (C', h, w)``; the channel weights are the spatially averaged
    gradients, the map is ``relu(sum_c weight_c * A_c)``, enlarged bilinearly to ``(H, W)`` and scaled
    to [0, 1] per image (an all-zero map stays zero). Parameter ``.grad`` fields are left untouched.
    Returns ``(heat maps (N, H, W), logits (N, classes))``.
    """
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> Any:
        if isinstance(out, torch.Tensor):
            captured.append(out)
            # the rest of the network gets a copy: an in-place activation after the layer (act.inplace=true)
            # would otherwise turn A and its gradient into those of the activation's output
            return out.clone()
        captured.append(out[0])
        return None

    handle = find_layer(net, layer).register_forward_hook(hook)
    device = next(net.parameters()).device
    try:
        with eval_mode(net), torch.enable_grad(), eager():
            x = images.to(device).detach().requires_grad_(True)  # so the graph exists even for frozen nets
            logits = net(x)
            if not captured:
                raise CnnplError(
                    f"Grad-CAM: layer {layer!r} did not run in {type(net).__name__}'s forward pass; "
                    "name one that does (callbacks.gradcam.layer=...)"
                )
            activation = captured[-1]
            if activation.dim() != 4:
                raise CnnplError(
                    f"Grad-CAM needs a layer with a (N, C, h, w) output; {layer!r} gives {activation.dim()}-D"
                )
            chosen = logits.argmax(1) if target is None else target.to(device).long()
            score = logits.gather(1, chosen.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
    peak = cam.flatten(1).max(1).values.view(-1, 1, 1)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.cpu(), logits.detach().float().cpu()


def grad_cam_overlay(images: torch.Tensor, cams: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> torch.Tensor:
    """Blend heat maps ``(N, H, W)`` in [0, 1] (coloured with ``cmap``) over ``images (N, C, H, W)`` in [0, 1]."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return ((1 - alpha) * images + alpha * apply_colormap(cams, cmap)).clamp(0, 1)


def cam_layer(net: nn.Module) -> str | None:
    """The layer Grad-CAM explains by default: the network's ``cam_layer`` where it names one (the
    last block's output of a residual or multi-branch network, whose last conv defined is a side
    branch's or comes before the residual sum), else its last conv layer; None if it has none."""
    named = getattr(net, "cam_layer", None)
    if isinstance(named, str):
        return named
    convs = conv_layers(net)
    return convs[-1] if convs else None


# -- embedding --------------------------------------------------------------------------------------


def last_linear(net: nn.Module) -> str:
    """The name of the last ``nn.Linear`` in ``net``: its input is the penultimate-layer embedding."""
    names = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise CnnplError(f"{type(net).__name__} has no nn.Linear layer; name the embedding layer explicitly")
    return names[-1]


def embedding(net: nn.Module, images: torch.Tensor, layer: str | None = None, batch_size: int = 512) -> torch.Tensor:
    """Features ``(N, D)`` of normalised ``images``: the input of ``layer`` (default: the last linear layer).

    With the default this is the penultimate-layer representation the classifier separates.
    """
    target = find_layer(net, layer if layer is not None else last_linear(net))
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].detach().flatten(1).float().cpu())

    handle = target.register_forward_pre_hook(hook)
    try:
        with eager():
            predict(net, images, batch_size)
    finally:
        handle.remove()
    return torch.cat(captured)


# -- files ------------------------------------------------------------------------------------------


def save_png(image: torch.Tensor | Figure, path: str | Path) -> Path:
    """Write an image tensor ``(C, H, W)`` in [0, 1] or a matplotlib figure to ``path`` as PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(image, torch.Tensor):
        image = figure_to_tensor(image)
    array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if array.shape[0] == 1:
        Image.fromarray(array[0].numpy(), mode="L").save(path)
    else:
        Image.fromarray(array.permute(1, 2, 0).contiguous().numpy()).save(path)
    return path
