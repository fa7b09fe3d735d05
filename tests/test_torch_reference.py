"""The PyTorch benchmark peer is the same network: Keras weights copied in give the same logits."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from keras_alexnet import AlexNetConfig, build_alexnet  # noqa: E402

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "torch_reference.py"
_spec = importlib.util.spec_from_file_location("torch_reference", _SCRIPT)
torch_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_reference)

TINY = AlexNetConfig(input_size=67, conv_filters=(8, 16, 16, 16, 16), fc_units=(32, 32),
                     num_classes=5, classifier_activation=None)


def _pair(config: AlexNetConfig, grouped: bool = True, seed: int = 0):
    """A Keras model with random weights of a scale that carries signal, and its PyTorch copy."""
    keras_model = build_alexnet(config)
    rng = np.random.default_rng(seed)
    # The paper's N(0, 0.01) init barely lets a small net's input reach the logits; weights of
    # std 1/sqrt(fan_in) keep activations near the input's scale, so every layer (LRN's alpha
    # term included) shapes the output, and random biases make a misplaced bias visible.
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            kernel, bias = layer.get_weights()
            std = 1 / np.sqrt(np.prod(kernel.shape[:-1]))
            layer.set_weights([rng.normal(0, std, kernel.shape).astype(np.float32),
                               rng.normal(0, 0.5, bias.shape).astype(np.float32)])
    net = torch_reference.TorchAlexNet(config, grouped=grouped).eval()
    torch_reference.copy_keras_weights(keras_model, net)
    return keras_model, net


def _images(config: AlexNetConfig, batch: int = 2, seed: int = 1):
    # Mean-subtracted pixels on the 0..255 scale, NHWC for Keras and NCHW for PyTorch.
    s = config.input_size
    x = np.random.default_rng(seed).normal(0, 80, (batch, s, s, 3)).astype(np.float32)
    return x, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def _logits(config: AlexNetConfig, grouped: bool):
    keras_model, net = _pair(config, grouped)
    x, xt = _images(config)
    with torch.no_grad():
        got = net(xt).numpy()
    want = keras_model(x, training=False).numpy()
    # Different images must give different logits, or the comparison proves nothing.
    assert np.abs(want[0] - want[1]).max() > 1e-3 * np.abs(want).max()
    return want, got


def _assert_close(want: np.ndarray, got: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize(
    "changes",
    [
        {},  # two towers, LRN within each tower, input 67: no conv1 padding
        {"input_size": 64},  # bottom/right overhang padding, as 224 in the paper's net
        {"lrn_across_towers": True},
        {"num_towers": 1},
        {"conv6_filters": 8, "activation": "tanh"},
        {"pool_size": 2, "use_lrn": False},
    ],
)
def test_tiny_logits_match(grouped, changes):
    config = TINY.replace(**changes)
    want, got = _logits(config, grouped)
    _assert_close(want, got)


def test_lrn_alpha_convention_matters():
    # PyTorch divides alpha by n: given the raw paper alpha, the logits would differ. This guards
    # the tests above against inputs too small for LRN to matter.
    config = TINY.replace(input_size=64)
    keras_model, net = _pair(config)
    x, xt = _images(config)
    want = keras_model(x, training=False).numpy()
    with torch.no_grad():
        _assert_close(want, net(xt).numpy())
        net.lrn.alpha = config.lrn_alpha  # the mistake: paper alpha given to PyTorch as is
        wrong = net(xt).numpy()
    assert np.abs(wrong - want).max() > 1e-2 * np.abs(want).max()


def test_full_paper_network_logits_match():
    want, got = _logits(AlexNetConfig(classifier_activation=None), grouped=True)
    assert want.shape == (2, 1000)
    _assert_close(want, got)


def test_full_paper_network_softmax_and_parameter_count():
    config = AlexNetConfig()
    net = torch_reference.TorchAlexNet(config)
    # DESIGN.md: 60,965,224 trainable parameters, the same as the Keras model.
    assert sum(p.numel() for p in net.parameters()) == 60_965_224
    with torch.no_grad():
        probs = net.eval()(torch.zeros(1, 3, 224, 224)).numpy()
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)


def test_mismatched_config_is_a_clear_error():
    keras_model = build_alexnet(TINY)
    net = torch_reference.TorchAlexNet(TINY.replace(fc_units=(64, 64)))
    with pytest.raises(ValueError, match="Shape mismatch"):
        torch_reference.copy_keras_weights(keras_model, net)
