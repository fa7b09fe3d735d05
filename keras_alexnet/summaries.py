"""TensorBoard output of a training run: scalars, weight histograms, conv1 kernels (Figure 3)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def conv1_kernels(model: keras.Model) -> list[np.ndarray]:
    """The conv1 kernels of each tower, each [k, k, 3, filters_per_tower] (Figure 3's rows)."""
    towers = sorted(
        (layer for layer in model.layers if layer.name.split("_t")[0] == "conv1"),
        key=lambda layer: layer.name,
    )
    if not towers:
        raise ValueError(f"Model {model.name!r} has no conv1 layer (conv1 or conv1_t<i>).")
    return [np.asarray(layer.kernel.numpy()) for layer in towers]


def conv1_kernel_grid(model: keras.Model, columns: int = 16, pad: int = 1) -> np.ndarray:
    """The conv1 kernels as one uint8 RGB image [H, W, 3], like Figure 3 of the paper.

    Each kernel is min-max scaled to 0..255 on its own (as the figure shows them); each
    tower's kernels fill rows of `columns`, and towers are stacked top to bottom with a gap,
    as the figure puts GPU 1's 48 kernels above GPU 2's.
    """
    blocks = []
    for kernels in conv1_kernels(model):
        k, _, channels, count = kernels.shape
        if channels != 3:
            raise ValueError(f"conv1 kernels have {channels} input channels; expected RGB (3).")
        cols = min(columns, count)
        rows = -(-count // cols)
        block = np.zeros((rows * (k + pad) + pad, cols * (k + pad) + pad, 3), np.uint8)
        for i in range(count):
            w = kernels[..., i]
            span = float(w.max() - w.min())
            scaled = (w - w.min()) / span if span > 0 else np.zeros_like(w)
            y, x = pad + (i // cols) * (k + pad), pad + (i % cols) * (k + pad)
            block[y:y + k, x:x + k] = np.round(255 * scaled).astype(np.uint8)
        blocks.append(block)
    width = max(b.shape[1] for b in blocks)
    gap = np.zeros((2 * pad, width, 3), np.uint8)
    parts = []
    for b in blocks:
        parts += [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0))), gap]
    return np.concatenate(parts[:-1], axis=0)


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
            tf.summary.image("conv1_kernels", conv1_kernel_grid(model)[None])

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
