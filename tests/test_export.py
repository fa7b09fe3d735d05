"""SavedModel export: round trip in a process that never imports keras_alexnet, and loaders."""

from __future__ import annotations

import io
import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from data_fixtures import NAMES as FIXTURE_NAMES
from data_fixtures import WNIDS, make_imagenet
from helpers import SCRIPTS, TINY_MODEL, run_python
from PIL import Image

from keras_alexnet import AlexNetConfig, build_alexnet
from keras_alexnet.checkpoint import model_state
from keras_alexnet.export import export_savedmodel
from keras_alexnet.loading import load_keras_model, model_from_checkpoint
from keras_alexnet.train_config import TrainConfig

TINY = TINY_MODEL.replace(num_classes=7)
STORED = 80  # the tiny tests' stored image size (the paper's is 256)
NAMES = [f"class {c}" for c in range(TINY.num_classes)]


def _model(config: AlexNetConfig, seed: int) -> keras.Model:
    """A network whose outputs are far from uniform, so the top-5 order is well defined."""
    model = build_alexnet(config)
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
        # He-scaled kernels, conv1 damped for 0..255 inputs; zero biases keep it input-driven.
        scale = np.sqrt(2.0 / fan_in) / (10.0 if w.shape[:2] == (11, 11) else 1.0)
        weights.append((rng.normal(0, scale, w.shape) if w.ndim > 1 else
                        np.zeros(w.shape)).astype(np.float32))
    model.set_weights(weights)
    return model


def _mean_image() -> np.ndarray:
    yy, xx = np.mgrid[0:STORED, 0:STORED]
    mean = np.stack([xx * 2.0 + 40, yy * 1.5 + 60, 120 + 0 * xx], axis=-1)
    return mean.astype(np.float32)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _requests() -> dict[str, bytes]:
    rng = np.random.default_rng(1)

    def picture(h, w):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
        return np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)

    return {
        "jpeg": _encode(picture(120, 160), "JPEG"),
        "png": _encode(picture(90, 90), "PNG"),
        "gray_jpeg": _encode(picture(100, 131)[:, :, 0], "JPEG"),
        "gray_png": _encode(picture(83, 97)[:, :, 1], "PNG"),
        "odd_small": _encode(picture(37, 51), "PNG"),  # smaller than the stored size
        "odd_tall": _encode(picture(301, 85), "JPEG"),
    }


