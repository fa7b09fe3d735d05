"""Loading a trained model: a `.keras` file, or the newest checkpoint of a training run.

One place for it: scripts/evaluate.py, scripts/export.py and scripts/visualize.py all load here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

# Importing these registers AlexNet, its layers and PaperSGD for keras.saving.
import keras_alexnet.optim  # noqa: F401
from keras_alexnet.config import AlexNetConfig
from keras_alexnet.model import build_alexnet


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Loads a `.keras` file saved with `model.save` (our custom layers registered)."""
    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"No model file at {str(path)!r}; pass the .keras file model.save wrote.")
    return keras.saving.load_model(path, compile=False)


def read_run_config(checkpoint_dir: str | os.PathLike) -> dict:
    """The JSON of config.json in `checkpoint_dir` or its parent (the training work dir)."""
    d = Path(checkpoint_dir)
    for candidate in (d / "config.json", d.parent / "config.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise ValueError(f"No config.json in {d} or {d.parent}; pass the model's AlexNetConfig.")


def find_config(checkpoint_dir: str | os.PathLike) -> AlexNetConfig:
    """The model config from config.json in `checkpoint_dir` or its parent."""
    values = read_run_config(checkpoint_dir)
    # A training work dir's config.json wraps the model config in the run's settings.
    return AlexNetConfig.from_dict(values["model"] if "model" in values else values)


def load_model(path: str | os.PathLike, config: AlexNetConfig | None = None) -> keras.Model:
    """A `.keras` file, or the latest checkpoint of a training run (see model_from_checkpoint)."""
    if str(path).endswith(".keras"):
        return load_keras_model(path)
    return model_from_checkpoint(path, config)


def model_from_checkpoint(checkpoint_dir: str | os.PathLike,
                          config: AlexNetConfig | None = None) -> keras.Model:
    """Builds the network of `config` and restores the latest training checkpoint into it.

    `checkpoint_dir` is a tf.train.CheckpointManager directory (or one checkpoint prefix)
    written by keras_alexnet.train: the model's variables are under `model=` as
    `train.model_state(model)`; optimizer slots and the like are ignored. config None reads
    config.json (a TrainConfig's or an AlexNetConfig's) from the directory or its parent.
    """
    from keras_alexnet.train import model_state  # the trainer's checkpoint layout, one place

    path = str(checkpoint_dir)
    prefix = tf.train.latest_checkpoint(path) if Path(path).is_dir() else path
    if not prefix or not tf.io.gfile.exists(prefix + ".index"):
        raise ValueError(f"No checkpoint found at {path!r}; pass a CheckpointManager directory "
                         "or a checkpoint prefix such as ckpt-12.")
    if config is None:
        config = find_config(path if Path(path).is_dir() else Path(path).parent)
    model = build_alexnet(config)
    status = tf.train.Checkpoint(model=model_state(model)).restore(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"Checkpoint {prefix} does not hold this model's weights (wrong config "
                         f"or not a model=... checkpoint): {str(e)[:300]}") from None
    return model
