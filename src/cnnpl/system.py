"""The LightningModule: an image classifier system around any network.

The network, the optimizer and the schedule come in from outside (the network built from the
registry, the optimizer as a partial ``params -> Optimizer``), so the system never names an
architecture and never reads a config.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cnnpl.callbacks.guards import saved_random_state
from cnnpl.distributed import destroy_process_group_at_exit, lr_scale
from cnnpl.errors import CnnplError, yaml_word
from cnnpl.optim import keep_implementation
from cnnpl.viz import test_time_logits

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], Optimizer]
ScheduleFactory = Callable[..., LRScheduler]  # (optimizer, total_steps=...) -> LRScheduler

# the notes' optimizer with Keras' default learning rate; fused: one kernel a tensor (docs/speed.md)
ADAM = partial(Adam, lr=1e-3, fused=True)
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def to_memory_format(net: nn.Module, memory_format: torch.memory_format) -> None:
    """Lay out the 4-D weights in ``memory_format`` (a Conv3d's 5-D weights stay as they are)."""
    for tensor in (*net.parameters(), *net.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=memory_format)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hide_lightning_noise() -> None:
    """Silence two warnings about Lightning's own code, which nothing a user's code or config does can change:

    - torch's ``FutureWarning`` that ``LeafSpec`` is deprecated: Lightning (2.6) builds one whenever it
      flattens a batch, and torch (2.14) warns in every run, pointing at ``lightning/pytorch/utilities/_pytree.py``;
    - the model summary's "Precision bf16-mixed is not supported ... Using 32 bits instead" in every mixed
      precision run: the weights of ``16-mixed`` and ``bf16-mixed`` are float32, so 32 bits is the right size.

    The first filter matches its message from that module only, the second its message.
    :meth:`ImageClassifier.setup` installs them in every process (``ddp_spawn``'s children too).
    """
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    warnings.filterwarnings(
        "ignore",
        message=r"Precision (bf)?16-mixed is not supported by the model summary",
        category=UserWarning,
    )


class ImageClassifier(L.LightningModule):
    """Trains ``net`` (``(N, C, H, W) -> (N, num_classes)`` logits) with cross-entropy.

    Logs ``train/loss_step`` (on the steps Lightning writes to the logger: every
    ``trainer.log_every_n_steps``), ``train/loss_epoch`` and ``train/acc`` (means over the epoch's
    training batches), ``{val,test}/loss`` and ``{val,test}/acc`` (top-1), plus ``val/acc_top5`` and
    ``test/acc_top5`` when there are more than 5 classes. The training sums are plain tensors added
    up each step and logged once per epoch: a ``self.log`` and a metric update every step cost a small
    network several percent of its CPU step (docs/speed.md). ``schedule`` is stepped every optimizer
    step and called as ``schedule(optimizer, total_steps=...)``. ``tta_flip`` evaluates each image
    and its mirror image and averages the logits (validation and test); ``tta_translate`` > 0 also
    evaluates the images shifted by that many pixels up-left and down-right (reflect padding), weighted
    1/2 (unshifted) and 1/4 each (shifted), as airbench does.

    A network may offer two hooks. ``net.init_from_data(images)`` is called once before the first
    training step with ``init_samples`` normalised training images (a data-dependent initialisation,
    e.g. :class:`cnnpl.models.fast_net.PatchWhitening`). ``net.param_groups()`` returns optimizer
    groups (``{"params": [...], ...}``) whose optional ``lr_scale`` and ``weight_decay_scale`` multiply
    the optimizer's settings for that group.

    ``memory_format`` (``contiguous`` or ``channels_last``) sets the layout of the network's weights
    and inputs; ``compile=True`` compiles the network with ``torch.compile`` (in place: checkpoints
    keep their parameter names), ``compile_dynamic`` being its ``dynamic`` (None: torch marks a size
    dynamic once it changes; False: a graph per input shape, which ``cnnpl.train`` chooses for
    progressive resizing, where torch 2.14's dynamic image sides stalled the CPU run for minutes).

    Under DDP (several processes) validation and test metrics are computed over the whole split:
    accuracies and losses are summed over the processes (torchmetrics), so they equal what one
    process computes. ``lr_scaling`` (``none``, ``linear``, ``sqrt``) multiplies the optimizer's
    learning rate by the world size or its square root, before the schedule is built.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory = ADAM,
        schedule: ScheduleFactory | None = None,
        label_smoothing: float = 0.0,
        tta_flip: bool = False,
        lr_scaling: str = "none",
        tta_translate: int = 0,
        init_samples: int = 5000,
        memory_format: str = "contiguous",
        compile: bool = False,
        compile_dynamic: bool | None = None,
    ) -> None:
        super().__init__()
        if not _is_number(label_smoothing) or not 0.0 <= label_smoothing < 1.0:
            raise CnnplError(f"system.label_smoothing must be in [0, 1), got {yaml_word(label_smoothing)}")
        if num_classes < 2:
            raise CnnplError(f"num_classes must be >= 2, got {num_classes}")
        lr_scale(lr_scaling, 1)  # rejects an unknown rule here, not after the processes have started
        if memory_format not in MEMORY_FORMATS:
            raise CnnplError(
                f"system.memory_format must be one of {sorted(MEMORY_FORMATS)}, got {yaml_word(memory_format)}"
            )
        if compile_dynamic is not None and not isinstance(compile_dynamic, bool):
            raise CnnplError(f"system.compile_dynamic must be true, false or null, got {yaml_word(compile_dynamic)}")
        for key, value in (("tta_flip", tta_flip), ("compile", compile)):
            if not isinstance(value, bool):
                raise CnnplError(f"system.{key} must be true or false, got {yaml_word(value)}")
        for key, value, minimum in (("tta_translate", tta_translate, 0), ("init_samples", init_samples, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise CnnplError(f"system.{key} must be an integer >= {minimum}, got {yaml_word(value)}")
        self.save_hyperparameters(ignore=["net", "optimizer", "schedule"])
        self.net = net
        self.optimizer_factory = optimizer
        self.schedule_factory = schedule
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.lr_scaling = lr_scaling
        self.tta_translate = tta_translate
        self.init_samples = init_samples
        self.memory_format = MEMORY_FORMATS[memory_format]
        if memory_format != "contiguous":
            to_memory_format(self.net, self.memory_format)
        if compile:
            self.net.compile(dynamic=compile_dynamic)
        # training loss and accuracy: summed in plain tensors each step (cheap), turned into these
        # batch-size weighted means once per epoch (exact over all processes under DDP)
        self.train_loss = MeanMetric()
        self.train_acc = MeanMetric()
        self._train_sums: torch.Tensor | None = None  # (loss x batch size, correct) in this process
        self._train_count = 0
        self._random_state_restored = False  # this process's random states came from the checkpoint
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # batch-size weighted means whose sums are reduced over processes: exact over the split under DDP
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.top5 = num_classes > 5
        if self.top5:
            self.val_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")
            self.test_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")

    # Lightning sets _current_fx_name before and after every hook it calls, 42 times a training step.
    # nn.Module.__setattr__ first checks whether the value is a parameter, module or buffer (0.97 us
    # a call on a 2-core CPU, 0.18 us through this method: docs/benchmarks.md, fifteenth round);
    # these attributes never hold one.
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_train_sums", "_train_count"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))

    def _predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits, averaged over the test-time augmentations that are switched on."""
        return test_time_logits(self, images, self.tta_flip, self.tta_translate)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            # float32, not float64 (MPS has none): exact counts up to 2**24 images per epoch
            sums = torch.stack((loss.float() * len(labels), (logits.argmax(1) == labels).sum().float()))
            self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_count += len(labels)
        n = self.trainer.log_every_n_steps
        if n > 0 and (self.trainer.global_step + 1) % n == 0:  # the steps Lightning writes to the logger
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    @property
    def train_totals(self) -> tuple[float, float, int]:
        """This epoch's training sums so far in this process: (loss x images, correct predictions, images).

        ``(0.0, 0.0, 0)`` before the epoch's first batch; under DDP each process holds its own share
        until the epoch's end, when they are summed for ``train/loss_epoch`` and ``train/acc``.
        """
        if self._train_sums is None:
            return 0.0, 0.0, 0
        loss_sum, correct = self._train_sums.tolist()
        return loss_sum, correct, self._train_count

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_count = None, 0  # nothing left over from an interrupted fit

    def on_train_epoch_end(self) -> None:
        if self._train_sums is None:  # no training batch this epoch
            return
        loss_sum, correct = self._train_sums
        self.train_loss.update(loss_sum / self._train_count, weight=self._train_count)
        self.train_acc.update(correct / self._train_count, weight=self._train_count)
        self.log("train/loss_epoch", self.train_loss, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_epoch=True, prog_bar=True)

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self._predict(images)
        loss = F.cross_entropy(logits, labels)
        mean_loss = getattr(self, f"{stage}_loss")
        mean_loss(loss, weight=len(labels))
        acc = getattr(self, f"{stage}_acc")
        acc(logits, labels)
        self.log(f"{stage}/loss", mean_loss, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=True)
        if self.top5:
            acc5 = getattr(self, f"{stage}_acc5")
            acc5(logits, labels)
            self.log(f"{stage}/acc_top5", acc5, on_epoch=True)
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test")

    def setup(self, stage: str) -> None:
        hide_lightning_noise()  # runs in every process before its loops, spawned ones included
        if self._trainer is not None:
            destroy_process_group_at_exit(self._trainer.state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        rank = trainer.global_rank if trainer is not None else 0
        self._random_state_restored = saved_random_state(checkpoint, rank) is not None

    def on_train_start(self) -> None:
        trainer = self.trainer
        if trainer.world_size > 1:
            # seed_everything gave every process the same seed: offset it by rank so augmentation
            # and dropout draw different numbers in each process (as on one device, per image). On
            # resume a process whose random states the checkpoint restored (process 0's, with the
            # RandomStateCheckpoint guard) continues them; any other draws a seed no process used
            # before in this run (not its first seed again: it would repeat the first epoch's draws).
            if trainer.global_step == 0:
                torch.manual_seed(torch.initial_seed() + trainer.global_rank)
            elif not self._random_state_restored:
                torch.manual_seed(torch.initial_seed() + trainer.global_rank + trainer.world_size * trainer.global_step)
        init = getattr(self.net, "init_from_data", None)
        if init is not None and self.trainer.global_step == 0:  # not on resume: the weights are restored
            init(self._training_sample(self.init_samples).to(self.device))
            if trainer.world_size > 1 and not self._shares_training_sample():
                # each process's loader shuffled its own shard: process 0's result for all (DDP does not
                # sync what init_from_data sets, e.g. a frozen layer)
                for tensor in self.net.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)

    def _shares_training_sample(self) -> bool:
        """Whether :meth:`_training_sample` comes from a cnnpl data module (the same images everywhere)."""
        datamodule = self.trainer.datamodule
        return hasattr(datamodule, "split") and hasattr(datamodule, "normalize")

    def _training_sample(self, n: int) -> torch.Tensor:
        """The first ``n`` normalised, unaugmented training images (the same in every process)."""
        datamodule = self.trainer.datamodule
        if self._shares_training_sample():
            return datamodule.normalize(datamodule.split("train").images[:n])
        images = []  # any other data: the first training batches as this process's loader gives them
        for batch in self.trainer.train_dataloader:
            images.append(batch[0])
            if sum(map(len, images)) >= n:
                break
        return torch.cat(images)[:n].float()

    def configure_optimizers(self) -> Any:
        groups = self.net.param_groups() if hasattr(self.net, "param_groups") else None
        if groups is None:
            optimizer = self.optimizer_factory(self.parameters())
        else:
            groups = [g for g in groups if g["params"]]
            optimizer = self.optimizer_factory(
                [{k: v for k, v in g.items() if not k.endswith("_scale")} for g in groups]
            )
            spec_of = {id(p): spec for spec in groups for p in spec["params"]}
            for group in optimizer.param_groups:  # an optimizer may split a group (optimizer=muon)
                spec = spec_of.get(id(group["params"][0]), {})  # a group of the optimizer's own: as it is
                group["lr"] *= spec.get("lr_scale", 1.0)
                if "weight_decay" in group:
                    group["weight_decay"] *= spec.get("weight_decay_scale", 1.0)
        factor = lr_scale(self.lr_scaling, self.trainer.world_size)
        if factor != 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= factor
        keep_implementation(optimizer)  # a resume may switch fused on or off (cnnpl.checkpoint)
        if self.schedule_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = self.schedule_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
