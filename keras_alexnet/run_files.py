"""The files of a training run's work dir, other than checkpoints and TensorBoard logs.

  config.json       the run's TrainConfig (what evaluate, export and visualize read)
  train_log.jsonl   one line per step: step, epoch (0-based), loss, learning_rate,
                    top1_hits (the batch's correct top-1 predictions, in training mode)
  model.keras       the softmax model, written when training stops
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

from absl import logging

from keras_alexnet.files import atomic_path, write_text_atomic

CONFIG_FILE = "config.json"
LOG_FILE = "train_log.jsonl"
MODEL_FILE = "model.keras"


def check_keras_file(path: str | os.PathLike) -> Path:
    """Refuses a path that is not a `.keras` file or not a zip archive; returns it as a Path.

    No TensorFlow here, so scripts can refuse a bad model file before TensorFlow's seconds of
    start-up (check_model_path); loading.load_keras_model checks the same.

    Raises:
      ValueError: a path without the .keras suffix, not a file, or not a zip archive.
    """
    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"No model file at {str(path)!r}; pass the .keras file model.save wrote.")
    # Keras reports any unreadable archive as "File not found"; say what is wrong with it.
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{str(path)!r} is corrupt or not a .keras file (not a zip archive; "
                         "a truncated copy?); pass the .keras file model.save wrote.")
    return path


def no_checkpoint_error(path: str | os.PathLike) -> ValueError:
    """The error for a path where no training checkpoint is found (one message, two checks)."""
    return ValueError(f"No checkpoint found at {str(path)!r}; pass a CheckpointManager "
                      "directory or a checkpoint prefix such as ckpt-12.")


def check_model_path(path: str | os.PathLike) -> None:
    """Refuses a model path that cannot load, without TensorFlow: scripts call it before TF's
    seconds of start-up.

    A `.keras` path goes through check_keras_file. A local checkpoint directory must hold an
    `.index` file, a checkpoint prefix must have one; loading.model_from_checkpoint checks the
    rest (the directory's `checkpoint` state file, the variables). Remote paths (gs://...) are
    left to TensorFlow's file systems.

    Raises:
      ValueError: as check_keras_file, or no_checkpoint_error.
    """
    text = str(path)
    if text.endswith(".keras"):
        check_keras_file(path)
        return
    if "://" in text:
        return
    local = Path(text)
    if not (any(local.glob("*.index")) if local.is_dir() else Path(text + ".index").is_file()):
        raise no_checkpoint_error(text)


def read_train_log(work_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step records of `train_log.jsonl` (step, epoch, loss, learning_rate,
    top1_hits)."""
    path = Path(work_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_train_log(path: Path, step: int) -> None:
    """Drops log lines past `step`: a killed run may have logged steps its checkpoint lacks."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if _logged_step(ln) <= step]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(ln + "\n" for ln in kept))


def note_config_changes(path: Path, config_json: str) -> None:
    """Logs which fields differ from the config a previous run in this work dir wrote."""
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = json.loads(config_json)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        logging.warning("Config differs from the earlier run in %s in: %s", path.parent,
                        ", ".join(changed))


def save_model_atomic(model: Any, path: str | Path) -> Path:
    """Saves a `keras.Model` as a `.keras` file that readers see whole or not at all."""
    path = Path(path)
    with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the suffix
        model.save(tmp)
    return path


def _logged_step(line: str) -> float:
    """The step of a train_log.jsonl line; a line cut short by a kill counts as past any step."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
