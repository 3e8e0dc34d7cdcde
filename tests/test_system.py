"""The LightningModule and the learning-rate schedules."""

from __future__ import annotations

import importlib
import itertools
import os
import platform
import sys
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler
from tests.conftest import TINY

import cnnpl
from cnnpl import environment, optim
from cnnpl.environment import keep_freed_memory, skip_missing_nvml
from cnnpl.errors import CnnplError
from cnnpl.hooks import BATCH_HOOKS, check_hook_signatures, skip_unused_batch_hooks
from cnnpl.profiler import NullProfiler
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


def test_cosine_decays_to_its_final_lr_fraction_and_never_below() -> None:
    values = lrs(optim.cosine, warmup_fraction=0.1, final_lr_fraction=0.1)
    assert values[9] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert min(values[10:]) >= 0.1 and all(a >= b for a, b in itertools.pairwise(values[10:]))


def test_one_cycle_peaks_at_the_optimizer_lr() -> None:
    values = lrs(optim.one_cycle, pct_start=0.25)
    assert max(values) == pytest.approx(1.0, rel=1e-3) and values.index(max(values)) in range(23, 27)
    assert values[0] == pytest.approx(1 / 25)


def test_triangle() -> None:
    values = lrs(optim.triangle, peak_fraction=0.2, start=0.2, end=0.0)
    assert values[0] == pytest.approx(0.2) and values[20] == pytest.approx(1.0) and values[-1] < 0.02


def test_triangle_descends_in_a_line_to_its_end_fraction() -> None:
    # experiment=fast_cifar10's settings (airbench94's): the descent ends at 0.07 x lr, not at 0
    values = lrs(optim.triangle, peak_fraction=0.23, start=0.2, end=0.07)
    peak = 23
    assert values[peak] == pytest.approx(1.0)
    assert values[peak:] == pytest.approx([1 + (0.07 - 1) * k / (100 - peak) for k in range(100 - peak)])
    assert min(values) > 0.07


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


class _RecordingLogger(Logger):
    """Keeps what Lightning writes: ``[(step, {name: value})]``."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, dict[str, float]]] = []

    name = "recording"
    version = 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.records.append((step, dict(metrics)))


class _BatchLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


class _BatchRecords(L.Callback):
    """Each training batch's size, summed loss and correct count, on the weights that train on it."""

    def __init__(self) -> None:
        self.epochs: list[list[tuple[int, float, int]]] = []
        self.totals: list[tuple[float, float, int]] = []  # the system's train_totals at each epoch's end

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs before the system's own hook
        self.totals.append(pl_module.train_totals)

    @torch.no_grad()
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            assert pl_module.train_totals == (0.0, 0.0, 0)  # nothing carried over from the last epoch
        images, labels = batch
        logits = pl_module.net(images)
        loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1, reduction="sum")
        self.epochs[-1].append((len(labels), float(loss), int((logits.argmax(1) == labels).sum())))


def test_training_metrics_are_exact_epoch_means_and_the_step_loss_follows_log_every_n_steps() -> None:
    # the weights change every step (lr 0.5); each epoch's means weight its batches (32, 32, 32 and a
    # last one of 4) by their sizes, on the weights each batch trained with
    torch.manual_seed(0)
    images, labels = torch.randn(100, 3, 4, 4), torch.randint(0, 10, (100,))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    system = ImageClassifier(net, 10, optimizer=partial(torch.optim.SGD, lr=0.5), label_smoothing=0.1)
    logger, losses, records = _RecordingLogger(), _BatchLosses(), _BatchRecords()
    trainer = L.Trainer(
        max_epochs=2, logger=logger, callbacks=[losses, records], log_every_n_steps=3, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=32)
    trainer.fit(system, loader)

    epochs = [m for _, m in logger.records if "train/acc" in m]
    assert len(epochs) == 2 and [len(batches) for batches in records.epochs] == [4, 4]
    assert epochs[0]["train/loss_epoch"] != pytest.approx(epochs[1]["train/loss_epoch"])  # it did train
    for metrics, batches in zip(epochs, records.epochs, strict=True):
        assert metrics["train/loss_epoch"] == pytest.approx(sum(b[1] for b in batches) / 100, rel=1e-5)
        assert metrics["train/acc"] == pytest.approx(sum(b[2] for b in batches) / 100)
    for (loss_sum, correct, count), batches in zip(records.totals, records.epochs, strict=True):
        assert loss_sum == pytest.approx(sum(b[1] for b in batches), rel=1e-5)
        assert (correct, count) == (sum(b[2] for b in batches), 100)
    steps = [m["train/loss_step"] for _, m in logger.records if "train/loss_step" in m]
    assert steps == pytest.approx([losses.losses[i] for i in (2, 5)])  # global steps 3 and 6 of 8


