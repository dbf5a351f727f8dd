"""Crafted manifests: each is refused at load with a BundleError that names the field, never a crash."""

import json
from pathlib import Path

import pytest

from seq2seq_edge.runtime import BundleError, load


def _edit(bundle: Path, change) -> Path:
    file = bundle / "manifest.json"
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))
    return bundle


def _set(path: str, value):
    """A change that sets the manifest field at a dotted path (list indices as numbers)."""
    def change(data):
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in parents:
            data = data[key]
        data[last] = value
    return change


def _refused(bundle: Path, code: str, field: str | None, match: str) -> BundleError:
    """Loading ``bundle`` raises a BundleError with this code and field, whose message matches ``match``."""
    with pytest.raises(BundleError, match=match) as info:
        load(bundle)
    assert (info.value.code, info.value.field) == (code, field), str(info.value)
    assert len(str(info.value)) < 400  # echoed values are cut short
    return info.value


# (field to set, value, code, field named, message)
TOKENS = [
    ("decode.max_steps", 2**63, "range", "decode.max_steps",
     r"^manifest.json: decode.max_steps must be an integer in \[1, 100000\], got 9223372036854775808$"),
    ("decode.max_steps", 0, "range", "decode.max_steps",
     r"decode.max_steps must be an integer in \[1, 100000\], got 0"),
    ("decode.max_steps", True, "type", "decode.max_steps",
     r"^manifest.json: decode.max_steps must be an integer, got boolean True$"),
    ("decode.max_steps", 19.5, "type", "decode.max_steps", r"decode.max_steps must be an integer, got number 19.5"),
    ("target.vocabulary.end_id", None, "end_token", "target.vocabulary.end_id",
     r"target.vocabulary.end_id is null; a token target needs an end token"),
    ("target.vocabulary.tokens.5", 5, "type", "target.vocabulary.tokens[5]",
     r"target.vocabulary.tokens\[5\] must be a string, got integer 5"),
    ("target.vocabulary.tokens.5", None, "type", "target.vocabulary.tokens[5]",
     r"target.vocabulary.tokens\[5\] must be a string, got null None"),
    ("target.vocabulary.tokens.5", "", "too_short", "target.vocabulary.tokens[5]",
     r"target.vocabulary.tokens\[5\] must have at least 1 character, got ''"),
    ("target.vocabulary.tokens.5", "ab" * 200, "too_long", "target.vocabulary.tokens[5]",
     r"target.vocabulary.tokens\[5\] must have at most 256 characters, got 400: 'ababab"),
    ("target.vocabulary.tokens.5", "<s>", "duplicate", "target.vocabulary.tokens[5]",
     r"target.vocabulary.tokens\[5\] repeats an earlier entry: '<s>'"),
    ("target.vocabulary.tokens", [], "too_few", "target.vocabulary.tokens",
     r"target.vocabulary.tokens needs at least 1 entry, got 0"),
    ("target.vocabulary.tokens", {"a": 1}, "type", "target.vocabulary.tokens",
     r"target.vocabulary.tokens must be a list, got object \{'a': 1\}"),
    ("target.vocabulary.separator", "ab", "too_long", "target.vocabulary.separator",
     r"target.vocabulary.separator must have at most 1 character, got 2: 'ab'; '' splits text into characters"),
    ("target.vocabulary.reverse", "yes", "type", "target.vocabulary.reverse",
     r"target.vocabulary.reverse must be true or false, got string 'yes'"),
    ("target.vocabulary.start_id", True, "type", "target.vocabulary.start_id",
     r"target.vocabulary.start_id must be an integer or null, got boolean True"),
    ("target.vocabulary.start_id", 999, "index", "target.vocabulary.start_id",
     r"^manifest.json: target.vocabulary.start_id=999 is not an index into \d+ tokens$"),
    ("source.vocabulary.unk_id", None, "unk_id", "source.vocabulary.unk_id", r"^manifest.json: "
     r"source.vocabulary.on_unknown is 'unk', which needs an unk_id", {"source.vocabulary.on_unknown": "unk"}),
    ("io.padding", "mask", "padding", "io.source_length",
     r"io.source_length is 'source_length' with io.padding 'mask'; it names the lengths input exactly when io.padding "
     r"is 'lengths'"),
    ("io.padding", None, "padding", "io.padding", r"io.padding is null; a token source needs it"),
    ("io.extra", "x", "unknown_field", "io.extra",
     r"^manifest.json: io.extra is not a field of io \(its fields: \['source', .*\]\); remove it"),
    ("io.source", "", "too_short", "io.source", r"io.source must have at least 1 character"),
    ("state.0.size", 10**9, "range", "state[0].size",
     r"state\[0\].size must be an integer in \[1, 65536\], got 1000000000"),
    ("state.0.layer", -1, "range", "state[0].layer", r"state\[0\].layer must be an integer in \[0, 63\], got -1"),
    ("state.0.kind", "x", "enum", "state[0].kind",
     r"state\[0\].kind must be one of \['h', 'c', 'attentional'\], got 'x'"),
    ("state.1.name", "h0", "duplicate", "state[1].name", r"state\[1\].name 'h0' is taken; state names, state outputs "
                                                         r"and constant names must be unique"),
    ("state.1.output", "h0_out", "duplicate", "state[1].output", r"state\[1\].output 'h0_out' is taken"),
    ("state.0.encoder_output", 7, "type", "state[0].encoder_output",
     r"state\[0\].encoder_output must be a string or null, got integer 7"),
    ("state.0.encoder_output", None, "type", "state[0].encoder_output",
     r"state\[0\].encoder_output must be a string, got null None; a state with init 'encoder' names"),
    ("graphs.encoder.sha256", "../../etc/passwd", "pattern", "graphs.encoder.sha256",
     r"graphs.encoder.sha256 must match \^\[0-9a-f\]\{64\}\$, got '../../etc/passwd'; 64 lowercase hex digits"),
    ("graphs.encoder.file", "x" * 300, "too_long", "graphs.encoder.file",
     r"graphs.encoder.file must have at most 256 characters, got 300: 'xxx.*\.\.\.$"),
    ("graphs.encoder.inputs.0.shape", ["batch"] * 9, "too_many", "graphs.encoder.inputs[0].shape",
     r"graphs.encoder.inputs\[0\].shape has 9 entries, more than 8"),
    ("graphs.encoder.inputs.0.shape", [-1, "time"], "range", "graphs.encoder.inputs[0].shape[0]",
     r"shape\[0\] must be an integer in \[0, 2147483648\], got -1; a dimension is a size \(an integer\) or an axis"),
    ("graphs.encoder.inputs", [{"name": "s", "dtype": "float32", "shape": []}] * 300, "too_many",
     "graphs.encoder.inputs", r"graphs.encoder.inputs has 300 entries, more than 256"),
    ("graphs.encoder.inputs.0.dtype", "float16", "enum", "graphs.encoder.inputs[0].dtype",
     r"dtype must be one of \['int32', 'int64', 'float32'\], got 'float16'"),
    ("model.encoder_units", [10**9], "range", "model.encoder_units[0]",
     r"model.encoder_units\[0\] must be an integer in \[1, 65536\]"),
    ("model.decoder_units", "48", "type", "model.decoder_units",
     r"model.decoder_units must be a list, got string '48'"),
    ("model.cell", "rnn", "enum", "model.cell", r"model.cell must be one of \['lstm', 'gru'\], got 'rnn'"),
    ("decode.modes.fused", {"encoder": "encoder"}, "missing", "decode.modes.fused.decoder",
     r"^manifest.json: decode.modes.fused.decoder is missing$"),
    ("decode.modes.fused", {"encoder": "encoder", "decoder": "nowhere"}, "mode_graph", "decode.modes.fused.decoder",
     r"decode.modes.fused.decoder names graph 'nowhere', which is not in graphs \['decode_loop', "),
    ("decode.modes.step", {"encoder": "encoder_int8", "decoder": "decoder_step"}, "const", "decode.modes.step.encoder",
     r"decode.modes.step.encoder must be 'encoder', got 'encoder_int8'"),
    ("decode.first_input", "zeros", None, None, None),  # loads: zeros is a first input any bundle may take
    ("decode.first_input", "last_source_step", "first_input", "decode.first_input",
     r"decode.first_input is 'last_source_step', which needs feature source and target of the same width"),
    ("format", "seq2seq-edge/99", "const", "format",
     r"^manifest.json: format must be 'seq2seq-edge/1', got 'seq2seq-edge/99'; this runtime reads format "
     r"'seq2seq-edge/1': re-export the bundle with a matching seq2seq-edge version$"),
    ("family", "rnn", "enum", "family", r"family must be one of \['seq2seq', 'autoencoder'\], got 'rnn'"),
    ("parity", [1, 2], "type", "parity", r"^manifest.json: parity must be an object or null, got array \[1, 2\]$"),
    ("task", 3, "type", "task", r"^manifest.json: task must be a string or null, got integer 3$"),
]


