"""LocalResponseNormalization against a NumPy transcription of the paper's formula (3.3)."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL

from keras_alexnet import LocalResponseNormalization, build_alexnet
from keras_alexnet.layers import portable_lrn


def lrn_numpy(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """b^i = a^i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} (a^j)^2)^beta."""
    N = a.shape[-1]
    b = np.empty_like(a, dtype=np.float64)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        s = np.sum(a[..., lo : hi + 1].astype(np.float64) ** 2, axis=-1)
        b[..., i] = a[..., i] / (k + alpha * s) ** beta
    return b


@pytest.mark.parametrize("channels", [1, 3, 7, 48])
def test_lrn_matches_paper_formula(channels):
    rng = np.random.default_rng(channels)
    # Large activations so the normaliser is far from 2**-0.75 and edges matter.
    a = rng.uniform(0, 60, size=(2, 5, 4, channels)).astype(np.float32)
    got = LocalResponseNormalization()(a)
    np.testing.assert_allclose(np.asarray(got), lrn_numpy(a), rtol=2e-5)


def lrn_grad_numpy(a, g, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """dL/da for b = lrn_numpy(a) and dL/db = g, by the chain rule written out per channel."""
    a, g = a.astype(np.float64), g.astype(np.float64)
    N = a.shape[-1]
    d = np.stack([k + alpha * np.sum(a[..., max(0, i - n // 2) : i + n // 2 + 1] ** 2, axis=-1)
                  for i in range(N)], axis=-1)
    grad = g * d**-beta
    for i in range(N):  # b_i depends on a_j for j in i's window
        for j in range(max(0, i - n // 2), min(N, i + n // 2 + 1)):
            db_i_da_j = -beta * d[..., i] ** (-beta - 1) * alpha * 2 * a[..., j] * a[..., i]
            grad[..., j] += g[..., i] * db_i_da_j
    return grad


# XLA_MIN_VALUES (32768) values per image and more run through XLA, fewer through TF's kernel.
XLA_SHAPE, KERNEL_SHAPE = (1, 16, 16, 128), (2, 3, 4, 9)


def lrn_ops(layer, shape, dtype=tf.float32):
    """The op types of the layer's forward graph for inputs of `shape`."""
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec(shape, dtype)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("path", ["xla", "tf_kernel", "portable"])
def test_lrn_gradient_matches_the_chain_rule(path):
    shape = KERNEL_SHAPE if path == "tf_kernel" else XLA_SHAPE
    rng = np.random.default_rng(3)
    a = rng.uniform(-60, 60, size=shape).astype(np.float32)
    g = rng.normal(size=a.shape).astype(np.float32)
    x = tf.constant(a)
    layer = LocalResponseNormalization()
    with portable_lrn() if path == "portable" else contextlib.nullcontext():
        assert ("LRN" in lrn_ops(layer, shape)) == (path != "xla")
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
    got = tape.gradient(y, x, output_gradients=tf.constant(g))
    np.testing.assert_allclose(got.numpy(), lrn_grad_numpy(a, g), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), lrn_numpy(a), rtol=2e-5)


def test_bf16_lrn_sums_in_float32():
    # Large activations: the window sum dominates bias, so a bfloat16 sum (8-bit mantissa)
    # would be off by up to 2**-8 relative; computed in float32 the output is the exact
    # result rounded once to bfloat16.
    rng = np.random.default_rng(4)
    a = tf.cast(rng.uniform(100, 400, size=XLA_SHAPE).astype(np.float32), tf.bfloat16)
    layer = LocalResponseNormalization(dtype="mixed_bfloat16")
    exact = lrn_numpy(tf.cast(a, tf.float32).numpy())
    want = tf.cast(tf.cast(exact, tf.float32), tf.bfloat16).numpy().astype(np.float32)
    for context in (contextlib.nullcontext(), portable_lrn()):  # XLA, then TF's kernel
        with context:
            got = layer(a)
        assert got.dtype == tf.bfloat16
        # Within one rounding of the exact value (bf16's half-ulp is 2**-9 relative).
        np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), want, rtol=2**-8)
        assert np.mean(tf.cast(got, tf.float32).numpy() == want) > 0.95


def test_lrn_other_constants_and_serialization():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 30, size=(1, 3, 3, 10)).astype(np.float32)
    layer = LocalResponseNormalization(depth_radius=1, bias=1.0, alpha=1e-3, beta=0.5)
    want = lrn_numpy(a, n=3, k=1.0, alpha=1e-3, beta=0.5)
    np.testing.assert_allclose(np.asarray(layer(a)), want, rtol=2e-5)
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(np.asarray(clone(a)), want, rtol=2e-5)


def test_lrn_rejects_bad_arguments_and_rank():
    with pytest.raises(ValueError, match="depth_radius"):
        LocalResponseNormalization(depth_radius=-1)
    with pytest.raises(ValueError, match="bias"):
        LocalResponseNormalization(bias=0.0)
    with pytest.raises(ValueError, match="4-D"):
        LocalResponseNormalization()(np.zeros((2, 3, 4), np.float32))


def _conv1_maps(config):
    """Model whose output is conv1's normalised maps, per tower, for a random image."""
    model = build_alexnet(config)
    names = [f"pool1_t{t}" for t in range(2)]
    pre = [model.get_layer(f"conv1_t{t}").output for t in range(2)]
    post = [model.get_layer(n).input for n in names]
    probe = keras.Model(model.input, [*pre, *post])
    rng = np.random.default_rng(1)
    x = rng.normal(0, 100, size=(1, config.input_size, config.input_size, 3)).astype(np.float32)
    return [np.asarray(o) for o in probe(x)]


# Large weights: conv1's maps reach the range where LRN's normaliser is far from 1.
TINY = TINY_MODEL.replace(num_classes=5, weight_init_std=0.5)


def test_lrn_window_stops_at_tower_boundary_by_default():
    a0, a1, b0, b1 = _conv1_maps(TINY)
    assert a0.max() > 1.0  # the normaliser must be non-trivial for this test to mean anything
    np.testing.assert_allclose(b0, lrn_numpy(a0), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(b1, lrn_numpy(a1), rtol=2e-5, atol=1e-6)


def test_lrn_across_towers_spans_all_maps_of_the_layer():
    a0, a1, b0, b1 = _conv1_maps(TINY.replace(lrn_across_towers=True))
    full = lrn_numpy(np.concatenate([a0, a1], axis=-1))
    np.testing.assert_allclose(np.concatenate([b0, b1], axis=-1), full, rtol=2e-5, atol=1e-6)
    # Maps next to the boundary see the other tower: the per-tower result differs there.
    assert not np.allclose(b0[..., -1], lrn_numpy(a0)[..., -1], rtol=1e-6)
