"""Test-side Caffe files and an independent NumPy forward pass with Caffe's semantics.

The writer encodes the protobuf wire format by hand (caffe.proto's field numbers), in the
current NetParameter.layer format or the legacy V1 NetParameter.layers one. The reference
network works as Caffe does: BGR NCHW input, grouped convolutions, LRN over all channels with
alpha / local_size, ceil-mode max pooling, fc6 over the C,H,W-flattened pool5.
"""

from __future__ import annotations

import math

import numpy as np

BVLC_CONV = (96, 256, 384, 384, 256)
BVLC_FC = (4096, 4096)
SMALL_CONV = (8, 16, 24, 24, 16)  # the same structure, fewer channels: fast in NumPy
SMALL_FC = (32, 32)
_KERNELS = (11, 5, 3, 3, 3)
_GROUPS = (1, 2, 1, 2, 2)
_PADS = (0, 2, 1, 1, 1)
LRN = dict(local_size=5, alpha=1e-4, beta=0.75, k=1.0)
_V1_ENUM = {"Data": 5, "Convolution": 4, "ReLU": 18, "LRN": 15, "Pooling": 17,
            "InnerProduct": 14, "Dropout": 6, "Softmax": 20}
# (new LayerParameter, V1LayerParameter) field numbers of the parameter messages.
_PARAM_FIELD = {"convolution": (106, 10), "lrn": (118, 18), "pooling": (121, 19),
                "inner_product": (117, 17), "dropout": (108, 12)}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def f_int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def f_bytes(number: int, data: bytes) -> bytes:
    return _key(number, 2) + _varint(len(data)) + data


def f_float(number: int, value: float) -> bytes:
    return _key(number, 5) + np.float32(value).tobytes()


def blob_proto(array: np.ndarray, legacy: bool) -> bytes:
    """A BlobProto: legacy num/channels/height/width (padded with 1s) or shape.dim."""
    shape = array.shape
    if legacy:
        dims = (1,) * (4 - len(shape)) + shape
        head = b"".join(f_int(i + 1, d) for i, d in enumerate(dims))
    else:
        head = f_bytes(7, f_bytes(1, b"".join(_varint(d) for d in shape)))
    return head + f_bytes(5, np.ascontiguousarray(array, "<f4").tobytes())


def _params(kind: str, values: dict) -> bytes:
    if kind == "convolution":
        return (f_int(1, values["num_output"]) + f_int(3, values["pad"])
                + f_int(4, values["kernel_size"]) + f_int(5, values["group"])
                + f_int(6, values["stride"]))
    if kind == "lrn":
        return (f_int(1, values["local_size"]) + f_float(2, values["alpha"])
                + f_float(3, values["beta"]) + f_float(5, values["k"]))
    if kind == "pooling":
        return f_int(1, 0) + f_int(2, values["kernel_size"]) + f_int(3, values["stride"])
    if kind == "inner_product":
        return f_int(1, values["num_output"])
    if kind == "dropout":
        return f_float(1, values["dropout_ratio"])
    raise AssertionError(kind)


def layer_proto(layer: dict, v1: bool) -> bytes:
    if v1:
        out = f_bytes(4, layer["name"].encode()) + f_int(5, _V1_ENUM[layer["type"]])
        out += b"".join(f_bytes(2, b.encode()) for b in layer.get("bottom", ()))
        out += b"".join(f_bytes(3, t.encode()) for t in layer.get("top", ()))
        blobs = 6
    else:
        out = f_bytes(1, layer["name"].encode()) + f_bytes(2, layer["type"].encode())
        out += b"".join(f_bytes(3, b.encode()) for b in layer.get("bottom", ()))
        out += b"".join(f_bytes(4, t.encode()) for t in layer.get("top", ()))
        blobs = 7
    out += b"".join(f_bytes(blobs, blob_proto(b, v1)) for b in layer.get("blobs", ()))
    for kind, values in layer.get("params", {}).items():
        out += f_bytes(_PARAM_FIELD[kind][v1], _params(kind, values))
    return out


def net_proto(layers: list[dict], v1: bool) -> bytes:
    return f_bytes(1, b"test_alexnet") + b"".join(
        f_bytes(2 if v1 else 100, layer_proto(layer, v1)) for layer in layers)