TOKENS = [(*row, {})[:6] for row in TOKENS]  # the sixth: other fields set first


@pytest.mark.parametrize("path, value, code, field, match, before", TOKENS,
                         ids=[f"{row[0]}={str(row[1])[:20]}" for row in TOKENS])
def test_token_bundle_fields(bundle_copy, path, value, code, field, match, before):
    for other, setting in before.items():
        _edit(bundle_copy, _set(other, setting))
    _edit(bundle_copy, _set(path, value))
    if code is None:
        load(bundle_copy)
    else:
        _refused(bundle_copy, code, field, match)


def test_the_manifest_must_be_an_object(bundle_copy):
    (bundle_copy / "manifest.json").write_text("[1, 2]")
    _refused(bundle_copy, "type", "", r"^manifest.json must be an object, got array \[1, 2\]$")


def test_encoder_inputs_must_match_the_padding_mode(bundle_copy):
    def change(data):
        data["io"].update(padding="mask", source_length=None)
    _refused(_edit(bundle_copy, change), "contract", "graphs.encoder.inputs",
             r"^encoder.onnx: inputs \['source', 'source_length'\] do not match io.padding 'mask', which feeds "
             r"\['source'\]")


def test_too_many_graphs(bundle_copy):
    def change(data):
        data["graphs"].update({f"g{i}": data["graphs"]["encoder"] for i in range(300)})
    _refused(_edit(bundle_copy, change), "too_many", "graphs",
             r"^manifest.json: graphs has 305 entries, more than 256$")


