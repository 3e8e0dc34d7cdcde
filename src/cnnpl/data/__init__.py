"""Data: the in-memory image DataModule, CIFAR-10 and the synthetic shapes set."""

from cnnpl.data.base import InMemoryImageDataModule, Split
from cnnpl.data.cifar import CIFAR10DataModule
from cnnpl.data.shapes import ShapesDataModule

__all__ = ["CIFAR10DataModule", "InMemoryImageDataModule", "ShapesDataModule", "Split"]
