"""Top-k metrics, ten-crop and ensemble averaging, per-class CSV, against NumPy references."""

from __future__ import annotations

import csv
import gzip
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import SCRIPTS, TINY_MODEL, run_python

from keras_alexnet.evaluate import (
    Predictor,
    evaluate,
    evaluate_predictions,
    outputs_logits,
    predict_batches,
    topk_correct,
    topk_error,
    write_per_class_csv,
)
from keras_alexnet.loading import load_model, open_run_data
from keras_alexnet.model import build_alexnet
from keras_alexnet.progress import phase
from keras_alexnet.train_config import TrainConfig

TINY = TINY_MODEL.replace(num_classes=5)


def _reference_topk(probs, labels, k, ties):
    """Second implementation: sort each row with the label placed last (pessimistic) or first
    (optimistic) among equal scores, then look at the label's position."""
    hits = []
    for row, label in zip(probs, labels):
        is_label = np.arange(len(row)) == label
        tie_key = is_label if ties == "pessimistic" else ~is_label
        order = np.lexsort((tie_key, -row))  # primary key: score, descending
        hits.append(int(np.where(order == label)[0][0]) < k)
    return np.array(hits)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# Fixed predictions with ties at and away from the top-k boundary.
FIXED_PROBS = np.array(
    [
        [0.1, 0.6, 0.1, 0.1, 0.1],  # label 1: clear top-1
        [0.3, 0.3, 0.2, 0.1, 0.1],  # label 1: tied for first
        [0.3, 0.3, 0.2, 0.1, 0.1],  # label 2: strictly third
        [0.2, 0.2, 0.2, 0.2, 0.2],  # label 4: all equal
        [0.4, 0.1, 0.1, 0.1, 0.3],  # label 2: tied with 1 and 3 behind two larger
        [0.0, 0.0, 0.5, 0.5, 0.0],  # label 0: tied last
    ]
)
FIXED_LABELS = np.array([1, 1, 2, 4, 2, 0])
# Hand-derived: pessimistic = a tie at the boundary is a miss; optimistic = a hit.
EXPECTED_HITS = {
    ("pessimistic", 1): [1, 0, 0, 0, 0, 0],
    ("optimistic", 1): [1, 1, 0, 1, 0, 0],
    ("pessimistic", 2): [1, 1, 0, 0, 0, 0],
    ("optimistic", 2): [1, 1, 0, 1, 0, 0],
    ("pessimistic", 3): [1, 1, 1, 0, 0, 0],
    ("optimistic", 3): [1, 1, 1, 1, 1, 1],
    ("pessimistic", 5): [1, 1, 1, 1, 1, 1],
}


@pytest.mark.parametrize("ties,k", sorted(EXPECTED_HITS))
def test_topk_on_fixed_predictions_with_ties(ties, k):
    hits = topk_correct(FIXED_PROBS, FIXED_LABELS, k, ties)
    np.testing.assert_array_equal(hits, np.array(EXPECTED_HITS[ties, k], bool))
    np.testing.assert_array_equal(hits, _reference_topk(FIXED_PROBS, FIXED_LABELS, k, ties))
    expected_error = 1.0 - np.mean(EXPECTED_HITS[ties, k])
    assert topk_error(FIXED_PROBS, FIXED_LABELS, k, ties) == pytest.approx(expected_error)


def test_default_rule_counts_ties_as_misses():
    assert topk_error(FIXED_PROBS, FIXED_LABELS, 1) == pytest.approx(5 / 6)
    # A constant network has learned nothing: it must not score 0% error.
    uniform = np.full((4, 10), 0.1)
    assert topk_error(uniform, np.arange(4), 5) == 1.0


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_matches_reference_on_many_ties(ties, k):
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 4, size=(500, 7)).astype("float32")  # ties everywhere
    labels = rng.integers(0, 7, size=500)
    hits = topk_correct(probs, labels, k, ties)
    np.testing.assert_array_equal(hits, _reference_topk(probs, labels, k, ties))
    if ties == "optimistic":  # TensorFlow's in_top_k documents the same rule
        tf_hits = tf.math.in_top_k(tf.constant(labels), tf.constant(probs), k).numpy()
        np.testing.assert_array_equal(hits, tf_hits)


