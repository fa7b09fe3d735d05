"""The paper's learning-rate schedule (Section 5): divide by 10 when validation error plateaus.

"The heuristic which we followed was to divide the learning rate by 10 when the validation
error rate stopped improving with the current learning rate. [...] reduced three times prior
to termination." `PlateauSchedule` keeps its state in `tf.Variable`s, so it goes into a
`tf.train.Checkpoint` and a resumed run makes the same decisions; `PlateauScheduleCallback`
drives the same object from `model.fit`.
"""

from __future__ import annotations

import math
import shutil

import keras
import tensorflow as tf

from keras_alexnet.train_config import ON_EXHAUSTED, TrainConfig

# The schedule's defaults are TrainConfig's (one source of truth for Section 5's numbers).
_DEFAULTS = TrainConfig()

# Decisions returned by `PlateauSchedule.update`.
IMPROVED = "improved"  # new best error
WAIT = "wait"  # no progress yet, still within patience
REDUCE = "reduce"  # divide the learning rate
STOP = "stop"  # plateau after the last allowed reduction: end training
EXHAUSTED = "exhausted"  # as STOP, but configured to keep going at the last learning rate
FINISHED = "finished"  # asked again after STOP


class PlateauSchedule(tf.Module):
    """Decides, once per epoch from the validation error, whether to cut the learning rate.

    A validation error counts as progress if it is below the best so far by more than
    `threshold` (absolute). After `patience` epochs without progress the learning rate is
    multiplied by `factor`, up to `max_reductions` times; the next plateau then gives STOP
    (or EXHAUSTED with `on_exhausted="continue"`). The best error is kept across reductions.
    """

    def __init__(
        self,
        patience: int = _DEFAULTS.schedule_patience,
        threshold: float = _DEFAULTS.schedule_threshold,
        factor: float = _DEFAULTS.lr_decay_factor,
        max_reductions: int = _DEFAULTS.schedule_max_reductions,
        on_exhausted: str = _DEFAULTS.schedule_on_exhausted,
        name: str = "plateau_schedule",
    ) -> None:
        super().__init__(name=name)
        if patience < 1:
            raise ValueError(f"patience={patience} must be at least 1 epoch.")
        if threshold < 0:
            raise ValueError(f"threshold={threshold} must be >= 0.")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor={factor} must be in (0, 1); the paper uses 0.1.")
        if max_reductions < 0:
            raise ValueError(f"max_reductions={max_reductions} must be >= 0.")
        if on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"on_exhausted={on_exhausted!r} must be one of {ON_EXHAUSTED}.")
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.factor = float(factor)
        self.max_reductions = int(max_reductions)
        self.on_exhausted = on_exhausted
        # Variables, not Python numbers: they are saved in and restored from checkpoints.
        self.best_error = tf.Variable(math.inf, dtype=tf.float64, trainable=False,
                                      name="best_error")
        self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs")
        self.num_reductions = tf.Variable(0, dtype=tf.int64, trainable=False,
                                          name="num_reductions")
        self.stopped = tf.Variable(False, trainable=False, name="stopped")

    @classmethod
    def from_config(cls, config: TrainConfig) -> PlateauSchedule:
        """Section 5's divide-by-10-on-plateau schedule with a training run's settings."""
        return cls(config.schedule_patience, config.schedule_threshold, config.lr_decay_factor,
                   config.schedule_max_reductions, config.schedule_on_exhausted)

    def update(self, val_error: float) -> str:
        """Records one epoch's validation error; returns the decision (a module constant)."""
        val_error = float(val_error)
        if math.isnan(val_error):
            raise ValueError("val_error is NaN; the schedule needs a real validation error.")
        if bool(self.stopped.numpy()):
            return FINISHED
        if val_error < float(self.best_error.numpy()) - self.threshold:
            self.best_error.assign(val_error)
            self.bad_epochs.assign(0)
            return IMPROVED
        self.bad_epochs.assign_add(1)
        if int(self.bad_epochs.numpy()) < self.patience:
            return WAIT
        self.bad_epochs.assign(0)
        if int(self.num_reductions.numpy()) < self.max_reductions:
            self.num_reductions.assign_add(1)
            return REDUCE
        if self.on_exhausted == "stop":
            self.stopped.assign(True)
            return STOP
        return EXHAUSTED

    def step(self, optimizer: keras.optimizers.Optimizer, val_error: float) -> str:
        """`update`, then applies a REDUCE to `optimizer.learning_rate`."""
        decision = self.update(val_error)
        if decision == REDUCE:
            optimizer.learning_rate = float(optimizer.learning_rate.numpy()) * self.factor
        return decision


class PlateauScheduleCallback(keras.callbacks.Callback):
    """`PlateauSchedule` for `model.fit`: cuts the optimizer's learning rate, stops training.

    Args:
      schedule: the schedule (a fresh paper-default one if None).
      monitor: the epoch log to follow. Names ending in "accuracy" are turned into an error
        (1 - accuracy); anything else (e.g. "val_loss") is used as is.
      state_dir: if set, the schedule's state is checkpointed here after every epoch,
        restored when training begins and deleted when it ends, as
        `keras.callbacks.BackupAndRestore` does with its backup: an interrupted run resumes,
        a finished one does not seed the next. The backup saves the weights and optimizer
        (learning rate included) but knows nothing of this callback; put this callback
        before it in the list, so the backup sees the epoch's new learning rate.
    """

    def __init__(
        self,
        schedule: PlateauSchedule | None = None,
        monitor: str = "val_accuracy",
        state_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.schedule = schedule or PlateauSchedule()
        self.monitor = monitor
        self.state_dir = state_dir
        self._manager = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.state_dir is None:
            return
        # Made here, not in __init__: a manager caches the checkpoint list it found.
        self._manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(schedule=self.schedule), str(self.state_dir), max_to_keep=1)
        if self._manager.latest_checkpoint:
            self._manager.checkpoint.restore(self._manager.latest_checkpoint).assert_consumed()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise ValueError(
                f"PlateauScheduleCallback monitors {self.monitor!r}, but the epoch logs have "
                f"only {sorted(logs)}; pass validation_data to fit or another monitor."
            )
        value = float(logs[self.monitor])
        error = 1.0 - value if self.monitor.endswith("accuracy") else value
        decision = self.schedule.step(self.model.optimizer, error)
        logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
        if self._manager is not None:
            self._manager.save()
        if decision == STOP:
            self.model.stop_training = True
