"""TensorBoard output of a training run: scalars, weight histograms, conv1 kernels (Figure 3)."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

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
                tf.summary.histogram("weights/" + v.path, v.numpy())
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
