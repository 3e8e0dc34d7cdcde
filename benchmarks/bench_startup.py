"""Start-up: wall time of cnnpl's commands that train nothing, against ``import torch``, and what they import.

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --repeats 10
    python benchmarks/bench_startup.py --repeats 1                # a smoke run

Each command runs as a fresh subprocess of this interpreter (in a temporary working directory, so
nothing is written into the repository). After one untimed run of each (so every command finds
warm ``.pyc`` files and OS file caches), the commands run ``--repeats`` rounds in a fresh random
order; the table gives the median wall time and its ratio to ``python -c "import torch"``, the floor
every command pays. A separate run of each command under ``python -X importtime`` shows whether
it imported Lightning (``lightning``, ``lightning_fabric`` or ``pytorch_lightning``), TensorBoard or
torchmetrics: none of the commands below needs them, so every "imports" column should read "no".
Prints Markdown.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time

BASELINE = "import torch"
COMMANDS = {
    BASELINE: ["-c", "import torch"],
    "import cnnpl": ["-c", "import cnnpl"],
    "python -m cnnpl --help": ["-m", "cnnpl", "--help"],
    "python -m cnnpl --cfg job": ["-m", "cnnpl", "--cfg", "job"],
    "python -m cnnpl.list": ["-m", "cnnpl.list"],
}
# the packages a command that trains nothing should not import, with the top-level modules that are each
WATCHED = {
    "lightning": ("lightning", "lightning_fabric", "pytorch_lightning"),
    "tensorboard": ("tensorboard",),
    "torchmetrics": ("torchmetrics",),
}


def run(args: list[str], cwd: str, *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    done = subprocess.run([sys.executable, *flags, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done


def imported_modules(importtime_log: str) -> set[str]:
    """Top-level module names in ``-X importtime`` output (lines ``import time: self | cumulative | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    names.discard("imported package")  # the header line
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of every command")
    parser.add_argument("--seed", type=int, default=0, help="seeds the order of the commands")
    args = parser.parse_args()

    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    imports: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for name, command in COMMANDS.items():  # untimed: warm caches, and the import check
            imports[name] = imported_modules(run(command, cwd, importtime=True).stderr)
            run(command, cwd)
        order = list(COMMANDS)
        rng = random.Random(args.seed)
        for _ in range(args.repeats):
            rng.shuffle(order)
            for name in order:
                start = time.perf_counter()
                run(COMMANDS[name], cwd)
                seconds[name].append(time.perf_counter() - start)

    base = statistics.median(seconds[BASELINE])
    print(f"Python {sys.version.split()[0]} ({sys.executable}), median of {args.repeats} interleaved runs\n")
    header = " | ".join(f"imports {package}" for package in WATCHED)
    print(f"| command | median s | x {BASELINE} | {header} |")
    print("|---|---:|---:|" + "---|" * len(WATCHED))
    for name, values in seconds.items():
        median = statistics.median(values)
        flags = " | ".join("yes" if imports[name] & set(roots) else "no" for roots in WATCHED.values())
        print(f"| `{name}` | {median:.2f} | {median / base:.2f} | {flags} |")


if __name__ == "__main__":
    main()
