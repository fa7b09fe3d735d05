"""What a training checkpoint holds, and saving and restoring it.

The state of a run is everything its next step depends on: the weights, the dropout seed
generators' states, the optimizer's velocities and learning rate, the schedule, the step, the
epoch and the number of batches done in it. The data stream of an epoch is a pure function of
(seed, epoch), so with these a resumed run continues exactly where the saved one was.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from keras_alexnet.schedule import PlateauSchedule

CHECKPOINT_DIR = "checkpoints"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped, its last good checkpoint kept."""


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


@dataclasses.dataclass
class TrainState:
    """The checkpointed state of a run: the model, its optimizer and schedule, and counters.

    `step` counts steps over the whole run, `epoch` complete epochs, `batches_done` the
    batches of the current epoch (this worker's share, one per step).
    """

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    schedule: PlateauSchedule
    step: tf.Variable
    epoch: tf.Variable
    batches_done: tf.Variable

    @classmethod
    def create(cls, model: keras.Model, optimizer: keras.optimizers.Optimizer,
               schedule: PlateauSchedule) -> TrainState:
        """A fresh state at step 0; `optimizer` must already be built for `model`."""
        # Host-side counters: plain variables outside any strategy, read between steps.
        with tf.device("/cpu:0"):
            counters = [tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
                        for name in ("step", "epoch", "batches_done")]
        return cls(model, optimizer, schedule, *counters)

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            model=model_state(self.model), optimizer=self.optimizer, schedule=self.schedule,
            step=self.step, epoch=self.epoch, batches_done=self.batches_done)


class RunCheckpoints:
    """Saves a `TrainState` under `write_dir/checkpoints`, restores from `read_dir`'s newest.

    In multi-worker runs every worker saves (saving reads mirrored variables collectively)
    but only the chief's folder is kept, so every worker restores the chief's (`read_dir`).
    """

    def __init__(self, state: TrainState, write_dir: str | Path, read_dir: str | Path,
                 max_to_keep: int) -> None:
        self.state = state
        self.read_dir = Path(read_dir) / CHECKPOINT_DIR
        self._last_save = time.monotonic()
        self._manager = tf.train.CheckpointManager(
            state.checkpoint(), str(Path(write_dir) / CHECKPOINT_DIR), max_to_keep=max_to_keep)

    def minutes_since_save(self) -> float:
        """Minutes since the last save (or since this object was made)."""
        return (time.monotonic() - self._last_save) / 60

    @property
    def latest(self) -> str | None:
        """The newest checkpoint this run saved, or None."""
        return self._manager.latest_checkpoint

    def restore(self, config_path: str | Path) -> str | None:
        """Restores the newest checkpoint of `read_dir`, if any; returns its path.

        Raises:
          ValueError: the checkpoint does not fit the state's model (another config's run);
            the message names `config_path`, the config that does fit.
        """
        latest = tf.train.latest_checkpoint(str(self.read_dir))
        if not latest:
            return None
        try:
            self._manager.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise ValueError(
                f"The checkpoint {latest} does not fit this config's model "
                f"({str(e).splitlines()[0][:200]}); use a fresh work_dir or the run's own "
                f"config ({config_path}).") from None
        s = self.state
        where = (f"in epoch {int(s.epoch) + 1} after batch {int(s.batches_done)}"
                 if int(s.batches_done) else f"after {int(s.epoch)} complete epochs")
        logging.info("Resumed from %s: step %d, %s.", latest, int(s.step), where)
        return latest

    def check_finite(self) -> None:
        """Raises NonFiniteLossError if the weights hold NaN or inf (a step can produce a finite
        loss but non-finite weights): such weights are neither saved nor validated."""
        if not all(bool(tf.reduce_all(tf.math.is_finite(v)))
                   for v in self.state.model.trainable_variables):
            raise NonFiniteLossError(
                f"Weights became NaN/inf at step {int(self.state.step)}; not saving them. The "
                f"last good checkpoint is {self.latest}.")

    def save(self) -> str:
        """Saves the state; returns the checkpoint's path.

        Raises:
          NonFiniteLossError: the weights hold NaN or inf (a step can produce a finite loss
            but non-finite weights); they are not saved.
        """
        self.check_finite()
        # Numbered by save count, not step: the epoch-end save can share a step with a
        # mid-epoch one, and a checkpoint is never overwritten in place.
        path = self._manager.save()
        self._last_save = time.monotonic()
        return path
