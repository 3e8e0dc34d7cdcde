"""The share of negative values reaching each pooling layer of each architecture (docs/pooling.md).

    python benchmarks/pool_input_signs.py [--images 8] [--seed 0]

Each model is built with ``pool=stochastic`` at initialisation and given random normal images; a forward
pre-hook on every ``StochasticPool`` counts its inputs below zero. Stochastic pooling gives a negative value
probability 0 (as a ReLU would zero it) and ``lp`` pools ``|a|``: where this share is large, the two do more than
pool. Not a timing: no side-by-side runs.
"""

from __future__ import annotations

import argparse

import torch

import cnnpl
from cnnpl.layers.pooling import StochasticPool
from cnnpl.network import build_model

MODELS = (
    ["model=simple_cnn"],
    ["model=simple_cnn_bn"],
    ["model=xception"],
    ["model=lenet5", "act=tanh"],
    ["model=lenet5"],
    ["model=fast_net"],
    ["model=vgg16"],
    ["model=inception_v3", "model.branch_pool=pool"],
)


def negative_shares(overrides: list[str], images: int) -> list[float]:
    net = build_model(cnnpl.compose([*overrides, "pool=stochastic"]), 10, 3, (32, 32))
    shares: list[float] = []
    for layer in net.modules():
        if isinstance(layer, StochasticPool):
            layer.register_forward_pre_hook(lambda _, args: shares.append((args[0] < 0).float().mean().item()))
    net.train()
    with torch.no_grad():
        net(torch.randn(images, 3, 32, 32))
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="random images per forward pass (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the images (default 0)")
    args = parser.parse_args()
    print("| model | pools | negative share of each pool's input |\n|---|---|---|")
    for overrides in MODELS:
        torch.manual_seed(args.seed)
        shares = negative_shares(overrides, args.images)
        print(f"| {' '.join(overrides)} | {len(shares)} | {', '.join(f'{s:.0%}' for s in shares) or '-'} |")


if __name__ == "__main__":
    main()
