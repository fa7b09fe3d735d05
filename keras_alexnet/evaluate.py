"""Top-1/top-5 error (Section 6), ten-crop test views (Section 4.1) and model averaging (Table 2).

Metrics are pure NumPy functions. `evaluate` runs one or more models over a dataset with a
compiled predict step and averages softmax outputs: over the ten views of an image (Section
4.1: "averaging the predictions made by the network's softmax layer on the ten patches") and
over several models (Table 2's "5 CNNs" averaged the predictions of five networks).

Tie rule: a label counts as in the top-k only if fewer than k *other* classes have a
probability greater than *or equal to* the label's, i.e. a tie at the boundary is a miss.
This is deterministic and independent of class order (unlike taking `argsort` and letting the
sort decide), and it never credits a model for failing to separate classes: a network whose
outputs are all equal (dead ReLUs, a broken checkpoint) scores 100% error, not 0%. Reported
errors are therefore an upper bound on any tie-breaking by index. `ties="optimistic"` gives
the other deterministic rule, which `tf.math.in_top_k` and Keras' top-k accuracy metrics use
(a tie at the boundary is a hit).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.files import atomic_path
from keras_alexnet.progress import known_batches, tracked

TIE_RULES = ("pessimistic", "optimistic")
# Section 6 reports top-1 and top-5 error.
TOP5 = 5


def top5_k(num_classes: int) -> int:
    """The k behind a "top-5" figure: 5, or every class where there are fewer."""
    return min(TOP5, num_classes)


def topk_hits(scores: Any, labels: Any, k: int, ties: str = "pessimistic") -> Any:
    """Per example, whether the label is among the top `k` classes, with `keras.ops`.

    The rule of `topk_correct`, written once for both NumPy arrays and tensors inside a
    compiled training step, so training's running top-k and evaluation count ties alike.
    """
    labels = keras.ops.cast(keras.ops.reshape(labels, (-1, 1)), "int32")
    label_scores = keras.ops.take_along_axis(scores, labels, axis=1)
    if ties == "pessimistic":
        # Minus the label itself.
        rivals = keras.ops.sum(keras.ops.cast(scores >= label_scores, "int32"), axis=1) - 1
    else:
        rivals = keras.ops.sum(keras.ops.cast(scores > label_scores, "int32"), axis=1)
    return rivals < k


def topk_correct(
    probs: np.ndarray, labels: np.ndarray, k: int, ties: str = "pessimistic"
) -> np.ndarray:
    """Per example, whether the label is among the top `k` classes (bool [N]).

    Args:
      probs: [N, C] class scores (probabilities or logits; only their order matters).
      labels: [N] integer labels in [0, C).
      k: 1 <= k <= C.
      ties: "pessimistic" (a tie at the boundary is a miss; the default, see the module
        docstring) or "optimistic" (a hit, as `tf.math.in_top_k`).
    """
    probs, labels = _check_predictions(probs, labels)
    num_classes = probs.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"k={k} must be between 1 and the number of classes ({num_classes}).")
    if ties not in TIE_RULES:
        raise ValueError(f"ties={ties!r} is not a tie rule; use one of {TIE_RULES}.")
    return np.asarray(topk_hits(probs, labels, k, ties))


def topk_error(
    probs: np.ndarray, labels: np.ndarray, k: int, ties: str = "pessimistic"
) -> float:
    """Fraction of examples whose label is not among the top `k` classes (see `topk_correct`)."""
    return 1.0 - float(np.mean(topk_correct(probs, labels, k, ties)))


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Error rates of one evaluation, and top-1/top-5 accuracy per class.

    `per_class_accuracy[c]` is the top-1 accuracy on the examples labelled c (NaN if none).
    """

    top1_error: float
    top5_error: float
    num_examples: int
    per_class_accuracy: np.ndarray
    per_class_top5_accuracy: np.ndarray
    per_class_count: np.ndarray
    ten_crop: bool = False
    num_models: int = 1
    # The k behind "top5_error" (see `top5_k`).
    top5_k: int = TOP5

    @property
    def top1_accuracy(self) -> float:
        return 1.0 - self.top1_error

    @property
    def top5_accuracy(self) -> float:
        return 1.0 - self.top5_error

    def summary(self) -> str:
        """One line, e.g. "ten-crop: top-1 error 37.50%, top-5 error 17.00% (50000 images, ...)"."""
        crop = "ten-crop" if self.ten_crop else "center crop"
        models = "1 model" if self.num_models == 1 else f"average of {self.num_models} models"
        return (
            f"{crop}: top-1 error {100 * self.top1_error:.2f}%, top-{self.top5_k} error "
            f"{100 * self.top5_error:.2f}% ({self.num_examples} images, {models})"
        )


