"""Loading a trained model: a `.keras` file, or the newest checkpoint of a training run.

One place for it: scripts/evaluate.py, scripts/export.py and scripts/visualize.py all load here.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

# Importing these registers AlexNet, its layers and PaperSGD for keras.saving.
import keras_alexnet.optim  # noqa: F401
from keras_alexnet.config import AlexNetConfig
from keras_alexnet.model import AlexNet
from keras_alexnet.precision import resolve
from keras_alexnet.run_files import CONFIG_FILE, check_keras_file, no_checkpoint_error


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Loads a `.keras` file saved with `model.save` (our custom layers registered)."""
    path = check_keras_file(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f"{str(path)!r} is corrupt or not a .keras file of this package "
                         f"({type(e).__name__}: {str(e)[:200]}); pass the .keras file "
                         "model.save wrote.") from None


def read_run_config(path: str | os.PathLike) -> dict:
    """The JSON of the training run's config.json, found from the run's files.

    Args:
      path: a checkpoint directory or prefix (work_dir/checkpoints[/ckpt-12]), a .keras file
        (work_dir/model.keras) or a folder holding config.json.

    Raises:
      ValueError: if neither the folder of `path` nor its parent has a config.json.
    """
    p = Path(path)
    d = p if p.is_dir() else p.parent
    for candidate in (d / CONFIG_FILE, d.parent / CONFIG_FILE):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise ValueError(f"No config.json in {d} or {d.parent}; pass the model's AlexNetConfig.")


def open_run_data(path: str | os.PathLike, data: str | None = None,
                  image_size: int | None = None):
    """The data source to evaluate, export or visualise the model at `path` with.

    Args:
      path: the model (see read_run_config); its run's config.json, if any, gives the defaults.
      data: a source spec (keras_alexnet.data.open_source); default: the run's data.
      image_size: the stored image size; default: the run's `data_image_size` when `data` is
        of the run's kind (and then the run's `data_classes` too). The data must be resized as
        in training: a run trained on 72-pixel images and evaluated on crops of 256-pixel ones
        reports a wrong accuracy.

    Raises:
      ValueError: if there is no data spec, or open_source rejects it.
    """
    from keras_alexnet.data import open_source  # the data package is heavy; import on use

    run = _run_or_empty(path)
    data = run_data_spec(path, data)
    same_kind = str(run.get("data", "")).partition(":")[0] == data.partition(":")[0]
    if image_size is None and same_kind:
        image_size = run.get("data_image_size")
    source = open_source(data, **({"image_size": image_size} if image_size else {}))
    if same_kind and run.get("data_classes") is not None:
        # A run on some classes is scored on the same classes, labelled as it was trained.
        from keras_alexnet.data.subset import subset_source

        source = subset_source(source, classes=run["data_classes"])
    return source


def _run_or_empty(path: str | os.PathLike) -> dict:
    try:
        return read_run_config(path)
    except ValueError:
        return {}


def run_data_spec(path: str | os.PathLike, data: str | None = None) -> str:
    """`data`, or the data spec of the run that wrote the model at `path` (its config.json).

    Raises:
      ValueError: if `data` is None and the run names no data.
    """
    data = data if data is not None else _run_or_empty(path).get("data")
    if not data:
        raise ValueError(f"No data for {str(path)!r}: pass --data (a source spec such as "
                         "'fashion_mnist'); the run's config.json names none.")
    return data


def find_config(path: str | os.PathLike) -> AlexNetConfig:
    """The model config from the run's config.json (see read_run_config)."""
    values = read_run_config(path)
    # A training work dir's config.json wraps the model config in the run's settings.
    return AlexNetConfig.from_dict(values["model"] if "model" in values else values)


def load_model(path: str | os.PathLike, config: AlexNetConfig | None = None,
               precision: str | None = None) -> keras.Model:
    """A `.keras` file, or the latest checkpoint of a training run (see model_from_checkpoint).

    `precision` ("float32", "mixed_bfloat16" or "auto") rebuilds the network to compute in
    that precision with the same weights; None keeps the one it was saved with.
    """
    if str(path).endswith(".keras"):
        model = load_keras_model(path)
    else:
        model = model_from_checkpoint(path, config)
    return model if precision is None else with_precision(model, precision)


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` (an AlexNet) computing in `precision`: itself, or a copy with its weights."""
    policy = resolve(precision)
    if not isinstance(model, AlexNet):
        raise ValueError(f"precision={precision!r} needs an AlexNet from build_alexnet, got "
                         f"{type(model).__name__}.")
    if model.precision == policy:
        return model
    copy = AlexNet(model.alexnet_config, tower_devices=model.tower_devices, name=model.name,
                   precision=policy)
    copy.set_weights(model.get_weights())
    return copy


def model_from_checkpoint(checkpoint_dir: str | os.PathLike,
                          config: AlexNetConfig | None = None) -> keras.Model:
    """Builds the network of `config` and restores the latest training checkpoint into it.

    `checkpoint_dir` is a tf.train.CheckpointManager directory (or one checkpoint prefix)
    written by keras_alexnet.train: the model's variables are under `model=` as
    `checkpoint.model_state(model)`; optimizer slots and the like are ignored. config None reads
    config.json (a TrainConfig's or an AlexNetConfig's) from the directory or its parent.
    """
    from keras_alexnet.checkpoint import model_state  # the trainer's checkpoint layout

    path = str(checkpoint_dir)
    prefix = tf.train.latest_checkpoint(path) if Path(path).is_dir() else path
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        raise no_checkpoint_error(path)
    if config is None:
        config = find_config(path)
    # As the run computed: its config.json's precision (float32 when it names none).
    model = AlexNet(config, precision=resolve(_run_or_empty(path).get("precision", "float32")))
    status = tf.train.Checkpoint(model=model_state(model)).restore(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"Checkpoint {prefix} does not hold this model's weights (wrong config "
                         f"or not a model=... checkpoint): {str(e)[:300]}") from None
    return model
