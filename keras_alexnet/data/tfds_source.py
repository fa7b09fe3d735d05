"""Optional: a TensorFlow Datasets build (e.g. imagenet2012) through the same pipeline.

Needs `pip install tensorflow-datasets` and the dataset already built in its data_dir (TFDS
cannot download ImageNet). Images are decoded and down-sampled on the fly like the folder
source; the statistics are estimated from `stats_sample` training images.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_alexnet.data.augment import PAPER
from keras_alexnet.data.pipeline import AUTOTUNE, DatasetInfo, Source
from keras_alexnet.data.sources import SHUFFLE_BUFFER, decode_any
from keras_alexnet.data.stats import stats_of_images

_EVAL_SPLITS = ("validation", "test")


class TfdsSource(Source):
    def __init__(self, name: str, *, image_size: int = PAPER.image_size,
                 data_dir: str | None = None, stats_sample: int = 256,
                 shuffle_buffer: int = SHUFFLE_BUFFER) -> None:
        try:
            import tensorflow_datasets as tfds
        except ImportError as e:
            raise ValueError(f"tfds:{name} needs tensorflow_datasets "
                             "(pip install tensorflow-datasets).") from e
        self._tfds = tfds
        self.builder = tfds.builder(name, data_dir=data_dir)
        splits = self.builder.info.splits
        # An ungenerated build (or tfds.testing.mock_data) lists no splits: assume the usual.
        self.eval_split = next((s for s in _EVAL_SPLITS if s in splits),
                               None if splits else _EVAL_SPLITS[0])
        label = self.builder.info.features["label"]
        self.size, self.shuffle_buffer = image_size, shuffle_buffer
        sample = self._read("train").take(stats_sample).map(
            tf.autograph.experimental.do_not_convert(lambda e: decode_any(e["image"], image_size)),
            num_parallel_calls=AUTOTUNE)
        stats = stats_of_images(np.stack(list(sample.as_numpy_iterator())))
        self.info = DatasetInfo(
            num_classes=label.num_classes, class_names=tuple(label.names),
            wnids=tuple(label.names), num_train=_count(splits, "train"),
            num_eval=_count(splits, self.eval_split),
            image_size=image_size, mean_image=stats.mean_image, eigvals=stats.eigvals,
            eigvecs=stats.eigvecs)

    def _read(self, split: str) -> tf.data.Dataset:
        return self.builder.as_dataset(
            split=split, shuffle_files=False,
            decoders={"image": self._tfds.decode.SkipDecoding()})

    def _elements(self, split, rng, num_shards, shard_index):
        name = "train" if split == "train" else self.eval_split
        if name is None:
            raise ValueError(f"{self.builder.name} has no validation or test split.")
        ds = self._read(name).shard(num_shards, shard_index)
        ds = ds.map(tf.autograph.experimental.do_not_convert(
            lambda e: (e["image"], tf.cast(e["label"], tf.int32))))
        if rng is not None:
            ds = ds.shuffle(self.shuffle_buffer, seed=int(rng.integers(2**31)),
                            reshuffle_each_iteration=False)
        return ds

    def _decode(self, data, label):
        return decode_any(data, self.size), label


def _count(splits, name: str | None) -> int:
    """Examples in a split; 0 where TFDS does not know it."""
    return splits[name].num_examples if name in splits else 0
