"""Preparation of an ImageNet-layout fixture: counts, labels, odd files, statistics, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from data_fixtures import NAMES, WNIDS, make_imagenet
from helpers import SCRIPTS, run_python

from keras_alexnet.data import prepare_imagenet
from keras_alexnet.data.sources import resize_and_center_crop


def _records(out: Path, split: str) -> list[dict]:
    """Every record of a split, parsed with TF's own reader."""
    feats = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
             "image/class/label": tf.io.FixedLenFeature([], tf.int64),
             "image/class/wnid": tf.io.FixedLenFeature([], tf.string),
             "image/filename": tf.io.FixedLenFeature([], tf.string)}
    rows = []
    for f in sorted(out.glob(f"{split}-*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(f)):
            ex = tf.io.parse_single_example(raw, feats)
            rows.append({
                "image": tf.io.decode_jpeg(ex["image/encoded"],
                                           dct_method="INTEGER_ACCURATE").numpy(),
                "label": int(ex["image/class/label"]),
                "wnid": ex["image/class/wnid"].numpy().decode(),
                "filename": ex["image/filename"].numpy().decode()})
    return rows


@pytest.fixture(scope="module")
def prepared(build_once):
    """Both val layouts; the flat one with 2 worker processes, the other in-process."""
    def build(folder):
        out = {}
        for flat in (False, True):
            root = folder / ("flat" if flat else "folders")
            expected = make_imagenet(root / "in", flat_val=flat)
            result = prepare_imagenet(
                str(root / "in"), str(root / "out"), images_per_shard=4,
                num_workers=2 if flat else 1, progress=flat,
                val_synsets=str(root / "in" / "synsets.txt") if flat else None)
            out[flat] = (root, expected, result)
        return out

    return build_once("imagenet_prepared", build)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.slow
def test_counts_labels_and_class_index(prepared, flat):
    root, expected, result = prepared[flat]
    out = root / "out"
    assert (out / "classes.tsv").read_text().splitlines() == [
        f"{i}\t{w}\t{n}" for i, (w, n) in enumerate(zip(WNIDS, NAMES))]
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "val"):
        assert manifest["splits"][split]["per_class"] == expected[split]
        rows = _records(out, split)
        assert len(rows) == sum(expected[split].values()) == result.num_examples[split]
        for r in rows:
            assert r["image"].shape == (256, 256, 3)
            assert WNIDS[r["label"]] == r["wnid"]
    # Validation labels come from the folder or, flat, from the ground truth via the ID list.
    for r in _records(out, "val"):
        i = int(r["filename"].split("_")[-1].split(".")[0]) - 1
        assert r["wnid"] == WNIDS[i % 3]


@pytest.mark.slow
def test_broken_files_reported(prepared):
    root, expected, result = prepared[False]
    assert sorted(p for p, _ in result.broken) == expected["broken"]
    report = dict(line.split("\t") for line in
                  (root / "out" / "broken.tsv").read_text().splitlines())
    assert sorted(report) == expected["broken"]
    assert [r for p, r in report.items() if p.endswith("empty.JPEG")] == ["empty file"]
    assert "broken files" in result.summary() and "3 broken" in result.summary()
    assert result.num_files == sum(expected["train"].values()) + 3 + 7


def _blocks(image: np.ndarray) -> np.ndarray:
    return image.astype(float).reshape(16, 16, 16, 16, 3).mean(axis=(1, 3))


@pytest.mark.slow
def test_odd_files_converted(prepared):
    root, expected, _ = prepared[False]
    rows = {r["filename"]: r for r in _records(root / "out", "train")}
    for name, picture in expected["odd"].items():
        # Independent reference: TF's resize of the original RGB picture.
        # Compared as 16x16 block means: the pictures carry pixel noise that the two resizers
        # and JPEG treat differently, while a wrong colour conversion shifts whole regions.
        ref = resize_and_center_crop(tf.constant(picture), 256).numpy().astype(float)
        diff = _blocks(rows[name]["image"]) - _blocks(ref)
        assert np.abs(diff).max() < 6, (name, np.abs(diff).max())
    gray = rows["gray.JPEG"]["image"].astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 3


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.slow
def test_statistics_equal_numpy_over_the_stored_pixels(prepared, flat):
    root, _, _ = prepared[flat]
    out = root / "out"
    pixels = np.stack([r["image"] for r in _records(out, "train")]).astype(np.float64)
    np.testing.assert_allclose(np.load(out / "mean_image.npy"), pixels.mean(axis=0), rtol=1e-6)
    stats = json.loads((out / "stats.json").read_text())
    cov = np.cov(pixels.reshape(-1, 3), rowvar=False, bias=True)
    np.testing.assert_allclose(stats["covariance"], cov, rtol=1e-9)
    vals, vecs = np.asarray(stats["eigvals"]), np.asarray(stats["eigvecs_columns"])
    np.testing.assert_allclose(vals, np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-9)
    assert np.all(np.diff(vals) <= 0)
    np.testing.assert_allclose(vecs @ np.diag(vals) @ vecs.T, cov, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(vecs.T @ vecs, np.eye(3), atol=1e-12)


@pytest.mark.slow
def test_resume_rewrites_only_missing_shards(prepared, tmp_path):
    root, _, _ = prepared[False]
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")}
    mean_before = np.load(out / "mean_image.npy")
    stats_before = (out / "stats.json").read_text()
    (out / "train-00002-of-00006.tfrecord").unlink()
    (out / "val-00001-of-00002.json").unlink()
    (out / ".train-00004-of-00006.tfrecord.tmp99").write_bytes(b"half")  # an interrupted write
    prepare_imagenet(str(root / "in"), str(out), images_per_shard=4, num_workers=1,
                     progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")}
    assert set(after) == set(before)
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"train-00002-of-00006.tfrecord", "val-00001-of-00002.tfrecord"}
    assert not list(out.glob("*.tmp*"))
    np.testing.assert_array_equal(np.load(out / "mean_image.npy"), mean_before)
    assert (out / "stats.json").read_text() == stats_before


def _no_output(fn, out: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fn()
    assert not out.exists()


@pytest.mark.slow
def test_bad_invocations_write_nothing(prepared, tmp_path):
    root, _, _ = prepared[True]
    src = root / "in"
    out = tmp_path / "new"
    _no_output(lambda: prepare_imagenet(str(tmp_path / "missing"), str(out)), out, "not exist")
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    gt = bad / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("".join(gt.read_text().splitlines(keepends=True)[:-1]))
    _no_output(lambda: prepare_imagenet(str(bad), str(out), val_synsets=str(src / "synsets.txt")),
               out, "6 labels but .* has 7 files")
    _no_output(lambda: prepare_imagenet(str(src), str(out)), out, "--val_synsets")
    empty = tmp_path / "empty"
    shutil.copytree(src, empty)
    (empty / "train" / "n09999999").mkdir()
    _no_output(lambda: prepare_imagenet(str(empty), str(out),
                                        val_synsets=str(src / "synsets.txt")), out, "is empty")


@pytest.mark.slow
def test_output_holding_another_dataset_is_refused(prepared):
    (root_a, _, _), (root_b, _, _) = prepared[False], prepared[True]
    before = sorted(p.name for p in (root_a / "out").iterdir())
    with pytest.raises(ValueError, match="different prepared dataset"):
        prepare_imagenet(str(root_b / "in"), str(root_a / "out"),
                         val_synsets=str(root_b / "in" / "synsets.txt"), images_per_shard=4)
    assert sorted(p.name for p in (root_a / "out").iterdir()) == before


@pytest.mark.slow
def test_script_exit_status(prepared, tmp_path):
    root, _, _ = prepared[False]
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)  # the shared output stays as it is (build_once)
    script = SCRIPTS / "prepare_imagenet.py"
    flags = [f"--input_dir={root / 'in'}", f"--output_dir={out}", "--images_per_shard=4",
             "--num_workers=1"]
    # Resumes (nothing to do); 3 of 31 files are broken, above the 1% allowed.
    proc = run_python(script, *flags, "--max_broken_fraction=0.01", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "3 broken files" in proc.stdout and "more than --max_broken_fraction" in proc.stderr
    proc = run_python(script, f"--input_dir={tmp_path / 'nope'}", "--output_dir=/x",
                      timeout=120)
    assert proc.returncode == 2
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: Input folder {tmp_path / 'nope'} does not exist."]


def test_flat_val_ids_mapped_through_devkit_meta_mat(tmp_path):
    sio = pytest.importorskip("scipy.io")  # optional: only meta.mat needs it
    from data_fixtures import ID_ORDER

    from keras_alexnet.data.imagenet import scan_imagenet

    make_imagenet(tmp_path, flat_val=True)
    # The devkit's layout: leaves first (IDs 1..K), then inner synsets with children.
    rows = [(i + 1, w, 0) for i, w in enumerate(ID_ORDER)] + [(4, "n00001740", 2)]
    synsets = np.array(rows, dtype=[("ILSVRC2012_ID", "i4"), ("WNID", "O"),
                                    ("num_children", "i4")])
    sio.savemat(str(tmp_path / "meta.mat"), {"synsets": synsets})
    layout = scan_imagenet(tmp_path)
    assert [e.wnid for e in layout.val] == [WNIDS[i % 3] for i in range(7)]
    assert [WNIDS[e.label] for e in layout.val] == [e.wnid for e in layout.val]
