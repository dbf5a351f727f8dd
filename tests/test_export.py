"""Export: real Keras models, real tf2onnx conversion, parity proven against Keras."""

import json

import numpy as np
import pytest

from seq2seq_edge.export import ParityError, export_run  # noqa: E402
from seq2seq_edge.runtime.fsutil import OutputExistsError  # noqa: E402
from seq2seq_edge.runtime import load  # noqa: E402
from seq2seq_edge.training import RunDir, RunDirError  # noqa: E402
from seq2seq_edge.training.inference import KerasSeq2Seq  # noqa: E402

from graph_metadata import check_graph_metadata, graph_metadata  # noqa: E402
from reference import keras_greedy, keras_models, keras_rollout  # noqa: E402

TEXTS = ["vendredi 14 juillet 2023", "1 May 2000", "Sunday, 31 December 2049", "3 mei 1961"]


def test_parity_is_measured_and_recorded(exported_dates):
    report = exported_dates.parity
    assert report.ok and report.tokens_identical and report.samples == 64
    assert max(report.max_abs_encoder_state, report.max_abs_step_state, report.step_output_error) <= 1e-4
    manifest = json.loads((exported_dates.path / "manifest.json").read_text())
    assert manifest["parity"] == report.to_dict()
    assert manifest["format"] == "seq2seq-edge/1"


def test_graph_interfaces_use_our_names(exported_dates):
    m = load(exported_dates.path).manifest
    enc, dec = m.graphs["encoder"], m.graphs["decoder_step"]
    assert [(t.name, t.shape) for t in enc.inputs] == [("source", ("batch", "time")), ("source_length", ("batch",))]
    assert [(t.name, t.shape) for t in enc.outputs] == [("h0", ("batch", 16)), ("c0", ("batch", 16))]
    assert [t.name for t in dec.inputs] == ["step_input", "h0", "c0"]
    assert [t.name for t in dec.outputs] == ["logits", "h0_out", "c0_out"]


def test_encoder_keeps_native_lstm_with_sequence_lens(exported_dates):
    import onnx

    graph = onnx.load(str(exported_dates.path / "encoder.onnx")).graph
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 1 and lstms[0].input[4] == "source_length"
    assert not [n for n in graph.node if n.op_type == "Loop"]


def test_runtime_equals_keras_on_padded_batches(trained_dates, exported_dates):
    """Keras masks padding; the runtime uses sequence_lens; both give each row's own final state."""
    run = RunDir(trained_dates)
    keras_ref, model = KerasSeq2Seq.from_run(run.load_model(), run.config), load(exported_dates.path)
    ids, lengths = model.source_vocab.encode_batch(TEXTS)
    ours, theirs = model.encode(ids, lengths), keras_ref.encode(ids)
    for i, text in enumerate(TEXTS):
        alone, _ = model.source_vocab.encode_batch([text])
        keras_alone = keras_ref.encode(alone)
        for name in ("h0", "c0"):
            np.testing.assert_allclose(ours[name][i], theirs[name][i], atol=1e-5)
            np.testing.assert_allclose(keras_alone[name][0], theirs[name][i], atol=1e-5)
    encoder, decoder, _ = keras_models(trained_dates)
    target = model.target_vocab
    want = keras_greedy(encoder, decoder, [model.source_vocab.encode(t) for t in TEXTS], target.start_id,
                        target.end_id, model.max_steps)
    for mode in model.modes[:2]:  # step and fused: the exact modes
        assert [g.tolist() for g in model.generate(ids, lengths=lengths, mode=mode)] == want


