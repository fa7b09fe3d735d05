"""Caffe import against a NumPy network with Caffe's semantics, on files the tests write."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from caffe_fixtures import (
    BVLC_CONV,
    BVLC_FC,
    alexnet_layers,
    blob_proto,
    caffe_forward,
    f_bytes,
    f_float,
    f_int,
    random_weights,
    write_caffemodel,
    write_mean,
)
from helpers import SCRIPTS, TINY_MODEL, run_python
from PIL import Image

from keras_alexnet import AlexNetConfig, build_alexnet, import_caffe
from keras_alexnet.caffe import caffe_mean_image
from keras_alexnet.caffe_format import read_binaryproto, read_blob, read_net
from keras_alexnet.caffe_import import write_caffe_run
from keras_alexnet.loading import open_run_data
from keras_alexnet.transfer import finetune_model

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def small_weights():
    return random_weights(np.random.default_rng(0), num_classes=NUM_CLASSES)


def _images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-100, 100, (n, 227, 227, 3)).astype(np.float32)


def _bgr_nchw(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., ::-1].transpose(0, 3, 1, 2)


def _one_line_error(fn, *args) -> str:
    with pytest.raises(ValueError) as e:
        fn(*args)
    message = str(e.value)
    assert "\n" not in message, message
    return message


def test_wire_format_blobs_and_packed_fields():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    for legacy, shape in ((False, (2, 3, 4)), (True, (1, 2, 3, 4))):
        data = memoryview(blob_proto(a, legacy))
        np.testing.assert_array_equal(read_blob(data, 0, len(data)), a.reshape(shape))
    # Unpacked floats (one fixed32 field per value) and double_data are legal too.
    unpacked = f_int(1, 1) + f_int(2, 2) + f_int(3, 1) + f_int(4, 1) + f_float(5, 1.5) \
        + f_float(5, -2.0)
    np.testing.assert_array_equal(read_blob(memoryview(unpacked), 0, len(unpacked)).ravel(),
                                  [1.5, -2.0])
    doubles = f_bytes(7, f_bytes(1, bytes([3]))) + f_bytes(8, np.array([1, 2, 3.5]).tobytes())
    np.testing.assert_array_equal(read_blob(memoryview(doubles), 0, len(doubles)), [1, 2, 3.5])


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "v1_layers"])
@pytest.mark.parametrize("caffenet", [False, True], ids=["alexnet", "caffenet"])
def test_imported_model_matches_caffe_reference(tmp_path, small_weights, v1, caffenet):
    path = tmp_path / "net.caffemodel"
    write_caffemodel(path, small_weights, v1=v1, caffenet=caffenet)
    model = import_caffe(path)
    c = model.alexnet_config
    assert (c.input_size, c.num_classes, c.conv_filters, c.fc_units) == (227, NUM_CLASSES,
                                                                         (8, 16, 24, 24, 16),
                                                                         (32, 32))
    # Caffe's alpha 1e-4 is divided by local_size 5 there and not here.
    assert (c.lrn_alpha, c.lrn_bias, c.lrn_beta, c.lrn_depth_radius) == (2e-5, 1.0, 0.75, 2)
    assert c.lrn_across_towers and c.pool_before_lrn == caffenet
    x = _images(2)
    got = model(x, training=False).numpy()
    want = caffe_forward(small_weights, _bgr_nchw(x), caffenet=caffenet)
    assert 0.2 < want.max() < 0.9  # far from uniform and from saturated: a real check
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-9)
    # The other order is a different network: loading into it would be wrong.
    other = caffe_forward(small_weights, _bgr_nchw(x), caffenet=not caffenet)
    assert np.abs(other - want).max() > 1e-2


@pytest.mark.slow
def test_full_size_bvlc_alexnet_mapping(tmp_path):
    """bvlc_alexnet's shapes (legacy V1 format, like the zoo's file): the paper's network."""
    weights = random_weights(np.random.default_rng(2), BVLC_CONV, BVLC_FC, 1000)
    path = tmp_path / "bvlc_alexnet.caffemodel"
    write_caffemodel(path, weights, v1=True)
    model = import_caffe(path)
    assert model.alexnet_config == AlexNetConfig(
        input_size=227, lrn_alpha=2e-5, lrn_bias=1.0, lrn_across_towers=True)
    assert model.count_params() == 60_965_224
    x = _images(1, seed=3)
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               caffe_forward(weights, _bgr_nchw(x)), rtol=2e-5, atol=1e-10)


