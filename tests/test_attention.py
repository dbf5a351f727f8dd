"""Attention decoders (Luong, Bahdanau): train, export with parity, and decode with the runtime.

The independent reference here is the teacher-forced training model itself, run on the growing
prefix at every step: it shares no code with the step graph's split into encoder constants
(memory, precomputed keys, mask) and a single step.
"""

import json

import numpy as np
import pytest

from seq2seq_edge.export import export_run
from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load
from seq2seq_edge.training import ModelConfig, RunDir, TrainConfig, train
from seq2seq_edge.training.config import ConfigError
from seq2seq_edge.training.tasks import make_splits

CONFIG = TrainConfig(samples=3000, epochs=3, batch_size=64, seed=2)


# The default run trains two of the six (both attention kinds, both cells, bidirectional, input feeding, two
# layers); the other four are marked slow (.ci/run trains them).
SLOW = pytest.mark.slow


@pytest.fixture(scope="module", params=[pytest.param(("luong", "lstm", False, False, 1), marks=SLOW, id="luong"),
                                        pytest.param(("bahdanau", "lstm", False, False, 1), marks=SLOW, id="bahdanau"),
                                        pytest.param(("luong", "lstm", True, False, 1), marks=SLOW,
                                                     id="luong-bidirectional"),
                                        pytest.param(("bahdanau", "gru", False, False, 1), marks=SLOW, id="bahdanau-gru"),
                                        pytest.param(("luong", "lstm", True, True, 2),
                                                     id="luong-bidirectional-input-feeding-2-layers"),
                                        pytest.param(("bahdanau", "gru", False, True, 1), marks=SLOW,
                                                     id="bahdanau-gru-input-feeding")])
def attention_run(request, tmp_path_factory):
    kind, cell, bidirectional, input_feeding, layers = request.param
    root = tmp_path_factory.mktemp(kind)
    run = train("dates", root / "run", ModelConfig(cell=cell, units=64, embedding_dim=16, attention=kind,
                                                   bidirectional=bidirectional, input_feeding=input_feeding,
                                                   layers=layers), CONFIG, verbose=0)
    return run, export_run(run.path, root / "bundle", parity_samples=64)


def _teacher_forced_greedy(net, row: list[int], start: int, end: int, max_steps: int) -> list[int]:
    source, out = np.asarray([row], np.int32), []
    for _ in range(max_steps):
        # predict_on_batch runs Keras's compiled predict function: the same model, about 10x faster than an
        # eager call here (an input-feeding decoder steps through the prefix in Python when eager).
        logits = np.asarray(net.predict_on_batch([source, np.asarray([[start] + out], np.int32)]))[0, -1]
        token = int(np.argmax(logits))
        if token == end:
            break
        out.append(token)
    return out


def test_export_parity_and_contract(attention_run):
    run, result = attention_run
    assert result.parity.ok and result.parity.tokens_identical
    model = load(result.path)
    m = model.manifest
    assert model.modes == ("step", "fused", "fused-int8")
    assert result.parity.modes["fused"]["tokens_identical"]  # the fused loop's attention equals the step graph's
    assert m.default_mode in ("fused", "fused-int8")
    fed = run.config.model.input_feeding
    assert [(s.name, s.kind, s.init) for s in m.state if s.kind == "attentional"] == (
        [("attentional", "attentional", "zeros")] if fed else [])
    assert [(c.name, c.kind, c.size) for c in m.constants] == [("memory", "memory", 64),
                                                               ("attention_keys", "keys", 64),
                                                               ("source_mask", "mask", None)]
    assert m.io.attention == "attention"
    ids, lengths = model.source_vocab.encode_batch(["14 juillet 2023", "1 May 1999"])
    state = model.encode(ids, lengths)
    assert state["memory"].shape == (2, ids.shape[1], 64) and state["attention_keys"].shape == (2, ids.shape[1], 64)
    np.testing.assert_array_equal(state["source_mask"], (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.float32))


