"""Loading pretrained weights from a local file into a cnnpl network, and freezing its features.

Architectures whose layer layout matches torchvision's (``vgg16``, ``vgg19``, ``resnet18``,
``resnet50``, ``inception_v3``) use torchvision's module names, so a torchvision state dict saved
with ``torch.save(model.state_dict(), path)`` loads as it is: ``model.pretrained=/path/weights.pth``.

An architecture tells the loader two things about itself:

- ``head_prefixes``: the state-dict prefixes of its classifier. Head tensors whose shapes differ
  from the file's (another number of classes, a small-input head) keep their fresh initialisation
  when ``new_head`` is ``None`` (the default) or ``True``; ``new_head=True`` starts a fresh head even
  when it would fit; ``new_head=False`` demands that the file's head fits.
- ``pretrained_ignore`` (optional): prefixes of tensors in the file the network does not have on
  purpose (Inception's auxiliary classifier when ``aux_logits=False``).

Everything else must match exactly: a missing, unexpected or differently shaped tensor raises
:class:`~cnnpl.errors.CnnplError` naming the first offending keys. Files are read with
``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnpl.errors import CnnplError, first_few

SHOWN = 3  # offending keys named in an error message
NETWORK_PREFIX = "net."  # where a cnnpl checkpoint's state dict keeps the network's tensors
EXTRA_STATE = "_extra_state"  # a module's get_extra_state() in a state dict (a lazy conv's input size): no tensor

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did: tensors loaded, head tensors left fresh, tensors frozen."""

    loaded: list[str] = field(default_factory=list)
    fresh_head: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    head_fits: bool = False  # the file's head has the model's shapes (new_head=true left it out all the same)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors in ``path``: a plain state dict, or a dict holding one under ``"state_dict"``; of a
    ``python -m cnnpl`` checkpoint (a Lightning one), its network's, without the ``net.`` prefix."""
    file = Path(path).expanduser()
    if not file.exists():  # a folder: safe_load says so
        raise CnnplError(f"pretrained weights file {str(file)!r} does not exist; set model.pretrained to a .pth file")
    from cnnpl.checkpoint import safe_load

    state = safe_load(file, what="pretrained weights")  # a corrupt file or one that needs pickled code: one line
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
        if any(str(key).startswith(NETWORK_PREFIX) for key in state):  # ImageClassifier keeps its network as .net
            state = {key[len(NETWORK_PREFIX) :]: v for key, v in state.items() if key.startswith(NETWORK_PREFIX)}
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) or str(k).endswith(EXTRA_STATE) for k, v in state.items()
    ):
        raise CnnplError(
            f"pretrained weights {str(file)!r} are not a state dict (name -> tensor); save one with "
            "torch.save(model.state_dict(), path)"
        )
    return dict(state)


def _shape(value: object) -> tuple[int, ...] | None:
    """A tensor's shape; None for a module's extra state (no tensor)."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key.startswith(p) for p in prefixes)


def _names(keys: Sequence[str]) -> str:
    return first_few(keys, SHOWN)


def _imagenet_stem(state: Mapping[str, Any], own: Mapping[str, Any]) -> bool:
    """Whether a filter bank of the file has the ImageNet stems' 7x7 kernels where the model's has another size
    (torchvision's ResNet ``conv1``; the CIFAR stem's is 3x3)."""
    return any(
        isinstance(v, torch.Tensor)
        and v.dim() == 4
        and tuple(v.shape[-2:]) == (7, 7)
        and isinstance(own.get(k), torch.Tensor)
        and tuple(own[k].shape[-2:]) != (7, 7)
        for k, v in state.items()
    )


def load_pretrained(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor],
    *,
    new_head: bool | None = None,
    freeze_features: bool = False,
) -> LoadReport:
    """Copy the tensors of ``source`` (a file or a state dict) into ``model``; see the module docstring.

    With ``freeze_features`` every parameter outside the head stops receiving gradients (batch-norm
    running statistics still update in training mode, as in torchvision's fine-tuning recipe).
    Raises :class:`CnnplError` on any mismatch outside the head, naming the first keys.
    """
    what = type(model).__name__
    state = read_state_dict(source) if isinstance(source, (str, Path)) else dict(source)
    head: tuple[str, ...] = tuple(getattr(model, "head_prefixes", ()))
    ignore: tuple[str, ...] = tuple(getattr(model, "pretrained_ignore", ()))
    own = model.state_dict()

    missing = [k for k in own if k not in state and not _under(k, head)]
    unexpected = [k for k in state if k not in own and not _under(k, head) and not _under(k, ignore)]
    mismatched = [
        f"{k} (file {_shape(state[k])}, model {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and isinstance(v, torch.Tensor) and _shape(state[k]) != v.shape and not _under(k, head)
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} with another shape: {_names(mismatched)}")
    if missing:
        problems.append(f"{len(missing)} missing from the file: {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} the model does not have: {_names(unexpected)}")
    head_keys = [k for k in own if _under(k, head)]
    head_fits = all(k in state and _shape(state[k]) == _shape(own[k]) for k in head_keys)
    if new_head is False and not head_fits:
        bad = [k for k in head_keys if k not in state or _shape(state[k]) != _shape(own[k])]
        problems.append(
            f"the classifier head does not fit ({_names(bad)}); set model.new_head=true (or null) to train a new one"
        )
    if problems:
        hint = ""
        if getattr(model, "stem", None) == "cifar" and _imagenet_stem(state, own):
            hint = "; the model has the CIFAR stem (model.stem=cifar): ImageNet weights need model.stem=imagenet"
        raise CnnplError(f"pretrained weights do not fit {what}: " + "; ".join(problems) + hint)

    report = LoadReport(head_fits=bool(head_keys) and head_fits)
    take_head = new_head is False or (new_head is None and head_fits)
    updated = {}
    for key in own:
        if _under(key, head) and not take_head:
            report.fresh_head.append(key)
            continue
        updated[key] = state[key]
        report.loaded.append(key)
    model.load_state_dict(updated, strict=False)

    if freeze_features:
        for name, param in model.named_parameters():
            if not _under(name, head):
                param.requires_grad_(False)
                report.frozen.append(name)
    return report


def apply_pretrained(
    model: nn.Module, pretrained: str | None, *, new_head: bool | None = None, freeze_features: bool = False
) -> LoadReport | None:
    """What an architecture's constructor calls last: load ``pretrained`` if given, freeze if asked."""
    from cnnpl.distributed import is_worker

    if pretrained is None:
        if freeze_features:
            raise CnnplError("model.freeze_features=true needs model.pretrained=/path/to/weights.pth")
        if new_head:  # experiment=finetune_vgg16 sets it: fine-tuning random weights would look like a result
            raise CnnplError(
                "model.new_head=true replaces the classifier of pretrained weights, but model.pretrained is null; "
                "give model.pretrained=/path/to/weights.pth, or model.new_head=null to train from scratch"
            )
        return None
    report = load_pretrained(model, pretrained, new_head=new_head, freeze_features=freeze_features)
    log.info(
        "%s: loaded %d tensors from %s; new head: %s; frozen parameters: %d",
        type(model).__name__,
        len(report.loaded),
        pretrained,
        ", ".join(report.fresh_head) or "none",
        len(report.frozen),
    )
    if new_head and report.head_fits and str(pretrained).endswith(".ckpt") and not is_worker():
        log.warning(
            "%s: model.new_head=true gave it a fresh classifier, though the one in %s fits (a trained head, as a "
            "first fine-tuning stage leaves): give model.new_head=null to keep it",
            type(model).__name__,
            pretrained,
        )
    return report
