"""The plateau learning-rate schedule (Section 5) on scripted validation curves."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.optim import PaperSGD
from keras_alexnet.schedule import (
    EXHAUSTED,
    FINISHED,
    IMPROVED,
    REDUCE,
    STOP,
    WAIT,
    PlateauSchedule,
    PlateauScheduleCallback,
)


def reference(errors, patience, threshold, max_reductions, on_exhausted):
    """An independent re-statement of the rule, as plain Python over a list."""
    best, bad, cuts, out = math.inf, 0, 0, []
    for e in errors:
        if out and out[-1] in (STOP, FINISHED):
            out.append(FINISHED)
        elif e < best - threshold:
            best, bad = e, 0
            out.append(IMPROVED)
        else:
            bad += 1
            if bad < patience:
                out.append(WAIT)
            else:
                bad = 0
                if cuts < max_reductions:
                    cuts += 1
                    out.append(REDUCE)
                else:
                    out.append(STOP if on_exhausted == "stop" else EXHAUSTED)
    return out


def test_paper_curve_three_reductions_then_stop():
    # Improves, plateaus (cut), improves, plateaus (cut) ... the 4th plateau ends training.
    errors = [0.9, 0.7, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.45, 0.45, 0.45, 0.44, 0.44, 0.44, 0.3]
    schedule = PlateauSchedule(patience=2, threshold=0.005)
    decisions = [schedule.update(e) for e in errors]
    assert decisions == [
        IMPROVED, IMPROVED, IMPROVED, WAIT, REDUCE, IMPROVED, WAIT, REDUCE, IMPROVED, WAIT,
        REDUCE, IMPROVED, WAIT, STOP, FINISHED,
    ]
    assert int(schedule.num_reductions.numpy()) == 3


@pytest.mark.parametrize("on_exhausted", ["stop", "continue"])
@pytest.mark.parametrize("patience,threshold", [(1, 0.0), (2, 0.01), (3, 0.05)])
def test_random_curves_match_reference(patience, threshold, on_exhausted):
    rng = np.random.default_rng(patience)
    # A noisy, mostly decreasing curve with long flat stretches.
    errors = np.maximum(0.05, 1 - np.cumsum(rng.choice([0, 0, 0.02, 0.1], 40)))
    errors = errors + rng.normal(0, 0.005, 40)
    schedule = PlateauSchedule(patience, threshold, max_reductions=3, on_exhausted=on_exhausted)
    got = [schedule.update(e) for e in errors]
    assert got == reference(list(errors), patience, threshold, 3, on_exhausted)


def test_step_divides_learning_rate_by_factor():
    optimizer = PaperSGD(learning_rate=0.01)
    schedule = PlateauSchedule(patience=1)
    assert schedule.step(optimizer, 0.5) == IMPROVED
    assert schedule.step(optimizer, 0.5) == REDUCE
    np.testing.assert_allclose(float(optimizer.learning_rate.numpy()), 0.001, rtol=1e-6)


def test_state_survives_a_checkpoint(tmp_path):
    schedule = PlateauSchedule(patience=2)
    for e in (0.5, 0.4, 0.4, 0.4, 0.4):  # best 0.4, one cut, one bad epoch since
        schedule.update(e)
    path = tf.train.Checkpoint(schedule=schedule).save(str(tmp_path / "ck"))
    restored = PlateauSchedule(patience=2)
    tf.train.Checkpoint(schedule=restored).restore(path).assert_consumed()
    assert float(restored.best_error.numpy()) == pytest.approx(0.4)
    assert int(restored.num_reductions.numpy()) == 1
    assert int(restored.bad_epochs.numpy()) == 1
    # The restored copy makes the same next decisions as the original.
    for e in (0.4, 0.39, 0.39):
        assert restored.update(e) == schedule.update(e)


@pytest.mark.parametrize(
    "kwargs", [dict(patience=0), dict(factor=1.0), dict(threshold=-1), dict(on_exhausted="x")]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PlateauSchedule(**kwargs)


def test_callback_cuts_and_stops_in_fit():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.zeros(32, "int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.compile(PaperSGD(learning_rate=0.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # lr 0 freezes the model: val_accuracy never improves after epoch 1, so with patience 1
    # the schedule cuts once per epoch, then stops after max_reductions.
    callback = PlateauScheduleCallback(PlateauSchedule(patience=1, max_reductions=2))
    history = model.fit(x, y, validation_data=(x, y), epochs=10, verbose=0,
                        callbacks=[callback])
    assert len(history.history["loss"]) == 4  # improved, cut, cut, stop
    assert int(callback.schedule.num_reductions.numpy()) == 2


def test_callback_state_survives_a_crash_and_is_dropped_at_the_end(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.zeros(32, "int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.compile(PaperSGD(learning_rate=0.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    state = tmp_path / "schedule"

    def run(epochs, *extra):
        callback = PlateauScheduleCallback(PlateauSchedule(patience=1, max_reductions=2),
                                           state_dir=str(state))
        history = model.fit(x, y, validation_data=(x, y), epochs=epochs, verbose=0,
                            callbacks=[callback, *extra])
        return len(history.history["loss"])

    def crash(epoch, logs):
        if epoch == 2:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        run(10, keras.callbacks.LambdaCallback(on_epoch_begin=crash))  # improved, cut, crash
    assert list(state.glob("ckpt-*.index"))
    assert run(10) == 2  # restored with one cut made: cut, stop
    assert not state.exists()  # finished: the next run starts afresh
    assert run(10) == 4  # improved, cut, cut, stop


def test_callback_names_missing_monitor():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.compile(PaperSGD(), "sparse_categorical_crossentropy")
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    with pytest.raises(ValueError, match="val_accuracy"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[PlateauScheduleCallback()])
