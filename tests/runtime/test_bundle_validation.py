"""A missing, corrupt, tampered or mismatched bundle is refused with a message that says so."""

import json
from pathlib import Path

import pytest

from seq2seq_edge.runtime import BundleError, load


def _edit_manifest(bundle: Path, change) -> None:
    file = bundle / "manifest.json"
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def _refused(bundle: Path, code: str, field: str | None, match: str) -> None:
    """Loading ``bundle`` raises a BundleError with this code and field, whose message matches ``match``."""
    with pytest.raises(BundleError, match=match) as info:
        load(bundle)
    assert (info.value.code, info.value.field) == (code, field), str(info.value)


def test_missing_directory(tmp_path):
    _refused(tmp_path / "nowhere", "no_bundle", None,
             r"^no bundle at '.*nowhere': expected a directory holding manifest.json")


def test_missing_manifest(bundle_copy):
    (bundle_copy / "manifest.json").unlink()
    _refused(bundle_copy, "no_manifest", None,
             r"^'/.*' has no manifest.json; it is not a seq2seq-edge bundle")


def test_corrupt_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text('{"format": ')
    _refused(bundle_copy, "not_json", None,
             r"^/.*/manifest.json: not valid JSON .*export the bundle again")


def test_unknown_format(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(format="seq2seq-edge/99"))
    _refused(bundle_copy, "const", "format", r"^manifest.json: format must be 'seq2seq-edge/1', got 'seq2seq-edge/99'; "
                                             r"this runtime reads format 'seq2seq-edge/1': re-export the bundle")


def test_missing_field(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"].pop("max_steps"))
    _refused(bundle_copy, "missing", "decode.max_steps", r"^manifest.json: decode.max_steps is missing$")


def test_wrong_field_type(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][0].update(size="24"))
    _refused(bundle_copy, "type", "state[0].size",
             r"^manifest.json: state\[0\].size must be an integer, got string '24'$")


def test_missing_graph_file(bundle_copy):
    (bundle_copy / "decoder_step.onnx").unlink()
    _refused(bundle_copy, "graph_missing", "graphs.decoder_step.file",
             r"^/.*/decoder_step.onnx is missing; the bundle is incomplete")


def test_graph_name_longer_than_the_file_system_allows(bundle_copy):
    """256 characters (the schema's bound) of 4 bytes each: the file system refuses the name, the runtime says
    the graph is missing rather than raising OSError."""
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(file="😀" * 256))
    _refused(bundle_copy, "graph_missing", "graphs.encoder.file", r"^/.*/😀{77}\.\.\. is missing; the bundle is "
                                                                  r"incomplete")


def test_tampered_graph(bundle_copy):
    file = bundle_copy / "encoder.onnx"
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))
    _refused(bundle_copy, "hash_mismatch", "graphs.encoder.sha256",
             r"^encoder.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest's")


def test_truncated_graph_with_matching_hash(bundle_copy):
    """A corrupt file whose hash was updated still fails, before onnxruntime sees it, with our message."""
    from seq2seq_edge.runtime.bundle import sha256_bytes

    file = bundle_copy / "encoder.onnx"
    data = file.read_bytes()[:200]
    file.write_bytes(data)
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(sha256=sha256_bytes(data)))
    _refused(bundle_copy, "not_onnx", "graphs.encoder.file",
             r"^encoder.onnx: not a valid ONNX model \(a field runs past the end of "
                                          r"its message\); export the bundle again")


def test_graph_onnxruntime_rejects(bundle_copy):
    """Well-formed protobuf that is no usable model (an ir_version and no graph) fails at onnxruntime's load."""
    from seq2seq_edge.runtime.bundle import sha256_bytes

    data = b"\x08\x07"
    (bundle_copy / "encoder.onnx").write_bytes(data)
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(sha256=sha256_bytes(data)))
    _refused(bundle_copy, "onnxruntime", "graphs.encoder.file",
             r"^encoder.onnx: onnxruntime cannot load it \(.+\); export the bundle again")


def test_graph_outside_bundle(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(file="../encoder.onnx"))
    _refused(bundle_copy, "graph_path", "graphs.encoder.file",
             r"^manifest.json: graph file '../encoder.onnx' must be a plain file name inside the bundle")


def test_manifest_of_another_bundle(bundle_copy, sine_bundle):
    (bundle_copy / "manifest.json").write_bytes((sine_bundle / "manifest.json").read_bytes())
    # graphs are checked in the order of their names; decode_loop comes before decoder_step
    _refused(bundle_copy, "hash_mismatch", "graphs.decode_loop.sha256",
             r"^decode_loop.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest")


def test_renamed_tensor(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["decoder_step"]["outputs"][0].update(name="scores"))
    _refused(bundle_copy, "graph_io", "graphs.decoder_step.outputs",
             r"^decoder_step.onnx: graph outputs \[.*\] do not match the manifest's")


def test_state_size_disagrees(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][1].update(size=99))
    _refused(bundle_copy, "contract", "graphs.decoder_step.inputs[2].shape",
             r"^state 'c0' \(decoder_step input\): tensor 'c0' has shape \['batch', 48\], expected \['batch', 99\]")


def test_vocabulary_size_disagrees(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["target"]["vocabulary"]["tokens"].append("x"))
    _refused(bundle_copy, "contract", "graphs.decoder_step.outputs[0].shape",
             r"^step_output: tensor 'logits' has shape \['batch', \d+\], expected")


def test_state_output_not_in_graph(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][0].update(output="h9_out"))
    _refused(bundle_copy, "contract", "graphs.decoder_step.outputs",
             r"^decoder_step has outputs \['h0_out'\] that are neither step_output, a state nor io.attention")


def test_bad_unknown_policy(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["source"]["vocabulary"].update(on_unknown="guess"))
    _refused(bundle_copy, "enum", "source.vocabulary.on_unknown",
             r"^manifest.json: source.vocabulary.on_unknown must be one of \['error', 'unk'\], got 'guess'$")


def test_mode_names_a_missing_graph(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"]["modes"]["fused"].update(decoder="nowhere"))
    _refused(bundle_copy, "mode_graph", "decode.modes.fused.decoder",
             r"^manifest.json: decode.modes.fused.decoder names graph 'nowhere', which is not in graphs")


def test_loop_graph_interface_checked(bundle_copy):
    def swap(d):
        d["graphs"]["decode_loop"], d["graphs"]["decoder_step"] = d["graphs"]["decoder_step"], d["graphs"]["decode_loop"]
    _edit_manifest(bundle_copy, swap)
    _refused(bundle_copy, "contract", "graphs.decoder_step.inputs",
             r"^decoder_step has inputs \['first_input', 'max_steps'\] that are neither")


def test_mode_encoder_must_match_the_encoder(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"]["modes"]["fused"].update(encoder="decoder_step"))
    _refused(bundle_copy, "contract", "decode.modes.fused.encoder",
             r"^decoder_step.onnx \(mode 'fused'\): its inputs and outputs differ from encoder")
