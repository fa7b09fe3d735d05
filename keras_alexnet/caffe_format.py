"""Reading Caffe's `.caffemodel` and `.binaryproto` files without Caffe or a compiled `.proto`.

The files are protobuf messages (caffe.proto's NetParameter and BlobProto). This module walks the
protobuf wire format itself: varints, length-delimited fields and packed floats. Blob data is
read with `np.frombuffer` on the memory-mapped file, so a 233 MB model is neither copied nor
looped over in Python. Only the fields the AlexNet importer needs are decoded; others are skipped.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Protobuf wire types.
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5

# caffe.proto: NetParameter.layer (LayerParameter) and the legacy NetParameter.layers
# (V1LayerParameter), each with its field numbers.
NET_LAYER, NET_LAYERS_V1 = 100, 2
_LAYER_FIELDS = {  # name, type, bottom, top, blobs, and the parameter messages we read
    "new": dict(name=1, type=2, bottom=3, top=4, blobs=7, convolution=106, dropout=108,
                inner_product=117, lrn=118, pooling=121, relu=123),
    "v1": dict(name=4, type=5, bottom=2, top=3, blobs=6, convolution=10, dropout=12,
               inner_product=17, lrn=18, pooling=19, relu=30),
}
# V1LayerParameter.LayerType values, named as LayerParameter.type strings.
V1_TYPES = {1: "Accuracy", 4: "Convolution", 5: "Data", 6: "Dropout", 12: "ImageData",
            14: "InnerProduct", 15: "LRN", 17: "Pooling", 18: "ReLU", 20: "Softmax",
            21: "SoftmaxWithLoss", 22: "Split", 29: "MemoryData", 36: "Silence"}

# Parameter messages: field number -> (name, kind, default). Kinds: "int" (varint), "float"
# (fixed32), "ints" (repeated varint, packed or not). Defaults are caffe.proto's.
PARAM_FIELDS = {
    "convolution": {1: ("num_output", "int", 0), 2: ("bias_term", "int", 1),
                    3: ("pad", "ints", ()), 4: ("kernel_size", "ints", ()),
                    5: ("group", "int", 1), 6: ("stride", "ints", ()),
                    9: ("pad_h", "int", None), 10: ("pad_w", "int", None),
                    11: ("kernel_h", "int", None), 12: ("kernel_w", "int", None),
                    13: ("stride_h", "int", None), 14: ("stride_w", "int", None),
                    18: ("dilation", "ints", ())},
    "inner_product": {1: ("num_output", "int", 0), 2: ("bias_term", "int", 1),
                      6: ("transpose", "int", 0)},
    "lrn": {1: ("local_size", "int", 5), 2: ("alpha", "float", 1.0), 3: ("beta", "float", 0.75),
            4: ("norm_region", "int", 0), 5: ("k", "float", 1.0)},
    "pooling": {1: ("pool", "int", 0), 2: ("kernel_size", "int", None), 3: ("stride", "int", 1),
                4: ("pad", "int", 0), 5: ("kernel_h", "int", None), 6: ("kernel_w", "int", None),
                7: ("stride_h", "int", None), 8: ("stride_w", "int", None),
                9: ("pad_h", "int", None), 10: ("pad_w", "int", None),
                12: ("global_pooling", "int", 0)},
    "dropout": {1: ("dropout_ratio", "float", 0.5)},
    "relu": {1: ("negative_slope", "float", 0.0)},
}


class FormatError(ValueError):
    """The bytes are not the protobuf message they should be (truncated, or another format)."""


@dataclasses.dataclass
class CaffeLayer:
    """One layer of a NetParameter: its name, type, connections, blobs and parameters."""

    name: str
    type: str
    bottom: list[str]
    top: list[str]
    blobs: list[np.ndarray]
    params: dict[str, dict]


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise FormatError(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError(f"malformed varint at byte {pos}")


def fields(buf: memoryview, start: int = 0, end: int | None = None
           ) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """Yields (field number, wire type, value) of the message in buf[start:end].

    The value is an int for varints, the raw little-endian int for fixed32/fixed64, and the
    (start, end) byte range of a length-delimited field (not copied).

    Raises:
      FormatError: on a truncated or malformed message.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FormatError(f"field number 0 at byte {pos}: not a protobuf message")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
        elif wire == _BYTES:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise FormatError(f"field {number} at byte {pos} runs {pos + length - end} bytes "
                                  "past the end (truncated file?)")
            value = (pos, pos + length)
            pos += length
        elif wire in (_FIXED32, _FIXED64):
            size = 4 if wire == _FIXED32 else 8
            if pos + size > end:
                raise FormatError(f"truncated fixed-width field {number} at byte {pos}")
            value = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        else:
            raise FormatError(f"wire type {wire} of field {number} at byte {pos}: "
                              "not a protobuf message")
        yield number, wire, value
    if pos != end:
        raise FormatError(f"message overruns its end at byte {end}")


def _packed_varints(buf: memoryview, start: int, end: int) -> list[int]:
    out, pos = [], start
    while pos < end:
        value, pos = _varint(buf, pos, end)
        out.append(value)
    return out


def _float32(bits: int) -> float:
    return float(np.frombuffer(bits.to_bytes(4, "little"), "<f4")[0])