def test_keep_freed_memory_takes_on_glibc() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc


@pytest.mark.parametrize("keep", [True, False])
def test_train_keeps_freed_memory_as_configured(tmp_path: Path, monkeypatch, keep: bool) -> None:
    calls: list[bool] = []
    train_module = importlib.import_module("cnnpl.train")  # (cnnpl.train is the function)
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: calls.append(True) or True)
    cfg = cnnpl.compose([*TINY, f"keep_freed_memory={keep}", "fit=false", "test=false"], output_dir=str(tmp_path))
    train_module.train(cfg)
    assert calls == ([True] if keep else [])


class ProfilerSpy(L.Callback):
    """Keeps the Trainer's profiler and the actions it timed (``+callbacks.spy._target_=...ProfilerSpy``)."""

    last: ProfilerSpy | None = None

    def __init__(self) -> None:
        self.profiler: object = None
        self.timed: set[str] = set()
        ProfilerSpy.last = self

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.profiler = trainer.profiler
        self.timed = set(getattr(trainer.profiler, "recorded_durations", {}))


def test_the_null_profiler_is_one_shared_no_op_context() -> None:
    profiler = NullProfiler()
    assert isinstance(profiler, PassThroughProfiler)  # what Lightning's default is, for code that checks
    with profiler.profile("outer") as outer, profiler.profile("inner") as inner:  # nests
        assert outer is None and inner is None
    assert profiler.profile("a") is profiler.profile("b")  # nothing built per call


@pytest.mark.parametrize("named", [None, "simple"])
def test_runs_use_the_null_profiler_unless_trainer_profiler_names_one(tmp_path: Path, named: str | None) -> None:
    spy = f"+callbacks.spy._target_={ProfilerSpy.__module__}.ProfilerSpy"
    overrides = [*TINY, spy, "test=false", *([f"trainer.profiler={named}"] if named else [])]
    cnnpl.train(cnnpl.compose(overrides, output_dir=str(tmp_path)))
    assert ProfilerSpy.last is not None
    if named is None:
        assert type(ProfilerSpy.last.profiler) is NullProfiler
    else:  # Lightning's own, timing every hook as usual
        assert type(ProfilerSpy.last.profiler) is SimpleProfiler
        assert {"run_training_batch", "[Callback]FiniteLossGuard.on_before_backward"} <= ProfilerSpy.last.timed


def test_the_null_profiler_leaves_results_as_lightnings_default_does(tmp_path: Path) -> None:
    spy = f"+callbacks.spy._target_={ProfilerSpy.__module__}.ProfilerSpy"
    lightnings = "trainer.profiler={_target_:lightning.pytorch.profilers.PassThroughProfiler}"
    metrics, profilers = [], []
    for i, extra in enumerate([[], [lightnings]]):
        metrics.append(cnnpl.train(cnnpl.compose([*TINY, spy, *extra], output_dir=str(tmp_path / str(i)))))
        assert ProfilerSpy.last is not None
        profilers.append(type(ProfilerSpy.last.profiler))
    assert profilers == [NullProfiler, PassThroughProfiler]
    assert metrics[0] == metrics[1] and "test/acc" in metrics[0]


