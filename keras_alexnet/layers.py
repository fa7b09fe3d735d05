"""Custom layers of the network: local response normalisation (Section 3.3) and a channel slice."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_alexnet.config import AlexNetConfig

# Section 3.3's constants live in AlexNetConfig; the layer's defaults are read from there.
_PAPER = AlexNetConfig()


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(keras.layers.Layer):
    """Brightness normalisation across adjacent channels (Section 3.3).

    b_i = a_i / (bias + alpha * sum_{j=i-r}^{i+r} a_j^2) ** beta, the sum clipped to the existing
    channels. With depth_radius=2 (n=5), bias=2, alpha=1e-4, beta=0.75 this is the paper's layer.
    alpha is NOT divided by n: that is TF's convention and the paper's formula (Caffe and PyTorch
    divide it by n, so their alpha must be 5x larger for the same layer).

    On the TensorFlow backend this calls `tf.nn.local_response_normalization`; on other backends
    an equivalent `keras.ops` computation.
    """

    def __init__(
        self,
        depth_radius: int = _PAPER.lrn_depth_radius,
        bias: float = _PAPER.lrn_bias,
        alpha: float = _PAPER.lrn_alpha,
        beta: float = _PAPER.lrn_beta,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(depth_radius) != depth_radius or depth_radius < 0:
            raise ValueError(f"depth_radius={depth_radius!r} must be a non-negative integer.")
        if bias <= 0 or alpha < 0 or beta < 0:
            raise ValueError(
                f"LRN constants bias={bias}, alpha={alpha}, beta={beta} must be bias > 0, "
                "alpha >= 0, beta >= 0."
            )
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.name} expects 4-D (batch, height, width, channels) input, got shape "
                f"{tuple(input_shape)}."
            )

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.nn.local_response_normalization(
                inputs,
                depth_radius=self.depth_radius,
                bias=self.bias,
                alpha=self.alpha,
                beta=self.beta,
            )
        r = self.depth_radius
        squared = ops.square(inputs)
        padded = ops.pad(squared, [(0, 0), (0, 0), (0, 0), (r, r)])
        channels = ops.shape(inputs)[-1]
        window = sum(padded[..., i : i + channels] for i in range(2 * r + 1))
        return inputs / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


@keras.saving.register_keras_serializable(package="keras_alexnet")
class ChannelSlice(keras.layers.Layer):
    """Channels [start, stop) of a channels-last tensor: hands a tower its share of a shared map."""

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError(f"ChannelSlice needs 0 <= start < stop, got {start}, {stop}.")
        self.start = int(start)
        self.stop = int(stop)

    def call(self, inputs):
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "start": self.start, "stop": self.stop}
