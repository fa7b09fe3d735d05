"""The network of Section 3: parameter counts, shapes, init, ablations, saving, placement."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL, run_python

import keras_alexnet
from keras_alexnet import ABLATIONS, AlexNetConfig, ablation, build_alexnet

TINY = TINY_MODEL.replace(num_classes=5)


def expected_params(c: AlexNetConfig) -> int:
    """Counts weights from the paper's description, independently of the model code."""
    T = c.num_towers
    f, k = c.conv_filters, c.conv_kernel_sizes
    # conv1 sees the 3 input channels; conv2/4/5 their own tower's maps; conv3 all maps.
    inputs = [3, f[0] // T, f[1], f[2] // T, f[3] // T]
    layers = [i for i in range(5) if i != c.removed_conv - 1]
    if c.removed_conv == 3:  # conv4 then sees all of conv2's maps, as conv3 did
        inputs[3] = f[1]
    if c.removed_conv == 4:  # conv5 then sees its tower's conv3 maps
        inputs[4] = f[2] // T
    n = sum(k[i] * k[i] * inputs[i] * f[i] + f[i] for i in layers)
    last = f[4]
    if c.conv6_filters:
        n += 3 * 3 * (f[4] // T) * c.conv6_filters + c.conv6_filters
        last = c.conv6_filters
    size = (c.input_size + c.conv1_padding - k[0]) // c.conv1_stride + 1
    for _ in range(3):
        size = (size - c.pool_size) // c.pool_stride + 1
    flat = size * size * last
    fc6, fc7 = c.fc_units
    return n + flat * fc6 + fc6 + fc6 * fc7 + fc7 + fc7 * c.num_classes + c.num_classes


def test_paper_parameter_count(paper_model):
    assert expected_params(AlexNetConfig()) == 60_965_224
    assert paper_model.count_params() == 60_965_224
    trainable = sum(int(np.prod(w.shape)) for w in paper_model.trainable_weights)
    assert trainable == 60_965_224


def test_paper_feature_maps(paper_model):
    # Section 3.5 / Figure 2: 55x55x96, 27x27x256, 13x13x384, 13x13x384, 13x13x256, 6x6x256.
    def joined(name):
        return sum(paper_model.get_layer(f"{name}_t{t}").output.shape[-1] for t in range(2))

    shape = paper_model.get_layer
    assert shape("conv1_t0").output.shape[1:3] == (55, 55) and joined("conv1") == 96
    assert shape("conv2_t0").output.shape[1:3] == (27, 27) and joined("conv2") == 256
    for name, maps in (("conv3", 384), ("conv4", 384), ("conv5", 256)):
        assert shape(f"{name}_t0").output.shape[1:3] == (13, 13) and joined(name) == maps
    assert tuple(shape("pool5_joined").output.shape[1:]) == (6, 6, 256)
    assert tuple(shape("fc6").output.shape[1:]) == tuple(shape("fc7").output.shape[1:]) == (4096,)
    assert tuple(paper_model.output.shape[1:]) == (1000,)

    # Figure 2's neuron counts for conv2..conv5, summed over the built towers' outputs (its
    # 253,440 for conv1 matches no square map; 55x55x96 = 290,400).
    def neurons(name):
        return sum(int(np.prod(shape(f"{name}_t{t}").output.shape[1:])) for t in range(2))

    want = {"conv1": 290_400, "conv2": 186_624, "conv3": 64_896, "conv4": 64_896,
            "conv5": 43_264}
    assert {name: neurons(name) for name in want} == want


@pytest.mark.parametrize("size,padding", [(224, 3), (227, 0)])
def test_both_input_sizes_give_55x55(size, padding):
    # conv1's map size and the weights do not depend on the filter counts: tiny filters.
    c = TINY.replace(input_size=size)
    assert c.conv1_padding == padding
    model = build_alexnet(c)
    assert model.get_layer("conv1_t0").output.shape[1:3] == (55, 55)
    assert model.count_params() == expected_params(TINY.replace(input_size=224))
    assert ("conv1_overhang" in [layer.name for layer in model.layers]) == bool(padding)


def test_overhang_is_zero_padding_at_bottom_right_only():
    c = TINY.replace(input_size=64)  # (64 - 11) % 4 = 1 -> pad 3, like 224
    assert c.conv1_padding == 3
    model = build_alexnet(c)
    pad = keras.Model(model.input, model.get_layer("conv1_overhang").output)
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    y = np.asarray(pad(x))
    assert y.shape == (1, 67, 67, 3)
    np.testing.assert_array_equal(y[:, :64, :64], x)
    assert not y[:, 64:].any() and not y[:, :, 64:].any()


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablations_build_and_train(name):
    c = ablation(name, TINY)
    model = build_alexnet(c)
    assert model.count_params() == expected_params(c)
    x = np.random.default_rng(0).normal(0, 50, size=(4, 67, 67, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = [np.array(w) for w in model.trainable_weights]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = model.trainable_weights
    assert all(np.all(np.isfinite(np.asarray(w))) for w in after)
    assert any(not np.allclose(b, np.asarray(a)) for b, a in zip(before, after))


# Paper-size parameter counts of the ablations, by hand from Section 3 (the builds at tiny
# size check the model against `expected_params`; these check the paper-size configs).
PAPER_ABLATION_PARAMS = {
    # No weights change: LRN, pooling (2x2/2 still leaves 55 -> 27 -> 13 -> 6), activation
    # and dropout have none.
    "no_lrn": 60_965_224, "non_overlapping_pool": 60_965_224, "tanh": 60_965_224,
    "no_dropout": 60_965_224,
    # One tower: conv2/4/5 also see the other tower's maps, 5*5*48*256 + 3*3*192*384
    # + 3*3*192*256 = 1,413,120 more weights.
    "one_tower_full": 60_965_224 + 1_413_120,
    # Footnote 2: half the kernels in conv1-4, conv5 and the fc layers at full size.
    # conv1 17,472 + conv2 153,728 + conv3 221,376 + conv4 331,968 + conv5 442,624
    # + fc6 37,752,832 + fc7 16,781,312 + fc8 4,097,000.
    "one_tower_half": 59_798_312,
    # A sixth conv layer, 3x3, 128 maps in and 128 out per tower: 2 * (3*3*128*128 + 128).
    "conv6": 60_965_224 + 295_168,
    # Section 7, no conv3: its 2 * (3*3*256*192 + 192) = 885,120 go, and conv4 now reads all
    # 256 of conv2's maps: 2 * 3*3*(256 - 192)*192 = 221,184 more.
    "no_conv3": 60_965_224 - 885_120 + 221_184,
    # No conv4: its 2 * (3*3*192*192 + 192) = 663,936 go; conv5 reads conv3's 192 maps per
    # tower, as many as conv4 gave it.
    "no_conv4": 60_965_224 - 663_936,
}


def test_paper_ablation_parameter_counts():
    assert sorted(PAPER_ABLATION_PARAMS) == sorted(ABLATIONS)
    assert expected_params(AlexNetConfig()) == 60_965_224
    for name, want in PAPER_ABLATION_PARAMS.items():
        assert expected_params(ablation(name)) == want, name


def test_ablation_switches_change_the_graph():
    def kinds(c):
        return [type(layer).__name__ for layer in build_alexnet(c).layers]

    assert "LocalResponseNormalization" not in kinds(ablation("no_lrn", TINY))
    m = build_alexnet(ablation("non_overlapping_pool", TINY))
    assert m.get_layer("pool1_t0").pool_size == (2, 2)
    assert build_alexnet(ablation("tanh", TINY)).get_layer("conv3_t0").activation.__name__ == "tanh"
    assert build_alexnet(ablation("no_dropout", TINY)).get_layer("drop6").rate == 0.0
    assert build_alexnet(ablation("conv6", TINY)).get_layer("conv6_t1").filters == 256 // 2
    one = build_alexnet(ablation("one_tower_half", TINY.replace(num_classes=7)))
    assert one.get_layer("fc7").units == 32 and one.output.shape[-1] == 7


def test_init_statistics(paper_model):
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for layer in paper_model.layers:
        if not layer.weights:
            continue
        base = layer.name.split("_t")[0]
        w, b = (np.asarray(v) for v in layer.weights)
        assert abs(w.mean()) < 5e-4, layer.name
        assert abs(w.std() - 0.01) < 5e-4, layer.name
        np.testing.assert_array_equal(b, np.full_like(b, 1.0 if base in ones else 0.0))


def test_keras_save_load_round_trip(tmp_path):
    c = TINY.replace(lrn_across_towers=True, conv6_filters=8)
    model = build_alexnet(c)
    path = tmp_path / "alexnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.alexnet_config == c
    x = np.random.default_rng(0).normal(0, 50, size=(3, 67, 67, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_config_round_trip_and_unknown_field():
    c = ablation("conv6", TINY)
    assert AlexNetConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="Unknown AlexNetConfig field"):
        AlexNetConfig.from_dict({"num_clases": 10})


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(num_towers=0), "num_towers"),
        (dict(conv_filters=(96, 256, 384, 383, 256)), "cannot be split"),
        (dict(num_towers=3), "cannot be split"),
        (dict(activation="swish"), "unknown activation"),
        (dict(input_size=20), "too small"),
        (dict(num_classes=1), "num_classes"),
        (dict(dropout_rate=1.0), "dropout_rate"),
    ],
)
def test_impossible_configs_are_clear_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        AlexNetConfig().replace(**changes)


def test_wrong_input_rank_or_channels():
    model = build_alexnet(TINY)
    with pytest.raises(ValueError, match=r"expects images of shape \(batch, 67, 67, 3\)"):
        model(np.zeros((2, 67, 67, 1), np.float32))
    with pytest.raises(ValueError, match="expects images"):
        model(np.zeros((67, 67, 3), np.float32))
    with pytest.raises(ValueError, match="one device per tower"):
        build_alexnet(TINY, tower_devices=("/CPU:0",))
    with pytest.raises(ValueError, match="Unknown ablation"):
        ablation("dropconnect")


def test_tower_placement_in_traced_graph():
    devices = ("/CPU:0", "/CPU:1")
    assert len(tf.config.list_logical_devices("CPU")) == 2
    model = build_alexnet(TINY, tower_devices=devices)
    for t, device in enumerate(devices):
        for v in model.get_layer(f"conv2_t{t}").weights:
            assert v.value.device.endswith(device[1:]), (v.path, v.value.device)
    step = tf.function(lambda x: model(x, training=True))
    graph = step.get_concrete_function(tf.TensorSpec((2, 67, 67, 3))).graph
    seen = {}
    for op in graph.get_operations():
        if op.type in ("Conv2D", "LRN", "MatMul", "MaxPool"):
            seen[op.name] = op.device
    for t, device in enumerate(devices):
        tower_ops = [n for n in seen if f"_t{t}" in n]
        assert len(tower_ops) >= 11  # conv1-5, lrn1-2, pools 1/2/5, fc6, fc7
        assert all(seen[n] == f"/device:{device[1:]}" for n in tower_ops), seen
    assert all(seen[n] == "/device:CPU:0" for n in seen if "fc8" in n)


def test_placed_model_computes_what_the_unplaced_one_does():
    plain = build_alexnet(TINY)
    placed = build_alexnet(TINY, tower_devices=("/CPU:0", "/CPU:1"))
    placed.set_weights(plain.get_weights())
    x = np.random.default_rng(0).normal(0, 50, size=(2, 67, 67, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(placed(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-7)


def test_model_code_does_not_import_keras_src():
    root = os.path.dirname(keras_alexnet.__file__)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(dirpath, f), encoding="utf-8").read()
                assert "keras.src" not in text, f


# One JAX process (its start-up is most of the cost) checks both: the forward pass against
# TensorFlow's, then that the model and optimizer import and train without TensorFlow.
WITHOUT_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None  # `import tensorflow` now fails, as on a JAX-only machine
import numpy as np
import keras
import keras_alexnet as ka
assert keras.backend.backend() == "jax"
assert not hasattr(ka, "train")  # the tf.data/tf.function parts are not imported
# The forward pass with TensorFlow's weights.
model = ka.build_alexnet(ka.AlexNetConfig.from_dict(json.loads(sys.argv[1])))
data = np.load(sys.argv[2])
model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
np.save(sys.argv[3], np.asarray(model(data["x"])))
# A training step.
model = ka.build_alexnet(ka.AlexNetConfig.from_dict(json.loads(sys.argv[4])))
model.compile(optimizer=ka.PaperSGD(), loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).normal(0, 50, (4, 67, 67, 3)).astype("float32")
before = np.array(model.get_layer("fc8").kernel)
model.train_on_batch(x, np.array([0, 1, 2, 3]))
assert not np.allclose(before, np.asarray(model.get_layer("fc8").kernel))
"""


@pytest.mark.slow
def test_jax_backend_without_tensorflow_forward_equals_tensorflow_and_trains(tmp_path):
    pytest.importorskip("jax")
    c = TINY.replace(lrn_across_towers=True, weight_init_std=0.05)
    model = build_alexnet(c)
    x = np.random.default_rng(0).normal(0, 50, size=(3, 67, 67, 3)).astype(np.float32)
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(model.weights)}
    np.savez(tmp_path / "in.npz", x=x, **arrays)
    proc = run_python("-c", WITHOUT_TENSORFLOW, c.to_json(), tmp_path / "in.npz",
                      tmp_path / "out.npy", TINY.to_json(),
                      env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.asarray(model(x)), atol=1e-5)
