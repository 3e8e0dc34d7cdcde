"""The in-memory DataModules on tiny generated data, in both CIFAR-10 layouts."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cnnpl.data import CIFAR10DataModule, InMemoryImageDataModule, ShapesDataModule, Split
from cnnpl.data import augment as aug
from cnnpl.data import folder as folder_mod
from cnnpl.data.base import channel_stats
from cnnpl.data.cifar import CLASSES
from cnnpl.errors import CnnplError, DataError


def write_class_folders(root: Path, per_class: int = 3, classes: list[str] = CLASSES, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.full((size, size, 3), label * 20, dtype=np.uint8) + rng.integers(
                    0, 5, (size, size, 3), dtype=np.uint8
                )
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def write_torchvision_batches(root: Path, monkeypatch: pytest.MonkeyPatch, n: int = 20) -> None:
    from torchvision.datasets import CIFAR10

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)

    def batch(name: str, labels: list[int]) -> list[str]:
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        payload = pickle.dumps({"data": data, "labels": labels})
        (folder / name).write_bytes(payload)
        return [name, hashlib.md5(payload).hexdigest()]

    train = [batch(f"data_batch_{i}", [j % 10 for j in range(n)]) for i in range(1, 6)]
    test = [batch("test_batch", [j % 10 for j in range(n)])]
    # the real archive's checksums, swapped for the ones of these generated files
    monkeypatch.setattr(CIFAR10, "train_list", train)
    monkeypatch.setattr(CIFAR10, "test_list", test)


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def test_class_folder_layout_loads_in_cifar_label_order(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "cifar")
    dm = CIFAR10DataModule(root=tmp_path / "cifar", val_split=0.2, batch_size=4)
    assert dm.known_shape() == (10, 3, (32, 32))  # what a sweep builds each job's network for, unread
    dm.setup("fit")
    assert (dm.num_classes, dm.in_channels, dm.input_size) == (10, 3, (32, 32))
    assert dm.class_names == CLASSES
    assert len(dm.split("train")) + len(dm.split("val")) == 30 and len(dm.split("val")) == 6
    test = dm.split("test")
    assert test.images.dtype == torch.uint8 and test.images.shape == (30, 3, 32, 32)
    # every image of class k was written with value 20k (+ noise < 5): labels follow CIFAR-10's order
    for label in range(10):
        pixels = test.images[test.labels == label].float()
        assert 20 * label <= pixels.min() and pixels.max() < 20 * label + 5
    # the folders list one class after another; the test split takes them in turn, so its first
    # batches (+trainer.limit_test_batches) hold every class
    assert test.labels.tolist() == list(range(10)) * 3


def test_interleave_classes_takes_each_class_in_turn_and_keeps_images_with_labels() -> None:
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    mixed = folder_mod.interleave_classes(Split(images, labels))
    assert mixed.labels.tolist() == [0, 1, 2, 0, 2, 0]
    assert mixed.images.flatten().tolist() == [0, 3, 4, 1, 5, 2]  # each class keeps its own order
    empty = folder_mod.interleave_classes(Split(images[:0], labels[:0]))
    assert len(empty) == 0


def test_decoded_arrays_are_cached_next_to_the_data(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_class_folders(tmp_path / "cifar", per_class=1)
    CIFAR10DataModule(root=tmp_path / "cifar").setup()
    assert len(list((tmp_path / "cifar" / ".cnnpl-cache").glob("*.npz"))) == 2

    def no_decoding(paths: list[str]) -> list[torch.Tensor]:
        raise AssertionError(f"decoded {paths[:2]}... although the cache holds them")

    monkeypatch.setattr(folder_mod, "_decode_all", no_decoding)
    dm = CIFAR10DataModule(root=tmp_path / "cifar")
    dm.setup()
    assert len(dm.split("test")) == 10


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _garble(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 50)


def _drop_labels(path: Path) -> None:
    with np.load(path) as data:
        images = data["images"]
    with path.open("wb") as file:
        np.savez(file, images=images)


def _shuffle_labels(path: Path) -> None:
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    with path.open("wb") as file:
        np.savez(file, images=images, labels=labels[::-1])


def _float_images(path: Path) -> None:
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    with path.open("wb") as file:
        np.savez(file, images=images.astype(np.float32), labels=labels)


def _lone_array(path: Path) -> None:
    with path.open("wb") as file:
        np.save(file, np.zeros(3))


@pytest.mark.parametrize(
    "damage", [_truncate, _garble, _drop_labels, _shuffle_labels, _float_images, _lone_array], ids=lambda f: f.__name__
)
def test_a_damaged_cache_is_decoded_again_and_rewritten(
    tmp_path: Path, cache_home: Path, damage: Callable[[Path], None]
) -> None:
    write_class_folders(tmp_path / "cifar", per_class=2)
    fresh, classes = folder_mod.load_class_folders(tmp_path / "cifar" / "train")
    (cached,) = (tmp_path / "cifar" / ".cnnpl-cache").glob("train-*.npz")
    damage(cached)
    with pytest.warns(UserWarning, match=rf"ignoring the damaged decode cache {cached} \(.*\); decoding the images"):
        again, again_classes = folder_mod.load_class_folders(tmp_path / "cifar" / "train")
    assert again_classes == classes
    assert torch.equal(again.images, fresh.images) and torch.equal(again.labels, fresh.labels)
    with np.load(cached) as data:  # rewritten whole: the next run reads it
        assert np.array_equal(data["images"], fresh.images.numpy()) and np.array_equal(data["labels"], fresh.labels)


def test_a_damaged_cache_that_cannot_be_replaced_is_reported_once(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_class_folders(tmp_path / "cifar", per_class=2)
    fresh, _ = folder_mod.load_class_folders(tmp_path / "cifar" / "train")
    (cached,) = (tmp_path / "cifar" / ".cnnpl-cache").glob("train-*.npz")
    cached.write_bytes(b"garbled")
    real_write = folder_mod._write_atomically
    monkeypatch.setattr(  # the data folder is read-only from now on
        folder_mod, "_write_atomically", lambda path, *a: path.parent != cached.parent and real_write(path, *a)
    )
    with pytest.warns(UserWarning, match=rf"ignoring the damaged decode cache {cached} \(.*\); decoding the images"):
        folder_mod.load_class_folders(tmp_path / "cifar" / "train")
    assert cached.read_bytes() == b"garbled"  # still there, and the decoded split is in the user's cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the next run reads the user's copy without a word about the old file
        again, _ = folder_mod.load_class_folders(tmp_path / "cifar" / "train")
    assert torch.equal(again.images, fresh.images) and torch.equal(again.labels, fresh.labels)


def test_jpegs_decode_in_batches_to_the_pixels_pil_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    paths = []
    for i, (mode, size) in enumerate([("RGB", (32, 32)), ("RGB", (33, 17)), ("L", (32, 32)), ("CMYK", (16, 16))] * 2):
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8).squeeze(), mode)
        paths.append(str(tmp_path / f"{i}.{'jpeg' if i % 2 else 'JPG'}"))
        image.save(paths[-1], quality=75)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    paths.append(str(tmp_path / "x.png"))
    monkeypatch.setattr(folder_mod, "JPEG_BATCH", 3)  # batches of 3 and a last one of 2
    batched = []
    real = folder_mod._decode_jpegs
    monkeypatch.setattr(folder_mod, "_decode_jpegs", lambda batch: batched.append(len(batch)) or real(batch))
    decoded = folder_mod._decode_all(paths)
    assert batched == [3, 3, 2]
    for path, image in zip(paths, decoded, strict=True):
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        assert torch.equal(image, folder_mod._decode(path)), path


def test_an_unreadable_jpeg_is_named_and_its_batch_still_decodes(tmp_path: Path) -> None:
    good = [str(tmp_path / f"{i}.jpg") for i in range(3)]
    for path in good:
        Image.fromarray(np.full((8, 8, 3), 100, dtype=np.uint8)).save(path)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert len(folder_mod._decode_all(good)) == 3
    with pytest.raises(DataError, match=r"cannot read image .*bad\.jpg.*delete or replace the file"):
        folder_mod._decode_all([*good, str(tmp_path / "bad.jpg")])


def test_cache_goes_to_the_user_cache_when_the_data_folder_is_not_writable(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "cifar", per_class=1)
    (tmp_path / "cifar" / ".cnnpl-cache").write_text("a file where the cache folder would go")
    CIFAR10DataModule(root=tmp_path / "cifar").setup()
    assert len(list((cache_home / "cnnpl").glob("*.npz"))) == 2


def test_torchvision_layout_with_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_torchvision_batches(tmp_path, monkeypatch)
    dm = CIFAR10DataModule(root=tmp_path, val_split=0.1)
    known = dm.known_shape()
    dm.setup()
    assert known == (dm.num_classes, dm.in_channels, dm.input_size)
    assert len(dm.split("train")) + len(dm.split("val")) == 100 and len(dm.split("test")) == 20
    assert dm.split("test").images.shape == (20, 3, 32, 32)


def test_corrupted_batch_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_torchvision_batches(tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"data_batch_3 is truncated or corrupted \(MD5 mismatch\)"):
        CIFAR10DataModule(root=tmp_path).setup()


def test_missing_dataset_says_where_it_looked_and_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        CIFAR10DataModule(root=tmp_path / "nowhere").setup()
    message = str(err.value)
    assert f"CIFAR-10 not found under '{(tmp_path / 'nowhere').resolve()}'" in message
    assert "data.root=" in message and "data.download=true" in message and "data=shapes" in message


def test_bad_class_folders_are_reported(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "a", per_class=1)
    (tmp_path / "a" / "train" / "cat" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*cat/0000\.png"):
        CIFAR10DataModule(root=tmp_path / "a").setup()

    write_class_folders(tmp_path / "b", per_class=1)
    for f in (tmp_path / "b" / "test" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"class folder .*test/dog holds no images") as err:
        CIFAR10DataModule(root=tmp_path / "b").setup()
    assert str(err.value).endswith("; copy its images again")  # helper-130: not "or remove the folder" (CIFAR-10's)

    write_class_folders(tmp_path / "c", per_class=1, classes=[*CLASSES[:-1], "lorry"])
    with pytest.raises(DataError) as err:  # helper-130: both whole lists, to compare by eye
        CIFAR10DataModule(root=tmp_path / "c").setup()
    assert str(err.value) == (
        f"class folders in {tmp_path / 'c' / 'train'} differ from the data's classes (missing: truck; not a class: "
        f"lorry); fix the folder names (the classes: {', '.join(CLASSES)})"
    )


def test_listing_keeps_the_path_order_suffix_rule_and_cache_key_of_pathlib(tmp_path: Path) -> None:
    """The string listing must name the files pathlib named, in its order, under the same cache key:
    otherwise every decode cache written so far would be decoded again, or the images reordered."""
    names = ["b.png", "B.png", "a10.png", "a2.png", "a.b.JPG", ".hidden.jpeg", "x.txt", "noext", "z.png.bak", "é.bmp"]
    for cls in ("cat", "ant"):
        (tmp_path / cls).mkdir()
        for name in names:
            (tmp_path / cls / name).write_bytes(name.encode())
    classes, files = folder_mod.list_class_folders(tmp_path)

    digest = hashlib.sha256("|".join(classes).encode())  # the key as pathlib computed it (up to 0084d1a)
    expected = []
    for label, cls in enumerate(classes):
        # a hidden file is no image: an rsync temporary, an editor's copy (".hidden.jpeg" was read, and trained on)
        images = (p for p in (tmp_path / cls).iterdir() if p.suffix.lower() in folder_mod.IMAGE_SUFFIXES)
        for path in sorted(p for p in images if not p.name.startswith(".")):
            st = path.stat()
            digest.update(f"{path.relative_to(tmp_path)}:{label}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            expected.append((str(path.relative_to(tmp_path)), label))
    assert classes == ["ant", "cat"]
    assert files == expected and len(files) == 12  # 6 image names a class, "B.png" before "a10.png"
    digest.update(folder_mod.PIL_DECODE_CHANGES)  # not only JPEGs: decoded again once since 16-bit grey is scaled
    assert folder_mod._cache_key(tmp_path, files, classes) == digest.hexdigest()[:16]
    jpegs = [(file, label) for file, label in files if file.lower().endswith((".jpg", ".jpeg"))]
    unsalted = hashlib.sha256("|".join(classes).encode())  # a JPEG-only split keeps the key it had
    for file, label in jpegs:
        st = (tmp_path / file).stat()
        unsalted.update(f"{file}:{label}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    assert folder_mod._cache_key(tmp_path, jpegs, classes) == unsalted.hexdigest()[:16]


@pytest.mark.filterwarnings(r"ignore:std\(\)")  # one or no pixel: nan, as torch says
@pytest.mark.parametrize("shape", [(64, 3, 5, 7), (9, 1, 4, 4), (2, 2, 1, 1), (1, 3, 2, 2), (0, 3, 2, 2)])
def test_channel_statistics_from_histograms_are_the_float64_ones(shape: tuple[int, ...]) -> None:
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(len(shape)))
    images[: len(images) // 2, :, 0, 0] = 255  # extremes too
    pixels = images.transpose(0, 1).reshape(shape[1], -1).double()
    mean, std = channel_stats(images)
    assert mean.dtype == std.dtype == torch.float64
    torch.testing.assert_close(mean, pixels.mean(1), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(std, pixels.std(1), rtol=1e-15, atol=0, equal_nan=True)
    floats = images.float() / 7  # not uint8: reduced in float64 directly
    reference = floats.transpose(0, 1).reshape(shape[1], -1).double().std(1)
    torch.testing.assert_close(channel_stats(floats)[1], reference, rtol=0, atol=0, equal_nan=True)


class Numbered(InMemoryImageDataModule):
    """100 images whose pixel value is their index: which ones land in val is visible."""

    def load(self) -> tuple[Split, Split, list[str]]:
        images = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 4, 4).clone()
        split = Split(images, torch.arange(100) % 2)
        return split, split, ["even", "odd"]


def test_validation_split_depends_on_the_seed_only() -> None:
    def val_indices(seed: int) -> list[int]:
        dm = Numbered(seed=seed, val_split=0.2, crop_padding=0)
        dm.setup()
        assert len(dm.split("val")) == 20 and len(dm.split("train")) == 80
        return sorted(dm.split("val").images[:, 0, 0, 0].tolist())

    assert val_indices(1) == val_indices(1)
    assert val_indices(1) != val_indices(2)


def test_validation_and_training_images_partition_the_training_set() -> None:
    dm = Numbered(seed=3, val_split=0.2, crop_padding=0)
    dm.setup()
    val, train = dm.split("val"), dm.split("train")
    tags = val.images[:, 0, 0, 0].tolist() + train.images[:, 0, 0, 0].tolist()
    assert sorted(tags) == list(range(100))  # every image in exactly one of them: none validated and trained on
    assert torch.equal(train.labels, train.images[:, 0, 0, 0].long() % 2)  # each label still with its image


@pytest.mark.parametrize("num_train, val_split, held_out", [(3, 0.9, 3), (2, 0.75, 2)])
def test_a_validation_split_that_leaves_no_training_image_is_refused(
    num_train: int, val_split: float, held_out: int
) -> None:
    with pytest.raises(CnnplError) as err:  # data=shapes knows its count before loading: refused as it is built
        ShapesDataModule(num_train=num_train, num_test=10, val_split=val_split)
    assert str(err.value) == (
        f"data.val_split={val_split} holds out {held_out} of the {num_train} training images, leaving none to train "
        "on: use a smaller data.val_split or more training images"
    )
    ShapesDataModule(num_train=num_train, num_test=10, val_split=0.4).setup("fit")  # one image is held out


@pytest.mark.parametrize("num_train, val_split, smallest", [(3, 0.1, "0.17"), (1000, 0.0004, "0.00051")])
def test_a_validation_split_that_holds_out_nothing_is_refused(num_train: int, val_split: float, smallest: str) -> None:
    with pytest.raises(CnnplError) as err:
        ShapesDataModule(num_train=num_train, num_test=10, val_split=val_split)
    assert str(err.value) == (
        f"data.val_split={val_split} holds out 0 of the {num_train} training images, so nothing would be validated: "
        f"{smallest} holds out one, or data.val_split=0 means no validation"
    )
    suggested = ShapesDataModule(num_train=num_train, num_test=10, val_split=float(smallest))
    suggested.setup("fit")
    assert len(suggested.split("val")) == 1
    just_under = float(smallest) - 10 ** (len(smallest.split(".")[1]) * -1)  # 0.16, 0.00050: none held out
    with pytest.raises(CnnplError):
        ShapesDataModule(num_train=num_train, num_test=10, val_split=just_under)
    nothing_on_purpose = ShapesDataModule(num_train=num_train, num_test=10, val_split=0)
    nothing_on_purpose.setup("fit")
    assert not nothing_on_purpose.has_validation


def test_normalisation_uses_training_statistics() -> None:
    dm = ShapesDataModule(num_train=300, num_test=30)
    dm.setup()
    x = dm.normalize(dm.split("train").images)
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3)), torch.ones(3), atol=1e-2)
    back = dm.denormalize(x[:4])
    assert torch.allclose(back * 255, dm.split("train").images[:4].float(), atol=1e-3)


def test_shapes_is_balanced_deterministic_and_offline() -> None:
    a, b = ShapesDataModule(num_train=100, num_test=20), ShapesDataModule(num_train=100, num_test=20)
    a.setup(), b.setup()
    assert torch.equal(a.split("test").images, b.split("test").images)
    assert torch.bincount(a.split("test").labels).tolist() == [2] * 10
    assert a.num_classes == 10 and a.input_size == (32, 32)


def test_batches_come_whole_from_the_loader_and_are_augmented_only_in_training() -> None:
    dm = ShapesDataModule(num_train=100, num_test=20, batch_size=16, crop_padding=2)
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (16,)
    x, _ = dm.on_after_batch_transfer((images, labels), 0)  # no trainer: evaluation path
    assert torch.equal(x, dm.normalize(images))
    dm.trainer = SimpleNamespace(training=True, current_epoch=0)  # training path: crop and flip, then normalise
    torch.manual_seed(0)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    torch.manual_seed(0)  # the same draws again
    assert torch.equal(x, dm.normalize(dm.augment(images))) and torch.equal(y, labels)
    assert not torch.equal(x, dm.normalize(images))


@pytest.mark.parametrize("mode, pad_mode", [("zeros", "constant"), ("reflect", "reflect")])
def test_random_crop_is_a_shifted_window_of_the_padded_image(mode: str, pad_mode: str) -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    torch.manual_seed(3)
    out = aug.random_crop(x, 2, mode)
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode=pad_mode)
    for i in range(2):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i].float(), w) for w in windows)
    assert torch.equal(aug.random_crop(x, 0, mode), x)


@pytest.mark.parametrize("mode, pad_mode", [("zeros", "constant"), ("reflect", "reflect")])
def test_random_crop_takes_the_window_its_draws_name(mode: str, pad_mode: str) -> None:
    # The shifts are drawn as before the crop got faster (rows for every image, then columns), so a
    # seed gives the same training batches as it always did.
    x = torch.randint(0, 256, (16, 3, 7, 9), dtype=torch.uint8)
    torch.manual_seed(11)
    out = aug.random_crop(x, 3, mode)
    after = torch.rand(2)
    torch.manual_seed(11)
    dy, dx = torch.randint(0, 7, (16,)), torch.randint(0, 7, (16,))
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3), mode=pad_mode)
    expected = torch.stack([padded[i, :, a : a + 7, b : b + 9] for i, (a, b) in enumerate(zip(dy, dx, strict=True))])
    assert torch.equal(out, expected) and torch.equal(after, torch.rand(2))  # nothing else drawn


def test_flip_where_mirrors_exactly_the_masked_images() -> None:
    x = torch.randint(0, 256, (32, 3, 5, 6), dtype=torch.uint8)
    mask = torch.rand(32) < 0.5
    expected = torch.stack([image.flip(2) if m else image for image, m in zip(x, mask, strict=True)])
    assert torch.equal(aug.flip_where(x, mask), expected)
    assert torch.equal(aug.flip_where(x.float(), mask), expected.float())


def test_zero_and_reflect_crops_draw_the_same_shifts() -> None:
    x = torch.randint(1, 255, (64, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(5)
    zeros = aug.random_crop(x, 2, "zeros")
    torch.manual_seed(5)
    reflect = aug.random_crop(x, 2, "reflect")
    inside = zeros != 0  # where the window lies on the image, both modes copy the same pixels
    assert torch.equal(zeros[inside], reflect[inside]) and (reflect != 0).all()


def test_cutout_zeroes_exactly_the_square_its_draws_name() -> None:
    x = torch.randint(1, 256, (24, 3, 9, 11), dtype=torch.uint8)
    torch.manual_seed(6)
    out = aug.cutout(x, 4)
    torch.manual_seed(6)
    cy, cx = torch.randint(0, 9, (24,)), torch.randint(0, 11, (24,))
    expected = x.clone()
    for i, (y, x0) in enumerate(zip(cy.tolist(), cx.tolist(), strict=True)):
        expected[i, :, max(y - 2, 0) : y + 2, max(x0 - 2, 0) : x0 + 2] = 0  # clipped at the border
    assert torch.equal(out, expected) and out.dtype == torch.uint8


def test_flip_and_cutout() -> None:
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(3, 2, 1, 1)
    assert torch.equal(aug.random_flip(x, p=1.0), x.flip(3))
    assert torch.equal(aug.random_flip(x, p=0.0), x)
    ones = torch.ones(50, 1, 16, 16, dtype=torch.uint8)
    zeroed = (aug.cutout(ones, 4) == 0).sum((1, 2, 3))
    assert zeroed.max() == 16 and zeroed.min() >= 4  # a 4x4 square, clipped at the border


class Asymmetric(InMemoryImageDataModule):
    """20 images whose mirror image differs from them, and each is tagged by its index."""

    def load(self) -> tuple[Split, Split, list[str]]:
        images = torch.zeros(20, 1, 2, 2, dtype=torch.uint8)
        images[:, 0, 0, 0] = torch.arange(1, 21, dtype=torch.uint8)  # top-left: index + 1
        split = Split(images, torch.arange(20) % 2)
        return split, split, ["a", "b"]


def test_alternating_flip_shows_every_image_both_ways_every_two_epochs() -> None:
    dm = Asymmetric(val_split=0.0, crop_padding=0, flip="alternate", seed=4)
    dm.setup()
    stored = dm.split("train").images
    mirrored = stored[:, 0, 0, 0] == 0  # its tag moved to the top-right
    assert 0 < int(mirrored.sum()) < 20
    epochs = []
    for epoch in range(4):
        dm.trainer = SimpleNamespace(training=True, current_epoch=epoch)
        epochs.append(dm.augment(stored))
    assert torch.equal(epochs[0], stored) and torch.equal(epochs[1], stored.flip(3))
    assert torch.equal(epochs[2], epochs[0]) and torch.equal(epochs[3], epochs[1])
    again = Asymmetric(val_split=0.0, crop_padding=0, flip="alternate", seed=4)
    again.setup()
    assert torch.equal(again.split("train").images, stored)  # the mirrored half depends on the seed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(flip="sometimes"), r"data\.flip must be true, false or alternate"),
        (dict(crop_padding_mode="wrap"), r"data\.crop_padding_mode must be one of zeros, reflect"),
        (
            dict(train_sizes=[24, 0]),
            r"data\.train_sizes must be a list of image sides in whole pixels, one per early epoch, such as "
            r"\[24,24\], got \[24, 0\]",
        ),
        (dict(train_sizes=[24.5]), r"data\.train_sizes must be a list of image sides in whole pixels.*got \[24\.5\]"),
        (dict(train_sizes=[True]), r"data\.train_sizes must be a list of image sides in whole pixels.*got \[true\]"),
        (dict(train_sizes=24), r"data\.train_sizes must be a list of image sides in whole pixels.*got 24$"),
        (dict(train_sizes="24"), r"data\.train_sizes must be a list of image sides in whole pixels.*got '24'$"),
        (dict(train_resize="squash"), r"data\.train_resize must be one of scale, crop, got 'squash'"),
    ],
)
def test_bad_augmentation_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(CnnplError, match=message):
        ShapesDataModule(**kwargs)


def test_shrink_by_crop_takes_the_window_its_draws_name() -> None:
    x = torch.randn(9, 2, 8, 6).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(4)
    out = aug.shrink(x, 5, "crop")
    torch.manual_seed(4)
    dy, dx = torch.randint(0, 4, (9,)), torch.randint(0, 2, (9,))
    expected = torch.stack([x[i, :, a : a + 5, b : b + 5] for i, (a, b) in enumerate(zip(dy, dx, strict=True))])
    assert torch.equal(out, expected)


def test_shrink_by_crop_cuts_a_window_of_each_image() -> None:
    x = torch.arange(64 * 3 * 8 * 8, dtype=torch.float32).view(64, 3, 8, 8)
    torch.manual_seed(0)
    out = aug.shrink(x, 5, "crop")
    assert out.shape == (64, 3, 5, 5)
    corners = set()
    for i in range(64):
        windows = {(dy, dx): x[i, :, dy : dy + 5, dx : dx + 5] for dy in range(4) for dx in range(4)}
        found = [offset for offset, window in windows.items() if torch.equal(out[i], window)]
        assert len(found) == 1
        corners.add(found[0])
    assert len(corners) > 8  # each image draws its own window, over the whole range of offsets


def test_shrink_by_scale_keeps_the_whole_image() -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, 4:] = 1.0  # left half dark, right half bright
    out = aug.shrink(x, 4, "scale")
    assert out.shape == (2, 1, 4, 4)
    assert out[..., :2].max() < 0.25 and out[..., 2:].min() > 0.75  # still dark left, bright right
    assert torch.allclose(out.mean(), torch.tensor(0.5))
    assert torch.allclose(aug.shrink(torch.full((1, 3, 8, 8), 0.5), 3, "scale"), torch.tensor(0.5))
    assert aug.shrink(x, 8, "crop") is x  # already that size
    with pytest.raises(ValueError, match="cannot shrink 8x8 images to 9x9"):
        aug.shrink(x, 9)


@pytest.mark.parametrize("mode", ["scale", "crop"])
def test_progressive_resizing_shrinks_only_the_early_training_epochs(mode: str) -> None:
    dm = ShapesDataModule(num_train=40, num_test=10, batch_size=8, train_sizes=[16, 24], train_resize=mode)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    sides = []
    for epoch in range(4):
        dm.trainer = SimpleNamespace(training=True, current_epoch=epoch)
        sides.append(dm.on_after_batch_transfer(batch, 0)[0].shape[-1])
    assert sides == [16, 24, 32, 32]
    dm.trainer = SimpleNamespace(training=False, current_epoch=0)  # validation and test: full size
    assert dm.on_after_batch_transfer(batch, 0)[0].shape[-1] == 32


def test_progressive_resizing_cannot_grow_images() -> None:
    dm = ShapesDataModule(num_train=20, num_test=10, image_size=16, train_sizes=[12, 20])
    with pytest.raises(CnnplError, match=r"data\.train_sizes \[12, 20\] go above the \(16, 16\) images"):
        dm.setup()


def test_reflect_padding_must_fit_inside_the_image() -> None:
    dm = ShapesDataModule(num_train=20, num_test=10, image_size=8, crop_padding=8, crop_padding_mode="reflect")
    with pytest.raises(CnnplError, match=r"data\.crop_padding=8 cannot be reflected on \(8, 8\) images"):
        dm.setup()


def test_zero_padding_must_leave_some_of_the_image_in_every_crop() -> None:
    dm = ShapesDataModule(num_train=20, num_test=10, image_size=32, crop_padding=100)
    with pytest.raises(CnnplError) as err:
        dm.setup()
    assert str(err.value) == (
        "data.crop_padding=100 is not smaller than the (32, 32) images: about 90% of the training crops would hold "
        "no pixel of their image, only zeros; use a padding below 32 (an eighth of the side is usual: 4 on CIFAR-10) "
        "or data.crop_padding=0 for none"
    )
    with pytest.raises(CnnplError, match=r"data\.crop_padding=8 is not smaller than the \(8, 8\) images: about 22%"):
        ShapesDataModule(num_train=20, num_test=10, image_size=8, crop_padding=8).setup()
    torch.manual_seed(0)  # the share the message states, counted: 1 - (15/17)^2 = 22.1% of crops all zeros
    blank = (aug.random_crop(torch.ones(20000, 1, 8, 8, dtype=torch.uint8), 8) == 0).all(3).all(2).all(1)
    assert abs(blank.float().mean().item() - 0.221) < 0.01
    ShapesDataModule(num_train=20, num_test=10, image_size=8, crop_padding=7).setup()  # every crop keeps a corner


@pytest.mark.parametrize("size", [8, 24])
def test_the_shape_synthetic_data_declares_before_it_is_made_is_its_shape(size: int) -> None:
    dm = ShapesDataModule(num_train=20, num_test=10, image_size=size, val_split=0)
    known = dm.known_shape()
    dm.setup()
    assert known == (dm.num_classes, dm.in_channels, dm.input_size) == (10, 3, (size, size))


def test_cifar10_class_folders_of_another_size_declare_their_size(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "cifar", per_class=1, size=40)
    dm = CIFAR10DataModule(root=tmp_path / "cifar", val_split=0)
    known = dm.known_shape()
    dm.setup()
    assert known == (dm.num_classes, dm.in_channels, dm.input_size) == (10, 3, (40, 40))
    assert CIFAR10DataModule(root=tmp_path / "nothing here").known_shape() is None
    assert CIFAR10DataModule(root=tmp_path / "nothing here", download=True).known_shape() == (10, 3, (32, 32))


# -- odd files in class folders ----------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_loads(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    name = bytes(tmp_path / "d" / "train" / "a") + b"/caf\xe9.png"  # Latin-1, as an old Windows archive names it
    try:
        Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(name.decode("utf-8", "surrogateescape"))
    except (OSError, UnicodeError):
        pytest.skip("this file system takes UTF-8 names only")
    train, classes = folder_mod.load_class_folders(tmp_path / "d" / "train")  # was a UnicodeEncodeError
    assert classes == ["a", "b"] and len(train) == 5 and int(train.images[2].max()) == 7  # 0000, 0001, caf\xe9
    again, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")  # from the cache
    assert torch.equal(again.images, train.images)


def test_a_link_to_nothing_and_a_decompression_bomb_are_named(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    broken = tmp_path / "d" / "train" / "a" / "broken.png"
    broken.symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError, match=rf"^cannot read image {broken}: No such file or directory; delete or replace"):
        folder_mod.load_class_folders(tmp_path / "d" / "train")  # was os.stat's FileNotFoundError
    broken.unlink()
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 32x32 = 1024 pixels: over twice the limit
    with pytest.raises(DataError, match=r"^cannot read image .*/a/0000\.png: Image size \(1024 pixels\) exceeds"):
        folder_mod._decode(str(tmp_path / "d" / "train" / "a" / "0000.png"))  # was PIL's DecompressionBombError
    # helper-139: over the limit but under twice it, Pillow only warned (two lines) and the image was decoded
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)
    filters = list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing printed
        with pytest.raises(DataError) as err:
            folder_mod._decode_all([str(tmp_path / "d" / "train" / "a" / "0000.png")] * 3)  # the decoding threads'
    assert warnings.filters == filters  # helper-143: a filter set in each thread stayed behind
    assert str(err.value).endswith(
        "exceeds limit of 1000 pixels, could be decompression bomb DOS attack; delete or replace the file"
    )


def test_sixteen_bit_grey_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    levels = np.array([[0, 257, 257 * 100], [257 * 200, 65535, 65534]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as img:
        assert img.mode in folder_mod.WIDE_GREY_MODES
    image = folder_mod._decode(str(tmp_path / "grey16.png"))
    assert image.dtype == torch.uint8 and image.shape == (3, 2, 3)
    assert image[0].tolist() == [[0, 1, 100], [200, 255, 255]]  # convert("RGB") clipped: 0, 255, 255, ...
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])


def test_images_of_several_sizes_are_refused_naming_a_file_of_each(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=3, classes=["a", "b"])
    Image.new("RGB", (40, 32)).save(tmp_path / "d" / "train" / "b" / "wide.png")
    with pytest.raises(DataError) as err:
        folder_mod.load_class_folders(tmp_path / "d" / "train")
    assert str(err.value) == (
        f"images in {tmp_path / 'd' / 'train'} differ in size (height x width): 32x32 (a/0000.png and 5 more), "
        "32x40 (b/wide.png); resize them to one size"
    )


def test_a_split_edited_keeps_one_cache_file(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    (tmp_path / "other").mkdir()
    kept = tmp_path / "d" / ".cnnpl-cache" / "train-extra.npz"  # not a cache file of this split's: left alone
    folder_mod.load_class_folders(tmp_path / "d" / "train")
    folder_mod.load_class_folders(tmp_path / "d" / "test")
    kept.write_text("mine")
    # file times tick coarsely (a few ms): the copies, the edit and the later copies a minute apart each
    past = time.time_ns() - 120 * 10**9
    for copy in (tmp_path / "d" / ".cnnpl-cache").glob("*.npz"):
        os.utime(copy, ns=(past, past))
    edit = tmp_path / "d" / "train" / "a" / "0000.png"
    Image.fromarray(np.full((32, 32, 3), 9, dtype=np.uint8)).save(edit)
    os.utime(edit, ns=(past + 60 * 10**9, past + 60 * 10**9))
    edited, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")
    assert int(edited.images[0].max()) == 9  # decoded again
    names = sorted(path.name for path in (tmp_path / "d" / ".cnnpl-cache").iterdir())
    assert len(names) == 3 and kept.name in names, names
    assert (
        sum(name.startswith("test-") for name in names) == 1 and sum(name.startswith("train-") for name in names) == 2
    )
    # the same images under another class order (CIFAR-10's fixed order, and a data module's sorted one): both stay
    folder_mod.load_class_folders(tmp_path / "d" / "train", class_order=["b", "a"])
    folder_mod.load_class_folders(tmp_path / "d" / "train")
    train_copies = [
        p for p in (tmp_path / "d" / ".cnnpl-cache").iterdir() if re.fullmatch(r"train-[0-9a-f]{32}\.npz", p.name)
    ]
    assert len(train_copies) == 2, train_copies  # were removing each other, every run decoding again
    # the user's cache (the data folders not writable) holds every dataset's splits: each folder's by its own name
    for name in ("f", "g"):
        write_class_folders(tmp_path / name, per_class=2, classes=["a", "b"])
        (tmp_path / name / ".cnnpl-cache").write_text("a file where the cache folder would go")
    folder_mod.load_class_folders(tmp_path / "f" / "train")
    folder_mod.load_class_folders(tmp_path / "g" / "train")
    Image.fromarray(np.full((32, 32, 3), 6, dtype=np.uint8)).save(tmp_path / "f" / "train" / "a" / "0000.png")
    again, _ = folder_mod.load_class_folders(tmp_path / "f" / "train")
    assert int(again.images[0].max()) == 6
    user = sorted(path.name for path in (cache_home / "cnnpl").glob("*.npz"))
    assert len(user) == 2 and user[0].split("-")[1] != user[1].split("-")[1], user  # f's newest and g's


def test_a_split_replaced_by_older_files_keeps_one_cache_file(tmp_path: Path, cache_home: Path) -> None:
    """``tar -x`` of another copy of the data gives its files the archive's times, older than the cache file
    of the copy decoded before: that copy is removed all the same (154 MB for CIFAR-10's training split)."""
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    cache = tmp_path / "d" / ".cnnpl-cache"
    cache.mkdir()
    (cache / "train-0123456789abcdef.npz").write_bytes(b"a copy an older cnnpl named by its key alone")
    folder_mod.load_class_folders(tmp_path / "d" / "train")
    long_ago = time.time_ns() - 10 * 365 * 86400 * 10**9
    edit = tmp_path / "d" / "train" / "a" / "0000.png"
    Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(edit)
    for path in (edit, edit.parent, edit.parent.parent / "b"):
        os.utime(path, ns=(long_ago, long_ago))
    again, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")
    assert int(again.images[0].max()) == 7  # decoded again
    assert len(list(cache.glob("train-*.npz"))) == 1, sorted(p.name for p in cache.iterdir())


@pytest.mark.parametrize("change", ["fuller copy extracted", "class folder removed", "class folder renamed"])
def test_a_split_with_other_file_names_keeps_one_cache_file(tmp_path: Path, cache_home: Path, change: str) -> None:
    """helper-116: a copy of the split under other names stayed for good when the folders' times did not tell
    (a fuller copy extracted over a partial one keeps the archive's old times), or did not look (a class
    folder removed or renamed changes the split folder's time, not a class folder's)."""
    write_class_folders(tmp_path / "d", per_class=3, classes=["a", "b", "c"])
    split, cache = tmp_path / "d" / "train", tmp_path / "d" / ".cnnpl-cache"
    long_ago = time.time_ns() - 10 * 365 * 86400 * 10**9
    if change == "fuller copy extracted":
        (split / "c" / "0002.png").rename(tmp_path / "kept.png")  # the partial copy first
        folder_mod.load_class_folders(split)
        (tmp_path / "kept.png").rename(split / "c" / "0002.png")
        for path in [split, *split.iterdir(), *split.glob("*/*")]:  # the archive's times, older than the copy
            os.utime(path, ns=(long_ago, long_ago))
    else:
        folder_mod.load_class_folders(split)
        if change == "class folder removed":
            shutil.rmtree(split / "c")
        else:
            (split / "c").rename(split / "cc")
    again, _ = folder_mod.load_class_folders(split)
    assert len(again.images) == (6 if change == "class folder removed" else 9)
    assert len(list(cache.glob("train-*.npz"))) == 1, sorted(p.name for p in cache.iterdir())


def test_a_killed_decodes_temporary_goes_when_the_split_has_changed(tmp_path: Path, cache_home: Path) -> None:
    """helper-102: a run killed while it wrote the cache leaves its temporary file (154 MB for CIFAR-10); the next
    write of the same name removed it, which never came once the split had changed."""
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    cache = tmp_path / "d" / ".cnnpl-cache"
    folder_mod.load_class_folders(tmp_path / "d" / "train")
    (old,) = cache.glob("train-*.npz")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    left = {
        "dead": cache / f".{old.name}.{int(dead.stdout)}@{host}.k1lled00.tmp",
        "running": cache / f".{old.name}.{os.getpid()}@{host}.w0rk1ng0.tmp",
        "other machine": cache / f".{old.name}.{int(dead.stdout)}@elsewhere.n0tm1ne0.tmp",
        "not a cache file": cache / f".other-{old.name}.{int(dead.stdout)}@{host}.n0tm1ne0.tmp",
    }
    for path in left.values():
        path.write_bytes(b"PK partial")
    Image.fromarray(np.full((32, 32, 3), 5, dtype=np.uint8)).save(tmp_path / "d" / "train" / "a" / "0000.png")
    folder_mod.load_class_folders(tmp_path / "d" / "train")  # decoded again: a new name, the old copy pruned
    assert not old.exists()
    assert {name for name, path in left.items() if path.exists()} == {"running", "other machine", "not a cache file"}


@pytest.mark.parametrize("setting", ["", "relative/cache"])
def test_an_empty_or_relative_xdg_cache_home_means_the_home_cache(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", setting)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (_, _), (user, _) = folder_mod._cache_files(tmp_path / "data" / "train")
    assert user == tmp_path / "home" / ".cache" / "cnnpl"


def test_data_of_one_class_is_refused_naming_the_data(tmp_path: Path, cache_home: Path) -> None:
    class OneClass(InMemoryImageDataModule):
        def load(self) -> tuple[Split, Split, list[str]]:
            train, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")
            return train, train, ["a"]

    write_class_folders(tmp_path / "d", per_class=4, classes=["a"])
    with pytest.raises(DataError, match=r"^OneClass loaded 1 class \(a\): a classifier needs two or more; add"):
        OneClass(val_split=0).setup()


def test_settings_that_cannot_fit_the_data_are_refused_before_it_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnpl.data import shapes

    with pytest.raises(CnnplError, match=r"^data=shapes with .*data.image_size=100000 needs about .* GiB of memory"):
        ShapesDataModule(image_size=100_000)
    monkeypatch.setattr(shapes, "_physical_memory", lambda: None)  # a system that does not say: left to the run
    ShapesDataModule(image_size=100_000)
    with pytest.raises(CnnplError, match=r"^data.seed must be an integer in \[0, 4294967295\], got 4294967296$"):
        ShapesDataModule(seed=2**32)
    dm = ShapesDataModule(image_size=16, cutout=20)  # the sweep's check of a later job, before anything loads
    with pytest.raises(CnnplError, match=r"^data.cutout=20 is not smaller than the \(16, 16\) images"):
        dm.check_image_settings(dm.known_shape()[2])


@pytest.mark.parametrize("suffix", [".gif", ".tif", ".tiff", ".webp"])
def test_gif_tiff_and_webp_images_are_read_as_pillow_reads_them(tmp_path: Path, cache_home: Path, suffix: str) -> None:
    # helper-116: were left out, "no image file", though the docs said Pillow decodes the other formats
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = tmp_path / "d" / "train" / "b" / f"new{suffix}"
    Image.fromarray(pixels).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left out
        train, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")
    assert len(train) == 5
    with Image.open(path) as image:  # a GIF's palette: what Pillow's own conversion gives
        expected = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(train.images[-1], expected)
    if suffix != ".gif":
        assert torch.equal(expected, torch.from_numpy(pixels).permute(2, 0, 1))  # lossless


def test_entries_of_a_class_folder_that_are_no_image_are_named(tmp_path: Path, cache_home: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=2, classes=["a", "b"])
    (tmp_path / "d" / "train" / "a" / "sub").mkdir()  # images one folder too deep: left out, as before, but said
    Image.new("RGB", (32, 32)).save(tmp_path / "d" / "train" / "a" / "sub" / "x.png")
    (tmp_path / "d" / "train" / "b" / "y.heic").write_bytes(b"\0")  # a format not read
    (tmp_path / "d" / "train" / "b" / ".DS_Store").write_bytes(b"\0")  # hidden: without a word
    (tmp_path / "d" / "train" / "b" / "._0000.png").write_bytes(b"\0\5\26\7")  # macOS metadata: was "cannot read"
    Image.new("RGB", (32, 32)).save(tmp_path / "d" / "train" / "loose.png")  # helper-116: left out without a word
    (tmp_path / "d" / "train" / ".hidden").write_bytes(b"\0")
    with pytest.warns(UserWarning) as caught:
        train, _ = folder_mod.load_class_folders(tmp_path / "d" / "train")
    assert len(train) == 4 and len(caught) == 2
    assert [str(warning.message) for warning in caught] == [
        f"{tmp_path / 'd' / 'train'}: left out 1 file beside the class folders, which belongs to no class: loose.png; "
        f"a class's images go in its folder ({tmp_path / 'd' / 'train'}/<class>/)",
        f"{tmp_path / 'd' / 'train'}: left out 2 entries of the class folders that are no image file of the formats "
        "read (.png, .jpg, .jpeg, .bmp, .ppm, .gif, .tif, .tiff, .webp): a/sub/, b/y.heic; a class's images go "
        "directly in its folder, converted to one of these formats",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder_mod.load_class_folders(tmp_path / "d" / "test")  # nothing left out: nothing said


def test_normalize_scale_divides_by_255_as_the_notes_keras_recipe() -> None:
    scaled = ShapesDataModule(num_train=40, num_test=10, val_split=0, normalize="scale")
    scaled.setup()
    images = scaled.split("train").images[:4]
    assert torch.equal(scaled.normalize(images), images.float() / 255)  # input_train / 255
    torch.testing.assert_close(scaled.denormalize(scaled.normalize(images)), images.float() / 255)
    standardized = ShapesDataModule(num_train=40, num_test=10, val_split=0)
    standardized.setup()
    pixels = standardized.normalize(standardized.split("train").images).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(pixels.mean(1), torch.zeros(3), atol=1e-4, rtol=0)  # the default: mean 0, std 1
    with pytest.raises(CnnplError, match=r"^data\.normalize must be standardize .* or scale .*, got 'unit'$"):
        ShapesDataModule(normalize="unit")


def test_the_keras_preset_is_the_notes_recipe() -> None:
    import cnnpl

    cfg = cnnpl.compose(["experiment=keras_cifar10"])
    assert (cfg.model.name, cfg.conv.name, cfg.pool.name) == ("simple_cnn", "conv2d", "max")
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 0.001
    assert (cfg.data.batch_size, cfg.data.val_split, cfg.data.crop_padding, cfg.data.flip) == (50, 0.2, 0, False)
    assert cfg.trainer.max_epochs == 100 and not cfg.get("scheduler")
    assert cnnpl.compose(["experiment=keras_cifar10", "data.normalize=scale"]).data.normalize == "scale"


def test_a_hidden_image_file_is_left_out_and_an_unreadable_folder_is_one_line(tmp_path: Path) -> None:
    # was: ".0000.png" (an rsync temporary, a copy of another class's image) labelled as its folder's class
    write_class_folders(tmp_path / "d", per_class=2)
    cat = tmp_path / "d" / "train" / "cat"
    (cat / ".preview.png").write_bytes((tmp_path / "d" / "train" / "dog" / "0000.png").read_bytes())
    _, files = folder_mod.list_class_folders(tmp_path / "d" / "train")
    assert len(files) == 2 * len(CLASSES) and not any("/." in file for file in files)
    if os.geteuid() != 0:  # root lists any folder
        cat.chmod(0)
        try:
            with pytest.raises(DataError, match=r"^cannot list .*train/cat: Permission denied; make the data readable"):
                folder_mod.list_class_folders(tmp_path / "d" / "train")
        finally:
            cat.chmod(0o755)


def test_an_image_this_user_may_not_read_is_not_called_one_to_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # helper-116 (chmod 000, without root's override): "...: Permission denied; delete or replace the file"
    from PIL import Image as PILImage

    def refused(path: str, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(PILImage, "open", refused)
    with pytest.raises(DataError) as err:
        folder_mod._decode(str(tmp_path / "cat.png"))
    assert str(err.value) == (
        f"cannot read image {tmp_path / 'cat.png'}: Permission denied; make the data readable (chmod -R a+rX <data "
        "folder>)"
    )


def test_a_class_folder_that_lists_but_cannot_be_entered_is_not_called_images_to_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # helper-118: r without x on a class folder: os.stat of its files fails with EACCES
    write_class_folders(tmp_path / "d", per_class=1, classes=["a", "b"])
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).endswith(".png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(folder_mod.os, "stat", stat)
    with pytest.raises(
        DataError, match=r"^cannot read image .*/a/0000\.png: Permission denied; make the data readable"
    ):
        folder_mod.load_class_folders(tmp_path / "d" / "train")


@pytest.mark.parametrize(("mode", "pixels"), [("F", 0.5), ("LAB", (50, 128, 128))])
def test_an_image_of_floats_or_another_colour_space_is_refused_not_made_black(
    tmp_path: Path, mode: str, pixels: Any
) -> None:
    # helper-118: a float TIFF of 0.5 decoded as black, a CIELab one as blue, without a word
    path = tmp_path / f"{mode}.tif"
    Image.new(mode, (4, 4), pixels).save(path)
    with pytest.raises(DataError) as err:
        folder_mod._decode(str(path))
    assert str(err.value) == (
        f"cannot read image {path}: its pixels are of Pillow's mode {mode} (floats, or another colour space), which "
        "cnnpl does not turn into 8-bit RGB; convert it to 8-bit RGB or grey"
    )


def test_images_in_a_subfolder_of_a_class_say_where_they_are(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=1)
    cat = tmp_path / "d" / "train" / "cat"
    (cat / "images").mkdir()
    for image in [p for p in cat.iterdir() if p.is_file()]:
        image.rename(cat / "images" / image.name)
    with pytest.raises(
        DataError, match=r"holds no images .* \(it holds the folder images: a class's images go directly"
    ):
        folder_mod.list_class_folders(tmp_path / "d" / "train")


@pytest.mark.parametrize(
    ("layout", "said"),
    [
        ("train only", "which holds train/ but no test/"),
        ("a file", "which is a file (an archive? extract it with tar -xzf"),
        ("one level up", "(it is in "),
        ("one level down", "(it is one folder up: data.root="),  # helper-130: data.root=<copy>/train
    ],
)
def test_a_cifar_root_that_misses_says_what_it_found(tmp_path: Path, layout: str, said: str) -> None:
    write_class_folders(tmp_path / "copy", per_class=1)
    root = {
        "train only": tmp_path / "copy",
        "a file": tmp_path / "c.tar.gz",
        "one level up": tmp_path,
        "one level down": tmp_path / "copy" / "train",
    }[layout]
    if layout == "train only":
        shutil.rmtree(tmp_path / "copy" / "test")
    if layout == "a file":
        root.write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError) as err:
        CIFAR10DataModule(root=root).check()
    assert said in str(err.value)
    if layout == "one level down":
        assert f"data.root={tmp_path / 'copy'})" in str(err.value)


def test_uneven_class_folders_and_a_second_layout_are_warned_about(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "d", per_class=3)
    for image in sorted((tmp_path / "d" / "train" / "truck").iterdir())[1:]:
        image.unlink()  # an interrupted copy: the last class short
    with pytest.warns(UserWarning, match=r"train: the classes hold different numbers of images \(most 3; truck 1\)"):
        CIFAR10DataModule(root=tmp_path / "d").setup()
    (tmp_path / "d" / "cifar-10-batches-py").mkdir()  # torchvision's download beside the folders: it wins
    twice = r"holds CIFAR-10 twice: reading torchvision's cifar-10-batches-py/, not"
    with pytest.warns(UserWarning, match=twice), pytest.raises(DataError, match="is missing"):
        CIFAR10DataModule(root=tmp_path / "d").setup()


def test_a_download_that_gives_no_valid_archive_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets

    def corrupted(*args, **kwargs):  # torchvision's own words for a proxy's page saved as the archive
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", corrupted)
    with pytest.raises(DataError, match=r"^downloading CIFAR-10 into .* gave no valid archive \(File not found or"):
        CIFAR10DataModule(root=tmp_path / "dl", download=True).setup()
    assert (tmp_path / "dl" / ".cnnpl-download.lock").is_file()  # the processes of one run download once


def test_mirroring_the_shapes_whose_mirror_is_another_class_is_warned_about(caplog) -> None:
    # helper-130: data=shapes data.flip=true trained a mirrored diagonal as "diagonal" (0.886 test accuracy
    # against 0.999); experiment=fast_cifar10 data=shapes flips and averages flipped predictions
    from cnnpl.checks import warn_mirrored_classes
    from cnnpl.data.shapes import ShapesDataModule

    with caplog.at_level("WARNING", logger="cnnpl.checks"):
        warn_mirrored_classes(ShapesDataModule(flip=False), {"tta_flip": False})
        warn_mirrored_classes(ShapesDataModule(flip="alternate"), {"tta_flip": True})
        warn_mirrored_classes(ShapesDataModule(flip=True), {})
        warn_mirrored_classes(SimpleNamespace(flip=True), {"tta_flip": True})  # data whose mirror is no class
        warn_mirrored_classes(ShapesDataModule(flip=True), {}, fits=False)  # only testing: nothing flipped
    assert [r.getMessage() for r in caplog.records] == [
        "data.flip=alternate and system.tta_flip=true mirror the images, and here a mirrored image of class diagonal "
        "is one of class anti_diagonal: add data.flip=false system.tta_flip=false for an accuracy that means something",
        "data.flip=true mirrors the images, and here a mirrored image of class diagonal is one of class anti_diagonal: "
        "add data.flip=false for an accuracy that means something",
    ]


def test_32_bit_grey_beyond_16_bits_is_refused(tmp_path: Path) -> None:
    # helper-139: a mode-I TIFF with values up to 1,023,000 was scaled as 16-bit grey: 94% of it at 255
    Image.fromarray(np.array([[0, 1_023_000]], dtype=np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(DataError) as err:
        folder_mod._decode(str(tmp_path / "wide.tif"))
    assert str(err.value) == (
        f"cannot read image {tmp_path / 'wide.tif'}: its pixels are 32-bit integers from 0 to 1023000, beyond 16-bit "
        "grey's 0-65535, which cnnpl scales to 8 bits; convert it to 8- or 16-bit grey"
    )
