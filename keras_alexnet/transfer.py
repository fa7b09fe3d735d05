"""Fine-tuning a trained AlexNet on new classes: a fresh fc8 and optionally frozen layers.

Two ways in: `finetune_model` makes a new model to compile and `fit` yourself; the training
paths (`keras_alexnet.train.train`, `keras_alexnet.fit.fit`) build the run's own network and
call `init_from_file` and `freeze_layers` on it (TrainConfig's `init_from` and `freeze`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from keras_alexnet.model import _WEIGHTLESS_FIELDS, AlexNet, build_alexnet, tower_suffix
from keras_alexnet.run_files import MODEL_FILE

# Layers with weights, by their base name (towers add _t0, _t1).
_WEIGHTED = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc6", "fc7")
_INIT_SUFFIXES = (".keras", ".weights.h5", ".caffemodel")


def finetune_model(model: AlexNet, num_classes: int, freeze: Sequence[str] = ()) -> AlexNet:
    """A copy of `model` with a new fc8 for `num_classes` classes and `freeze`d layers.

    Every layer but fc8 starts from `model`'s weights; fc8 is initialised afresh as in
    Section 5 (weights N(0, 0.01), biases 0). Frozen layers are not trainable, so `model.fit`
    (compiled after this call) leaves them unchanged. Freezing is a training setting: a
    saved and reloaded model has every layer trainable again.

    Args:
      model: a network from build_alexnet (an AlexNet, e.g. from import_caffe).
      num_classes: classes of the new task (at least 2).
      freeze: layer base names ("conv1", ..., "fc7": all of that layer's towers) or exact
        layer names ("conv1_t0").

    Returns:
      A new AlexNet with the same architecture and tower placement but `num_classes` outputs.

    Raises:
      ValueError: if `model` is not an AlexNet or `freeze` names a layer it does not have.
    """
    if not isinstance(model, AlexNet):
        raise ValueError(f"finetune_model needs an AlexNet from build_alexnet, got "
                         f"{type(model).__name__}.")
    config = model.alexnet_config
    new = build_alexnet(config.replace(num_classes=num_classes),
                        tower_devices=model.tower_devices)
    frozen = frozen_layer_names(new, freeze)
    for layer in new.layers:
        if layer.weights and layer.name != "fc8":
            layer.set_weights(model.get_layer(layer.name).get_weights())
            layer.trainable = layer.name not in frozen
    return new


def frozen_layer_names(model: AlexNet, freeze: Sequence[str]) -> set[str]:
    """The exact layer names `freeze` means in `model` (fc8, the new task's layer, never).

    Raises:
      ValueError: a name matches no layer with weights besides fc8.
    """
    config = model.alexnet_config
    towers = [tower_suffix(config, t) for t in range(config.num_towers)]
    names = {layer.name for layer in model.layers if layer.weights and layer.name != "fc8"}
    frozen: set[str] = set()
    for name in freeze:
        matched = {name + s for s in towers} & names if name in _WEIGHTED else {name} & names
        if not matched:
            raise ValueError(f"freeze={name!r}: no such layer with weights besides the new fc8; "
                             f"choose from {sorted(names)} or their base names.")
        frozen |= matched
    return frozen


def freeze_layers(model: AlexNet, freeze: Sequence[str]) -> set[str]:
    """Makes the `freeze`d layers of `model` non-trainable; returns their exact names.

    Call it before the optimizer is built (or the model compiled): an optimizer updates, and
    weight-decays, only the variables it was built for (`model.trainable_variables`).

    Raises:
      ValueError: as `frozen_layer_names`.
    """
    frozen = frozen_layer_names(model, freeze)
    for name in frozen:
        model.get_layer(name).trainable = False
    return frozen


def resolve_init_path(init_from: str | os.PathLike) -> Path:
    """The weights file `init_from` names: the file itself, or a run dir's model.keras.

    Raises:
      ValueError: no such file, or not a .keras / .weights.h5 / .caffemodel file.
    """
    path = Path(init_from)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise ValueError(f"init_from={str(init_from)!r}: the folder holds no {MODEL_FILE} "
                             "(a training run writes it when it stops); name a weights file.")
        return path / MODEL_FILE
    if not str(path).endswith(_INIT_SUFFIXES):
        raise ValueError(f"init_from={str(init_from)!r}: pass a {', '.join(_INIT_SUFFIXES)} "
                         "file or a run dir holding model.keras.")
    if not path.is_file():
        raise ValueError(f"init_from={str(init_from)!r}: no such file.")
    return path


def init_from_file(model: AlexNet, init_from: str | os.PathLike,
                   data_classes: Sequence[int] | None = None) -> list[str]:
    """Copies the weights of a trained network into `model`, the start of a fine-tuning run.

    Every layer with weights is copied, except fc8 when the trained network was trained on
    other classes: another number of them, or (as its run's config.json says) another
    `data_classes` selection than `data_classes`, e.g. Fashion-MNIST's 0-4 for a run on 5-9.
    `model`'s own fc8 (freshly initialised, Section 5) is then kept, as in `finetune_model`.
    A `.weights.h5` file holds no architecture; it is read as `model`'s network, so it must
    have `model`'s classes (use a `.keras` file to change them).

    Args:
      model: the network to start (built from the run's config, e.g. with logits).
      init_from: a .keras / .weights.h5 / .caffemodel file, or a run dir with model.keras.
      data_classes: the classes the new run trains on (TrainConfig.data_classes).

    Returns:
      The names of the layers whose weights were copied.

    Raises:
      ValueError: a bad path or file, or a trained network that differs from `model` in
        more than its number of classes (the message names the config values to set).
    """
    path = resolve_init_path(init_from)
    config = model.alexnet_config
    if str(path).endswith(".weights.h5"):
        trained = build_alexnet(config, weights=path)
    else:
        trained = build_alexnet(weights=path)
    found = trained.alexnet_config
    ignored = {"num_classes", *_WEIGHTLESS_FIELDS}
    differ = {f: v for f, v in found.to_dict().items()
              if f not in ignored and v != getattr(config, f)}
    if differ:
        sets = " ".join(f"model.{f}={_as_override(v)}" for f, v in sorted(differ.items()))
        raise ValueError(f"init_from={str(init_from)!r} is another network; to fine-tune it, "
                         f"set {sets}.")
    same_task = (found.num_classes == config.num_classes
                 and _trained_classes(path) == _as_classes(data_classes))
    copied = [layer.name for layer in model.layers if layer.weights and
              (layer.name != "fc8" or same_task)]
    for name in copied:
        model.get_layer(name).set_weights(trained.get_layer(name).get_weights())
    return copied


def _trained_classes(path: Path) -> tuple[int, ...] | None:
    """The `data_classes` of the run that wrote `path` (its config.json), if it names any."""
    from keras_alexnet.loading import read_run_config

    try:
        return _as_classes(read_run_config(path).get("data_classes"))
    except ValueError:  # no config.json: a file from elsewhere, e.g. Caffe's
        return None


def _as_classes(classes: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if classes is None else tuple(int(c) for c in classes)


def _as_override(value: object) -> str:
    """`value` as a TrainConfig override string (`apply_overrides` parses it back)."""
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)