def _normal(rng: np.random.Generator, std: float, shape: tuple[int, ...]) -> np.ndarray:
    # Drawn in float32: the paper-size file's 61M values took 3x as long drawn in float64.
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def random_weights(rng: np.random.Generator, conv=SMALL_CONV, fc=SMALL_FC,
                   num_classes: int = 10) -> dict[str, list[np.ndarray]]:
    """Caffe-layout weights (out, in/group, k, k) and (out, in), He-scaled, nonzero biases."""
    weights, channels = {}, 3
    for i, (out, k, g) in enumerate(zip(conv, _KERNELS, _GROUPS)):
        fan_in = channels // g * k * k
        w = _normal(rng, math.sqrt(2.0 / fan_in), (out, channels // g, k, k))
        weights[f"conv{i + 1}"] = [w, _normal(rng, 1.0, (out,))]
        channels = out
    inputs = channels * 6 * 6
    for name, out in zip(("fc6", "fc7", "fc8"), (*fc, num_classes)):
        # fc8 1/50 of He scale: logits of a few units, so no probability underflows to 0.
        scale = math.sqrt(2.0 / inputs) / (50.0 if name == "fc8" else 1.0)
        weights[name] = [_normal(rng, scale, (out, inputs)), _normal(rng, 0.5, (out,))]
        inputs = out
    return weights


def alexnet_layers(weights: dict, caffenet: bool = False) -> list[dict]:
    """bvlc_alexnet's train_val layer list (or CaffeNet's order) with `weights`."""
    layers = [dict(name="data", type="Data", top=["data", "label"])]
    prev = "data"

    def add(name, type_, blobs=(), params=None, inplace=False):
        nonlocal prev
        top = prev if inplace else name
        layers.append(dict(name=name, type=type_, bottom=[prev], top=[top], blobs=list(blobs),
                           params=params or {}))
        prev = top

    pool = {"pooling": dict(kernel_size=3, stride=2)}
    for i in range(5):
        n = i + 1
        w, b = weights[f"conv{n}"]
        add(f"conv{n}", "Convolution", [w, b], {"convolution": dict(
            num_output=w.shape[0], pad=_PADS[i], kernel_size=_KERNELS[i], group=_GROUPS[i],
            stride=4 if i == 0 else 1)})
        add(f"relu{n}", "ReLU", inplace=True)
        if n in (1, 2):
            steps = [("norm", "LRN", {"lrn": LRN}), ("pool", "Pooling", pool)]
            for kind, type_, params in (steps[::-1] if caffenet else steps):
                add(f"{kind}{n}", type_, params=params)
        if n == 5:
            add("pool5", "Pooling", params=pool)
    for name in ("fc6", "fc7", "fc8"):
        w, b = weights[name]
        add(name, "InnerProduct", [w, b], {"inner_product": dict(num_output=w.shape[0])})
        if name != "fc8":
            add(f"relu{name[2]}", "ReLU", inplace=True)
            add(f"drop{name[2]}", "Dropout", params={"dropout": dict(dropout_ratio=0.5)},
                inplace=True)
    add("prob", "Softmax")
    return layers


def write_caffemodel(path, weights: dict, *, v1: bool = False, caffenet: bool = False,
                     layers: list[dict] | None = None) -> None:
    path.write_bytes(net_proto(layers or alexnet_layers(weights, caffenet), v1))


def write_mean(path, mean_bgr_chw: np.ndarray, legacy: bool = True) -> None:
    """imagenet_mean.binaryproto: a (1, 3, H, W) BGR blob, legacy dims like the zoo's file."""
    path.write_bytes(blob_proto(mean_bgr_chw[None], legacy))


# ---- the reference forward pass, float64 NumPy, Caffe's semantics ----

def _conv(x, w, b, stride, pad, group):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    cin, cout = x.shape[1] // group, w.shape[0] // group
    outs = [np.einsum("nchwij,ocij->nohw", win[:, g * cin:(g + 1) * cin],
                      w[g * cout:(g + 1) * cout], optimize=True) for g in range(group)]
    return np.concatenate(outs, axis=1) + b[None, :, None, None]


def _lrn(x, local_size, alpha, beta, k):
    r = (local_size - 1) // 2
    sq = np.pad(x ** 2, ((0, 0), (r, r), (0, 0), (0, 0)))
    s = sum(sq[:, i:i + x.shape[1]] for i in range(local_size))
    return x / (k + alpha / local_size * s) ** beta


def _pool(x, size=3, stride=2):
    h = x.shape[2]
    out = math.ceil((h - size) / stride) + 1  # Caffe rounds up
    extra = (out - 1) * stride + size - h
    x = np.pad(x, ((0, 0), (0, 0), (0, extra), (0, extra)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))
    return win[:, :, ::stride, ::stride].max(axis=(-1, -2))


def caffe_forward(weights: dict, images_bgr_nchw: np.ndarray, caffenet: bool = False):
    """Softmax probabilities of the Caffe network on BGR NCHW mean-subtracted images."""
    x = images_bgr_nchw.astype(np.float64)
    for i in range(5):
        w, b = (np.asarray(a, np.float64) for a in weights[f"conv{i + 1}"])
        x = np.maximum(_conv(x, w, b, 4 if i == 0 else 1, _PADS[i], _GROUPS[i]), 0)
        if i in (0, 1):
            x = _lrn(_pool(x), **LRN) if caffenet else _pool(_lrn(x, **LRN))
        if i == 4:
            x = _pool(x)
    x = x.reshape(len(x), -1)  # C,H,W
    for name in ("fc6", "fc7", "fc8"):
        w, b = weights[name]
        # Accumulated in float64 without a float64 copy of fc6's 38M weights (that copy took
        # seconds; this takes milliseconds).
        x = np.einsum("nj,oj->no", x, w, dtype=np.float64) + b
        if name != "fc8":
            x = np.maximum(x, 0)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
