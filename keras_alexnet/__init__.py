"""keras_alexnet: the 2012 AlexNet paper in TensorFlow/Keras."""

from keras_alexnet.config import ABLATIONS, AlexNetConfig, ablation
from keras_alexnet.layers import ChannelSlice, LocalResponseNormalization
from keras_alexnet.model import AlexNet, build_alexnet

__all__ = [
    "ABLATIONS",
    "AlexNet",
    "AlexNetConfig",
    "ChannelSlice",
    "LocalResponseNormalization",
    "ablation",
    "build_alexnet",
]
