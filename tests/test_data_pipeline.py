"""The tf.data pipeline: Section 4.1 augmentation, ten-crop, determinism, sharding, sources."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from data_fixtures import make_imagenet, make_synthetic_prepared_input

from keras_alexnet.data import (
    PAPER,
    TEN_CROP_ORDER,
    DatasetInfo,
    Source,
    benchmark_pipeline,
    open_source,
    prepare_imagenet,
)
from keras_alexnet.data import augment as aug

N, S = 12, 8  # stored and input size of the position-coded source


class ArraySource(Source):
    """A real Source over in-memory stored-size images (positions encoded in the pixels)."""

    def __init__(self, images, mean, eigvals=(0.0, 0.0, 0.0), eigvecs=None):
        eigvecs = np.eye(3) if eigvecs is None else eigvecs
        self.images = images.astype(np.uint8)
        self.info = DatasetInfo(10, tuple("abcdefghij"), tuple("abcdefghij"), len(images),
                                len(images), images.shape[1], mean.astype(np.float32),
                                np.asarray(eigvals, float), np.asarray(eigvecs, float))

    def _elements(self, split, rng, num_shards, shard_index):
        order = np.arange(len(self.images))[shard_index::num_shards]
        if rng is not None:
            order = rng.permutation(order)
        labels = (order % 10).astype(np.int32)
        return tf.data.Dataset.from_tensor_slices((self.images[order], labels))

    def _decode(self, image, label):
        return image, label


def _coded(n_images: int) -> np.ndarray:
    """Channel 0 is 10*row, channel 1 is 10*column, channel 2 is zero."""
    yy, xx = np.mgrid[0:N, 0:N]
    one = np.stack([10 * yy, 10 * xx, np.zeros_like(yy)], axis=-1)
    return np.repeat(one[None], n_images, axis=0)


def _all(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_crops_flips_and_mean_region():
    mean = np.zeros((N, N, 3))
    mean[..., 2] = np.random.default_rng(0).uniform(0, 50, (N, N))
    src = ArraySource(_coded(600), mean)
    x, _ = _all(src.train_dataset(50, S, seed=3))
    offsets, flips = Counter(), 0
    for out in x:
        flipped = out[0, 0, 1] > out[0, -1, 1]
        view = out[:, ::-1] if flipped else out
        oy, ox = int(view[0, 0, 0]) // 10, int(view[0, 0, 1]) // 10
        offsets[(oy, ox)] += 1
        flips += flipped
        # The crop is the in-bounds window at (oy, ox) of the mean-subtracted image.
        ref = (_coded(1)[0] - mean)[oy:oy + S, ox:ox + S]
        np.testing.assert_allclose(view, ref, atol=1e-4)
    assert set(offsets) == {(i, j) for i in range(N - S + 1) for j in range(N - S + 1)}
    assert 0.43 < flips / len(x) < 0.57


def test_pca_lighting_with_fixed_alpha_matches_numpy():
    rng = np.random.default_rng(1)
    image = rng.uniform(-128, 128, (5, 7, 3))
    eigvecs, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    eigvals = np.array([18000.0, 1200.0, 300.0])
    alpha = np.array([0.05, -0.12, 0.2])
    out = aug.pca_lighting(tf.constant(image, tf.float32), tf.constant(alpha, tf.float32),
                           eigvals, eigvecs).numpy()
    # Section 4.1 on the 0..1 scale, converted back to 0..255 units.
    delta = 255 * (eigvecs @ (alpha * eigvals / 255**2))
    np.testing.assert_allclose(out, image + delta, rtol=1e-5, atol=1e-3)


def test_pipeline_lighting_draws_alpha_once_per_image_per_epoch():
    rng = np.random.default_rng(2)
    eigvecs, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    eigvals = np.array([14000.0, 1200.0, 300.0])
    src = ArraySource(np.full((600, N, N, 3), 100), np.full((N, N, 3), 90.0), eigvals, eigvecs)
    alphas = []
    for epoch in (0, 0, 1):
        x, _ = _all(src.train_dataset(100, S, seed=5, epoch=epoch))
        assert np.ptp(x, axis=(1, 2)).max() < 1e-3  # one shift for all pixels of an image
        delta = x[:, 0, 0] - 10.0
        alphas.append(delta @ eigvecs * 255 / eigvals)
    np.testing.assert_array_equal(alphas[0], alphas[1])
    assert np.abs(alphas[0] - alphas[2]).min() > 0
    std = alphas[0].std(axis=0)
    assert np.all(np.abs(std - PAPER.pca_lighting_std) < 0.015), std
    assert np.all(np.abs(alphas[0].mean(axis=0)) < 0.015)


def test_ten_crop_and_center_crop_equal_numpy_slicing():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, N, N, 3))
    mean = rng.uniform(0, 255, (N, N, 3))
    src = ArraySource(images, mean)
    ten, labels = _all(src.eval_dataset(2, S, ten_crop=True))
    center, _ = _all(src.eval_dataset(2, S))
    np.testing.assert_array_equal(labels, [0, 1, 2])
    assert ten.shape == (3, 10, S, S, 3)
    c = (N - S) // 2
    for i, img in enumerate(images - mean):
        views = {"top_left": img[:S, :S], "top_right": img[:S, -S:],
                 "bottom_left": img[-S:, :S], "bottom_right": img[-S:, -S:],
                 "center": img[c:c + S, c:c + S]}
        for k, name in enumerate(TEN_CROP_ORDER):
            ref = views[name.removesuffix("_mirror")]
            ref = ref[:, ::-1] if name.endswith("_mirror") else ref
            np.testing.assert_allclose(ten[i, k], ref, atol=1e-4)
        np.testing.assert_allclose(center[i], views["center"], atol=1e-4)


def test_bad_arguments():
    src = ArraySource(_coded(4), np.zeros((N, N, 3)))
    with pytest.raises(ValueError, match="input_size=13"):
        src.train_dataset(2, 13)
    with pytest.raises(ValueError, match="shard_index=2"):
        src.eval_dataset(2, S, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="Unknown data spec"):
        open_source("/no/such/thing")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_prepared_input(root / "in", 48)
    # The same pictures as a validation split, so eval has 6 files too.
    (root / "in" / "val").symlink_to(root / "in" / "train")
    prepare_imagenet(str(root / "in"), str(root / "out"), images_per_shard=8, num_workers=1,
                     progress=False)
    return open_source(str(root / "out"))


def test_deterministic_stream_and_skip(prepared):
    def batches(**kw):
        return [(x.numpy(), y.numpy()) for x, y in prepared.train_dataset(6, 64, seed=7, **kw)]

    a, b = batches(), batches()
    assert len(a) == 8
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    skipped = [(x.numpy(), y.numpy())
               for x, y in prepared.train_dataset(6, 64, seed=7).skip(3)]
    fast_skipped = [(x.numpy(), y.numpy())
                    for x, y in prepared.train_dataset(6, 64, seed=7, skip_batches=3)]
    assert len(skipped) == len(fast_skipped) == 5
    for (xa, _), (xs, _), (xf, _) in zip(a[3:], skipped, fast_skipped):
        np.testing.assert_array_equal(xa, xs)
        np.testing.assert_array_equal(xa, xf)
    other = batches(epoch=1)
    assert not all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, other))
    labels = np.concatenate([y for _, y in a])
    assert Counter(labels.tolist()) == Counter(np.arange(48) % 10)  # each record once
    fast = np.concatenate([y.numpy() for _, y in prepared.train_dataset(6, 64)])
    assert Counter(fast.tolist()) == Counter(labels.tolist())


@pytest.mark.parametrize("num_shards", [2, 8])  # by file (6 files), by record
def test_sharding_partitions_the_data(prepared, num_shards):
    full, full_y = _all(prepared.eval_dataset(16, 32))
    parts = [_all(prepared.eval_dataset(16, 32, num_shards=num_shards, shard_index=i))
             for i in range(num_shards)]
    keys = sorted(float(k) for x, _ in parts for k in x.sum(axis=(1, 2, 3)))
    assert keys == sorted(float(k) for k in full.sum(axis=(1, 2, 3)))
    assert sum(len(y) for _, y in parts) == len(full_y) == prepared.info.num_eval == 48
    train = [np.concatenate([y.numpy() for _, y in prepared.train_dataset(
        4, 32, seed=1, num_shards=num_shards, shard_index=i, drop_remainder=False)])
        for i in range(num_shards)]
    assert Counter(np.concatenate(train).tolist()) == Counter(np.arange(48) % 10)


def test_folder_source_reads_imagenet_tree_directly(tmp_path):
    expected = make_imagenet(tmp_path, flat_val=False)
    src = open_source(f"folder:{tmp_path}", image_size=64, stats_sample=8)
    assert src.info.wnids == tuple(expected["train"])
    assert src.info.mean_image.shape == (64, 64, 3)
    _, y = _all(src.train_dataset(5, 48, seed=0, drop_remainder=False))
    assert Counter(y.tolist()) == Counter({i: 7 for i in range(3)})  # broken files skipped
    # The counts are what an epoch yields (24 train files, 3 of them broken), so
    # steps_per_epoch is right.
    assert src.info.num_train == len(y) == sum(expected["train"].values()) == 21
    assert src.info.num_eval == sum(expected["val"].values()) == 7
    # With broken files dropped, skip_batches still gives exactly .skip()'s batches.
    skipped = [y.numpy() for _, y in src.train_dataset(5, 48, seed=0).skip(2)]
    resumed = [y.numpy() for _, y in src.train_dataset(5, 48, seed=0, skip_batches=2)]
    assert len(skipped) == len(resumed) == 2
    for a, b in zip(skipped, resumed):
        np.testing.assert_array_equal(a, b)
    x, y = _all(src.eval_dataset(4, 48, ten_crop=True))
    assert x.shape == (7, 10, 48, 48, 3) and len(y) == 7


def test_image_check_and_keep_images(tmp_path):
    """First and last bytes sort most files; a decode settles JPEGs without their end marker."""
    import io

    from PIL import Image

    from keras_alexnet.data.imagenet import Example, Layout, image_check, keep_images
    from keras_alexnet.data.sources import decode_any

    picture = np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8)

    def encoded(fmt: str) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(picture).save(buf, fmt)
        return buf.getvalue()

    jpeg, png = encoded("JPEG"), encoded("PNG")
    files = {  # name: (bytes, image_check's answer, whether TF decodes it)
        "whole.jpg": (jpeg, True, True),
        "whole.png": (png, True, True),
        "whole.gif": (encoded("GIF"), True, True),
        "whole.bmp": (encoded("BMP"), True, True),
        "trailing.jpg": (jpeg + bytes(8192), None, True),  # data after the end marker
        "cut.jpg": (jpeg[:len(jpeg) // 2], None, False),
        "cut.png": (png[:len(png) // 2], None, False),
        "empty.jpg": (b"", False, False),
        "notes.jpg": (b"not an image\n", False, False),
        "picture.tiff": (encoded("TIFF"), False, False),  # PIL reads it, TF does not
    }
    for name, (data, _, _) in files.items():
        (tmp_path / name).write_bytes(data)
    for name, (_, check, decodes) in files.items():
        assert image_check(tmp_path / name) is check, name
        try:
            decode_any(tf.io.read_file(str(tmp_path / name)), 32)
            assert decodes, name
        except tf.errors.OpError:
            assert not decodes, name
    examples = tuple(Example(str(tmp_path / n), 0, "n0") for n in files)
    layout = Layout(str(tmp_path), ("n0",), ("n0",), examples[:6], examples[6:])
    decoded = []

    def decodes(path: str) -> bool:
        decoded.append(path)
        return files[path.rsplit("/", 1)[1]][2]

    kept, dropped = keep_images(layout, decodes)
    assert [e.path for e in kept.train + kept.val] == [
        e.path for e in examples if files[e.path.rsplit("/", 1)[1]][2]]
    assert sorted(dropped) == sorted(e.path for e in examples
                                     if not files[e.path.rsplit("/", 1)[1]][2])
    assert sorted(decoded) == sorted(str(tmp_path / n) for n, f in files.items() if f[1] is None)
    with pytest.raises(ValueError, match="holds no readable image"):
        keep_images(dataclasses.replace(layout, train=examples[5:7]), decodes)


def test_benchmark_pipeline_runs(prepared):
    assert benchmark_pipeline(prepared, 8, 64, 3, warmup_batches=1) > 0


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")  # optional extra, not installed by default
    with tfds.testing.mock_data(num_examples=12):
        src = open_source("tfds:imagenet2012", image_size=32, stats_sample=4)
        x, y = next(iter(src.train_dataset(4, 24, seed=0)))
        assert x.shape == (4, 24, 24, 3) and y.shape == (4,)
        assert src.info.num_classes == 1000 and src.info.wnids[0] == "n01440764"
        x, _ = next(iter(src.eval_dataset(4, 24, ten_crop=True)))
        assert x.shape == (4, 10, 24, 24, 3)
