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


TOKENS = [
    ("decode.max_steps", 2**63, r"decode.max_steps must be an integer in \[1, 100000\], got 9223372036854775808"),
    ("decode.max_steps", 0, r"decode.max_steps must be an integer in \[1, 100000\], got 0"),
    ("decode.max_steps", True, r"manifest.json.decode: field 'max_steps' must be int, got bool"),
    ("target.vocabulary.end_id", None, r"target.vocabulary.end_id is null; a token target needs an end token"),
    ("target.vocabulary.tokens.5", 5, r"vocabulary: every token must be a string of 1 to 256 characters, got 5"),
    ("target.vocabulary.tokens.5", None, r"vocabulary: every token must be a string of 1 to 256 characters, got None"),
    ("target.vocabulary.tokens.5", "", r"vocabulary: every token must be a string of 1 to 256 characters"),
    ("target.vocabulary.tokens", [], r"vocabulary: needs 1 to 1000000 tokens, got 0"),
    ("target.vocabulary.tokens", {"a": 1}, r"vocabulary: field 'tokens' must be a list of strings, got dict"),
    ("target.vocabulary.separator", "ab", r"vocabulary: separator must be '' or one character, got 'ab'"),
    ("target.vocabulary.reverse", "yes", r"vocabulary: reverse must be true or false, got 'yes'"),
    ("target.vocabulary.start_id", True, r"vocabulary: start_id=True is not an index into"),
    ("io.padding", "mask", r"io.source_length is set exactly when io.padding is 'lengths'"),
    ("io.extra", "x", r"manifest.json.io: unknown field\(s\) \['extra'\]"),
    ("io.source", "", r"manifest.json.io: field 'source' must be a name of 1 to 256 characters"),
    ("state.0.size", 10**9, r"manifest.json.state\[0\]: field 'size' must be in \[1, 65536\], got 1000000000"),
    ("state.0.layer", -1, r"manifest.json.state\[0\]: field 'layer' must be in \[0, 63\], got -1"),
    ("state.0.kind", "x", r"state\[0\].kind must be one of \['h', 'c', 'attentional'\], got 'x'"),
    ("state.1.name", "h0", r"state names and outputs must be unique"),
    ("state.0.encoder_output", 7, r"manifest.json.state\[0\]: field 'encoder_output' must be str, got int"),
    ("graphs.encoder.sha256", "../../etc/passwd", r"sha256 must be 64 lowercase hex digits, got '../../etc/passwd'"),
    ("graphs.encoder.file", "x" * 300, r"graphs.encoder: field 'file' must be a name of 1 to 256 characters"),
    ("graphs.encoder.inputs.0.shape", ["batch"] * 9, r"shape must list at most 8 sizes"),
    ("graphs.encoder.inputs.0.shape", [-1, "time"], r"shape must list at most 8 sizes \(integers\) or axis names"),
    ("graphs.encoder.inputs", [{"name": "s", "dtype": "float32", "shape": []}] * 300,
     r"field 'inputs' has 300 entries, more than 256"),
    ("model.encoder_units", [10**9], r"encoder_units must list at most 64 integers in \[1, 65536\]"),
    ("model.decoder_units", "48", r"field 'decoder_units' must be list, got str"),
    ("decode.modes.fused", {"encoder": "encoder"}, r"decode.modes.fused must name an 'encoder' and a 'decoder' graph"),
    ("decode.modes.fused", {"encoder": "encoder", "decoder": "nowhere"},
     r"decode.modes.fused.decoder names graph 'nowhere', which is not in graphs"),
    ("parity", [1, 2], r"manifest.json: field 'parity' must be dict, got list"),
    ("task", 3, r"manifest.json: field 'task' must be str, got int"),
]


@pytest.mark.parametrize("path, value, match", TOKENS, ids=[f"{p}={str(v)[:20]}" for p, v, _ in TOKENS])
def test_token_bundle_fields(bundle_copy, path, value, match):
    with pytest.raises(BundleError, match=match):
        load(_edit(bundle_copy, _set(path, value)))


def test_encoder_inputs_must_match_the_padding_mode(bundle_copy):
    def change(data):
        data["io"].update(padding="mask", source_length=None)
    with pytest.raises(BundleError, match=r"^encoder.onnx: inputs \['source', 'source_length'\] do not match "
                                          r"io.padding 'mask', which feeds \['source'\]"):
        load(_edit(bundle_copy, change))