class BatchCounter(L.Callback):
    """Counts its two batch hooks: one its class overrides, one its instance is given."""

    def __init__(self) -> None:
        self.calls = {"on_train_batch_end": 0, "on_before_backward": 0}
        self.on_before_backward = lambda *_: self._count("on_before_backward")

    def _count(self, hook: str) -> None:
        self.calls[hook] += 1

    def on_train_batch_end(self, *_: object) -> None:
        self._count("on_train_batch_end")


def test_unused_batch_hooks_are_set_to_none_and_used_ones_still_run(tmp_path: Path) -> None:
    counter = skip_unused_batch_hooks(BatchCounter())
    assert {hook for hook in BATCH_HOOKS if getattr(counter, hook) is not None} == set(counter.calls)
    trainer = L.Trainer(max_steps=3, callbacks=[counter], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    net = cnnpl.build("model", "simple_cnn", num_classes=10)
    data = torch.utils.data.TensorDataset(torch.randn(12, 3, 32, 32), torch.randint(0, 10, (12,)))
    trainer.fit(ImageClassifier(net, 10), torch.utils.data.DataLoader(data, batch_size=4))
    assert counter.calls == {"on_train_batch_end": 3, "on_before_backward": 3}


class WrongHooks(L.Callback):
    def on_train_batch_end(self, trainer):  # helper-136: a TypeError with a traceback once training had started
        pass


class RightHooks(L.Callback):
    def setup(self, trainer, pl_module, *, stage):  # Lightning passes stage by name
        pass

    def on_train_batch_end(self, trainer, pl_module, *rest):
        pass

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # no dataloader_idx
        pass

    def on_save_checkpoint(self, *args, **kwargs):
        pass


def test_a_callback_hook_that_cannot_take_lightnings_arguments_is_refused_before_training() -> None:
    with pytest.raises(CnnplError) as err:
        check_hook_signatures(WrongHooks(), "wrong")
    assert str(err.value) == (
        "callbacks.wrong: WrongHooks.on_train_batch_end(trainer) cannot take what Lightning passes it; write "
        "def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx)"
    )
    check_hook_signatures(RightHooks(), "right")
    hooked = BatchCounter()
    hooked.on_after_backward = lambda trainer: None  # an instance's own, too
    with pytest.raises(CnnplError, match=r"BatchCounter\.on_after_backward\(trainer\) cannot take"):
        check_hook_signatures(hooked, "counter")
    import cnnpl.callbacks

    registry = cnnpl.get_registry("callback")
    for name in [name for name in registry.names() if registry.entry(name).source == "built-in"]:
        made = registry.get(name)  # every built-in callback's hooks take what Lightning passes them
        assert isinstance(made, type), name
        check_hook_signatures(made.__new__(made), name)  # (some take settings no default gives)


def test_runs_call_only_the_batch_hooks_their_callbacks_use(tmp_path: Path) -> None:
    spy = f"+callbacks.spy._target_={ProfilerSpy.__module__}.ProfilerSpy"
    cnnpl.train(cnnpl.compose([*TINY, spy, "test=false", "trainer.profiler=simple"], output_dir=str(tmp_path)))
    assert ProfilerSpy.last is not None
    timed = {name for name in ProfilerSpy.last.timed if name.startswith("[Callback]")}
    assert "[Callback]FiniteLossGuard.on_before_backward" in timed  # overridden: called
    assert "[Callback]FiltersCallback.on_train_epoch_end" in timed  # not a batch hook: called
    per_step = {name for name in timed if name.rsplit(".", 1)[1] in BATCH_HOOKS[:6]}
    assert {name.split("{")[0].rsplit(".", 1)[0] for name in per_step} == {
        "[Callback]ModelCheckpoint",
        "[Callback]LearningRateMonitor",
        "[Callback]TQDMProgressBar",
        "[Callback]FiniteLossGuard",
    }


def test_the_module_attributes_lightning_sets_every_hook_bypass_nn_modules_setattr(tmp_path: Path, monkeypatch) -> None:
    names: list[str] = []
    setattr_ = torch.nn.Module.__setattr__

    def counting(module: torch.nn.Module, name: str, value: object) -> None:
        names.append(name)
        setattr_(module, name, value)

    monkeypatch.setattr(torch.nn.Module, "__setattr__", counting)
    metrics = cnnpl.train(cnnpl.compose([*TINY, "test=false"], output_dir=str(tmp_path)))
    assert "train/acc" in metrics and names  # it trained, and modules were built through the spy
    assert not set(names) & ImageClassifier._PLAIN_ATTRIBUTES
    system = ImageClassifier(cnnpl.build("model", "simple_cnn", num_classes=10), 10)
    system._current_fx_name = "training_step"
    system.extra = torch.nn.Linear(2, 2)  # any other attribute still goes through nn.Module's
    assert system._current_fx_name == "training_step" and "_current_fx_name" not in system._modules
    assert "extra" in system._modules and "extra" in names


def test_setup_hides_torchs_leafspec_warning_about_lightnings_code() -> None:
    # ImageClassifier.setup runs in every process (ddp_spawn's children too), before any batch is flattened
    from lightning.pytorch.utilities._pytree import _tree_flatten

    system = ImageClassifier(torch.nn.Flatten(), 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tree_flatten(torch.zeros(1))
        if not any("LeafSpec" in str(w.message) for w in caught):  # torch 2.14 with Lightning 2.6 warns
            pytest.skip("torch does not warn about this Lightning's LeafSpec: nothing to hide")
        caught.clear()
        system.setup("fit")
        _tree_flatten(torch.zeros(1))
        warnings.warn("is deprecated too", FutureWarning, stacklevel=1)  # anything else still shows
    assert [str(w.message) for w in caught] == ["is deprecated too"]


def test_setup_hides_the_model_summarys_warning_about_mixed_precision() -> None:
    # note 39: every bf16 run printed "Precision bf16-mixed is not supported by the model summary ... Using 32 bits
    # instead": the weights of a mixed-precision run are float32, so its 32 bits are right
    from lightning.pytorch.utilities.model_summary import ModelSummary

    system = ImageClassifier(torch.nn.Linear(2, 2), 2)
    system._trainer = L.Trainer(precision="bf16-mixed", accelerator="cpu", logger=False, enable_progress_bar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ModelSummary(system)
        assert any("not supported by the model summary" in str(w.message) for w in caught)  # Lightning warns
        caught.clear()
        system.setup("fit")
        summary = ModelSummary(system)
    assert [str(w.message) for w in caught] == []
    assert summary.model_size == pytest.approx(6 * 4 * 1e-6)  # 6 float32 weights


def test_the_nvml_check_is_dropped_only_where_nvml_does_not_load(monkeypatch) -> None:
    variable = "PYTORCH_NVML_BASED_CUDA_CHECK"
    monkeypatch.setenv(variable, "1")
    with_nvml = torch.cuda.is_available()
    # torch counts devices through NVML (device_count) only while the variable is set: a spy sees which way it asks
    asked: list[str] = []
    count = torch.cuda.device_count
    monkeypatch.setattr(torch.cuda, "device_count", lambda: asked.append("nvml") or count())
    torch.cuda.is_available()
    assert asked == ["nvml"]

    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(environment.ctypes, "CDLL", missing)
    assert skip_missing_nvml() is True and variable not in os.environ
    # torch reads the variable on every call, so it now asks the CUDA runtime directly, for the same answer
    # (which is the same anyway on a machine without a GPU, where False is the only answer)
    assert torch.cuda.is_available() is with_nvml and asked == ["nvml"]
    assert skip_missing_nvml() is False  # nothing left to drop
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(environment.ctypes, "CDLL", lambda name: object())  # NVML loads: the variable stays
    assert skip_missing_nvml() is False and os.environ[variable] == "1"


def test_every_run_logs_its_versions_and_cpu_kernels(tmp_path: Path, monkeypatch, caplog) -> None:
    train_module = importlib.import_module("cnnpl.train")
    # (not a real pin: oneDNN reads ONEDNN_MAX_CPU_ISA once, and would keep it for later tests)
    monkeypatch.setattr(environment, "ISA_PINS", ("CNNPL_TEST_UNSET_PIN", "CNNPL_TEST_PIN"))
    monkeypatch.delenv("CNNPL_TEST_UNSET_PIN", raising=False)
    monkeypatch.setenv("CNNPL_TEST_PIN", "AVX2")
    cfg = cnnpl.compose([*TINY, "trainer.accelerator=cpu", "fit=false", "test=false"], output_dir=str(tmp_path))
    with caplog.at_level("INFO", logger="cnnpl.train"):
        train_module.train(cfg)
    [line] = [r.getMessage() for r in caplog.records if r.name == "cnnpl.train" and "dry run" not in r.getMessage()]
    assert line.startswith(f"cnnpl {cnnpl.__version__}, torch {torch.__version__}, lightning {L.__version__}; ")
    threads = torch.get_num_threads()
    kernels = f"CPU kernels {torch.backends.cpu.get_cpu_capability()}"
    assert f"; cpu x 1; {kernels}, {threads} thread{'s' * (threads != 1)}, " in line
    assert line.endswith("; pinned: CNNPL_TEST_PIN=AVX2")


def test_the_environment_line_gives_the_threads_of_each_process_lightnings_launcher_starts(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    # helper-121: written before Lightning's launcher shares the cores among the processes, it said 2 threads where
    # each of trainer=ddp_cpu's two processes trained with 1
    train_module = importlib.import_module("cnnpl.train")
    monkeypatch.delenv("OMP_NUM_THREADS")
    import lightning.fabric.utilities.distributed as fabric_distributed

    monkeypatch.setattr(fabric_distributed, "_num_cpus_available", lambda: 6)
    cfg = cnnpl.compose([*TINY, "trainer=ddp_cpu", "fit=false", "test=false"], output_dir=str(tmp_path))
    with caplog.at_level("INFO", logger="cnnpl.train"):
        train_module.train(cfg)
    [line] = [r.getMessage() for r in caplog.records if r.name == "cnnpl.train" and "dry run" not in r.getMessage()]
    assert "; cpu x 2; CPU kernels " in line and ", 3 threads, " in line  # 6 cores, 2 processes


@pytest.mark.parametrize(
    ("precision", "native", "warns"),
    [("bf16-mixed", False, True), ("bf16-mixed", True, False), ("32-true", False, False)],
)
def test_emulated_bf16_on_the_cpu_warns_before_training(tmp_path: Path, monkeypatch, precision, native, warns) -> None:
    train_module = importlib.import_module("cnnpl.train")
    monkeypatch.setattr(environment, "ONEDNN_PIN", "CNNPL_TEST_UNSET_PIN")
    monkeypatch.delenv("CNNPL_TEST_UNSET_PIN", raising=False)
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda: native)
    cfg = cnnpl.compose(
        [*TINY, "trainer.accelerator=cpu", f"trainer.precision={precision}", "fit=false", "test=false"],
        output_dir=str(tmp_path),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_module.train(cfg)
    emulated = [str(w.message) for w in caught if "without native bfloat16" in str(w.message)]
    assert emulated == ([f"trainer.precision={precision} on a CPU without native bfloat16 (AMX or AVX512-BF16) "
                         "is emulated and likely slower than float32: use trainer.precision=32-true "
                         "(experiment=fast_cifar10 instead of fast_cifar10_bf16)"] if warns else [])  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "dynamic"),
    [
        (["data.train_sizes=[24]"], False),  # a graph per image side
        ([], None),  # torch's own choice
        (["data.train_sizes=[24]", "+system.compile_dynamic=true"], True),  # the user's
    ],
)
def test_compiling_with_progressive_resizing_compiles_a_graph_per_image_side(
    tmp_path: Path, monkeypatch, overrides: list[str], dynamic: bool | None
) -> None:
    # helper-124: torch 2.14's dynamic recompile for the smaller epochs' image side stalled the CPU run (7 min and
    # counting, in sympy); a static graph for it compiled in about 14 s here (fast_net at widths 8/16/16)
    compiled: list[bool | None] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: compiled.append(kwargs.get("dynamic")))
    cfg = cnnpl.compose(
        [*TINY, "model=fast_net", "act=gelu", "trainer.max_epochs=2", "system.compile=true", *overrides,
         "fit=false", "test=false"],
        output_dir=str(tmp_path),
    )  # fmt: skip
    importlib.import_module("cnnpl.train").train(cfg)
    assert compiled == [dynamic]


@pytest.mark.parametrize(("pin", "warns"), [("AVX2", True), ("avx512_core", True), ("AVX512_CORE_AMX", False)])
def test_bf16_on_a_cpu_pinned_below_its_bf16_instructions_warns(
    tmp_path: Path, monkeypatch, caplog, pin, warns
) -> None:
    # helper-124: speed.md's AVX2 pins made bf16 10.6x slower than float32 on an AMX CPU, without the warning
    train_module = importlib.import_module("cnnpl.train")
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda: True)
    # (not the real variable: oneDNN reads it once, and would keep it for later tests)
    monkeypatch.setattr(environment, "ONEDNN_PIN", "CNNPL_TEST_ONEDNN_PIN")
    monkeypatch.setattr(environment, "ISA_PINS", ("CNNPL_TEST_ONEDNN_PIN",))
    monkeypatch.setenv("CNNPL_TEST_ONEDNN_PIN", pin)
    cfg = cnnpl.compose(
        [*TINY, "trainer.accelerator=cpu", "trainer.precision=bf16-mixed", "fit=false", "test=false"],
        output_dir=str(tmp_path),
    )
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("INFO", logger="cnnpl.train"):
        warnings.simplefilter("always")
        train_module.train(cfg)
    emulated = [str(w.message) for w in caught if "is emulated" in str(w.message)]
    expected = (
        f"trainer.precision=bf16-mixed with CNNPL_TEST_ONEDNN_PIN={pin.upper()}, which keeps oneDNN off its bfloat16 "
        "instructions, is emulated and likely slower than float32: use trainer.precision=32-true "
        "(experiment=fast_cifar10 instead of fast_cifar10_bf16)"
    )
    assert emulated == ([expected] if warns else [])
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("cnnpl "))
    unused = f" (unused: CNNPL_TEST_ONEDNN_PIN={pin.upper()})" if warns else ""
    assert f"CPU bfloat16 in hardware yes{unused}; pinned: " in line


