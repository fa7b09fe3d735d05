"""The custom training loop: learning, exact resume after SIGKILL, NaN handling, TensorBoard."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, SCRIPTS, TINY_MODEL, python_env, run_python
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keras_alexnet import analysis
from keras_alexnet.data.pipeline import DatasetInfo, Source
from keras_alexnet.evaluate import evaluate
from keras_alexnet.loading import load_model
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import preset
from keras_alexnet.run_files import read_train_log
from keras_alexnet.train import NonFiniteLossError, TrainingInterrupted, train
from keras_alexnet.train_config import TrainConfig

ENV = python_env()


class StripesSource(Source):
    """A small in-memory source through the real pipeline: class c is a bright band in the
    c-th horizontal strip of a noisy image, so a few dozen steps can learn it."""

    def __init__(self, num_classes: int = 4, size: int = 72, num_train: int = 512,
                 num_eval: int = 64) -> None:
        rng = np.random.default_rng(0)
        self.data = {}
        band = size // num_classes
        for split, n in (("train", num_train), ("eval", num_eval)):
            labels = rng.integers(0, num_classes, n).astype(np.int32)
            images = rng.uniform(0, 100, (n, size, size, 3)).astype(np.uint8)
            for i, c in enumerate(labels):
                images[i, c * band:(c + 1) * band] += 150
            self.data[split] = (images, labels)
        names = tuple(f"band{c}" for c in range(num_classes))
        self.info = DatasetInfo(
            num_classes=num_classes, class_names=names, wnids=names, num_train=num_train,
            num_eval=num_eval, image_size=size,
            mean_image=self.data["train"][0].mean(axis=0).astype(np.float32),
            eigvals=np.ones(3, np.float32), eigvecs=np.eye(3, dtype=np.float32))

    def _elements(self, split, rng, num_shards, shard_index):
        images, labels = self.data[split]
        order = rng.permutation(len(labels)) if rng is not None else np.arange(len(labels))
        order = order[shard_index::num_shards]
        return tf.data.Dataset.from_tensor_slices((images[order], labels[order]))

    def _decode(self, image, label):
        return image, label


def stripes_config(work_dir: Path, **changes) -> TrainConfig:
    base = preset("tiny")
    settings = dict(model=base.model.replace(num_classes=4), work_dir=str(work_dir),
                    steps_per_epoch=16, epochs=2, eval_steps=None, deterministic=False,
                    schedule_patience=100)
    return base.replace(**{**settings, **changes})


@pytest.fixture(scope="module")
def stripes():
    return StripesSource()


@pytest.fixture(scope="module")
def stripes_run(stripes, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("stripes")
    return train(stripes_config(work_dir), source=stripes)


@pytest.mark.slow
def test_each_step_logs_its_top1_hits(stripes_run):
    log = read_train_log(stripes_run.work_dir)
    hits = np.array([e["top1_hits"] for e in log])
    batch = 16  # the tiny preset's
    assert len(hits) == 32 and ((hits >= 0) & (hits <= batch)).all()
    # The epoch's training error in TensorBoard is the same steps' hits over its images.
    events = EventAccumulator(str(stripes_run.log_dir / "train")).Reload()
    epoch_errors = {e.step: float(tf.make_ndarray(e.tensor_proto))
                    for e in events.Tensors("top1_error")}
    for step in (16, 32):
        assert epoch_errors[step] == pytest.approx(1 - hits[step - 16:step].sum() / (16 * batch))
    assert hits[16:].sum() > hits[:16].sum()  # it learned the stripes


@pytest.mark.slow  # trains 32 steps in process
def test_a_step_callback_ends_the_run_saved_and_validated(stripes, tmp_path):
    seen = []

    def stop_at_3(record):
        seen.append(record["step"])
        return record["step"] == 3

    r = train(stripes_config(tmp_path), source=stripes, on_step_end=stop_at_3)
    assert (r.stop_reason, r.step, r.epoch, seen) == ("callback", 3, 0, [1, 2, 3])
    assert [h["step"] for h in r.history] == [3]  # validated where it stopped
    # Saved there: the same command resumes at step 4 and runs to the end.
    again = train(stripes_config(tmp_path), source=stripes)
    assert (again.stop_reason, again.step) == ("epochs", 32)
    assert [e["step"] for e in read_train_log(tmp_path)] == list(range(1, 33))


def test_another_network_trains_through_the_same_loop(tmp_path):
    from keras_alexnet.claims.small_cnn import build_small_cnn

    source = StripesSource(size=32)

    def build(classifier_activation):
        return build_small_cnn(4, 32, classifier_activation=classifier_activation)

    config = stripes_config(tmp_path, network="small_cnn", epochs=1)
    with pytest.raises(ValueError, match="network='small_cnn' is not built from config.model"):
        train(config, source=source)
    r = train(config, source=source, build_model=build)
    assert r.model.name == "small_cnn_relu" and r.model.input_shape[1:] == (32, 32, 3)
    # The saved model is the builder's softmax network with the trained weights.
    probs = r.model.predict(source.data["eval"][0][:8].astype(np.float32), verbose=0)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert load_model(r.model_path).count_params() == r.model.count_params()
    assert json.loads((tmp_path / "config.json").read_text())["network"] == "small_cnn"
    assert len(read_train_log(tmp_path)) == 16 and (tmp_path / "logs" / "train").is_dir()


def numpy_eval_loss(model, source, input_size):
    """Mean cross-entropy over the eval split, from the model's probabilities, in NumPy."""
    losses = []
    for images, labels in source.eval_dataset(64, input_size):
        probs = model.predict(images, verbose=0)
        losses.append(-np.log(probs[np.arange(len(labels)), labels.numpy()]))
    return float(np.mean(np.concatenate(losses)))


