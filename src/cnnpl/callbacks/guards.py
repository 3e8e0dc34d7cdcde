"""Callbacks that keep a run safe to interrupt and resume; ``cnnpl.train`` adds all three to every run.

- :class:`RandomStateCheckpoint`: the Python, NumPy and torch (CPU and CUDA) random states go into
  every checkpoint and come back on resume, so shuffling, augmentation and dropout continue as if the
  run had never stopped.
- :class:`SigtermCheckpoint`: on SIGTERM (what SLURM and Kubernetes send before killing a job)
  Lightning stops after the current batch; this callback then saves ``last.ckpt``.
- :class:`FiniteLossGuard`: a NaN or infinite training loss stops the run before the optimizer step,
  with a message naming the step; the last checkpoint on disk stays the last good one.

They are not registry components (``callbacks=...`` cannot drop them): they are part of what a run is.
:class:`ConfigWriter`, which writes a training run's ``config.yaml`` when training starts, is added by
``cnnpl.train`` too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cnnpl.checkpoint import SAVED_CONFIG, loads_weights
from cnnpl.errors import CnnplError, say

LAST_FILE = "last.ckpt"


class NonFiniteLossError(CnnplError):
    """The training loss became NaN or infinite."""


# -- random state ----------------------------------------------------------------------------------
def collect_random_state() -> dict[str, Any]:
    """The global random states, as tensors, ints and lists only (so ``weights_only=True`` loads them)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Set the global random states from :func:`collect_random_state`'s result."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def random_state_key(rank: int) -> str:
    return f"random_state_rank{rank}"


def saved_random_state(checkpoint: dict[str, Any], rank: int) -> dict[str, Any] | None:
    """The random states :class:`RandomStateCheckpoint` saved in ``checkpoint`` for process ``rank``, if any."""
    return (checkpoint.get("cnnpl") or {}).get(random_state_key(rank))


