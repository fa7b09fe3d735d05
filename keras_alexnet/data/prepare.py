"""Offline preparation (Section 2): ImageNet folders -> sharded 256x256 JPEG TFRecords + statistics.

Output folder:
  train-00000-of-NNNNN.tfrecord ...  val-00000-of-MMMMM.tfrecord ...
  *.json beside each shard (its counts and broken files), *.stats.npz beside train shards (exact
  integer pixel sums, so a resumed run still gets exact global statistics)
  classes.tsv (index, wnid, name), mean_image.npy, stats.json (RGB covariance and eigen-system),
  manifest.json (counts per class and split), broken.tsv (path, reason), dataset.json (identity).
A shard is written under a temporary name and renamed when complete; its .json is written last,
so a re-run keeps exactly the finished shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

from keras_alexnet.data.augment import PAPER
from keras_alexnet.data.imagenet import (
    BrokenImage,
    Example,
    Layout,
    decode_jpeg,
    encode_jpeg,
    load_resized,
    scan_imagenet,
)
from keras_alexnet.data.stats import PixelSums, finalize
from keras_alexnet.files import atomic_path, write_text_atomic

FORMAT_VERSION = 1
SPLITS = ("train", "val")


class NoTrainingImagesError(ValueError):
    """Every training image is broken: nothing to prepare (broken.tsv says why per file)."""


@dataclasses.dataclass(frozen=True)
class PrepareResult:
    output_dir: str
    num_examples: dict[str, int]
    broken: tuple[tuple[str, str], ...]
    num_files: int
    classes_without_images: tuple[str, ...]

    @property
    def broken_fraction(self) -> float:
        return len(self.broken) / max(1, self.num_files)

    def summary(self) -> str:
        return (f"Prepared {self.num_examples['train']} train and {self.num_examples['val']} val "
                f"images in {self.output_dir}; {len(self.broken)} broken files "
                f"({100 * self.broken_fraction:.3f}%, see broken.tsv).")


@dataclasses.dataclass(frozen=True)
class _Shard:
    split: str
    index: int
    count: int
    examples: tuple[Example, ...]
    image_size: int
    quality: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.count:05d}"

    @property
    def fingerprint(self) -> str:
        payload = [self.image_size, self.quality, [(e.path, e.label) for e in self.examples]]
        return hashlib.sha1(json.dumps(payload).encode()).hexdigest()


def _plan(layout: Layout, image_size: int, quality: int, per_shard: int) -> list[_Shard]:
    shards = []
    for split in SPLITS:
        examples = list(getattr(layout, split))
        # Mix classes across train shards so that a bounded shuffle buffer sees all classes.
        if split == "train":
            random.Random(0).shuffle(examples)
        n = -(-len(examples) // per_shard)
        for i in range(n):
            shards.append(_Shard(split, i, n, tuple(examples[i::n]), image_size, quality))
    return shards


def _shard_done(out: Path, shard: _Shard) -> bool:
    meta = out / f"{shard.name}.json"
    if not meta.is_file() or not (out / f"{shard.name}.tfrecord").is_file():
        return False
    if shard.split == "train" and not (out / f"{shard.name}.stats.npz").is_file():
        return False
    return json.loads(meta.read_text()).get("fingerprint") == shard.fingerprint


def _write_shard(args: tuple[str, _Shard]) -> dict:
    """Worker: writes one shard (TFRecord, stats, meta) and returns its meta."""
    import tensorflow as tf

    out, shard = Path(args[0]), args[1]
    sums = PixelSums(shard.image_size)
    per_class: Counter = Counter()
    broken = []
    with atomic_path(out / f"{shard.name}.tfrecord") as tmp:
        _write_records(tf, tmp, shard, sums, per_class, broken)
        if shard.split == "train":
            with atomic_path(out / f"{shard.name}.stats.npz", suffix=".tmp.npz") as tmp_stats:
                sums.save(tmp_stats)
    meta = {"fingerprint": shard.fingerprint, "num_examples": sum(per_class.values()),
            "per_class": dict(per_class), "broken": broken, "num_files": len(shard.examples)}
    write_text_atomic(out / f"{shard.name}.json", json.dumps(meta))
    return meta


def _write_records(tf, path: Path, shard: _Shard, sums: PixelSums, per_class: Counter,
                   broken: list) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for ex in shard.examples:
            try:
                encoded = encode_jpeg(load_resized(ex.path, shard.image_size), shard.quality)
            except BrokenImage as e:
                broken.append((ex.path, str(e).replace("\t", " ").replace("\n", " ")))
                continue
            if shard.split == "train":
                # The statistics are of the pixels a reader decodes from the stored JPEG.
                sums.add(decode_jpeg(encoded))
            feature = {
                "image/encoded": _bytes(tf, encoded),
                "image/class/label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[ex.label])),
                "image/class/wnid": _bytes(tf, ex.wnid.encode()),
                "image/filename": _bytes(tf, os.path.basename(ex.path).encode()),
            }
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
            per_class[ex.wnid] += 1


def _bytes(tf, value: bytes):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _check_output(out: Path, identity: dict) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"Output {out} exists and is not a folder.")
    ident = out / "dataset.json"
    if ident.is_file():
        if json.loads(ident.read_text()) != identity:
            raise ValueError(f"Output folder {out} already holds a different prepared dataset "
                             "(other input, image size, quality or sharding); choose a new "
                             "--output_dir.")
    elif any(out.iterdir()):
        raise ValueError(f"Output folder {out} is not empty and holds no prepared dataset.")


class _Progress:
    def __init__(self, total_images: int, total_shards: int) -> None:
        self.total, self.shards, self.done, self.done_shards = total_images, total_shards, 0, 0
        self.start = time.time()

    def update(self, images: int) -> None:
        self.done += images
        self.done_shards += 1
        rate = self.done / max(1e-9, time.time() - self.start)
        eta = (self.total - self.done) / max(rate, 1e-9)
        bar = "#" * int(30 * self.done / max(1, self.total))
        sys.stderr.write(f"\r[{bar:<30}] {self.done_shards}/{self.shards} shards, "
                         f"{self.done}/{self.total} images, {rate:.0f} img/s, "
                         f"ETA {int(eta) // 3600}:{int(eta) % 3600 // 60:02d}:{int(eta) % 60:02d}")
        sys.stderr.flush()


def prepare_imagenet(
    input_dir: str, output_dir: str, *, val_labels: str | None = None,
    val_synsets: str | None = None, synset_words: str | None = None,
    image_size: int = PAPER.image_size, jpeg_quality: int = 90, images_per_shard: int = 1024,
    num_workers: int = 0, allow_empty_classes: bool = False, progress: bool = True,
) -> PrepareResult:
    """Prepares (or resumes preparing) `input_dir` into `output_dir`; see the module docstring.

    num_workers=0 uses all cores; 1 runs in this process. Raises ValueError on bad input before
    anything is written.
    """
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality={jpeg_quality} must be in 1..100.")
    if image_size < 1 or images_per_shard < 1 or num_workers < 0:
        raise ValueError(f"image_size={image_size}, images_per_shard={images_per_shard} must be "
                         f">= 1 and num_workers={num_workers} >= 0.")
    if not Path(input_dir).is_dir():
        raise ValueError(f"Input folder {input_dir} does not exist.")
    layout = scan_imagenet(input_dir, val_labels=val_labels, val_synsets=val_synsets,
                           synset_words=synset_words, allow_empty_classes=allow_empty_classes)
    shards = _plan(layout, image_size, jpeg_quality, images_per_shard)
    identity = {"format": FORMAT_VERSION, "source": str(Path(input_dir).resolve()),
                "wnids_sha1": hashlib.sha1(" ".join(layout.wnids).encode()).hexdigest(),
                "shards_sha1": hashlib.sha1(
                    " ".join(s.fingerprint for s in shards).encode()).hexdigest(),
                "image_size": image_size, "jpeg_quality": jpeg_quality}
    out = Path(output_dir)
    _check_output(out, identity)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.tmp*"):  # left by an interrupted run
        stale.unlink()
    write_text_atomic(out / "dataset.json", json.dumps(identity, indent=2))
    write_text_atomic(out / "classes.tsv", "".join(
        f"{i}\t{w}\t{n}\n" for i, (w, n) in enumerate(zip(layout.wnids, layout.names))))

    todo = [s for s in shards if not _shard_done(out, s)]
    bar = _Progress(sum(len(s.examples) for s in todo), len(todo)) if progress else None
    workers = num_workers or os.cpu_count() or 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the spawned workers
    tasks = [(str(out), s) for s in todo]
    if workers == 1 or len(todo) <= 1:
        results = map(_write_shard, tasks)
        _drain(results, bar)
    else:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            _drain(pool.imap_unordered(_write_shard, tasks), bar)
    if bar:
        sys.stderr.write("\n")
    return _finish(out, layout, shards)


def _drain(results, bar: _Progress | None) -> None:
    for meta in results:
        if bar:
            bar.update(meta["num_files"])


def _finish(out: Path, layout: Layout, shards: list[_Shard]) -> PrepareResult:
    """Merges the per-shard records into the global statistics, manifest and broken report."""
    sums = PixelSums(shards[0].image_size if shards else PAPER.image_size)
    per_class = {split: Counter() for split in SPLITS}
    files = {split: [] for split in SPLITS}
    broken: list[tuple[str, str]] = []
    num_files = 0
    for s in shards:
        meta = json.loads((out / f"{s.name}.json").read_text())
        per_class[s.split].update(meta["per_class"])
        files[s.split].append(f"{s.name}.tfrecord")
        broken += [tuple(b) for b in meta["broken"]]
        num_files += meta["num_files"]
        if s.split == "train":
            sums.merge(PixelSums.load(out / f"{s.name}.stats.npz"))
    broken.sort()
    write_text_atomic(out / "broken.tsv", "".join(f"{p}\t{r}\n" for p, r in broken))
    if sums.count == 0:
        # Nothing usable: leave broken.tsv to say why, not shards of nothing.
        for s in shards:
            for suffix in (".tfrecord", ".json", ".stats.npz"):
                (out / f"{s.name}{suffix}").unlink(missing_ok=True)
        raise NoTrainingImagesError(
            f"No readable training images in {layout.root}: all {num_files} files are broken "
            f"or not images; see {out / 'broken.tsv'}.")
    finalize(sums).save(out)
    manifest = {
        "format": FORMAT_VERSION, "image_size": shards[0].image_size,
        "jpeg_quality": shards[0].quality, "num_classes": len(layout.wnids),
        "num_broken": len(broken),
        "splits": {split: {"num_examples": sum(per_class[split].values()),
                           "files": files[split],
                           "per_class": {w: per_class[split].get(w, 0) for w in layout.wnids}}
                   for split in SPLITS},
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2))
    return PrepareResult(
        str(out), {split: manifest["splits"][split]["num_examples"] for split in SPLITS},
        tuple(broken), num_files,
        tuple(w for w in layout.wnids if not per_class["train"].get(w)),
    )


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{directory} is not a prepared dataset (no manifest.json); "
                         "run scripts/prepare_imagenet.py first.")
    return json.loads(path.read_text())


def read_classes(directory: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(wnids, names) from classes.tsv, in label order."""
    rows = [line.split("\t") for line in
            (Path(directory) / "classes.tsv").read_text().splitlines() if line]
    return tuple(r[1] for r in rows), tuple(r[2] for r in rows)

