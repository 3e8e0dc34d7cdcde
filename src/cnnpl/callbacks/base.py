"""What every cnnpl visualisation callback shares: the schedule, the TensorBoard writer, layer look-up.

A :class:`VisualCallback` checks in ``setup`` (on every rank, so all ranks fail together) that the
trainer has a ``TensorBoardLogger``. It draws only on global rank zero: the other ranks do no extra
work, and nothing here calls a collective, so DDP cannot deadlock on a picture.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from cnnpl import viz
from cnnpl.callbacks.guards import START_PICTURES
from cnnpl.errors import CnnplError, yaml_word


def as_names(value: str | int | Sequence[str | int], key: str, null: str | None = None) -> list[str]:
    """A setting that lists names, as a list: one name alone (``layers=features.block2`` on the command
    line) is a list of one, not of its characters. An integer is a name too (``layers=0``: the child of an
    ``nn.Sequential``, which Hydra reads as a number); anything else is refused, naming ``key``, and so is
    an empty list or name, which would show nothing or what null shows. ``null``: what null means, for a
    setting that takes it."""
    items = [] if value == "" else [value] if isinstance(value, (str, int)) else value  # "": `layers=` on the line
    if not isinstance(items, Sequence):
        raise CnnplError(f"{key} must be a name or a list of names, got {yaml_word(value)}")
    names = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)) or item == "":
            raise CnnplError(f"{key} must be a name or a list of names, got {yaml_word(value)}")
        names.append(str(item))
    if not names:
        callback = key.split(".")[1] if key.startswith("callbacks.") else None
        ways = ["name one or more"] + ([f"give null for {null}"] if null else [])
        ways += [f"leave the callback out with ~callbacks.{callback}"] if callback else []
        last = ", or " if len(ways) > 2 else " or "
        raise CnnplError(f"{key} names nothing (got {yaml_word(value)}): {', '.join(ways[:-1])}{last}{ways[-1]}")
    return names


def one_name(value: str | int, key: str, null: str) -> str:
    """A setting that names one layer (``layer=features.block3``, or ``layer=0``: see :func:`as_names`);
    ``null``: what null means, for the message."""
    if value in ("", []):
        raise CnnplError(f"{key} must be one layer's name, or null for {null}; got {yaml_word(value)}")
    names = as_names(value, key)
    if len(names) != 1:
        raise CnnplError(f"{key} must be one layer's name, got {yaml_word(names)}")
    return names[0]


def no_tensorboard(callback: str, loggers: list[str]) -> str:
    """The refusal of a picture callback (``callbacks.<callback>``) in a run whose ``loggers`` have no TensorBoard."""
    use = "use logger=tensorboard" if loggers else "drop ~logger (the default logger is TensorBoard's)"
    return (
        f"callbacks.{callback} draws to TensorBoard, but the run has no TensorBoardLogger (loggers: "
        f"{', '.join(loggers) or 'none'}); {use}, or callbacks=minimal for no pictures"
    )


class VisualCallback(L.Callback):
    """Base of the picture callbacks: ``every_n_epochs`` scheduling and the TensorBoard writer.

    An epoch ``e`` (0-based) is *due* when ``(e + 1) % every_n_epochs == 0`` or when it is the run's
    planned last: the last of ``trainer.max_epochs``, or the one that reaches ``trainer.max_steps``.
    A callback that draws at epochs' ends implements :meth:`draw`; it runs at each due epoch's end
    and, when training ends after an epoch that was not due (early stopping, ``max_time``), once
    more when training ends, so a run always ends with fresh pictures.
    """

    name = "visual"  # the registry name; error messages use it (a run names them by its config's key)

    def __init__(self, every_n_epochs: int = 1) -> None:
        super().__init__()
        if not isinstance(every_n_epochs, int) or isinstance(every_n_epochs, bool) or every_n_epochs < 1:
            raise CnnplError(
                f"callbacks.{self.name}.every_n_epochs must be an integer >= 1, got {yaml_word(every_n_epochs)}"
            )
        self.every_n_epochs = every_n_epochs
        self._logger: TensorBoardLogger | None = None
        self._epoch_end_step: int | None = None  # the global step of this fit's last epoch end (rank zero)
        self._drawn_step: int | None = None  # and of the last draw()
        self._start_pictures: set[str] = set()  # start_picture() tags the run's TensorBoard folder holds
        self._unrecorded = False  # resumed from a checkpoint older than that record: its run drew them all

    # -- drawing at epochs' ends ----------------------------------------------------------------------
    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log this callback's pictures of the network as it is now (on global rank zero)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._epoch_end_step = trainer.global_step
        if self.due(trainer):
            self.draw(trainer, pl_module)
            self._drawn_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the run stopped after an epoch that was not due: early stopping (which Lightning runs after
        # the other callbacks' on_train_epoch_end), max_time, or a trainer.should_stop of its own
        if trainer.is_global_zero and self._epoch_end_step not in (None, self._drawn_step):
            self.draw(trainer, pl_module)
            self._drawn_step = self._epoch_end_step

    # -- setup --------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._logger = self.tensorboard_logger(trainer)

    def tensorboard_logger(self, trainer: L.Trainer) -> TensorBoardLogger:
        """The trainer's first TensorBoardLogger; a one-line :class:`CnnplError` when it has none.
        ``cnnpl.train`` asks before training, so that under DDP no process starts to find out."""
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers and trainer.fast_dev_run:
            raise CnnplError(
                f"callbacks.{self.name} draws to TensorBoard, but trainer.fast_dev_run replaces the run's loggers "
                "with a DummyLogger; use callbacks=minimal with fast_dev_run"
            )
        if not loggers:
            raise CnnplError(no_tensorboard(self.name, [type(lg).__name__ for lg in trainer.loggers]))
        return loggers[0]

    @property
    def experiment(self) -> Any:
        """The ``torch.utils.tensorboard.SummaryWriter`` of the run (after ``setup``, on rank zero)."""
        if self._logger is None:
            raise RuntimeError(f"{type(self).__name__} has not been set up by a Trainer")
        return self._logger.experiment

    # -- helpers ------------------------------------------------------------------------------------
    def due(self, trainer: L.Trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or self.last_epoch(trainer)

    @staticmethod
    def final_epoch(trainer: L.Trainer, *, complete: bool = False) -> int | None:
        """The index of the run's last epoch as planned by ``trainer.max_epochs`` and ``trainer.max_steps``
        (None: neither limits it). With ``complete``, the last that ``max_steps`` lets finish: Lightning
        validates no epoch that ``max_steps`` cuts short."""
        finals = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            finals.append(trainer.max_epochs - 1)
        max_steps, batches = trainer.max_steps, getattr(trainer, "num_training_batches", math.inf)
        if max_steps is not None and max_steps > 0 and 0 < batches < math.inf:
            steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)  # a last partial group steps too
            epochs = max_steps / steps_per_epoch
            finals.append((math.floor(epochs) if complete else math.ceil(epochs)) - 1)
        return min(finals) if finals else None

    def last_epoch(self, trainer: L.Trainer) -> bool:
        """Whether the current epoch is the run's planned last (``max_epochs``, ``max_steps``)."""
        final = self.final_epoch(trainer)
        if final is not None and trainer.current_epoch >= final:
            return True
        max_steps = trainer.max_steps  # -1: no limit; without a count of batches, the steps taken tell
        return max_steps is not None and max_steps > 0 and trainer.global_step >= max_steps

    @staticmethod
    def new_run(trainer: L.Trainer) -> bool:
        """Whether to draw the start-of-training pictures: on rank zero, in a run that starts from
        scratch (a resumed run logged them when it started, and its last epoch's since)."""
        return trainer.is_global_zero and trainer.global_step == 0

    def start_picture(self, trainer: L.Trainer, tag: str) -> bool:
        """Whether to log ``tag`` now, a picture that does not change with the weights (the input images, the
        kernels demo): on rank zero, in a run from scratch, and in a resumed one whose checkpoint does not
        record it, where the callback was added on the resume; a resume that kept it does not log it again.
        Returns True when the caller is to log it (recorded in the checkpoints from now on)."""
        if not trainer.is_global_zero:
            return False
        drawn = trainer.global_step > 0 and (self._unrecorded or tag in self._start_pictures)
        self._start_pictures.add(tag)
        return not drawn

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._start_pictures:
            logged = checkpoint.setdefault("cnnpl", {}).setdefault(START_PICTURES, [])
            logged.extend(sorted(self._start_pictures - set(logged)))

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("cnnpl") or {}
        self._unrecorded = START_PICTURES not in saved  # an older cnnpl's: every run drew them when it started
        self._start_pictures = set(saved.get(START_PICTURES) or ())

    @staticmethod
    def network(pl_module: L.LightningModule) -> nn.Module:
        """The network inside the system (``pl_module.net`` for cnnpl's ImageClassifier)."""
        net = getattr(pl_module, "net", None)
        return net if isinstance(net, nn.Module) else pl_module

    def check_layers(self, net: nn.Module, names: list[str], what: str = "layers", where: str | None = None) -> None:
        """Refuse names ``net`` has no layer of; ``where``: what the message blames, if not the setting ``what``
        (the feature maps of a model's ``stages``, which no setting gave)."""
        for name in names:
            try:
                viz.find_layer(net, name)
            except CnnplError as err:
                raise CnnplError(f"{where or f'callbacks.{self.name}.{what}'}: {err}") from None

    @staticmethod
    def input_shape(trainer: L.Trainer) -> tuple[int, int, int] | None:
        """``(channels, height, width)`` of the data module's images; None for one that is not cnnpl's."""
        dm = trainer.datamodule
        channels, size = getattr(dm, "in_channels", None), getattr(dm, "input_size", None)
        return None if channels is None or size is None else (channels, *size)

    def check_maps(
        self,
        net: nn.Module,
        names: list[str],
        input_shape: tuple[int, int, int] | None,
        what: str = "layers",
        where: str | None = None,
    ) -> None:
        """Refuse layers that the forward pass skips or whose output is not ``(N, C, h, w)`` maps, rather than
        when the first picture is due: one blank image of ``input_shape`` goes through ``net`` (eval mode, no
        gradients, the random state untouched). ``cnnpl.train`` asks before the Trainer exists
        (``check_network``); ``setup`` asks again, for a Trainer of one's own. None: nothing to check with."""
        if input_shape is None:  # not a cnnpl data module: the pictures will tell
            return
        channels, *size = input_shape
        param = next(net.parameters(), None)
        blank = torch.zeros(1, channels, *size, device=param.device if param is not None else "cpu")
        try:
            with torch.random.fork_rng(devices=[]):
                maps = viz.feature_maps(net, blank, names)
        except CnnplError as err:
            raise CnnplError(f"{where or f'callbacks.{self.name}.{what}'}: {err}") from None
        for name, output in maps.items():
            if output.dim() != 4:
                raise CnnplError(
                    f"{where or f'callbacks.{self.name}.{what}'}: {name!r} outputs {_shape(output)}, not (N, C, h, w) "
                    "maps; name a conv layer or block"
                )


