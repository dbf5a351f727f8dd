"""One manifest one past each bound of runtime/manifest.schema.json, for the Python runtime's tests
(tests/runtime/test_schema.py) and the Node.js runtime's (tests/test_node_binding.py).

BOUNDS lists (the bound's JSON pointer, the committed bundle edited, the field set, the value, the code and the
field of the refusal); ``bound_pointers`` lists every bound the schema holds, so a bound added to the schema
without a row here fails the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "runtime" / "manifest.schema.json"
KEYWORDS = {"minimum": "range", "exclusiveMinimum": "range", "maximum": "range", "minLength": "too_short",
            "maxLength": "too_long", "minItems": "too_few", "maxItems": "too_many", "minProperties": "too_few",
            "maxProperties": "too_many"}


class Raw:
    """A number written as is into the JSON text (1e309: past a double, read as infinity by both runtimes)."""

    def __init__(self, text: str) -> None:
        self.text = text


D, S, A = "dates_tiny", "sine_tiny", "sine_ae_tiny"
_many = lambda n, item: [item] * n  # noqa: E731
_TENSOR = {"name": "t", "dtype": "float32", "shape": []}
_STATE = {"name": "h", "layer": 0, "kind": "h", "size": 1, "output": "o", "init": "zeros"}
_CONSTANT = {"name": "m", "kind": "mask", "encoder_output": "m"}
_rule = lambda features: {"rule": "source_step", "step": -1, "features": features}  # noqa: E731

BOUNDS = [
    ("#/$defs/name/minLength", D, "io.source", "", "io.source"),
    ("#/$defs/name/maxLength", D, "graphs.encoder.file", "x" * 257, "graphs.encoder.file"),
    ("#/$defs/optional_name/minLength", D, "io.attention", "", "io.attention"),
    ("#/$defs/optional_name/maxLength", D, "state.0.encoder_output", "h" * 257, "state[0].encoder_output"),
    ("#/$defs/size/minimum", D, "state.0.size", 0, "state[0].size"),
    ("#/$defs/size/maximum", D, "state.0.size", 65537, "state[0].size"),
    ("#/$defs/finite/minimum", S, "source.mean.0", Raw("-1e309"), "source.mean[0]"),
    ("#/$defs/finite/maximum", S, "source.mean.0", Raw("1e309"), "source.mean[0]"),
    ("#/$defs/units/maxItems", D, "model.encoder_units", _many(65, 8), "model.encoder_units"),
    ("#/$defs/tensor/properties/shape/maxItems", D, "graphs.encoder.inputs.0.shape", _many(9, 1),
     "graphs.encoder.inputs[0].shape"),
    ("#/$defs/tensor/properties/shape/items/minimum", D, "graphs.encoder.inputs.0.shape.0", -1,
     "graphs.encoder.inputs[0].shape[0]"),
    ("#/$defs/tensor/properties/shape/items/maximum", D, "graphs.encoder.inputs.0.shape.0", 2**31 + 1,
     "graphs.encoder.inputs[0].shape[0]"),
    ("#/$defs/tensor/properties/shape/items/minLength", D, "graphs.encoder.inputs.0.shape.0", "",
     "graphs.encoder.inputs[0].shape[0]"),
    ("#/$defs/tensor/properties/shape/items/maxLength", D, "graphs.encoder.inputs.0.shape.0", "b" * 257,
     "graphs.encoder.inputs[0].shape[0]"),
    ("#/$defs/tensors/maxItems", D, "graphs.encoder.inputs", _many(257, _TENSOR), "graphs.encoder.inputs"),
    ("#/$defs/graphs/maxProperties", D, "graphs", "257 graphs", "graphs"),
    ("#/$defs/vocabulary/properties/tokens/minItems", D, "target.vocabulary.tokens", [], "target.vocabulary.tokens"),
    ("#/$defs/vocabulary/properties/tokens/maxItems", D, "target.vocabulary.tokens", "1000001 tokens",
     "target.vocabulary.tokens"),
    ("#/$defs/vocabulary/properties/tokens/items/minLength", D, "target.vocabulary.tokens.5", "",
     "target.vocabulary.tokens[5]"),
    ("#/$defs/vocabulary/properties/tokens/items/maxLength", D, "target.vocabulary.tokens.5", "t" * 257,
     "target.vocabulary.tokens[5]"),
    ("#/$defs/vocabulary/properties/separator/maxLength", D, "target.vocabulary.separator", "ab",
     "target.vocabulary.separator"),
    ("#/$defs/vocabulary/properties/pad_id/minimum", D, "target.vocabulary.pad_id", -1, "target.vocabulary.pad_id"),
    ("#/$defs/vocabulary/properties/unk_id/minimum", D, "target.vocabulary.unk_id", -1, "target.vocabulary.unk_id"),
    ("#/$defs/vocabulary/properties/start_id/minimum", D, "target.vocabulary.start_id", -1,
     "target.vocabulary.start_id"),
    ("#/$defs/vocabulary/properties/end_id/minimum", D, "target.vocabulary.end_id", -1, "target.vocabulary.end_id"),
    ("#/$defs/features_side/properties/mean/maxItems", S, "source.mean", _many(65537, 0.0), "source.mean"),
    ("#/$defs/features_side/properties/std/maxItems", S, "source.std", _many(65537, 1.0), "source.std"),
    ("#/$defs/features_side/properties/std/items/exclusiveMinimum", S, "source.std.0", 0, "source.std[0]"),
    ("#/$defs/features_side/properties/std/items/maximum", S, "source.std.0", Raw("1e309"), "source.std[0]"),
    ("#/$defs/state/properties/layer/minimum", D, "state.0.layer", -1, "state[0].layer"),
    ("#/$defs/state/properties/layer/maximum", D, "state.0.layer", 64, "state[0].layer"),
    ("#/$defs/decode/properties/max_steps/minimum", D, "decode.max_steps", 0, "decode.max_steps"),
    ("#/$defs/decode/properties/max_steps/maximum", D, "decode.max_steps", 100001, "decode.max_steps"),
    ("#/$defs/decode/properties/modes/minProperties", D, "decode.modes", {}, "decode.modes"),
    ("#/$defs/decode/properties/modes/maxProperties", D, "decode.modes", "257 modes", "decode.modes"),
    ("#/$defs/decode/properties/strategies/maxItems", D, "decode.strategies", ["greedy", "sample", "beam", "greedy"],
     "decode.strategies"),
    ("#/$defs/first_input_rule/properties/features/minItems", S, "decode.first_input", _rule([]),
     "decode.first_input.features"),
    ("#/$defs/first_input_rule/properties/features/maxItems", S, "decode.first_input", _rule(_many(65537, 0)),
     "decode.first_input.features"),
    ("#/$defs/first_input_rule/properties/features/items/minimum", S, "decode.first_input", _rule([-1]),
     "decode.first_input.features[0]"),
    ("#/$defs/first_input_rule/properties/features/items/maximum", S, "decode.first_input", _rule([65536]),
     "decode.first_input.features[0]"),
    ("#/$defs/seq2seq/properties/state/maxItems", D, "state", _many(257, _STATE), "state"),
    ("#/$defs/seq2seq/properties/constants/maxItems", D, "constants", _many(257, _CONSTANT), "constants"),
    ("#/$defs/threshold/minimum", A, "anomaly.threshold", -1, "anomaly.threshold"),
    ("#/$defs/threshold/maximum", A, "anomaly.threshold", Raw("1e309"), "anomaly.threshold"),
    ("#/$defs/autoencoder/properties/window/minimum", A, "window", 0, "window"),
    ("#/$defs/autoencoder/properties/window/maximum", A, "window", 1000001, "window"),
    ("#/$defs/seq2seq/properties/task/maxLength", D, "task", "t" * 257, "task"),
    ("#/$defs/autoencoder/properties/task/maxLength", A, "task", "t" * 257, "task"),
]


def bound_pointers(node=None, pointer: str = "#") -> set[str]:
    """The JSON pointer of every bound keyword in the schema."""
    node = json.loads(SCHEMA_FILE.read_text()) if node is None else node
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in KEYWORDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                found.add(f"{pointer}/{key}")
            elif key not in ("x-limits", "const", "enum"):
                found |= bound_pointers(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found |= bound_pointers(value, f"{pointer}/{i}")
    return found


def _value(value, manifest: dict):
    if value == "257 graphs":
        return {f"g{i}": manifest["graphs"]["encoder"] for i in range(257)}
    if value == "257 modes":
        return {f"m{i}": {"encoder": "encoder", "decoder": "decode_loop"} for i in range(257)}
    if value == "1000001 tokens":
        return [f"t{i}" for i in range(1_000_001)]
    return value


def write_case(row: tuple, folder: Path) -> Path:
    """A bundle folder holding only the manifest of ``row`` (the schema refuses it before any graph is read)."""
    _, bundle, path, value, _ = row
    manifest = json.loads((DATA / bundle / "manifest.json").read_text())
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = manifest
    for key in parents:
        node = node[key]
    node[last] = "__RAW__" if isinstance(value, Raw) else _value(value, manifest)
    text = json.dumps(manifest)
    if isinstance(value, Raw):
        text = text.replace('"__RAW__"', value.text)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)
    return folder


def expected(row: tuple) -> tuple[str, str]:
    """The code and field of the refusal of ``row``'s manifest."""
    return KEYWORDS[row[0].rsplit("/", 1)[1]], row[4]
