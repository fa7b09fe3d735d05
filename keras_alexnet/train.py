"""The custom training loop: the paper's recipe (Section 5), checkpoints that resume exactly.

`train(config)` builds the network (logits for training), `PaperSGD` and the plateau schedule,
restores the newest checkpoint in `config.work_dir` if there is one, and trains. The state a
checkpoint holds is everything the next step depends on: the weights, the dropout seed
generators' states, the optimizer's velocities and learning rate, the schedule, the step, the
epoch and the number of batches done in it. The data stream of an epoch is a pure function of
(seed, epoch), so resuming mid-epoch is `.skip(batches_done)`; with `deterministic=True`
(op determinism) a resumed run's losses equal those of an uninterrupted run.

Work-dir layout: config.json, train_log.jsonl (one line per step), checkpoints/, logs/
(TensorBoard: train/, validation/), and model.keras (the softmax model, written at the end).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import distribute as kd
from keras_alexnet.evaluate import TOP_K, predict_batches, topk_correct
from keras_alexnet.files import atomic_path, write_text_atomic
from keras_alexnet.model import build_alexnet
from keras_alexnet.schedule import EXHAUSTED, REDUCE, STOP
from keras_alexnet.summaries import RunWriters
from keras_alexnet.train_config import TrainConfig

if TYPE_CHECKING:  # open_train_source imports the data package only when called
    from keras_alexnet.data.pipeline import Source

CONFIG_FILE = "config.json"
LOG_FILE = "train_log.jsonl"
MODEL_FILE = "model.keras"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped, its last good checkpoint kept."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns. `model` outputs probabilities (softmax), ready to evaluate/export."""

    model: keras.Model
    history: list[dict[str, Any]]
    step: int
    epoch: int  # complete epochs
    stop_reason: str  # "epochs", "schedule" or "time_budget"
    work_dir: Path
    log_dir: Path
    checkpoint_dir: Path
    # `model` saved as a .keras file (for scripts/evaluate.py, scripts/export.py).
    model_path: Path