def test_greedy_equals_the_teacher_forced_training_model(attention_run):
    run, result = attention_run
    model, net = load(result.path), RunDir(run.path).load_model()
    texts = [s for s, _ in make_splits("dates", run.config.train).test[:12]]
    vocab, target = model.source_vocab, model.target_vocab
    ids, lengths = vocab.encode_batch(texts)  # one padded batch
    want = [_teacher_forced_greedy(net, vocab.encode(t), target.start_id, target.end_id, model.max_steps)
            for t in texts]
    for mode in ("step", "fused"):
        assert [g.tolist() for g in model.generate(ids, lengths=lengths, mode=mode)] == want, mode


def test_the_fused_loop_decodes_a_row_alone_as_in_a_padded_batch(attention_run):
    run, result = attention_run
    model = load(result.path)
    texts = [s for s, _ in make_splits("dates", run.config.train).test[:40]]
    # fp32 only: int8's dynamic quantisation scales activations by the whole batch's range, so a row's
    # int8 decode may depend on its neighbours (as for every int8 bundle).
    batch = model.generate_text(texts, mode="fused")
    assert batch[:10] == [model.generate_text([t], mode="fused")[0] for t in texts[:10]]
    assert batch == model.generate_text(texts, mode="step")


def test_a_row_decodes_the_same_alone_or_padded(attention_run):
    _, result = attention_run
    model = load(result.path)
    texts = ["1 May 1999", "vendredi 14 juillet 2023", "3 mei 1961", "July 4, 2001"]
    batch = model.decode_text(texts, DecodeOptions("beam", beam_width=3, n_best=2))
    for text, row in zip(texts, batch):
        alone = model.decode_text([text], DecodeOptions("beam", beam_width=3, n_best=2))[0]
        assert [h[0] for h in alone] == [h[0] for h in row]
        np.testing.assert_allclose([h[1] for h in alone], [h[1] for h in row], atol=1e-4)
    greedy = model.generate_text(texts)
    assert greedy == [model.generate_text([t])[0] for t in texts]
    assert [row[0][0] for row in model.decode_text(texts, DecodeOptions("beam", beam_width=1))] == greedy


def test_step_by_step_and_state_checks(attention_run):
    _, result = attention_run
    model = load(result.path)
    ids, lengths = model.source_vocab.encode_batch(["1 May 1999", "3 mei 1961"])
    state = model.encode(ids, lengths)
    logits, nxt = model.step(np.full(2, model.target_vocab.start_id, np.int32), state)
    assert logits.shape == (2, len(model.target_vocab)) and set(nxt) == set(state)
    np.testing.assert_array_equal(nxt["memory"], state["memory"])  # constants pass through unchanged
    short = dict(state, memory=state["memory"][:, :-1])
    with pytest.raises(InputError, match=r"state: the constants .* disagree on the source length"):
        model.step(np.zeros(2, np.int32), short)
    with pytest.raises(InputError, match=r"state 'attention_keys': expected float \(2, time, 64\), got float32"):
        model.step(np.zeros(2, np.int32), dict(state, attention_keys=state["attention_keys"][..., :3]))
    missing = {k: v for k, v in state.items() if k != "source_mask"}
    with pytest.raises(InputError, match=r"state has keys .* expected \['attention_keys', .*'source_mask'\]"):
        model.step(np.zeros(2, np.int32), missing)


def test_a_tampered_constant_is_refused(attention_run, tmp_path):
    import shutil

    _, result = attention_run
    copy = tmp_path / "b"
    shutil.copytree(result.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["constants"][0]["size"] = 65
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"constant 'memory' \(decoder_step input\): tensor 'memory' has shape "
                                          r"\['batch', 'time', 64\], expected \['batch', 'time', 65\]"):
        load(copy)
    manifest["constants"][0]["size"] = 64
    manifest["graphs"]["decode_loop"] = manifest["graphs"]["decoder_step"]  # a loop that takes no constants
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"decoder_step.onnx \(mode 'fused'\): inputs \[.*\] should be \[.*'memory'"):
        load(copy)


