"""The tf.data input pipeline shared by every source (Sections 2 and 4.1).

A source supplies a stream of raw elements and a `_decode` turning one into a stored-size image
(image_size x image_size x 3, 0..255) and a label. Training then subtracts the mean image, takes
a random crop at the model's input size, flips and applies PCA lighting; evaluation takes the
center crop or the ten crops.

Determinism: with a seed, the element order is a function of (seed, epoch) and every random
draw uses stateless ops keyed on (seed, epoch, position in the epoch's stream), so the stream
does not depend on parallelism and `.skip(k)` resumes exactly.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from keras_alexnet.data import augment as aug

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetInfo:
    """What the model and trainer need to know about a dataset.

    mean_image is float32 (image_size, image_size, 3); eigvals (3,) descending and eigvecs (3, 3)
    (columns) are the RGB covariance's eigen-system. All on the 0..255 pixel scale.
    """

    num_classes: int
    class_names: tuple[str, ...]
    wnids: tuple[str, ...]
    num_train: int
    num_eval: int
    image_size: int
    mean_image: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray


def _check_sharding(num_shards: int, shard_index: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index={shard_index} must be in [0, num_shards={num_shards}).")


def epoch_rng(seed: int | None, epoch: int) -> np.random.Generator:
    """The generator that orders one epoch: a function of (seed, epoch), or fresh entropy."""
    return np.random.default_rng(None if seed is None else [seed, epoch])


class Source:
    """Base class: subclasses set `info` and implement `_elements` and `_decode`."""

    info: DatasetInfo
    # True where undecodable files can still be in the stream (they are then skipped).
    skip_decode_errors = False
    # True where shard i of n is every n-th element, from i, of the one-process stream of
    # the same (seed, epoch). Augmentation is then keyed on that global position, so the
    # workers' batches k together are exactly one process's batch k (same images, same
    # crops, flips and lighting): a multi-worker run trains on the data of a single one.
    strided_shards = False

    def _elements(self, split: str, rng: np.random.Generator | None, num_shards: int,
                  shard_index: int) -> tf.data.Dataset:
        """Raw elements of `split` ("train"/"eval"); shuffled with `rng` when it is given."""
        raise NotImplementedError

    def _decode(self, *raw) -> tuple[tf.Tensor, tf.Tensor]:
        """One raw element's components -> (image [size, size, 3] on 0..255, int32 label)."""
        raise NotImplementedError

    def _check_size(self, input_size: int) -> None:
        if not 1 <= input_size <= self.info.image_size:
            raise ValueError(f"input_size={input_size} must be in 1..{self.info.image_size} "
                             "(the stored image size); crops are taken from stored images.")

    def train_dataset(self, batch_size: int, input_size: int, *, seed: int | None = None,
                      epoch: int = 0, augment: bool = True, crops_and_flips: bool = True,
                      pca_lighting: bool = True, num_shards: int = 1,
                      shard_index: int = 0, drop_remainder: bool = True,
                      skip_batches: int = 0) -> tf.data.Dataset:
        """One shuffled epoch of (images [B,S,S,3] float32 mean-subtracted, labels int32 [B]).

        augment=False takes the center crop with no flip or lighting (plain images). Section
        4.1's two forms of augmentation, each switched off alone for its ablation:
        crops_and_flips=False takes the center crop, unflipped, and keeps the lighting;
        pca_lighting=False keeps the random crops and flips. skip_batches=k gives the
        same batches as `.skip(k)`, for mid-epoch resume. It skips without decoding the skipped
        images, except where undecodable files are dropped (the folder source): there only the
        decoded stream tells where batch k starts.
        """
        self._check_size(input_size)
        _check_sharding(num_shards, shard_index)
        if skip_batches < 0:
            raise ValueError(f"skip_batches={skip_batches} must be >= 0.")
        deterministic = seed is not None
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        # augment=False is both forms off: one plain path for it and for the two switches.
        transform = self._train_transform(seed, epoch, input_size, crops_and_flips and augment,
                                          pca_lighting and augment, num_shards, shard_index)
        ds = self._elements("train", epoch_rng(seed, epoch), num_shards, shard_index)
        ds = ds.enumerate()
        if not self.skip_decode_errors:
            ds = ds.skip(skip_batches * batch_size)
        ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        if self.skip_decode_errors:
            ds = ds.ignore_errors()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if self.skip_decode_errors:
            ds = ds.skip(skip_batches)
        ds = ds.prefetch(AUTOTUNE)
        return ds.with_options(_options(deterministic))

    def _train_transform(self, seed: int, epoch: int, size: int, crops_and_flips: bool,
                         pca_lighting: bool, num_shards: int, shard_index: int):
        """The map from (index in this shard's epoch, raw element) to an augmented training
        (image, label): Section 4.1's crops, flips and PCA lighting, or the center crop."""
        key = tf.constant([seed, epoch], tf.int64)
        info = self.info
        mean = tf.constant(info.mean_image, tf.float32)
        eigvals = tf.constant(info.eigvals, tf.float32)
        eigvecs = tf.constant(info.eigvecs, tf.float32)

        @tf.autograph.experimental.do_not_convert
        def transform(index, raw):
            if self.strided_shards:
                index = index * num_shards + shard_index  # the global position
            image, label = self._decode(*(raw if isinstance(raw, tuple) else (raw,)))
            image = tf.cast(image, tf.float32)
            if not (crops_and_flips or pca_lighting):
                return augment_center(image, mean, size), label
            # Every draw is keyed on (seed, epoch, position in this epoch's stream).
            s = tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(key, index), 3)
            if crops_and_flips:
                oy, ox = aug.random_crop_offsets(s[0], info.image_size, size)
                # Equal to subtracting the whole mean image, then cropping: the crop takes the
                # matching region of the mean, at S^2 instead of image_size^2 subtractions.
                image = aug.crop(image, oy, ox, size) - aug.crop(mean, oy, ox, size)
                image = aug.random_flip(image, s[1])
            else:
                image = augment_center(image, mean, size)
            if pca_lighting:
                image = aug.pca_lighting(image, aug.pca_lighting_alpha(s[2]), eigvals, eigvecs)
            return image, label

        return transform

    def eval_dataset(self, batch_size: int, input_size: int, *, ten_crop: bool = False,
                     num_shards: int = 1, shard_index: int = 0) -> tf.data.Dataset:
        """(images, labels int32 [B]) in a fixed order; images are mean-subtracted center crops
        [B,S,S,3], or with ten_crop [B,10,S,S,3] in aug.TEN_CROP_ORDER."""
        self._check_size(input_size)
        _check_sharding(num_shards, shard_index)
        mean = tf.constant(self.info.mean_image, tf.float32)

        @tf.autograph.experimental.do_not_convert
        def transform(*raw):
            image, label = self._decode(*raw)
            image = tf.cast(image, tf.float32)
            if ten_crop:
                return aug.ten_crop(image - mean, input_size), label
            return augment_center(image, mean, input_size), label

        ds = self._elements("eval", None, num_shards, shard_index)
        ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=True)
        if self.skip_decode_errors:
            ds = ds.ignore_errors()
        return ds.batch(batch_size).prefetch(AUTOTUNE).with_options(_options(True))


def augment_center(image: tf.Tensor, mean: tf.Tensor, size: int) -> tf.Tensor:
    """Mean-subtracted center crop of a stored-size image."""
    return aug.center_crop(image, size) - aug.center_crop(mean, size)


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def benchmark_pipeline(source: Source, batch_size: int, input_size: int,
                       num_batches: int, *, warmup_batches: int = 5) -> float:
    """Training-pipeline throughput in images/s with full augmentation (seed=None, fastest).

    The epoch repeats if it is shorter than warmup_batches + num_batches.
    """
    ds = source.train_dataset(batch_size, input_size).repeat()
    it = iter(ds)
    for _ in range(warmup_batches):
        next(it)
    start = time.perf_counter()
    for _ in range(num_batches):
        next(it)
    return num_batches * batch_size / (time.perf_counter() - start)
