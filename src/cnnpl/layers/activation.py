"""Activation functions, registered under ``act``.

Registry names: ``relu``, ``gelu``, ``silu``, ``tanh``. An act factory is called with no arguments.
"""

from __future__ import annotations

from torch import nn

from cnnpl.registry import register, registering_from

with registering_from("built-in"):  # torch's classes, registered by cnnpl: not "module torch.nn..." in the listing
    register("act", "relu", nn.ReLU)
    register("act", "gelu", nn.GELU)
    register("act", "silu", nn.SiLU)
    register("act", "tanh", nn.Tanh)