class ConfigWriter(L.Callback):
    """Calls ``write`` (writing the run's ``config.yaml``) once, in process 0, when training starts, or
    before that if a checkpoint is saved first (SIGTERM during the sanity check), or when the fit ends
    if neither happened (nothing left to train).

    That is after every check, Lightning's setup included: a command refused before training leaves no
    ``config.yaml``, so a ``config.yaml`` in a run directory means that a run trained there
    (:func:`cnnpl.checkpoint.check_fresh_run_dir` refuses to start another over it), and every
    checkpoint has its run's ``config.yaml`` beside it (what a resume is compared with). ``text``, that
    config as YAML, goes into each checkpoint too (``checkpoint["cnnpl"]["config"]``): a checkpoint copied
    away from its run is compared with it (helper-137: a copy resumed with optimizer=sgd failed mid-fit).
    """

    def __init__(self, write: Callable[[], None], text: str | None = None) -> None:
        self.write = write
        self.text = text
        self.written = False

    def _write_once(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and not self.written:
            self.write()
            self.written = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_once(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._write_once(trainer)
        if self.text is not None:
            checkpoint.setdefault("cnnpl", {})[SAVED_CONFIG] = self.text
        try:  # what render tells other images by (helper-139); a data module of one's own may not say
            data = trainer.datamodule
            shape = [int(data.in_channels), *(int(side) for side in data.input_size)]
        except Exception:
            return
        checkpoint.setdefault("cnnpl", {})[IMAGE_SHAPE] = shape

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_once(trainer)


IMAGE_SHAPE = "image_shape"  # the checkpoint's [channels, height, width] of the run's full-size images
START_PICTURES = "start_pictures"  # the checkpoint's list (under "cnnpl") of the start pictures drawn


class RandomStateCheckpoint(L.Callback):
    """Saves the global random states in each checkpoint and restores them when training resumes.

    The states are taken when the checkpoint is written (the end of an epoch, for the default
    ``ModelCheckpoint``) and set again as soon as Lightning reads the checkpoint to resume a fit,
    before anything else of the resumed run draws a random number: Lightning creates the training
    data loader's iterator (which draws its base seed) during setup when a schedule asks for
    ``estimated_stepping_batches``, and at the epoch start otherwise; either way it then draws from
    the restored states, in the same order as the uninterrupted run. Under DDP the file is written
    by process 0 alone, so it holds process 0's states: the other processes draw new seeds (see
    :meth:`cnnpl.system.ImageClassifier.on_train_start`), and a resumed multi-process run is not
    bit-identical to an uninterrupted one.
    """

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.setdefault("cnnpl", {})
        saved[random_state_key(trainer.global_rank)] = collect_random_state()
        # every checkpoint lists the start pictures drawn (the picture callbacks add theirs), so that a resume
        # tells "none drawn" (callbacks=minimal) from a checkpoint written before the list existed
        saved.setdefault(START_PICTURES, [])

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        state = saved_random_state(checkpoint, trainer.global_rank)
        if state is not None and trainer.state.fn == TrainerFn.FITTING:
            restore_random_state(state)


# -- SIGTERM ---------------------------------------------------------------------------------------
def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """The run's ``last.ckpt``: the one ``ModelCheckpoint`` last wrote (or would write), else
    ``<default_root_dir>/checkpoints/last.ckpt``."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.last_model_path:
        return Path(callback.last_model_path)
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return Path(trainer.default_root_dir) / "checkpoints" / LAST_FILE


class SigtermCheckpoint(L.Callback):
    """Saves ``last.ckpt`` when the run stops on SIGTERM.

    Lightning's own SIGTERM handler (its signal connector) only records the signal; the training
    loop then finishes the current batch and raises ``SIGTERMException``, and every callback's
    ``on_exception`` runs. Saving there, instead of in a handler of our own, keeps Lightning's
    handling (and SLURM's requeue) intact and saves a consistent state between two batches. The run
    then resumes with ``ckpt_path=last``. A checkpoint taken mid-epoch continues that epoch with the
    batches still due, but their order is drawn anew (the data loader has no resumable state).

    Under DDP this callback takes the place of Lightning's notifier in that handler, and the processes
    agree once a batch (:meth:`agree`), so that all of them stop after the same batch whichever got the
    signal (docs/distributed.md).
    """

    def __init__(self) -> None:
        super().__init__()
        self.saved: Path | None = None
        self.pending = False  # this process received SIGTERM; the processes have not agreed on it yet (DDP)
        self._agrees = False  # the processes agree on a stop between batches (DDP with a process group)
        self._agreed = False  # ... and have, in this batch
        self._eval_agreements = 0  # agree after each of a validation's or test's first batches

    # Under DDP, Lightning's handler broadcasts from inside the signal handler, which runs at whatever
    # point its process has reached. With every process signalled at once (a process group's SIGTERM,
    # systemd's, torchrun's), one process's broadcast could pair with another's training collective,
    # and the stop waited out trainer.strategy.timeout. Here the handler only records the signal; the
    # processes agree on it once a batch, in the all-reduce FiniteLossGuard makes anyway, and all of
    # them stop after the same batch.
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.pending = False
        self._agrees = (
            trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()
        )
        if self._agrees:  # Lightning registers its handlers after setup, taking the notifier from here
            trainer._signal_connector._sigterm_notifier_fn = self._record_sigterm
        for hook in _AGREEING_BATCH_HOOKS:  # one process: no calls a batch (Lightning skips a hook set to None)
            if self._agrees:
                vars(self).pop(hook, None)
            else:
                setattr(self, hook, None)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        vars(trainer._signal_connector).pop("_sigterm_notifier_fn", None)  # Lightning's own again

    def _record_sigterm(self, signum: Any, frame: Any) -> None:
        self.pending = True

    def agree(self, trainer: L.Trainer, finite: bool = True) -> bool:
        """One all-reduce under DDP: whether any process received SIGTERM (then Lightning's loops stop
        every process at the same point) and whether every process's loss is ``finite`` (returned)."""
        if not self._agrees:
            return finite if trainer.world_size == 1 else trainer.strategy.reduce_boolean_decision(finite, all=True)
        flags = torch.tensor([float(not finite), float(self.pending)], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        not_finite, sigterm = flags.tolist()
        if sigterm:
            trainer._signal_connector.received_sigterm = True
        self._agreed = True
        return not not_finite

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._agreed = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._agrees and not self._agreed:  # a batch without a backward pass (FiniteLossGuard agrees there)
            self.agree(trainer)  # Lightning raises SIGTERMException after this batch

    # A validation's or a test's shares can differ in length between the processes (EvalShardSampler's differ by
    # an image), and Lightning's loop stops a process after any batch but its last: the processes agree after
    # each batch that is not the last in any of them (none where there are several loaders or one of unknown
    # length), then at the end.
    def _on_eval_start(self, trainer: L.Trainer, batches: list[int | float]) -> None:
        self._eval_agreements = 0
        if not self._agrees:
            return
        if trainer.received_sigterm:  # a stop agreed in the batch before: the loop would stop a process alone
            self.pending, trainer._signal_connector.received_sigterm = True, False
        if len(batches) == 1 and not math.isinf(batches[0]):  # one loader of known length
            fewest = torch.tensor([float(batches[0])], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(fewest, op=torch.distributed.ReduceOp.MIN)
            self._eval_agreements = int(fewest.item()) - 1

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_eval_start(
            trainer, trainer.num_sanity_val_batches if trainer.sanity_checking else trainer.num_val_batches
        )

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx < self._eval_agreements:
            self.agree(trainer)  # Lightning's loop stops every process after this batch

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a signal in its last batches: the fit loop stops after it (at the epoch's end, or after a mid-epoch
        # validation). A finished trainer.validate() or test is kept, as with one process, where Lightning's loop
        # does not stop after the last batch
        if self._agrees:
            self.agree(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_eval_start(trainer, trainer.num_test_batches)

    on_test_batch_end = on_validation_batch_end  # the same agreement after a test batch

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")  # Lightning calls no teardown hook after an exception
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = last_checkpoint_path(trainer)
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.save_last:
            # recorded in the file's own callback state: the resumed run then rewrites this last.ckpt
            # instead of writing last-v1.ckpt beside it (as when the SIGTERM came before the first save)
            callback.last_model_path = str(path)
        trainer.save_checkpoint(path, weights_only=False)  # all ranks call it; the strategy writes once
        self.saved = path
        if trainer.is_global_zero:
            say(
                f"cnnpl: SIGTERM received: saved {path} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"{_how_to_resume()}"
            )


_AGREEING_BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_validation_batch_end", "on_test_batch_end")


def _how_to_resume() -> str:
    """How to continue this run: a sweep's job with the sweep's own command (docs/howto/resume.md)."""
    from cnnpl.distributed import in_sweep

    if in_sweep():
        from hydra.core.hydra_config import HydraConfig

        folder = HydraConfig.get().sweep.dir
        return f"resume with the sweep's own command and hydra.sweep.dir={folder} ckpt_path=last"
    return "resume with the same hydra.run.dir and ckpt_path=last"


# -- NaN / inf loss --------------------------------------------------------------------------------
class FiniteLossGuard(L.Callback):
    """Stops training with :class:`NonFiniteLossError` when the loss is NaN or infinite.

    Checked in ``on_before_backward``: the weights have not been touched by the bad step, and no
    checkpoint is written after it, so the last ``last.ckpt`` is the last good state. Under DDP the
    processes agree first (a loss can go bad in one process only), so all stop at the same step.
    """

    def __init__(self) -> None:
        super().__init__()
        self._batch_idx = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        value = loss.detach()
        # a scalar loss (as automatic optimization needs): one .item(), 0.2-0.8 us, where isfinite(...).all() took
        # 6.6-8.8 us on the CPU (timeit); either one waits for a GPU to compute the loss
        finite = math.isfinite(value.item()) if value.numel() == 1 else bool(torch.isfinite(value).all())
        if trainer.world_size > 1:  # the processes agree, on a SIGTERM too where SigtermCheckpoint runs
            sigterm = next((c for c in trainer.callbacks if isinstance(c, SigtermCheckpoint)), None)
            finite = sigterm.agree(trainer, finite) if sigterm else trainer.strategy.reduce_boolean_decision(finite)
        if finite:
            return
        what = "NaN" if torch.isnan(value).any() else "infinite"
        raise NonFiniteLossError(
            f"the training loss became {what} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {self._batch_idx}); training stopped before this step changed the weights, "
            f"{_last_saved(trainer)}; lower optimizer.lr, add a scheduler warm-up or check the data, in a new "
            "run (hydra.run.dir=<new folder>): a resume keeps the run's settings"
            + (
                ", and model.pretrained=<that checkpoint> starts from its weights"
                if last_checkpoint_path(trainer).is_file() and loads_weights(getattr(pl_module, "net", None))
                else ""
            )
        )


def _last_saved(trainer: L.Trainer) -> str:
    path = last_checkpoint_path(trainer)
    if path.is_file():
        return f"the last good checkpoint is {path}"
    return "no checkpoint was saved yet"
