"""Exports a trained AlexNet as a SavedModel for TF Serving: savedmodels/<name>/<version>/.

  keras-alexnet export --model runs/a/model.keras --data fashion_mnist
  keras-alexnet export --checkpoint runs/alexnet/checkpoints --ten_crop   # data from the run
"""

from __future__ import annotations

from absl import flags, logging

from keras_alexnet import cli
from keras_alexnet.precision import PRECISIONS
from keras_alexnet.run_files import check_model_path

_MODEL = flags.DEFINE_string("model", None, "A .keras model file (model.save).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "A training checkpoint directory (work_dir/checkpoints) or prefix; "
    "the model config comes from the run's config.json.")
_DATA = flags.DEFINE_string(
    "data", None, "Source spec (keras_alexnet.data.open_source) giving the class names and the "
    "mean image; default: the training run's data (config.json beside the model).")
_EXPORT_ROOT = flags.DEFINE_string("export_root", "savedmodels", "TF Serving model base path.")
_NAME = flags.DEFINE_string(
    "name", None, "Model name: the directory under export_root; default: named after the data "
    "(fashion_mnist, imagenet2012 for tfds:imagenet2012, else alexnet).")
_VERSION = flags.DEFINE_integer("version", None, "Version number; default: the next free one.")
_TEN_CROP = flags.DEFINE_bool(
    "ten_crop", False, "Serve the average over ten crops (Section 4.1) instead of the center.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", list(PRECISIONS),
    "What the signatures compute in: float32 (whatever the model was trained in), or "
    "mixed_bfloat16 (bf16 convolutions and matmuls; fc8, LRN and the softmax in float32).")


def main(argv: list[str]) -> None:
    if (_MODEL.value is None) == (_CHECKPOINT.value is None):
        raise cli.UsageError("Pass exactly one of --model (.keras) or --checkpoint (directory).")
    if _VERSION.value is not None and _VERSION.value < 1:
        raise cli.UsageError(f"--version={_VERSION.value} must be at least 1.")
    check_model_path(_MODEL.value or _CHECKPOINT.value)  # before TF's start-up
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet import export, loading

    model_path = _MODEL.value or _CHECKPOINT.value
    # First: a missing model matters more than data.
    model = loading.load_model(model_path, precision=_PRECISION.value)
    # The class names and mean image come from the data.
    data = loading.run_data_spec(model_path, _DATA.value)
    info = loading.open_run_data(model_path, data).info
    path = export.export_savedmodel(
        model, _EXPORT_ROOT.value, _NAME.value or export.default_model_name(data),
        _VERSION.value, class_names=info.class_names, wnids=info.wnids,
        mean_image=info.mean_image, ten_crop=_TEN_CROP.value, progress=True)
    logging.info("SavedModel written to %s", path)
    print(path)


def run() -> None:
    """`keras-alexnet export`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
