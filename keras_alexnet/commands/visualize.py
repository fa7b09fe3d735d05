"""The paper's figures for a trained model: conv1 kernels (Figure 3), top-5 predictions and fc7
nearest neighbours (Figure 4), and the fc7 embedding for TensorBoard's projector.

  keras-alexnet visualize --model runs/a/model.keras --data fashion_mnist --out_dir figures
  keras-alexnet visualize --checkpoint runs/alexnet/checkpoints --out_dir figures \\
      --what=kernels,neighbours --max_database=20000

Writes PNGs into --out_dir, the same images as TensorBoard summaries into out_dir/tensorboard,
and the projector files into out_dir/projector (`tensorboard --logdir out_dir/projector`).
"""

from __future__ import annotations

import math
from pathlib import Path

from absl import flags, logging

from keras_alexnet import cli
from keras_alexnet.run_files import check_model_path

WHAT = ("kernels", "predictions", "neighbours", "projector")
# Pixels per image in the neighbour figure: wide enough for a "neighbour 6" title.
NEIGHBOUR_THUMB = 96

_MODEL = flags.DEFINE_string("model", None, "A .keras model file (model.save).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A training checkpoint directory (work_dir/checkpoints) or prefix.")
_DATA = flags.DEFINE_string(
    "data", None, "Source spec (keras_alexnet.data.open_source); default: the run's data.")
