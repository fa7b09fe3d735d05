"""Fashion-MNIST: the IDX reader against the real files, and the source's statistics."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.data import fashion_mnist, open_source
from keras_alexnet.data.fashion_mnist import load_fashion_mnist, read_idx, resized_stats

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not DEBIAN_DIR.is_dir(),
                                reason="apt-get install dataset-fashion-mnist")


def _reference(path: Path) -> np.ndarray:
    """A second IDX parser (struct): header of big-endian int32 dims after the magic."""
    raw = gzip.decompress(path.read_bytes())
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    assert magic >> 8 == 8  # unsigned byte data
    return np.array(list(raw[4 + 4 * ndim:]), dtype=np.uint8).reshape(dims)


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist()


def test_reader_matches_the_real_files(data):
    x, y = data["train"]
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    assert data["eval"][0].shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(y), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(data["eval"][1]), [1000] * 10)
    np.testing.assert_array_equal(y, _reference(DEBIAN_DIR / "train-labels-idx1-ubyte.gz"))
    ref = _reference(DEBIAN_DIR / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(data["eval"][0], ref)


def test_bad_magic_and_missing_files(tmp_path, monkeypatch):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(struct.pack(">IIII", 2049, 1, 28, 28) + bytes(784)))
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        read_idx(bad, 2051)
    # A folder named by the user is searched alone, though the system copy exists.
    with pytest.raises(ValueError, match=f"not found in {tmp_path};"):
        open_source(f"fashion_mnist:{tmp_path}")
    monkeypatch.setattr(fashion_mnist, "SEARCH_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        open_source("fashion_mnist")


def test_closed_form_statistics_equal_direct_resizing(data):
    images = data["train"][0][:300]
    mean, var = resized_stats(images, 40)
    direct = tf.image.resize(images[..., None].astype(np.float32), [40, 40],
                             method="bilinear").numpy()[..., 0].astype(np.float64)
    np.testing.assert_allclose(mean, direct.mean(axis=0), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(var, direct.var(), rtol=1e-5)


def test_source_through_the_pipeline(data):
    src = open_source("fashion_mnist", image_size=32)
    info = src.info
    assert info.num_classes == 10 and info.num_train == 60000 and info.num_eval == 10000
    mean, var = resized_stats(data["train"][0], 32)
    np.testing.assert_allclose(info.mean_image[..., 1], mean, rtol=1e-5)
    np.testing.assert_allclose(info.eigvals, [3 * var, 0, 0], atol=1e-6 * var)
    np.testing.assert_allclose(np.abs(info.eigvecs[:, 0]), np.full(3, 3**-0.5))
    x, y = next(iter(src.eval_dataset(4, 28)))
    resized = tf.image.resize(data["eval"][0][:4, :, :, None].astype(np.float32), [32, 32])
    ref = resized.numpy() - info.mean_image[..., :1]
    np.testing.assert_allclose(x.numpy(), np.repeat(ref[:, 2:30, 2:30], 3, axis=3), atol=1e-3)
    np.testing.assert_array_equal(y.numpy(), data["eval"][1][:4])
    x, y = next(iter(src.train_dataset(16, 28, seed=0)))
    assert x.shape == (16, 28, 28, 3) and y.dtype == tf.int32


def test_holdout_split_is_balanced_disjoint_and_fixed():
    labels = np.repeat(np.arange(4), [5, 6, 7, 8])
    keep, held = fashion_mnist.split_holdout(labels, 6)
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(labels)))
    np.testing.assert_array_equal(np.bincount(labels[held]), [2, 2, 1, 1])
    again, held_again = fashion_mnist.split_holdout(labels, 6)
    np.testing.assert_array_equal(held, held_again)
    for bad in (0, 23, -1):
        with pytest.raises(ValueError, match=f"holdout={bad}"):
            fashion_mnist.split_holdout(labels, bad)
    with pytest.raises(ValueError, match="all 5 images of class 0"):
        fashion_mnist.split_holdout(labels, 20)


@pytest.mark.slow
def test_holdout_source_validates_on_training_images(data):
    plain = open_source("fashion_mnist", image_size=32)
    src = open_source("fashion_mnist", image_size=32, holdout=1000)
    assert (src.info.num_train, src.info.num_eval) == (59000, 1000)
    x_train, y_train = data["train"]
    keep, held = fashion_mnist.split_holdout(y_train, 1000)
    np.testing.assert_array_equal(src.data["eval"][1], y_train[held])
    np.testing.assert_array_equal(np.bincount(src.data["eval"][1]), [100] * 10)
    # Held-out images are training images, not test images, and are trained on no more.
    np.testing.assert_array_equal(src.data["eval"][0], x_train[held])
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) == 59000
    np.testing.assert_array_equal(src.data["train"][0], x_train[keep])
    np.testing.assert_array_equal(src.data["train"][1], y_train[keep])
    # Same statistics as the plain source, so the test set is scored on the same inputs.
    np.testing.assert_array_equal(src.info.mean_image, plain.info.mean_image)
    x, y = next(iter(src.eval_dataset(4, 28)))
    resized = tf.image.resize(x_train[held[:4], :, :, None].astype(np.float32), [32, 32])
    ref = resized.numpy() - src.info.mean_image[..., :1]
    np.testing.assert_allclose(x.numpy(), np.repeat(ref[:, 2:30, 2:30], 3, axis=3), atol=1e-3)
    np.testing.assert_array_equal(y.numpy(), y_train[held[:4]])


def test_trainer_opens_the_holdout_only_for_fashion_mnist():
    from keras_alexnet.presets import preset

    config = preset("tiny").replace(data="fashion_mnist", validation_holdout=500)
    assert config.open_source().info.num_eval == 500
    with pytest.raises(ValueError, match="fashion_mnist only"):
        config.replace(data="folder:/imagenet").open_source()
    with pytest.raises(ValueError, match="No training data"):
        config.replace(data=None).open_source()
    with pytest.raises(ValueError, match="validation_holdout=-1"):
        config.replace(validation_holdout=-1)


@pytest.mark.parametrize("num_shards", [2, 4])
def test_workers_batch_k_together_is_one_process_batch_k(num_shards):
    """Shuffled with the shared seed, then sharded; augmentation keyed on global positions."""
    src = open_source("fashion_mnist", image_size=32)
    batch, k = 16, 3  # a later batch: positions beyond the first batch's must line up too

    def batch_k(n, i):
        ds = src.train_dataset(batch // n, 28, seed=5, epoch=2, num_shards=n, shard_index=i)
        return next(iter(ds.skip(k)))

    images, labels = (x.numpy() for x in batch_k(1, 0))
    shards = [batch_k(num_shards, i) for i in range(num_shards)]
    union = np.concatenate([s[0].numpy() for s in shards])
    union_labels = np.concatenate([s[1].numpy() for s in shards])
    # Worker i's j-th example is the one process's example j * n + i of the batch.
    order = np.argsort([j * num_shards + i for i in range(num_shards)
                        for j in range(batch // num_shards)])
    np.testing.assert_array_equal(union_labels[order], labels)
    np.testing.assert_allclose(union[order], images, atol=1e-4)  # same crops, flips, lighting
    # The augmentation is random: the same images differ between epochs.
    other = next(iter(src.train_dataset(batch, 28, seed=5, epoch=3).skip(k)))[0].numpy()
    assert not np.allclose(other, images)


def test_reopening_reuses_the_files_until_they_change(tmp_path):
    # A copy of the real files: reopened, the source shares the cached read-only arrays;
    # after a file is rewritten (new contents, mtime, size) it reads the files again.
    for pair in fashion_mnist.FILES.values():
        for name in pair:
            (tmp_path / name).write_bytes((DEBIAN_DIR / name).read_bytes())
    first = open_source(f"fashion_mnist:{tmp_path}", image_size=32)
    again = open_source(f"fashion_mnist:{tmp_path}", image_size=32)
    assert again.data["train"][0] is first.data["train"][0]
    assert not first.data["train"][0].flags.writeable
    labels = tmp_path / fashion_mnist.FILES["eval"][1]
    y = read_idx(labels, 2049).copy()
    y[:5] = 9  # the first five test labels become "Ankle boot"
    labels.write_bytes(gzip.compress(struct.pack(">II", 2049, len(y)) + y.tobytes()))
    changed = open_source(f"fashion_mnist:{tmp_path}", image_size=32)
    np.testing.assert_array_equal(changed.data["eval"][1], y)
    assert changed.data["train"][0] is not first.data["train"][0]