def _reference_image(data: bytes, size: int) -> np.ndarray:
    """Section 2 written out independently: decode, shorter side to `size`, central crop."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    h, w = image.shape[:2]
    nh, nw = (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
    resized = tf.image.resize(image, (nh, nw), method="bicubic", antialias=True).numpy()
    top, left = (nh - size) // 2, (nw - size) // 2
    out = np.clip(np.round(resized[top:top + size, left:left + size]), 0, 255)
    return out.astype(np.float32)


def _reference_views(data: bytes, mean: np.ndarray, size: int, ten_crop: bool) -> np.ndarray:
    x = _reference_image(data, mean.shape[0]) - mean
    n = x.shape[0]
    c = (n - size) // 2
    if not ten_crop:
        return x[None, c:c + size, c:c + size]
    corners = [(0, 0), (0, n - size), (n - size, 0), (n - size, n - size), (c, c)]
    views = [x[y:y + size, z:z + size] for y, z in corners]
    return np.stack(views + [v[:, ::-1] for v in views])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# Runs in a fresh interpreter: plain TensorFlow only.
_SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    args = json.loads(open(sys.argv[1]).read())
    inputs = np.load(args["inputs"])
    requests = [bytes.fromhex(h) for h in args["requests"]]
    out = {}
    for key, path in args["models"].items():
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        first = serve(images=tf.constant(requests))
        errors = []
        for bad in args["bad"]:
            try:
                serve(images=tf.constant([requests[0], bytes.fromhex(bad)]))
                errors.append(None)
            except tf.errors.InvalidArgumentError as e:
                errors.append(e.message)
        again = serve(images=tf.constant(requests))
        empty = serve(images=tf.constant([], tf.string))
        empty_float = loaded.signatures["predict_images"](
            images=tf.zeros([0] + list(inputs[key].shape[1:])))
        x = tf.constant(inputs[key])
        out[key] = {
            "classes": first["classes"].numpy().tolist(),
            "class_names": [[n.decode() for n in row] for row in first["class_names"].numpy()],
            "probabilities": first["probabilities"].numpy().tolist(),
            "again": again["probabilities"].numpy().tolist(),
            "errors": errors,
            "predict": loaded.signatures["predict_images"](images=x)["probabilities"]
                .numpy().tolist(),
            "features": loaded.signatures["features"](images=x)["fc7"].numpy().tolist(),
            "config": json.loads(open(loaded.config_asset.asset_path.numpy()).read()),
            "class_index": open(loaded.class_index_asset.asset_path.numpy()).read(),
            "signatures": sorted(loaded.signatures),
            "empty": {k: list(v.shape) for k, v in empty.items()},
            "empty_predict": list(empty_float["probabilities"].shape),
        }
    assert "keras_alexnet" not in sys.modules, "the serving process imported keras_alexnet"
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def served(build_once):
    """Two exports (softmax + center crop, logits + ten crops) served by a fresh process."""
    setups = {"center": (TINY, False), "ten": (TINY.replace(classifier_activation=None), True)}

    def build(root):
        mean = _mean_image()
        requests = _requests()
        paths, inputs = {}, {}
        for key, (config, ten) in setups.items():
            paths[key] = str(export_savedmodel(_model(config, seed=3), root, name=key,
                                               class_names=NAMES, mean_image=mean,
                                               ten_crop=ten))
            inputs[key] = np.random.default_rng(5).normal(0, 50, (3, 67, 67, 3)).astype(
                np.float32)
        np.savez(root / "inputs.npz", **inputs)
        jpeg = requests["jpeg"]
        # Text, a truncated JPEG, nothing, and 3,000 random bytes (not UTF-8).
        noise = np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes()
        bad = [b"this is not an image", jpeg[: len(jpeg) // 3], b"", b"\x80\xff" + noise]
        args = {"models": paths, "inputs": str(root / "inputs.npz"),
                "requests": [r.hex() for r in requests.values()],
                "bad": [b.hex() for b in bad]}
        (root / "args.json").write_text(json.dumps(args))
        proc = run_python("-c", _SERVE, root / "args.json", cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.split("RESULT", 1)[1])
        return dict(result=result, inputs=inputs, requests=requests, mean=mean, root=root)

    # The exported networks again, here: _model is seeded, so they are the served ones.
    models = {key: _model(config, seed=3) for key, (config, _) in setups.items()}
    return dict(build_once("savedmodels_served", build), models=models, setups=setups)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["center", "ten"])
def test_serving_matches_keras_model_on_bytes(served, key):
    config, ten = served["setups"][key]
    model, got = served["models"][key], served["result"][key]
    for i, (kind, data) in enumerate(served["requests"].items()):
        views = _reference_views(data, served["mean"], config.input_size, ten)
        out = model(views, training=False).numpy()
        probs = (out if config.classifier_activation else _softmax(out)).mean(axis=0)
        want = np.argsort(-probs)[:5]
        classes = np.asarray(got["classes"][i])
        # Same classes with the same probabilities, in descending order (ties may swap).
        np.testing.assert_allclose(got["probabilities"][i], probs[classes], atol=1e-5, err_msg=kind)
        np.testing.assert_allclose(got["probabilities"][i], probs[want], atol=1e-5, err_msg=kind)
        assert classes.tolist() == want.tolist() or np.ptp(probs[want] - probs[classes]) < 1e-5
        assert got["class_names"][i] == [NAMES[c] for c in classes]
    # The requests are told apart (a model ignoring its input would pass the checks above).
    assert len({tuple(c) for c in got["classes"]}) > 2


@pytest.mark.slow
def test_corrupt_bytes_fail_clearly_and_serving_continues(served):
    for key in ("center", "ten"):
        got = served["result"][key]
        assert all(e is not None for e in got["errors"]), got["errors"]
        for message in got["errors"]:
            assert "could not be decoded" in message or "could_not_decode_image" in message
        # Non-image and empty bytes fail the format check with a plain-words message, and
        # their first bytes read as hex, whatever they are.
        assert "Image could not be decoded" in got["errors"][0]
        assert "first bytes, hex:] [74 68 69 73 20 69 73 20]" in got["errors"][0]  # "this is "
        assert "Image could not be decoded" in got["errors"][2]
        assert "Image could not be decoded" in got["errors"][3]
        assert "first bytes, hex:] [80 ff " in got["errors"][3]
        np.testing.assert_allclose(got["again"], got["probabilities"], atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["center", "ten"])
def test_float_signatures_and_assets(served, key):
    config, _ = served["setups"][key]
    model, got, x = served["models"][key], served["result"][key], served["inputs"][key]
    out = model.predict(x, verbose=0)
    want = out if config.classifier_activation else _softmax(out)
    np.testing.assert_allclose(got["predict"], want, atol=1e-5)
    fc7 = keras.Model(model.inputs, model.get_layer("fc7").output).predict(x, verbose=0)
    assert np.asarray(got["features"]).shape == (3, config.fc_units[-1])
    np.testing.assert_allclose(got["features"], fc7, rtol=1e-5, atol=1e-5)
    assert AlexNetConfig.from_dict(got["config"]) == config
    lines = got["class_index"].splitlines()
    assert lines[0] == "index\twnid\tname" and lines[3] == f"2\t{NAMES[2]}\t{NAMES[2]}"
    assert got["signatures"] == ["features", "predict_images", "serving_default"]
    # An empty request gets empty answers.
    assert got["empty"] == {"classes": [0, 5], "class_names": [0, 5], "probabilities": [0, 5]}
    assert got["empty_predict"] == [0, config.num_classes]


def test_versions_increment_and_never_overwrite(tmp_path):
    model = build_alexnet(TINY)
    kw = dict(class_names=NAMES, mean_image=_mean_image())
    (tmp_path / "m" / "7").mkdir(parents=True)
    (tmp_path / "m" / "notes").mkdir()
    assert export_savedmodel(model, tmp_path, "m", **kw).name == "8"
    with pytest.raises(ValueError, match="already exists"):
        export_savedmodel(model, tmp_path, "m", 8, **kw)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["7", "8", "notes"]
    with pytest.raises(ValueError, match="class names"):
        export_savedmodel(model, tmp_path, "m", class_names=NAMES[:3], mean_image=_mean_image())
    with pytest.raises(ValueError, match="mean_image"):
        export_savedmodel(model, tmp_path, "m", class_names=NAMES, mean_image=np.zeros((60, 60, 3)))


def test_model_from_checkpoint_and_keras_file(tmp_path):
    config = TINY.replace(num_towers=1)
    model = _model(config, seed=11)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)
    work = tmp_path / "work"
    (work).mkdir()
    # float32: the comparison below is with `model`, built in float32.
    (work / "config.json").write_text(TrainConfig(model=config, precision="float32").to_json())
    # The trainer's layout (keras_alexnet.checkpoint): variables keyed by layer, plus its state.
    ckpt = tf.train.Checkpoint(model=model_state(model), optimizer=optimizer,
                               step=tf.Variable(5))
    tf.train.CheckpointManager(ckpt, str(work / "checkpoints"), max_to_keep=2).save()
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)

    restored = model_from_checkpoint(work / "checkpoints")  # config.json found in the parent
    np.testing.assert_allclose(restored.predict(x, verbose=0), want, atol=1e-6)
    with pytest.raises(ValueError, match="No checkpoint"):
        model_from_checkpoint(tmp_path / "nothing", config)
    with pytest.raises(ValueError):
        model_from_checkpoint(work / "checkpoints", TINY)  # two towers: names do not match

    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_keras_model(tmp_path / "m.keras").predict(x, verbose=0),
                               want, atol=1e-6)
    with pytest.raises(ValueError, match=".keras"):
        load_keras_model(tmp_path / "m.h5")


@pytest.mark.slow
def test_export_script_from_checkpoint(tmp_path):
    """scripts/export.py on a training run's work dir: config and data come from config.json."""
    make_imagenet(tmp_path / "imagenet", flat_val=False)
    config = TINY.replace(num_classes=3)
    model = _model(config, seed=2)
    work = tmp_path / "run"
    work.mkdir()
    run = TrainConfig(model=config, data=f"folder:{tmp_path / 'imagenet'}", data_image_size=80)
    (work / "config.json").write_text(run.to_json())
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model_state(model)),
                               str(work / "checkpoints"), max_to_keep=1).save()
    proc = run_python(SCRIPTS / "export.py", f"--checkpoint={work / 'checkpoints'}",
                      f"--export_root={tmp_path / 'sm'}", "--ten_crop")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # TF's SavedModel writer lists every captured variable per signature at INFO: not shown.
    assert "input_1, input_2" not in proc.stderr and "Sharding callback" not in proc.stderr
    path = tmp_path / "sm" / "alexnet" / "1"
    assert proc.stdout.strip().splitlines()[-1] == str(path)
    index = (path / "assets" / "class_index.tsv").read_text().splitlines()
    assert index[1:] == [f"{i}\t{w}\t{n}" for i, (w, n) in enumerate(zip(WNIDS, FIXTURE_NAMES))]
    loaded = tf.saved_model.load(str(path))
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype(np.float32)
    got = loaded.signatures["predict_images"](images=tf.constant(x))["probabilities"]
    np.testing.assert_allclose(got.numpy(), model(x, training=False).numpy(), atol=1e-6)
    with open(path / "assets" / "config.json") as f:
        assert AlexNetConfig.from_dict(json.load(f)) == config


