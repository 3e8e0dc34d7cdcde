"""The LightningModule and the learning-rate schedules."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from tests.conftest import TINY

import cnnpl
from cnnpl import optim
from cnnpl.errors import CnnplError
from cnnpl.system import ImageClassifier


def lrs(schedule, steps: int = 100, **kwargs) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = schedule(opt, total_steps=steps, **kwargs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_warms_up_then_decays_to_the_floor() -> None:
    values = lrs(optim.cosine, warmup_fraction=0.1, final_lr_fraction=0.0)
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[-1] < 0.01 and all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_one_cycle_peaks_at_the_optimizer_lr() -> None:
    values = lrs(optim.one_cycle, pct_start=0.25)
    assert max(values) == pytest.approx(1.0, rel=1e-3) and values.index(max(values)) in range(23, 27)
    assert values[0] == pytest.approx(1 / 25)


def test_triangle() -> None:
    values = lrs(optim.triangle, peak_fraction=0.2, start=0.2, end=0.0)
    assert values[0] == pytest.approx(0.2) and values[20] == pytest.approx(1.0) and values[-1] < 0.02


def test_system_rejects_bad_settings() -> None:
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    with pytest.raises(CnnplError, match="label_smoothing must be in"):
        ImageClassifier(net, 10, label_smoothing=1.5)


def test_python_api_composes_and_trains_with_a_schedule(tmp_path: Path) -> None:
    cfg = cnnpl.compose(
        [*TINY, "scheduler=onecycle", "optimizer=sgd", "system.tta_flip=true"], output_dir=str(tmp_path)
    )
    metrics = cnnpl.train(cfg)
    assert {"train/loss_epoch", "val/acc", "test/acc", "test/loss"} <= set(metrics)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
