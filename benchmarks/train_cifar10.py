"""Train ``simple_cnn`` on CIFAR-10 through cnnpl and report accuracy, time and throughput.

Part 1 (``--epochs``): one full run of what ``python -m cnnpl`` runs, with the recipe below (or
``--recipe`` overrides of your own): test accuracy of the best checkpoint, epochs, wall time
(start to finish, data loading included) and training images/s.

Part 2 (``--compare-epochs``, optional): training throughput of cnnpl versus a plain PyTorch loop
of the same network, data, optimizer and augmentation, interleaved ``--repeats`` times; medians
and the ratio cnnpl / plain.

    python benchmarks/train_cifar10.py --root data --epochs 15
    python benchmarks/train_cifar10.py --root data --epochs 0 --compare-epochs 1 --repeats 3

Not a test: it needs CIFAR-10 under ``--root`` (either layout) and takes minutes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnpl
from cnnpl.data import CIFAR10DataModule

RECIPE = [
    "model=simple_cnn",
    "optimizer=adamw",
    "optimizer.lr=3e-3",
    "optimizer.weight_decay=0.05",
    "scheduler=onecycle",
    "system.label_smoothing=0.1",
    "system.tta_flip=true",
    "data.val_split=0.04",  # 2,000 validation images choose the best checkpoint; 48,000 train
    "data.batch_size=128",
]


class Throughput:
    """A Lightning callback timing training batches only (no validation, no set-up)."""

    def __init__(self) -> None:
        import lightning as L

        class _Cb(L.Callback):
            def __init__(cb) -> None:
                cb.images, cb.seconds, cb._t = 0, 0.0, 0.0

            def on_train_epoch_start(cb, trainer, module) -> None:  # type: ignore[no-untyped-def]
                cb._t = time.perf_counter()

            def on_train_batch_end(cb, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
                cb.images += batch[0].shape[0]

            def on_train_epoch_end(cb, trainer, module) -> None:  # type: ignore[no-untyped-def]
                cb.seconds += time.perf_counter() - cb._t

        self.callback = _Cb()


def full_run(root: str, epochs: int, recipe: list[str]) -> None:
    with tempfile.TemporaryDirectory() as out:
        cfg = cnnpl.compose(
            [f"data.root={root}", f"trainer.max_epochs={epochs}", "callbacks.progress_bar.refresh_rate=0", *recipe],
            output_dir=out,
        )
        start = time.perf_counter()
        metrics = cnnpl.train(cfg)
        wall = time.perf_counter() - start
    train_images = 50_000 * (1 - cfg.data.val_split) * epochs
    print("\n| model | recipe | epochs | test acc | wall time | train images/s (incl. eval) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| simple_cnn | `{' '.join(recipe)}` | {epochs} | {metrics['test/acc']:.2%} | {wall / 60:.1f} min "
        f"| {train_images / wall:,.0f} |"
    )


def plain_epoch(dm: CIFAR10DataModule, net: torch.nn.Module, opt: torch.optim.Optimizer, batch: int) -> float:
    """One epoch of a hand-written loop over the same in-memory tensors and augmentation."""
    images, labels = dm.split("train").images, dm.split("train").labels
    net.train()
    start = time.perf_counter()
    for idx in torch.randperm(len(labels)).split(batch):
        x = dm.normalize(dm.augment(images[idx]))
        loss = F.cross_entropy(net(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(labels) / (time.perf_counter() - start)


def cnnpl_epoch(root: str, epochs: int, recipe: list[str]) -> float:
    import lightning as L

    from cnnpl.system import ImageClassifier
    from cnnpl.train import _instantiate, build_model

    # the same 45,000 training images as the plain loop in compare()
    cfg = cnnpl.compose([f"data.root={root}", *recipe, "data.val_split=0.1"], output_dir=tempfile.mkdtemp())
    dm = _instantiate(cfg.data)
    dm.setup("fit")
    net = build_model(cfg, dm.num_classes, dm.in_channels, dm.input_size)
    system = ImageClassifier(net, dm.num_classes, _instantiate(cfg.optimizer), None, label_smoothing=0.1)
    timer = Throughput()
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer.callback],
    )
    trainer.fit(system, datamodule=dm)
    return timer.callback.images / timer.callback.seconds


def compare(root: str, epochs: int, repeats: int, recipe: list[str]) -> None:
    dm = CIFAR10DataModule(root=root, val_split=0.1, batch_size=128)
    dm.setup("fit")
    plain, ours = [], []
    for _ in range(repeats):
        net = cnnpl.build("model", "simple_cnn", num_classes=10)
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.05)
        plain.append(statistics.mean(plain_epoch(dm, net, opt, 128) for _ in range(epochs)))
        ours.append(cnnpl_epoch(root, epochs, recipe))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"\n| contender | training images/s (median of {repeats}) |")
    print("|---|---|")
    print(f"| plain PyTorch loop | {p:,.0f} |")
    print(f"| cnnpl (Lightning, no validation) | {o:,.0f} |")
    print(f"| ratio cnnpl / plain | {o / p:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data", help="folder holding CIFAR-10 (either layout)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the full run (0 skips it)")
    parser.add_argument("--compare-epochs", type=int, default=0, help="epochs per contender in the comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipe", nargs="*", default=RECIPE, help="cnnpl overrides for the full run")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, root={Path(args.root).resolve()}")
    if args.epochs:
        full_run(args.root, args.epochs, args.recipe)
    if args.compare_epochs:
        compare(args.root, args.compare_epochs, args.repeats, args.recipe)


if __name__ == "__main__":
    main()