@pytest.mark.parametrize(
    "probs,labels,k,match",
    [
        (FIXED_PROBS, FIXED_LABELS, 0, "k=0"),
        (FIXED_PROBS, FIXED_LABELS, 6, "k=6"),
        (FIXED_PROBS, FIXED_LABELS + 4, 1, "labels must be in"),
        (FIXED_PROBS, FIXED_LABELS[:3], 1, "labels must be"),
        (FIXED_PROBS, FIXED_LABELS.astype(float), 1, "integers"),
        (FIXED_PROBS[0], FIXED_LABELS, 1, "probs must be"),
        (np.where(FIXED_PROBS > 0.5, np.nan, FIXED_PROBS), FIXED_LABELS, 1, "NaN"),
    ],
)
def test_bad_metric_inputs(probs, labels, k, match):
    with pytest.raises(ValueError, match=match):
        topk_error(probs, labels, k)


def test_training_step_counts_top_k_like_evaluation():
    """make_train_step's hit counts follow evaluation's rule: a tie at the boundary misses."""
    from keras_alexnet.train import make_train_step
    from keras_alexnet.train_config import TrainConfig

    # Learning rate 0 and no decay: the step's logits are the constant model's logits below.
    model = build_alexnet(TINY.replace(classifier_activation=None, dropout_rate=0.0))
    for layer in model.layers:  # all-zero weights: every class ties on every image
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    optimizer = TrainConfig(learning_rate=1e-12, weight_decay=0.0).make_optimizer()
    optimizer.build(model.trainable_variables)
    step = make_train_step(model, optimizer, tf.distribute.get_strategy(), 8, top_k=3)
    images = tf.random.uniform((8, 67, 67, 3))
    labels = tf.range(8) % 5
    loss, hits1, hits3 = (float(x) for x in step((images, labels)))
    assert loss == pytest.approx(np.log(5), rel=1e-5)
    uniform = np.full((8, 5), 0.2)
    assert hits1 == topk_correct(uniform, labels.numpy(), 1).sum() == 0
    assert hits3 == topk_correct(uniform, labels.numpy(), 3).sum() == 0
    # The optimistic rule (tf.math.in_top_k's) would have counted every image.
    assert topk_correct(uniform, labels.numpy(), 1, "optimistic").sum() == 8


def test_bad_tie_rule():
    with pytest.raises(ValueError, match="tie rule"):
        topk_error(FIXED_PROBS, FIXED_LABELS, 1, ties="random")


def test_evaluate_predictions_per_class():
    result = evaluate_predictions(FIXED_PROBS, FIXED_LABELS)
    assert result.num_examples == 6
    assert result.top1_error == pytest.approx(5 / 6)
    assert result.top5_error == 0.0 and result.top5_k == 5
    np.testing.assert_array_equal(result.per_class_count, [1, 2, 2, 0, 1])
    np.testing.assert_allclose(result.per_class_accuracy, [0, 0.5, 0, np.nan, 0])
    np.testing.assert_allclose(result.per_class_top5_accuracy, [1, 1, 1, np.nan, 1])


def test_per_class_csv(tmp_path):
    result = evaluate_predictions(FIXED_PROBS, FIXED_LABELS)
    names = ["zero", "one", "two, with comma", "three", "four"]
    path = write_per_class_csv(result, names, tmp_path / "out" / "per_class.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class_index", "class_name", "num_examples", "top1_accuracy",
                       "top5_accuracy"]
    assert [r[1] for r in rows[1:]] == names
    assert [int(r[2]) for r in rows[1:]] == [1, 2, 2, 0, 1]
    assert [r[3] for r in rows[1:]] == ["0.000000", "0.500000", "0.000000", "", "0.000000"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["per_class.csv"]  # no temp left
    with pytest.raises(ValueError, match="class names"):
        write_per_class_csv(result, names[:4], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def _logits_model(num_classes: int, size: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3), name="image"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(num_classes, name="fc8",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=0.05)),
        ],
        name=f"logits_{seed}",
    )


