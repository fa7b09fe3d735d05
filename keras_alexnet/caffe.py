"""Caffe's trained AlexNet (bvlc_alexnet, bvlc_reference_caffenet) in this package's layout.

This module reads a `.caffemodel` into an AlexNetConfig and weight arrays (NumPy only, no
Keras); `build_alexnet(weights=...)` builds the model from them, and keras_alexnet.caffe_import
writes a run directory.

The model zoo's `bvlc_alexnet.caffemodel` is the public trained network with the paper's
two-group architecture. Its conventions, and how they map here:
  - input 227x227 BGR, NCHW: conv1's input channels are reversed, so the model takes RGB;
  - LRN (k=1, local_size 5) over all channels of the blob, with alpha divided by local_size:
    `lrn_across_towers=True`, `lrn_bias=k`, `lrn_alpha=alpha/local_size`;
  - conv1 and conv3 are ungrouped: tower t gets output channels [t*n/2, (t+1)*n/2), and so
    does a group-2 conv's group t; kernels (out, in/group, kh, kw) -> (kh, kw, in, out);
  - fc6 reads pool5 flattened as C,H,W, this package flattens H,W,C: fc6's input rows are
    permuted; dense weights (out, in) -> (in, out);
  - CaffeNet pools before it normalises: `pool_before_lrn=True`.
The layer order and every parameter are read from the file; anything else is refused.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_alexnet.caffe_format import CaffeLayer, read_binaryproto, read_net
from keras_alexnet.config import AlexNetConfig

# Caffe's input: 227x227 (the deploy prototxt's; conv1 needs no overhang at 227).
CAFFE_INPUT_SIZE = 227
# The model zoo's per-channel ImageNet mean, BGR (the fallback without imagenet_mean.binaryproto).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
# The stored image size the mean and the zoo's test crops come from.
CAFFE_IMAGE_SIZE = 256
# Layer types that compute nothing at test time (data, dropout, loss, accuracy, the softmax
# head, which build_alexnet's classifier_activation supplies).
_PASSIVE = {"Data", "ImageData", "MemoryData", "Input", "Dropout", "Softmax", "SoftmaxWithLoss",
            "Accuracy", "Split", "Silence"}
_ALEXNET = ("Convolution", "ReLU", "LRN", "Pooling", "Convolution", "ReLU", "LRN", "Pooling",
            "Convolution", "ReLU", "Convolution", "ReLU", "Convolution", "ReLU", "Pooling",
            "InnerProduct", "ReLU", "InnerProduct", "ReLU", "InnerProduct")
_CAFFENET = (*_ALEXNET[:2], "Pooling", "LRN", *_ALEXNET[4:6], "Pooling", "LRN", *_ALEXNET[8:])
# Our names for the layers of _ALEXNET with weights, in order, and their Caffe groups.
_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
_GROUPS = (1, 2, 1, 2, 2)  # Section 3.5: conv3 sees both towers; conv1's input is the image
_FCS = ("fc6", "fc7", "fc8")
_TOWERS = 2


def _fail(msg: str) -> None:
    raise ValueError(msg)


def _computing_layers(layers: list[CaffeLayer], path: str) -> tuple[list[CaffeLayer], bool]:
    """The layers that compute, checked against AlexNet's (or CaffeNet's) order and chain.

    Returns the layers and whether the file pools before it normalises (CaffeNet).
    """
    net = [layer for layer in layers if layer.type not in _PASSIVE]
    types = tuple(layer.type for layer in net)
    if types == _CAFFENET:
        order, pool_first = _CAFFENET, True
    else:
        order, pool_first = _ALEXNET, False
    for i, want in enumerate(order):
        after = f"after layer {net[i - 1].name!r}" if i else "first"
        if i >= len(net):
            _fail(f"{path}: missing layer: AlexNet has a {want} layer {after}, the file ends.")
        if net[i].type != want:
            _fail(f"{path}: layer {net[i].name!r} is {net[i].type} where AlexNet (and CaffeNet) "
                  f"have {want} ({after}); this importer reads only those two networks.")
    if len(net) > len(order):
        _fail(f"{path}: extra layer {net[len(order)].name!r} ({net[len(order)].type}) after "
              f"{net[len(order) - 1].name!r}: not AlexNet.")
    for prev, layer in zip(net, net[1:]):
        if layer.bottom and prev.top and layer.bottom[0] != prev.top[0]:
            _fail(f"{path}: layer {layer.name!r} reads {layer.bottom[0]!r}, not the output "
                  f"{prev.top[0]!r} of {prev.name!r}: not AlexNet's chain of layers.")
    return net, pool_first


def _blob(layer: CaffeLayer, index: int, shape: tuple[int, ...], path: str) -> np.ndarray:
    """Blob `index` of `layer` reshaped to `shape`; legacy 4-D blobs lose their leading 1s."""
    what = ("weights", "biases")[index]
    if len(layer.blobs) <= index:
        _fail(f"{path}: layer {layer.name!r} has no {what} blob: expected shape {shape}.")
    blob = layer.blobs[index]
    found = blob.shape
    extra = found[:len(found) - len(shape)]
    if found[len(extra):] != shape or any(d != 1 for d in extra):
        _fail(f"{path}: layer {layer.name!r} {what}: expected shape {shape}, found {found}.")
    return blob.reshape(shape)


def _square(params: dict, name: str, single: str, default: int | None) -> int | None:
    """kernel_size/stride/pad of a Caffe layer as one int (AlexNet's are square)."""
    values = params.get(single)
    values = list(values) if isinstance(values, tuple) else ([] if values is None else [values])
    h, w = params.get(f"{single}_h"), params.get(f"{single}_w")
    if h is not None or w is not None:
        values = [h, w]
    if not values:
        return default
    if any(v != values[0] for v in values):
        _fail(f"layer {name!r} has a non-square {single} {values}: AlexNet's are square.")
    return values[0]


def _lrn_settings(layers: list[CaffeLayer], path: str) -> dict:
    settings = []
    for layer in layers:
        p = layer.params.get("lrn", {"local_size": 5, "alpha": 1.0, "beta": 0.75,
                                     "norm_region": 0, "k": 1.0})
        if p["norm_region"] != 0 or p["local_size"] % 2 == 0:
            _fail(f"{path}: LRN layer {layer.name!r} must normalise across channels with an odd "
                  f"local_size (found norm_region={p['norm_region']}, "
                  f"local_size={p['local_size']}).")
        settings.append(dict(
            lrn_depth_radius=(p["local_size"] - 1) // 2, lrn_bias=p["k"], lrn_beta=p["beta"],
            # Caffe divides alpha by local_size; this package's LRN does not (layers.py).
            lrn_alpha=float(f"{p['alpha'] / p['local_size']:.7g}")))
    if settings[0] != settings[1]:
        _fail(f"{path}: LRN layers {layers[0].name!r} and {layers[1].name!r} differ "
              f"({settings[0]} vs {settings[1]}); AlexNetConfig has one set of LRN constants.")
    return settings[0]


def _pool_settings(layers: list[CaffeLayer], path: str) -> tuple[int, int]:
    found = set()
    for layer in layers:
        p = layer.params.get("pooling", {})
        size = _square(p, layer.name, "kernel_size", None)
        stride = _square(p, layer.name, "stride", 1)
        pad = _square(p, layer.name, "pad", 0)
        if p.get("pool", 0) != 0 or p.get("global_pooling") or pad or size is None:
            _fail(f"{path}: pooling layer {layer.name!r} must be MAX with a kernel_size and no "
                  f"padding (found pool={p.get('pool', 0)}, kernel_size={size}, pad={pad}).")
        found.add((size, stride))
    if len(found) != 1:
        _fail(f"{path}: the pooling layers differ ({sorted(found)}); AlexNet's are all alike.")
    return found.pop()


def caffe_alexnet_config(path: str | os.PathLike) -> AlexNetConfig:
    """The AlexNetConfig of the network in a `.caffemodel` (see read_caffe_alexnet)."""
    return read_caffe_alexnet(path)[0]


def read_caffe_alexnet(path: str | os.PathLike
                       ) -> tuple[AlexNetConfig, dict[str, list[np.ndarray]]]:
    """Reads a Caffe AlexNet/CaffeNet `.caffemodel` into this package's layout.

    Channel counts come from the file, so a network of AlexNet's structure with other widths
    also loads; its input is 227x227.

    Returns:
      (config, weights): the AlexNetConfig of the file's network, and for each of our layers
      with weights (conv1_t0, ..., fc8) its [kernel, bias] in Keras' layout, RGB input.

    Raises:
      ValueError: one line naming the problem: a missing, truncated or non-Caffe file, a layer
        order or parameter this package's network cannot express, or a blob of the wrong shape
        (with the expected and found shapes).
    """
    path = str(path)
    layers = read_net(path)
    net, pool_first = _computing_layers(layers, path)
    by_type = {t: [layer for layer in net if layer.type == t] for t in set(_ALEXNET)}
    for relu in by_type["ReLU"]:
        if relu.params.get("relu", {}).get("negative_slope", 0.0) != 0.0:
            _fail(f"{path}: ReLU layer {relu.name!r} is leaky; AlexNet's ReLU is not.")
    lrn = _lrn_settings(by_type["LRN"], path)
    pool = _pool_settings(by_type["Pooling"], path)
    convs = _read_convs(by_type["Convolution"], pool, path)
    weights, units, num_classes = _read_fcs(by_type["InnerProduct"], convs.channels,
                                            convs.size, path)
    dropout = [layer.params.get("dropout", {}).get("dropout_ratio", 0.5)
               for layer in layers if layer.type == "Dropout"]
    config = AlexNetConfig(
        num_classes=num_classes, input_size=CAFFE_INPUT_SIZE, num_towers=_TOWERS,
        conv_filters=tuple(convs.filters), conv_kernel_sizes=tuple(convs.kernels),
        conv1_stride=convs.conv1_stride, fc_units=tuple(units), pool_size=pool[0],
        pool_stride=pool[1], lrn_across_towers=True, pool_before_lrn=pool_first,
        dropout_rate=dropout[0] if dropout else 0.5, **lrn)
    return config, {**convs.weights, **weights}


@dataclasses.dataclass
class _Convs:
    """The conv layers read from the file, and the maps they leave for fc6."""

    weights: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    filters: list[int] = dataclasses.field(default_factory=list)
    kernels: list[int] = dataclasses.field(default_factory=list)
    conv1_stride: int = 1
    channels: int = 3  # of the maps so far: the image's at first
    size: int = CAFFE_INPUT_SIZE


def _read_convs(convs: list[CaffeLayer], pool: tuple[int, int], path: str) -> _Convs:
    """conv1..conv5 in Keras' layout, each tower's own, following the maps' size down to pool5."""
    pool_size, pool_stride = pool
    out = _Convs()
    for i, (ours, layer, group) in enumerate(zip(_CONVS, convs, _GROUPS)):
        w, b, k, stride = _conv_blobs(layer, ours, i, group, out.channels, path)
        if i == 0:
            out.conv1_stride = stride
            if (out.size - k) % stride:
                _fail(f"{path}: conv1 ({k}x{k}, stride {stride}) does not tile a "
                      f"{out.size}x{out.size} input.")
            out.size = (out.size - k) // stride + 1
            w = w[:, ::-1]  # BGR -> RGB input channels
        out.weights.update(_towers(ours, w, b, (2, 3, 1, 0)))
        out.filters.append(len(b))
        out.kernels.append(k)
        out.channels = len(b)
        if ours in ("conv1", "conv2", "conv5"):
            # Caffe rounds pooled sizes up, valid pooling here rounds down: equal when exact.
            if (out.size - pool_size) % pool_stride:
                _fail(f"{path}: pooling {pool_size}/{pool_stride} of {out.size}x{out.size} maps "
                      "does not tile them; Caffe's and Keras' pooled sizes would differ.")
            out.size = (out.size - pool_size) // pool_stride + 1
    return out


def _conv_blobs(layer: CaffeLayer, ours: str, index: int, group: int, channels: int,
                path: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(weights, biases, kernel size, stride) of a conv layer, checked against AlexNet's."""
    p = layer.params.get("convolution", {})
    blob = layer.blobs[0] if layer.blobs else None
    k = _square(p, layer.name, "kernel_size", blob.shape[-1] if blob is not None else None)
    stride = _square(p, layer.name, "stride", 1)
    pad = _square(p, layer.name, "pad", 0)
    out = p.get("num_output") or (blob.shape[0] if blob is not None else 0)
    # conv1 is 'valid' with any stride; the others are 'same' (pad (k-1)/2) with stride 1.
    want_pad, want_stride = (0, stride) if index == 0 else ((k - 1) // 2, 1)
    if (pad, stride, p.get("group", 1)) != (want_pad, want_stride, group) \
            or not p.get("bias_term", 1) or any(d != 1 for d in p.get("dilation", ())):
        _fail(f"{path}: convolution {layer.name!r} has pad={pad}, stride={stride}, "
              f"group={p.get('group', 1)}, bias_term={p.get('bias_term', 1)}; AlexNet's "
              f"{ours} has pad={want_pad}, stride={want_stride}, group={group}, biases.")
    _check_towers("convolution", layer, out, path)
    w = _blob(layer, 0, (out, channels // group, k, k), path)
    return w, _blob(layer, 1, (out,), path), k, stride


def _read_fcs(fcs: list[CaffeLayer], channels: int, size: int, path: str
              ) -> tuple[dict[str, list[np.ndarray]], list[int], int]:
    """fc6..fc8 in Keras' layout (fc6/fc7 per tower); returns them, fc6/fc7's units and
    fc8's (the number of classes). fc6 reads `channels` maps of `size`x`size`."""
    inputs = channels * size * size
    # This package flattens pool5 as H,W,C; Caffe as C,H,W: row j here is Caffe's row perm[j].
    perm = np.arange(inputs).reshape(channels, size, size).transpose(1, 2, 0).ravel()
    weights, units = {}, []
    for i, (ours, layer) in enumerate(zip(_FCS, fcs)):
        p = layer.params.get("inner_product", {})
        blob = layer.blobs[0] if layer.blobs else None
        out = p.get("num_output") or (blob.shape[0] if blob is not None else 0)
        if p.get("transpose") or not p.get("bias_term", 1):
            _fail(f"{path}: inner product {layer.name!r} must be untransposed with biases.")
        w = _blob(layer, 0, (out, inputs), path)
        b = _blob(layer, 1, (out,), path)
        if i == 0:
            w = w[:, perm]
        if ours == "fc8":
            weights["fc8"] = [np.ascontiguousarray(w.T), np.array(b)]
        else:
            _check_towers("inner product", layer, out, path)
            weights.update(_towers(ours, w, b, (1, 0)))
            units.append(out)
        inputs = out
    return weights, units, inputs


def _check_towers(kind: str, layer: CaffeLayer, outputs: int, path: str) -> None:
    if outputs % _TOWERS:
        _fail(f"{path}: {kind} {layer.name!r} has {outputs} outputs: not two towers' worth.")


def _towers(ours: str, w: np.ndarray, b: np.ndarray, axes: tuple[int, ...]
            ) -> dict[str, list[np.ndarray]]:
    """Our layer `ours`'s towers: tower t gets outputs [t*n/2, (t+1)*n/2), kernels transposed
    to Keras' layout by `axes`."""
    half = len(b) // _TOWERS
    return {f"{ours}_t{t}": [np.ascontiguousarray(w[t * half:(t + 1) * half].transpose(axes)),
                             np.array(b[t * half:(t + 1) * half])] for t in range(_TOWERS)}


def caffe_mean_image(path: str | os.PathLike | None = None) -> np.ndarray:
    """The mean image in RGB (H, W, 3) float32, from Caffe's `imagenet_mean.binaryproto`.

    None gives the model zoo's per-channel mean CAFFE_MEAN_BGR as a 256x256 RGB image.

    Raises:
      ValueError: if the file is unreadable or not a (1,) 3 x H x W blob.
    """
    if path is None:
        bgr = np.asarray(CAFFE_MEAN_BGR, np.float32)
        return np.broadcast_to(bgr[::-1], (CAFFE_IMAGE_SIZE, CAFFE_IMAGE_SIZE, 3)).copy()
    blob = read_binaryproto(path)
    shape = blob.shape
    while blob.ndim > 3 and blob.shape[0] == 1:
        blob = blob[0]
    if blob.ndim != 3 or blob.shape[0] != 3 or blob.shape[1] != blob.shape[2]:
        raise ValueError(f"{path}: mean blob has shape {shape}; expected (1, 3, H, H) BGR.")
    return np.ascontiguousarray(blob.transpose(1, 2, 0)[:, :, ::-1], np.float32)
