"""A training run's learning curves (loss, top-1 error, learning rate) as a PNG.

  keras-alexnet plot-curves --logs runs/fashion_mnist_92/logs \\
      --out docs/fashion_mnist_92_curves.png --steps_per_epoch=468

Reads the run's TensorBoard event files (the same numbers `tensorboard --logdir` shows).
"""

from __future__ import annotations

from absl import flags

from keras_alexnet import cli

_LOGS = flags.DEFINE_string("logs", None, "A run's logs folder (work_dir/logs).",
                               required=True)
_OUT = flags.DEFINE_string("out", "curves.png", "The PNG to write.")
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch", None, "Plot against epochs (step / this) instead of steps.")
_TITLE = flags.DEFINE_string("title", None, "A title line above the panels.")


def main(argv: list[str]) -> None:
    if _STEPS_PER_EPOCH.value is not None and _STEPS_PER_EPOCH.value < 1:
        raise cli.UsageError(f"--steps_per_epoch={_STEPS_PER_EPOCH.value} must be at least 1.")
    from keras_alexnet.curves import plot_curves, read_scalars  # after the flag checks

    try:
        scalars = read_scalars(_LOGS.value)
        path = plot_curves(scalars, _OUT.value, steps_per_epoch=_STEPS_PER_EPOCH.value,
                           title=_TITLE.value)
    except ImportError as e:  # no tensorboard / matplotlib: the install, not the run
        raise cli.RunError(e) from None
    print(f"Wrote {path} ({', '.join(sorted(scalars))})")


def run() -> None:
    """`keras-alexnet plot-curves`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