def _shape(output: torch.Tensor) -> str:
    return "(N, " + ", ".join(str(n) for n in output.shape[1:]) + ")"


class ImageSampleCallback(VisualCallback):
    """A :class:`VisualCallback` that shows a fixed set of validation images (test images in a run
    without a validation split, :func:`cnnpl.viz.pick_split`).

    In ``setup`` it picks ``num_images`` images of that split with
    :func:`cnnpl.viz.pick_images` (one per class in turn, the same every epoch and every run with the
    same split) and keeps them normalised with ``datamodule.normalize``.
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 4) -> None:
        super().__init__(every_n_epochs)
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise CnnplError(f"callbacks.{self.name}.num_images must be an integer >= 1, got {yaml_word(num_images)}")
        self.num_images = num_images
        self.images = torch.empty(0)  # normalised (N, C, H, W)
        self.pixels = torch.empty(0)  # the same images in [0, 1], for display
        self.labels = torch.empty(0, dtype=torch.long)
        self.class_names: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        dm = trainer.datamodule
        if dm is None or not all(hasattr(dm, a) for a in ("split", "normalize")):
            raise CnnplError(
                f"callbacks.{self.name} needs a cnnpl data module (with split() and normalize()); "
                f"got {type(dm).__name__ if dm is not None else 'no data module'}"
            )
        if not trainer.is_global_zero or len(self.images):
            return
        # val_split=0: the test split, as python -m cnnpl.render draws it (training images may be stored
        # mirrored, data.flip=alternate, and are the ones the network fits)
        name = viz.pick_split(dm)
        split = dm.split(name)
        index = viz.pick_images(split.labels, self.num_images)
        if len(index) < self.num_images:  # helper-139: 100 asked, 40 drawn, without a word
            warnings.warn(
                f"callbacks.{self.name}.num_images={self.num_images}, but the {name} split holds {len(index)} "
                f"images: it shows those {len(index)}",
                stacklevel=2,
            )
        uint8 = split.images[index]
        self.images = dm.normalize(uint8)
        self.pixels = uint8.float() / 255
        self.labels = split.labels[index]
        self.class_names = list(getattr(dm, "class_names", [])) or [str(i) for i in range(int(split.labels.max()) + 1)]
