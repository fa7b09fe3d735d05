"""Transfer on Fashion-MNIST: pre-train on classes 0-4, fine-tune on 5-9 from few labels.

  python scripts/transfer_demo.py --work_dir=runs/transfer --seeds=3
  python scripts/transfer_demo.py --work_dir=runs/transfer_60 --epochs=20 \\
      --pretrained=runs/transfer/pretrain      # a shorter budget from the same pre-training

Runs (each one `scripts/train.py --preset=fashion_mnist_transfer` run; the equivalent
commands are printed): a pre-training run on classes 0-4, then per seed a fine-tuning run
(from the pre-trained model, all layers trained) and a from-scratch run on the same
`--per_class` labelled images of classes 5-9 for the same number of steps. Reports the top-1
accuracy of each on the 5,000 test images of classes 5-9, and writes WORK_DIR/results.json.
Rerunning resumes: finished runs are only re-evaluated.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from absl import flags

from keras_alexnet import cli

_WORK_DIR = flags.DEFINE_string("work_dir", "runs/transfer", "Every run's folder goes here.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Fine-tuned and scratch runs per seed 0..N-1.",
                              lower_bound=1)
_PRETRAIN_EPOCHS = flags.DEFINE_integer("pretrain_epochs", 3, "Epochs on classes 0-4.",
                                        lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", 50, "Epochs of the fine-tuned and scratch runs "
                               "(3 steps each with 100 images per class).", lower_bound=1)
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Labelled training images per new class.",
                                  lower_bound=1)
_PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "A finished pre-training run to fine-tune from (e.g. another budget's "
    "WORK_DIR/pretrain); default: pre-train in WORK_DIR/pretrain.")
_FREEZE = flags.DEFINE_string("freeze", "", "Layers the fine-tuned runs keep, e.g. conv1,conv2.")

PRESET = "fashion_mnist_transfer"
OLD, NEW = "0,1,2,3,4", "5,6,7,8,9"


def runs(work_dir: str) -> dict[str, list[str]]:
    """Run name -> its --set overrides, in the order they must run."""
    pre = _PRETRAINED.value or f"{work_dir}/pretrain"
    out = {} if _PRETRAINED.value else {
        "pretrain": [f"data_classes={OLD}", f"epochs={_PRETRAIN_EPOCHS.value}"]}
    small = [f"data_classes={NEW}", f"train_per_class={_PER_CLASS.value}",
             f"epochs={_EPOCHS.value}"]
    for seed in range(_SEEDS.value):
        out[f"finetune_s{seed}"] = [*small, f"seed={seed}", f"init_from={pre}"] + (
            [f"freeze={_FREEZE.value}"] if _FREEZE.value else [])
        out[f"scratch_s{seed}"] = [*small, f"seed={seed}"]
    return out


def main(argv: list[str]) -> None:
    del argv  # cli.run refuses positional arguments
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.evaluate import evaluate
    from keras_alexnet.files import write_text_atomic
    from keras_alexnet.overrides import apply_overrides
    from keras_alexnet.presets import preset
    from keras_alexnet.train import train

    results = {}
    for name, overrides in runs(_WORK_DIR.value).items():
        work_dir = f"{_WORK_DIR.value}/{name}"
        print(f"python scripts/train.py --preset={PRESET} --work_dir={work_dir} "
              + " ".join(f"--set {o}" for o in overrides), flush=True)
        config = apply_overrides(preset(PRESET).replace(work_dir=work_dir), overrides)
        result = train(config)
        # The whole test split of the run's classes (no holdout, no per-class subset).
        test = config.replace(validation_holdout=0, train_per_class=None).open_source()
        ev = evaluate(result.model, test.eval_dataset(256, config.model.input_size),
                      ten_crop=False)
        results[name] = {"test_top1_accuracy": ev.top1_accuracy, "test_images": ev.num_examples,
                         "steps": result.step, "overrides": overrides}
        print(f"  {name}: step {result.step}, test top-1 accuracy "
              f"{100 * ev.top1_accuracy:.2f}% on {ev.num_examples} images", flush=True)
    for kind in ("finetune", "scratch"):
        accs = [100 * r["test_top1_accuracy"] for n, r in results.items() if n.startswith(kind)]
        spread = f" +- {statistics.stdev(accs):.2f} (sd)" if len(accs) > 1 else ""
        print(f"{kind}: mean {statistics.mean(accs):.2f}%{spread} over {len(accs)} seeds: "
              + ", ".join(f"{a:.2f}" for a in accs))
    write_text_atomic(Path(_WORK_DIR.value, "results.json"), json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main)