@pytest.mark.parametrize(
    ("rank", "global_step", "restored", "seed"),
    [
        (0, 0, False, 42),  # a new run: each process offsets the shared seed by its rank
        (1, 0, False, 43),
        (0, 30, True, None),  # a resumed process 0 continues the random states the checkpoint restored
        (1, 30, False, 42 + 1 + 2 * 30),  # the others draw a seed no process of the run used before
        (0, 30, False, 42 + 2 * 30),  # a checkpoint without the guard's states: process 0 too
    ],
)
def test_processes_draw_distinct_random_numbers_and_a_resume_does_not_restart_them(
    rank: int, global_step: int, restored: bool, seed: int | None
) -> None:
    """Under DDP a resumed process must not reseed to the run's first seed: it would draw the first
    epoch's augmentation again (every resume repeating the same sequence)."""
    system = ImageClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)), 3)
    system._trainer = SimpleNamespace(world_size=2, global_rank=rank, global_step=global_step)
    checkpoint = {"cnnpl": {"random_state_rank0": {}}} if restored else {}
    system.on_load_checkpoint(checkpoint)
    torch.manual_seed(42)
    state = torch.get_rng_state()
    system.on_train_start()
    if seed is None:
        assert torch.equal(torch.get_rng_state(), state)
    else:
        assert torch.initial_seed() == seed
