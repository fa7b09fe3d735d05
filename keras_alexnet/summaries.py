"""TensorBoard output of a training run: scalars, weight histograms, conv1 kernels (Figure 3)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

from keras_alexnet import analysis


class RunWriters:
    """The "train" and "validation" TensorBoard writers of a run under `log_dir`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.train = tf.summary.create_file_writer(str(self.log_dir / "train"))
        self.validation = tf.summary.create_file_writer(str(self.log_dir / "validation"))

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        with self._writer(split).as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def config_text(self, step: int, config_json: str) -> None:
        with self.train.as_default(step=step):
            # Markdown code block, so TensorBoard keeps the JSON's indentation.
            tf.summary.text("config", "```\n" + config_json + "\n```")

    def epoch_images(self, step: int, model: keras.Model) -> None:
        """Weight histograms of every trainable variable and the conv1 kernel grid."""
        with self.train.as_default(step=step):
            for v in model.trainable_variables:
                tf.summary.write("weights/" + v.path, histogram_buckets(v.numpy()),
                                 metadata=histogram_metadata.create_summary_metadata(None, None))
            grid = analysis.kernel_grid(analysis.conv1_kernels(model))  # Figure 3
            tf.summary.image("conv1_kernels", grid[None])

    def flush(self) -> None:
        self.train.flush()
        self.validation.flush()

    def close(self) -> None:
        self.train.close()
        self.validation.close()

    def _writer(self, split: str):
        if split not in ("train", "validation"):
            raise ValueError(f"split={split!r} must be 'train' or 'validation'.")
        return self.train if split == "train" else self.validation


# tf.summary.histogram's bucket count.
HISTOGRAM_BUCKETS = 30
_CHUNK = 1 << 20


def histogram_buckets(values: np.ndarray, bucket_count: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """tf.summary.histogram's [k, 3] float64 (left edge, right edge, count) buckets.

    The same buckets, counted in chunks with bincount: TensorBoard counts with an [N, k]
    float64 one-hot (tensorflow/tensorboard#6714), 4.5 GB for one tower's fc6 kernel.
    """
    data = np.asarray(values).reshape(-1)
    if data.size == 0:
        return np.zeros((bucket_count, 3))
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        counts = np.zeros(bucket_count)
        counts[-1] = data.size
        return np.stack([np.full(bucket_count, hi)] * 2 + [counts], axis=1)
    width = (hi - lo) / bucket_count
    counts = np.zeros(bucket_count)
    for start in range(0, data.size, _CHUNK):
        chunk = data[start:start + _CHUNK].astype(np.float64)
        index = np.minimum(np.floor((chunk - lo) / width).astype(np.int32), bucket_count - 1)
        counts += np.bincount(index, minlength=bucket_count)
    edges = np.linspace(lo, hi, bucket_count + 1)
    edges[-1] = hi
    return np.stack([edges[:-1], edges[1:], counts], axis=1)
