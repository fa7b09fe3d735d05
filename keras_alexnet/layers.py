"""Custom layers of the network: local response normalisation (Section 3.3) and a channel slice."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
from keras import ops

from keras_alexnet.config import AlexNetConfig

# Section 3.3's constants live in AlexNetConfig; the layer's defaults are read from there.
_PAPER = AlexNetConfig()
_PORTABLE = threading.local()
# Values per image (H*W*C) from which the TF backend runs LRN through XLA. Compiling costs
# ~0.4 s per input shape (measured), which small maps (test and demo-size networks: a few
# thousand values) never earn back; the paper's maps (55*55*48 and 27*27*128 per tower) save
# 0.1-0.3 s on every training step at batch 128 (docs/PERFORMANCE.md).
XLA_MIN_VALUES = 32768


@contextlib.contextmanager
def portable_lrn() -> Iterator[None]:
    """LRN layers traced inside the block use TF's own LRN kernel instead of XLA.

    For graphs that leave this process (SavedModels): TF Serving runs XLA-compiled
    functions only with `--xla_cpu_compilation_enabled`, which is off by default.
    """
    previous = getattr(_PORTABLE, "on", False)
    _PORTABLE.on = True
    try:
        yield
    finally:
        _PORTABLE.on = previous


def _window_sum(v, r: int):
    """Sum over channels i-r..i+r of a channels-last tensor, clipped to the existing ones."""
    channels = v.shape[-1]
    padded = ops.pad(v, [(0, 0), (0, 0), (0, 0), (r, r)])
    return sum(padded[..., i : i + channels] for i in range(2 * r + 1))


def _inverse_power(d, beta: float):
    """d ** -beta; the paper's 0.75 as rsqrt(d) * sqrt(rsqrt(d)), ~1.8x faster than pow in XLA."""
    import tensorflow as tf

    if beta == 0.75:
        r = tf.math.rsqrt(d)
        return r * tf.sqrt(r)
    if beta == 0.5:
        return tf.math.rsqrt(d)
    return tf.pow(d, -beta)


@functools.cache
def _xla_lrn(depth_radius: int, bias: float, alpha: float, beta: float) -> Callable:
    """TF-backend LRN as two XLA-compiled loops: the forward pass and its explicit gradient.

    TF's own CPU kernels took ~2.5x longer for forward + backward at the paper's shapes (the
    forward is hundreds of small band-matrix sgemm calls, then the power; the gradient a
    separate `LRNGrad` kernel), and under mixed_bfloat16 need float32 casts around them; here
    the casts, the window sums and the power fuse into one pass over the tensor each way
    (docs/PERFORMANCE.md, experiment `lrn-xla`). Statistics are float32 whatever the input's dtype.
    """
    import tensorflow as tf

    def scale(x32):  # d = bias + alpha * window_sum(x^2)
        return bias + alpha * _window_sum(tf.square(x32), depth_radius)

    @tf.function(jit_compile=True, autograph=False)
    def forward(x):
        x32 = tf.cast(x, tf.float32)
        return tf.cast(x32 * _inverse_power(scale(x32), beta), x.dtype)

    @tf.function(jit_compile=True, autograph=False)
    def backward(x, dy):
        # y_i = x_i d_i^-beta, d_i = bias + alpha sum_{j in W(i)} x_j^2, W symmetric, so
        # dL/dx_j = g_j d_j^-beta - 2 alpha beta x_j sum_{i in W(j)} g_i x_i d_i^-beta / d_i.
        x32, g = tf.cast(x, tf.float32), tf.cast(dy, tf.float32)
        d = scale(x32)
        p = _inverse_power(d, beta)
        dx = g * p - (2.0 * alpha * beta) * x32 * _window_sum(g * x32 * p / d, depth_radius)
        return tf.cast(dx, x.dtype)

    @tf.custom_gradient
    def lrn(x):
        return forward(x), lambda dy: backward(x, dy)

    return lrn


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(keras.layers.Layer):
    """Brightness normalisation across adjacent channels (Section 3.3).

    b_i = a_i / (bias + alpha * sum_{j=i-r}^{i+r} a_j^2) ** beta, the sum clipped to the existing
    channels. With depth_radius=2 (n=5), bias=2, alpha=1e-4, beta=0.75 this is the paper's layer.
    alpha is NOT divided by n: that is TF's convention and the paper's formula (Caffe and PyTorch
    divide it by n, so their alpha must be 5x larger for the same layer).

    The sums and the power are computed in float32 whatever the layer's dtype policy (a
    bfloat16 input is cast inside), so under mixed_bfloat16 only the input and output are
    bfloat16. On the TensorFlow backend the layer runs as XLA-compiled forward and gradient
    functions (`_xla_lrn`) for maps of at least `XLA_MIN_VALUES` values per image, otherwise
    (and inside `portable_lrn()`) as TF's `local_response_normalization` kernel; on other
    backends as an equivalent `keras.ops` computation.
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
        constants = (self.depth_radius, self.bias, self.alpha, self.beta)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            values = math.prod(d or 0 for d in inputs.shape[1:])
            if values >= XLA_MIN_VALUES and not getattr(_PORTABLE, "on", False):
                return _xla_lrn(*constants)(inputs)
            x32 = tf.nn.local_response_normalization(tf.cast(inputs, tf.float32), *constants)
            return tf.cast(x32, inputs.dtype)
        x32 = ops.cast(inputs, "float32")
        window = _window_sum(ops.square(x32), self.depth_radius)
        return ops.cast(x32 / ops.power(self.bias + self.alpha * window, self.beta), inputs.dtype)

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