def test_existing_output_refused_then_forced(trained_dates, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"bundle already exists; choose another path or pass --force"):
        export_run(trained_dates, out, parity_samples=8)
    assert (out / "keep.txt").read_text() == "mine"
    export_run(trained_dates, out, force=True, parity_samples=8)
    assert sorted(p.name for p in out.iterdir()) == [
        "decode_loop.onnx", "decode_loop_int8.onnx", "decoder_step.onnx", "encoder.onnx", "encoder_int8.onnx",
        "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary leftovers


def test_parity_failure_writes_nothing(trained_dates, tmp_path, monkeypatch):
    import seq2seq_edge.export.parity as parity

    monkeypatch.setattr(parity, "STEP_TOLERANCE", 0.0)
    out = tmp_path / "bundle"
    with pytest.raises(ParityError, match=r"parity check failed, nothing written: 8 held-out samples"):
        export_run(trained_dates, out, parity_samples=8)
    assert list(tmp_path.iterdir()) == []


def test_missing_run_dir(tmp_path):
    with pytest.raises(RunDirError, match=r"config.json is missing: .* is not a complete run directory"):
        export_run(tmp_path, tmp_path / "bundle")


def test_two_layer_real_valued_export(trained_sine, tmp_path):
    result = export_run(trained_sine, tmp_path / "sine", parity_samples=32)
    assert result.parity.ok and result.parity.max_abs_decode <= 1e-3
    model = load(result.path)
    assert [(s.name, s.layer, s.output) for s in model.manifest.state] == [
        ("h0", 0, "h0_out"), ("c0", 0, "c0_out"), ("h1", 1, "h1_out"), ("c1", 1, "c1_out")]
    assert model.manifest.first_input == "last_source_step"
    encoder, decoder, config = keras_models(trained_sine)
    x = np.random.default_rng(0).normal(size=(5, 40, 2)).astype(np.float32)
    want = keras_rollout(encoder, decoder, x, model.max_steps, config.normalisation)
    np.testing.assert_allclose(model.generate(x, mode="step"), want, atol=1e-3)
    np.testing.assert_allclose(model.generate(x, mode="fused"), want, atol=1e-3)
    np.testing.assert_allclose(model.generate(x[2:3]), model.generate(x)[2:3], atol=1e-5)


def test_default_mode_is_the_fastest_exact_one(exported_dates, trained_dates):
    """fp32 modes must match Keras; int8 must agree with it on 99.9% of tokens and keep the held-out
    exact match, measured on the task's test split (with its targets) and recorded in the manifest."""
    m = load(exported_dates.path).manifest
    report = exported_dates.parity
    verdict = m.parity["int8_default"]
    int8 = report.modes["fused-int8"]
    assert report.data == "held-out samples (the dates task's test split)" and report.samples == 64
    from seq2seq_edge.training.tasks import make_splits

    held_out = make_splits("dates", RunDir(trained_dates).config.train).test[:64]
    texts = load(exported_dates.path).generate_text([s for s, _ in held_out], mode="step")
    assert report.reference["exact_match"] == np.mean([o == t for o, (_, t) in zip(texts, held_out)])
    assert verdict["metrics"] == {"exact_match": {"fp32": report.reference["exact_match"],
                                                  "int8": int8["exact_match"]}}
    assert verdict["eligible"] == (int8["token_agreement"] >= 0.999
                                   and int8["exact_match"] == report.reference["exact_match"])
    assert m.default_mode == ("fused-int8" if verdict["eligible"] else "fused")
    assert report.modes["fused"]["tokens_identical"] and report.modes["step"]["tokens_identical"]
    assert report.modes["fused"]["exact_match"] == report.reference["exact_match"]


def test_step_parity_measures_each_step_from_the_same_state():
    """A step graph off by 1e-6 per call reports 1e-6, not the drift of 50 steps each run on its own state."""
    from seq2seq_edge.export.parity import _lockstep

    class Engine:
        def __init__(self, error: float):
            self.error = error

        def step(self, x, state):
            h = state["h0"] * 1.5 + 1.0 + self.error  # a map that amplifies differences, as trained RNNs can
            return x + self.error, {"h0": h}

    state = {"h0": np.zeros((2, 3))}
    worst_state, worst_out = _lockstep(Engine(0.0), Engine(1e-6), state, np.zeros((2, 4)), 50, lambda y: y)
    assert worst_state == pytest.approx(1e-6, rel=0.05) and worst_out == pytest.approx(1e-6, rel=0.05)


def test_failed_forced_export_leaves_the_old_bundle_intact(trained_dates, exported_dates, tmp_path, monkeypatch):
    import shutil

    import seq2seq_edge.export.parity as parity

    out = tmp_path / "bundle"
    shutil.copytree(exported_dates.path, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(parity, "STEP_TOLERANCE", 0.0)
    with pytest.raises(ParityError, match=r"parity check failed, nothing written"):
        export_run(trained_dates, out, force=True, parity_samples=8)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary or backup folders left
    assert load(out).generate_text(["1 May 2000"]) == load(exported_dates.path).generate_text(["1 May 2000"])


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_export_only_the_modes_asked_for(trained_dates, exported_dates, tmp_path, capsys):
    """--modes fused: every mode is built and checked, then only the fused loop and its encoder stay; the
    summary gives each mode's size, and the manifest says the bundle decodes greedily only. This tiny
    model's int8 fails its rule, so keeping int8 alone is refused."""
    from seq2seq_edge.cli import main
    from seq2seq_edge.export.convert import ExportError

    result = export_run(trained_dates, tmp_path / "fused", parity_samples=64, modes=["fused"])
    files = sorted(p.name for p in result.path.iterdir())
    assert files == ["decode_loop.onnx", "encoder.onnx", "manifest.json"]
    assert result.kept_modes == ("fused",) and set(result.mode_sizes) == {"step", "fused", "fused-int8"}
    full = exported_dates.path
    assert result.mode_sizes["fused"] == sum((result.path / f).stat().st_size for f in files[:2])
    model = load(result.path)
    assert model.manifest.default_mode == "fused" and model.manifest.strategies == ("greedy",)
    assert model.generate_text(TEXTS) == load(full).generate_text(TEXTS, mode="fused")
    assert not result.parity.to_dict()["int8_default"]["eligible"]
    with pytest.raises(ExportError, match=r"modes \['fused-int8'\]: the int8 mode did not pass its rule"):
        export_run(trained_dates, tmp_path / "int8", parity_samples=64, modes=["fused-int8"])
    assert not (tmp_path / "int8").exists()
    assert main(["export", str(trained_dates), "--out", str(tmp_path / "sf"), "--modes", "step,fused",
                 "--parity-samples", "8"]) == 0
    out = capsys.readouterr().out
    step, fused = (result.mode_sizes[m] / 1e6 for m in ("step", "fused"))
    assert (f"modes: step {step:.1f} MB, fused {fused:.1f} MB, fused-int8 "
            f"{result.mode_sizes['fused-int8'] / 1e6:.1f} MB (left out); default 'fused'; "
            "strategies greedy, sample, beam; bundle") in out
    assert load(tmp_path / "sf").modes == ("step", "fused")
    step_files = sum((tmp_path / "sf" / f).stat().st_size for f in ("encoder.onnx", "decoder_step.onnx"))
    assert result.mode_sizes["step"] == pytest.approx(step_files, rel=0.01)  # converters' names vary a little
    with pytest.raises(ExportError, match=r"modes must name one or more of \['step', 'fused', 'fused-int8'\]"):
        export_run(trained_dates, tmp_path / "bad", modes=["fused", "turbo"])
    with pytest.raises(ExportError, match=r"modes must name one or more of"):
        export_run(trained_dates, tmp_path / "bad", modes=[])
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("unroll", [1, 3])
def test_fused_loop_unrolled_otherwise_decodes_the_same(trained_dates, trained_sine, exported_dates, unroll):
    """The loop runs `unroll` steps per iteration (2 in bundles): 1 and 3 give the same tokens and the same
    real-valued rollout, cut to max_steps."""
    import onnxruntime as ort

    from seq2seq_edge.export.fused import build_decode_loop, decoder_weights
    from seq2seq_edge.runtime.contract import state_names

    def loop(run_dir):
        run = RunDir(run_dir)
        names = [[n for layer, _, n in state_names(run.config.model.cell, run.config.model.layers) if layer == k]
                 for k in range(run.config.model.layers)]
        end = run.vocabularies()[1].end_id if run.config.sides.target_kind == "tokens" else None
        proto = build_decode_loop(decoder_weights(run.load_model(), run.config), names, end, unroll=unroll)
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])

    model = load(exported_dates.path)
    ids, lengths = model.source_vocab.encode_batch(TEXTS)
    state = model.encode(ids, lengths)
    start = np.full(len(TEXTS), model.target_vocab.start_id, np.int32)
    tokens = loop(trained_dates).run(None, {**state, "first_input": start,
                                             "max_steps": np.array(model.max_steps, np.int64)})[0]
    assert tokens.dtype == np.int32  # (steps run, batch): fewer than max_steps once every row has ended
    want = model.generate(ids, lengths=lengths, mode="fused")
    for row, w in zip(tokens[: model.max_steps].T, want):
        end = np.flatnonzero(row == model.target_vocab.end_id)
        np.testing.assert_array_equal(row[: end[0] if len(end) else len(row)], w)
    sine = export_run(trained_sine, exported_dates.path.parent / f"sine_u{unroll}", parity_samples=8)
    m = load(sine.path)
    x = np.random.default_rng(1).normal(size=(3, 40, 2)).astype(np.float32)
    first = (x[:, -1, :] - np.float32(m.manifest.target.mean)) / np.float32(m.manifest.target.std)
    got = loop(trained_sine).run(None, {**m.encode(x), "first_input": first.astype(np.float32),
                                        "max_steps": np.array(m.max_steps, np.int64)})[0][: m.max_steps]
    want = (m.generate(x, mode="fused") - np.float32(m.manifest.target.mean)) / np.float32(m.manifest.target.std)
    np.testing.assert_allclose(got.transpose(1, 0, 2), want, atol=1e-5)


def test_every_graph_carries_metadata(exported_dates):
    check_graph_metadata(exported_dates.path)
    props = graph_metadata(exported_dates.path / "decode_loop_int8.onnx")
    assert props["seq2seq_edge.role"] == "decode_loop_int8" and props["seq2seq_edge.task"] == "dates"
    assert json.loads(props["seq2seq_edge.model"])["cell"] == "lstm"


def test_contract_hash_follows_the_contract(exported_dates):
    """A graph's contract_sha256 matches its own manifest, and no longer matches once the vocabulary changes."""
    from seq2seq_edge.export.writing import contract_sha256

    data = json.loads((exported_dates.path / "manifest.json").read_text())
    before = contract_sha256(data)
    for graph in data["graphs"].values():  # what is not the contract: hashes, parity, records
        graph["sha256"] = "0" * 64
    data["parity"], data["versions"] = {}, {}
    assert contract_sha256(data) == before
    data["target"]["vocabulary"]["tokens"][-1] += "x"
    assert contract_sha256(data) != before
