"""Refuse ONNX graphs that reference external data, without importing onnx.

A TensorProto can keep its bytes in another file (``data_location = EXTERNAL``, with a
``location`` that onnxruntime resolves against the working directory, or an absolute or
``../`` path): a bundle could then make the runtime read any file. The graph is walked
at the protobuf wire level (the few fields that can hold tensors: initializers, sparse
initializers, node attributes, subgraphs, functions, training info) before any session
is created.
"""

from __future__ import annotations

from typing import Iterator

from .errors import BundleError

__all__ = ["check_no_external_data"]

MAX_DEPTH = 64  # nested graphs / messages; a hostile graph cannot make the walk recurse without bound

# (message, field number) -> the message that field holds; every path to a TensorProto.
MODEL = {7: "graph", 20: "training_info", 25: "function"}
GRAPH = {1: "node", 5: "tensor", 15: "sparse_tensor"}
NODE = {5: "attribute"}
ATTRIBUTE = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse_tensor", 23: "sparse_tensor"}
FUNCTION = {7: "node", 11: "attribute"}
TRAINING_INFO = {1: "graph", 2: "graph"}
SPARSE_TENSOR = {1: "tensor", 2: "tensor"}
MESSAGES = {"model": MODEL, "graph": GRAPH, "node": NODE, "attribute": ATTRIBUTE, "function": FUNCTION,
            "training_info": TRAINING_INFO, "sparse_tensor": SPARSE_TENSOR}
TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION, EXTERNAL = 13, 14, 1


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or oversized varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) for each field of one message."""
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise ValueError("truncated fixed-width field")
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _walk(data: bytes, kind: str, pos: int, end: int, depth: int) -> bool:
    """True when a tensor inside this message keeps its data outside the file."""
    if depth > MAX_DEPTH:
        raise ValueError(f"messages nested more than {MAX_DEPTH} deep")
    for number, wire, start, stop in _fields(data, pos, end):
        if kind == "tensor":
            if (number == TENSOR_DATA_LOCATION and wire == 0 and start == EXTERNAL) or \
                    (number == TENSOR_EXTERNAL_DATA and wire == 2):
                return True
            continue
        child = MESSAGES[kind].get(number)
        if child is not None and wire == 2 and _walk(data, child, start, stop, depth + 1):
            return True
    return False


def check_no_external_data(data: bytes, file: str, field: str | None = None) -> None:
    """Raise BundleError if the serialized ModelProto ``data`` references external data (code
    ``external_data``), or is not a model (``not_onnx``); ``field``: the manifest field naming the file."""
    try:
        external = _walk(data, "model", 0, len(data), 0)
    except ValueError as exc:
        raise BundleError(f"{file}: not a valid ONNX model ({exc}); export the bundle again", code="not_onnx",
                          field=field) from exc
    if external:
        raise BundleError(f"{file}: a tensor keeps its data in an external file; a bundle may not read anything "
                          "outside itself, so graphs must hold all their weights (export the bundle again)",
                          code="external_data", field=field)
