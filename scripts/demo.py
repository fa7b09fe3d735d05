"""The README's first command: the offline demo.

Until the training loop lands this builds the paper's network and prints its summary.
"""

from absl import app

import keras_alexnet


def main(argv: list[str]) -> None:
    del argv
    model = keras_alexnet.build_alexnet()
    model.summary(line_length=100)


if __name__ == "__main__":
    app.run(main)
