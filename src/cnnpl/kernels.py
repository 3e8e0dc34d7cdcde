"""The classic fixed 3x3 filters from the course notes, and applying them to images.

Names (:data:`KERNELS`): ``box_blur``, ``sharpen``, ``edge``, ``vertical_edge``, ``horizontal_edge``,
``sobel_x`` and ``sobel_y``. Every kernel is applied as cross-correlation, the deep-learning convention
the notes' worked examples use (``conv2d``): the kernel is laid on the image as printed, not flipped.

* :func:`kernel` returns one as a tensor; :func:`apply_kernels` filters an image batch with several
  (the visualisation work shows the effect);
* :func:`init_conv_weight_` writes one into a conv layer's weight (what ``conv.init=<name>`` does).

``python -m cnnpl.kernels [KERNEL ...]`` prints each kernel (every one by default) and its response on the notes'
5x5 example image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from cnnpl.errors import CnnplError, run_command, yaml_word
from cnnpl.geometry import Padding, padding_amounts

# Rows top to bottom, as the notes print them.
KERNELS: dict[str, tuple[tuple[float, ...], ...]] = {
    # the notes draw the blur as all ones; dividing by 9 makes it the mean, so brightness is kept
    "box_blur": ((1 / 9, 1 / 9, 1 / 9), (1 / 9, 1 / 9, 1 / 9), (1 / 9, 1 / 9, 1 / 9)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
    "edge": ((1, 1, 1), (1, -8, 1), (1, 1, 1)),
    # bright on the left, dark on the right gives a positive response (the notes' 1 0 -1 columns)
    "vertical_edge": ((1, 0, -1), (1, 0, -1), (1, 0, -1)),
    "horizontal_edge": ((1, 1, 1), (0, 0, 0), (-1, -1, -1)),
    "sobel_x": ((1, 0, -1), (2, 0, -2), (1, 0, -1)),
    "sobel_y": ((1, 2, 1), (0, 0, 0), (-1, -2, -1)),
}
"""The named 3x3 kernels, rows top to bottom as the notes print them: what ``conv.init=<name>`` and
:func:`kernel` take."""


def list_kernels() -> list[str]:
    """The kernels' names, in :data:`KERNELS`' order."""
    return list(KERNELS)


def kernel(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``(3, 3)`` kernel called ``name``; an unknown name raises :class:`CnnplError` listing them."""
    try:
        rows = KERNELS[name]
    except (KeyError, TypeError):
        from cnnpl.registry import _did_you_mean  # the registry's wording: a sentence ends before the list

        raise CnnplError(
            f"unknown kernel {yaml_word(name)}{_did_you_mean(str(name), list(KERNELS))} Available: {', '.join(KERNELS)}"
        ) from None
    return torch.tensor(rows, dtype=dtype)


