"""The `model.fit` path: the same network, `PaperSGD` and schedule with standard callbacks.

Resuming through `keras.callbacks.BackupAndRestore` restarts at the last epoch boundary with
that epoch's weights, optimizer state and (saved by the schedule callback) schedule state, but
not exactly: the batch stream starts again from epoch 0's and the mid-epoch position is lost.
Use `keras_alexnet.train.train` for exact resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras

from keras_alexnet.evaluate import top5_k
from keras_alexnet.model import build_alexnet
from keras_alexnet.precision import dtype_policy
from keras_alexnet.precision import resolve as resolve_precision
from keras_alexnet.schedule import PlateauSchedule, PlateauScheduleCallback
from keras_alexnet.train_config import TrainConfig
from keras_alexnet.transfer import freeze_layers, init_from_file


def compile_for_training(config: TrainConfig) -> keras.Model:
    """The network with logits, compiled with `PaperSGD`, sparse CE and top-1/top-5 accuracy.

    With `config.init_from` the weights start from that trained network (fc8 afresh for new
    classes) and `config.freeze`'s layers are not trainable (no update, no weight decay). A
    `BackupAndRestore` resume then overwrites these start weights with the backup's.

    Raises:
      ValueError: a bad init_from file or freeze name.
    """
    with dtype_policy(resolve_precision(config.precision)):
        model = build_alexnet(config.model.replace(classifier_activation=None))
    if config.init_from:
        init_from_file(model, config.init_from, config.data_classes)
    freeze_layers(model, config.freeze)  # before compile: the optimizer sees trainables only
    k = top5_k(config.model.num_classes)
    model.compile(
        optimizer=config.make_optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k, name="top5_accuracy")],
    )
    return model


def epoch_batches(
    source: Any,
    batch_size: int,
    input_size: int,
    *,
    seed: int,
    epochs: int,
    steps_per_epoch: int | None = None,
    augment: bool = True,
    crops_and_flips: bool = True,
    pca_lighting: bool = True,
) -> Iterator[tuple]:
    """Training batches for `model.fit`: `epochs` epochs, each drawn from (seed, epoch).

    A generator rather than `dataset.repeat()`: a repeated seeded dataset would replay the
    same crops, flips and lighting every epoch. `steps_per_epoch` caps each epoch; `augment`,
    `crops_and_flips` and `pca_lighting` are Section 4.1's switches (TrainConfig's, as in the
    custom loop).
    """
    for epoch in range(epochs):
        ds = source.train_dataset(batch_size, input_size, seed=seed, epoch=epoch,
                                  augment=augment, crops_and_flips=crops_and_flips,
                                  pca_lighting=pca_lighting)
        yield from (ds.take(steps_per_epoch) if steps_per_epoch else ds)


def fit(
    config: TrainConfig,
    *,
    source: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, keras.callbacks.History]:
    """Trains with `model.fit`: TensorBoard, BackupAndRestore and the plateau schedule.

    Logs go to `<work_dir>/fit_logs`, the backup to `<work_dir>/fit_backup`. Returns the
    (logits) model and the History; `history.history["learning_rate"]` shows the schedule.
    """
    if source is None:
        source = config.open_source()
    keras.utils.set_random_seed(config.seed)
    work_dir = Path(config.work_dir)
    model = compile_for_training(config)
    schedule = PlateauSchedule.from_config(config)
    val = source.eval_dataset(config.batch_size, config.model.input_size)
    if config.eval_steps:
        val = val.take(config.eval_steps)
    steps = config.epoch_steps(source.info.num_train)
    history = model.fit(
        epoch_batches(source, config.batch_size, config.model.input_size, seed=config.seed,
                      epochs=config.epochs, steps_per_epoch=steps, augment=config.augment,
                      crops_and_flips=config.crops_and_flips, pca_lighting=config.pca_lighting),
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=val,
        verbose=1 if config.progress_bar else 2,
        shuffle=False,  # each epoch's stream is already shuffled by (seed, epoch)
        callbacks=[
            # Before the backup, so the backup holds the epoch's new learning rate.
            PlateauScheduleCallback(schedule, monitor="val_accuracy",
                                    state_dir=str(work_dir / "fit_schedule")),
            keras.callbacks.BackupAndRestore(str(work_dir / "fit_backup")),
            keras.callbacks.TensorBoard(str(work_dir / "fit_logs")),
            *callbacks,
        ],
    )
    return model, history