def evaluate_predictions(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    ties: str = "pessimistic",
    ten_crop: bool = False,
    num_models: int = 1,
) -> EvalResult:
    """Builds an `EvalResult` from final [N, C] class probabilities and [N] labels."""
    acc = _Accumulator(ties)
    acc.add(probs, labels)
    return acc.result(ten_crop=ten_crop, num_models=num_models)


def evaluate(
    model_or_models: keras.Model | Sequence[keras.Model],
    dataset: Iterable[tuple[Any, Any]],
    *,
    ten_crop: bool,
    from_logits: bool | None = None,
    ties: str = "pessimistic",
    progress: bool = False,
    num_batches: int | None = None,
) -> EvalResult:
    """Evaluates one model, or the average of several, over `dataset`.

    Args:
      model_or_models: a model or a list of models with the same classes; with several, their
        softmax outputs are averaged (Table 2).
      dataset: yields (images, labels): images [B, S, S, 3] (center crop) or [B, 10, S, S, 3]
        (ten-crop), labels [B] integers, as `keras_alexnet.data` eval datasets do.
      ten_crop: whether images carry 10 views each; their softmax outputs are averaged.
      from_logits: whether the models output logits (softmax is then applied). None detects it
        per model: a layer named "predictions" or a softmax last layer means probabilities.
      ties: top-k tie rule, see `topk_correct`.
      progress: show a bar with an ETA on stdout, one step per batch.
      num_batches: the batches the bar expects; default: the dataset's cardinality when
        known (a source's `ceil(info.num_eval / batch_size)` where tf.data cannot tell).
    """
    models = _as_models(model_or_models)
    acc = _Accumulator(ties)
    batches = predict_batches(models, dataset, ten_crop=ten_crop, from_logits=from_logits)
    total = known_batches(dataset) if num_batches is None else num_batches
    for probs, labels in tracked(batches, total, progress):
        acc.add(probs, labels)
    return acc.result(ten_crop=ten_crop, num_models=len(models))