def train(
    config: TrainConfig,
    *,
    source: Any = None,
    strategy: tf.distribute.Strategy | None = None,
    on_step_end: Callable[[int, float], None] | None = None,
    tower_devices: Sequence[str] | None = None,
    mode: str | None = None,
) -> TrainResult:
    """Trains (or resumes training of) AlexNet as `config` says.

    Args:
      config: the run's settings; `config.work_dir` holds its checkpoints and logs.
      source: a `keras_alexnet.data` source (`train_dataset`, `eval_dataset`, `info`); None
        opens `config.data`.
      strategy: a `tf.distribute.Strategy`; None is the current (default) one.
      on_step_end: called as `on_step_end(step, loss)` after every step.
      tower_devices: one device per tower for the training model (the paper's model
        parallelism, see `build_alexnet`); None places nothing.
      mode: one of `keras_alexnet.distribute.MODES`; builds `strategy` and `tower_devices`
        (pass either `mode` or those two). In "multi_worker" mode only the chief writes
        work_dir; every worker restores the chief's newest checkpoint.

    Raises:
      NonFiniteLossError: the loss became NaN/inf; the message names the step.
      ValueError: the config does not fit the data.
    """
    if mode is not None:
        if strategy is not None or tower_devices is not None:
            raise ValueError(f"mode={mode!r} builds the strategy and tower devices itself; "
                             "pass either mode or strategy/tower_devices.")
        # First: multi_worker must start its server before TensorFlow creates its devices.
        strategy, tower_devices = kd.make_strategy(
            mode, num_towers=config.model.num_towers,
            peer_timeout_seconds=config.peer_timeout_seconds)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Weight init and dropout seeds; the checkpoint overrides both when resuming.
    keras.utils.set_random_seed(config.seed)
    source = source if source is not None else open_train_source(config)
    info = source.info
    if info.num_classes != config.model.num_classes:
        raise ValueError(
            f"model.num_classes={config.model.num_classes} but the data has {info.num_classes} "
            f"classes; set model.num_classes={info.num_classes}."
        )
    if not info.num_eval:
        # Checked now: validation comes only at the first epoch's end, and a resumed run would
        # meet the same error there again.
        raise ValueError(f"{config.data or 'the data source'} has no validation images; the "
                         "schedule needs them (prepare_imagenet.py reads them from val/).")
    steps_per_epoch = config.epoch_steps(info.num_train)

    work_dir = Path(config.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    _note_config_changes(work_dir / CONFIG_FILE, config)
    strategy = strategy or tf.distribute.get_strategy()
    # The chief writes work_dir; other workers write a temporary folder, deleted at the end.
    write_dir, is_temp = kd.worker_dirs(str(work_dir), strategy)
    write_dir = Path(write_dir)
    with strategy.scope():
        model = build_alexnet(config.model.replace(classifier_activation=None),
                              tower_devices=tower_devices)
        optimizer = config.make_optimizer()
        optimizer.build(model.trainable_variables)
    # Host-side bookkeeping: plain variables outside the strategy, read between steps.
    with tf.device("/cpu:0"):
        schedule = config.make_schedule()
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        batches_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_done")
    checkpoint = tf.train.Checkpoint(
        model=model_state(model), optimizer=optimizer, schedule=schedule, step=step,
        epoch=epoch, batches_done=batches_done,
    )
    checkpoint_dir = work_dir / "checkpoints"  # the chief's, which every worker resumes from
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir / "checkpoints"),
                                         max_to_keep=config.keep_checkpoints)
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest:
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise ValueError(
                f"The checkpoint {latest} does not fit this config's model "
                f"({str(e).splitlines()[0][:200]}); use a fresh work_dir or the run's own "
                f"config ({work_dir / CONFIG_FILE}).") from None
        logging.info("Resumed from %s: step %d, epoch %d, batch %d.", latest,
                     int(step), int(epoch) + 1, int(batches_done))
    # Written once the checkpoint (if any) is known to fit this config.
    write_text_atomic(write_dir / CONFIG_FILE, config.to_json() + "\n")
    _truncate_log(write_dir / LOG_FILE, int(step))

    writers = RunWriters(write_dir / "logs")
    writers.config_text(int(step), config.to_json())
    train_step = make_train_step(model, optimizer, strategy, config.batch_size,
                                  min(TOP_K[1], info.num_classes))
    loop = _Loop(config, source, model, optimizer, schedule, manager, writers,
                 step, epoch, batches_done, steps_per_epoch, on_step_end, write_dir / LOG_FILE)
    try:
        stop_reason = loop.run(train_step, strategy)
    finally:
        writers.close()
        kd.cleanup_worker_dir(str(write_dir), is_temp)
    with strategy.scope():
        probabilities = build_alexnet(config.model)
    probabilities.set_weights(model.get_weights())
    model_path = work_dir / MODEL_FILE
    if kd.is_chief(strategy):
        _save_keras_atomic(probabilities, model_path)
    return TrainResult(probabilities, loop.history, int(step), int(epoch), stop_reason,
                       work_dir, writers.log_dir, checkpoint_dir, model_path)


def model_state(model: keras.Model) -> dict[str, tf.Variable]:
    """Every variable of `model` (weights and dropout seed states), keyed by layer and name.

    Keras 3 models are not tracked by `tf.train.Checkpoint` themselves, so the run checkpoints
    this dict. Keys avoid Keras' global name counters, so they match across processes.
    """
    state: dict[str, tf.Variable] = {}
    for layer in model.layers:
        for v in layer.variables:
            key = f"{layer.name}.{v.name}"
            if key in state:
                raise ValueError(f"Two variables of {model.name!r} are both named {key!r}.")
            state[key] = v
    return state


