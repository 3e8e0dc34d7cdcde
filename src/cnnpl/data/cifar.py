"""The CIFAR-10 DataModule.

It finds CIFAR-10 under ``root`` in either layout:

* torchvision's ``cifar-10-batches-py/`` (the official pickled batches; MD5 checksums verified
  before anything is unpickled);
* class folders ``train/<class>/*.png|jpg`` and ``test/<class>/...`` (common mirrors, and the JPEG
  copy this project benchmarks on), decoded once and cached.

With neither present and ``download=True`` it downloads the official archive through torchvision.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cnnpl.data.base import InMemoryImageDataModule, Split
from cnnpl.data.folder import first_image_size, interleave_classes, load_class_folders
from cnnpl.errors import CnnplError, DataError, yaml_word

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES_DIR = "cifar-10-batches-py"


def _read_batches(folder: Path, names_and_md5: list[list[str]]) -> Split:
    from torchvision.datasets.utils import check_integrity

    images, labels = [], []
    for name, md5 in names_and_md5:
        path = folder / name
        if not path.is_file():
            raise DataError(
                f"CIFAR-10 file {path} is missing; delete {folder} and pass data.download=true, or restore it"
            )
        if not check_integrity(str(path), md5):
            raise DataError(
                f"CIFAR-10 file {path} is truncated or corrupted (MD5 mismatch); delete {folder} and "
                "download it again (data.download=true)"
            )
        # Safe to unpickle: the file matches the official archive byte for byte (checked above).
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return Split(torch.from_numpy(np.concatenate(images)), torch.as_tensor(labels, dtype=torch.int64))


def _what_is_there(root: Path) -> str:
    """What ``root`` holds that is not a whole CIFAR-10, in words (", which holds train/ but no test/"), or ""."""
    if root.is_file():
        return ", which is a file (an archive? extract it with tar -xzf, and point data.root at the folder made)"
    has = [name for name in ("train", "test") if (root / name).is_dir()]
    if len(has) == 1:
        return f", which holds {has[0]}/ but no {'test' if has[0] == 'train' else 'train'}/"
    try:
        inner = [p for p in (root.iterdir() if root.is_dir() else []) if p.is_dir() and find_cifar10(p)]
    except OSError:  # a folder this user cannot list: the message names the folder
        return ""
    if inner:
        return f" (it is in {inner[0]}: data.root={inner[0]})"
    above = root.absolute().parent  # data.root=<copy>/train or <copy>/cifar-10-batches-py (helper-130)
    if root.name in ("train", "test", BATCHES_DIR) and root.is_dir() and find_cifar10(above):
        return f" (it is one folder up: data.root={above})"
    return ""


def _download_lock(root: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on ``root/.cnnpl-download.lock`` (none where ``fcntl`` is missing, or the folder cannot be
    made)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return contextlib.nullcontext()
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = (root / ".cnnpl-download.lock").open("a")
    except OSError:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held() -> Iterator[None]:
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    return held()


def _download(root: Path) -> None:
    from torchvision.datasets import CIFAR10

    try:
        CIFAR10(str(root), train=True, download=True)
    except OSError as err:
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({err}); copy it there by hand, or use data=shapes"
        ) from None
    except RuntimeError as err:  # torchvision's "File not found or corrupted.": a proxy's page, a cut-off file
        raise DataError(
            f"downloading CIFAR-10 into {root} gave no valid archive ({err}); delete {root / 'cifar-10-python.tar.gz'} "
            "and try again, or copy CIFAR-10 there by hand"
        ) from None


def _warn_uneven(split_dir: Path, labels: torch.Tensor) -> None:
    """Warn when the class folders hold different numbers of images: CIFAR-10 has as many of each class (an
    interrupted copy leaves the last classes short)."""
    counts = torch.bincount(labels, minlength=len(CLASSES)).tolist()
    if len(set(counts)) > 1:
        most = max(counts)
        short = ", ".join(f"{name} {n}" for name, n in zip(CLASSES, counts, strict=True) if n < most)
        warnings.warn(
            f"{split_dir}: the classes hold different numbers of images (most {most}; {short}); CIFAR-10 has 5,000 "
            "of each class for training and 1,000 for testing: if this is not meant (a long-tailed set), the copy is "
            "incomplete",
            stacklevel=4,
        )


def find_cifar10(root: Path) -> str | None:
    """``"batches"``, ``"folders"`` or ``None``: which CIFAR-10 layout ``root`` holds."""
    if (root / BATCHES_DIR).is_dir():
        return "batches"
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folders"
    return None


OFFLINE_DATA = ", or use data=shapes for offline synthetic data"  # the end of the not-found message; not render's


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10 (10 classes, 32x32 RGB) held in memory as uint8; see :class:`InMemoryImageDataModule`."""

    def __init__(self, root: str | Path = "data", download: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not isinstance(download, bool):
            raise CnnplError(f"data.download must be true or false, got {yaml_word(download)}")
        if not isinstance(root, (str, os.PathLike)):  # Path(123): "expected str, bytes or os.PathLike object"
            number = isinstance(root, (int, float)) and not isinstance(root, bool)
            quote = f" (for a folder named {root}, quote it: data.root=\"'{root}'\")" if number else ""
            raise CnnplError(f"data.root must name a folder, got {yaml_word(root)}{quote}; give data.root=<folder>")
        if not str(root).strip():  # Path("") is the working directory, where the search then looked (helper-139)
            exported = "CNNPL_DATA" in os.environ and not os.environ["CNNPL_DATA"].strip()
            why = " ($CNNPL_DATA is exported empty: unset it or export the folder)" if exported else ""
            raise CnnplError(
                f"data.root is empty{why}; give data.root=<folder> (data.root=. for the working directory)"
            )
        self.root = Path(root).expanduser()
        self.download = download

    def known_shape(self) -> tuple[int, int, tuple[int, int]] | None:
        """32x32 RGB in torchvision's batch files; in class folders, the first image's size (read from its
        header: a copy at another size trains at that size); ``None`` where there is no data to read or download."""
        layout = find_cifar10(self.root)
        if layout == "batches" or (layout is None and self.download):  # a download is the batch files
            return len(CLASSES), 3, (32, 32)
        size = first_image_size(self.root / "train") if layout == "folders" else None
        return None if size is None else (len(CLASSES), 3, size)

    def check(self) -> None:
        """Raise :class:`DataError` now if the data cannot be found (called before any training)."""
        if find_cifar10(self.root) is None and not self.download:
            raise DataError(
                f"CIFAR-10 not found under '{self.root.resolve()}'{_what_is_there(self.root)}: expected {BATCHES_DIR}/ "
                "(torchvision layout) or train/<class>/ and test/<class>/ image folders. Point data.root=<folder> at a "
                f"copy, pass data.download=true (needs the network){OFFLINE_DATA}"
            )

    def load(self) -> tuple[Split, Split, list[str]]:
        self.check()
        layout = find_cifar10(self.root)
        if layout is None:
            with _download_lock(self.root):  # torchrun's processes all start here: one downloads, the others wait
                if find_cifar10(self.root) is None:
                    _download(self.root)
            layout = "batches"
        if layout == "batches":
            if (self.root / "train").is_dir() and (self.root / "test").is_dir():
                warnings.warn(
                    f"{self.root} holds CIFAR-10 twice: reading torchvision's {BATCHES_DIR}/, not the train/ and test/ "
                    "class folders beside it; point data.root at a folder with one of them to choose",
                    stacklevel=2,
                )
            from torchvision.datasets import CIFAR10

            folder = self.root / BATCHES_DIR
            return _read_batches(folder, CIFAR10.train_list), _read_batches(folder, CIFAR10.test_list), CLASSES
        train, _ = load_class_folders(self.root / "train", class_order=CLASSES)
        test, _ = load_class_folders(self.root / "test", class_order=CLASSES)
        for name, split in (("train", train), ("test", test)):
            _warn_uneven(self.root / name, split.labels)
        return train, interleave_classes(test), CLASSES  # the folders' class order, mixed like the batches
