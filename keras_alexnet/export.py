"""SavedModel export for serving (TF Serving layout), and loading trained models to export.

The exported graph carries the paper's test preprocessing (Sections 2 and 4.1), so a client
sends encoded image bytes and gets the top-5 classes back. It loads with plain
`tf.saved_model.load`; keras_alexnet is not needed to serve it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from keras_alexnet.config import AlexNetConfig
from keras_alexnet.data import augment as aug
from keras_alexnet.data.pipeline import augment_center
from keras_alexnet.data.sources import resize_and_center_crop
from keras_alexnet.evaluate import top5_k
from keras_alexnet.layers import portable_lrn
from keras_alexnet.model import AlexNet
from keras_alexnet.progress import phase

CONFIG_ASSET = "config.json"
CLASS_INDEX_ASSET = "class_index.tsv"
# Leading bytes of the formats tf.io.decode_image reads; checked first so that a request with
# non-image bytes fails with a message saying so, rather than an opaque codec error.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"RIFF",
          b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")  # the last two: JPEG XL, bare and boxed
# Name scope of the decode op: TF names the failing node in its error message, so codec
# errors on truncated files also read "could_not_decode_image".
_DECODE_SCOPE = "could_not_decode_image"


def feature_model(model: keras.Model) -> keras.Model:
    """A model from the same input to the fc7 activations (after ReLU, before dropout)."""
    try:
        fc7 = model.get_layer("fc7").output
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no layer named 'fc7'; build it with build_alexnet."
        ) from None
    return keras.Model(model.inputs, fc7, name=f"{model.name}_fc7")


def decode_and_resize(data: tf.Tensor, index: tf.Tensor, image_size: int) -> tf.Tensor:
    """One encoded image (JPEG/PNG/GIF/BMP/WebP/JPEG XL, gray or color) -> uint8 [size, size, 3].

    Section 2's down-sampling (shorter side to `image_size`, central crop), the same function
    the data pipeline applies to raw ImageNet files.

    Raises (when run): InvalidArgumentError saying the image could not be decoded.
    """
    head = tf.strings.substr(data, 0, 8)
    known = tf.reduce_any([tf.strings.substr(head, 0, len(m)) == m for m in _MAGIC])
    check = tf.debugging.Assert(
        known,
        ["Image could not be decoded: request element", index,
         "is not a JPEG, PNG, GIF, BMP, WebP or JPEG XL image (first bytes, hex:",
         _hex(head), ")"],
        name="image_could_not_be_decoded",
    )
    with tf.control_dependencies([check]), tf.name_scope(_DECODE_SCOPE):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return tf.ensure_shape(resize_and_center_crop(image, image_size), [image_size, image_size, 3])


def _hex(data: tf.Tensor) -> tf.Tensor:
    """A short byte string as hex digits ("ff d8 ff e0"): the check's message must be UTF-8
    whatever a client sent (raw bytes there made Python clients raise UnicodeDecodeError)."""
    digits = tf.constant([f"{i:02x}" for i in range(256)])
    values = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
    return tf.strings.reduce_join(tf.gather(digits, values), separator=" ")


class _ServingModule(tf.Module):
    """What the SavedModel holds: the network, its fc7 head, constants and assets."""

    def __init__(self, model: keras.Model, config: AlexNetConfig, class_names: Sequence[str],
                 mean_image: np.ndarray, ten_crop: bool, asset_dir: Path) -> None:
        super().__init__(name="alexnet_serving")
        self.model = model
        self.fc7_model = feature_model(model)
        self.config_asset = tf.saved_model.Asset(str(asset_dir / CONFIG_ASSET))
        self.class_index_asset = tf.saved_model.Asset(str(asset_dir / CLASS_INDEX_ASSET))
        self._logits = config.classifier_activation is None
        self._ten_crop = ten_crop
        self._size = config.input_size
        self._image_size = int(mean_image.shape[0])
        self._mean = tf.constant(mean_image, tf.float32)
        self._names = tf.constant(list(class_names), tf.string)
        self._k = top5_k(config.num_classes)  # serve the paper's top-5
        self._widths = {"probabilities": config.num_classes, "fc7": config.fc_units[-1]}

    def probabilities(self, images: tf.Tensor) -> tf.Tensor:
        out = tf.cast(self.model(images, training=False), tf.float32)
        return tf.nn.softmax(out, axis=-1) if self._logits else out

    def views(self, data: tf.Tensor) -> tf.Tensor:
        """Encoded bytes [B] -> mean-subtracted views [B, S, S, 3] (or [B, 10, S, S, 3])."""
        shape = [10, self._size, self._size, 3] if self._ten_crop else [self._size] * 2 + [3]

        def one(args):
            image = tf.cast(decode_and_resize(args[0], args[1], self._image_size), tf.float32)
            # As the evaluation pipeline does (data/pipeline.py, Source.eval_dataset).
            if self._ten_crop:
                return aug.ten_crop(image - self._mean, self._size)
            return augment_center(image, self._mean, self._size)

        # map_fn, not a batched op: every request image has its own size until resized.
        index = tf.range(tf.shape(data)[0])
        return tf.map_fn(one, (data, index), fn_output_signature=tf.TensorSpec(shape, tf.float32))

    def classify(self, data: tf.Tensor) -> dict[str, tf.Tensor]:
        views = self.views(data)
        if self._ten_crop:
            flat = tf.reshape(views, [-1, self._size, self._size, 3])
            probs = tf.reduce_mean(tf.reshape(self.probabilities(flat),
                                              [tf.shape(views)[0], 10, -1]), axis=1)
        else:
            probs = self.probabilities(views)
        top = tf.math.top_k(probs, k=self._k)
        return {"classes": top.indices, "class_names": tf.gather(self._names, top.indices),
                "probabilities": top.values}


def _unless_empty(images: tf.Tensor, fn, empty: dict[str, tuple[tf.DType, int]]):
    """fn(images), or empty [0, width] outputs for an empty batch.

    TF 2.21's CPU conv2d returns its input's shape for an empty batch, which breaks the next
    layer, so an empty request never reaches the network.
    """
    return tf.cond(tf.shape(images)[0] > 0, lambda: fn(images),
                   lambda: {k: tf.zeros([0, n], d) for k, (d, n) in empty.items()})


def _signatures(module: _ServingModule) -> dict[str, tf.types.experimental.ConcreteFunction]:
    size, k, widths = module._size, module._k, module._widths
    floats = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")],
                 autograph=False)
    def serving_default(images):
        return _unless_empty(images, module.classify, {
            "classes": (tf.int32, k), "class_names": (tf.string, k),
            "probabilities": (tf.float32, k)})

    @tf.function(input_signature=[floats], autograph=False)
    def predict_images(images):
        return _unless_empty(images, lambda x: {"probabilities": module.probabilities(x)},
                             {"probabilities": (tf.float32, widths["probabilities"])})

    @tf.function(input_signature=[floats], autograph=False)
    def features(images):
        return _unless_empty(
            images, lambda x: {"fc7": tf.cast(module.fc7_model(x, training=False), tf.float32)},
            {"fc7": (tf.float32, widths["fc7"])})

    # Also attributes, so `loaded.predict_images(x)` works without the signature wrapper.
    module.serving_default, module.predict_images, module.features = (
        serving_default, predict_images, features)
    return {"serving_default": serving_default.get_concrete_function(),
            "predict_images": predict_images.get_concrete_function(),
            "features": features.get_concrete_function()}


@contextlib.contextmanager
def _tf_info_silenced() -> Iterator[None]:
    """TensorFlow's INFO logs off while it writes a SavedModel.

    Its signature serializer logs, per signature, every captured variable ("contains input
    name(s) input_1, input_2, ...": about 900 characters for AlexNet), then shard timings and
    fingerprint paths: nothing a user can act on. Warnings and errors still show.
    """
    # absl's logger: TensorFlow's SavedModel modules log through absl directly.
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(min(verbosity, absl_logging.WARNING))
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)


def default_model_name(data: str) -> str:
    """The export's model name for a run on `data` (a source spec): the dataset's name.

    "fashion_mnist[:dir]" -> fashion_mnist, "tfds:NAME" -> NAME; ImageNet (a prepared or
    "folder:" source) -> alexnet, the paper's model.
    """
    kind, _, arg = data.partition(":")
    if kind == "fashion_mnist":
        return "fashion_mnist"
    if kind == "tfds" and arg:
        return arg.split("/")[0].split(":")[0]
    return "alexnet"


def _next_version(directory: Path) -> int:
    versions = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()] \
        if directory.is_dir() else []
    return max(versions, default=0) + 1


def export_savedmodel(
    model: keras.Model,
    export_root: str | os.PathLike = "savedmodels",
    name: str = "alexnet",
    version: int | None = None,
    *,
    class_names: Sequence[str],
    mean_image: np.ndarray,
    ten_crop: bool = False,
    config: AlexNetConfig | None = None,
    wnids: Sequence[str] | None = None,
    progress: bool = False,
) -> Path:
    """Writes `model` as `<export_root>/<name>/<version>/`, the layout TF Serving watches.

    Signatures: `serving_default` (encoded image bytes [B] -> top-5 `classes`, `class_names`,
    `probabilities`, with the paper's test preprocessing in the graph: shorter side to the
    stored size, central crop, mean subtraction, then the center crop or the average of the ten
    crops' softmax outputs); `predict_images` (preprocessed float images [B, S, S, 3] ->
    `probabilities` over all classes); `features` (same input -> `fc7` activations).
    Assets `config.json` and `class_index.tsv` (index, wnid, name) make the model self-describing.

    Args:
      model: a network from build_alexnet (softmax or logits output).
      version: an integer; None takes the next one after the existing versions.
      class_names: one name per class, returned by `serving_default`.
      mean_image: float32 (H, H, 3) training mean image; H is the stored image size requests
        are down-sampled to before cropping (256 in the paper).
      ten_crop: average over the ten crops of Section 4.1 instead of the center crop.
      config: the model's config; defaults to `model.alexnet_config`.
      wnids: class identifiers for the class index; default `class_names`.
      progress: write a line per phase (tracing, writing) with its time on stdout.

    Returns:
      The version directory written.

    Raises:
      ValueError: on inconsistent arguments, or if the version already exists.
    """
    config = config or getattr(model, "alexnet_config", None)
    if not isinstance(config, AlexNetConfig):
        raise ValueError("Pass config=AlexNetConfig(...): the model does not carry one.")
    class_names = [str(c) for c in class_names]
    wnids = class_names if wnids is None else [str(w) for w in wnids]
    mean_image = np.asarray(mean_image, np.float32)
    _check_export(config, class_names, wnids, mean_image, name, version)
    model = _placement_free(model, config)
    target = _new_version_dir(Path(export_root) / name, version)
    _write_version(target, model, config, class_names, wnids, mean_image, ten_crop, progress)
    return target


def _write_version(target: Path, model: keras.Model, config: AlexNetConfig,
                   class_names: list[str], wnids: list[str], mean_image: np.ndarray,
                   ten_crop: bool, progress: bool) -> None:
    """Traces the serving module of `model` and saves it with its assets as `target`.

    Written beside the target under a non-integer name TF Serving ignores, then renamed: a
    version directory TF Serving sees is complete.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        asset_dir = _write_assets(tmp / "_assets_src", config, wnids, class_names)
        module = _ServingModule(model, config, class_names, mean_image, ten_crop, asset_dir)
        saved = tmp / "model"
        # TF's own LRN kernel in the graph, not XLA: TF Serving runs XLA functions only with
        # --xla_cpu_compilation_enabled, off by default.
        with portable_lrn():
            with phase("Tracing the serving signatures", progress):
                signatures = _signatures(module)
            with phase(f"Writing the SavedModel to {target}", progress), _tf_info_silenced():
                tf.saved_model.save(module, str(saved), signatures=signatures)
        os.rename(saved, target)
    except OSError as e:
        if target.exists():
            raise ValueError(f"{target} was created by another writer meanwhile: {e}") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_export(config: AlexNetConfig, class_names: list[str], wnids: list[str],
                  mean_image: np.ndarray, name: str, version: int | None) -> None:
    """Refuses arguments of export_savedmodel that do not fit the model or TF Serving."""
    if len(class_names) != config.num_classes or len(wnids) != config.num_classes:
        raise ValueError(f"Got {len(class_names)} class names and {len(wnids)} wnids for "
                         f"{config.num_classes} classes; pass one per class.")
    if (mean_image.ndim != 3 or mean_image.shape[0] != mean_image.shape[1]
            or mean_image.shape[2] != 3 or mean_image.shape[0] < config.input_size):
        raise ValueError(f"mean_image has shape {mean_image.shape}; it must be (H, H, 3) with "
                         f"H >= input_size={config.input_size} (use DatasetInfo.mean_image).")
    if version is not None and (not isinstance(version, int) or version < 1):
        raise ValueError(f"version={version!r} must be a positive integer (TF Serving layout).")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r} must be a plain directory name, e.g. 'alexnet'.")