@pytest.mark.slow
def test_training_lowers_the_loss(stripes_run, stripes):
    r = stripes_run
    assert r.stop_reason == "epochs" and r.step == 32 and r.epoch == 2
    # Start: near-uniform predictions over 4 classes; end: well below.
    assert r.history[0]["val_loss"] < 1.25 < np.log(4)
    assert r.history[-1]["val_loss"] < r.history[0]["val_loss"] - 0.3
    assert r.history[-1]["val_top1_error"] < 0.25
    # The returned model outputs probabilities and holds the trained weights: its loss on the
    # eval split, computed independently, matches the loop's last validation loss.
    got = numpy_eval_loss(r.model, stripes, r.model.input_shape[1])
    assert got == pytest.approx(r.history[-1]["val_loss"], rel=1e-4)
    # The saved .keras model is the returned one.
    images, _ = next(iter(stripes.eval_dataset(8, r.model.input_shape[1])))
    loaded = load_model(r.model_path)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               r.model.predict(images, verbose=0), rtol=1e-5, atol=1e-7)
    log = read_train_log(r.work_dir)
    assert [e["step"] for e in log] == list(range(1, 33))
    assert json.loads((r.work_dir / "config.json").read_text())["steps_per_epoch"] == 16


@pytest.mark.slow
def test_tensorboard_has_expected_tags(stripes_run):
    r = stripes_run
    train_events = EventAccumulator(str(r.log_dir / "train"), size_guidance={"tensors": 0})
    val_events = EventAccumulator(str(r.log_dir / "validation"), size_guidance={"tensors": 0})
    train_tags = set(train_events.Reload().Tags()["tensors"])
    val_tags = set(val_events.Reload().Tags()["tensors"])
    assert {"loss", "top1_error", "top5_error", "learning_rate", "images_per_second",
            "conv1_kernels", "config"} <= train_tags
    assert {"weights/conv1_t0/kernel", "weights/fc8/kernel"} <= train_tags
    assert {"loss", "top1_error", "top5_error"} <= val_tags
    # log_every_steps=1: each "loss" point is that step's loss from the step log.
    logged = {e["step"]: e["loss"] for e in read_train_log(r.work_dir)}
    points = train_events.Tensors("loss")
    assert len(points) == 32
    for p in points:
        assert float(tf.make_ndarray(p.tensor_proto)) == pytest.approx(logged[p.step], rel=1e-6)
    val = [float(tf.make_ndarray(p.tensor_proto)) for p in val_events.Tensors("top1_error")]
    assert val == pytest.approx([h["val_top1_error"] for h in r.history])
    # The last conv1 image is the trained model's kernel grid (PNG round trip is lossless).
    png = tf.make_ndarray(train_events.Tensors("conv1_kernels")[-1].tensor_proto)[2]
    want = analysis.kernel_grid(analysis.conv1_kernels(r.model))
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), want)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(stripes, tmp_path):
    config = stripes_config(tmp_path, learning_rate=1e30, checkpoint_every_steps=1)
    with pytest.raises(NonFiniteLossError, match=r"at step (\d+)") as err:
        train(config, source=stripes)
    # The loss or, one step earlier, the weights may be the first to overflow.
    failed_step = int(re.search(r"at step (\d+)", err.value.args[0]).group(1))
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest is not None and latest in err.value.args[0]
    reader = tf.train.load_checkpoint(latest)
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") < failed_step
    model_keys = [k for k in reader.get_variable_to_shape_map() if k.startswith("model/")]
    assert model_keys
    for key in model_keys:
        assert np.all(np.isfinite(reader.get_tensor(key))), key
    assert all(np.isfinite(e["loss"]) for e in read_train_log(tmp_path))


