"""Figures 3 and 4, fc7 features, exact nearest neighbours and the projector export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from data_fixtures import make_imagenet
from google.protobuf import text_format
from helpers import SCRIPTS, TINY_MODEL, run_python
from PIL import Image
from tensorboard.plugins import projector

from keras_alexnet import analysis, build_alexnet, retrieval

TINY = TINY_MODEL.replace(num_classes=7)


def _brute_force(q: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist = np.linalg.norm(q[:, None, :].astype(np.float64) - d[None].astype(np.float64), axis=-1)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(dist, idx, axis=1)


@pytest.mark.parametrize("dim,offset", [(16, 0.0), (300, 0.0), (64, 1000.0)])
@pytest.mark.parametrize("k,query_chunk,database_chunk", [
    (1, 5, 17), (7, 13, 50), (12, 100, 1000), (203, 7, 31)])
def test_nearest_neighbors_equal_brute_force(dim, offset, k, query_chunk, database_chunk):
    rng = np.random.default_rng(dim + k)
    database = (rng.normal(size=(203, dim)) + offset).astype(np.float32)
    database[150] = database[20]  # an exact tie: the lower index comes first
    queries = (rng.normal(size=(37, dim)) + offset).astype(np.float32)
    queries[3] = database[20]  # a query whose nearest neighbours are at distance 0
    idx, dist = retrieval.nearest_neighbors(queries, database, k, query_chunk=query_chunk,
                                            database_chunk=database_chunk)
    want_idx, want_dist = _brute_force(queries, database, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-12, atol=1e-9)
    if k > 1:
        assert idx[3, 0] == 20 and idx[3, 1] == 150 and dist[3, 1] == 0


def test_nearest_neighbors_reject_bad_arguments():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="k=5"):
        retrieval.nearest_neighbors(x, x, 5)
    with pytest.raises(ValueError, match="equal D"):
        retrieval.nearest_neighbors(x, np.zeros((4, 2)), 1)


def test_kernel_grid_layout_and_normalisation(tmp_path):
    model = build_alexnet(TINY)  # two towers of 4 conv1 kernels each
    towers = analysis.conv1_kernels(model)
    assert [t.shape for t in towers] == [(11, 11, 3, 4)] * 2
    grid = analysis.kernel_grid(towers, columns=3, scale=2, gap=1, label_height=10)
    # Per tower: a 10-px label band, then ceil(4/3)=2 rows of 22-px kernels + 1-px gaps; then a
    # 10-px caption line (where the paper learned the towers).
    assert grid.shape == (1 + 2 * (10 + 2 * 23) + 10, 1 + 3 * 23, 3)
    assert grid.shape[:2] == analysis.kernel_grid_shape([4, 4], 11, columns=3, scale=2, gap=1,
                                                        label_height=10)
    # Tower 1's second kernel: row 0, column 1 of the second block.
    k = towers[1][..., 1].astype(np.float64)
    want = np.round((k - k.min()) / (k.max() - k.min()) * 255).astype(np.uint8)
    top = 1 + (10 + 2 * 23) + 10
    cell = grid[top:top + 22, 1 + 23:1 + 23 + 22]
    np.testing.assert_array_equal(cell, np.kron(want, np.ones((2, 2, 1), np.uint8)))
    assert cell.min() == 0 and cell.max() == 255
    analysis.write_png(grid, tmp_path / "k.png")
    assert Image.open(tmp_path / "k.png").size == (grid.shape[1], grid.shape[0])
    # Naming the towers' devices changes only the label bands' text.
    placed = analysis.kernel_grid(towers, devices=["/CPU:0", "/CPU:0"], columns=3, scale=2,
                                  gap=1, label_height=10)
    differ = np.nonzero(np.any(placed != grid, axis=(1, 2)))[0]
    assert len(differ) and set(differ) <= set(range(1, 11)) | set(range(57, 67))
    with pytest.raises(ValueError, match="devices"):
        analysis.kernel_grid(towers, devices=["/CPU:0"])


def test_paper_size_kernel_grid_and_tensorboard_image(tmp_path, paper_model):
    towers = analysis.conv1_kernels(paper_model)
    grid = analysis.kernel_grid(towers)  # 48 per tower, 16 columns: 3 rows per tower
    assert grid.shape == (2 + 2 * (16 + 3 * 46) + 16, 2 + 16 * 46, 3)
    analysis.write_image_summaries(tmp_path, {"figure3": grid})
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1
    record = next(iter(tf.data.TFRecordDataset(str(events[0])).skip(1)))
    event = tf.compat.v1.Event.FromString(record.numpy())
    assert event.summary.value[0].tag == "figure3"


def test_flat_kernel_is_gray():
    k = np.zeros((3, 3, 3, 2), np.float32)
    k[..., 1] = np.arange(27).reshape(3, 3, 3)
    out = analysis.normalize_kernels(k)
    assert np.all(out[0] == 0.5) and out[1].min() == 0 and out[1].max() == 1


def test_prediction_sheet_marks_true_label(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (5, 40, 30, 3), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(7), size=5)
    labels = np.argsort(-probs, axis=1)[:, 2]  # the third most probable class: a red bar
    sheet = analysis.prediction_sheet(images, probs, labels, [f"c{i}" for i in range(7)],
                                      columns=2, thumb=64, cell_width=120, bar_height=12)
    # ceil(5/2)=3 rows of (64 + 12 * (5 + 1) + 8) px and a 16-px legend, 2 columns of 120 px.
    assert sheet.shape == (3 * 144 + 16, 240, 3)
    red = np.all(sheet == analysis.TRUE_BAR, axis=-1)
    blue = np.all(sheet == analysis.OTHER_BAR, axis=-1)
    for i in range(5):  # every cell has one red and four blue outlined bars
        r, c = divmod(i, 2)
        cell = (slice(r * 144, (r + 1) * 144), slice(c * 120, (c + 1) * 120))
        assert red[cell].any() and blue[cell].any()
    assert not red[2 * 144:3 * 144, 120:].any()  # the empty sixth cell
    # The legend line: a red swatch, then a blue one, each with its meaning written after it.
    legend_red, legend_blue = red[3 * 144:], blue[3 * 144:]
    assert legend_red.any() and legend_blue.any()
    assert np.nonzero(legend_red)[1].max() < np.nonzero(legend_blue)[1].min()
    ink = _text(sheet[3 * 144:])
    assert ink[:, np.nonzero(legend_red)[1].max() + 1:np.nonzero(legend_blue)[1].min()].any()
    path = analysis.write_png(sheet, tmp_path / "sheet.png")
    assert Image.open(path).size == (240, 448)
    with pytest.raises(ValueError, match="class names"):
        analysis.prediction_sheet(images, probs, labels, ["a", "b"])


def test_neighbour_grid_size():
    img = np.full((50, 50, 3), 200, np.uint8)
    grid = analysis.image_grid([[img] * 4, [img] * 4], thumb=20, gap=2, separator=6)
    assert grid.shape == (2 + 2 * 22, 2 + 4 * 22 + 6, 3)
    assert grid.shape[:2] == analysis.image_grid_shape(2, 4, thumb=20, gap=2, separator=6)
    assert not _text(grid).any()  # no labels asked for, none drawn


def _text(image: np.ndarray) -> np.ndarray:
    """Pixels of (antialiased) black text: dark, and no bar colour (their brightest channel
    is above 128)."""
    return np.asarray(image).max(axis=-1) < 128


def test_neighbour_grid_labels():
    """Titles above the columns and a caption under each image, in bands of their own."""
    img = np.full((50, 50, 3), 200, np.uint8)
    grid = analysis.image_grid([[img] * 3, [img] * 3], thumb=40, gap=2, separator=6,
                               column_titles=["query", "neighbour 1", "2"],
                               captions=[["cat", "dog", "cat"], ["dog", "dog", "cat"]],
                               text_height=12)
    # A title band (12 + 2), then 2 rows of (40-px image + 12-px caption + 2).
    assert grid.shape == (2 + 14 + 2 * 54, 2 + 3 * 42 + 6, 3)
    assert grid.shape[:2] == analysis.image_grid_shape(2, 3, thumb=40, gap=2, separator=6,
                                                       text_height=12)
    ink = _text(grid)
    bands = {"title": (2, 14), "caption 0": (2 + 14 + 40, 2 + 14 + 52),
             "caption 1": (2 + 14 + 54 + 40, 2 + 14 + 54 + 52)}
    for name, (a, b) in bands.items():
        for c in range(3):  # every column has text in every band
            x = 2 + c * 42 + (6 if c else 0)
            assert ink[a:b, x:x + 40].any(), (name, c)
    images = np.all(grid == 200, axis=-1)
    assert not (ink & images).any()  # text never covers an image
    with pytest.raises(ValueError, match="captions"):
        analysis.image_grid([[img] * 3], captions=[["a", "b"]])


def test_extract_features_feed_fc8_and_gather_images():
    config = TINY.replace(classifier_activation=None)
    model = build_alexnet(config)
    x = np.random.default_rng(1).normal(0, 60, (10, 67, 67, 3)).astype(np.float32)
    y = np.arange(10, dtype=np.int32) % 7
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    feats, labels = retrieval.extract_features(model, ds, progress=True)
    assert feats.shape == (10, 32) and feats.dtype == np.float32
    np.testing.assert_array_equal(labels, y)
    assert feats.min() >= 0  # after the ReLU
    # fc7 is what fc8 sees (dropout is off at inference): logits = fc7 @ W8 + b8.
    w, b = model.get_layer("fc8").get_weights()
    np.testing.assert_allclose(feats @ w + b, model(x, training=False).numpy(),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(retrieval.gather_images(ds, [7, 0, 7, 9]), x[[7, 0, 7, 9]])
    with pytest.raises(ValueError, match="past the dataset"):
        retrieval.gather_images(ds, [10])


def test_projector_files_are_readable(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(11, 24)).astype(np.float32)
    labels = rng.integers(0, 3, 11)
    images = rng.integers(0, 255, (11, 40, 40, 3), dtype=np.uint8)
    names = ["cat", "dog\tx", "car"]
    log_dir = tmp_path / "projector"
    (log_dir).mkdir()
    (log_dir / "stale.txt").write_text("replaced")
    retrieval.write_projector(log_dir, feats, labels, names, images, thumb=16)
    assert not (log_dir / "stale.txt").exists()
    config = text_format.Parse((log_dir / "projector_config.pbtxt").read_text(),
                               projector.ProjectorConfig())
    (emb,) = config.embeddings
    ckpt = tf.train.latest_checkpoint(str(log_dir))
    assert ckpt is not None and ckpt.startswith(str(log_dir))
    np.testing.assert_array_equal(tf.train.load_checkpoint(ckpt).get_tensor(emb.tensor_name),
                                  feats)
    rows = (log_dir / emb.metadata_path).read_text().splitlines()
    assert rows[0] == "index\tlabel\tname" and len(rows) == 12
    assert rows[2].split("\t") == ["1", str(labels[1]), names[labels[1]].replace("\t", " ")]
    sprite = Image.open(log_dir / emb.sprite.image_path)
    assert list(emb.sprite.single_image_dim) == [16, 16]
    assert sprite.size == (4 * 16, 4 * 16)  # ceil(sqrt(11)) = 4 thumbnails a side
    first = np.asarray(Image.fromarray(images[5]).resize((16, 16), Image.BILINEAR))
    np.testing.assert_array_equal(np.asarray(sprite)[16:32, 16:32], first)


@pytest.mark.slow
def test_visualize_script_end_to_end(tmp_path):
    make_imagenet(tmp_path / "imagenet", flat_val=False)  # 3 classes, 7 val images
    model_path = tmp_path / "tiny.keras"
    build_alexnet(TINY.replace(num_classes=3)).save(model_path)
    out = tmp_path / "figures"
    proc = run_python(
        SCRIPTS / "visualize.py", f"--model={model_path}",
        f"--data=folder:{tmp_path / 'imagenet'}", f"--out_dir={out}", "--batch_size=4",
        "--num_queries=2", "--k=3", "--max_database=10", "--projector_points=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = {p.stem: Image.open(p).size[::-1] for p in out.glob("*.png")}
    assert sizes == {
        "figure3_conv1_kernels": analysis.kernel_grid_shape([4, 4], 11),
        "figure4_predictions": analysis.prediction_sheet_shape(7, k=3),  # 3 classes
        "figure4_neighbours": analysis.image_grid_shape(2, 1 + 3, thumb=96, text_height=14),
    }
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    config = text_format.Parse((out / "projector" / "projector_config.pbtxt").read_text(),
                               projector.ProjectorConfig())
    reader = tf.train.load_checkpoint(str(out / "projector"))
    assert reader.get_tensor(config.embeddings[0].tensor_name).shape == (5, 32)
