"""Trains AlexNet with the paper's recipe (Section 5) in the custom loop; resumes if interrupted.

  keras-alexnet train --preset=fashion_mnist_demo --work_dir=runs/fmnist
  keras-alexnet train --preset=paper_imagenet --data=/data/imagenet_prepared \\
      --set model.input_size=227 --set batch_size=256
  tensorboard --logdir runs/fmnist/logs

Rerunning the same command with the same --work_dir continues from the newest checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags, logging

from keras_alexnet import cli
from keras_alexnet.commands import command_line
from keras_alexnet.overrides import apply_overrides
from keras_alexnet.presets import PRESETS, preset
from keras_alexnet.train_config import MODES

_PRESET = flags.DEFINE_enum("preset", "fashion_mnist_demo", sorted(PRESETS),
                            "Starting configuration; --set and the flags below change it.")
_SET = flags.DEFINE_multi_string(
    "set", [], "Override one TrainConfig field, e.g. --set batch_size=64 --set "
    "model.input_size=227 --set max_train_seconds=600. Repeatable.")
_WORK_DIR = flags.DEFINE_string("work_dir", None,
                                "Checkpoints, logs and config.json go here (default: preset's).")
_DATA = flags.DEFINE_string("data", None, "Data spec for keras_alexnet.data.open_source: "
                            "'fashion_mnist', a prepared ImageNet folder, 'folder:/root'.")
_MODE = flags.DEFINE_enum(
    "mode", "single", MODES, "single: one device. towers: the paper's model parallelism, "
    "tower i on GPU i (Section 3.2). mirrored: data parallel over the local GPUs. "
    "multi_worker: data parallel over the machines listed in TF_CONFIG.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False,
                                  "Print the resolved config as JSON and exit.")


def main(argv: list[str]) -> None:
    try:
        config = apply_overrides(preset(_PRESET.value), _SET.value)
        if _WORK_DIR.value:
            config = config.replace(work_dir=_WORK_DIR.value)
        if _DATA.value:
            config = config.replace(data=_DATA.value)
    except ValueError as e:
        raise cli.UsageError(e) from None
    if _PRINT_CONFIG.value:
        print(config.to_json())
        return
    if not config.data:
        raise cli.UsageError(f"Preset {_PRESET.value!r} needs --data (e.g. a folder made by "
                             "keras-alexnet prepare-imagenet, or 'folder:/path/to/imagenet').")
    if Path(config.work_dir).exists() and not Path(config.work_dir).is_dir():
        raise cli.UsageError(f"--work_dir={config.work_dir} is a file; pass a folder for the "
                             "checkpoints, logs and config.json.")
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.train import train

    logging.info("Config:\n%s", config.to_json())
    # Bad TF_CONFIG, unreachable peers, bad config or data, a diverged run: cli.run's one line.
    result = train(config, mode=_MODE.value)
    print(f"Stopped ({result.stop_reason}) at step {result.step}, after {result.epoch} "
          "complete epochs.")
    if result.history:
        last = result.history[-1]
        print(f"Validation top-1 error {100 * last['val_top1_error']:.2f}%, "
              f"top-5 error {100 * last['val_top5_error']:.2f}%")
    print(f"Checkpoints: {result.checkpoint_dir}")
    print(f"View the logs: {command_line('tensorboard')} --logdir {result.log_dir}")


def run() -> None:
    """`keras-alexnet train`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