def _placement_free(model: keras.Model, config: AlexNetConfig) -> keras.Model:
    """`model`, or a copy without tower devices: device strings would be baked into the graph."""
    if not getattr(model, "tower_devices", None):
        return model
    clean = AlexNet(config, name=model.name, precision=getattr(model, "precision", None))
    clean.set_weights(model.get_weights())
    return clean


def _new_version_dir(model_dir: Path, version: int | None) -> Path:
    """`model_dir/<version>` (None: the one after the existing versions), which must not
    exist yet; creates `model_dir`."""
    version = _next_version(model_dir) if version is None else version
    target = model_dir / str(version)
    if target.exists():
        raise ValueError(f"{target} already exists; pick another version or delete it first.")
    model_dir.mkdir(parents=True, exist_ok=True)
    return target


def _write_assets(asset_dir: Path, config: AlexNetConfig, wnids: list[str],
                  class_names: list[str]) -> Path:
    """The export's assets (config.json, class_index.tsv) in a new `asset_dir`."""
    asset_dir.mkdir()
    (asset_dir / CONFIG_ASSET).write_text(config.to_json() + "\n")
    (asset_dir / CLASS_INDEX_ASSET).write_text(
        "index\twnid\tname\n"
        + "".join(f"{i}\t{w}\t{n}\n" for i, (w, n) in enumerate(zip(wnids, class_names))))
    return asset_dir
