"""The CIFAR-10 networks behind Section 3.3's 13% / 11% test error (footnote 3).

The paper's footnote defers to cuda-convnet's code and parameter files; the pair that matches
13% without and 11% with normalisation is `layers-conv-local-13pct.cfg` /
`layers-conv-local-11pct.cfg` with their `layer-params-*.cfg` (public copies: the repository
dnouri/cuda-convnet, folder example-layers/). Built here as those files say:

  conv1 (64 5x5, pad 2, ReLU, N(0, 1e-4)) -> [rnorm1] -> pool1 (max 3x3, stride 2)
  conv2 (64 5x5, pad 2, ReLU, N(0, 0.01)) -> [rnorm2] -> pool2 (max 3x3, stride 2)
  local3, local4 (32 3x3, pad 1, unshared, ReLU, N(0, 0.04)) -> fc10 (N(0, 0.01)) -> softmax

Biases start at 0 (cuda-convnet's default). The normalisation is cuda-convnet's cross-map
`rnorm`: its parser divides `scale` by `size` and its kernel adds 1, so
x / (1 + (0.001 / 5) * sum of x^2 over 5 adjacent maps)^0.75: our LocalResponseNormalization
with bias 1, alpha 2e-4 (TF's convention: alpha is not divided by the window). Pooling:
cuda-convnet's output size rounds up at the edge (ceil((size - 3) / 2) + 1: 24 -> 12 -> 6),
its last window hanging over the border; Keras' max pooling with "same" padding gives the
same windows (they start at 0 and the overhang is padded with -inf, i.e. ignored).
"""

from __future__ import annotations

import keras

from keras_alexnet.layers import LocallyConnected2D, LocalResponseNormalization

# cuda-convnet's CIFAR data provider: random 24x24 crops of the 32x32 images (and flips).
INPUT_SIZE = 24
# rnorm: size=5, scale=0.001, pow=0.75; the parser's scale / size, the kernel's 1 + ...
NORM_SIZE, NORM_SCALE, NORM_POW = 5, 0.001, 0.75
# layer-params-conv-local-11pct.cfg (the 13pct file's are the same): epsW, epsB = 2 * epsW,
# momW = momB, wc per layer (0 on conv1 and conv2, 0.004 on local3, local4 and fc10).
LEARNING_RATE = 0.001
MOMENTUM = 0.9
WEIGHT_DECAY = 0.004
LEARNING_RATE_MULTIPLIERS = (("*/bias", 2.0),)
WEIGHT_DECAYS = (("*/bias", 0.0), ("conv*", 0.0))


def normalization(name: str) -> LocalResponseNormalization:
    """cuda-convnet's cross-map response normalisation as our layer."""
    return LocalResponseNormalization(depth_radius=NORM_SIZE // 2, bias=1.0,
                                      alpha=NORM_SCALE / NORM_SIZE, beta=NORM_POW, name=name)


def build_conv_local(num_classes: int = 10, input_size: int = INPUT_SIZE, *,
                     normalize: bool = True,
                     classifier_activation: str | None = None) -> keras.Model:
    """layers-conv-local-11pct.cfg (normalize=True) or -13pct.cfg (False).

    Args:
      num_classes: units of fc10.
      input_size: S of the [S, S, 3] input (cuda-convnet's CIFAR crops: 24).
      normalize: the rnorm layers after conv1 and conv2.
      classifier_activation: None (logits, as trained) or "softmax".
    """
    gauss = keras.initializers.RandomNormal
    x = inputs = keras.Input((input_size, input_size, 3), name="images")
    for i, std in ((1, 1e-4), (2, 1e-2)):
        x = keras.layers.Conv2D(64, 5, padding="same", activation="relu",
                                kernel_initializer=gauss(0.0, std), name=f"conv{i}")(x)
        if normalize:
            x = normalization(f"rnorm{i}")(x)
        x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"pool{i}")(x)
    for i in (3, 4):
        x = LocallyConnected2D(32, 3, padding=1, activation="relu",
                               kernel_initializer=gauss(0.0, 0.04), name=f"local{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_classes, activation=classifier_activation,
                                 kernel_initializer=gauss(0.0, 0.01), name="fc10")(x)
    name = "conv_local_11pct" if normalize else "conv_local_13pct"
    return keras.Model(inputs, outputs, name=name)
