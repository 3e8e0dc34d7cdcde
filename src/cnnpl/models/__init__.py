"""Architectures; importing registers them under ``model``."""

from cnnpl.models import inception, lenet, notes, resnet, simple_cnn, vgg, xception

__all__ = ["inception", "lenet", "notes", "resnet", "simple_cnn", "vgg", "xception"]
