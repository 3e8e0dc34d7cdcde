"""``data=shapes``: a synthetic, offline 10-class image dataset generated on the fly.

Classes (label order): vertical lines, horizontal lines, diagonal lines, anti-diagonal lines,
cross, circle, square, checkerboard, disk, grid. Each image has a random position, size, period,
stroke width, foreground and background colour, plus Gaussian noise, so a CNN must learn the
shapes, not the pixels. The same seed gives the same images.
"""

from __future__ import annotations

import math
import os

import torch

from cnnpl.data.base import InMemoryImageDataModule, Split, check_count
from cnnpl.errors import CnnplError, yaml_word

CLASSES = [
    "vertical",
    "horizontal",
    "diagonal",
    "anti_diagonal",
    "cross",
    "circle",
    "square",
    "checkerboard",
    "disk",
    "grid",
]


def make_shapes(n: int, size: int = 32, noise: float = 0.08, seed: int = 0) -> Split:
    """``n`` images ``(n, 3, size, size)`` uint8 with balanced labels, generated with ``seed``."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, 1, 1, generator=g)).float()

    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    cy, cx = uniform(size * 0.3, size * 0.7), uniform(size * 0.3, size * 0.7)
    radius = uniform(size * 0.15, size * 0.3)
    period = uniform(5, 9).round()
    phase = uniform(0, 9).round()
    width = uniform(1.5, 2.5)
    dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
    box = torch.maximum((yy - cy).abs(), (xx - cx).abs())

    def stripes(u: torch.Tensor) -> torch.Tensor:
        return ((u + phase) % period) < width

    vertical, horizontal = stripes(xx + 0 * yy), stripes(yy + 0 * xx)
    masks = torch.stack(
        [
            vertical,
            horizontal,
            stripes(xx + yy),
            stripes(xx - yy + size),
            ((yy - cy).abs() < width) | ((xx - cx).abs() < width),
            (dist - radius).abs() < width * 0.75,
            (box - radius).abs() < width * 0.6,
            (((xx + phase) // (period / 2)) + ((yy + phase) // (period / 2))) % 2 == 0,
            dist < radius,
            vertical | horizontal,
        ]
    )  # (classes, n, H, W)
    mask = masks[labels, torch.arange(n)].unsqueeze(1).float()
    fg = 0.55 + 0.45 * torch.rand(n, 3, 1, 1, generator=g)
    bg = 0.35 * torch.rand(n, 3, 1, 1, generator=g)
    images = bg + (fg - bg) * mask + noise * torch.randn(n, 3, size, size, generator=g)
    return Split((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)


# make_shapes' peak memory, in bytes per pixel of one split (its masks, coordinates and float images): 61-62
# measured at 2000 x 64x64 and 500 x 256x256 (ru_maxrss)
GENERATION_BYTES_PER_PIXEL = 64


def _physical_memory() -> int | None:
    """This machine's memory in bytes; None where the system does not say (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


class ShapesDataModule(InMemoryImageDataModule):
    """Synthetic shapes: ``num_train`` training and ``num_test`` test images of ``image_size`` pixels."""

    MIRROR_SWAPS = ("diagonal", "anti_diagonal")  # a left-right mirror turns the one into the other

    def __init__(
        self, num_train: int = 5000, num_test: int = 1000, image_size: int = 32, noise: float = 0.08, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        check_count("num_train", num_train, 2)
        check_count("num_test", num_test, 1)
        check_count("image_size", image_size, 8)
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
            raise CnnplError(
                f"data.noise must be a number >= 0 (the std of the added Gaussian noise), got {yaml_word(noise)}"
            )
        self.num_train, self.num_test, self.image_size, self.noise = num_train, num_test, image_size, noise
        self.check_val_split(num_train)
        needed = GENERATION_BYTES_PER_PIXEL * max(num_train, num_test) * image_size**2
        total = _physical_memory()
        if total is not None and needed > total:
            raise CnnplError(
                f"data=shapes with data.num_train={num_train}, data.num_test={num_test} and data.image_size="
                f"{image_size} needs about {needed / 2**30:.3g} GiB of memory to generate, more than this machine's "
                f"{total / 2**30:.3g} GiB; lower data.image_size or the image counts"
            )

    def known_shape(self) -> tuple[int, int, tuple[int, int]]:
        return len(CLASSES), 3, (self.image_size, self.image_size)

    def load(self) -> tuple[Split, Split, list[str]]:
        train = make_shapes(self.num_train, self.image_size, self.noise, seed=self.seed)
        test = make_shapes(self.num_test, self.image_size, self.noise, seed=self.seed + 1_000_003)
        return train, test, CLASSES
