"""The in-memory image DataModule every cnnpl dataset builds on.

A dataset is decoded once into uint8 tensors ``(N, C, H, W)``. Batches leave the DataLoader as
uint8 (cheap to index, cheap to move to a GPU); augmentation and normalisation run on the whole
batch with tensor ops after it reaches its device (``on_after_batch_transfer``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from cnnpl.data import augment as aug
from cnnpl.distributed import EvalShardSampler
from cnnpl.errors import CnnplError, DataError, yaml_word


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


class TensorBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style dataset that also serves whole batches at once (``__getitems__``).

    The DataLoader then asks for a list of indices and gets one ``(images, labels)`` pair back,
    instead of collating ``batch_size`` single images.
    """

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.images[index], self.split.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return self.split.images[idx], self.split.labels[idx]


def check_count(key: str, value: object, minimum: int, alternative: str = "", maximum: int | None = None) -> None:
    """Refuse ``data.<key>`` unless it is an integer >= ``minimum`` (a bool is no count; ``1e3`` is a float),
    and <= ``maximum`` if given.

    ``alternative`` names another accepted value for the message (``"or null for the default"``).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        whole = isinstance(value, float) and value.is_integer() and value >= minimum
        hint = f" (write {int(value)})" if isinstance(value, float) and whole else ""
        alternative = f", {alternative}" if alternative else ""
        raise CnnplError(f"data.{key} must be an integer >= {minimum}{alternative}, got {yaml_word(value)}{hint}")
    if value < minimum:
        alternative = f" ({alternative})" if alternative else ""
        raise CnnplError(f"data.{key} must be >= {minimum}{alternative}, got {value}")
    if maximum is not None and value > maximum:
        raise CnnplError(f"data.{key} must be an integer in [{minimum}, {maximum}], got {value}")


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) std of ``(N, C, H, W)`` images, as float64 ``(C,)`` tensors.

    For uint8 images both come from each channel's 256-bin histogram, summed in exact integers: the
    float64 mean and std of every pixel, without the float64 copy of the split that costs seconds
    (and 8 bytes a pixel) on CIFAR-10. Other dtypes are reduced in float64.
    """
    pixels = images.transpose(0, 1).reshape(images.shape[1], -1)
    if images.dtype != torch.uint8:
        return pixels.double().mean(1), pixels.double().std(1)
    n = pixels.shape[1]
    means, stds = [], []
    for counts in (torch.bincount(channel, minlength=256).tolist() for channel in pixels):
        total = sum(value * count for value, count in enumerate(counts))
        squares = sum(value * value * count for value, count in enumerate(counts))
        means.append(total / n if n else math.nan)  # n * sum(x^2) - sum(x)^2 = n (n - 1) var, exactly
        stds.append(math.sqrt((n * squares - total * total) / (n * (n - 1))) if n > 1 else math.nan)
    return torch.tensor(means, dtype=torch.float64), torch.tensor(stds, dtype=torch.float64)


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function for :class:`TensorBatches`: the batch is already stacked."""
    return batch


def _smallest_split(n: int) -> float:
    """The smallest ``val_split`` of two significant digits that holds out one of ``n`` images (``round``)."""
    step = 10 ** (math.floor(math.log10(0.5 / n)) - 1)
    fraction = math.floor(0.5 / n / step) * step
    while round(n * fraction) < 1:
        fraction += step
    return fraction


NORMALIZATIONS = ("standardize", "scale")
MAX_DATA_SEED = 2**32 - 1  # the run's seed's range (NumPy's); torch's generators take it, and seed + 1_000_003


class InMemoryImageDataModule(L.LightningDataModule):
    """Train / val / test splits held in memory, with batched augmentation.

    Subclasses implement :meth:`load`, returning the training split, the test split and the class
    names. The validation split is ``val_split`` of the training split, drawn with ``seed`` (the
    same seed gives the same split); with ``val_split=0`` there is no validation at all.
    Normalisation (``normalize=standardize``) uses the per-channel mean and std of the training part alone;
    ``normalize=scale`` divides the pixels by 255 only, as the notes' Keras recipe. Augmentation
    (``crop_padding`` with ``crop_padding_mode``, ``flip``, ``cutout``) applies to training batches
    only. ``flip="alternate"`` is airbench's derandomised flip: a seeded random half of the training
    images is stored mirrored at setup, and every odd epoch mirrors whole batches, so each image is
    seen both ways in every two epochs (``flip=true`` flips each image at random, every epoch).
    ``train_sizes`` is progressive resizing: training epoch ``i`` (from 0) sees ``train_sizes[i]`` square
    images (made so by ``train_resize``: ``scale`` or ``crop``, :func:`~cnnpl.data.augment.shrink`),
    every later epoch, validation and test the full size; the model must take any input size.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_split: float = 0.2,
        seed: int = 0,
        crop_padding: int = 4,
        crop_padding_mode: str = "zeros",
        flip: bool | str = True,
        cutout: int = 0,
        num_workers: int = 0,
        train_sizes: Sequence[int] = (),
        train_resize: str = "scale",
        normalize: str = "standardize",
    ) -> None:
        super().__init__()
        check_count("batch_size", batch_size, 1)
        if eval_batch_size is not None:  # null: the default
            check_count("eval_batch_size", eval_batch_size, 1, "or null for the default max(batch_size, 256)")
        if isinstance(val_split, bool) or not isinstance(val_split, (int, float)) or not 0.0 <= val_split < 1.0:
            raise CnnplError(
                "data.val_split must be a number in [0, 1) (the fraction of the training set held out), "
                f"got {yaml_word(val_split)}"
            )
        check_count("seed", seed, 0, maximum=MAX_DATA_SEED)
        check_count("crop_padding", crop_padding, 0)
        check_count("cutout", cutout, 0)
        check_count("num_workers", num_workers, 0)
        if crop_padding_mode not in aug.PAD_MODES:
            modes = ", ".join(aug.PAD_MODES)
            raise CnnplError(f"data.crop_padding_mode must be one of {modes}, got {yaml_word(crop_padding_mode)}")
        if not (isinstance(flip, bool) or flip == "alternate"):  # 1 in (True, False) is true
            raise CnnplError(f"data.flip must be true, false or alternate, got {yaml_word(flip)}")
        sizes = list(train_sizes) if isinstance(train_sizes, Sequence) and not isinstance(train_sizes, str) else None
        if sizes is None or any(isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in sizes):
            raise CnnplError(
                f"data.train_sizes must be a list of image sides in whole pixels, one per early epoch, such as "
                f"[24,24], got {yaml_word(train_sizes if sizes is None else sizes)}"
            )
        if train_resize not in aug.RESIZE_MODES:
            modes = ", ".join(aug.RESIZE_MODES)
            raise CnnplError(f"data.train_resize must be one of {modes}, got {yaml_word(train_resize)}")
        if normalize not in NORMALIZATIONS:
            raise CnnplError(
                f"data.normalize must be standardize (each channel to mean 0, std 1 over the training part) or "
                f"scale (pixels / 255 only, as the notes' Keras recipe), got {yaml_word(normalize)}"
            )
        self.batch_size = batch_size
        self.eval_batch_size = max(batch_size, 256) if eval_batch_size is None else eval_batch_size
        self.val_split = val_split
        self.seed = seed
        self.crop_padding = crop_padding
        self.crop_padding_mode = crop_padding_mode
        self.flip = flip
        self.cutout = cutout
        self.num_workers = num_workers
        self.train_sizes = sizes
        self.train_resize = train_resize
        self.normalization = normalize
        self.class_names: list[str] = []
        self._splits: dict[str, Split] = {}
        self.mean = torch.zeros(0)
        self.std = torch.ones(0)

    # -- what subclasses provide ------------------------------------------------------------
    def load(self) -> tuple[Split, Split, list[str]]:
        """Return ``(train, test, class_names)``; called once, in :meth:`setup`."""
        raise NotImplementedError

    # -- facts the model needs -------------------------------------------------------------
    def known_shape(self) -> tuple[int, int, tuple[int, int]] | None:
        """``(num_classes, in_channels, (height, width))`` where it is known without loading the data (the
        shapes' ``image_size``; CIFAR-10's files, or one image's header); ``None`` (the default) where only
        :meth:`setup` can tell. A sweep builds each job's network for it before the first job trains."""
        return None

    @property
    def num_classes(self) -> int:
        self._require_setup()
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        self._require_setup()
        return int(self._splits["train"].images.shape[1])

    @property
    def input_size(self) -> tuple[int, int]:
        self._require_setup()
        _, _, h, w = self._splits["train"].images.shape
        return int(h), int(w)

    def split(self, name: str) -> Split:
        """The ``train``, ``val`` or ``test`` split as uint8 images and labels."""
        self._require_setup()
        return self._splits[name]

    def _require_setup(self) -> None:
        if not self._splits:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run yet")

    # -- Lightning hooks -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        train, test, class_names = self.load()
        if len(class_names) < 2:
            raise DataError(
                f"{type(self).__name__} loaded {len(class_names)} class{'' if len(class_names) == 1 else 'es'} "
                f"({', '.join(map(str, class_names)) or 'none'}): a classifier needs two or more; add the images "
                "of another class (in class folders: another folder beside it)"
            )
        self.class_names = class_names
        n_val = self.check_val_split(len(train))
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = order[:n_val], order[n_val:]
        train_images = train.images[train_idx]
        if self.flip == "alternate":  # the mirrored half for epoch 0; odd epochs mirror it all back
            mirrored = torch.rand(len(train_idx), generator=torch.Generator().manual_seed(self.seed + 1)) < 0.5
            train_images = aug.flip_where(train_images, mirrored)
        self._splits = {
            "train": Split(train_images, train.labels[train_idx]),
            "val": Split(train.images[val_idx], train.labels[val_idx]),  # empty when val_split=0
            "test": test,
        }
        try:
            self._check_image_size()
        except CnnplError:
            self._splits = {}  # not set up: a second setup() must check again
            raise
        if self.normalization == "scale":  # pixels / 255: the notes' Keras recipe
            channels = self._splits["train"].images.shape[1]
            self.mean, self.std = torch.zeros(channels), torch.ones(channels)
            return
        mean, std = channel_stats(self._splits["train"].images)
        self.mean = (mean / 255).float()  # in [0, 1] units
        self.std = (std / 255).float().clamp_min(1e-3)

    def check_val_split(self, num_train: int) -> int:
        """The number of the ``num_train`` training images ``val_split`` holds out; refuses a split that leaves
        none to train on, or that holds out none although asked to (a sweep calls it where ``num_train``
        is known without loading, as on ``data=shapes``)."""
        n_val = round(num_train * self.val_split)
        if n_val >= num_train:  # Lightning would fail in fit, on a sampler of 0 samples
            raise CnnplError(
                f"data.val_split={self.val_split} holds out {n_val} of the {num_train} training images, leaving "
                "none to train on: use a smaller data.val_split or more training images"
            )
        if n_val == 0 and self.val_split > 0:  # would mean no validation, as val_split=0 says on purpose
            raise CnnplError(
                f"data.val_split={self.val_split} holds out 0 of the {num_train} training images, so nothing "
                f"would be validated: {_smallest_split(num_train):.2g} holds out one, or data.val_split=0 "
                "means no validation"
            )
        return n_val

    def _check_image_size(self) -> None:
        """Refuse the settings that only fail, or only make sense, against the loaded images' size."""
        train, test = self._splits["train"].images, self._splits["test"].images
        if len(train) and len(test) and train.shape[1:] != test.shape[1:]:
            raise CnnplError(
                f"the training images are {tuple(train.shape[1:])} (channels, height, width) but the test images "
                f"{tuple(test.shape[1:])}: a network takes one size; resize one split to the other's size"
            )
        self.check_image_settings(self.input_size)

    def check_image_settings(self, input_size: tuple[int, int]) -> None:
        """Refuse the augmentation settings that only fail, or only make sense, against images of
        ``input_size`` (height, width): :meth:`setup` calls it with the loaded images' size, a sweep with
        :meth:`known_shape`'s before its first job trains."""
        input_size = (int(input_size[0]), int(input_size[1]))
        side = min(input_size)
        if self.crop_padding_mode == "reflect" and self.crop_padding >= side:
            raise CnnplError(
                f"data.crop_padding={self.crop_padding} cannot be reflected on {input_size} images: "
                f"use a padding below {side} or data.crop_padding_mode=zeros"
            )
        if self.crop_padding >= side:  # zeros: a shift by a whole side leaves a crop of padding alone
            pad = self.crop_padding
            blank = 1.0 - math.prod(min(2 * n - 1, 2 * pad + 1) / (2 * pad + 1) for n in input_size)
            raise CnnplError(
                f"data.crop_padding={pad} is not smaller than the {input_size} images: about "
                f"{blank:.0%} of the training crops would hold no pixel of their image, only zeros; use a padding "
                f"below {side} (an eighth of the side is usual: 4 on CIFAR-10) or data.crop_padding=0 for none"
            )
        if self.cutout >= side:
            raise CnnplError(
                f"data.cutout={self.cutout} is not smaller than the {input_size} images: its square would "
                f"zero from a quarter to all of every training image; use a side below {side} (about half the "
                "image side is usual: 16 on CIFAR-10) or data.cutout=0 for none"
            )
        if self.train_sizes and max(self.train_sizes) > side:
            raise CnnplError(
                f"data.train_sizes {self.train_sizes} go above the {input_size} images: progressive "
                f"resizing shrinks, so use sides up to {side}"
            )

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = TensorBatches(self.split(split))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else self._eval_sampler(dataset),
            drop_last=False,
            collate_fn=keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _eval_sampler(self, dataset: TensorBatches) -> EvalShardSampler | None:
        """Under DDP, each process evaluates its own slice of the split, every image exactly once. Other
        strategies (FSDP) keep Lightning's sampler: they make collective calls in every forward.

        (Lightning would inject a ``DistributedSampler``, which pads the split with repeated images
        to divide it evenly: metrics over a split of odd size would count an image twice.) Training
        batches keep Lightning's ``DistributedSampler``: DDP needs the same number of steps everywhere.
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1:
            return None
        from lightning.pytorch.strategies import DDPStrategy

        if type(trainer.strategy) is not DDPStrategy:  # FSDP, DeepSpeed (a DDPStrategy subclass) gather the weights
            return None  # at every forward: shards of unequal batch counts would wait; Lightning's sampler pads
        return EvalShardSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        if not self.has_validation:
            return []  # val_split=0: no validation loop (and never the test split in its place)
        return self._loader("val", self.eval_batch_size, shuffle=False)

    @property
    def has_validation(self) -> bool:
        """Whether there is a validation split (``val_split`` > 0 and at least one image held out)."""
        return len(self.split("val")) > 0

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    # -- what a checkpoint records of the data -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The class names in label order, saved in each checkpoint (Lightning's data-module state)."""
        return {"class_names": list(self.class_names)} if self.class_names else {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Refuse a checkpoint trained on other classes (:meth:`check_classes`); nothing else is restored."""
        self.check_classes(state_dict)

    def check_classes(self, saved: Mapping[str, Any], what: str = "the checkpoint") -> None:
        """Refuse ``saved`` (a checkpoint's :meth:`state_dict`) when its class names, in label order, are not
        this data's: a class folder renamed or added would give each label another class, and the
        accuracy would be of the wrong classes without a word. A checkpoint without them (an older
        cnnpl's) is taken as it is."""
        names = saved.get("class_names") if isinstance(saved, Mapping) else None
        if not isinstance(names, list) or not self.class_names or names == list(self.class_names):
            return
        raise DataError(
            f"{what} was trained on the classes {names} (labels 0, 1, ... in that order), this data has "
            f"{list(self.class_names)}: its labels would mean other classes; use the data it was trained on "
            "(the same class folder names)"
        )

    def on_after_batch_transfer(
        self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        if self.trainer is None or not self.trainer.training:
            return self.normalize(images), labels
        images = self.normalize(self.augment(images))
        size = self.train_size(self.trainer.current_epoch)
        if size is not None:
            images = aug.shrink(images, size, self.train_resize)
        return images, labels

    def train_size(self, epoch: int) -> int | None:
        """The side of epoch ``epoch``'s training images under progressive resizing (None: full size)."""
        return self.train_sizes[epoch] if epoch < len(self.train_sizes) else None

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Training augmentation of a uint8 batch: random crop, flip, cutout as configured."""
        images = aug.random_crop(images, self.crop_padding, self.crop_padding_mode)
        if self.flip == "alternate":
            if self.trainer is not None and self.trainer.current_epoch % 2 == 1:
                images = images.flip(3)
        elif self.flip:
            images = aug.random_flip(images)
        return aug.cutout(images, self.cutout)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, C, H, W)`` -> float32 with the training split's per-channel mean and std."""
        mean = (self.mean * 255).to(images.device).view(1, -1, 1, 1)
        std = (self.std * 255).to(images.device).view(1, -1, 1, 1)
        return (images.float() - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalize`, into [0, 1] floats (for pictures)."""
        mean = self.mean.to(images.device).view(1, -1, 1, 1)
        std = self.std.to(images.device).view(1, -1, 1, 1)
        return (images * std + mean).clamp(0, 1)