def test_too_many_graphs(bundle_copy):
    def change(data):
        data["graphs"].update({f"g{i}": data["graphs"]["encoder"] for i in range(300)})
    with pytest.raises(BundleError, match=r"^manifest.json: at most 256 graphs, got 305"):
        load(_edit(bundle_copy, change))


FEATURES = [
    ("source.mean.0", float("nan"), r"features: every mean must be a finite number"),
    ("source.std.1", "x", r"features: every std must be a finite number"),
    ("target.mean", {"a": 1}, r"manifest.json.target: field 'mean' must be list, got dict"),
    ("target.std.0", 0.0, r"features: every std must be > 0"),
    ("target.std.0", 1e400, r"features: every std must be a finite number"),
    ("source.features", 10**7, r"manifest.json.source: field 'features' must be in \[1, 65536\], got 10000000"),
    ("source.features", 3, r"features: mean and std need 3 values each"),
]


@pytest.mark.parametrize("path, value, match", FEATURES, ids=[p for p, _, _ in FEATURES])
def test_feature_bundle_fields(sine_bundle, copy_bundle, path, value, match):
    with pytest.raises(BundleError, match=match):
        load(_edit(copy_bundle(sine_bundle), _set(path, value)))


AUTOENCODER = [
    ("source.mean", {"a": 1}, r"manifest.json.source: field 'mean' must be list, got dict"),
    ("source.features", "2", r"manifest.json.source: field 'features' must be int, got str"),
    ("source.std", [1.0], r"features: mean and std need 2 values each"),
    ("source", {"kind": "tokens", "vocabulary": {"tokens": ["a"]}}, r"an autoencoder's source must be features"),
    ("window", 10**12, r"window must be an integer in \[1, 1000000\], got 1000000000000"),
    ("anomaly", [1], r"manifest.json: field 'anomaly' must be dict, got list"),
    ("anomaly.threshold", float("inf"), r"anomaly.threshold must be a finite number >= 0, got inf"),
    ("anomaly.step_threshold", -1.0, r"anomaly.step_threshold must be a finite number >= 0, got -1.0"),
    ("anomaly.threshold", 10**400, r"anomaly.threshold must be a finite number >= 0, got 1000"),
    ("anomaly.step_threshold", "high", r"anomaly.step_threshold must be a finite number >= 0, got 'high'"),
    ("io.latent", 5, r"manifest.json.io: field 'latent' must be str, got int"),
    ("model.cell", "rnn", r"model.cell must be one of \['lstm', 'gru', 'mixed'\], got 'rnn'"),
]


@pytest.mark.parametrize("path, value, match", AUTOENCODER, ids=[p for p, _, _ in AUTOENCODER])
def test_autoencoder_fields(ae_bundle, copy_bundle, path, value, match):
    with pytest.raises(BundleError, match=match):
        load(_edit(copy_bundle(ae_bundle), _set(path, value)))


def test_autoencoder_graph_inputs_must_be_the_source(ae_bundle, copy_bundle):
    copy = copy_bundle(ae_bundle)
    with pytest.raises(BundleError, match=r"^encoder.onnx: graph inputs \['source'\] do not match the manifest's"):
        load(_edit(copy, _set("graphs.encoder.inputs.0.name", "other")))


def test_deeply_nested_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match=r"^/.*/manifest.json: JSON nested too deeply to be a manifest"):
        load(bundle_copy)


def test_an_integer_past_python_s_digit_limit_is_a_corrupt_manifest(bundle_copy):
    text = (bundle_copy / "manifest.json").read_text()
    (bundle_copy / "manifest.json").write_text(text.replace('"max_steps": 19', '"max_steps": ' + "9" * 5000, 1))
    with pytest.raises(BundleError, match=r"^/.*/manifest.json: not valid JSON \(Exceeds the limit \(4300 digits\)"):
        load(bundle_copy)


def test_huge_manifest_is_not_read(bundle_copy):
    with open(bundle_copy / "manifest.json", "r+b") as f:
        f.truncate(65 * 1024 * 1024)  # sparse: the test writes nothing, the runtime must not read it either
    with pytest.raises(BundleError, match=r"^/.*/manifest.json: 68157440 bytes, more than a manifest may hold \(67108864\)"):
        load(bundle_copy)
