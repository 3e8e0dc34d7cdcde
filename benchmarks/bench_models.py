"""Training throughput of every architecture at CIFAR size: images/s, default vs channels_last.

For each model (its small-input layout, 32x32x3, 10 classes) one training step is forward +
cross-entropy + backward + SGD step on a batch of ``--batch`` images. The two memory formats of the
same model are timed in interleaved rounds (default, channels_last, then channels_last, default...)
after one warm-up step each, so a load change on a shared machine hits both alike; the table gives the
median images/s of each and their ratio. Big models take fewer steps per round (``--steps-heavy``).
Batches are random tensors of CIFAR's shape (throughput does not depend on pixel values); pass
``--data-root`` to time real CIFAR-10 images instead.

    python benchmarks/bench_models.py                       # every zoo model
    python benchmarks/bench_models.py --models vgg16 resnet18 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import cnnpl

ZOO = ["simple_cnn", "simple_cnn_bn", "notes_example", "lenet5", "vgg16", "vgg19", "resnet18", "resnet50",
       "inception_v3", "xception"]  # fmt: skip
HEAVY = {"vgg16", "vgg19", "resnet18", "resnet50", "inception_v3", "xception"}
FORMATS = {"default": torch.contiguous_format, "channels_last": torch.channels_last}


def cifar_batch(batch: int, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    if data_root is None:
        return torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    from cnnpl.data import CIFAR10DataModule

    dm = CIFAR10DataModule(root=data_root, batch_size=batch)
    dm.setup("fit")
    split = dm.split("train")
    images = dm.normalize(split.images[:batch])
    return images, split.labels[:batch].long()


def train_steps(
    net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int
) -> float:
    """Seconds for ``steps`` training steps."""
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def bench(model: str, batch: int, steps: int, rounds: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float]]:
    torch.manual_seed(0)
    contenders = {}
    for fmt, memory_format in FORMATS.items():
        net = cnnpl.build("model", model, num_classes=10, in_channels=3, input_size=(32, 32)).train()
        net = net.to(memory_format=memory_format)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        xf = x.contiguous(memory_format=memory_format)
        train_steps(net, opt, xf, y, 1)  # warm-up: oneDNN set-up, allocator
        contenders[fmt] = (net, opt, xf)
    rates: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    for r in range(rounds):
        order = list(FORMATS) if r % 2 == 0 else list(reversed(FORMATS))
        for fmt in order:
            net, opt, xf = contenders[fmt]
            rates[fmt].append(batch * steps / train_steps(net, opt, xf, y, steps))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=ZOO)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="steps per round (small models)")
    parser.add_argument("--steps-heavy", type=int, default=1, help="steps per round (big models)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per memory format")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--data-root", default=None, help="time real CIFAR-10 images from this folder")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = cifar_batch(args.batch, args.data_root)
    print(f"batch {args.batch}, 32x32x3, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| model | steps x rounds | default img/s | channels_last img/s | channels_last / default |")
    print("|---|---|---|---|---|")
    for model in args.models:
        steps = args.steps_heavy if model in HEAVY else args.steps
        rates = bench(model, args.batch, steps, args.rounds, x, y)
        default, last = statistics.median(rates["default"]), statistics.median(rates["channels_last"])
        print(f"| {model} | {steps} x {args.rounds} | {default:.1f} | {last:.1f} | {last / default:.2f} |", flush=True)


if __name__ == "__main__":
    main()
