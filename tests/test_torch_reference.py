"""The PyTorch benchmark peer is the same network: Keras weights copied in give the same logits."""

import dataclasses
import json

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import torch_reference  # noqa: E402
from benchmarks.run import cell_spec  # noqa: E402
from benchmarks.settings import PRESETS, TINY_CONFIG  # noqa: E402
from keras_alexnet import AlexNetConfig, build_alexnet  # noqa: E402

TINY = TINY_CONFIG.replace(classifier_activation=None)  # input 67: no conv1 padding


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
        {"pool_before_lrn": True},  # CaffeNet's order (the Caffe import)
        {"removed_conv": 3},  # Section 7's depth ablation: conv4 then sees both towers
        {"removed_conv": 4},
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


@pytest.mark.slow
def test_full_paper_network_logits_and_parameter_count_match():
    config = AlexNetConfig(classifier_activation=None)
    keras_model, net = _pair(config)
    x, xt = _images(config)
    with torch.no_grad():
        got = net(xt).numpy()
    want = keras_model(x, training=False).numpy()
    assert want.shape == (2, 1000)
    _assert_close(want, got)
    # The paper's network: 60,965,224 trainable parameters ("60 million", Section 4), as Keras.
    assert sum(p.numel() for p in net.parameters()) == keras_model.count_params() == 60_965_224


def test_softmax_output_sums_to_one():
    net = torch_reference.TorchAlexNet(TINY.replace(classifier_activation="softmax")).eval()
    with torch.no_grad():
        probs = net(torch.randn(3, 3, 67, 67) * 60).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_worker_builds_the_spec_network(mode):
    # The worker reads the network from the JSON spec, without keras_alexnet: the same layers,
    # the same overhang padding (input 64, like 224) and logits for training.
    config = TINY.replace(input_size=64, classifier_activation="softmax")
    settings = dataclasses.replace(PRESETS["tiny"], config=config)
    spec = json.loads(json.dumps(cell_spec(settings, "torch", mode, 2, "grouped")))
    got = torch_reference.network_config(spec)
    assert got.conv1_padding == config.conv1_padding > 0
    assert got.classifier_activation == (None if mode == "train" else "softmax")
    net = torch_reference.TorchAlexNet(got)
    assert sum(p.numel() for p in net.parameters()) == build_alexnet(config).count_params()


@pytest.mark.parametrize("mode, variant, precision", [
    ("train", "split+cl", "float32"), ("infer", "grouped", "float32"),
    ("train", "grouped+cl", "mixed_bfloat16"), ("infer", "split", "mixed_bfloat16"),
])
def test_worker_measures_a_cell(mode, variant, precision):
    # In this process (the end-to-end benchmark test starts the worker as its own process).
    spec = json.loads(json.dumps(cell_spec(PRESETS["tiny"], "torch", mode, 2, variant,
                                           precision=precision)))
    spec["threads"] = 0  # keep this process's thread pools (they are set once per process)
    result = torch_reference.measure(spec)
    assert result["variant"] == variant and result["version"] == torch.__version__
    assert result["precision"] == precision
    # The timed network really ran under autocast in bf16 cells, and in fp32 otherwise.
    assert result["output_dtype"] == ("torch.bfloat16" if precision == "mixed_bfloat16"
                                      else "torch.float32")
    assert len(result["step_seconds"]) == spec["steps"]
    assert result["images_per_s"] > 0 and result["peak_rss_mib"] > 0


@pytest.mark.parametrize("grouped", [True, False])
def test_bf16_autocast_logits_are_fp32_logits_to_bf16_precision(grouped):
    # The bf16 cells' forward pass (the worker's autocast scope) computes the same network:
    # its logits are Keras' float32 logits to within bf16's 8-bit mantissa, accumulated
    # over eight layers; and autocast is really on (bf16 out, not the fp32 numbers).
    config = TINY.replace(input_size=64)  # with the overhang padding
    keras_model, net = _pair(config, grouped)
    x, xt = _images(config, batch=4)
    want = keras_model(x, training=False).numpy()
    for fmt in (torch.contiguous_format, torch.channels_last):  # the "+cl" builds too
        net = net.to(memory_format=fmt)
        with torch.no_grad(), torch_reference.precision_scope("mixed_bfloat16"):
            got = net(xt.contiguous(memory_format=fmt))
        assert got.dtype == torch.bfloat16
        got = got.float().numpy()
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=0.05 * scale)
        assert np.abs(got - want).max() > 1e-5 * scale  # bf16 rounding shows
        # Each image's largest logit is still the largest, unless fp32 itself nearly ties it.
        top = want.argmax(axis=1)
        margin = np.sort(want, axis=1)[:, -1] - np.sort(want, axis=1)[:, -2]
        clear = margin > 0.1 * scale
        assert (got.argmax(axis=1)[clear] == top[clear]).all()
    with torch_reference.precision_scope("float32"):
        assert net(xt).dtype == torch.float32
    with pytest.raises(ValueError, match="precision='bfloat16'"):
        torch_reference.precision_scope("bfloat16")


def test_worker_measures_the_matmul_ceilings():
    spec = json.loads(json.dumps(cell_spec(PRESETS["tiny"], "torch_machine")))
    spec["threads"] = 0
    result = torch_reference.measure(spec)
    for key in ("torch_matmul_gflops", "torch_bf16_matmul_gflops"):
        rate = result[key]
        assert len(rate["runs"]) == 8 and 0 < rate["min"] <= rate["median"] <= rate["max"]


def test_mismatched_config_is_a_clear_error():
    keras_model = build_alexnet(TINY)
    net = torch_reference.TorchAlexNet(TINY.replace(fc_units=(64, 64)))
    with pytest.raises(ValueError, match="Shape mismatch"):
        torch_reference.copy_keras_weights(keras_model, net)
