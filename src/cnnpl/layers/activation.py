"""Activation functions, registered under ``act``.

Registry names: ``relu``, ``gelu``, ``silu``, ``tanh``. An act factory is called with no arguments.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnpl.registry import register, registering_from


class GELU(nn.GELU):
    """torch's ``nn.GELU``, whose ``approximate`` says what it takes: torch checked it only in the forward
    (``act.approximate=fast``: "approximate argument must be either none or tanh", blamed on the network's
    shapes; helper-153)."""

    def __init__(self, approximate: Literal["none", "tanh"] = "none") -> None:
        if approximate not in ("none", "tanh"):  # (from Python too: cnnpl.build("act", "gelu", approximate=...))
            raise ValueError(f"approximate must be none or tanh, got {approximate!r}")
        super().__init__(approximate=approximate)


with registering_from("built-in"):  # torch's classes, registered by cnnpl: not "module torch.nn..." in the listing
    register("act", "relu", nn.ReLU)
    register("act", "gelu", GELU)
    register("act", "silu", nn.SiLU)
    register("act", "tanh", nn.Tanh)
