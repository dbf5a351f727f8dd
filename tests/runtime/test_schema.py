"""runtime/manifest.schema.json and its interpreter (runtime/schema.py): every bound in the file is enforced
at its field with its code, the limits the runtime names are the file's, and the text is held to strict JSON."""

import json
import math

import pytest
from schema_bounds import BOUNDS, bound_pointers, expected, write_case

from seq2seq_edge.runtime import BundleError, load
from seq2seq_edge.runtime import manifest as spec
from seq2seq_edge.runtime import vocab
from seq2seq_edge.runtime.schema import MAX_FLOAT, SCHEMA_FILE, at, nesting_depth, read_json, schema, validate


def test_every_bound_of_the_schema_has_a_case():
    assert sorted(row[0] for row in BOUNDS) == sorted(bound_pointers())


@pytest.mark.parametrize("row", BOUNDS, ids=[row[0].removeprefix("#/$defs/") for row in BOUNDS])
def test_one_past_each_bound_is_refused_at_its_field(tmp_path, row):
    bundle = write_case(row, tmp_path / "bundle")
    with pytest.raises(BundleError) as info:
        load(bundle)
    assert (info.value.code, info.value.field) == expected(row), str(info.value)
    bound = at(row[0])
    message = str(info.value)
    assert message.startswith(f"manifest.json: {row[4]} ") and len(message) < 400
    assert "finite number" in message if abs(bound) == MAX_FLOAT else str(bound) in message


def test_the_runtime_s_limits_are_the_schema_s():
    assert SCHEMA_FILE.parent.name == "runtime" and schema() == json.loads(SCHEMA_FILE.read_text())
    assert (spec.MAX_STEPS, spec.MAX_SIZE, spec.MAX_LAYERS, spec.MAX_TOKENS, spec.MAX_WINDOW, spec.MAX_ENTRIES,
            spec.MAX_RANK, spec.MAX_NAME) == (100_000, 65_536, 64, 1_000_000, 1_000_000, 256, 8, 256)
    assert (vocab.MAX_TOKENS, vocab.MAX_TOKEN_CHARS, vocab.ON_UNKNOWN) == (1_000_000, 256, ("error", "unk"))
    assert spec.FORMAT == "seq2seq-edge/1" and spec.STEP_STRATEGIES == ("greedy", "sample", "beam")
    assert (spec.FAMILIES, spec.CELLS, spec.PADDINGS, spec.DTYPES) == (
        ("seq2seq", "autoencoder"), ("lstm", "gru"), ("lengths", "mask", "none"), ("int32", "int64", "float32"))
    from seq2seq_edge.runtime.bundle import MAX_MANIFEST_BYTES
    assert MAX_MANIFEST_BYTES == 64 * 1024 * 1024 == schema()["x-limits"]["max_bytes"]


@pytest.mark.parametrize("text, depth", [
    ("{}", 1), ('{"a": [[1], {"b": []}]}', 4), ('["[[[", "\\"[[", "\\\\"]', 1), ('"[" [', 1), ("[]]]][", 1),
    ('{"a\\\\\\"[": [[]]}', 3), ("", 0),
])
def test_nesting_depth_skips_strings_and_escapes(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize("data, code, match", [
    (b'{"a": \xff}', "not_utf8", r"^m.json: not valid UTF-8 \('utf-8' codec can't decode byte 0xff"),
    (b'"\xed\xa0\x80"', "not_utf8", r"not valid UTF-8"),  # an encoded surrogate
    (b"\xef\xbb\xbf{}", "bom", r"^m.json: starts with a byte order mark; write it as UTF-8 without one$"),
    (b"[" * 65 + b"]" * 65, "too_deep", r"^m.json: JSON nested more than 64 deep"),
    (b'{"a": NaN}', "not_json", r"^m.json: not valid JSON \(NaN is not JSON"),
    (b'{"a": -Infinity}', "not_json", r"-Infinity is not JSON"),
    (b'{"a": 1,}', "not_json", r"^m.json: not valid JSON \(Expecting property name"),
])
def test_the_text_is_strict_json(data, code, match):
    with pytest.raises(BundleError, match=match) as info:
        read_json(data, "m.json")
    assert (info.value.code, info.value.field) == (code, None)


def test_numbers_read_as_javascript_reads_them():
    assert read_json(b"[64, 64.0, 1e400, -1e400, 1" + b"0" * 400 + b"]", "m.json") == [64, 64.0, math.inf,
                                                                                         -math.inf, math.inf]
    nested = read_json(b"[" * 64 + b"]" * 64, "m.json")  # 64 deep is allowed
    for _ in range(63):
        nested = nested[0]
    assert nested == []


@pytest.mark.parametrize("value, pointer, code, field", [
    (True, "#/$defs/size", "type", ""), (3.5, "#/$defs/size", "type", ""), (3.0, "#/$defs/size", None, None),
    ({"a": 1}, "#/$defs/mode", "unknown_field", "a"), ({"encoder": "e"}, "#/$defs/mode", "missing", "decoder"),
    (["a", "a"], "#/$defs/decode/properties/strategies", "enum", "[0]"),
    (["beam", "beam"], "#/$defs/decode/properties/strategies", "duplicate", "[1]"),
    ("x" * 10_000, "#/$defs/name", "too_long", ""),
])
def test_the_interpreter_s_keywords(value, pointer, code, field):
    if code is None:
        validate(value, pointer)
        return
    with pytest.raises(BundleError) as info:
        validate(value, pointer)
    assert (info.value.code, info.value.field) == (code, field) and len(str(info.value)) < 300
