"""Shared test helpers: tiny configs and a runner for the real command line.

Tests never touch the network or ../shared; they train on ``data=shapes`` with a few hundred images.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cnnpl import plugins
from cnnpl.registry import REGISTRIES

REPO = Path(__file__).resolve().parents[1]

# Keep every test quick and quiet: tiny synthetic data, one epoch, no progress bar.
TINY = [
    "data=shapes",
    "data.num_train=320",
    "data.num_test=64",
    "data.batch_size=32",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_model_summary=false",
    "callbacks.progress_bar.refresh_rate=0",
]


# The threads each test process's torch takes: pytest-xdist's workers (-n auto, one a core this process may run on)
# share the cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS: no affinity
THREADS = max(1, min(2, CORES // WORKERS))
# One thread count for every process a test starts, so that runs compared bit for bit (a killed run and its resume)
# use the same: under xdist the controller (one process: min(2, cores)) sets it before it starts the workers,
# which inherit it. Torch reads it as the process starts; the tests' own process takes THREADS (above).
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))


@pytest.fixture(autouse=True)
def _deterministic_torch() -> Iterator[None]:
    """Each test starts, and leaves for the module-scoped fixtures of the next, a seeded torch with the worker's
    threads and deterministic algorithms off (a run with trainer.deterministic=true turns them on for the process:
    max_unpool2d would refuse to run)."""

    def reset() -> None:
        torch.set_num_threads(THREADS)
        torch.use_deterministic_algorithms(False)

    torch.manual_seed(0)
    reset()
    yield
    reset()


@pytest.fixture
def restore_registries():
    """Put every registry (and the record of named plugins) back as it was after the test."""
    saved = {family: dict(reg._entries) for family, reg in REGISTRIES.items()}
    named, loaded_as = dict(plugins._named), dict(plugins._loaded_as)
    yield
    for family, entries in saved.items():
        REGISTRIES[family]._entries = entries
    plugins._named.clear()
    plugins._named.update(named)
    plugins._loaded_as.clear()
    plugins._loaded_as.update(loaded_as)


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


def contents(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` with its bytes: compare before and after to see that nothing was written over."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cnnpl *args`` in ``cwd`` as a user would; returns the finished process."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "cnnpl", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli(tmp_path: Path):
    """``cli(*overrides)`` runs the command line with its run directory under ``tmp_path``."""

    def _run(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=env, timeout=timeout)

    return _run
