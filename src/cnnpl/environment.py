"""The process a run trains in: glibc's memory settings, torch's NVML check, the CPU's bfloat16 support and
instruction-set pins, and the one line that says what decides whether a run reproduces another's numbers
(:func:`environment_line`). :mod:`cnnpl.train` applies these before a run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import warnings
from typing import Any

import torch

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


class _NoTips(logging.Filter):
    """Drops Lightning's "💡 Tip: For seamless cloud logging ... try installing litlogger" lines: advertisements
    for services, logged in every run, which say nothing of the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def hide_lightning_tips() -> None:
    """Keep Lightning's tips (:class:`_NoTips`) out of the console and the run's log (once a process)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in rank_zero.filters):
        rank_zero.addFilter(_NoTips())


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    A training step frees and allocates the same large activation and gradient buffers every step.
    glibc serves the largest with fresh ``mmap`` pages and unmaps them when freed (and trims the heap
    when its top is free), so each step the kernel faults in and zeroes those pages again. With
    ``mmap`` off and the trim threshold at its maximum, freed blocks stay on malloc's free lists and
    the next step reuses them: on a 2-core CPU the training step ran 1.3x faster for fast_net and
    1.5x for simple_cnn (docs/benchmarks.md). The process holds on to its peak memory until it
    exits. Returns whether the settings took (False, and nothing changed, off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def skip_missing_nvml() -> bool:
    """Stop ``torch.cuda.is_available()`` from looking for NVML on every call where there is none.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``, so that torch counts GPUs through
    NVML (which does not poison forks) instead of the CUDA runtime. Where the NVIDIA driver's
    ``libnvidia-ml.so.1`` cannot be loaded (any machine without an NVIDIA GPU), torch tries to load it
    on every call, fails, and asks the CUDA runtime after all: the same answer, 30-50 us later. Adam
    and AdamW ask on every step. Here the variable is removed when the library does not load, which
    changes no answer (both ways end at the CUDA runtime's count). Returns whether it was removed.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # what torch loads (torch.cuda._raw_device_count_nvml)
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        return True
    return False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware: AMX tiles or AVX512-BF16 instructions.

    (oneDNN's own ``_is_mkldnn_bf16_supported`` says yes to any AVX-512 CPU, which emulates bfloat16.)
    """
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # private helpers: a torch without them says nothing
        return False


# Environment variables that cap the instruction set of torch's, oneDNN's and MKL's CPU kernels
ISA_PINS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
# oneDNN's instruction-set cap, and its sets below AVX512_CORE_BF16: capped at one, its convolutions emulate bfloat16
ONEDNN_PIN = "ONEDNN_MAX_CPU_ISA"
ONEDNN_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def bf16_pinned_off() -> str | None:
    """The ``ONEDNN_MAX_CPU_ISA=<set>`` pin that keeps oneDNN's convolutions off the CPU's bfloat16 instructions
    (docs/speed.md pins AVX2 to reproduce another CPU's numbers), or None."""
    pinned = os.environ.get(ONEDNN_PIN, "").strip().upper()
    return f"{ONEDNN_PIN}={pinned}" if pinned in ONEDNN_WITHOUT_BF16 else None


def environment_line(trainer: Any) -> str:
    """Versions, devices and CPU kernels: what decides whether a run reproduces another's numbers.

    The command line prints it at the start of every run and writes it to the run's ``cnnpl.log``.
    Two CPUs whose torch picks different kernels (``AVX2`` or ``AVX512``) compute differently and end
    the same seed at different accuracies; the ``ISA_PINS`` variables make a newer CPU run an older
    one's kernels (docs/reliability.md). The devices come from ``trainer`` (CUDA is not initialised here: a
    ``ddp_fork`` run must not start it before forking).
    """
    import lightning

    from cnnpl import __version__

    processes = f", {trainer.world_size} processes in all" if trainer.world_size > trainer.num_devices else ""
    threads = _training_threads(trainer)
    native, pinned = cpu_has_native_bf16(), bf16_pinned_off()
    line = (
        f"cnnpl {__version__}, torch {torch.__version__}, lightning {lightning.__version__}; "
        f"{trainer.strategy.root_device.type} x {trainer.num_devices}{processes}; "
        f"CPU kernels {torch.backends.cpu.get_cpu_capability()}, {threads} thread{'s' * (threads != 1)}, "
        f"CPU bfloat16 in hardware {'yes' if native else 'no'}{f' (unused: {pinned})' if native and pinned else ''}"
    )
    pins = [f"{name}={os.environ[name]}" for name in ISA_PINS if os.environ.get(name)]
    return line + (f"; pinned: {' '.join(pins)}" if pins else "")


def _training_threads(trainer: Any) -> int:
    """The threads each process trains with: Lightning's launcher (``trainer=ddp_cpu``) sets them when it starts
    the other processes, after this line is written (the cores shared among them, unless ``OMP_NUM_THREADS``
    is set); the number now otherwise."""
    from lightning.fabric.utilities.distributed import _suggested_max_num_threads
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and "OMP_NUM_THREADS" not in os.environ:
        return _suggested_max_num_threads(launcher.num_processes)
    return torch.get_num_threads()


def warn_emulated_bf16(trainer: Any) -> None:
    """Warn, before training, when a CPU run computes in bfloat16 that the CPU can only emulate."""
    from lightning.pytorch.accelerators import CPUAccelerator

    precision = str(trainer.precision)
    if not isinstance(trainer.accelerator, CPUAccelerator) or not precision.startswith("bf16"):
        return
    if not cpu_has_native_bf16():
        why = "on a CPU without native bfloat16 (AMX or AVX512-BF16)"
    elif pinned := bf16_pinned_off():
        why = f"with {pinned}, which keeps oneDNN off its bfloat16 instructions,"
    else:
        return
    warnings.warn(
        f"trainer.precision={precision} {why} is emulated and likely slower than float32: use "
        "trainer.precision=32-true (experiment=fast_cifar10 instead of fast_cifar10_bf16)",
        stacklevel=2,
    )
