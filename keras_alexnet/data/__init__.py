"""Data for keras_alexnet: ImageNet preparation, the tf.data pipeline and augmentation (4.1)."""

from __future__ import annotations

from pathlib import Path

from keras_alexnet.data.augment import PAPER, TEN_CROP_ORDER, AugmentConstants
from keras_alexnet.data.fashion_mnist import FashionMnistSource
from keras_alexnet.data.pipeline import DatasetInfo, Source, benchmark_pipeline
from keras_alexnet.data.prepare import PrepareResult, prepare_imagenet
from keras_alexnet.data.sources import FolderSource, TFRecordSource

__all__ = [
    "PAPER", "TEN_CROP_ORDER", "AugmentConstants", "DatasetInfo", "FashionMnistSource",
    "FolderSource", "PrepareResult", "Source", "TFRecordSource", "benchmark_pipeline",
    "open_source", "prepare_imagenet",
]


def open_source(spec: str, *, image_size: int | None = None, holdout: int = 0,
                **kwargs) -> Source:
    """A data source from a spec string.

    "fashion_mnist" or "fashion_mnist:/dir" (IDX .gz files); a folder written by
    prepare_imagenet; "folder:/imagenet_root" (train/<wnid>, val/ read directly; kwargs go to
    FolderSource); "tfds:imagenet2012" (needs tensorflow_datasets). `image_size` is the stored
    size for fashion_mnist and folder sources (default 256); prepared data has its own.
    `holdout` > 0 validates Fashion-MNIST on that many held-out training images instead of the
    test set (it has no validation split; ImageNet has its own).

    Raises:
      ValueError: an unknown spec, or a holdout for a source that has a validation split.
    """
    kind, _, arg = spec.partition(":")
    size = {} if image_size is None else {"image_size": image_size}
    if holdout and kind != "fashion_mnist":
        raise ValueError(f"validation_holdout={holdout} works with fashion_mnist only, not "
                         f"{spec!r}; ImageNet has a val split.")
    if kind == "fashion_mnist":
        return FashionMnistSource(arg or None, **size, holdout=holdout, **kwargs)
    if kind == "folder" and arg:
        return FolderSource(arg, **size, **kwargs)
    if kind == "tfds" and arg:
        from keras_alexnet.data.tfds_source import TfdsSource

        return TfdsSource(arg, **size, **kwargs)
    if Path(spec).is_dir() and (Path(spec) / "manifest.json").is_file():
        if image_size is not None:
            raise ValueError(f"image_size={image_size}: prepared data in {spec} has a fixed "
                             "stored size; omit image_size.")
        return TFRecordSource(spec, **kwargs)
    raise ValueError(f"Unknown data spec {spec!r}: use 'fashion_mnist[:dir]', a folder made by "
                     "scripts/prepare_imagenet.py, 'folder:/imagenet_root' or 'tfds:imagenet2012'.")