@pytest.mark.slow
def test_time_budget_stops_after_a_step(stripes, tmp_path, capsys):
    capsys.readouterr()
    # Not always default_int_handler: a shell starts background jobs with SIGINT ignored.
    sigint_before = signal.getsignal(signal.SIGINT)
    result = train(stripes_config(tmp_path, max_train_seconds=1e-9, progress_bar=True),
                   source=stripes)
    assert (result.stop_reason, result.step, result.epoch) == ("time_budget", 1, 0)
    # The budget, not the 16-step epoch, ends this run: the bar says so and promises no ETA.
    out = capsys.readouterr().out
    assert "Epoch 1/2: time budget" in out and "/16" not in out and "Unknown" not in out
    assert re.search(r"^1 steps - \d+\.\d min left - loss: [\d.]+ - images/s: [\d.]+$", out,
                     re.MULTILINE)
    # The checkpoint holds the mid-epoch position, so a rerun continues from step 1.
    # A line cut short by the kill is dropped on resume, not a crash.
    with (tmp_path / "train_log.jsonl").open("a") as log:
        log.write('{"step": 2, "epo')

    def interrupt(record):  # Ctrl-C during step 2: saved after it, then stopped
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match=r"^SIGINT at step 2: saved .*ckpt-\d+\. Rerun"):
        train(stripes_config(tmp_path, progress_bar=True), source=stripes,
              on_step_end=interrupt)
    # The bar counts the 15 batches left, so its ETA and mean loss cover only this run's steps.
    out = capsys.readouterr().out
    assert "Epoch 1/2 (resumed after batch 1)" in out and "1/15" in out and "2/16" not in out
    assert [e["step"] for e in read_train_log(tmp_path)] == [1, 2]
    assert signal.getsignal(signal.SIGINT) is sigint_before  # handlers restored
    again = train(stripes_config(tmp_path, max_train_seconds=1e-9), source=stripes)
    assert (again.step, again.epoch) == (3, 0)  # the interrupted run's step 2 was saved


