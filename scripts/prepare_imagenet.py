"""Prepares ImageNet (or any folder in its layout) as 256x256 TFRecord shards + statistics.

  python scripts/prepare_imagenet.py --input_dir=/data/imagenet --output_dir=/data/prepared

Re-running the same command resumes: finished shards are kept. Exit status 1 when more than
--max_broken_fraction of the files are broken or a class lost all its images, 2 on bad input.
"""

from __future__ import annotations

import sys

from absl import app, flags

from keras_alexnet.data.augment import PAPER

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "ImageNet root holding train/<wnid>/ and val/.")
flags.DEFINE_string("output_dir", None, "Folder for the shards and statistics.")
flags.DEFINE_string("val_labels", None, "Devkit ILSVRC2012_validation_ground_truth.txt for a "
                    "flat val/ folder (default: looked up under input_dir).")
flags.DEFINE_string("val_synsets", None, "meta.mat (needs scipy) or a file with one wnid per "
                    "line in ILSVRC2012_ID order, mapping ground-truth IDs to wnids.")
flags.DEFINE_string("synset_words", None, "'wnid name' lines for class names (default: "
                    "synset_words.txt or LOC_synset_mapping.txt under input_dir).")
flags.DEFINE_integer("image_size", PAPER.image_size, "Stored image size (Section 2: 256).")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of the stored images.")
flags.DEFINE_integer("images_per_shard", 1024, "Images per TFRecord shard.")
flags.DEFINE_integer("num_workers", 0, "Worker processes; 0 = all cores.")
flags.DEFINE_float("max_broken_fraction", 0.001, "Fail if more files than this are broken.")
flags.DEFINE_bool("allow_empty_classes", False, "Accept class folders with no images.")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.input_dir or not FLAGS.output_dir:
        sys.stderr.write("error: --input_dir and --output_dir are required\n")
        return 2
    from keras_alexnet.data.prepare import prepare_imagenet

    try:
        result = prepare_imagenet(
            FLAGS.input_dir, FLAGS.output_dir, val_labels=FLAGS.val_labels,
            val_synsets=FLAGS.val_synsets, synset_words=FLAGS.synset_words,
            image_size=FLAGS.image_size, jpeg_quality=FLAGS.jpeg_quality,
            images_per_shard=FLAGS.images_per_shard, num_workers=FLAGS.num_workers,
            allow_empty_classes=FLAGS.allow_empty_classes)
    except ValueError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    print(result.summary())
    status = 0
    if result.broken_fraction > FLAGS.max_broken_fraction:
        sys.stderr.write(f"error: {len(result.broken)} of {result.num_files} files are broken, "
                         f"more than --max_broken_fraction={FLAGS.max_broken_fraction}\n")
        status = 1
    if result.classes_without_images and not FLAGS.allow_empty_classes:
        sys.stderr.write(f"error: no readable train images in "
                         f"{len(result.classes_without_images)} classes, e.g. "
                         f"{result.classes_without_images[0]}\n")
        status = 1
    return status


if __name__ == "__main__":
    app.run(main)
