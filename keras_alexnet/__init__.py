"""keras_alexnet: the 2012 AlexNet paper in TensorFlow/Keras."""

from keras_alexnet.config import ABLATIONS, AlexNetConfig, ablation
from keras_alexnet.data import DatasetInfo, open_source, prepare_imagenet
from keras_alexnet.evaluate import EvalResult, evaluate, topk_error, write_per_class_csv
from keras_alexnet.layers import ChannelSlice, LocalResponseNormalization
from keras_alexnet.model import AlexNet, build_alexnet
from keras_alexnet.optim import (
    PAPER_LEARNING_RATE,
    PAPER_MOMENTUM,
    PAPER_WEIGHT_DECAY,
    PaperSGD,
)
from keras_alexnet.schedule import PlateauSchedule, PlateauScheduleCallback
from keras_alexnet.train import NonFiniteLossError, TrainResult, train
from keras_alexnet.train_config import PRESETS, TrainConfig, apply_overrides, preset

__all__ = [
    "ABLATIONS",
    "PAPER_LEARNING_RATE",
    "PAPER_MOMENTUM",
    "PAPER_WEIGHT_DECAY",
    "EvalResult",
    "NonFiniteLossError",
    "PRESETS",
    "PaperSGD",
    "PlateauSchedule",
    "PlateauScheduleCallback",
    "TrainConfig",
    "TrainResult",
    "AlexNet",
    "AlexNetConfig",
    "DatasetInfo",
    "ChannelSlice",
    "LocalResponseNormalization",
    "ablation",
    "apply_overrides",
    "build_alexnet",
    "evaluate",
    "open_source",
    "prepare_imagenet",
    "preset",
    "train",
    "topk_error",
    "write_per_class_csv",
]