def test_data_without_validation_images_is_an_early_error(tmp_path):
    # Validation first comes at the end of epoch 1: without this check a run (and each
    # resume of it) would train a whole epoch and then fail.
    with pytest.raises(ValueError, match="no validation images"):
        train(stripes_config(tmp_path), source=StripesSource(num_eval=0))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_ten_crop_validation_matches_evaluate(stripes, tmp_path):
    result = train(stripes_config(tmp_path, epochs=1, steps_per_epoch=4, ten_crop_eval=True),
                   source=stripes)
    size = result.model.input_shape[1]
    expected = evaluate(result.model, stripes.eval_dataset(16, size, ten_crop=True),
                        ten_crop=True)
    assert result.history[-1]["val_top1_error"] == pytest.approx(expected.top1_error)
    assert result.history[-1]["val_top5_error"] == pytest.approx(expected.top5_error)


@pytest.mark.slow
def test_mirrored_and_tower_placement_match_one_device(stripes, tmp_path):
    # Without dropout, two replicas each taking half the batch must give the same losses and
    # weights as one device: the per-example loss is divided by the *global* batch size.
    config = stripes_config(tmp_path / "one", epochs=1, steps_per_epoch=3)
    config = config.replace(model=config.model.replace(dropout_rate=0.0))
    one = train(config, source=stripes)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = train(config.replace(work_dir=str(tmp_path / "two")), source=stripes,
                strategy=strategy)
    # The paper's model parallelism: each tower on its own (logical CPU) device.
    towers = train(config.replace(work_dir=str(tmp_path / "towers")), source=stripes,
                   tower_devices=("/cpu:0", "/cpu:1"))
    runs = (one, two, towers)
    losses = [[e["loss"] for e in read_train_log(r.work_dir)] for r in runs]
    for other in runs[1:]:
        np.testing.assert_allclose(losses[runs.index(other)], losses[0], rtol=1e-5)
        for a, b in zip(one.model.trainable_variables, other.model.trainable_variables):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=a.path)


@pytest.mark.slow
def test_resume_with_another_model_is_a_clear_error(stripes, tmp_path):
    config = stripes_config(tmp_path, epochs=1, steps_per_epoch=1)
    train(config, source=stripes)
    wider = config.replace(epochs=2, model=config.model.replace(fc_units=(64, 64)))
    with pytest.raises(ValueError, match="does not fit this config's model"):
        train(wider, source=stripes)
    # The run's config.json still describes the checkpoints.
    saved = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert saved == config


def test_wrong_class_count_is_a_clear_error(stripes, tmp_path):
    config = stripes_config(tmp_path)
    config = config.replace(model=config.model.replace(num_classes=7))
    with pytest.raises(ValueError, match="num_classes=4"):
        train(config, source=stripes)


# A run of the tiny preset that SIGKILLs itself right after step `kill_at` (0: never).
DRIVER = """
import os, signal, sys
from absl import logging
from keras_alexnet.train import train
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import preset
kill_at = int(sys.argv[1])
def on_step_end(record):
    if record["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
logging.set_verbosity(logging.INFO)
train(apply_overrides(preset("tiny"), sys.argv[2:]), on_step_end=on_step_end)
"""