def _images(shape, seed):
    return np.random.default_rng(seed).normal(0, 10, shape).astype("float32")


def test_logits_detection():
    assert outputs_logits(_logits_model(3, 4, 0))
    softmax_last = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
    assert not outputs_logits(softmax_last)
    assert not outputs_logits(build_alexnet(TINY))
    assert outputs_logits(build_alexnet(TINY.replace(classifier_activation=None)))


def test_ten_crop_and_ensemble_average_softmax_outputs():
    size, classes = 6, 4
    models = [_logits_model(classes, size, seed) for seed in (1, 2)]
    images = _images((7, 10, size, size, 3), seed=3)
    labels = np.arange(7) % classes
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)  # a partial batch
    got = np.concatenate([p for p, _ in predict_batches(models, dataset, ten_crop=True)])
    # NumPy: softmax of each model on each view, then the mean over views and models.
    per = [_softmax(m(images.reshape(-1, size, size, 3)).numpy()).reshape(7, 10, classes)
           for m in models]
    expected = np.mean([p.mean(axis=1) for p in per], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # Averaging logits first would be a different (wrong) prediction.
    logit_mean = _softmax(np.mean([m(images.reshape(-1, size, size, 3)).numpy() for m in models],
                                  axis=0).reshape(7, 10, classes).mean(axis=1))
    assert np.abs(logit_mean - expected).max() > 1e-3
    result = evaluate(models, dataset, ten_crop=True)
    reference = evaluate_predictions(expected, labels)
    assert (result.top1_error, result.top5_error) == (reference.top1_error, reference.top5_error)
    assert result.num_examples == 7 and result.num_models == 2 and result.ten_crop
    np.testing.assert_array_equal(result.per_class_accuracy, reference.per_class_accuracy)


def test_single_model_center_crop_ensemble_of_one():
    size, classes = 5, 3
    model = _logits_model(classes, size, seed=4)
    images = _images((9, size, size, 3), seed=5)
    labels = np.array([0, 1, 2] * 3)
    batches = [(images[:4], labels[:4]), (images[4:], labels[4:])]  # any iterable of batches
    got = np.concatenate([p for p, _ in predict_batches(model, batches, ten_crop=False)])
    np.testing.assert_allclose(got, _softmax(model(images).numpy()), rtol=1e-5, atol=1e-7)
    # from_logits=False trusts the model's outputs as they are.
    raw = np.concatenate(
        [p for p, _ in predict_batches(model, batches, ten_crop=False, from_logits=False)]
    )
    np.testing.assert_allclose(raw, model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_predictor_compiles_once_for_dataset_after_dataset():
    # What a training loop's validations rely on: the same answers, one trace.
    size, classes = 5, 3
    model = _logits_model(classes, size, seed=7)
    images = _images((8, size, size, 3), seed=8)
    batches = [(images[:4], np.arange(4) % classes), (images[4:], np.arange(4) % classes)]
    predict = Predictor(model, ten_crop=False)
    for _ in range(3):
        got = np.concatenate([p for p, _ in predict(batches)])
        np.testing.assert_allclose(got, _softmax(model(images).numpy()), rtol=1e-5, atol=1e-7)
    assert predict._step.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match=r"ten_crop=False expects images shaped \[B, S, S, 3\]"):
        next(predict([(images[None], np.zeros(1))]))


def test_progress_bar_counts_batches_and_changes_nothing(capsys):
    model = _logits_model(3, 4, seed=6)
    images, labels = _images((10, 4, 4, 3), 7), np.arange(10) % 3
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)  # 3 batches
    quiet = evaluate(model, dataset, ten_crop=False)
    assert capsys.readouterr().out == ""  # the library is quiet by default
    shown = evaluate(model, dataset, ten_crop=False, progress=True)
    assert "3/3" in capsys.readouterr().out  # the dataset's cardinality
    assert (shown.top1_error, shown.num_examples) == (quiet.top1_error, quiet.num_examples)
    # A stream of unknown length: a count, ended with a line of its own when it runs out.
    stream = (batch for batch in dataset)
    evaluate(model, stream, ten_crop=False, progress=True)
    out = capsys.readouterr().out
    assert "3/Unknown" in out and out.endswith("\n")
    # Fewer batches than expected: the bar stops where the data did.
    evaluate(model, dataset, ten_crop=False, progress=True, num_batches=5)
    out = capsys.readouterr().out
    assert "3/5" in out and out.endswith("\n")