def test_what_attention_does_not_take(tmp_path):
    with pytest.raises(ConfigError, match=r"attention must be 'luong' or 'bahdanau' \(or left unset\), got 'dot'"):
        ModelConfig(attention="dot")
    with pytest.raises(ConfigError, match=r"input_feeding feeds the attentional vector back: it needs attention"):
        ModelConfig(input_feeding=True)
    with pytest.raises(ConfigError, match=r"attention is built for token sources; this task's source is features"):
        train("sine", tmp_path / "s", ModelConfig(units=8, attention="luong"), TrainConfig(samples=200, epochs=1),
              verbose=0)


def test_plot_the_alignment(attention_bundle, tmp_path, capsys):
    from seq2seq_edge.cli import main

    png = tmp_path / "a.png"
    assert main(["run", str(attention_bundle), "--show-attention", "14 juillet 2023", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {png}"
    assert main(["run", str(attention_bundle), "--show-attention", "1 May 1999", "--plot", str(png)]) == 1
    assert "already exists" in capsys.readouterr().err  # an output that exists is kept unless --force
    assert main(["run", str(attention_bundle), "--plot", str(png), "x"]) == 1
    assert "--plot draws the alignment of --show-attention TEXT; pass both" in capsys.readouterr().err


def test_alignments_equal_the_keras_step_models_weights(attention_run):
    """Greedy decode by hand with the Keras step model, keeping its attention output at every step; the
    runtime's return_attention replay must give the same weights for the same tokens."""
    from seq2seq_edge.training.models import build_decoder_step, build_encoder

    run, result = attention_run
    model, net, cfg = load(result.path), RunDir(run.path).load_model(), run.config
    encoder = build_encoder(net, cfg.model, cfg.sides, masked=True)
    decoder = build_decoder_step(net, cfg.model, cfg.sides)
    text = "vendredi 14 juillet 2023"
    ids = np.asarray([model.source_vocab.encode(text)], np.int32)
    outputs = dict(zip(encoder.output_names, (np.asarray(v) for v in encoder(ids, training=False))))
    token, tokens, weights = model.target_vocab.start_id, [], []
    state = {k: v for k, v in outputs.items()}
    if cfg.model.input_feeding:  # the previous attentional vector starts at zeros
        state["attentional"] = np.zeros((1, cfg.model.units), np.float32)
    for _ in range(model.max_steps):
        feed = {"step_input": np.array([[token]], np.int32), **state}
        values = dict(zip(decoder.output_names, (np.asarray(v) for v in decoder(feed, training=False))))
        weights.append(values["attention"][0])
        token = int(np.argmax(values["logits"][0]))
        state.update({k[: -len("_out")]: v for k, v in values.items() if k.endswith("_out")})
        if token == model.target_vocab.end_id:
            break
        tokens.append(token)
    best = model.decode(ids, lengths=np.array([ids.shape[1]], np.int32), return_attention=True)[0][0]
    assert best.tokens.tolist() == tokens
    np.testing.assert_allclose(best.attention, np.stack(weights), atol=1e-5)


@pytest.mark.slow  # the bench on the dates model (tests/test_bench.py) runs in the default run
@pytest.mark.parametrize("attention_run", [("luong", "lstm", False, False, 1)], indirect=True, ids=["luong"])
def test_bench_runs_every_engine_on_an_attention_model(attention_run):
    """Every engine (Keras, LiteRT, plain tf2onnx, our modes) decodes the attention model, padded batches
    included, and the exact ones give Keras's tokens."""
    from seq2seq_edge.bench import bench

    run, _ = attention_run
    lines = []
    rows = bench([str(run.path)], [1, 4], budget_s=0.02, print_fn=lines.append)
    engines = ["keras predict() per step", "keras direct calls", "litert", "tf2onnx graphs, python loop",
               "seq2seq-edge step", "seq2seq-edge fused", "seq2seq-edge fused-int8"]
    assert [(r.batch, r.engine) for r in rows] == [(b, e) for b in (1, 4) for e in engines]
    assert all(r.identical for r in rows if "int8" not in r.engine), rows