def _bad_files(tmp_path: Path, weights: dict) -> dict[str, Path]:
    good = tmp_path / "good.caffemodel"
    write_caffemodel(good, weights)
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "not_caffe": _jpeg(),
             "empty": b""}
    wrong = dict(weights)
    wrong["conv2"] = [weights["conv2"][0][:, :, :3, :3], weights["conv2"][1]]
    layers = alexnet_layers(wrong)
    from caffe_fixtures import net_proto

    files["wrong_shape"] = net_proto(layers, False)
    files["missing_fc8"] = net_proto([la for la in alexnet_layers(weights)
                                      if la["name"] not in ("fc8", "prob")], False)
    files["lrn_after_conv3"] = net_proto(
        [*alexnet_layers(weights)[:13], dict(name="norm3", type="LRN", params={"lrn": {
            "local_size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}})]
        + alexnet_layers(weights)[13:], False)
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.caffemodel"
        out[name].write_bytes(content)
    return out


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_bad_files_are_one_line_errors_and_write_no_model(tmp_path, small_weights):
    files = _bad_files(tmp_path, small_weights)
    messages = {}
    for name, path in files.items():
        out = tmp_path / f"run_{name}"
        messages[name] = _one_line_error(write_caffe_run, path, out)
        assert not (out / "model.keras").exists()
    assert "truncated" in messages["truncated"]
    assert "'conv2' weights: expected shape (16, 4, 5, 5), found (16, 4, 3, 3)" \
        in messages["wrong_shape"]
    assert "missing layer" in messages["missing_fc8"] and "'relu7'" in messages["missing_fc8"]
    assert "'norm3' is LRN" in messages["lrn_after_conv3"]
    assert "empty" in messages["empty"]
    assert "not a" in messages["not_caffe"]


def test_mean_file_and_fallback(tmp_path):
    rng = np.random.default_rng(4)
    bgr = rng.uniform(0, 255, (3, 256, 256)).astype(np.float32)
    write_mean(tmp_path / "mean.binaryproto", bgr)
    mean = caffe_mean_image(tmp_path / "mean.binaryproto")
    assert mean.shape == (256, 256, 3)
    np.testing.assert_array_equal(mean[..., 0], bgr[2])  # R is Caffe's third channel
    np.testing.assert_array_equal(mean[..., 2], bgr[0])
    np.testing.assert_array_equal(caffe_mean_image()[7, 9], [123.0, 117.0, 104.0])
    assert read_binaryproto(tmp_path / "mean.binaryproto").shape == (1, 3, 256, 256)


def _run_script(*args: str) -> subprocess.CompletedProcess:
    return run_python(SCRIPTS / "import_caffe.py", *args)


@pytest.fixture(scope="module")
def imported_run(build_once, small_weights):
    """scripts/import_caffe.py on a V1-format file with a mean and synset words."""
    def build(root):
        write_caffemodel(root / "net.caffemodel", small_weights, v1=True)
        bgr = np.random.default_rng(5).uniform(80, 160, (3, 256, 256)).astype(np.float32)
        write_mean(root / "mean.binaryproto", bgr)
        wnids = [f"n{i:08d}" for i in range(NUM_CLASSES)]
        (root / "synset_words.txt").write_text(
            "".join(f"{w} class {i}, other name\n" for i, w in enumerate(wnids)))
        proc = _run_script(f"--caffemodel={root / 'net.caffemodel'}",
                           f"--mean={root / 'mean.binaryproto'}",
                           f"--synset_words={root / 'synset_words.txt'}",
                           f"--out={root / 'run'}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return dict(root=root, run=root / "run", bgr=bgr, wnids=wnids)

    return build_once("caffe_run", build)


@pytest.mark.slow  # a subprocess that loads TensorFlow
def test_script_writes_a_run_dir_the_other_scripts_read(imported_run, small_weights):
    run = imported_run["run"]
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    x = _images(2, seed=6)
    want = caffe_forward(small_weights, _bgr_nchw(x))
    np.testing.assert_allclose(model(x, training=False).numpy(), want, rtol=2e-5, atol=1e-9)
    info = open_run_data(run / "model.keras").info  # what export.py reads, no --data
    assert list(info.wnids) == imported_run["wnids"]
    assert info.class_names[3] == "class 3, other name"
    np.testing.assert_array_equal(info.mean_image, imported_run["bgr"][::-1].transpose(1, 2, 0))
    assert json.loads((run / "config.json").read_text())["model"]["pool_before_lrn"] is False


@pytest.mark.slow  # a subprocess that loads TensorFlow
def test_script_bad_file_and_bad_flags(tmp_path, small_weights):
    bad = _bad_files(tmp_path, small_weights)["wrong_shape"]
    proc = _run_script(f"--caffemodel={bad}", f"--out={tmp_path / 'run'}")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr and "expected shape" in proc.stderr
    assert not (tmp_path / "run" / "model.keras").exists()
    proc = _run_script(f"--caffemodel={bad}")
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "error: Pass --caffemodel=FILE.caffemodel and --out=DIR."


# Runs in a fresh interpreter: plain TensorFlow serving the exported JPEG classifier.
_SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    args = json.loads(open(sys.argv[1]).read())
    loaded = tf.saved_model.load(args["path"])
    jpeg = open(args["jpeg"], "rb").read()
    out = loaded.signatures["serving_default"](images=tf.constant([jpeg]))
    view = np.load(args["view"])
    probs = loaded.signatures["predict_images"](images=tf.constant(view))["probabilities"]
    assert "keras_alexnet" not in sys.modules
    print("RESULT" + json.dumps({
        "classes": out["classes"].numpy().tolist(),
        "names": [n.decode() for n in out["class_names"].numpy()[0]],
        "probabilities": out["probabilities"].numpy().tolist(),
        "predict": probs.numpy().tolist()}))
""")


@pytest.mark.slow
def test_export_of_imported_model_answers_a_jpeg(imported_run, small_weights, tmp_path):
    from keras_alexnet.data.pipeline import augment_center
    from keras_alexnet.data.sources import decode_any

    run = imported_run["run"]
    proc = run_python(SCRIPTS / "export.py", f"--model={run / 'model.keras'}",
                      f"--export_root={tmp_path / 'sm'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = proc.stdout.strip().splitlines()[-1]
    yy, xx = np.mgrid[0:300, 0:400]
    picture = np.stack([xx * 255 / 400, yy * 255 / 300, (xx + yy) * 0.2], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "JPEG", quality=95)
    (tmp_path / "q.jpg").write_bytes(buf.getvalue())
    # The request's view as the evaluation pipeline builds it: 256 stored, center 227 crop.
    mean = imported_run["bgr"][::-1].transpose(1, 2, 0)
    image = tf.cast(decode_any(tf.constant(buf.getvalue()), 256), tf.float32)
    view = augment_center(image, tf.constant(mean), 227).numpy()[None]
    np.save(tmp_path / "view.npy", view)
    (tmp_path / "args.json").write_text(json.dumps(
        {"path": path, "jpeg": str(tmp_path / "q.jpg"), "view": str(tmp_path / "view.npy")}))
    proc = run_python("-c", _SERVE, tmp_path / "args.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    want = caffe_forward(small_weights, _bgr_nchw(view))[0]
    top5 = np.argsort(-want)[:5]
    assert result["classes"][0] == top5.tolist()
    assert result["names"][0] == f"class {top5[0]}, other name"
    np.testing.assert_allclose(result["probabilities"][0], want[top5], rtol=1e-4)
    np.testing.assert_allclose(result["predict"][0], want, rtol=1e-4)


def test_include_top_false_and_pooling():
    base = build_alexnet(include_top=False)
    assert base.output_shape == (None, 6, 6, 256)
    # The five conv layers of Section 3.5: 34,944 + 307,456 + 885,120 + 663,936 + 442,624.
    assert base.count_params() == 2_334_080
    assert build_alexnet(include_top=False, pooling="avg").output_shape == (None, 256)
    small = TINY_MODEL.replace(num_classes=5)
    full = build_alexnet(small)
    pooled = build_alexnet(small, include_top=False, pooling="max")
    pooled.set_weights(full.get_weights()[: len(pooled.get_weights())])
    x = _images(2)[:, :67, :67]
    maps = keras.Model(full.inputs, full.get_layer("flatten").input)(x).numpy()
    np.testing.assert_allclose(pooled(x).numpy(), maps.max(axis=(1, 2)), rtol=1e-6)
    for bad in (dict(pooling="mean", include_top=False), dict(pooling="avg")):
        with pytest.raises(ValueError, match="pooling"):
            build_alexnet(**bad)


def test_weights_paths(tmp_path, small_weights):
    caffemodel = tmp_path / "net.caffemodel"
    write_caffemodel(caffemodel, small_weights)
    x = _images(1, seed=8)
    want = caffe_forward(small_weights, _bgr_nchw(x))
    from_caffe = build_alexnet(weights=caffemodel)
    np.testing.assert_allclose(from_caffe(x).numpy(), want, rtol=2e-5, atol=1e-9)
    from_caffe.save(tmp_path / "m.keras")
    from_caffe.save_weights(tmp_path / "m.weights.h5")
    config = from_caffe.alexnet_config
    np.testing.assert_allclose(build_alexnet(weights=tmp_path / "m.keras")(x).numpy(), want,
                               rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(build_alexnet(config, weights=tmp_path / "m.weights.h5")(x).numpy(),
                               want, rtol=2e-5, atol=1e-9)
    logits = build_alexnet(config.replace(classifier_activation=None), weights=caffemodel)
    np.testing.assert_allclose(tf.nn.softmax(logits(x)).numpy(), want, rtol=2e-5, atol=1e-9)
    base = build_alexnet(weights=caffemodel, include_top=False)
    assert base.output_shape == (None, 6, 6, 16)
    assert "lrn_alpha" in _one_line_error(
        lambda: build_alexnet(config.replace(lrn_alpha=1e-4), weights=caffemodel))
    assert ".caffemodel" in _one_line_error(lambda: build_alexnet(weights=tmp_path / "m.h5"))
    assert "does not hold" in _one_line_error(
        lambda: build_alexnet(config.replace(fc_units=(64, 64)), weights=tmp_path / "m.weights.h5"))


def test_finetune_replaces_fc8_and_freezes(tmp_path, small_weights):
    caffemodel = tmp_path / "net.caffemodel"
    write_caffemodel(caffemodel, small_weights)
    keras.utils.set_random_seed(0)
    model = finetune_model(import_caffe(caffemodel), 3, freeze=("conv1", "conv2", "fc6_t1"))
    assert model.alexnet_config.num_classes == 3
    assert model.get_layer("fc8").kernel.shape == (32, 3)
    assert np.asarray(model.get_layer("fc8").bias).tolist() == [0.0, 0.0, 0.0]  # Section 5
    assert 0.005 < np.std(model.get_layer("fc8").kernel) < 0.015  # N(0, 0.01)
    np.testing.assert_array_equal(model.get_layer("conv3_t0").kernel,
                                  small_weights["conv3"][0][:12].transpose(2, 3, 1, 0))
    before = {layer.name: [np.array(w) for w in layer.get_weights()]
              for layer in model.layers if layer.weights}
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.fit(_images(4, seed=9), np.array([0, 1, 2, 1]), batch_size=4, epochs=1, verbose=0)
    frozen = {"conv1_t0", "conv1_t1", "conv2_t0", "conv2_t1", "fc6_t1"}
    for name, old in before.items():
        same = all(np.array_equal(a, b) for a, b in
                   zip(old, model.get_layer(name).get_weights()))
        assert same == (name in frozen), name
    with pytest.raises(ValueError, match="freeze='conv9'"):
        finetune_model(model, 3, freeze=("conv9",))


def test_reader_names_layers_and_formats(tmp_path, small_weights):
    path = tmp_path / "net.caffemodel"
    for v1 in (False, True):
        write_caffemodel(path, small_weights, v1=v1)
        layers = read_net(path)
        assert [la.name for la in layers][:5] == ["data", "conv1", "relu1", "norm1", "pool1"]
        conv2 = layers[5]
        assert (conv2.type, conv2.params["convolution"]["group"]) == ("Convolution", 2)
        assert conv2.bottom == ["pool1"] and conv2.top == ["conv2"]
        # Legacy blobs keep their 4-D (1, 1, 1, n) bias shape; the importer squeezes it.
        assert conv2.blobs[1].shape == ((1, 1, 1, 16) if v1 else (16,))
