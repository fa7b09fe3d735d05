"""Class subsets of in-memory data: some classes only, and a few labelled images per class.

Transfer experiments pre-train on some classes and fine-tune on others with a small labelled
set. The subset is a choice of images and a relabelling, made here once, on the arrays of an
in-memory source (Fashion-MNIST); streamed sources (ImageNet shards, folders) are refused.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_alexnet.data.fashion_mnist import FashionMnistSource, split_holdout
from keras_alexnet.data.pipeline import Source

# The per-class choice is fixed, so every run and seed of an experiment sees the same images.
SUBSET_SEED = 0


def select_classes(labels: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images of `classes` (in data order) and their labels 0..k-1.

    Class `classes[i]` becomes label i.

    Raises:
      ValueError: a class has no images.
    """
    present = set(np.unique(labels).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(f"data_classes={tuple(classes)}: no images of class(es) {missing}; "
                         f"the data has classes {sorted(present)}.")
    lookup = np.full(max(max(classes), int(labels.max())) + 1, -1, np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    new = lookup[labels]
    keep = np.flatnonzero(new >= 0)
    return keep, new[keep].astype(labels.dtype)


def per_class_sample(labels: np.ndarray, per_class: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of `per_class` images of each class, drawn without replacement.

    Raises:
      ValueError: a class has fewer images than `per_class`.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if per_class > len(members):
            raise ValueError(f"train_per_class={per_class} exceeds the {len(members)} training "
                             f"images of class {c}; ask for fewer.")
        picked.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picked))


def subset_source(source: Source, classes: Sequence[int] | None = None,
                  train_per_class: int | None = None, holdout: int = 0) -> FashionMnistSource:
    """`source` restricted to `classes` (relabelled 0..k-1) and `train_per_class` images each.

    Order: the classes are chosen in both splits; then `holdout` > 0 moves that many of their
    training images (class-balanced, as FashionMnistSource does) into "eval"; then
    `train_per_class` are kept of the rest. The mean image and lighting statistics stay the
    source's, so the inputs equal those of the full data set.

    Args:
      source: an in-memory source (FashionMnistSource), normally opened without a holdout.
      classes: original class indices; None keeps every class.
      train_per_class: training images per class; None keeps them all.
      holdout: held-out training images for validation (0: "eval" is the test split).

    Returns:
      A new source; `source` is unchanged.

    Raises:
      ValueError: an unsupported source, unknown classes, or too few images.
    """
    if not isinstance(source, FashionMnistSource):
        raise ValueError(f"data_classes/train_per_class need in-memory data ('fashion_mnist'), "
                         f"not a {type(source).__name__}.")
    info = source.info
    classes = tuple(range(info.num_classes)) if classes is None else tuple(classes)
    if max(classes) >= info.num_classes or min(classes) < 0:
        raise ValueError(f"data_classes={classes}: the data has classes 0..{info.num_classes - 1}.")
    data = {}
    for split, (x, y) in source.data.items():
        keep, labels = select_classes(y, classes)
        data[split] = (x[keep], labels)
    if holdout:
        x, y = data["train"]
        keep, held = split_holdout(y, holdout)
        data = {"train": (x[keep], y[keep]), "eval": (x[held], y[held])}
    if train_per_class is not None:
        x, y = data["train"]
        keep = per_class_sample(y, train_per_class)
        data["train"] = (x[keep], y[keep])
    new = copy.copy(source)
    new.data = data
    names = tuple(info.class_names[c] for c in classes)
    new.info = dataclasses.replace(
        info, num_classes=len(classes), class_names=names,
        wnids=tuple(info.wnids[c] for c in classes),
        num_train=len(data["train"][1]), num_eval=len(data["eval"][1]))
    return new


def open_subset(spec: str, *, classes: Sequence[int] | None, train_per_class: int | None,
                image_size: int | None = None, holdout: int = 0) -> FashionMnistSource:
    """`open_source(spec)` restricted as `subset_source` says (TrainConfig.open_source's way).

    Raises:
      ValueError: a spec other than Fashion-MNIST's, or as `subset_source`.
    """
    from keras_alexnet.data import open_source

    if spec.partition(":")[0] != "fashion_mnist":
        raise ValueError(f"data_classes/train_per_class work with 'fashion_mnist' (in-memory) "
                         f"data only, not {spec!r}.")
    source = open_source(spec, **({} if image_size is None else {"image_size": image_size}))
    return subset_source(source, classes, train_per_class, holdout)