@pytest.mark.slow
def test_tower_placement_is_not_baked_into_the_export(tmp_path):
    """A model placed over two devices (conftest's two CPUs) exports without device strings,
    so it serves on a machine with any devices."""
    placed = build_alexnet(TINY, tower_devices=("/CPU:0", "/CPU:1"))
    path = export_savedmodel(placed, tmp_path, class_names=NAMES, mean_image=_mean_image())
    assert b"CPU:1" not in (path / "saved_model.pb").read_bytes()
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype(np.float32)
    got = tf.saved_model.load(str(path)).signatures["predict_images"](images=tf.constant(x))
    np.testing.assert_allclose(got["probabilities"].numpy(), placed(x).numpy(), atol=1e-6)


def test_export_uses_tf_lrn_kernel_not_xla(tmp_path):
    """In this process a large LRN map runs through XLA; a SavedModel must not need XLA (TF
    Serving runs XLA-compiled functions only with --xla_cpu_compilation_enabled)."""
    from tensorflow.core.protobuf import saved_model_pb2

    def xla_functions(graph_def):
        return [f.signature.name for f in graph_def.library.function
                if f.attr["_XlaMustCompile"].b]

    # conv1's maps: 15 * 15 * 160 values per image and tower, above XLA_MIN_VALUES.
    model = _model(TINY.replace(conv_filters=(320, 16, 16, 16, 16)), seed=1)
    spec = tf.TensorSpec((2, TINY.input_size, TINY.input_size, 3))
    traced = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    assert xla_functions(traced.graph.as_graph_def())
    path = export_savedmodel(model, tmp_path, class_names=NAMES, mean_image=_mean_image())
    graph = saved_model_pb2.SavedModel.FromString(
        (path / "saved_model.pb").read_bytes()).meta_graphs[0].graph_def
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    assert "LRN" in ops
    assert not xla_functions(graph)
