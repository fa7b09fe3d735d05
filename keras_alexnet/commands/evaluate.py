"""Top-1/top-5 error of one model, or the average of several (Table 2), on a dataset's eval split.

  keras-alexnet evaluate --checkpoint runs/a/model.keras --data <source spec> --ten_crop
  keras-alexnet evaluate --checkpoint a.keras --checkpoint b.keras --data <spec>  # ensemble
"""

from __future__ import annotations

import math

from absl import flags, logging

from keras_alexnet import cli
from keras_alexnet.precision import PRECISIONS
from keras_alexnet.run_files import check_model_path

_CHECKPOINT = flags.DEFINE_multi_string(
    "checkpoint", None, "Model to evaluate: a .keras file or a training run's checkpoints/ "
    "directory (its newest checkpoint); repeat to average several models.",
    required=True,
)
_DATA = flags.DEFINE_string(
    "data", None, "Source spec for keras_alexnet.data.open_source; default: the training run's "
    "data (config.json beside the first --checkpoint)."
)
_CENTER_CROP = flags.DEFINE_bool("center_crop", True, "Evaluate on the center crop.")
_PRECISION = flags.DEFINE_enum(
    "precision", None, list(PRECISIONS),
    "Compute in this precision; default: the one each model was trained in.")
_TEN_CROP = flags.DEFINE_bool(
    "ten_crop", False, "Also evaluate averaging the softmax over ten crops (Section 4.1)."
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Images per batch (ten-crop runs 10x as many through the network)."
)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Stored image size the data is resized to before cropping; default: "
    "the training run's (config.json beside the first --checkpoint), else the source's.")
_PER_CLASS_CSV = flags.DEFINE_string(
    "per_class_csv", None, "Write per-class accuracy here (of the ten-crop run if there is one)."
)


def main(argv: list[str]) -> None:
    if not (_CENTER_CROP.value or _TEN_CROP.value):
        raise cli.UsageError("Nothing to do: pass --center_crop and/or --ten_crop.")
    if _BATCH_SIZE.value < 1:
        raise cli.UsageError(f"--batch_size={_BATCH_SIZE.value} must be at least 1.")
    if _IMAGE_SIZE.value is not None and _IMAGE_SIZE.value < 1:
        raise cli.UsageError(f"--image_size={_IMAGE_SIZE.value} must be at least 1.")
    for path in _CHECKPOINT.value:
        check_model_path(path)  # before TF's start-up
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.evaluate import evaluate, write_per_class_csv
    from keras_alexnet.loading import load_model, open_run_data

    models = [load_model(path, precision=_PRECISION.value) for path in _CHECKPOINT.value]
    input_size = models[0].input_shape[1]
    if any(m.input_shape != models[0].input_shape for m in models):
        raise cli.UsageError("All --checkpoint models must take the same input shape.")
    source = open_run_data(_CHECKPOINT.value[0], _DATA.value, _IMAGE_SIZE.value)
    data = _DATA.value or "the run's data"
    if source.info.image_size < input_size:
        raise cli.UsageError(
            f"Images of {data} are stored at {source.info.image_size} pixels, smaller than the "
            f"model's {input_size}-pixel crops; pass --image_size={input_size} or larger.")
    num_outputs = models[0].output_shape[-1]
    if num_outputs != source.info.num_classes:
        raise cli.UsageError(
            f"The model has {num_outputs} outputs but {data} has {source.info.num_classes} "
            "classes; pass the --data it was trained on.")
    result = None
    for ten_crop in [False] * _CENTER_CROP.value + [True] * _TEN_CROP.value:
        dataset = source.eval_dataset(_BATCH_SIZE.value, input_size, ten_crop=ten_crop)
        result = evaluate(models, dataset, ten_crop=ten_crop, progress=True,
                          num_batches=math.ceil(source.info.num_eval / _BATCH_SIZE.value))
        print(result.summary(), flush=True)
    if _PER_CLASS_CSV.value:
        path = write_per_class_csv(result, source.info.class_names, _PER_CLASS_CSV.value)
        logging.info("Per-class accuracy written to %s", path)


def run() -> None:
    """`keras-alexnet evaluate`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
