"""LocalResponseNormalization against a NumPy transcription of the paper's formula (3.3)."""

import keras
import numpy as np
import pytest

from keras_alexnet import AlexNetConfig, LocalResponseNormalization, build_alexnet


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


TINY = AlexNetConfig(
    input_size=67, conv_filters=(8, 16, 16, 16, 16), fc_units=(32, 32), num_classes=5,
    weight_init_std=0.5,
)


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