_OUT_DIR = flags.DEFINE_string("out_dir", "figures", "Where the figures are written.")
_WHAT = flags.DEFINE_list("what", list(WHAT), f"Any of {', '.join(WHAT)}.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch for feature extraction.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 8, "Eval images in the prediction sheet.")
_NUM_QUERIES = flags.DEFINE_integer("num_queries", 5, "Eval images queried for neighbours.")
_K = flags.DEFINE_integer("k", 6, "Neighbours per query (Figure 4 shows 6).")
_MAX_DATABASE = flags.DEFINE_integer(
    "max_database", 0, "Search only the first N training images (0: all of them).")
_PROJECTOR_POINTS = flags.DEFINE_integer(
    "projector_points", 2000, "Eval images embedded in the projector (with a sprite sheet).")


def main(argv: list[str]) -> None:
    if (_MODEL.value is None) == (_CHECKPOINT.value is None):
        raise cli.UsageError("Pass exactly one of --model (.keras) or --checkpoint (directory).")
    what = set(_WHAT.value)
    if not what or what - set(WHAT):
        raise cli.UsageError(f"--what={','.join(_WHAT.value)}: choose from {', '.join(WHAT)}.")
    for flag in (_BATCH_SIZE, _NUM_IMAGES, _NUM_QUERIES, _K, _PROJECTOR_POINTS):
        if flag.value < 1:
            raise cli.UsageError(f"--{flag.name}={flag.value} must be at least 1.")
    if _MAX_DATABASE.value < 0:
        raise cli.UsageError(f"--max_database={_MAX_DATABASE.value} must be at least 0.")
    check_model_path(_MODEL.value or _CHECKPOINT.value)  # before TF's start-up
    cli.load_tensorflow()  # after the flag checks
    import numpy as np

    from keras_alexnet import analysis, loading

    out = Path(_OUT_DIR.value)
    tb_dir = out / "tensorboard"
    model = loading.load_model(_MODEL.value or _CHECKPOINT.value)

    figures: dict[str, np.ndarray] = {}

    def save(figure: np.ndarray, name: str) -> None:
        logging.info("Wrote %s", analysis.write_png(figure, out / f"{name}.png"))
        figures[name] = figure

    if "kernels" in what:
        save(analysis.kernel_grid(analysis.conv1_kernels(model),
                                  devices=getattr(model, "tower_devices", None)),
             "figure3_conv1_kernels")
    if what - {"kernels"}:
        _data_figures(model, what, out, save)
    if figures:
        analysis.write_image_summaries(tb_dir, figures)
        logging.info("TensorBoard images in %s", tb_dir)


def _data_figures(model, what: set[str], out: Path, save) -> None:
    """Figure 4 and the projector: everything that needs the data."""
    import tensorflow as tf

    from keras_alexnet import loading
    from keras_alexnet.data import augment

    try:
        source = loading.open_run_data(_MODEL.value or _CHECKPOINT.value, _DATA.value)
    except ValueError as e:
        raise cli.RunError(f"{cli.message(e)[:-1]} (predictions, neighbours and the projector "
                           "need data).") from None
    size, bs = model.alexnet_config.input_size, _BATCH_SIZE.value
    mean_crop = augment.center_crop(tf.constant(source.info.mean_image), size).numpy()
    evals = source.eval_dataset(bs, size)
    if "predictions" in what:
        images = _first(evals, _NUM_IMAGES.value, bs).rebatch(_NUM_IMAGES.value)
        save(_prediction_sheet(model, images, mean_crop, source.info.class_names),
             "figure4_predictions")
    if "neighbours" in what:
        save(_neighbours_figure(model, source, _first(evals, _NUM_QUERIES.value, bs), mean_crop),
             "figure4_neighbours")
    if "projector" in what:
        _write_projector(model, source.info, _first(evals, _PROJECTOR_POINTS.value, bs),
                         mean_crop, out / "projector")


def _first(dataset, n: int, batch_size: int):
    """The first `n` examples of a batched dataset, in batches of `batch_size`."""
    return dataset.unbatch().take(n).batch(batch_size)


def _prediction_sheet(model, batch, mean_crop, names: list[str]):
    """Figure 4 (left): each image of `batch` (one batch) with its top-5 predictions."""
    import numpy as np
    import tensorflow as tf

    from keras_alexnet import analysis

    images, labels = next(iter(batch))
    probs = model(images, training=False)
    if model.alexnet_config.classifier_activation is None:
        probs = tf.nn.softmax(probs)
    return analysis.prediction_sheet(analysis.display_images(images.numpy(), mean_crop),
                                     np.asarray(probs), labels.numpy(), names)


def _neighbours_figure(model, source, queries, mean_crop):
    """Figure 4 (right): each query and the training images nearest to it in fc7 space."""
    import numpy as np

    from keras_alexnet import analysis, retrieval

    info, bs, names = source.info, _BATCH_SIZE.value, source.info.class_names
    q_feat, q_labels = retrieval.extract_features(model, queries, progress=False)
    # Center crops of the training images in a fixed order, so a second pass finds them.
    train = source.train_dataset(bs, model.alexnet_config.input_size, seed=0, augment=False,
                                 drop_remainder=False)
    if _MAX_DATABASE.value:
        train = train.take(math.ceil(_MAX_DATABASE.value / bs))
    logging.info("Extracting fc7 features of the training images.")
    total = math.ceil(min(_MAX_DATABASE.value or info.num_train, info.num_train) / bs)
    db_feat, db_labels = retrieval.extract_features(model, train, progress=True,
                                                    num_batches=total)
    k = min(_K.value, len(db_feat))
    idx, _ = retrieval.nearest_neighbors(q_feat, db_feat, k)
    shown = analysis.display_images(retrieval.gather_images(train, idx.ravel()), mean_crop)
    query_images = analysis.display_images(
        np.concatenate([x.numpy() for x, _ in queries]), mean_crop)
    rows = [[query_images[i], *shown[i * k:(i + 1) * k]] for i in range(len(idx))]
    captions = [[names[q_labels[i]], *(names[j] for j in db_labels[idx[i]])]
                for i in range(len(idx))]
    titles = ["query", *(f"neighbour {j}" for j in range(1, k + 1))]
    return analysis.image_grid(rows, thumb=NEIGHBOUR_THUMB, column_titles=titles,
                               captions=captions)


def _write_projector(model, info, points, mean_crop, out: Path) -> None:
    """fc7 features of `points`, with their labels and thumbnails, for TensorBoard's projector."""
    import numpy as np

    from keras_alexnet import analysis, retrieval

    logging.info("Extracting fc7 features for the projector.")
    feats, labels = retrieval.extract_features(
        model, points, progress=True,
        num_batches=math.ceil(min(_PROJECTOR_POINTS.value, info.num_eval) / _BATCH_SIZE.value))
    # Thumbnails batch by batch: thousands of full-size crops would not fit in memory.
    images = np.concatenate([
        analysis.thumbnails(analysis.display_images(x.numpy(), mean_crop), 32)
        for x, _ in points])
    logging.info("Projector files in %s",
                 retrieval.write_projector(out, feats, labels, info.class_names, images))


def run() -> None:
    """`keras-alexnet visualize`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
