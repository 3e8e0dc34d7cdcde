"""Architectures; importing registers them under ``model``."""

from cnnpl.models import fast_net, inception, lenet, notes, resnet, simple_cnn, vgg, xception

__all__ = ["fast_net", "inception", "lenet", "notes", "resnet", "simple_cnn", "vgg", "xception"]
