"""Imports Caffe's trained AlexNet (bvlc_alexnet or CaffeNet) as a run directory of this package.

  keras-alexnet import-caffe --caffemodel=bvlc_alexnet.caffemodel \\
      --mean=imagenet_mean.binaryproto --synset_words=synset_words.txt --out=runs/bvlc_alexnet

Writes OUT/model.keras, OUT/config.json, the mean image (RGB, 256x256x3) and the class names,
so that keras-alexnet export --model=OUT/model.keras and keras-alexnet visualize --what=kernels need
no other flags, and keras-alexnet evaluate --checkpoint=OUT/model.keras --data=<prepared ImageNet>
scores it. Without --mean, the model zoo's per-channel BGR mean (104, 117, 123) is used.
Exit codes: 0 done, 1 a bad input file (nothing written as model.keras), 2 bad flags.
"""

from __future__ import annotations

from absl import flags, logging

from keras_alexnet import cli

_CAFFEMODEL = flags.DEFINE_string("caffemodel", None, "bvlc_alexnet.caffemodel (or CaffeNet's).")
_MEAN = flags.DEFINE_string(
    "mean", None, "imagenet_mean.binaryproto (BGR); default: the per-channel mean (104, 117, 123).")
_SYNSET_WORDS = flags.DEFINE_string(
    "synset_words", None, "synset_words.txt: one 'wnid names' line per class, in class order; "
    "default: the class indices as names.")
_OUT = flags.DEFINE_string("out", None, "Directory to write (created if needed).")


def main(argv: list[str]) -> None:
    if not _CAFFEMODEL.value or not _OUT.value:
        raise cli.UsageError("Pass --caffemodel=FILE.caffemodel and --out=DIR.")
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.caffe_import import write_caffe_run

    # A bad file is a ValueError (one line naming the layer): cli.run's exit 1.
    path = write_caffe_run(_CAFFEMODEL.value, _OUT.value, mean=_MEAN.value,
                           synset_words=_SYNSET_WORDS.value)
    logging.info("Wrote %s", path)
    print(path)


def run() -> None:
    """`keras-alexnet import-caffe`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