def test_a_whole_number_written_with_a_fraction_is_an_integer(bundle_copy):
    """JSON has one number type: 48.0 is the integer 48, read as int (as JavaScript reads it)."""
    model = load(_edit(bundle_copy, lambda d: (d["state"][0].update(size=48.0), d["decode"].update(max_steps=19.0))))
    assert (model.manifest.state[0].size, model.manifest.max_steps) == (48, 19)
    assert type(model.manifest.state[0].size) is int and '"size": 48,' in json.dumps(model.manifest.to_dict())


FEATURES = [
    ("source.std.1", "x", "type", "source.std[1]",
     r"^manifest.json: source.std\[1\] must be a number, got string 'x'$"),
    ("target.mean", {"a": 1}, "type", "target.mean", r"target.mean must be a list, got object \{'a': 1\}"),
    ("target.std.0", 0.0, "range", "target.std[0]", r"target.std\[0\] must be a finite number > 0, got 0.0"),
    ("target.std.0", 10**400, "range", "target.std[0]", r"target.std\[0\] must be a finite number > 0, got inf"),
    ("source.mean.0", -10**400, "range", "source.mean[0]", r"source.mean\[0\] must be a finite number, got -inf"),
    ("source.features", 10**7, "range", "source.features",
     r"source.features must be an integer in \[1, 65536\], got 10000000"),
    ("source.features", 3, "features", "source.mean",
     r"^manifest.json: source.mean has 2 values; a side of 3 features needs one per feature$"),
    ("source.kind", "pixels", "enum", "source.kind", r"source.kind must be one of \['tokens', 'features'\]"),
    ("io.padding", "lengths", "padding", "io.source_length", r"io.source_length is None with io.padding 'lengths'"),
]


@pytest.mark.parametrize("path, value, code, field, match", FEATURES, ids=[p for p, *_ in FEATURES])
def test_feature_bundle_fields(sine_bundle, copy_bundle, path, value, code, field, match):
    _refused(_edit(copy_bundle(sine_bundle), _set(path, value)), code, field, match)


