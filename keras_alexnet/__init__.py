"""keras_alexnet: the 2012 AlexNet paper in TensorFlow/Keras.

Importing the package loads neither Keras nor TensorFlow (Keras on its TensorFlow backend
imports TensorFlow, seconds of start-up): the names below import their module on first use
(PEP 562), so a script can parse and check its flags first. The network and its optimizer
(layers, model, optim) are written with keras.ops and run on any Keras backend; data,
training and evaluation use tf.data / tf.function and need TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from keras_alexnet.config import ABLATIONS, AlexNetConfig, ablation

# Exported name -> the module defining it, imported on first access.
_LAZY = {
    "ChannelSlice": "keras_alexnet.layers",
    "LocalResponseNormalization": "keras_alexnet.layers",
    "AlexNet": "keras_alexnet.model",
    "build_alexnet": "keras_alexnet.model",
    "import_caffe": "keras_alexnet.caffe_import",
    "PAPER_LEARNING_RATE": "keras_alexnet.optim",
    "PAPER_MOMENTUM": "keras_alexnet.optim",
    "PAPER_WEIGHT_DECAY": "keras_alexnet.optim",
    "PaperSGD": "keras_alexnet.optim",
    "DatasetInfo": "keras_alexnet.data",
    "open_source": "keras_alexnet.data",
    "prepare_imagenet": "keras_alexnet.data",
    "EvalResult": "keras_alexnet.evaluate",
    "evaluate": "keras_alexnet.evaluate",
    "topk_error": "keras_alexnet.evaluate",
    "write_per_class_csv": "keras_alexnet.evaluate",
    "PlateauSchedule": "keras_alexnet.schedule",
    "PlateauScheduleCallback": "keras_alexnet.schedule",
    "NonFiniteLossError": "keras_alexnet.train",
    "TrainResult": "keras_alexnet.train",
    "train": "keras_alexnet.train",
    "PRESETS": "keras_alexnet.presets",
    "TrainConfig": "keras_alexnet.train_config",
    "apply_overrides": "keras_alexnet.overrides",
    "preset": "keras_alexnet.presets",
}

# The TensorFlow-only names are exported where TensorFlow is installed: on a JAX- or
# PyTorch-only machine `from keras_alexnet import *` still imports the portable part.
_PORTABLE = ("keras_alexnet.caffe_import", "keras_alexnet.layers", "keras_alexnet.model",
             "keras_alexnet.optim")
_HAVE_TF = importlib.util.find_spec("tensorflow") is not None
__all__ = ["ABLATIONS", "AlexNetConfig", "ablation"]
__all__ += sorted(n for n, m in _LAZY.items() if _HAVE_TF or m in _PORTABLE)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_alexnet' has no attribute {name!r}")
    if not (_HAVE_TF or module in _PORTABLE):
        raise AttributeError(f"keras_alexnet.{name} needs TensorFlow (pip install "
                             "tensorflow); without it only the portable model is exported")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """Keeps `keras_alexnet.train` and `.evaluate` the functions, as they were when eager.

    Importing a submodule binds it on its package under its name; for the two modules named
    after their function this binds the function instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__
                and hasattr(value, name)):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
