"""The model.fit path: PaperSGD, the plateau schedule and standard Keras callbacks."""

import keras
import numpy as np
import pytest

from keras_alexnet.data import open_source
from keras_alexnet.fit import fit
from keras_alexnet.model import build_alexnet
from keras_alexnet.presets import preset
from keras_alexnet.train import train


@pytest.fixture(scope="module")
def source():
    return open_source("fashion_mnist", image_size=preset("tiny").data_image_size)


def tiny(tmp_path, **changes):
    return preset("tiny").replace(work_dir=str(tmp_path), deterministic=False, steps_per_epoch=4,
                                  eval_steps=2, **changes)


class Interrupt(keras.callbacks.Callback):
    """Raises at the start of epoch `at`, like a crash mid-run."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("interrupted")


@pytest.mark.slow
def test_fit_schedule_tensorboard_and_backup(source, tmp_path):
    # Threshold 1: no epoch after the first counts as progress, so with patience 1 the
    # learning rate is cut after every later epoch.
    config = tiny(tmp_path, epochs=3, schedule_threshold=1.0, schedule_patience=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(config, source=source, callbacks=[Interrupt(at=2)])
    model, history = fit(config, source=source)  # BackupAndRestore resumes at epoch 2
    assert history.epoch == [2]
    for key in ("loss", "accuracy", "top5_accuracy", "val_loss", "val_accuracy"):
        assert key in history.history
    # Cut after epoch 2 (restored from the backup with the optimizer), then after epoch 3.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert list((tmp_path / "fit_logs" / "train").glob("events.out.tfevents.*"))
    assert list((tmp_path / "fit_logs" / "validation").glob("events.out.tfevents.*"))
    assert model.output_shape == (None, 10)


@pytest.mark.slow
def test_fit_reaches_the_same_weights_as_the_custom_loop(source, tmp_path):
    # Same seed, data stream, dropout masks, loss and update rule: after one epoch both
    # paths hold the same weights (up to float summation order).
    config = tiny(tmp_path / "fit", epochs=1)
    model, _ = fit(config, source=source)
    looped = train(config.replace(work_dir=str(tmp_path / "loop")), source=source)
    assert looped.step == 4
    for a, b in zip(model.trainable_variables, looped.model.trainable_variables):
        assert a.path == b.path
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    # ... and both moved away from the common starting point.
    keras.utils.set_random_seed(config.seed)
    start = build_alexnet(config.model.replace(classifier_activation=None))
    moved = np.abs(model.get_layer("fc8").kernel.numpy() - start.get_layer("fc8").kernel.numpy())
    assert moved.max() > 1e-3
