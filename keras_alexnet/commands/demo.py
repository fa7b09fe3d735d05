"""The README's first command (`make demo`): the paper's network and recipe on Fashion-MNIST.

Offline: Fashion-MNIST from the Debian package (or the Keras cache), upsampled to 256x256
(Section 2) and trained with the full-size network and Section 5's recipe for a bounded time,
then evaluated on the 10k test images (center crop and ten-crop, Section 4.1) and exported as a
SavedModel. Rerunning continues the same run from its last checkpoint (a fresh --work_dir
starts over).

  keras-alexnet demo                      # about 10 minutes on 2 CPU cores
  keras-alexnet demo --train_minutes=60 --ten_crop_images=0
"""

from __future__ import annotations

import json
import math
import time

from absl import flags, logging

from keras_alexnet import cli
from keras_alexnet.commands import PROGRAM, command_line
from keras_alexnet.files import write_text_atomic
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import preset
from keras_alexnet.train_config import TrainConfig

_TRAIN_MINUTES = flags.DEFINE_float(
    "train_minutes", 7.0, "Training time budget in minutes (evaluation and export come after; "
    "the whole demo takes about 3 minutes more on 2 CPU cores).")
_WORK_DIR = flags.DEFINE_string("work_dir", "runs/demo", "Checkpoints and logs.")
_TEN_CROP_IMAGES = flags.DEFINE_integer(
    "ten_crop_images", 1000, "Evaluate ten-crop on the first N test images (0: all 10000; "
    "ten-crop costs 10 forward passes an image, about 7 minutes for all on 2 CPU cores).")
_EXPORT_ROOT = flags.DEFINE_string("export_root", "savedmodels", "SavedModel export root.")
_SET = flags.DEFINE_multi_string("set", [], "TrainConfig overrides, as in keras-alexnet train.")

# In-loop validation uses part of the test set, to leave the demo's time to training.
_IN_LOOP_EVAL_BATCHES = 16
# Ten-crop images a batch: 100 views a forward pass, under the training batch's 128. Batches
# of 50 images (500 views) took the demo's ten-crop pass to 5.2 GB peak resident memory, 2.6 GB
# with these (docs/PERFORMANCE.md, experiment `demo-memory-ten-crop`).
_TEN_CROP_BATCH = 10


def main(argv: list[str]) -> None:
    config = _demo_config()
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.data import open_source
    from keras_alexnet.train import train

    source = config.open_source()
    # With a validation holdout the trainer validates on training images; the test set is
    # the plain source's eval split (same statistics: see FashionMnistSource).
    test = (open_source(config.data, image_size=config.data_image_size)
            if config.validation_holdout else source)
    logging.info("Training the full-size network for up to %.1f minutes in %s.",
                 _TRAIN_MINUTES.value, config.work_dir)
    start = time.monotonic()
    result = train(config, source=source)
    trained_for = time.monotonic() - start
    center, ten = _evaluate_on_test(result.model, test, config)
    export_dir = _export(result.model, source.info, config)
    summary = {
        "step": result.step, "epoch": result.epoch, "stop_reason": result.stop_reason,
        "train_seconds_this_run": round(trained_for, 1),
        "test_accuracy_center_crop": center.top1_accuracy, "center_crop_images":
        center.num_examples, "test_accuracy_ten_crop": ten.top1_accuracy,
        "ten_crop_images": ten.num_examples, "savedmodel": export_dir,
    }
    write_text_atomic(result.work_dir / "demo_results.json", json.dumps(summary, indent=2) + "\n")
    _print_results(result, config, trained_for, center, ten, export_dir)


def _demo_config() -> TrainConfig:
    """The demo's training run from the flags, checked before TensorFlow loads.

    Raises:
      cli.UsageError: a bad flag or override.
    """
    if _TRAIN_MINUTES.value <= 0 or _TEN_CROP_IMAGES.value < 0:
        raise cli.UsageError("--train_minutes must be > 0 and --ten_crop_images >= 0.")
    try:
        config = apply_overrides(preset("fashion_mnist_demo"), _SET.value).replace(
            work_dir=_WORK_DIR.value, max_train_seconds=60 * _TRAIN_MINUTES.value,
            eval_steps=_IN_LOOP_EVAL_BATCHES)
    except ValueError as e:
        raise cli.UsageError(e) from None
    if _WORK_DIR.value and not _is_dir_or_absent(_WORK_DIR.value):
        raise cli.UsageError(f"--work_dir={_WORK_DIR.value} is a file; pass a folder.")
    return config


def _evaluate_on_test(model, test, config):
    """(center-crop, ten-crop) EvalResults on the test set; ten-crop on --ten_crop_images."""
    from keras_alexnet.evaluate import evaluate

    size = config.model.input_size
    num_eval = test.info.num_eval
    print(f"Evaluating the center crops of {num_eval} test images.", flush=True)
    center = evaluate(model, test.eval_dataset(config.batch_size, size),
                      ten_crop=False, progress=True,
                      num_batches=math.ceil(num_eval / config.batch_size))
    batch = _TEN_CROP_BATCH
    ten_ds = test.eval_dataset(batch, size, ten_crop=True)
    ten_images = min(_TEN_CROP_IMAGES.value or num_eval, num_eval)
    if _TEN_CROP_IMAGES.value:
        ten_ds = ten_ds.take(math.ceil(_TEN_CROP_IMAGES.value / batch))
    print(f"Evaluating ten crops of {ten_images} test images.", flush=True)
    ten = evaluate(model, ten_ds, ten_crop=True, progress=True,
                   num_batches=math.ceil(ten_images / batch))
    return center, ten


def _print_results(result, config, trained_for: float, center, ten, export_dir: str) -> None:
    """The demo's figures, where its files are, and the commands to go on from here."""
    print()
    print(f"Trained to step {result.step} ({result.step * config.batch_size} images seen, "
          f"{trained_for / 60:.1f} min this run; stopped: {result.stop_reason}).")
    print(f"Test accuracy, center crop: {100 * center.top1_accuracy:.2f}% "
          f"({center.num_examples} test images)   [{center.summary()}]")
    print(f"Test accuracy, ten-crop:    {100 * ten.top1_accuracy:.2f}% "
          f"({ten.num_examples} test images)   [{ten.summary()}]")
    print(f"SavedModel: {export_dir}")
    # Commands that run as printed, also outside an activated venv (see command_line).
    program = command_line(PROGRAM)
    print(f"Model: {result.model_path}  (all ten-crops: {program} evaluate "
          f"--checkpoint {result.model_path} --data fashion_mnist --ten_crop)")
    print(f"Logs: {result.log_dir}")
    print(f"View them: {command_line('tensorboard')} --logdir {result.log_dir}")
    print(f"Train longer: {program} demo --work_dir={config.work_dir} "
          "--train_minutes=60   (continues from the last checkpoint)")


def _is_dir_or_absent(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir() or not Path(path).exists()


def _export(model, info, config) -> str:
    from keras_alexnet.export import default_model_name, export_savedmodel

    path = export_savedmodel(model, export_root=_EXPORT_ROOT.value,
                             name=default_model_name(config.data),
                             class_names=info.class_names, mean_image=info.mean_image,
                             config=config.model, progress=True)
    return str(path)


def run() -> None:
    """`keras-alexnet demo`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
