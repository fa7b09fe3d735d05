"""Fine-tuning a trained AlexNet on new classes: a fresh fc8 and optionally frozen layers."""

from __future__ import annotations

from collections.abc import Sequence

from keras_alexnet.model import AlexNet, build_alexnet, tower_suffix

# Layers with weights, by their base name (towers add _t0, _t1).
_WEIGHTED = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc6", "fc7")


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
    towers = [tower_suffix(config, t) for t in range(config.num_towers)]
    names = {layer.name for layer in model.layers if layer.weights and layer.name != "fc8"}
    frozen: set[str] = set()
    for name in freeze:
        matched = {name + s for s in towers} & names if name in _WEIGHTED else {name} & names
        if not matched:
            raise ValueError(f"freeze={name!r}: no such layer with weights besides the new fc8; "
                             f"choose from {sorted(names)} or their base names.")
        frozen |= matched
    for name in names:
        layer = new.get_layer(name)
        layer.set_weights(model.get_layer(name).get_weights())
        layer.trainable = name not in frozen
    return new

