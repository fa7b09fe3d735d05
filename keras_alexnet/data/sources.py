"""ImageNet sources: prepared TFRecords (fast) and an ImageNet folder tree read directly (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from keras_alexnet.data.augment import PAPER
from keras_alexnet.data.imagenet import keep_images, scan_imagenet
from keras_alexnet.data.pipeline import AUTOTUNE, DatasetInfo, Source
from keras_alexnet.data.prepare import read_classes, read_manifest
from keras_alexnet.data.stats import PixelStats, stats_of_images

_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}
# Bytes of encoded JPEGs held for shuffling: 16384 images of ~25 KB is ~400 MB.
SHUFFLE_BUFFER = 16384


def _shard_list(items: list, num_shards: int, shard_index: int) -> list:
    return items[shard_index::num_shards]


class TFRecordSource(Source):
    """A folder written by prepare_imagenet (scripts/prepare_imagenet.py)."""

    def __init__(self, directory: str | Path, shuffle_buffer: int = SHUFFLE_BUFFER) -> None:
        self.directory = Path(directory)
        manifest = read_manifest(self.directory)
        wnids, names = read_classes(self.directory)
        stats = PixelStats.load(self.directory)
        self.files = {s: [str(self.directory / f) for f in manifest["splits"][s]["files"]]
                      for s in ("train", "val")}
        self.shuffle_buffer = shuffle_buffer
        self.info = DatasetInfo(
            num_classes=len(wnids), class_names=names, wnids=wnids,
            num_train=manifest["splits"]["train"]["num_examples"],
            num_eval=manifest["splits"]["val"]["num_examples"],
            image_size=manifest["image_size"], mean_image=stats.mean_image,
            eigvals=stats.eigvals, eigvecs=stats.eigvecs)

    def _elements(self, split, rng, num_shards, shard_index):
        files = list(self.files["train" if split == "train" else "val"])
        if not files:
            raise ValueError(f"{self.directory} holds no {split} shards.")
        # Shard by file when every worker gets at least one, else by record. Sharding comes
        # before any shuffling so workers with different seeds still partition the data.
        by_file = len(files) >= num_shards
        if by_file:
            files = _shard_list(files, num_shards, shard_index)
            if rng is not None:
                files = [files[i] for i in rng.permutation(len(files))]
        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.autograph.experimental.do_not_convert(
                lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 22)),
            cycle_length=min(len(files), 16), block_length=1, num_parallel_calls=AUTOTUNE,
            deterministic=True)
        if not by_file:
            ds = ds.shard(num_shards, shard_index)
        if rng is not None:
            ds = ds.shuffle(self.shuffle_buffer, seed=int(rng.integers(2**31)),
                            reshuffle_each_iteration=False)
        return ds

    def _decode(self, record):
        ex = tf.io.parse_single_example(record, _FEATURES)
        # INTEGER_ACCURATE decodes to exactly the pixels the statistics were computed from.
        image = tf.io.decode_jpeg(ex["image/encoded"], channels=3, dct_method="INTEGER_ACCURATE")
        size = self.info.image_size
        return tf.ensure_shape(image, [size, size, 3]), tf.cast(ex["image/class/label"], tf.int32)


def resize_and_center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Section 2 in TF: shorter side to `size` (bicubic, antialiased), central square; uint8."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    image = tf.image.resize(image, new, method="bicubic", antialias=True)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    image = tf.slice(image, tf.stack([top, left, 0]), [size, size, 3])
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def decode_any(data: tf.Tensor, size: int) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes (CMYK and grayscale included) to a uint8 [size, size, 3] image."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(resize_and_center_crop(image, size), [size, size, 3])


def _decodes(path: str, size: int) -> bool:
    """Whether the pipeline's decoder (`decode_any`) reads the file at `path`."""
    try:
        decode_any(tf.io.read_file(path), size)
    except tf.errors.OpError:
        return False
    return True


class FolderSource(Source):
    """train/<wnid>/ and val/ of an ImageNet root, decoded and down-sampled on the fly.

    Slower than prepared shards (full-size JPEG decoding every epoch). Files that are not
    images TF decodes are left out when the source opens (`keep_images`: their first and last
    bytes, a decode where those cannot tell), so `info.num_train` counts what an epoch yields;
    a file that still fails to decode is skipped. The mean image and RGB eigen-system are
    estimated from `stats_sample` training images chosen with a fixed seed.
    """

    skip_decode_errors = True
    # Exact while no file is undecodable: a dropped file shifts the batches after it.
    strided_shards = True

    def __init__(self, root: str | Path, *, image_size: int = PAPER.image_size,
                 stats_sample: int = 256, val_labels: str | None = None,
                 val_synsets: str | None = None, synset_words: str | None = None,
                 allow_empty_classes: bool = False) -> None:
        layout = scan_imagenet(root, val_labels=val_labels, val_synsets=val_synsets,
                               synset_words=synset_words, allow_empty_classes=allow_empty_classes)
        layout, dropped = keep_images(layout, lambda path: _decodes(path, image_size),
                                      allow_empty_classes=allow_empty_classes)
        if dropped:
            logging.warning("Skipping %d of %d files under %s that are not images TensorFlow "
                            "decodes, e.g. %s.", len(dropped),
                            len(dropped) + len(layout.train) + len(layout.val), root, dropped[0])
        self.layout = layout
        self.size = image_size
        pick = np.random.default_rng(0).permutation(len(layout.train))[:stats_sample]
        sample = [self.layout.train[i].path for i in sorted(pick)]
        read = tf.autograph.experimental.do_not_convert(
            lambda p: decode_any(tf.io.read_file(p), image_size))
        images = (tf.data.Dataset.from_tensor_slices(sample)
                  .map(read, num_parallel_calls=AUTOTUNE)
                  .ignore_errors())
        stats = stats_of_images(np.stack(list(images.as_numpy_iterator())))
        self.info = DatasetInfo(
            num_classes=len(layout.wnids), class_names=layout.names, wnids=layout.wnids,
            num_train=len(layout.train), num_eval=len(layout.val), image_size=image_size,
            mean_image=stats.mean_image, eigvals=stats.eigvals, eigvecs=stats.eigvecs)

    def _elements(self, split, rng, num_shards, shard_index):
        examples = list(self.layout.train if split == "train" else self.layout.val)
        if rng is not None:
            examples = [examples[i] for i in rng.permutation(len(examples))]
        # After shuffling: see Source.strided_shards.
        examples = _shard_list(examples, num_shards, shard_index)
        if not examples:
            raise ValueError(f"{self.layout.root} has no {split} images for shard {shard_index}.")
        return tf.data.Dataset.from_tensor_slices(
            ([e.path for e in examples], np.array([e.label for e in examples], np.int32)))

    def _decode(self, path, label):
        return decode_any(tf.io.read_file(path), self.size), label
