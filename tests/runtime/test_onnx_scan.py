"""The external-data scan on hand-made protobuf bytes (no onnx needed): every place a tensor can hide."""

import pytest

from seq2seq_edge.runtime import BundleError
from seq2seq_edge.runtime.onnx_scan import MAX_DEPTH, check_no_external_data


def varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def message(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


EXTERNAL = number_field(14, 1)                                            # TensorProto.data_location = EXTERNAL
ENTRIES = message(13, message(1, b"location") + message(2, b"secret.txt"))  # TensorProto.external_data
INLINE = number_field(1, 3) + number_field(2, 1) + message(9, b"\x00" * 12)  # dims, data_type, raw_data


def model_with(tensor: bytes, where: str) -> bytes:
    attribute_t = message(5, tensor)
    places = {
        "initializer": message(7, message(5, tensor)),
        "sparse initializer": message(7, message(15, message(1, tensor))),
        "node attribute": message(7, message(1, message(5, attribute_t))),
        "attribute list": message(7, message(1, message(5, message(10, tensor)))),
        "sparse attribute": message(7, message(1, message(5, message(22, message(2, tensor))))),
        "subgraph": message(7, message(1, message(5, message(6, message(5, tensor))))),
        "subgraph list": message(7, message(1, message(5, message(11, message(5, tensor))))),
        "function": message(25, message(7, message(5, attribute_t))),
        "function default attribute": message(25, message(11, attribute_t)),
        "training info": message(20, message(2, message(5, tensor))),
    }
    return number_field(1, 8) + places[where]


PLACES = ["initializer", "sparse initializer", "node attribute", "attribute list", "sparse attribute", "subgraph",
          "subgraph list", "function", "function default attribute", "training info"]


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("tensor", [EXTERNAL, ENTRIES, INLINE + EXTERNAL], ids=["location", "entries", "mixed"])
def test_external_data_is_refused_wherever_it_hides(where, tensor):
    with pytest.raises(BundleError, match=r"^g.onnx: a tensor keeps its data in an external file; a bundle may not "
                                          r"read anything outside itself"):
        check_no_external_data(model_with(tensor, where), "g.onnx")


@pytest.mark.parametrize("where", PLACES)
def test_inline_tensors_pass(where):
    check_no_external_data(model_with(INLINE, where), "g.onnx")
    check_no_external_data(model_with(number_field(14, 0), where), "g.onnx")  # DEFAULT location


def test_fields_of_other_types_are_skipped():
    fixed = varint(3 << 3 | 1) + b"\x00" * 8 + varint(4 << 3 | 5) + b"\x00" * 4  # fixed64 and fixed32 fields
    check_no_external_data(fixed + model_with(INLINE, "initializer"), "g.onnx")
    with pytest.raises(BundleError, match=r"^g.onnx: a tensor keeps its data in an external file"):
        check_no_external_data(fixed + model_with(EXTERNAL, "initializer"), "g.onnx")


def test_nesting_is_bounded():
    graph = message(5, EXTERNAL)
    for _ in range(MAX_DEPTH):  # graph -> node -> attribute -> graph -> ...
        graph = message(1, message(5, message(6, graph)))
    with pytest.raises(BundleError, match=rf"^g.onnx: not a valid ONNX model \(messages nested more than {MAX_DEPTH} "
                                          r"deep\)"):
        check_no_external_data(message(7, graph), "g.onnx")


@pytest.mark.parametrize("data, problem", [
    (message(7, message(5, EXTERNAL))[:-1], "a field runs past the end of its message"),
    (b"\x08", "truncated or oversized varint"),
    (b"\x08" + b"\xff" * 11, "truncated or oversized varint"),
    (varint(3 << 3 | 1) + b"\x00" * 3, "truncated fixed-width field"),
    (varint(3 << 3 | 3), "unsupported wire type 3"),
])
def test_malformed_bytes(data, problem):
    with pytest.raises(BundleError, match=rf"^g.onnx: not a valid ONNX model \({problem}\); export the bundle again"):
        check_no_external_data(data, "g.onnx")