@pytest.mark.slow
def test_sigkill_and_resume_reproduces_uninterrupted_run(tmp_path):
    # 3 epochs of 4 steps; checkpoints at steps 3, 4 (epoch end), 6, 8 (epoch end), 9, ...
    # The schedule cuts the learning rate after epochs 2 and 3 (threshold 1: no progress
    # after the first epoch). Killed after step 11, the run resumes mid-epoch 3 at step 9,
    # with the learning rate already cut once.
    sets = ["epochs=3", "steps_per_epoch=4", "checkpoint_every_steps=3", "eval_steps=2",
            "schedule_threshold=1.0", "schedule_patience=1"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    def start(kill_at, work_dir):
        # scripts/train.py for the uninterrupted run, so the script is exercised end to end.
        args = ([sys.executable, "scripts/train.py", "--preset=tiny", f"--work_dir={work_dir}"]
                + [f"--set={s}" for s in sets]) if kill_at is None else (
            [sys.executable, "-c", DRIVER, str(kill_at), f"work_dir={work_dir}", *sets])
        return subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    runs = [start(None, whole), start(11, broken)]
    outs = [p.communicate(timeout=300) for p in runs]
    assert runs[0].returncode == 0, outs[0][1][-3000:]
    assert runs[1].returncode == -signal.SIGKILL, outs[1][1][-3000:]
    assert "tensorboard --logdir" in outs[0][0]
    assert max(e["step"] for e in read_train_log(broken)) == 11
    resumed = start(0, broken)
    out, errs = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, errs[-3000:]
    assert "step 9, in epoch 3 after batch 1" in errs

    expected, got = read_train_log(whole), read_train_log(broken)
    assert [e["step"] for e in got] == list(range(1, 13))
    assert got == expected  # bit-identical losses and learning rates
    lrs = [e["learning_rate"] for e in got]
    assert lrs[7] == pytest.approx(1e-2) and lrs[8] == lrs[11] == pytest.approx(1e-3)
    final = [tf.train.load_checkpoint(tf.train.latest_checkpoint(str(d / "checkpoints")))
             for d in (whole, broken)]
    # The cut after the last epoch is in the final checkpoint.
    lr_key = "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"
    assert final[1].get_tensor(lr_key) == pytest.approx(1e-4)
    keys = sorted(final[0].get_variable_to_shape_map())
    assert keys == sorted(final[1].get_variable_to_shape_map())
    for key in keys:
        if key != "_CHECKPOINTABLE_OBJECT_GRAPH" and "save_counter" not in key:
            np.testing.assert_array_equal(final[0].get_tensor(key), final[1].get_tensor(key),
                                          err_msg=key)


@pytest.mark.slow
def test_sigint_saves_after_the_step_and_the_rerun_continues_exactly(tmp_path):
    """Ctrl-C: one line saying how to resume, a checkpoint at that step, an exact rerun."""
    # 60 steps: the signal lands at step 3 or 4 (the log is polled every 50 ms, a tiny step
    # takes ~30-50 ms on 2 cores), seconds before the run could end on its own.
    steps = 60
    sets = ["epochs=1", f"steps_per_epoch={steps}", "eval_steps=2",
            "checkpoint_every_steps=1000"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    def start(work_dir, out=subprocess.PIPE):
        return subprocess.Popen(
            [sys.executable, "scripts/train.py", "--preset=tiny", f"--work_dir={work_dir}",
             *[f"--set={s}" for s in sets]],
            cwd=ROOT, env=ENV, stdout=out, stderr=out, text=True)

    reference, proc = start(whole, subprocess.DEVNULL), start(broken)
    deadline = time.monotonic() + 240
    while not read_train_log(broken) or read_train_log(broken)[-1]["step"] < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, errs = proc.communicate(timeout=240)
    assert proc.returncode == 130, errs[-3000:]
    assert "Traceback" not in errs
    last = errs.strip().splitlines()[-1]
    match = re.fullmatch(r"error: SIGINT at step (\d+): saved (\S+)\. Rerun the same command "
                         r"to resume\.", last)
    assert match, errs[-3000:]
    stopped, saved = int(match[1]), match[2]
    assert stopped < steps and saved == tf.train.latest_checkpoint(str(broken / "checkpoints"))
    assert tf.train.load_checkpoint(saved).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == stopped
    assert read_train_log(broken)[-1]["step"] == stopped
    assert not (broken / "model.keras").exists()  # the run is not over

    rerun = start(broken)
    _, errs = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, errs[-3000:]
    assert f"step {stopped}, in epoch 1 after batch {stopped}" in errs
    assert reference.wait(timeout=240) == 0
    assert read_train_log(broken) == read_train_log(whole)  # bit-identical losses


@pytest.mark.slow  # a subprocess that loads TensorFlow
def test_demo_script_end_to_end(tmp_path):
    # The README's demo with the tiny network and a budget of about one step: it trains,
    # evaluates all 10k test images (center) and some ten-crop, exports, prints where to look.
    # It validates on 500 held-out training images and still tests on the 10k test images.
    model = TINY_MODEL.to_dict()  # its shape and init over the demo's full-size network
    tiny = [f"model.{k}={str(model[k]).strip('()[]').replace(' ', '')}"
            for k in ("input_size", "conv_filters", "fc_units", "weight_init_std")]
    tiny += ["data_image_size=72", "batch_size=16", "progress_bar=false",
             "validation_holdout=500"]
    run = run_python(SCRIPTS / "demo.py", f"--work_dir={tmp_path / 'run'}",
                     f"--export_root={tmp_path / 'savedmodels'}", "--train_minutes=0.001",
                     "--ten_crop_images=50", *[f"--set={s}" for s in tiny])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Test accuracy, center crop:" in run.stdout and "(10000 test images)" in run.stdout
    assert "(50 test images)" in run.stdout
    assert f"tensorboard --logdir {tmp_path / 'run' / 'logs'}" in run.stdout
    results = json.loads((tmp_path / "run" / "demo_results.json").read_text())
    assert results["step"] == 1 and results["stop_reason"] == "time_budget"
    assert 0.0 <= results["test_accuracy_center_crop"] <= 1.0
    exported = Path(results["savedmodel"])
    assert exported.parent == tmp_path / "savedmodels" / "fashion_mnist"
    assert (exported / "saved_model.pb").is_file()


def test_overrides_parse_by_field_type():
    c = apply_overrides(preset("tiny"), [
        "batch_size=64", "model.input_size=227", "learning_rate=1e-3", "deterministic=false",
        "model.conv_filters=4,8,8,8,8", "max_train_seconds=none",
        "model.classifier_activation=None", "data=folder:/x"])
    assert (c.batch_size, c.model.input_size, c.learning_rate, c.deterministic) == (
        64, 227, 1e-3, False)
    assert c.model.conv_filters == (4, 8, 8, 8, 8) and c.max_train_seconds is None
    assert c.model.classifier_activation is None and c.data == "folder:/x"
    assert TrainConfig.from_dict(json.loads(c.to_json())) == c


@pytest.mark.parametrize("override,message", [
    ("batch_sise=3", "Unknown config field 'batch_sise'"),
    ("model.nope=3", "Unknown config field 'model.nope'"),
    ("batch_size=abc", "'batch_size' expects int, got 'abc'"),
    ("deterministic=maybe", "'deterministic' expects bool"),
    ("model.conv_filters=4,x", "'model.conv_filters' expects comma-separated int"),
    ("batch_size", "must look like field=value"),
    ("batch_size=0", "batch_size=0 must be at least 1"),
    ("model=3", "group of fields"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ValueError, match=message) as err:
        apply_overrides(preset("tiny"), [override])
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_script_help_and_bad_override():
    help_run = run_python(SCRIPTS / "train.py", "--help", timeout=120)
    assert "Traceback" not in help_run.stderr  # absl's --help exits with status 1
    for flag in ("--preset", "--set", "--work_dir", "--data", "paper_imagenet", "tiny"):
        assert flag in help_run.stdout
    bad = run_python(SCRIPTS / "train.py", "--set", "model.nope=1", timeout=120)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith(
        "error: Unknown config field 'model.nope'")


def test_epoch_steps_counts_full_batches():
    config = preset("tiny").replace(batch_size=4, steps_per_epoch=None)
    assert config.epoch_steps(11) == 2  # the last 3 images make no full batch
    assert config.replace(steps_per_epoch=1).epoch_steps(11) == 1
    with pytest.raises(ValueError, match="batch_size=4 exceeds the 3 training images"):
        config.epoch_steps(3)
