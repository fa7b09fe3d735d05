"""The network of Section 3 (Figure 2): five conv and three fully-connected layers in two towers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_alexnet.caffe import read_caffe_alexnet
from keras_alexnet.config import AlexNetConfig
from keras_alexnet.layers import ChannelSlice, LocalResponseNormalization
from keras_alexnet.precision import dtype_policy


@keras.saving.register_keras_serializable(package="keras_alexnet")
class AlexNet(keras.Model):
    """AlexNet as a Keras functional model that can place each tower on its own device.

    Build it with `build_alexnet`. The functional graph gives `summary()`, `get_layer(...).output`
    and `.keras` saving; `call` runs the same layers through `_forward`, which can wrap each
    tower's layers in `tf.device` (the paper's model parallelism, Section 3.2).
    """

    def __init__(
        self,
        config: AlexNetConfig | dict | None = None,
        tower_devices: Sequence[str] | None = None,
        name: str = "alexnet",
        precision: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(config, dict):
            config = AlexNetConfig.from_dict(config)
        config = config or AlexNetConfig()
        tower_devices = _check_devices(config, tower_devices)
        # The layers compute in the global dtype policy of the build (Keras' convention) unless
        # `precision` names one; it is saved, so a reloaded model computes as the saved one.
        precision = precision or keras.config.dtype_policy().name
        image = keras.Input((config.input_size, config.input_size, 3), name="image")
        with dtype_policy(precision):
            layers = _make_layers(config)
            # Building under the tower scopes also creates each tower's weights on its device.
            outputs = _forward(config, layers, image, None, _placer(tower_devices))
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.precision = precision
        self.alexnet_config = config
        self.tower_devices = tower_devices
        self._ordered = layers

    def __call__(self, inputs, *args, **kwargs):
        # Checked here, before Keras wraps errors raised inside `call` in a multi-line report.
        shape = tuple(getattr(inputs, "shape", ()))
        size = self.alexnet_config.input_size
        want = (size, size, 3)
        if len(shape) != 4 or any(d is not None and d != w for d, w in zip(shape[1:], want)):
            raise ValueError(
                f"AlexNet expects images of shape (batch, {size}, {size}, 3), got {shape}: "
                "crop or resize to config.input_size and give 3 (RGB) channels."
            )
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        return _forward(
            self.alexnet_config, self._ordered, inputs, training, _placer(self.tower_devices)
        )

    def get_config(self) -> dict[str, Any]:
        # The architecture is fully determined by the AlexNetConfig; device placement is a
        # property of the machine that runs the model, so it is not saved.
        return {"config": self.alexnet_config.to_dict(), "name": self.name,
                "precision": self.precision}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> AlexNet:
        return cls(**config)


def build_alexnet(
    config: AlexNetConfig | None = None,
    tower_devices: Sequence[str] | None = None,
    *,
    weights: str | os.PathLike | None = None,
    include_top: bool = True,
    pooling: str | None = None,
) -> keras.Model:
    """Builds the paper's network (Section 3.5, Figure 2), or a variant described by `config`.

    Args:
      config: architecture; None gives the paper's, or the weights file's network.
      tower_devices: one device string per tower (e.g. `("/GPU:0", "/GPU:1")`) to place each
        tower's layers with `tf.device` (TensorFlow backend only); the layers that join the towers
        (concatenations, fc8) go on the first device. None places nothing.
      weights: None (the paper's random init, Section 5), or a file to load: a `.keras` model
        or a Caffe `.caffemodel` (their network is used; `config`, if given, may differ from it
        only in fields that hold no weights: classifier_activation, dropout_rate and the
        init), or a `.weights.h5` file of a model built with `config`.
      include_top: False returns the convolutional base only: the input up to pool5's
        (6, 6, 256) maps, as keras.applications models do, for features and transfer learning.
      pooling: with include_top=False, None keeps pool5's maps, "avg" or "max" pools them
        globally to one vector per image.

    Returns:
      With include_top, an `AlexNet` taking mean-subtracted RGB images (batch, S, S, 3),
      S = config.input_size, and returning class probabilities (or logits if
      `config.classifier_activation` is None); else a functional `keras.Model` of its base.

    Raises:
      ValueError: if `tower_devices` does not name one device per tower, on a bad `pooling`,
        or if the weights file is missing, unreadable or of another network.
    """
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling={pooling!r} must be None, 'avg' or 'max'.")
    if include_top and pooling is not None:
        raise ValueError(f"pooling={pooling!r} applies to the base only: pass include_top=False.")
    if not include_top and tower_devices is not None:
        # The base is a plain functional model, whose call would drop the tower scopes.
        raise ValueError("tower_devices needs include_top=True (the base runs unplaced).")
    if weights is None:
        model = AlexNet(config or AlexNetConfig(), tower_devices=tower_devices)
    else:
        model = _with_weights(config, tower_devices, weights)
    return model if include_top else _base(model, pooling)


# Fields that hold no weights: a loaded network may be rebuilt with other values of these.
_WEIGHTLESS_FIELDS = ("classifier_activation", "dropout_rate", "weight_init_std",
                      "bias_one_layers")


def _with_weights(config: AlexNetConfig | None, tower_devices: Sequence[str] | None,
                  weights: str | os.PathLike) -> AlexNet:
    path = str(weights)
    if path.endswith(".weights.h5"):
        model = AlexNet(config or AlexNetConfig(), tower_devices=tower_devices)
        if not os.path.isfile(path):
            raise ValueError(f"No weights file at {path!r}.")
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path} does not hold this network's weights (built with another "
                             f"config?): {first[:300]}") from None
        return model
    if path.endswith(".caffemodel"):
        file_config, arrays = read_caffe_alexnet(path)
        model = AlexNet(_merge(config, file_config, path), tower_devices=tower_devices)
        for name, values in arrays.items():
            model.get_layer(name).set_weights(values)
        return model
    if path.endswith(".keras"):
        import keras_alexnet.optim  # noqa: F401 - registers PaperSGD for files saved compiled

        if not os.path.isfile(path):
            raise ValueError(f"No model file at {path!r}.")
        loaded = keras.saving.load_model(path, compile=False)
        if not isinstance(loaded, AlexNet):
            raise ValueError(f"{path} holds a {type(loaded).__name__}, not an AlexNet "
                             "from build_alexnet.")
        model = AlexNet(_merge(config, loaded.alexnet_config, path), tower_devices=tower_devices,
                        precision=loaded.precision)  # computes as the saved model did
        model.set_weights(loaded.get_weights())
        return model
    raise ValueError(f"weights={path!r}: pass a .keras, .weights.h5 or .caffemodel file.")


def _merge(config: AlexNetConfig | None, found: AlexNetConfig, path: str) -> AlexNetConfig:
    """`found` (the file's network) with `config`'s weightless fields, if `config` is given."""
    if config is None:
        return found
    differ = [f for f, v in found.to_dict().items() if config.to_dict()[f] != v]
    bad = [f for f in differ if f not in _WEIGHTLESS_FIELDS]
    if bad:
        raise ValueError(f"config differs from the network in {path} in {bad}: pass config=None "
                         "to use the file's network.")
    return found.replace(**{f: getattr(config, f) for f in differ})


def _base(model: AlexNet, pooling: str | None) -> keras.Model:
    """The functional model from the input to pool5's maps (what flatten reads), pooled."""
    x = model.get_layer("flatten").input
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(model.inputs, x, name=f"{model.name}_base")


def tower_suffix(config: AlexNetConfig, tower: int) -> str:
    """Name suffix of a per-tower layer: "_t0", "_t1", ... or "" with a single tower."""
    return f"_t{tower}" if config.num_towers > 1 else ""


def _check_devices(config: AlexNetConfig, devices: Sequence[str] | None) -> tuple[str, ...] | None:
    if devices is None:
        return None
    if isinstance(devices, str) or len(devices) != config.num_towers:
        raise ValueError(
            f"tower_devices={devices!r} must list one device per tower ({config.num_towers})."
        )
    if keras.backend.backend() != "tensorflow":
        raise ValueError("tower_devices needs the TensorFlow backend (it uses tf.device).")
    return tuple(str(d) for d in devices)


def _placer(devices: tuple[str, ...] | None) -> Callable[[int], contextlib.AbstractContextManager]:
    """Returns `place(tower)`: a `tf.device` scope for that tower, or a no-op without devices."""
    if devices is None:
        return lambda tower: contextlib.nullcontext()
    import tensorflow as tf

    return lambda tower: tf.device(devices[tower])


def _make_layers(c: AlexNetConfig) -> dict[str, keras.layers.Layer]:
    """Creates every layer once, keyed by its name."""
    overhang = []
    if c.conv1_padding:
        pad = ((0, c.conv1_padding), (0, c.conv1_padding))
        overhang.append(keras.layers.ZeroPadding2D(pad, name="conv1_overhang"))
    layers = [*overhang, *_tower_layers(c), *_lrn_layers(c), *_join_layers(c),
              *_classifier_layers(c)]
    return {layer.name: layer for layer in layers}


def _init(c: AlexNetConfig, base: str) -> dict[str, Any]:
    """Section 5's initialisation of layer `base`'s weights and biases."""
    return dict(
        kernel_initializer=keras.initializers.RandomNormal(0.0, c.weight_init_std),
        bias_initializer="ones" if base in c.bias_one_layers else "zeros",
    )


def _tower_layers(c: AlexNetConfig) -> list[keras.layers.Layer]:
    """Each tower's convolutions, poolings, fc6 and fc7, tower by tower."""
    T = c.num_towers
    conv_names = [f"conv{i + 1}" for i in range(5)] + (["conv6"] if c.conv6_filters else [])
    filters = [*c.conv_filters, c.conv6_filters]
    kernels = [*c.conv_kernel_sizes, 3]
    layers = []
    for t in range(T):
        s = tower_suffix(c, t)
        for i, base in enumerate(conv_names):
            if base == f"conv{c.removed_conv}":
                continue
            layers.append(
                keras.layers.Conv2D(
                    filters[i] // T,
                    kernels[i],
                    strides=c.conv1_stride if i == 0 else 1,
                    padding="valid" if i == 0 else "same",
                    activation=c.activation,
                    name=base + s,
                    **_init(c, base),
                )
            )
        for pool in ("pool1", "pool2", "pool5"):
            layers.append(keras.layers.MaxPooling2D(c.pool_size, c.pool_stride, name=pool + s))
        for fc, units in zip(("fc6", "fc7"), c.fc_units):
            layers.append(keras.layers.Dense(units // T, activation=c.activation, name=fc + s,
                                             **_init(c, fc)))
    return layers


def _lrn_layers(c: AlexNetConfig) -> list[keras.layers.Layer]:
    """lrn1 and lrn2: one per tower, or one over the joined towers and a slice per tower."""
    if not c.use_lrn:
        return []
    T = c.num_towers
    # The layer computes its sums in float32 under any policy; only its input and
    # output follow the build's (bfloat16 under mixed_bfloat16, saving two casts).
    lrn = dict(depth_radius=c.lrn_depth_radius, bias=c.lrn_bias, alpha=c.lrn_alpha,
               beta=c.lrn_beta)
    layers = []
    for k, conv in ((1, 0), (2, 1)):
        if c.lrn_across_towers and T > 1:
            layers.append(LocalResponseNormalization(name=f"lrn{k}", **lrn))
            width = c.conv_filters[conv] // T
            layers += [ChannelSlice(t * width, (t + 1) * width, name=f"lrn{k}_t{t}")
                       for t in range(T)]
        else:
            layers += [LocalResponseNormalization(name=f"lrn{k}" + tower_suffix(c, t), **lrn)
                       for t in range(T)]
    return layers


def _join_layers(c: AlexNetConfig) -> list[keras.layers.Layer]:
    """The concatenations where the towers meet (none with a single tower)."""
    if c.num_towers == 1:
        return []
    joins = ["conv3_input", "pool5_joined", "fc6", "fc7"]
    if c.use_lrn and c.lrn_across_towers:
        joins += ["conv1_joined", "conv2_joined"]
    return [keras.layers.Concatenate(name=name) for name in joins]


def _classifier_layers(c: AlexNetConfig) -> list[keras.layers.Layer]:
    """Flatten, the two dropouts, fc8 and the classifier's activation."""
    layers = [keras.layers.Flatten(name="flatten"),
              keras.layers.Dropout(c.dropout_rate, name="drop6"),
              keras.layers.Dropout(c.dropout_rate, name="drop7"),
              # float32 under a mixed policy too (1% of the compute): bf16's 8-bit mantissa would
              # tie close logits, and the top-k rule counts ties as misses; the softmax needs
              # float32 too.
              keras.layers.Dense(c.num_classes, name="fc8", dtype="float32", **_init(c, "fc8"))]
    if c.classifier_activation:
        layers.append(keras.layers.Activation(c.classifier_activation, name="predictions",
                                              dtype="float32"))
    return layers


def _forward(
    c: AlexNetConfig,
    L: dict[str, keras.layers.Layer],
    x,
    training,
    place: Callable[[int], contextlib.AbstractContextManager],
):
    """Runs the layers in the order of Figure 2; `place(t)` scopes tower t's layers."""
    towers = _Towers(c, L, place)
    if "conv1_overhang" in L:
        x = L["conv1_overhang"](x)
    maps = towers.normalise_and_pool(towers.apply(["conv1"], [x] * c.num_towers), 1, "pool1")
    maps = towers.normalise_and_pool(towers.apply(["conv2"], maps), 2, "pool2")
    with place(0):
        joined = _join(L, "conv3_input", maps)
    top = [b for b in ("conv3", "conv4", "conv5") if b != f"conv{c.removed_conv}"]
    top += ["pool5", *(["conv6"] if c.conv6_filters else [])]
    maps = towers.apply(top, [joined] * c.num_towers)
    with place(0):
        h = L["flatten"](_join(L, "pool5_joined", maps))
    # Section 3.5: fc6 and fc7 see every neuron of the layer below, whatever the tower.
    for fc, drop in (("fc6", "drop6"), ("fc7", "drop7")):
        parts = towers.apply([fc], [h] * c.num_towers)
        with place(0):
            h = L[drop](_join(L, fc, parts), training=training)
    with place(0):
        logits = L["fc8"](h)
        return L["predictions"](logits) if "predictions" in L else logits


class _Towers:
    """Runs per-tower layers on the towers' maps, each tower in its `place(t)` scope."""

    def __init__(self, c: AlexNetConfig, L: dict[str, keras.layers.Layer],
                 place: Callable[[int], contextlib.AbstractContextManager]) -> None:
        self.c, self.L, self.place = c, L, place
        self.suffixes = [tower_suffix(c, t) for t in range(c.num_towers)]
        self.shared_lrn = c.use_lrn and c.lrn_across_towers and c.num_towers > 1

    def apply(self, bases: list[str], maps: list) -> list:
        """Tower t's layers named `bases` (plus its suffix), in turn, on maps[t]."""
        out = []
        for t, (s, m) in enumerate(zip(self.suffixes, maps)):
            with self.place(t):
                for base in bases:
                    m = self.L[base + s](m)
                out.append(m)
        return out

    def normalise(self, maps: list, k: int) -> list:
        """lrn{k} on each tower's maps, or on the joined towers, sliced back per tower."""
        L = self.L
        if self.shared_lrn:
            with self.place(0):
                joined = L[f"lrn{k}"](L[f"conv{k}_joined"](maps))
        out = []
        for t, (s, m) in enumerate(zip(self.suffixes, maps)):
            with self.place(t):
                if self.shared_lrn:
                    m = L[f"lrn{k}_t{t}"](joined)
                elif self.c.use_lrn:
                    m = L[f"lrn{k}{s}"](m)
                out.append(m)
        return out

    def normalise_and_pool(self, maps: list, k: int, pool: str) -> list:
        """lrn{k} and `pool`, in the order of the config (CaffeNet pools first)."""
        if self.c.pool_before_lrn:
            return self.normalise(self.apply([pool], maps), k)
        return self.apply([pool], self.normalise(maps, k))


def _join(L: dict[str, keras.layers.Layer], name: str, parts: list):
    """Concatenates the towers' maps (channels last); a single tower passes through."""
    return L[name](parts) if len(parts) > 1 else parts[0]
