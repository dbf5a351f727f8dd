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


def test_missing_directory(tmp_path):
    with pytest.raises(BundleError, match=r"^no bundle at '.*nowhere': expected a directory holding manifest.json"):
        load(tmp_path / "nowhere")


def test_missing_manifest(bundle_copy):
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"^'/.*' has no manifest.json; it is not a seq2seq-edge bundle"):
        load(bundle_copy)


def test_corrupt_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_text('{"format": ')
    with pytest.raises(BundleError, match=r"^/.*/manifest.json: not valid JSON .*export the bundle again"):
        load(bundle_copy)


def test_unknown_format(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(format="seq2seq-edge/99"))
    with pytest.raises(BundleError, match=r"^manifest.json: format 'seq2seq-edge/99' is not supported \(this runtime reads 'seq2seq-edge/1'\)"):
        load(bundle_copy)


def test_missing_field(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"].pop("max_steps"))
    with pytest.raises(BundleError, match=r"^manifest.json.decode: field 'max_steps' is missing"):
        load(bundle_copy)


def test_wrong_field_type(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][0].update(size="24"))
    with pytest.raises(BundleError, match=r"^manifest.json.state\[0\]: field 'size' must be int, got str"):
        load(bundle_copy)


def test_missing_graph_file(bundle_copy):
    (bundle_copy / "decoder_step.onnx").unlink()
    with pytest.raises(BundleError, match=r"^/.*/decoder_step.onnx is missing; the bundle is incomplete"):
        load(bundle_copy)


def test_tampered_graph(bundle_copy):
    file = bundle_copy / "encoder.onnx"
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"^encoder.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest's"):
        load(bundle_copy)


def test_truncated_graph_with_matching_hash(bundle_copy):
    """A corrupt file whose hash was updated still fails, before onnxruntime sees it, with our message."""
    from seq2seq_edge.runtime.bundle import sha256_bytes

    file = bundle_copy / "encoder.onnx"
    data = file.read_bytes()[:200]
    file.write_bytes(data)
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(sha256=sha256_bytes(data)))
    with pytest.raises(BundleError, match=r"^encoder.onnx: not a valid ONNX model \(a field runs past the end of "
                                          r"its message\); export the bundle again"):
        load(bundle_copy)


def test_graph_onnxruntime_rejects(bundle_copy):
    """Well-formed protobuf that is no usable model (an ir_version and no graph) fails at onnxruntime's load."""
    from seq2seq_edge.runtime.bundle import sha256_bytes

    data = b"\x08\x07"
    (bundle_copy / "encoder.onnx").write_bytes(data)
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(sha256=sha256_bytes(data)))
    with pytest.raises(BundleError, match=r"^encoder.onnx: onnxruntime cannot load it \(.+\); export the bundle again"):
        load(bundle_copy)


def test_graph_outside_bundle(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["encoder"].update(file="../encoder.onnx"))
    with pytest.raises(BundleError, match=r"^manifest.json: graph file '../encoder.onnx' must be a plain file name inside the bundle"):
        load(bundle_copy)


def test_manifest_of_another_bundle(bundle_copy, sine_bundle):
    (bundle_copy / "manifest.json").write_bytes((sine_bundle / "manifest.json").read_bytes())
    with pytest.raises(BundleError, match=r"^decoder_step.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest"):
        load(bundle_copy)


def test_renamed_tensor(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["graphs"]["decoder_step"]["outputs"][0].update(name="scores"))
    with pytest.raises(BundleError, match=r"^decoder_step.onnx: graph outputs \[.*\] do not match the manifest's"):
        load(bundle_copy)


def test_state_size_disagrees(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][1].update(size=99))
    with pytest.raises(BundleError, match=r"^state 'c0' \(decoder_step input\): tensor 'c0' has shape \['batch', 48\], expected \['batch', 99\]"):
        load(bundle_copy)


def test_vocabulary_size_disagrees(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["target"]["vocabulary"]["tokens"].append("x"))
    with pytest.raises(BundleError, match=r"^step_output: tensor 'logits' has shape \['batch', \d+\], expected"):
        load(bundle_copy)


def test_state_output_not_in_graph(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["state"][0].update(output="h9_out"))
    with pytest.raises(BundleError, match=r"^decoder_step has outputs \['h0_out'\] that are neither step_output, a state nor io.attention"):
        load(bundle_copy)


def test_bad_unknown_policy(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["source"]["vocabulary"].update(on_unknown="guess"))
    with pytest.raises(BundleError, match=r"^vocabulary: on_unknown must be one of \('error', 'unk'\), got 'guess'"):
        load(bundle_copy)


def test_mode_names_a_missing_graph(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"]["modes"]["fused"].update(decoder="nowhere"))
    with pytest.raises(BundleError, match=r"^manifest.json: decode.modes.fused.decoder names graph 'nowhere', which is not in graphs"):
        load(bundle_copy)


def test_loop_graph_interface_checked(bundle_copy):
    def swap(d):
        d["graphs"]["decode_loop"], d["graphs"]["decoder_step"] = d["graphs"]["decoder_step"], d["graphs"]["decode_loop"]
    _edit_manifest(bundle_copy, swap)
    with pytest.raises(BundleError, match=r"^decoder_step has inputs \['first_input', 'max_steps'\] that are neither"):
        load(bundle_copy)


def test_mode_encoder_must_match_the_encoder(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["decode"]["modes"]["fused"].update(encoder="decoder_step"))
    with pytest.raises(BundleError, match=r"^decoder_step.onnx \(mode 'fused'\): its inputs and outputs differ from encoder"):
        load(bundle_copy)
