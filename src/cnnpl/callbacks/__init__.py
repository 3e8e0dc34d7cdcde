"""TensorBoard visualisation callbacks; importing this package registers them under ``callback``.

Registry names: ``filters``, ``feature_maps``, ``kernels_demo``, ``confusion_matrix``,
``per_class_accuracy``, ``misclassified``, ``pr_curves``, ``gradcam``, ``histograms``, ``embedding``,
``hparams``; and for the fast recipe ``lookahead`` (weight averaging) and ``freeze`` (freeze parameters
after N epochs). The pictures come from :mod:`cnnpl.viz`; the callbacks schedule them (every N epochs)
and log them from global rank zero. :class:`ModelCheckpoint` (``callbacks.checkpoint`` in the configs,
not registered) is Lightning's, with ``last.ckpt`` written at every epoch's end.
``conf/callbacks/{default,minimal,full}.yaml`` select sets.
"""

from cnnpl.callbacks.averaging import Lookahead
from cnnpl.callbacks.base import ImageSampleCallback, VisualCallback
from cnnpl.callbacks.checkpoint import ModelCheckpoint
from cnnpl.callbacks.diagnostics import (
    ConfusionMatrixCallback,
    MisclassifiedCallback,
    PerClassAccuracyCallback,
    PRCurvesCallback,
    ValidationPredictionsCallback,
)
from cnnpl.callbacks.embedding import EmbeddingCallback
from cnnpl.callbacks.feature_maps import FeatureMapsCallback
from cnnpl.callbacks.filters import FiltersCallback
from cnnpl.callbacks.freeze import FreezeAfter
from cnnpl.callbacks.gradcam import GradCAMCallback
from cnnpl.callbacks.histograms import HistogramsCallback
from cnnpl.callbacks.hparams import HParamsCallback
from cnnpl.callbacks.kernels_demo import KernelsDemoCallback

__all__ = [
    "ConfusionMatrixCallback",
    "EmbeddingCallback",
    "FeatureMapsCallback",
    "FiltersCallback",
    "FreezeAfter",
    "GradCAMCallback",
    "HParamsCallback",
    "HistogramsCallback",
    "ImageSampleCallback",
    "KernelsDemoCallback",
    "Lookahead",
    "MisclassifiedCallback",
    "ModelCheckpoint",
    "PRCurvesCallback",
    "PerClassAccuracyCallback",
    "ValidationPredictionsCallback",
    "VisualCallback",
]
