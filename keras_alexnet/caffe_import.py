"""Caffe's trained AlexNet as this package's model, and as a run directory for the scripts.

keras_alexnet.caffe reads the `.caffemodel` (NumPy only); this module sits above the model:
`import_caffe` builds it, `write_caffe_run` saves it with the class names and mean image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np

from keras_alexnet.caffe import CAFFE_MEAN_BGR, caffe_mean_image
from keras_alexnet.files import atomic_path, write_text_atomic
from keras_alexnet.model import build_alexnet
from keras_alexnet.run_files import CONFIG_FILE, MODEL_FILE, save_model_atomic


def import_caffe(caffemodel_path: str | os.PathLike) -> keras.Model:
    """Caffe's bvlc_alexnet (or CaffeNet) `.caffemodel` as this package's AlexNet.

    The model takes mean-subtracted RGB images (batch, 227, 227, 3) on the 0..255 scale, like
    every model of the package, and returns softmax probabilities.

    Raises:
      ValueError: as read_caffe_alexnet.
    """
    return build_alexnet(weights=str(caffemodel_path))


def read_class_names(path: str | os.PathLike | None, num_classes: int
                     ) -> tuple[list[str], list[str]]:
    """(wnids, names) in class order from Caffe's synset_words.txt; None gives "0", "1", ...

    Raises:
      ValueError: if the file does not list exactly `num_classes` classes.
    """
    if path is None:
        ids = [str(i) for i in range(num_classes)]
        return ids, ids
    # The one parser of the format; keras_alexnet.data needs TensorFlow, so it loads on use.
    from keras_alexnet.data.imagenet import read_synset_words

    if not Path(path).is_file():
        raise ValueError(f"No synset words file at {str(path)!r}.")
    words = read_synset_words(path)  # in file order, which is Caffe's class order
    if len(words) != num_classes:
        raise ValueError(f"{path} lists {len(words)} classes; the model has {num_classes}.")
    return list(words), list(words.values())


def write_caffe_run(caffemodel: str | os.PathLike, out_dir: str | os.PathLike, *,
                    mean: str | os.PathLike | None = None,
                    synset_words: str | os.PathLike | None = None) -> Path:
    """Writes a run directory for the other scripts from a Caffe AlexNet.

    `out_dir` gets `model.keras`, `config.json` (the model config and, as its data, `out_dir`
    itself) and the files of an image-less prepared dataset there: `classes.tsv`,
    `mean_image.npy` (RGB, 256x256x3), `stats.json`, `manifest.json`. So scripts/export.py and
    scripts/visualize.py find the class names and mean image with no flags;
    scripts/evaluate.py needs `--data` (this directory holds no images).

    Returns:
      The path of model.keras, written last and atomically: on any error it is not written.

    Raises:
      ValueError: on an unreadable or mismatched input file (one line).
    """
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out={out} exists and is not a directory.")
    model = import_caffe(caffemodel)
    config = model.alexnet_config
    wnids, names = read_class_names(synset_words, config.num_classes)
    mean_image = caffe_mean_image(mean)
    if mean_image.shape[0] < config.input_size:
        raise ValueError(f"{mean}: mean image is {mean_image.shape[0]} pixels; the model crops "
                         f"{config.input_size}.")
    out.mkdir(parents=True, exist_ok=True)
    _write_dataset_files(out, mean_image, mean, wnids, names)
    write_text_atomic(out / CONFIG_FILE, json.dumps({
        "data": str(out), "model": config.to_dict(),
        "imported_from": str(Path(caffemodel).resolve())}, indent=2, sort_keys=True))
    return save_model_atomic(model, out / MODEL_FILE)


def _write_dataset_files(out: Path, mean_image: np.ndarray, mean: str | os.PathLike | None,
                         wnids: list[str], names: list[str]) -> None:
    """The prepared-dataset files (keras_alexnet.data.prepare's layout) with no images."""
    rgb = mean_image.reshape(-1, 3).mean(axis=0)
    with atomic_path(out / "mean_image.npy", suffix=".tmp.npy") as tmp:
        np.save(tmp, mean_image)
    # The RGB covariance of Caffe's training images is unknown: PCA lighting's statistics are 0.
    write_text_atomic(out / "stats.json", json.dumps({
        "scale": "pixel values 0..255", "num_images": 0, "mean_rgb": rgb.tolist(),
        "covariance": np.zeros((3, 3)).tolist(), "eigvals": [0.0, 0.0, 0.0],
        "eigvecs_columns": np.eye(3).tolist(),
        "source": f"Caffe mean {mean or CAFFE_MEAN_BGR} (BGR), as RGB"}, indent=2))
    write_text_atomic(out / "classes.tsv", "".join(
        f"{i}\t{w}\t{n}\n" for i, (w, n) in enumerate(zip(wnids, names))))
    write_text_atomic(out / "manifest.json", json.dumps({
        "format": 1, "image_size": int(mean_image.shape[0]), "num_classes": len(wnids),
        "num_broken": 0, "splits": {s: {"num_examples": 0, "files": [], "per_class": {}}
                                    for s in ("train", "val")}}, indent=2))
