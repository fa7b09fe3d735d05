"""Imports Caffe's trained AlexNet (bvlc_alexnet or CaffeNet) as a run directory of this package.

  python scripts/import_caffe.py --caffemodel=bvlc_alexnet.caffemodel \\
      --mean=imagenet_mean.binaryproto --synset_words=synset_words.txt --out=runs/bvlc_alexnet

Writes OUT/model.keras, OUT/config.json, the mean image (RGB, 256x256x3) and the class names,
so that scripts/export.py --model=OUT/model.keras and scripts/visualize.py --what=kernels need
no other flags, and scripts/evaluate.py --checkpoint=OUT/model.keras --data=<prepared ImageNet>
scores it. Without --mean, the model zoo's per-channel BGR mean (104, 117, 123) is used.
Exit codes: 0 done, 1 a bad input file (nothing written as model.keras), 2 bad flags.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

_CAFFEMODEL = flags.DEFINE_string("caffemodel", None, "bvlc_alexnet.caffemodel (or CaffeNet's).")
_MEAN = flags.DEFINE_string(
    "mean", None, "imagenet_mean.binaryproto (BGR); default: the per-channel mean (104, 117, 123).")
_SYNSET_WORDS = flags.DEFINE_string(
    "synset_words", None, "synset_words.txt: one 'wnid names' line per class, in class order; "
    "default: the class indices as names.")
_OUT = flags.DEFINE_string("out", None, "Directory to write (created if needed).")


def _usage(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _usage(f"unexpected arguments {argv[1:]}")
    if not _CAFFEMODEL.value or not _OUT.value:
        _usage("pass --caffemodel=FILE.caffemodel and --out=DIR.")
    # Keras (and its backend) loads here, after the flag checks.
    from keras_alexnet.caffe import write_caffe_run

    try:
        path = write_caffe_run(_CAFFEMODEL.value, _OUT.value, mean=_MEAN.value,
                               synset_words=_SYNSET_WORDS.value)
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    logging.info("Wrote %s", path)
    print(path)


if __name__ == "__main__":
    app.run(main)
