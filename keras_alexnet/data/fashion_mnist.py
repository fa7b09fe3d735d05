"""Fashion-MNIST through the same pipeline: 28x28 gray, resized (bilinear) and repeated to RGB.

The images stay 28x28 in memory and are resized per element, so any stored size costs no
memory. Statistics are those of the resized training images, computed in closed form.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_alexnet.data.augment import PAPER
from keras_alexnet.data.pipeline import DatasetInfo, Source
from keras_alexnet.data.stats import eigen

SEARCH_DIRS = ("/usr/share/datasets/fashion-mnist", "~/.keras/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "eval": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
_MAGIC_IMAGES, _MAGIC_LABELS = 2051, 2049


def find_fashion_mnist(directory: str | None = None) -> Path:
    """`directory` if given, else the first of SEARCH_DIRS, holding the four IDX .gz files.

    A given folder without the files is an error, never a silent fall-back to another copy.
    """
    candidates = [directory] if directory else list(SEARCH_DIRS)
    for c in candidates:
        d = Path(os.path.expanduser(c))
        if all((d / f).is_file() for pair in FILES.values() for f in pair):
            return d
    raise ValueError(f"Fashion-MNIST .gz files not found in {', '.join(candidates)}; install "
                     "them with `apt-get install dataset-fashion-mnist` or download them from "
                     "https://github.com/zalandoresearch/fashion-mnist into one of these folders.")


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """An IDX (.gz) file of unsigned bytes; checks the magic number and size."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data, ">i4", count=1)[0]
    if header != magic:
        raise ValueError(f"{path} is not a Fashion-MNIST IDX file: magic number {header}, "
                         f"expected {magic}.")
    ndim = magic & 0xFF
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated or corrupt: {body.size} bytes of data for "
                         f"shape {dims}.")
    return body.reshape(dims)


def load_fashion_mnist(directory: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images uint8 (60000,28,28), labels uint8), "eval": (10000 ...)}."""
    d = find_fashion_mnist(directory)
    out = {}
    for split, (images, labels) in FILES.items():
        x, y = read_idx(d / images, _MAGIC_IMAGES), read_idx(d / labels, _MAGIC_LABELS)
        if len(x) != len(y):
            raise ValueError(f"{d} has {len(x)} {split} images but {len(y)} labels.")
        out[split] = (x, y)
    return out


def resize_matrix(n: int, size: int) -> np.ndarray:
    """(size, n) matrix R with tf.image.resize(bilinear) of an n x n image X equal to R X R^T."""
    basis = tf.reshape(tf.eye(n), [n, n, 1, 1])  # image k is the unit column e_k
    return tf.image.resize(basis, [size, 1], method="bilinear").numpy()[:, :, 0, 0].T


def resized_stats(images: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean image (size, size) and pixel variance of the bilinear-resized gray images.

    Resizing is linear (X -> R X R^T), so the mean resizes exactly and the sum of squares is
    sum_i ||R X_i R^T||^2 = sum_i <X_i M, M X_i> with M = R^T R, without resizing anything.
    """
    r = resize_matrix(images.shape[1], size).astype(np.float64)
    m = r.T @ r
    mean = r @ images.mean(axis=0, dtype=np.float64) @ r.T
    sq = 0.0
    for chunk in np.array_split(images, max(1, len(images) // 5000)):
        x = chunk.astype(np.float64)
        sq += float(np.sum((x @ m) * (m @ x)))
    var = sq / (len(images) * size * size) - mean.mean() ** 2
    return mean, var


# A run opens the source several times (training, holdout, test), and a claims process for
# every run of every variant; each opening would otherwise pay ~1.5 s of reading and
# statistics. `stamp` (each file's mtime and size) makes a rewritten file a new entry.
@functools.lru_cache(maxsize=2)
def _cached_files(directory: str, stamp: tuple) -> dict:
    """load_fashion_mnist, once per process for the same files (read-only arrays, shared)."""
    return load_fashion_mnist(directory)


@functools.lru_cache(maxsize=4)
def _cached_stats(directory: str, stamp: tuple, image_size: int) -> tuple[np.ndarray, float]:
    """resized_stats of the training images, once per process for the same files and size."""
    mean, var = resized_stats(_cached_files(directory, stamp)["train"][0], image_size)
    mean.setflags(write=False)
    return mean, var


def split_holdout(labels: np.ndarray, holdout: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out) of a seeded, class-balanced holdout of `holdout` images.

    Class c gives floor(holdout / C) images, plus one for the first holdout % C classes; the
    seed is fixed so every run and resume holds out the same images.
    """
    classes = np.unique(labels)
    if not 0 < holdout <= len(labels) - len(classes):
        raise ValueError(f"holdout={holdout}: hold out between 1 and "
                         f"{len(labels) - len(classes)} of the {len(labels)} training images.")
    rng = np.random.default_rng(0)
    held = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        n = holdout // len(classes) + (i < holdout % len(classes))
        if n >= len(members):
            raise ValueError(f"holdout={holdout} takes all {len(members)} images of class {c}; "
                             "hold out fewer.")
        held.append(rng.choice(members, n, replace=False))
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


class FashionMnistSource(Source):
    """Fashion-MNIST; `image_size` is the stored size crops are taken from (paper: 256).

    The data set has no validation split: "eval" is the 10k test set unless `holdout` > 0,
    which moves that many training images (class-balanced, fixed seed) into "eval", so a
    schedule watching validation error never sees the test set. Statistics are always those
    of all 60k training images, so a model trained with a holdout is tested on exactly the
    inputs of a plain source (which is what evaluate.py opens).
    """

    strided_shards = True

    def __init__(self, directory: str | None = None, *, image_size: int = PAPER.image_size,
                 holdout: int = 0):
        if image_size < 1:
            raise ValueError(f"image_size={image_size} must be >= 1.")
        d = find_fashion_mnist(directory)
        stats = [(d / f).stat() for pair in FILES.values() for f in pair]
        key = (str(d.resolve()), tuple((st.st_mtime_ns, st.st_size) for st in stats))
        self.data = _cached_files(*key)
        mean, var = _cached_stats(*key, image_size)
        self.size = image_size
        if holdout:
            x, y = self.data["train"]
            keep, held = split_holdout(y, holdout)
            self.data = {"train": (x[keep], y[keep]), "eval": (x[held], y[held])}
        # Gray images: R = G = B, so the RGB covariance is var * ones(3, 3) (rank one).
        eigvals, eigvecs = eigen(np.full((3, 3), var))
        self.info = DatasetInfo(
            num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES, wnids=CLASS_NAMES,
            num_train=len(self.data["train"][1]), num_eval=len(self.data["eval"][1]),
            image_size=image_size,
            mean_image=np.repeat(mean[:, :, None], 3, axis=2).astype(np.float32),
            eigvals=eigvals, eigvecs=eigvecs)

    def _elements(self, split, rng, num_shards, shard_index):
        images, labels = self.data[split]
        order = np.arange(len(labels)) if rng is None else rng.permutation(len(labels))
        order = order[shard_index::num_shards]  # after shuffling: see Source.strided_shards
        return tf.data.Dataset.from_tensor_slices((images[order], labels[order].astype(np.int32)))

    def _decode(self, image, label):
        # Kept in float: no rounding, so the mean image above is exactly the resized mean.
        image = tf.image.resize(tf.cast(image[:, :, None], tf.float32), [self.size, self.size],
                                method="bilinear")
        return tf.repeat(image, 3, axis=2), label
