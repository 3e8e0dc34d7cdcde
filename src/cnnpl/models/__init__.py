"""Architectures; importing registers them under ``model``."""

from cnnpl.models import simple_cnn

__all__ = ["simple_cnn"]
