"""keras_alexnet: the 2012 AlexNet paper in TensorFlow/Keras."""

import importlib.util

# The network and its optimizer are written with keras.ops and run on any Keras backend.
from keras_alexnet.caffe import import_caffe
from keras_alexnet.config import ABLATIONS, AlexNetConfig, ablation
from keras_alexnet.layers import ChannelSlice, LocalResponseNormalization
from keras_alexnet.model import AlexNet, build_alexnet
from keras_alexnet.optim import (
    PAPER_LEARNING_RATE,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    PaperSGD,
)

__all__ = [
    "ABLATIONS",
    "PAPER_LEARNING_RATE",
    "PAPER_MOMENTUM",
    "PAPER_WEIGHT_DECAY",
    "AlexNet",
    "AlexNetConfig",
    "ChannelSlice",
    "LocalResponseNormalization",
    "PaperSGD",
    "ablation",
    "build_alexnet",
    "import_caffe",
]

# Data, training and evaluation use tf.data / tf.function. Where TensorFlow is not installed
# (a JAX- or PyTorch-only machine) the portable part above still imports.
if importlib.util.find_spec("tensorflow") is not None:
    from keras_alexnet.data import DatasetInfo, open_source, prepare_imagenet
    from keras_alexnet.evaluate import EvalResult, evaluate, topk_error, write_per_class_csv
    from keras_alexnet.schedule import PlateauSchedule, PlateauScheduleCallback
    from keras_alexnet.train import NonFiniteLossError, TrainResult, train
    from keras_alexnet.train_config import PRESETS, TrainConfig, apply_overrides, preset

    __all__ += [
        "PRESETS",
        "DatasetInfo",
        "EvalResult",
        "NonFiniteLossError",
        "PlateauSchedule",
        "PlateauScheduleCallback",
        "TrainConfig",
        "TrainResult",
        "apply_overrides",
        "evaluate",
        "open_source",
        "prepare_imagenet",
        "preset",
        "topk_error",
        "train",
        "write_per_class_csv",
    ]
