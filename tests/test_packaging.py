"""Packaging: the wheel and the sdist build, and the installed wheel works away from the source tree.

The wheel is installed with ``pip install --no-deps --target`` (its dependencies come from the test
environment) and run with that folder first on ``PYTHONPATH``, from a folder outside the checkout, so
``conf/`` must come from inside the wheel (``cnnpl/conf``). Needs ``hatchling`` (the build backend)
importable: ``pip install hatchling``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from tests.conftest import REPO, TINY

pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def hatchling() -> None:
    pytest.importorskip("hatchling", reason="the build backend: pip install hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, hatchling: None) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO), cwd=dist)
    (built,) = dist.glob("cnnpl-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    run("-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel), cwd=target)
    return target


def test_wheel_holds_the_package_and_its_configs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("cnnpl/__init__.py", "cnnpl/__main__.py", "cnnpl/conf/train.yaml", "cnnpl/conf/model/simple_cnn.yaml"):
        assert name in names
    assert not [n for n in names if n.startswith(("tests/", "conf/")) or n.endswith((".ckpt", ".pth"))]


def test_installed_wheel_runs_outside_the_source_tree(installed: Path, tmp_path: Path) -> None:
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {"PYTHONPATH": str(installed)}
    where = run(
        "-c", "import cnnpl, cnnpl.config; print(cnnpl.__file__); print(cnnpl.config.config_dir())", cwd=away, env=env
    )
    module, conf = where.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(conf) == installed / "cnnpl" / "conf"

    job = run("-m", "cnnpl", "--cfg", "job", cwd=away, env=env)
    assert "model:" in job.stdout and "name: simple_cnn" in job.stdout

    listing = run("-m", "cnnpl.list", cwd=away, env=env)
    assert "simple_cnn" in listing.stdout and "conv2d" in listing.stdout

    run("-m", "cnnpl", *TINY, f"hydra.run.dir={away / 'run'}", cwd=away, env=env)
    assert (away / "run" / "checkpoints" / "last.ckpt").is_file()


def test_sdist_is_complete_enough_to_build_the_wheel(tmp_path: Path, hatchling: None) -> None:
    sdist_dir = tmp_path / "sdist"
    sdist_dir.mkdir()
    built = run("-c", "import sys, hatchling.build as b; print(b.build_sdist(sys.argv[1]))", str(sdist_dir), cwd=REPO)
    sdist = sdist_dir / built.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        root = names[0].split("/")[0]
        for name in ("pyproject.toml", "README.md", "conf/train.yaml", "src/cnnpl/__init__.py"):
            assert f"{root}/{name}" in names
        tar.extractall(tmp_path / "unpacked", filter="data")
    wheels = tmp_path / "wheels"
    run(
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(wheels),
        str(tmp_path / "unpacked" / root),
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("cnnpl-*.whl")
    assert "cnnpl/conf/train.yaml" in zipfile.ZipFile(wheel).namelist()
