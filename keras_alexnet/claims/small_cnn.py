"""The small four-layer CNN of Figure 1 and Section 3.3, and its resumable training loop.

The paper does not give this network: footnote 3 of the original paper defers to the
parameter files of cuda-convnet, whose CIFAR-10 example ("layers-18pct") is a four-layer
network with weights: three 5x5 convolutions (32, 32, 64 kernels) and one fully-connected
softmax layer, max pooling after conv1 and average pooling after conv2 and conv3 (3x3, stride
2), response normalisation after the first two poolings. We build that network, with Section
3.3's LRN constants (k=2, n=5, alpha=1e-4, beta=0.75) where it normalises, and cuda-convnet's
small Gaussian initial weights for the same reason it had them: the input is on the 0..255
scale (mean-subtracted, as the big network's), where larger conv1 weights saturate tanh units
before training begins, which would make the comparison with ReLU unfair to tanh.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.checkpoint import model_state
from keras_alexnet.config import PAPER_LEARNING_RATE, PAPER_MOMENTUM, AlexNetConfig
from keras_alexnet.files import write_text_atomic
from keras_alexnet.layers import LocalResponseNormalization
from keras_alexnet.optim import PaperSGD

# (name, kernels, initial weight std): cuda-convnet's layers-18pct.cfg (initW).
CONV_LAYERS = (("conv1", 32, 1e-4), ("conv2", 32, 1e-2), ("conv3", 64, 1e-2))
FC_INIT_STD = 1e-2
KERNEL_SIZE = 5
POOL_SIZE, POOL_STRIDE = 3, 2
PROGRESS_FILE = "progress.json"
_PAPER = AlexNetConfig()


def build_small_cnn(num_classes: int, input_size: int, *, activation: str = "relu",
                    use_lrn: bool = True) -> keras.Model:
    """The four-layer CNN (3 conv + 1 fc), returning logits.

    Args:
      num_classes: units of the softmax layer.
      input_size: S of the [S, S, 3] input.
      activation: "relu" or "tanh", in every conv layer (Figure 1 compares the two).
      use_lrn: response normalisation after pool1 and pool2 (Section 3.3 compares with/without).
    """
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation={activation!r}; use 'relu' or 'tanh'.")
    inputs = keras.Input((input_size, input_size, 3), name="images")
    x = inputs
    for i, (name, filters, std) in enumerate(CONV_LAYERS):
        x = keras.layers.Conv2D(filters, KERNEL_SIZE, padding="same", activation=activation,
                                kernel_initializer=keras.initializers.RandomNormal(0.0, std),
                                name=name)(x)
        pool = keras.layers.MaxPooling2D if i == 0 else keras.layers.AveragePooling2D
        x = pool(POOL_SIZE, POOL_STRIDE, padding="same", name=f"pool{i + 1}")(x)
        if use_lrn and i < 2:
            x = LocalResponseNormalization(_PAPER.lrn_depth_radius, _PAPER.lrn_bias,
                                           _PAPER.lrn_alpha, _PAPER.lrn_beta,
                                           name=f"lrn{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, FC_INIT_STD),
        name="fc4")(x)
    return keras.Model(inputs, logits, name=f"small_cnn_{activation}")


@dataclasses.dataclass(frozen=True)
class SmallRun:
    """One training run of the small CNN."""

    activation: str = "relu"
    use_lrn: bool = True
    learning_rate: float = PAPER_LEARNING_RATE
    momentum: float = PAPER_MOMENTUM
    weight_decay: float = 0.0
    batch_size: int = 128
    input_size: int = 32
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: the whole training set
    eval_batches: int | None = None  # None: the whole evaluation set; 0: no test error
    seed: int = 0


def train_small(run: SmallRun, source: Any, work_dir: str | Path, *,
                stop: Callable[[list[int]], bool] | None = None,
                hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains (or resumes) the small CNN; returns its per-step training record.

    The state (weights, velocities, epoch) is checkpointed after every epoch, then the record
    of the epochs done is written to `work_dir`/progress.json; a rerun restores the newest
    checkpoint and continues from the next epoch with the same data order (a function of seed
    and epoch).

    Args:
      run: the settings.
      source: a `keras_alexnet.data` source; its training stream is taken without augmentation
        (no regularisation of any kind, as Figure 1 says).
      work_dir: checkpoints, progress.json and TensorBoard logs (train/, test/).
      stop: `stop(step_hits)` after every step; True ends training there (the run then
        counts as finished: a rerun does not continue it).
      hparams: written for TensorBoard's HParams dashboard.

    Returns:
      {"step_hits": [correct per step], "step_loss": [...], "steps_per_epoch", "batch_size",
       "test_error": [per epoch], "epochs_done", "stopped_early"}.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(run.seed)
    info = source.info
    steps = info.num_train // run.batch_size
    steps = min(steps, run.steps_per_epoch) if run.steps_per_epoch else steps
    model = build_small_cnn(info.num_classes, run.input_size, activation=run.activation,
                            use_lrn=run.use_lrn)
    optimizer = PaperSGD(run.learning_rate, run.momentum, run.weight_decay)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    checkpoint = tf.train.Checkpoint(
        model=model_state(model), epoch=epoch,
        optimizer={str(i): v for i, v in enumerate(optimizer.variables)})
    manager = tf.train.CheckpointManager(checkpoint, str(work_dir / "checkpoints"), 1)
    record: dict[str, Any] = {"step_hits": [], "step_loss": [], "test_error": [],
                              "steps_per_epoch": steps, "batch_size": run.batch_size,
                              "stopped_early": False}
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        saved = json.loads((work_dir / PROGRESS_FILE).read_text())
        done = int(epoch.numpy())
        # A crash between the checkpoint and the progress write: the checkpoint is newer.
        if len(saved["test_error"]) < done:
            raise ValueError(f"{work_dir}: the checkpoint is at epoch {done} but "
                             f"{PROGRESS_FILE} has {len(saved['test_error'])}; delete the "
                             "folder to restart this run.")
        record.update(saved)
        record["step_hits"] = saved["step_hits"][:done * steps]
        record["step_loss"] = saved["step_loss"][:done * steps]
        record["test_error"] = saved["test_error"][:done]
    writers = {s: tf.summary.create_file_writer(str(work_dir / "logs" / s))
               for s in ("train", "test")}
    if hparams:
        from tensorboard.plugins.hparams import api as hp

        with tf.summary.create_file_writer(str(work_dir / "logs")).as_default():
            hp.hparams(hparams)

    @tf.function(autograph=False)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32), labels),
                                     tf.int32))
        return loss, hits

    @tf.function(autograph=False)
    def predict(images):
        return tf.argmax(model(images, training=False), -1, tf.int32)

    while int(epoch.numpy()) < run.epochs and not record["stopped_early"]:
        e = int(epoch.numpy())
        ds = source.train_dataset(run.batch_size, run.input_size, seed=run.seed, epoch=e,
                                  augment=False).take(steps)
        for images, labels in ds:
            loss, hits = train_step(images, labels)
            loss = float(loss)
            if not np.isfinite(loss):
                # A diverged learning rate of the grid: the record says so, and it loses.
                record["diverged"] = True
                break
            record["step_hits"].append(int(hits))
            record["step_loss"].append(loss)
            if stop and stop(record["step_hits"]):
                record["stopped_early"] = True
                break
        s = len(record["step_hits"])
        test_error = _test_error(predict, source, run)
        record["test_error"].append(test_error)
        epoch_hits = record["step_hits"][e * steps:]
        with writers["train"].as_default(step=s):
            tf.summary.scalar("error", 1 - sum(epoch_hits) / max(1, len(epoch_hits) *
                                                                  run.batch_size))
            tf.summary.scalar("loss", float(np.mean(record["step_loss"][e * steps:] or [0])))
        if test_error is not None:
            with writers["test"].as_default(step=s):
                tf.summary.scalar("error", test_error)
        epoch.assign_add(1)
        if record.get("diverged"):
            record["stopped_early"] = True
        manager.save()
        write_text_atomic(work_dir / PROGRESS_FILE, json.dumps(record))
    for w in writers.values():
        w.close()
    record["epochs_done"] = int(epoch.numpy())
    return record


def _test_error(predict: Callable, source: Any, run: SmallRun) -> float | None:
    if run.eval_batches == 0:
        return None
    ds = source.eval_dataset(run.batch_size, run.input_size)
    if run.eval_batches is not None:
        ds = ds.take(run.eval_batches)
    wrong = total = 0
    for images, labels in ds:
        wrong += int(tf.reduce_sum(tf.cast(predict(images) != labels, tf.int32)))
        total += int(labels.shape[0])
    return wrong / total
