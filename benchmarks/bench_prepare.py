"""What a run's checks before Hydra starts cost: ``cnnpl.cli.prepare`` with and without them.

Since the thirtieth round a single run (not only each job of a sweep) has its settings, data module,
optimizer, schedule and network checked before Hydra makes its folder (``cnnpl.cli._check_job``), so
that a refused command leaves nothing behind. The run checks them again itself, and it imports
Lightning either way, so the cost is the checks' own work: building the data module (CIFAR-10: reading
the first image's header), the optimizer on a dummy parameter and the network, and one forward pass of
two blank images. Each repeat runs ``prepare`` for each model with the checks and without them
(``_check_job`` replaced by a no-op), in alternating order, after the imports a run makes anyway;
medians and the difference are printed.

    python benchmarks/bench_prepare.py --repeats 7
    python benchmarks/bench_prepare.py --repeats 7 --data shapes

Needs CIFAR-10 under ``data/`` (or ``CNNPL_DATA``) unless ``--data shapes``. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data", default="cifar10", choices=["cifar10", "shapes"])
    parser.add_argument("--models", default="simple_cnn,vgg16,resnet18")
    args = parser.parse_args()

    import lightning  # noqa: F401  (what the run imports anyway: only the checks' own work is timed)
    import torchvision  # noqa: F401

    import cnnpl.train  # noqa: F401
    from cnnpl import cli

    real = cli._check_job
    times: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats + 1):  # the first round warms the caches, and is not counted
            for model in args.models.split(","):
                order = (True, False) if repeat % 2 else (False, True)
                for checked in order:
                    cli._check_job = real if checked else (lambda cfg, sweep: None)
                    start = time.perf_counter()
                    cli.prepare([f"model={model}", f"data={args.data}", f"hydra.run.dir={folder}/run"])
                    if repeat:
                        times.setdefault((model, checked), []).append(time.perf_counter() - start)
    cli._check_job = real
    print(f"prepare() of a run, data={args.data}, median of {args.repeats} (seconds):")
    print(f"{'model':<12} {'checked':>8} {'unchecked':>10} {'checks':>8}")
    for model in args.models.split(","):
        with_checks = statistics.median(times[(model, True)])
        without = statistics.median(times[(model, False)])
        print(f"{model:<12} {with_checks:8.3f} {without:10.3f} {with_checks - without:+8.3f}")


if __name__ == "__main__":
    main()