def test_phase_lines(capsys):
    with phase("Writing the SavedModel"):
        pass
    assert re.fullmatch(r"Writing the SavedModel\.\.\. done in \d+ s\n", capsys.readouterr().out)
    with pytest.raises(OSError), phase("Writing the SavedModel"):
        raise OSError("disk full")
    assert capsys.readouterr().out == "Writing the SavedModel... failed\n"
    with phase("Writing the SavedModel", enabled=False):
        pass
    assert capsys.readouterr().out == ""


def test_evaluate_rejects_bad_input():
    model = _logits_model(3, 4, seed=0)
    center = [(_images((2, 4, 4, 3), 0), np.array([0, 1]))]
    with pytest.raises(ValueError, match="ten_crop=True expects"):
        evaluate(model, center, ten_crop=True)
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [], ten_crop=False)
    with pytest.raises(ValueError, match="keras.Model"):
        evaluate([], center, ten_crop=False)


@pytest.mark.parametrize("ten_crop", [False, True], ids=["center", "ten_crop"])
def test_evaluate_tiny_alexnet(ten_crop, tmp_path):
    keras.utils.set_random_seed(6)
    model = build_alexnet(TINY.replace(weight_init_std=0.05))
    s = TINY.input_size
    shape = (6, 10, s, s, 3) if ten_crop else (6, s, s, 3)
    images = _images(shape, seed=7)
    labels = np.array([0, 1, 2, 3, 4, 0])
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    result = evaluate(model, dataset, ten_crop=ten_crop)
    flat = images.reshape(-1, s, s, 3)
    probs = model(flat, training=False).numpy()  # the model's own softmax
    if ten_crop:
        probs = probs.reshape(6, 10, -1).mean(axis=1)
    reference = evaluate_predictions(probs, labels)
    assert result.top1_error == reference.top1_error
    assert result.top5_error == 0.0 and result.top5_k == 5  # 5 classes: top-5 holds all
    # Through a .keras file, as scripts/evaluate.py loads checkpoints.
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = load_model(path)
    again = np.concatenate([p for p, _ in predict_batches(loaded, dataset, ten_crop=ten_crop)])
    np.testing.assert_allclose(again, probs, rtol=1e-5, atol=1e-7)


def test_load_model_errors_and_the_check_before_tensorflow_agree(tmp_path):
    from keras_alexnet.run_files import check_model_path

    empty = tmp_path / "checkpoints"
    empty.mkdir()
    for path, message in [(tmp_path / "missing.keras", "No model file"),
                          (tmp_path / "ckpt-3", "No checkpoint found"),
                          (empty, "No checkpoint found")]:
        for check in (load_model, check_model_path):
            with pytest.raises(ValueError, match=message):
                check(path)
    # What a CheckpointManager writes passes, as its directory and as a prefix.
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), empty, 1)
    prefix = manager.save()
    check_model_path(empty)
    check_model_path(prefix)
    check_model_path("gs://bucket/run/checkpoints")  # remote: TensorFlow's to check


