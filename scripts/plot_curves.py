"""A training run's learning curves (loss, top-1 error, learning rate) as a PNG.

  python scripts/plot_curves.py --logs runs/fashion_mnist_92/logs \\
      --out docs/fashion_mnist_92_curves.png --steps_per_epoch=468

Reads the run's TensorBoard event files (the same numbers `tensorboard --logdir` shows).
"""

from __future__ import annotations

from absl import app, flags

from keras_alexnet.curves import plot_curves, read_scalars

_LOGS = flags.DEFINE_string("logs", None, "A run's logs folder (work_dir/logs).",
                               required=True)
_OUT = flags.DEFINE_string("out", "curves.png", "The PNG to write.")
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch", None, "Plot against epochs (step / this) instead of steps.")
_TITLE = flags.DEFINE_string("title", None, "A title line above the panels.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        scalars = read_scalars(_LOGS.value)
        path = plot_curves(scalars, _OUT.value, steps_per_epoch=_STEPS_PER_EPOCH.value,
                           title=_TITLE.value)
    except (ValueError, ImportError) as e:
        raise app.UsageError(str(e)) from None
    print(f"Wrote {path} ({', '.join(sorted(scalars))})")


if __name__ == "__main__":
    app.run(main)