def read_blob(buf: memoryview, start: int, end: int) -> np.ndarray:
    """A BlobProto as a float32 array of its shape (a view of `buf` where possible).

    The shape is `shape.dim` (field 7) or the legacy num, channels, height, width (1-4).

    Raises:
      FormatError: if the data does not fill the shape, or the message is malformed.
    """
    legacy = [0, 0, 0, 0]
    dims: list[int] | None = None
    chunks: list[np.ndarray] = []
    for number, wire, value in fields(buf, start, end):
        if number in (1, 2, 3, 4) and wire == _VARINT:
            legacy[number - 1] = value
        elif number == 7 and wire == _BYTES:
            dims = []
            for n, w, v in fields(buf, *value):
                if n == 1:  # BlobShape.dim: packed int64 (or one varint per dim)
                    dims += _packed_varints(buf, *v) if w == _BYTES else [v]
        elif number == 5 and wire == _BYTES:  # packed float data
            a, b = value
            if (b - a) % 4:
                raise FormatError(f"packed float data of {b - a} bytes is not a multiple of 4")
            chunks.append(np.frombuffer(buf[a:b], "<f4"))
        elif number == 8 and wire == _BYTES:  # packed double_data
            a, b = value
            if (b - a) % 8:
                raise FormatError(f"packed double data of {b - a} bytes is not a multiple of 8")
            chunks.append(np.frombuffer(buf[a:b], "<f8").astype(np.float32))
        elif number == 5 and wire == _FIXED32:
            chunks.append(np.array([_float32(value)], np.float32))
    shape = tuple(dims) if dims is not None else tuple(legacy)
    data = chunks[0] if len(chunks) == 1 else (
        np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
    if data.size != int(np.prod(shape)):
        raise FormatError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def _read_params(buf: memoryview, kind: str, start: int, end: int) -> dict:
    spec = PARAM_FIELDS[kind]
    out = {name: default for name, _, default in spec.values()}
    for number, wire, value in fields(buf, start, end):
        if number not in spec:
            continue
        name, how, _ = spec[number]
        if how == "float" and wire == _FIXED32:
            # float32 in the file; 7 significant digits give back the number that was written.
            out[name] = float(f"{_float32(value):.7g}")
        elif how == "ints":
            out[name] = (*out[name], *(_packed_varints(buf, *value) if wire == _BYTES
                                       else [value]))
        elif wire == _VARINT:
            out[name] = value
    return out


def _read_layer(buf: memoryview, start: int, end: int, version: str) -> CaffeLayer:
    f = _LAYER_FIELDS[version]
    by_number = {v: k for k, v in f.items()}
    layer = CaffeLayer("", "", [], [], [], {})
    for number, wire, value in fields(buf, start, end):
        what = by_number.get(number)
        if what is None:
            continue
        if what == "type" and version == "v1":
            if wire != _VARINT:
                raise FormatError(f"V1 layer type is not an enum (wire type {wire})")
            layer.type = V1_TYPES.get(value, f"V1 type {value}")
        elif wire != _BYTES:
            raise FormatError(f"layer field {what} has wire type {wire}, expected bytes")
        elif what in ("name", "type"):
            setattr(layer, what, _text(buf, *value))
        elif what in ("bottom", "top"):
            getattr(layer, what).append(_text(buf, *value))
        elif what == "blobs":
            layer.blobs.append(read_blob(buf, *value))
        else:
            layer.params[what] = _read_params(buf, what, *value)
    return layer


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"string field at byte {start} is not UTF-8") from None


def _map(path: str | os.PathLike) -> memoryview:
    """The file's bytes, memory-mapped (read-only, not copied)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No file at {str(path)!r}.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty.")
    with open(path, "rb") as f:
        # The mapping outlives the file descriptor; it is released with the last array view.
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def read_net(path: str | os.PathLike) -> list[CaffeLayer]:
    """The layers of a `.caffemodel` (NetParameter) in file order, new or V1 format.

    Returns:
      The layers of `layer` (field 100) or, in older files, `layers` (field 2).

    Raises:
      ValueError: if the file is missing, truncated, not a NetParameter, or holds no layers.
    """
    buf = _map(path)
    layers: list[CaffeLayer] = []
    try:
        for number, wire, value in fields(buf):
            if number in (NET_LAYER, NET_LAYERS_V1) and wire == _BYTES:
                version = "new" if number == NET_LAYER else "v1"
                layers.append(_read_layer(buf, *value, version))
    except FormatError as e:
        raise ValueError(f"{path} is not a readable Caffe model ({e}).") from None
    if not layers:
        raise ValueError(f"{path} holds no Caffe layers: not a .caffemodel (NetParameter).")
    return layers


def read_binaryproto(path: str | os.PathLike) -> np.ndarray:
    """A `.binaryproto` BlobProto (e.g. Caffe's imagenet_mean.binaryproto) as float32.

    Raises:
      ValueError: if the file is missing, truncated or not a BlobProto.
    """
    buf = _map(path)
    try:
        blob = read_blob(buf, 0, len(buf))
    except FormatError as e:
        raise ValueError(f"{path} is not a readable Caffe blob ({e}).") from None
    if blob.size == 0:
        raise ValueError(f"{path} holds an empty blob: not a .binaryproto mean file.")
    return np.array(blob)  # a copy: the mapping of a small file need not stay open