def init_conv_weight_(weight: torch.Tensor, name: str, *, what: str = "conv") -> torch.Tensor:
    """Fill a conv weight ``(C_out, C_in / groups, k_h, k_w)`` in place from the kernel ``name``.

    Every (output, input) channel pair gets the kernel divided by the number of input channels each
    filter sees, so a filter responds to the channel *mean* exactly as the kernel responds to a
    grayscale image (on one input channel it is the kernel itself). A kernel smaller than the layer's
    is centred in zeros (a 3x3 kernel in a 5x5 layer); it must then differ by an even number of rows
    and columns. A larger one raises :class:`CnnplError`.
    """
    try:
        k = kernel(name, dtype=weight.dtype).to(weight.device)
    except CnnplError as err:
        raise CnnplError(f"{what} init: {err}") from None
    out_c, in_per_group, kh, kw = weight.shape
    dh, dw = kh - k.shape[0], kw - k.shape[1]
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise CnnplError(
            f"{what}: init={name!r} is a {k.shape[0]}x{k.shape[1]} kernel and cannot be centred in a {kh}x{kw} "
            "kernel; use kernel_size 3 (or 5, 7, ...) for this layer or drop init"
        )
    full = torch.zeros(kh, kw, dtype=weight.dtype, device=weight.device)
    full[dh // 2 : dh // 2 + k.shape[0], dw // 2 : dw // 2 + k.shape[1]] = k
    with torch.no_grad():
        weight.copy_((full / in_per_group).expand(out_c, in_per_group, kh, kw))
    return weight


def apply_kernels(
    images: torch.Tensor,
    names: Iterable[str] | None = None,
    *,
    padding: Padding = "same",
    grayscale: bool = False,
) -> dict[str, torch.Tensor]:
    """Filter a batch with each named kernel (all of :data:`KERNELS` when ``names`` is None).

    ``images``: ``(N, C, H, W)`` (or one ``(C, H, W)`` image), any dtype; computed in float32 (float64
    stays float64). Each channel is filtered on its own, so ``(N, C, H, W) -> (N, C, H', W')``; with
    ``grayscale=True`` the channels are averaged first and the result is ``(N, 1, H', W')``.
    ``padding`` is zeros as in :func:`cnnpl.geometry.padding_amounts` (``"same"`` keeps the size).
    Returns ``{name: filtered}`` in the order asked. Raw responses: not clipped or rescaled.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise CnnplError(f"apply_kernels wants images (N, C, H, W) or (C, H, W), got shape {tuple(images.shape)}")
    x = images.to(torch.float64 if images.dtype == torch.float64 else torch.float32)
    if grayscale:
        x = x.mean(dim=1, keepdim=True)
    c, h, w = x.shape[1:]
    chosen: Sequence[str] = list(KERNELS) if names is None else [names] if isinstance(names, str) else list(names)
    kernels = {name: kernel(name, dtype=x.dtype) for name in chosen}  # unknown names fail before any work
    top, bottom = padding_amounts(h, 3, 1, padding)
    left, right = padding_amounts(w, 3, 1, padding)
    x = F.pad(x, (left, right, top, bottom))
    if x.shape[-2] < 3 or x.shape[-1] < 3:
        raise CnnplError(f"apply_kernels: a 3x3 kernel does not fit {h}x{w} images with padding={padding!r}")
    return {name: F.conv2d(x, k.expand(c, 1, 3, 3), groups=c) for name, k in kernels.items()}


NOTES_IMAGE = (
    (7, 2, 3, 3, 8),
    (4, 5, 3, 8, 4),
    (3, 3, 2, 8, 4),
    (2, 8, 7, 2, 7),
    (5, 4, 4, 5, 4),
)
"""The notes' 5x5 example image (their Example 2), rows top to bottom; the "1 0 -1" filter (``vertical_edge``)
gives 6 at its top-left."""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cnnpl.kernels [KERNEL ...]``: the notes' 5x5 image through the kernels named (all by default)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m cnnpl.kernels",
        description="Each classic 3x3 kernel next to its response on the notes' 5x5 example image "
        "(cross-correlation, padding 'valid').",
    )
    parser.add_argument(
        "kernels", nargs="*", metavar="KERNEL", help=f"kernels to show (default all): {', '.join(KERNELS)}"
    )
    args = parser.parse_args(argv)
    image = torch.tensor(NOTES_IMAGE, dtype=torch.float64)[None, None]
    try:
        responses = apply_kernels(image, args.kernels or None, padding="valid")
    except CnnplError as err:
        print(f"cnnpl.kernels: error: {err}", file=sys.stderr)
        return 2
    print("the notes' 5x5 image:\n" + "\n".join("  " + " ".join(f"{v:3d}" for v in row) for row in NOTES_IMAGE))
    for name, out in responses.items():
        k = kernel(name, torch.float64)
        print(f"\n{name}")
        for krow, orow in zip(k.tolist(), out[0, 0].tolist(), strict=False):
            print("  " + " ".join(f"{v:6.2f}" for v in krow) + "   ->  " + " ".join(f"{v:7.2f}" for v in orow))
    return 0


if __name__ == "__main__":
    run_command(main)
