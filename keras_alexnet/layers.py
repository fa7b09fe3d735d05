"""Custom layers: local response normalisation (Section 3.3), a channel slice, and the locally
connected layer of the paper's CIFAR-10 networks (cuda-convnet's `local`)."""

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


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocallyConnected2D(keras.layers.Layer):
    """A convolution whose filters are not shared: every output position has its own.

    cuda-convnet's `type=local` layer, which the networks behind Section 3.3's CIFAR-10 figures
    use (Keras 3 has no such layer). Zero `padding` on every side, then at each of the
    (H + 2p - k) // s + 1 output rows and columns its own k x k x C x filters kernel and its
    own biases (cuda-convnet's local layers have no shared biases).

    Weights: `kernel` (out_h, out_w, k * k * C, filters), each position's window flattened in
    (row, column, channel) order; `bias` (out_h, out_w, filters).

    Args:
      filters: output channels.
      kernel_size: k of the square window.
      strides: s, the step between windows.
      padding: zeros added on every side (cuda-convnet's `padding`).
      activation, kernel_initializer, bias_initializer: as in `keras.layers.Conv2D`.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding: int = 0,
                 activation: Any = None, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value, least in (("filters", filters, 1), ("kernel_size", kernel_size, 1),
                                   ("strides", strides, 1), ("padding", padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"LocallyConnected2D {name}={value!r} must be an integer "
                                 f">= {least}.")
        self.filters, self.kernel_size = filters, kernel_size
        self.strides, self.padding = strides, padding
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _output_size(self, size: int) -> int:
        out = (size + 2 * self.padding - self.kernel_size) // self.strides + 1
        if out < 1:
            raise ValueError(f"LocallyConnected2D: a {size}-pixel input with padding "
                             f"{self.padding} is smaller than the {self.kernel_size}-pixel "
                             "window.")
        return out

    def build(self, input_shape: tuple) -> None:
        rows, cols = (self._output_size(n) for n in input_shape[1:3])
        window = self.kernel_size * self.kernel_size * input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(rows, cols, window, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(rows, cols, self.filters),
                                    initializer=self.bias_initializer)

    def call(self, inputs):
        p, k, s = self.padding, self.kernel_size, self.strides
        x = ops.pad(inputs, [(0, 0), (p, p), (p, p), (0, 0)]) if p else inputs
        rows, cols = self.kernel.shape[0], self.kernel.shape[1]
        # Each position's window as one vector, (row, column, channel) order: k * k shifted
        # views of the padded input, concatenated on the channel axis.
        windows = ops.concatenate(
            [x[:, i:i + s * (rows - 1) + 1:s, j:j + s * (cols - 1) + 1:s, :]
             for i in range(k) for j in range(k)], axis=-1)
        out = ops.einsum("bhwk,hwkf->bhwf", windows, ops.cast(self.kernel, windows.dtype))
        return self.activation(out + ops.cast(self.bias, out.dtype))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        rows, cols = (self._output_size(n) for n in input_shape[1:3])
        return (input_shape[0], rows, cols, self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
