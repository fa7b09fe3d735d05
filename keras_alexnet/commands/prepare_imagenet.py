"""Prepares ImageNet (or any folder in its layout) as 256x256 TFRecord shards + statistics.

  keras-alexnet prepare-imagenet --input_dir=/data/imagenet --output_dir=/data/prepared

Re-running the same command resumes: finished shards are kept. Exit status 1 when more than
--max_broken_fraction of the files are broken or a class lost all its images, 2 on bad input.
"""

from __future__ import annotations

from absl import flags

from keras_alexnet import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "ImageNet root holding train/<wnid>/ and val/.")
flags.DEFINE_string("output_dir", None, "Folder for the shards and statistics.")
flags.DEFINE_string("val_labels", None, "Devkit ILSVRC2012_validation_ground_truth.txt for a "
                    "flat val/ folder (default: looked up under input_dir).")
flags.DEFINE_string("val_synsets", None, "meta.mat (needs scipy) or a file with one wnid per "
                    "line in ILSVRC2012_ID order, mapping ground-truth IDs to wnids.")
flags.DEFINE_string("synset_words", None, "'wnid name' lines for class names (default: "
                    "synset_words.txt or LOC_synset_mapping.txt under input_dir).")
flags.DEFINE_integer("image_size", None, "Stored image size; default: Section 2's 256.")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality of the stored images.")
flags.DEFINE_integer("images_per_shard", 1024, "Images per TFRecord shard.")
flags.DEFINE_integer("num_workers", 0, "Worker processes; 0 = all cores.")
flags.DEFINE_float("max_broken_fraction", 0.001, "Fail if more files than this are broken.")
flags.DEFINE_bool("allow_empty_classes", False, "Accept class folders with no images.")


def main(argv: list[str]) -> None:
    if not FLAGS.input_dir or not FLAGS.output_dir:
        raise cli.UsageError("--input_dir and --output_dir are required.")
    cli.load_tensorflow()  # after the flag checks
    from keras_alexnet.data.prepare import NoTrainingImagesError, prepare_imagenet

    size = {} if FLAGS.image_size is None else {"image_size": FLAGS.image_size}
    try:
        result = prepare_imagenet(
            FLAGS.input_dir, FLAGS.output_dir, val_labels=FLAGS.val_labels,
            val_synsets=FLAGS.val_synsets, synset_words=FLAGS.synset_words,
            jpeg_quality=FLAGS.jpeg_quality, images_per_shard=FLAGS.images_per_shard,
            num_workers=FLAGS.num_workers, allow_empty_classes=FLAGS.allow_empty_classes,
            **size)
    except NoTrainingImagesError as e:  # the files, not the command
        raise cli.RunError(e) from None
    except ValueError as e:  # a layout or flag it cannot use, found before any work
        raise cli.UsageError(e) from None
    print(result.summary())
    problems = []
    if result.broken_fraction > FLAGS.max_broken_fraction:
        problems.append(f"{len(result.broken)} of {result.num_files} files are broken, more "
                        f"than --max_broken_fraction={FLAGS.max_broken_fraction}")
    if result.classes_without_images and not FLAGS.allow_empty_classes:
        problems.append(f"no readable train images in {len(result.classes_without_images)} "
                        f"classes, e.g. {result.classes_without_images[0]}")
    if problems:
        raise cli.RunError(f"{'; '.join(problems)} (see {result.output_dir}/broken.tsv).")


def run() -> None:
    """`keras-alexnet prepare-imagenet`: parses the flags and runs `main`."""
    cli.run(main)


if __name__ == "__main__":
    run()
