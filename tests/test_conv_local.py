"""Section 3.3's CIFAR-10 networks (cuda-convnet's conv-local pair): the locally connected
layer and cuda-convnet's normalisation against NumPy, the network's shapes, and PaperSGD's
per-variable rates and decays against the update rule in NumPy."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.claims import conv_local
from keras_alexnet.layers import LocallyConnected2D
from keras_alexnet.optim import PaperSGD


def numpy_local(x, kernel, bias, k, stride, pad):
    """cuda-convnet's unshared convolution, one output position at a time."""
    x = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    rows, cols, _, filters = kernel.shape
    out = np.zeros((x.shape[0], rows, cols, filters))
    w = kernel.reshape(rows, cols, k, k, x.shape[-1], filters)
    for i in range(rows):
        for j in range(cols):
            window = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j] = np.einsum("brcx,rcxf->bf", window, w[i, j]) + bias[i, j]
    return out


@pytest.mark.parametrize("size, k, stride, pad", [(6, 3, 1, 1), (7, 3, 2, 0), (5, 2, 1, 0)])
def test_locally_connected_matches_numpy_forward_and_gradient(size, k, stride, pad):
    rng = np.random.default_rng(0)
    layer = LocallyConnected2D(4, k, strides=stride, padding=pad,
                               bias_initializer="random_normal")
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    out_size = (size + 2 * pad - k) // stride + 1
    assert layer.compute_output_shape((None, size, size, 3)) == (None, out_size, out_size, 4)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        upstream = tf.constant(rng.normal(size=y.shape).astype(np.float32))
        loss = tf.reduce_sum(y * upstream)
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    assert kernel.shape == (out_size, out_size, k * k * 3, 4)  # unshared: one per position
    np.testing.assert_allclose(y.numpy(), numpy_local(x, kernel, bias, k, stride, pad),
                               rtol=1e-5, atol=1e-5)
    dx, dkernel, dbias = tape.gradient(loss, [xt, layer.kernel, layer.bias])
    # The output is linear in input, kernel and bias: each gradient is the NumPy layer applied
    # to the upstream gradient through its own unit perturbations (exact for a linear map).
    g = upstream.numpy()
    np.testing.assert_allclose(dbias.numpy(), g.sum(axis=0), rtol=1e-5, atol=1e-5)
    expected_dk = np.zeros_like(kernel)
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    for i in range(out_size):
        for j in range(out_size):
            window = padded[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            expected_dk[i, j] = window.reshape(2, -1).T @ g[:, i, j]
    np.testing.assert_allclose(dkernel.numpy(), expected_dk, rtol=1e-4, atol=1e-4)
    eps = 1e-2  # central differences of the NumPy layer for the input gradient
    expected_dx = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        for sign in (1, -1):
            shifted = x.astype(np.float64)
            shifted[index] += sign * eps
            expected_dx[index] += sign * (numpy_local(shifted, kernel, bias, k, stride, pad)
                                          * g).sum() / (2 * eps)
    np.testing.assert_allclose(dx.numpy(), expected_dx, rtol=1e-3, atol=1e-3)


def test_locally_connected_serializes_and_refuses_bad_sizes(tmp_path):
    inputs = keras.Input((6, 6, 8))
    model = keras.Model(inputs, LocallyConnected2D(5, 3, padding=1, activation="relu",
                                                   name="local")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")  # safe_mode: registered, no Lambda
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    assert loaded.get_layer("local").get_config()["padding"] == 1
    with pytest.raises(ValueError, match="filters=0 must be an integer >= 1"):
        LocallyConnected2D(0, 3)
    with pytest.raises(ValueError, match="smaller than the 5-pixel window"):
        LocallyConnected2D(2, 5)(np.zeros((1, 3, 3, 1), np.float32))


def test_normalisation_is_cuda_convnets_formula():
    # x / (1 + (0.001 / 5) * sum of x^2 over the 5 maps around it)^0.75, clipped at the ends.
    x = np.random.default_rng(2).normal(0, 30, size=(2, 3, 3, 9)).astype(np.float32)
    squares = np.pad(x.astype(np.float64) ** 2, [(0, 0)] * 3 + [(2, 2)])
    window = sum(squares[..., i:i + 9] for i in range(5))
    expected = x / (1 + 0.001 / 5 * window) ** 0.75
    got = conv_local.normalization("n")(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_the_networks_of_the_11pct_and_13pct_files(normalize):
    model = conv_local.build_conv_local(normalize=normalize)
    # cuda-convnet's pooling rounds its output size up: ceil((24 - 3) / 2) + 1 = 12, then 6.
    pooled = [model.get_layer(f"pool{i}").output.shape[1] for i in (1, 2)]
    assert pooled == [math.ceil((24 - 3) / 2) + 1, math.ceil((12 - 3) / 2) + 1] == [12, 6]
    expected = {"conv1": 5 * 5 * 3 * 64 + 64, "conv2": 5 * 5 * 64 * 64 + 64,
                "local3": 36 * (3 * 3 * 64 * 32 + 32), "local4": 36 * (3 * 3 * 32 * 32 + 32),
                "fc10": 6 * 6 * 32 * 10 + 10}
    assert {n: model.get_layer(n).count_params() for n in expected} == expected
    names = [layer.name for layer in model.layers]
    assert ("rnorm1" in names and "rnorm2" in names) == normalize
    if normalize:  # conv -> norm -> pool, as the 11pct file orders them
        assert names.index("conv1") < names.index("rnorm1") < names.index("pool1")
    assert model.output_shape == (None, 10)


def test_per_variable_rates_and_decays_follow_the_update_rule():
    # cuda-convnet's settings: epsB = 2 * epsW, wc 0 on conv layers and biases, 0.004 else.
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="conv1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc10")(x))
    opt = PaperSGD(0.1, momentum=0.9, weight_decay=0.004,
                   learning_rate_multipliers=dict(conv_local.LEARNING_RATE_MULTIPLIERS),
                   weight_decays=dict(conv_local.WEIGHT_DECAYS))
    variables = model.trainable_variables
    opt.build(variables)
    assert {v.path: opt.decay_of(v) for v in variables} == {
        "conv1/kernel": 0.0, "conv1/bias": 0.0, "fc10/kernel": 0.004, "fc10/bias": 0.0}
    rng = np.random.default_rng(3)
    w = [v.numpy().astype(np.float64) for v in variables]
    velocity = [np.zeros_like(a) for a in w]
    rate = {"conv1/kernel": 0.1, "conv1/bias": 0.2, "fc10/kernel": 0.1, "fc10/bias": 0.2}
    for _ in range(3):
        grads = [rng.normal(size=v.shape).astype(np.float32) for v in variables]
        opt.apply(grads, variables)
        for i, v in enumerate(variables):  # v <- m v - wd lr w - lr g ; w <- w + v
            lr, wd = rate[v.path], opt.decay_of(v)
            velocity[i] = 0.9 * velocity[i] - wd * lr * w[i] - lr * grads[i]
            w[i] = w[i] + velocity[i]
    for v, expected in zip(variables, w, strict=True):
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)
    restored = PaperSGD.from_config(opt.get_config())
    assert restored.learning_rate_multipliers == {"*/bias": 2.0}
    assert restored.weight_decays == {"*/bias": 0.0, "conv*": 0.0}
    with pytest.raises(ValueError, match=r"weight_decays\['x'\]=-1 must be a number >= 0"):
        PaperSGD(weight_decays={"x": -1})


def test_a_conv_local_run_config_round_trips_its_per_variable_settings(tmp_path):
    from keras_alexnet.claims.small_cnn import CONV_LOCAL, SmallRun, small_run_config
    from keras_alexnet.train_config import TrainConfig

    run = SmallRun(network=CONV_LOCAL, input_size=24, image_size=32,
                   learning_rate_multipliers=conv_local.LEARNING_RATE_MULTIPLIERS,
                   weight_decays=conv_local.WEIGHT_DECAYS)
    config = small_run_config(run, "fashion_mnist", tmp_path)
    # cuda-convnet's provider: crops and flips, no lighting; 24 crops of 32x32 images.
    assert (config.crops_and_flips, config.pca_lighting, config.data_image_size) == (
        True, False, 32)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    optimizer = config.make_optimizer()
    assert optimizer.learning_rate_multipliers == {"*/bias": 2.0}
    assert optimizer.weight_decays == {"*/bias": 0.0, "conv*": 0.0}