def _write_idx(path, array, magic):
    header = np.array([magic, *array.shape], ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_evaluate_script_end_to_end(tmp_path):
    """scripts/evaluate.py on a 2-model ensemble over a tiny Fashion-MNIST-format dataset."""
    from keras_alexnet.data import open_source

    rng = np.random.default_rng(8)
    data_dir = _fashion_mnist_dir(tmp_path / "fmnist", rng)
    config = TINY.replace(num_classes=10, weight_init_std=0.05)
    paths = []
    for seed in (9, 10):
        keras.utils.set_random_seed(seed)
        paths.append(tmp_path / f"m{seed}.keras")
        build_alexnet(config).save(paths[-1])
    csv_path = tmp_path / "per_class.csv"
    proc = run_python(
        SCRIPTS / "evaluate.py", f"--checkpoint={paths[0]}", f"--checkpoint={paths[1]}",
        f"--data=fashion_mnist:{data_dir}", "--ten_crop", "--batch_size=4",
        f"--per_class_csv={csv_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("4/4") >= 2  # a bar per crop mode: 15 test images, batches of 4
    # The same evaluation in this process gives the same lines.
    source = open_source(f"fashion_mnist:{data_dir}")
    models = [load_model(p) for p in paths]
    expected = [
        evaluate(models, source.eval_dataset(4, TINY.input_size, ten_crop=t), ten_crop=t)
        for t in (False, True)
    ]
    lines = [ln for ln in proc.stdout.splitlines() if " error " in ln]
    assert lines == [r.summary() for r in expected]
    assert "average of 2 models" in lines[0] and lines[1].startswith("ten-crop")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class_name"] for r in rows] == list(source.info.class_names)
    assert [int(r["num_examples"]) for r in rows] == [2] * 5 + [1] * 5
    np.testing.assert_allclose([float(r["top1_accuracy"]) for r in rows],
                               expected[1].per_class_accuracy, atol=1e-6)


def _fashion_mnist_dir(path, rng, sizes=(("train", 12), ("t10k", 15))):
    path.mkdir()
    for prefix, n in sizes:
        _write_idx(path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)),
                   2051)
        _write_idx(path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    return path


def test_open_run_data_resizes_as_the_run_trained(tmp_path):
    data_dir = _fashion_mnist_dir(tmp_path / "fmnist", np.random.default_rng(3))
    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    run = TrainConfig(model=TINY.replace(num_classes=10), data=f"fashion_mnist:{data_dir}",
                      data_image_size=72)
    (work / "config.json").write_text(run.to_json())
    # From the model file, the checkpoint folder or one checkpoint prefix in it.
    for path in (work / "model.keras", work / "checkpoints", work / "checkpoints" / "ckpt-3"):
        assert open_run_data(path).info.image_size == 72
    # Data of the run's kind is resized as the run's was, unless told otherwise.
    assert open_run_data(work / "model.keras", f"fashion_mnist:{data_dir}").info.image_size == 72
    assert open_run_data(work / "model.keras", image_size=80).info.image_size == 80
    with pytest.raises(ValueError, match="pass --data"):
        open_run_data(tmp_path / "elsewhere.keras")
    # A run on some classes is scored on those classes, labelled 0..k-1 in the run's order.
    (work / "config.json").write_text(run.replace(data_classes=(7, 2)).to_json())
    source = open_run_data(work / "model.keras")
    assert source.info.num_classes == 2 and source.info.num_eval == 3  # test labels 2, 7, 12
    assert source.info.class_names == ("Sneaker", "Pullover")
    labels = np.concatenate([y.numpy() for _, y in source.eval_dataset(8, 32)])
    np.testing.assert_array_equal(labels, [1, 0, 1])  # test images 2, 7, 12 are 2, 7, 2


def test_evaluate_script_errors_are_one_line(tmp_path):  # fails before TF's start-up
    proc = run_python(SCRIPTS / "evaluate.py", f"--checkpoint={tmp_path / 'missing.keras'}",
                      "--data=fashion_mnist")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: No model file")
    assert "Traceback" not in proc.stderr
