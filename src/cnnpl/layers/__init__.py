"""Layers: convolutions, pooling, normalisation and activations; importing registers them."""

from cnnpl.layers import activation, conv, norm, pooling

__all__ = ["activation", "conv", "norm", "pooling"]