def read_train_log(work_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step records of `train_log.jsonl` (step, epoch, loss, learning_rate)."""
    path = Path(work_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_train_source(config: TrainConfig) -> Source:
    """The data source a run trains and validates on: `config.data`, with its holdout.

    Raises:
      ValueError: no data is set, or validation_holdout is set for a source without one.
    """
    from keras_alexnet.data import open_source

    if not config.data:
        raise ValueError("No training data: set data (--data) to a data spec, e.g. a folder "
                         "made by scripts/prepare_imagenet.py or 'fashion_mnist'.")
    holdout = {}
    if config.validation_holdout:
        if config.data.partition(":")[0] != "fashion_mnist":
            raise ValueError(f"validation_holdout={config.validation_holdout} works with "
                             f"fashion_mnist only, not {config.data!r}; ImageNet has a val split.")
        holdout = {"holdout": config.validation_holdout}
    return open_source(config.data, image_size=config.data_image_size, **holdout)


def make_train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    global_batch: int,
    top_k: int,
) -> Callable:
    """A compiled step: forward, sparse cross-entropy on logits, gradients, PaperSGD.

    Args:
      model: a logits model (`classifier_activation=None`), built under `strategy.scope()`.
      optimizer: its optimizer (slots already built, so they sit with their weights).
      strategy: the distribution strategy the step runs under (`strategy.run`).
      global_batch: the batch over all replicas; the loss is the mean over it.
      top_k: k of the top-k hit count the step also returns.

    Returns:
      `step(batch) -> (loss, top-1 hits, top-k hits)`, a `tf.function`.
    """

    def replica_step(images, labels):
        logits = tf.cast(model(images, training=True), tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        # Divided by the *global* batch: summed over replicas it is the batch mean.
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        # Not a GradientTape: it would run every tower's backward pass on the first device.
        grads = kd.colocated_gradients(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        hits1 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32))
        hitsk = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, top_k), tf.float32))
        return loss, hits1, hitsk

    @tf.function
    def train_step(batch):
        images, labels = batch
        out = strategy.run(replica_step, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in out]

    return train_step


class _Loop:
    """The epoch/step loop of `train`, with its logging, checkpoints and stopping rules."""

    def __init__(self, config, source, model, optimizer, schedule, manager, writers,
                 step, epoch, batches_done, steps_per_epoch, on_step_end, log_path):
        self.c, self.source, self.model, self.optimizer = config, source, model, optimizer
        self.schedule, self.manager, self.writers = schedule, manager, writers
        self.step, self.epoch, self.batches_done = step, epoch, batches_done
        self.steps_per_epoch, self.on_step_end = steps_per_epoch, on_step_end
        self.history: list[dict[str, Any]] = []
        self.log_path = log_path

    def run(self, train_step, strategy) -> str:
        c = self.c
        start = time.monotonic()
        if bool(self.schedule.stopped.numpy()):
            return "schedule"
        while int(self.epoch) < c.epochs:
            e, done = int(self.epoch), int(self.batches_done)

            def shard(batch_size, num_shards, shard_index, e=e, done=done):
                # Each worker reads its own shard; each step takes one batch per local replica.
                per_step = c.batch_size // (num_shards * batch_size)
                ds = self.source.train_dataset(batch_size, c.model.input_size, seed=c.seed,
                                               epoch=e, num_shards=num_shards,
                                               shard_index=shard_index,
                                               skip_batches=done * per_step)
                return ds.take((self.steps_per_epoch - done) * per_step)

            batches = kd.distribute_dataset(strategy, shard, c.batch_size)
            # On a mid-epoch resume the bar counts only the batches left: Progbar times its ETA
            # and weights its running loss from batch 0, so starting it at `done` skews both.
            bar = (keras.utils.Progbar(self.steps_per_epoch - done, stateful_metrics=["images/s"])
                   if c.progress_bar else None)
            if bar:
                resumed = f" (resumed after batch {done})" if done else ""
                print(f"Epoch {e + 1}/{c.epochs}{resumed}")
            sums = np.zeros(3)
            epoch_start = time.monotonic()
            window_start, window_steps, window_loss = time.monotonic(), 0, 0.0
            out_of_time = False
            with self.log_path.open("a") as log:
                for batch in batches:
                    loss, hits1, hitsk = (float(x) for x in train_step(batch))
                    self.step.assign_add(1)
                    self.batches_done.assign_add(1)
                    s = int(self.step)
                    if not math.isfinite(loss):
                        raise NonFiniteLossError(
                            f"Loss is {loss} at step {s} (epoch {e + 1}, batch "
                            f"{int(self.batches_done)}); stopping. The last good checkpoint is "
                            f"{self.manager.latest_checkpoint}. Lower learning_rate or check "
                            "the input data.")
                    lr = float(self.optimizer.learning_rate.numpy())
                    log.write(json.dumps({"step": s, "epoch": e, "loss": loss,
                                          "learning_rate": lr}) + "\n")
                    log.flush()
                    sums += (loss, hits1, hitsk)
                    window_steps += 1
                    window_loss += loss
                    if bar:
                        since = time.monotonic() - epoch_start
                        rate = (int(self.batches_done) - done) * c.batch_size / max(since, 1e-9)
                        bar.update(int(self.batches_done) - done,
                                   [("loss", loss), ("images/s", rate)])
                    if s % c.log_every_steps == 0:
                        elapsed = time.monotonic() - window_start
                        ips = window_steps * c.batch_size / max(elapsed, 1e-9)
                        self.writers.scalars("train", s, {
                            "loss": window_loss / window_steps, "learning_rate": lr,
                            "images_per_second": ips})
                        window_start, window_steps, window_loss = time.monotonic(), 0, 0.0
                    if s % c.checkpoint_every_steps == 0:
                        self._save()
                    if self.on_step_end:
                        self.on_step_end(s, loss)
                    if c.max_train_seconds and time.monotonic() - start > c.max_train_seconds:
                        out_of_time = True
                        break
            n = int(self.batches_done) - done
            if n:
                examples = n * c.batch_size
                self.writers.scalars("train", int(self.step), {
                    "epoch_loss": sums[0] / n, "top1_error": 1 - sums[1] / examples,
                    "top5_error": 1 - sums[2] / examples})
            if out_of_time:
                self._save()
                self._validate(e, int(self.step))
                logging.info("Time budget of %.0f s used up at step %d.", c.max_train_seconds,
                             int(self.step))
                return "time_budget"
            self.epoch.assign_add(1)
            self.batches_done.assign(0)
            record = self._validate(e, int(self.step))
            decision = self.schedule.step(self.optimizer, record["val_top1_error"])
            record["schedule"] = decision
            if decision == REDUCE:
                logging.info("Validation error stopped improving: learning rate now %g.",
                             float(self.optimizer.learning_rate.numpy()))
            elif decision == EXHAUSTED:
                logging.info("Learning rate reduced %d times; continuing.",
                             self.c.schedule_max_reductions)
            self._save()
            self.writers.epoch_images(int(self.step), self.model)
            self.writers.flush()
            if decision == STOP:
                logging.info("Validation error stopped improving after the last reduction: "
                             "stopping at epoch %d.", e + 1)
                return "schedule"
        return "epochs"

    def _validate(self, e: int, s: int) -> dict[str, Any]:
        c = self.c
        ds = self.source.eval_dataset(c.batch_size, c.model.input_size, ten_crop=c.ten_crop_eval)
        if c.eval_steps:
            ds = ds.take(c.eval_steps)
        k = min(TOP_K[1], self.source.info.num_classes)
        n, loss, hits1, hitsk = 0, 0.0, 0, 0
        for probs, labels in predict_batches(self.model, ds, ten_crop=c.ten_crop_eval,
                                             from_logits=True):
            picked = probs[np.arange(len(labels)), labels]
            loss += float(-np.log(np.maximum(picked, np.finfo(np.float32).tiny)).sum())
            hits1 += int(topk_correct(probs, labels, 1).sum())
            hitsk += int(topk_correct(probs, labels, k).sum())
            n += len(labels)
        record = {"epoch": e + 1, "step": s, "val_loss": loss / n,
                  "val_top1_error": 1 - hits1 / n, "val_top5_error": 1 - hitsk / n,
                  "learning_rate": float(self.optimizer.learning_rate.numpy())}
        self.writers.scalars("validation", s, {
            "loss": record["val_loss"], "top1_error": record["val_top1_error"],
            "top5_error": record["val_top5_error"]})
        logging.info("Epoch %d (step %d): val loss %.4f, top-1 error %.2f%%, top-%d error "
                     "%.2f%%, lr %g", e + 1, s, record["val_loss"],
                     100 * record["val_top1_error"], k, 100 * record["val_top5_error"],
                     record["learning_rate"])
        self.history.append(record)
        return record

    def _save(self) -> None:
        # A step can produce finite loss but non-finite weights; never save those.
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in
                   self.model.trainable_variables):
            raise NonFiniteLossError(
                f"Weights became NaN/inf at step {int(self.step)}; not saving them. The last "
                f"good checkpoint is {self.manager.latest_checkpoint}.")
        # Numbered by save count, not step: the epoch-end save can share a step with a
        # mid-epoch one, and a checkpoint is never overwritten in place.
        self.manager.save()


def _note_config_changes(path: Path, config: TrainConfig) -> None:
    """Logs which fields differ from the config a previous run in this work dir wrote."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = json.loads(config.to_json())
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        logging.warning("Config differs from the earlier run in %s in: %s", path.parent,
                        ", ".join(changed))


def _truncate_log(path: Path, step: int) -> None:
    """Drops log lines past `step`: a killed run may have logged steps its checkpoint lacks."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if _logged_step(ln) <= step]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(ln + "\n" for ln in kept))


def _logged_step(line: str) -> float:
    """The step of a train_log.jsonl line; a line cut short by a kill counts as past any step."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _save_keras_atomic(model: keras.Model, path: Path) -> None:
    with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the suffix
        model.save(tmp)
