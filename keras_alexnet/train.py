"""The custom training loop: the paper's recipe (Section 5), checkpoints that resume exactly.

`train(config)` builds the network (logits for training; AlexNet unless given a builder),
`PaperSGD` and the plateau schedule (`TrainConfig.make_optimizer`,
`PlateauSchedule.from_config`), restores the newest checkpoint in
`config.work_dir` if there is one (`keras_alexnet.checkpoint`), and trains: epochs of compiled
steps (`make_train_step`), each epoch ending in validation, a schedule decision and a
checkpoint. With `deterministic=True` (op determinism) a resumed run's losses equal those of an
uninterrupted run.

Work dir: the files of `keras_alexnet.run_files`, checkpoints/ and logs/ (TensorBoard: train/,
validation/).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet import distribute as kd
from keras_alexnet.checkpoint import NonFiniteLossError, RunCheckpoints, TrainState
from keras_alexnet.evaluate import Predictor, top5_k, topk_correct, topk_hits
from keras_alexnet.files import write_text_atomic
from keras_alexnet.interrupts import StopSignals, TrainingInterrupted
from keras_alexnet.model import build_alexnet
from keras_alexnet.precision import dtype_policy
from keras_alexnet.precision import resolve as resolve_precision
from keras_alexnet.progress import BudgetBar
from keras_alexnet.run_files import (
    CONFIG_FILE,
    LOG_FILE,
    MODEL_FILE,
    note_config_changes,
    save_model_atomic,
    truncate_train_log,
)
from keras_alexnet.schedule import EXHAUSTED, REDUCE, STOP, PlateauSchedule
from keras_alexnet.summaries import RunWriters
from keras_alexnet.train_config import ALEXNET, TrainConfig
from keras_alexnet.transfer import freeze_layers, init_from_file

__all__ = ["NonFiniteLossError", "TrainResult", "TrainingInterrupted", "make_train_step",
           "train"]


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


# `on_step_end(record)` after every step; a true return ends the run there (see `train`).
StepCallback = Callable[[dict[str, Any]], Any]
# `build_model(classifier_activation)`: the network to train (None: logits) or to save
# ("softmax"); `train` builds AlexNet from `config.model` unless given one.
ModelBuilder = Callable[[str | None], keras.Model]


def train(
    config: TrainConfig,
    *,
    source: Any = None,
    strategy: tf.distribute.Strategy | None = None,
    on_step_end: StepCallback | None = None,
    tower_devices: Sequence[str] | None = None,
    mode: str | None = None,
    build_model: ModelBuilder | None = None,
) -> TrainResult:
    """Trains (or resumes training of) a network as `config` says: AlexNet by default.

    Args:
      config: the run's settings; `config.work_dir` holds its checkpoints and logs.
      source: a `keras_alexnet.data` source (`train_dataset`, `eval_dataset`, `info`); None
        opens `config.data` (`TrainConfig.open_source`).
      strategy: a `tf.distribute.Strategy`; None is the current (default) one.
      on_step_end: called after every step with the step's record, the line `train_log.jsonl`
        gets (`step`, `epoch`, `loss`, `learning_rate`, `top1_hits`); if it returns true, the
        run saves a checkpoint, validates and ends (stop_reason "callback").
      tower_devices: one device per tower for the training model (the paper's model
        parallelism, see `build_alexnet`); None places nothing.
      mode: one of `keras_alexnet.distribute.MODES`; builds `strategy` and `tower_devices`
        (pass either `mode` or those two). In "multi_worker" mode only the chief writes
        work_dir; every worker restores the chief's newest checkpoint.
      build_model: another network to train (e.g. the paper's small CIFAR-10 networks):
        `build_model(classifier_activation)` returns it with logits (None) or softmax
        outputs; its input size and class count come from the model, and `config.network`
        names it (`config.model` is then unused).

    Raises:
      TrainingInterrupted: SIGINT or SIGTERM arrived (a single-process run); a checkpoint was
        saved after the step it arrived in, and the message says how to resume.
      NonFiniteLossError: the loss became NaN/inf; the message names the step.
      ValueError: the config does not fit the data, or names a network without a builder.
      keras_alexnet.distribute.PeerLostError: a multi-worker peer died; the message names it
        and the checkpoint to resume from.
    """
    strategy, tower_devices = _placement(config, strategy, tower_devices, mode)
    build = _builder(config, build_model, tower_devices)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    # Weight init and dropout seeds; the checkpoint overrides both when resuming.
    keras.utils.set_random_seed(config.seed)
    source = source if source is not None else config.open_source()
    policy = resolve_precision(config.precision)
    with strategy.scope(), dtype_policy(policy):
        model = build(None)
        # Before the optimizer is built: it updates (and decays) only what it is built for.
        if config.freeze:
            freeze_layers(model, config.freeze)
        optimizer = config.make_optimizer()
        optimizer.build(model.trainable_variables)
    steps_per_epoch = _check_data(config, source, model)
    work_dir, write_dir, is_temp = _run_dirs(config, strategy)
    state = TrainState.create(model, optimizer, PlateauSchedule.from_config(config))
    checkpoints = _restore(config, state, strategy, write_dir, work_dir)
    writers = RunWriters(write_dir / "logs")
    writers.config_text(int(state.step), config.to_json())
    train_step = make_train_step(model, optimizer, strategy, config.batch_size,
                                 top5_k(source.info.num_classes))
    loop = _Loop(config, source, state, checkpoints, writers, steps_per_epoch=steps_per_epoch,
                 log_path=write_dir / LOG_FILE, on_step_end=on_step_end)
    try:
        # Every worker resumes from the chief's newest checkpoint: name that one.
        # One worker cannot save on its own signal either: signals keep their usual effect.
        with StopSignals(enabled=not _multi_worker(strategy)) as loop.signals, \
                kd.peer_failures(strategy,
                                 lambda: tf.train.latest_checkpoint(str(checkpoints.read_dir))):
            stop_reason = loop.run(train_step, strategy)
    finally:
        writers.close()
        kd.cleanup_worker_dir(str(write_dir), is_temp)
    probabilities, model_path = _save_model(model, build, strategy, policy, work_dir)
    return TrainResult(probabilities, loop.history, int(state.step), int(state.epoch),
                       stop_reason, work_dir, writers.log_dir, checkpoints.read_dir, model_path)


def _placement(config: TrainConfig, strategy: tf.distribute.Strategy | None,
               tower_devices: Sequence[str] | None,
               mode: str | None) -> tuple[tf.distribute.Strategy, Sequence[str] | None]:
    """The strategy and tower devices the run trains under (built from `mode` if given)."""
    if config.logical_cpus:
        kd.split_cpu(config.logical_cpus)
    if mode is not None:
        if strategy is not None or tower_devices is not None:
            raise ValueError(f"mode={mode!r} builds the strategy and tower devices itself; "
                             "pass either mode or strategy/tower_devices.")
        # First: multi_worker must start its server before TensorFlow creates its devices.
        strategy, tower_devices = kd.make_strategy(
            mode, num_towers=config.model.num_towers,
            peer_timeout_seconds=config.peer_timeout_seconds)
    strategy = strategy or tf.distribute.get_strategy()
    if _multi_worker(strategy) and config.checkpoint_every_minutes:
        # A multi-worker save is collective: every worker must decide to save at one step.
        raise ValueError("checkpoint_every_minutes works in one process only: workers' clocks "
                         "would disagree on when to save; use checkpoint_every_steps.")
    return strategy, tower_devices


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _builder(config: TrainConfig, build_model: ModelBuilder | None,
             tower_devices: Sequence[str] | None) -> ModelBuilder:
    """`build_model`, or AlexNet from `config.model` when the config names AlexNet."""
    if build_model is not None:
        return build_model
    if config.network != ALEXNET:
        raise ValueError(f"network={config.network!r} is not built from config.model: pass its "
                         f"build_model to train(), or set network={ALEXNET!r}.")
    return lambda activation: build_alexnet(
        config.model.replace(classifier_activation=activation), tower_devices=tower_devices)


def _run_dirs(config: TrainConfig,
              strategy: tf.distribute.Strategy) -> tuple[Path, Path, bool]:
    """work_dir (made, its config change noted) and this worker's folder to write to.

    The chief writes work_dir; other workers write a temporary folder (is_temp), deleted at
    the end.
    """
    work_dir = Path(config.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    note_config_changes(work_dir / CONFIG_FILE, config.to_json())
    write_dir, is_temp = kd.worker_dirs(str(work_dir), strategy)
    return work_dir, Path(write_dir), is_temp


def _restore(config: TrainConfig, state: TrainState, strategy: tf.distribute.Strategy,
             write_dir: Path, work_dir: Path) -> RunCheckpoints:
    """Restores the newest checkpoint (or starts from `init_from`), then writes the config
    and cuts the train log back to the restored step."""
    checkpoints = RunCheckpoints(state, write_dir, read_dir=work_dir,
                                 max_to_keep=config.keep_checkpoints)
    if checkpoints.restore(work_dir / CONFIG_FILE) is None and config.init_from:
        _init_fresh_run(state.model, config, strategy)
    # Written once the checkpoint (if any) is known to fit this config.
    write_text_atomic(write_dir / CONFIG_FILE, config.to_json() + "\n")
    truncate_train_log(write_dir / LOG_FILE, int(state.step))
    return checkpoints


def _save_model(model: keras.Model, build: ModelBuilder, strategy: tf.distribute.Strategy,
                policy: str, work_dir: Path) -> tuple[keras.Model, Path]:
    """The trained weights in the softmax network, saved (by the chief) as model.keras."""
    with strategy.scope(), dtype_policy(policy):
        probabilities = build("softmax")
    probabilities.set_weights(model.get_weights())
    model_path = work_dir / MODEL_FILE
    if kd.is_chief(strategy):
        save_model_atomic(probabilities, model_path)
    return probabilities, model_path


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
      `step(batch) -> (loss, top-1 hits, top-k hits)`, a `tf.function`; hits count ties as
      misses, as evaluation does (`keras_alexnet.evaluate.topk_hits`).
    """

    def replica_step(images, labels):
        logits = tf.cast(model(images, training=True), tf.float32)
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        # Divided by the *global* batch: summed over replicas it is the batch mean.
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        # Not a GradientTape: it would run every tower's backward pass on the first device.
        grads = kd.colocated_gradients(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        hits1 = tf.reduce_sum(tf.cast(topk_hits(logits, labels, 1), tf.float32))
        hitsk = tf.reduce_sum(tf.cast(topk_hits(logits, labels, top_k), tf.float32))
        return loss, hits1, hitsk

    # No AutoGraph here or in the package's other tf.functions and Dataset.map functions: the
    # code is straight-line TF, and the rewrite cost ~0.5 s here (PERFORMANCE.md, `autograph-off`).
    @tf.function(autograph=False)
    def train_step(batch):
        images, labels = batch
        out = strategy.run(replica_step, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in out]

    return train_step


def _init_fresh_run(model: keras.Model, config: TrainConfig,
                    strategy: tf.distribute.Strategy) -> None:
    """Starts a fine-tuning run from `init_from`; only a run with no checkpoint gets here."""
    init_from = config.init_from
    with strategy.scope():
        copied = init_from_file(model, init_from, config.data_classes)
    logging.info("Started from %s: %d layers copied (%s); fc8 %s.", init_from, len(copied),
                 ", ".join(copied), "copied" if "fc8" in copied else "initialised afresh")


def _check_data(config: TrainConfig, source: Any, model: keras.Model) -> int:
    """Steps per epoch; fails now on data that would fail the run later."""
    info, outputs = source.info, model.output_shape[-1]
    if info.num_classes != outputs:
        raise ValueError(
            f"The network has {outputs} classes (model.num_classes={outputs}) but the data has "
            f"{info.num_classes}; set model.num_classes={info.num_classes}."
        )
    if not info.num_eval:
        # Checked now: validation comes only at the first epoch's end, and a resumed run would
        # meet the same error there again.
        raise ValueError(f"{config.data or 'the data source'} has no validation images; the "
                         "schedule needs them (prepare_imagenet.py reads them from val/).")
    return config.epoch_steps(info.num_train)


# Why the loop left an epoch before its end (None: the epoch ended).
SIGNAL, TIME_BUDGET, CALLBACK = "signal", "time_budget", "callback"


class _Loop:
    """The epoch/step loop of `train`, with its logging, checkpoints and stopping rules."""

    def __init__(self, config: TrainConfig, source: Any, state: TrainState,
                 checkpoints: RunCheckpoints, writers: RunWriters, *, steps_per_epoch: int,
                 log_path: Path, on_step_end: StepCallback | None) -> None:
        self.c, self.source, self.state = config, source, state
        self.checkpoints, self.writers = checkpoints, writers
        self.steps_per_epoch, self.log_path, self.on_step_end = (
            steps_per_epoch, log_path, on_step_end)
        # The network's own input size: AlexNet's is config.model.input_size.
        self.input_size = int(state.model.input_shape[1])
        self.history: list[dict[str, Any]] = []
        self.signals = StopSignals(enabled=False)  # train() sets the active one
        self._seconds_per_step: float | None = None  # measured, for the progress bar
        # Traced at the first validation and reused: a new trace per validation cost 0.1 s
        # (tiny network) to 0.15 s (full network) on a 2-core Xeon, each time.
        self._predict: Predictor | None = None
        # The epoch in progress: its progress bar and TensorBoard window.
        self._bar: keras.utils.Progbar | None = None
        self._window = _Window()

    def run(self, train_step: Callable, strategy: tf.distribute.Strategy) -> str:
        """Trains epochs until the config's count, the schedule, the time budget or the step
        callback ends it; returns why it ended."""
        c, state = self.c, self.state
        deadline = time.monotonic() + c.max_train_seconds if c.max_train_seconds else None
        if bool(state.schedule.stopped.numpy()):
            return "schedule"
        while int(state.epoch) < c.epochs:
            left_early = self._epoch(train_step, strategy, deadline)
            if left_early:
                return self._end_mid_epoch(left_early)
            decision = self._end_epoch()
            if self.signals.received:
                self._interrupted(self.checkpoints.latest)
            if decision == STOP:
                return "schedule"
        return "epochs"

    def _end_mid_epoch(self, reason: str) -> str:
        """Saves, validates and ends a run that stops inside an epoch; a signal raises."""
        if reason == SIGNAL:
            self._interrupted(self.checkpoints.save())
        state = self.state
        self.checkpoints.save()  # raises on non-finite weights, before they are validated
        self._validate(int(state.epoch), int(state.step))
        # The epoch-end summaries too: such a run may never reach an epoch's end.
        self.writers.epoch_images(int(state.step), state.model)
        if reason == TIME_BUDGET:
            logging.info("Time budget of %.0f s used up at step %d.", self.c.max_train_seconds,
                         int(state.step))
        return reason

    def _interrupted(self, checkpoint: str | None) -> None:
        raise TrainingInterrupted(
            f"{self.signals.received} at step {int(self.state.step)}: saved {checkpoint}. "
            "Rerun the same command to resume.")

    def _epoch(self, train_step: Callable, strategy: tf.distribute.Strategy,
               deadline: float | None) -> str | None:
        """Runs the rest of the current epoch; returns why it left early, or None."""
        c, state = self.c, self.state
        e, done = int(state.epoch), int(state.batches_done)
        batches = kd.distribute_dataset(strategy, functools.partial(self._shard, e, done),
                                        c.batch_size)
        self._bar = self._progress_bar(e, done, deadline)
        self._window = _Window()
        sums = np.zeros(3)  # loss, top-1 hits, top-k hits
        epoch_start, left_early = time.monotonic(), None
        with self.log_path.open("a") as log:
            for batch in batches:
                out = [float(x) for x in train_step(batch)]
                sums += out
                left_early = self._after_step(log, e, done, out[0], out[1], epoch_start,
                                              deadline)
                if left_early:
                    break
        if self._bar and left_early:
            print(flush=True)  # end the bar's line: the next log line starts on its own
        self._epoch_scalars(int(state.batches_done) - done, sums)
        return left_early

    def _after_step(self, log: Any, e: int, done: int, loss: float, hits1: float,
                    epoch_start: float, deadline: float | None) -> str | None:
        """A step's bookkeeping: counters, the non-finite check, its log line, progress,
        TensorBoard, checkpoint cadence; returns why the epoch must end now, or None."""
        c, state = self.c, self.state
        state.step.assign_add(1)
        state.batches_done.assign_add(1)
        s, n = int(state.step), int(state.batches_done) - done
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"Loss is {loss} at step {s} (epoch {e + 1}, batch {int(state.batches_done)}); "
                f"stopping. The last good checkpoint is {self.checkpoints.latest}. Lower "
                "learning_rate or check the input data.")
        lr = float(state.optimizer.learning_rate.numpy())
        record = {"step": s, "epoch": e, "loss": loss, "learning_rate": lr,
                  "top1_hits": int(hits1)}
        log.write(json.dumps(record) + "\n")
        log.flush()
        self._window.add(loss)
        self._seconds_per_step = max(time.monotonic() - epoch_start, 1e-9) / n
        if self._bar:
            self._bar.update(n, [("loss", loss),
                                 ("images/s", c.batch_size / self._seconds_per_step)])
        if s % c.log_every_steps == 0:
            self.writers.scalars("train", s, self._window.scalars(lr, c.batch_size))
            self._window = _Window()
        if s % c.checkpoint_every_steps == 0 or (
                c.checkpoint_every_minutes
                and self.checkpoints.minutes_since_save() >= c.checkpoint_every_minutes):
            self.checkpoints.save()
        if self.on_step_end and self.on_step_end(record):
            return CALLBACK
        if self.signals.received:
            return SIGNAL
        if deadline is not None and time.monotonic() > deadline:
            return TIME_BUDGET
        return None

    def _epoch_scalars(self, n: int, sums: np.ndarray) -> None:
        """The epoch's (or its part's) mean loss and training errors, if it trained at all."""
        if n:
            examples = n * self.c.batch_size
            self.writers.scalars("train", int(self.state.step), {
                "epoch_loss": sums[0] / n, "top1_error": 1 - sums[1] / examples,
                "top5_error": 1 - sums[2] / examples})

    def _progress_bar(self, e: int, done: int,
                      deadline: float | None) -> keras.utils.Progbar | BudgetBar | None:
        """The epoch's bar; against the clock where a time budget will end the run first."""
        c = self.c
        if not c.progress_bar:
            return None
        header = f"Epoch {e + 1}/{c.epochs}" + (f" (resumed after batch {done})" if done else "")
        # On a mid-epoch resume the bar counts only the batches left: Progbar times its ETA
        # and weights its running loss from batch 0, so starting it at `done` skews both.
        target: int | None = self.steps_per_epoch - done
        if deadline is not None:
            left = deadline - time.monotonic()
            header += (f": time budget {left / 60:.1f} min, until "
                       f"{time.strftime('%H:%M:%S', time.localtime(time.time() + left))}")
            if left < self._epoch_seconds_estimate():
                # The budget, not the epoch, ends such a run: an epoch bar would promise an
                # ETA it never reaches. Steps, the minutes left and speed are shown instead.
                print(header, flush=True)
                return BudgetBar(deadline)
        print(header, flush=True)
        return keras.utils.Progbar(target, stateful_metrics=["images/s"])

    def _epoch_seconds_estimate(self) -> float:
        """Seconds one epoch would take at the speed seen so far (inf before any step)."""
        return float("inf") if not self._seconds_per_step else (
            self._seconds_per_step * self.steps_per_epoch)

    def _shard(self, e: int, done: int, batch_size: int, num_shards: int,
               shard_index: int) -> tf.data.Dataset:
        """This worker's batches of epoch `e` after the `done` batches already trained."""
        c = self.c
        # Each worker reads its own shard; each step takes one batch per local replica.
        per_step = c.batch_size // (num_shards * batch_size)
        ds = self.source.train_dataset(batch_size, self.input_size, seed=c.seed, epoch=e,
                                       augment=c.augment, crops_and_flips=c.crops_and_flips,
                                       pca_lighting=c.pca_lighting,
                                       num_shards=num_shards, shard_index=shard_index,
                                       skip_batches=done * per_step)
        return ds.take((self.steps_per_epoch - done) * per_step)

    def _end_epoch(self) -> str:
        """Validation, the schedule's decision, a checkpoint and the epoch's images."""
        state = self.state
        self.checkpoints.check_finite()  # before validating weights that may have blown up
        e = int(state.epoch)
        state.epoch.assign_add(1)
        state.batches_done.assign(0)
        record = self._validate(e, int(state.step))
        decision = state.schedule.step(state.optimizer, record["val_top1_error"])
        record["schedule"] = decision
        if decision == REDUCE:
            logging.info("Validation error stopped improving: learning rate now %g.",
                         float(state.optimizer.learning_rate.numpy()))
        elif decision == EXHAUSTED:
            logging.info("Learning rate reduced %d times; continuing.",
                         self.c.schedule_max_reductions)
        elif decision == STOP:
            logging.info("Validation error stopped improving after the last reduction: "
                         "stopping at epoch %d.", e + 1)
        self.checkpoints.save()
        self.writers.epoch_images(int(state.step), state.model)
        self.writers.flush()
        return decision

    def _validate(self, e: int, s: int) -> dict[str, Any]:
        c = self.c
        ds = self.source.eval_dataset(c.batch_size, self.input_size, ten_crop=c.ten_crop_eval)
        if c.eval_steps:
            ds = ds.take(c.eval_steps)
        k = top5_k(self.source.info.num_classes)
        n, loss, hits1, hitsk = 0, 0.0, 0, 0
        if self._predict is None:
            self._predict = Predictor(self.state.model, ten_crop=c.ten_crop_eval,
                                      from_logits=True)
        for probs, labels in self._predict(ds):
            if not np.isfinite(probs).all():  # finite weights can still overflow activations
                raise NonFiniteLossError(
                    f"The network's outputs are NaN/inf at step {s} (validation); stopping. The "
                    f"last good checkpoint is {self.checkpoints.latest}. Lower learning_rate.")
            picked = probs[np.arange(len(labels)), labels]
            loss += float(-np.log(np.maximum(picked, np.finfo(np.float32).tiny)).sum())
            hits1 += int(topk_correct(probs, labels, 1).sum())
            hitsk += int(topk_correct(probs, labels, k).sum())
            n += len(labels)
        record = {"epoch": e + 1, "step": s, "val_loss": loss / n,
                  "val_top1_error": 1 - hits1 / n, "val_top5_error": 1 - hitsk / n,
                  "learning_rate": float(self.state.optimizer.learning_rate.numpy())}
        self.writers.scalars("validation", s, {
            "loss": record["val_loss"], "top1_error": record["val_top1_error"],
            "top5_error": record["val_top5_error"]})
        logging.info("Epoch %d (step %d): val loss %.4f, top-1 error %.2f%%, top-%d error "
                     "%.2f%%, lr %g", e + 1, s, record["val_loss"],
                     100 * record["val_top1_error"], k, 100 * record["val_top5_error"],
                     record["learning_rate"])
        self.history.append(record)
        return record


class _Window:
    """Loss and speed over the steps since the last TensorBoard write."""

    def __init__(self) -> None:
        self.start, self.steps, self.loss = time.monotonic(), 0, 0.0

    def add(self, loss: float) -> None:
        self.steps += 1
        self.loss += loss

    def scalars(self, learning_rate: float, batch_size: int) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return {"loss": self.loss / self.steps, "learning_rate": learning_rate,
                "images_per_second": self.steps * batch_size / elapsed}
