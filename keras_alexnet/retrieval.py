"""Figure 4 (right): fc7 features, exact Euclidean nearest neighbours, TensorBoard projector.

Section 6.1: images whose 4096-d last-hidden-layer vectors are close in Euclidean distance are
similar to the network, even when their pixels are not.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_alexnet.export import feature_model
from keras_alexnet.progress import known_batches, tracked

PROJECTOR_TENSOR = "fc7"
METADATA_FILE = "metadata.tsv"
SPRITE_FILE = "sprite.png"
# TensorBoard's projector refuses sprite sheets larger than this on a side.
MAX_SPRITE_SIDE = 8192


def extract_features(model: keras.Model, dataset: tf.data.Dataset, *,
                     progress: bool = False, num_batches: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """fc7 activations and labels of every (images, labels) batch of `dataset`.

    Args:
      progress: show a bar with an ETA on stdout, one step per batch.
      num_batches: the batches the bar expects; default: the dataset's cardinality if known.

    Returns:
      (features float32 [N, fc7 units], labels int32 [N]) in the dataset's order.
    """
    fc7 = feature_model(model)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(images):
        return fc7(images, training=False)

    total = known_batches(dataset) if num_batches is None else num_batches
    features, labels = [], []
    for images, y in tracked(dataset, total, progress):
        if images.shape.rank != 4:
            raise ValueError(f"extract_features needs batches of single views [B, S, S, 3], got "
                             f"{images.shape}; use eval_dataset(..., ten_crop=False).")
        features.append(step(images).numpy().astype(np.float32))
        labels.append(np.asarray(y, np.int32))
    if not features:
        raise ValueError("The dataset is empty: no features to extract.")
    return np.concatenate(features), np.concatenate(labels)


def gather_images(dataset: tf.data.Dataset, indices: Sequence[int]) -> np.ndarray:
    """The images at positions `indices` of an (images, labels) batch stream, in that order.

    A second pass over a deterministic dataset, so the database's pixels need not be held in
    memory while its features are searched.
    """
    indices = np.asarray(indices, np.int64).ravel()
    wanted = {int(i) for i in indices}
    found: dict[int, np.ndarray] = {}
    start = 0
    for images, _ in dataset:
        images = images.numpy()
        for j in range(len(images)):
            if start + j in wanted:
                found[start + j] = images[j]
        start += len(images)
        if len(found) == len(wanted):
            break
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"Indices {missing[:5]} are past the dataset's end ({start} images).")
    return np.stack([found[int(i)] for i in indices])


def nearest_neighbors(queries: np.ndarray, database: np.ndarray, k: int, *,
                      query_chunk: int = 1024, database_chunk: int = 8192
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database rows of every query by Euclidean distance.

    ||q - d||^2 = ||q||^2 - 2 q.d + ||d||^2 with chunked float32 matrix products, so memory is
    O(query_chunk * database_chunk) whatever the sizes. A running top-(k + margin) is kept per
    query; the survivors are then re-ranked with directly computed float64 distances, so the
    float32 cancellation in the expansion cannot change the answer.

    Returns:
      (indices int64 [Q, k], distances float64 [Q, k]), nearest first; ties keep the lower index.
    """
    q = np.asarray(queries, np.float32)
    d = np.asarray(database, np.float32)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"queries {q.shape} and database {d.shape} must be [N, D] with equal D.")
    if not 1 <= k <= len(d):
        raise ValueError(f"k={k} must be in 1..{len(d)} (the database size).")
    if query_chunk < 1 or database_chunk < 1:
        raise ValueError(f"query_chunk={query_chunk} and database_chunk={database_chunk} must "
                         "be positive.")
    keep = min(len(d), k + 8)
    # Distances do not change under translation; centring keeps the norms, and with them the
    # float32 cancellation error, small (fc7 vectors share a large non-negative mean).
    center = d.mean(axis=0, dtype=np.float64).astype(np.float32)
    d_sq = np.concatenate([np.einsum("ij,ij->i", c - center, c - center)
                           for c in np.array_split(d, max(1, len(d) // database_chunk))])
    out_i = np.empty((len(q), k), np.int64)
    out_d = np.empty((len(q), k), np.float64)
    for qs in range(0, len(q), query_chunk):
        qc = q[qs:qs + query_chunk]
        qcc = qc - center
        q_sq = np.einsum("ij,ij->i", qcc, qcc)[:, None]
        best_d = np.full((len(qc), 0), np.inf, np.float32)
        best_i = np.empty((len(qc), 0), np.int64)
        for ds in range(0, len(d), database_chunk):
            dc = d[ds:ds + database_chunk] - center
            dist = q_sq - 2.0 * (qcc @ dc.T) + d_sq[None, ds:ds + database_chunk]
            cand_d = np.concatenate([best_d, dist], axis=1)
            cand_i = np.concatenate(
                [best_i, np.broadcast_to(np.arange(ds, ds + len(dc)), dist.shape)], axis=1)
            if cand_d.shape[1] > keep:
                part = np.argpartition(cand_d, keep - 1, axis=1)[:, :keep]
                cand_d = np.take_along_axis(cand_d, part, axis=1)
                cand_i = np.take_along_axis(cand_i, part, axis=1)
            best_d, best_i = cand_d, cand_i
        # Exact re-ranking of the few survivors (in slices: the differences are [q, keep, D]).
        exact = np.empty(best_i.shape, np.float64)
        for a in range(0, len(qc), 64):
            diff = (qc[a:a + 64, None, :].astype(np.float64)
                    - d[best_i[a:a + 64]].astype(np.float64))
            exact[a:a + 64] = np.sqrt(np.einsum("qkd,qkd->qk", diff, diff))
        order = np.lexsort((best_i, exact), axis=1)[:, :k]
        out_i[qs:qs + len(qc)] = np.take_along_axis(best_i, order, axis=1)
        out_d[qs:qs + len(qc)] = np.take_along_axis(exact, order, axis=1)
    return out_i, out_d


def sprite_sheet(images: np.ndarray, thumb: int) -> np.ndarray:
    """The projector's sprite: thumbnails row-major in a ceil(sqrt(N))-wide square grid."""
    n = len(images)
    side = math.ceil(math.sqrt(n))
    sheet = np.zeros((side * thumb, side * thumb, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, side)
        small = Image.fromarray(np.asarray(image, np.uint8)).resize((thumb, thumb),
                                                                    Image.BILINEAR)
        sheet[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = np.asarray(small)
    return sheet


def write_projector(log_dir: str | os.PathLike, features: np.ndarray, labels: np.ndarray,
                    class_names: Sequence[str], images: np.ndarray | None = None, *,
                    thumb: int = 32) -> Path:
    """Writes `features` for TensorBoard's embedding projector into `log_dir` (replaced whole).

    Files: a checkpoint holding the [N, D] variable `fc7`, `metadata.tsv` (index, label, name),
    optionally `sprite.png` of the `images` (uint8 [N, H, W, 3]), and `projector_config.pbtxt`.
    The directory is built beside `log_dir` and swapped in, so readers never see half of it.
    Run `tensorboard --logdir <log_dir>` and open the Projector tab.
    """
    from tensorboard.plugins import projector

    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (len(features),) or not len(features):
        raise ValueError(f"features {features.shape} must be [N, D] with N > 0 and labels [N]; "
                         f"got labels {labels.shape}.")
    if images is not None and len(images) != len(features):
        raise ValueError(f"{len(images)} sprite images for {len(features)} features.")
    thumb = min(thumb, MAX_SPRITE_SIDE // math.ceil(math.sqrt(len(features))))
    if images is not None and thumb < 1:
        raise ValueError(f"{len(features)} points are too many for one sprite sheet; "
                         "export fewer points or no images.")
    log_dir = Path(log_dir)
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{log_dir.name}.", dir=log_dir.parent))
    try:
        tf.train.Checkpoint(**{PROJECTOR_TENSOR: tf.Variable(features)}).save(
            str(tmp / "embedding.ckpt"))
        with open(tmp / METADATA_FILE, "w") as f:
            f.write("index\tlabel\tname\n")
            for i, y in enumerate(labels):
                f.write(f"{i}\t{int(y)}\t{_tsv(class_names[int(y)])}\n")
        config = projector.ProjectorConfig()
        embedding = config.embeddings.add()
        embedding.tensor_name = f"{PROJECTOR_TENSOR}/.ATTRIBUTES/VARIABLE_VALUE"
        embedding.metadata_path = METADATA_FILE
        if images is not None:
            Image.fromarray(sprite_sheet(images, thumb)).save(tmp / SPRITE_FILE)
            embedding.sprite.image_path = SPRITE_FILE
            embedding.sprite.single_image_dim.extend([thumb, thumb])
        projector.visualize_embeddings(str(tmp), config)
        old = None
        if log_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{log_dir.name}.old.", dir=log_dir.parent))
            os.replace(log_dir, old / "dir")
        os.replace(tmp, log_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return log_dir


def _tsv(text: str) -> str:
    # Tabs and newlines would shift the projector's metadata columns.
    return str(text).replace("\t", " ").replace("\n", " ")