def predict_batches(
    model_or_models: keras.Model | Sequence[keras.Model],
    dataset: Iterable[tuple[Any, Any]],
    *,
    ten_crop: bool,
    from_logits: bool | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ([B, C] probabilities averaged over views and models, [B] labels) per batch.

    The arguments are those of `evaluate`, which consumes this. Each call compiles its own
    step; a caller that predicts again and again (a training loop's validations) keeps a
    `Predictor` instead.
    """
    return Predictor(model_or_models, ten_crop=ten_crop, from_logits=from_logits)(dataset)


class Predictor:
    """`predict_batches` compiled once: call it on dataset after dataset.

    Args: those of `predict_batches` but the dataset.
    """

    def __init__(self, model_or_models: keras.Model | Sequence[keras.Model], *,
                 ten_crop: bool, from_logits: bool | None = None) -> None:
        models = _as_models(model_or_models)
        flags = [outputs_logits(m) if from_logits is None else from_logits for m in models]
        self.ten_crop = ten_crop
        self._step = _predict_step(models, flags, ten_crop)

    def __call__(self, dataset: Iterable[tuple[Any, Any]]
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        want = 5 if self.ten_crop else 4
        for images, labels in dataset:
            images = tf.convert_to_tensor(images, tf.float32)
            if images.shape.rank != want or (self.ten_crop and images.shape[1] != 10):
                raise ValueError(
                    f"ten_crop={self.ten_crop} expects images shaped "
                    f"{'[B, 10, S, S, 3]' if self.ten_crop else '[B, S, S, 3]'}, got "
                    f"{images.shape}; pass ten_crop matching the dataset."
                )
            yield self._step(images).numpy(), _labels_array(labels)


def outputs_logits(model: keras.Model) -> bool:
    """Whether `model` outputs logits rather than probabilities (by its last layer)."""
    names = {layer.name for layer in model.layers}
    if "predictions" in names:  # our models' (and keras.applications') softmax layer
        return False
    activation = getattr(model.layers[-1], "activation", None) if model.layers else None
    return getattr(activation, "__name__", None) != "softmax"


def write_per_class_csv(
    result: EvalResult, class_names: Sequence[str], path: str | os.PathLike
) -> Path:
    """Writes per-class counts and top-1/top-5 accuracy to `path` as CSV, atomically."""
    num_classes = len(result.per_class_count)
    if len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class names for {num_classes} classes; pass one per class."
        )
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class_index", "class_name", "num_examples", "top1_accuracy",
                         f"top{result.top5_k}_accuracy"])
        for c in range(num_classes):
            writer.writerow([c, class_names[c], int(result.per_class_count[c]),
                             _fmt(result.per_class_accuracy[c]),
                             _fmt(result.per_class_top5_accuracy[c])])
    return path


def _as_models(model_or_models: keras.Model | Sequence[keras.Model]) -> list[keras.Model]:
    models = (
        [model_or_models] if isinstance(model_or_models, keras.Model) else list(model_or_models)
    )
    if not models or not all(isinstance(m, keras.Model) for m in models):
        raise ValueError("model_or_models must be a keras.Model or a non-empty list of them.")
    return models


def _predict_step(models: list[keras.Model], logits_flags: list[bool], ten_crop: bool):
    """A compiled function: images -> [B, C] probabilities averaged over views and models."""

    @tf.function(reduce_retracing=True, autograph=False)
    def predict(images: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(images)[0]
        # The 10 views go through the network as one batch of B*10 images.
        flat = images
        if ten_crop:
            flat = tf.reshape(images, tf.concat([[-1], tf.shape(images)[-3:]], 0))
        total = None
        for model, logits in zip(models, logits_flags):
            out = tf.cast(model(flat, training=False), tf.float32)
            probs = tf.nn.softmax(out, axis=-1) if logits else out
            if ten_crop:
                probs = tf.reduce_mean(tf.reshape(probs, [batch, 10, -1]), axis=1)
            total = probs if total is None else total + probs
        return total / len(models)

    return predict


class _Accumulator:
    """Per-example top-1/top-k hits and labels, gathered batch by batch."""

    def __init__(self, ties: str) -> None:
        if ties not in TIE_RULES:
            raise ValueError(f"ties={ties!r} is not a tie rule; use one of {TIE_RULES}.")
        self.ties = ties
        self.num_classes: int | None = None
        self.hits1: list[np.ndarray] = []
        self.hits5: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, probs: np.ndarray, labels: np.ndarray) -> None:
        probs, labels = _check_predictions(probs, labels)
        if self.num_classes is None:
            self.num_classes = probs.shape[1]
        elif probs.shape[1] != self.num_classes:
            raise ValueError(
                f"Batch has {probs.shape[1]} classes, earlier batches {self.num_classes}."
            )
        self.hits1.append(topk_correct(probs, labels, 1, self.ties))
        self.hits5.append(topk_correct(probs, labels, top5_k(self.num_classes), self.ties))
        self.labels.append(labels)

    def result(self, *, ten_crop: bool, num_models: int) -> EvalResult:
        if self.num_classes is None or not sum(len(x) for x in self.labels):
            raise ValueError("No examples to evaluate: the dataset was empty.")
        labels = np.concatenate(self.labels)
        hits1, hits5 = np.concatenate(self.hits1), np.concatenate(self.hits5)
        count = np.bincount(labels, minlength=self.num_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            per1 = np.bincount(labels, hits1, self.num_classes) / count
            per5 = np.bincount(labels, hits5, self.num_classes) / count
        return EvalResult(
            top1_error=1.0 - float(hits1.mean()),
            top5_error=1.0 - float(hits5.mean()),
            num_examples=int(len(labels)),
            per_class_accuracy=per1,
            per_class_top5_accuracy=per5,
            per_class_count=count,
            ten_crop=ten_crop,
            num_models=num_models,
            top5_k=top5_k(self.num_classes),
        )


def _check_predictions(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, num_classes], got shape {probs.shape}.")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must be [N] = [{probs.shape[0]}], got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(
            f"labels must be in [0, {probs.shape[1]}), got values {labels.min()}..{labels.max()}."
        )
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contain NaN or infinity; the model's outputs are not usable.")
    return probs, labels.astype(np.int64)


def _labels_array(labels: Any) -> np.ndarray:
    labels = np.asarray(labels)
    # One-hot labels are accepted too: their argmax is the class.
    return labels.argmax(axis=-1) if labels.ndim == 2 else labels


def _fmt(x: float) -> str:
    return "" if np.isnan(x) else f"{x:.6f}"