@pytest.mark.parametrize("path, value", [("source.mean.0", float("nan")), ("target.std.0", float("inf")),
                                         ("anomaly.threshold", float("-inf"))])
def test_nan_and_infinity_are_not_json(sine_bundle, ae_bundle, copy_bundle, path, value):
    """json.dumps writes NaN and Infinity, which RFC 8259 (and JavaScript's JSON.parse) refuse."""
    bundle = copy_bundle(ae_bundle if path.startswith("anomaly") else sine_bundle)
    _refused(_edit(bundle, _set(path, value)), "not_json", None,
             r"^/.*/manifest.json: not valid JSON \((NaN|-?Infinity) is not JSON: a manifest holds finite numbers "
             r"only\); the manifest is corrupt: export the bundle again$")


AUTOENCODER = [
    ("source.mean", {"a": 1}, "type", "source.mean", r"^manifest.json: source.mean must be a list, got object"),
    ("source.features", "2", "type", "source.features", r"source.features must be an integer, got string '2'"),
    ("source.std", [1.0], "features", "source.std", r"source.std has 1 values; a side of 2 features needs one per"),
    ("source", {"kind": "tokens", "vocabulary": {"tokens": ["a"]}}, "const", "source.kind",
     r"source.kind must be 'features', got 'tokens'"),
    ("window", 10**12, "range", "window", r"window must be an integer in \[1, 1000000\], got 1000000000000"),
    ("anomaly", [1], "type", "anomaly", r"^manifest.json: anomaly must be an object or null, got array \[1\]$"),
    ("anomaly.step_threshold", -1.0, "range", "anomaly.step_threshold",
     r"anomaly.step_threshold must be a finite number >= 0, got -1.0"),
    ("anomaly.threshold", 10**400, "range", "anomaly.threshold", r"anomaly.threshold must be a finite number >= 0, "
                                                                 r"got inf"),
    ("anomaly.step_threshold", "high", "type", "anomaly.step_threshold",
     r"anomaly.step_threshold must be a number, got string 'high'"),
    ("io.latent", 5, "type", "io.latent", r"^manifest.json: io.latent must be a string, got integer 5$"),
    ("model.cell", "rnn", "enum", "model.cell", r"model.cell must be one of \['lstm', 'gru', 'mixed'\], got 'rnn'"),
    ("graphs", {}, "missing", "graphs.autoencoder", r"^manifest.json: graphs.autoencoder is missing$"),
]


@pytest.mark.parametrize("path, value, code, field, match", AUTOENCODER, ids=[p for p, *_ in AUTOENCODER])
def test_autoencoder_fields(ae_bundle, copy_bundle, path, value, code, field, match):
    _refused(_edit(copy_bundle(ae_bundle), _set(path, value)), code, field, match)


def test_autoencoder_graph_inputs_must_be_the_source(ae_bundle, copy_bundle):
    copy = copy_bundle(ae_bundle)
    _refused(_edit(copy, _set("graphs.encoder.inputs.0.name", "other")), "graph_io", "graphs.encoder.inputs",
             r"^encoder.onnx: graph inputs \['source'\] do not match the manifest's")


def test_deeply_nested_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    _refused(bundle_copy, "too_deep", None, r"^/.*/manifest.json: JSON nested more than 64 deep, too deeply to be a "
                                            r"manifest; the manifest is corrupt$")


def test_an_integer_past_a_double_s_range_reads_as_infinity(bundle_copy):
    """Python would read it exactly (or refuse 4,300+ digits), JavaScript reads infinity: both runtimes read
    infinity."""
    text = (bundle_copy / "manifest.json").read_text()
    for digits in (400, 5000):
        (bundle_copy / "manifest.json").write_text(text.replace('"max_steps": 19', '"max_steps": ' + "9" * digits, 1))
        _refused(bundle_copy, "type", "decode.max_steps", r"^manifest.json: decode.max_steps must be an integer, got "
                                                          r"number inf$")


def test_huge_manifest_is_not_read(bundle_copy):
    with open(bundle_copy / "manifest.json", "r+b") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: the test writes nothing, the runtime must not read it either
    _refused(bundle_copy, "too_big", None, r"^/.*/manifest.json: 68157440 bytes, more than a manifest may hold "
                                           r"\(67108864\)")
