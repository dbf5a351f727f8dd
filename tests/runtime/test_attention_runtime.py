"""The committed attention bundle (dates, Luong, LSTM 32) without TensorFlow: golden decodes, the
constants' contract, batch invariance, and refusals of tampered constants."""

import json

import numpy as np
import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load


@pytest.fixture(scope="module")
def model(attention_bundle):
    return load(attention_bundle)


def test_golden_greedy_beam_and_first_step(model, golden):
    g = golden["attention"]
    assert model.generate_text(g["inputs"]) == g["outputs"]
    beam = model.decode_text(g["inputs"], DecodeOptions("beam", beam_width=3, n_best=2))
    assert [[text for text, _, _ in row] for row in beam] == [[t for t, _ in row] for row in g["beam"]]
    np.testing.assert_allclose([[lp for _, lp, _ in row] for row in beam], [[lp for _, lp in row] for row in g["beam"]],
                               atol=1e-4)
    ids, lengths = model.source_vocab.encode_batch(g["inputs"])
    logits, _ = model.step(np.full(len(ids), model.target_vocab.start_id, np.int32), model.encode(ids, lengths))
    np.testing.assert_allclose(logits, g["first_logits"], atol=1e-4)


def test_the_fused_loops_and_input_feeding(model, golden):
    """The fused loop takes the constants and carries the attentional vector itself: same text as step mode,
    a row alone or in a padded batch; the int8 loop gives what it gave when the fixture was made."""
    m = model.manifest
    assert model.modes == ("step", "fused", "fused-int8")
    assert [(s.name, s.kind, s.init) for s in m.state][-1] == ("attentional", "attentional", "zeros")
    texts, want = golden["attention"]["inputs"], golden["attention"]["outputs"]
    assert model.generate_text(texts, mode="fused") == want
    assert [model.generate_text([t], mode="fused")[0] for t in texts] == want
    assert model.generate_text(texts, mode="fused-int8") == golden["attention"]["fused_int8"]
    ids, lengths = model.source_vocab.encode_batch(texts[:2])
    assert not model.encode(ids, lengths)["attentional"].any()  # zeros before the first step


def test_constants_ride_in_the_state(model):
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "Sunday, 31 December 2049"])
    state = model.encode(ids, lengths)
    assert sorted(state) == ["attention_keys", "attentional", "c0", "h0", "memory", "source_mask"]
    assert state["memory"].shape == (2, ids.shape[1], 32)
    assert state["source_mask"].tolist() == (np.arange(ids.shape[1]) < lengths[:, None]).astype(float).tolist()
    _, nxt = model.step(np.zeros(2, np.int32), state)
    for name in ("memory", "attention_keys", "source_mask"):
        assert nxt[name] is state[name]
    with pytest.raises(InputError, match=r"^state 'source_mask': expected float \(2, time\), got int64 \(2, 3\)"):
        model.step(np.zeros(2, np.int32), dict(state, source_mask=np.ones((2, 3), np.int64)))


def test_padding_changes_nothing(model, golden):
    texts = golden["attention"]["inputs"]
    alone = [model.generate_text([t])[0] for t in texts]
    assert model.generate_text(texts) == alone
    ids, lengths = model.source_vocab.encode_batch(texts)
    wide = np.pad(ids, ((0, 0), (0, 7)))  # more padding than any row needs
    got = model.generate(wide, lengths=lengths)
    assert [model.target_vocab.decode(r) for r in got] == alone


def test_cli_runs_it(attention_bundle, golden, capsys):
    assert main(["run", str(attention_bundle), *golden["attention"]["inputs"][:2]]) == 0
    assert capsys.readouterr().out.splitlines() == golden["attention"]["outputs"][:2]


@pytest.mark.parametrize("edit, code, field, message", [
    (lambda m: m["constants"][1].update(size=31), "contract", "graphs.decoder_step.inputs[5].shape",
     r"constant 'attention_keys' \(decoder_step input\): tensor 'attention_keys' has shape \['batch', 'time', 32\], "
     r"expected \['batch', 'time', 31\]"),
    (lambda m: m["constants"][2].update(size=4), "type", "constants[2].size",
     r"constants\[2\].size must be null, got integer 4; a mask is \(batch, time\) and has no size"),
    (lambda m: m["constants"][0].update(kind="query"), "enum", "constants[0].kind",
     r"constants\[0\].kind must be one of"),
    (lambda m: m["constants"].pop(0), "contract", "graphs.decoder_step.inputs",
     r"decoder_step has inputs \['memory'\] that are neither step_input, a state nor a constant"),
    (lambda m: m["constants"].pop(), "mask", "constants",
     r"constants hold 0 constants of kind 'mask'; an attention decoder needs exactly one"),
    (lambda m: m["constants"][0].update(name="h0"), "duplicate", "constants[0].name",
     r"constants\[0\].name 'h0' is taken; state names, state outputs and constant names must be unique"),
    (lambda m: m["io"].pop("attention"), "contract", "graphs.decoder_step.outputs",
     r"decoder_step has outputs \['attention'\] that are neither step_output, a state nor io.attention"),
    (lambda m: m["constants"][2].update(decoder_input="no"), "type", "constants[2].decoder_input",
     r"constants\[2\].decoder_input must be true or false, got string 'no'"),
    (lambda m: m["constants"][0].update(decoder_input=False), "const", "constants[0].decoder_input",
     r"constants\[0\].decoder_input must be True, got False; every step takes the memory and keys; only the mask may "
     r"have decoder_input false"),
    # the loops take it anyway; the step graph may not
    (lambda m: m["constants"][2].update(decoder_input=False), "contract", "constants[2].decoder_input", r"constant 'source_mask' has decoder_input false but decoder_step takes it"),
    (lambda m: (m["constants"][2].update(decoder_input=False), m["decode"].update(
        modes={"step": m["decode"]["modes"]["step"]}, default_mode="step")), "contract", "constants[2].decoder_input",
     r"constant 'source_mask' has decoder_input false but decoder_step takes it"),
    (lambda m: m["graphs"]["decode_loop"]["inputs"].pop(), "graph_io", "graphs.decode_loop.inputs",
     r"decode_loop.onnx: graph inputs \[.*'max_steps', 'memory', 'source_mask'\] do not match the manifest's"),
])
def test_tampered_constants_are_refused(attention_bundle, copy_bundle, edit, code, field, message):
    copy = copy_bundle(attention_bundle)
    manifest = json.loads((copy / "manifest.json").read_text())
    edit(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message) as info:
        load(copy)
    assert (info.value.code, info.value.field) == (code, field)


def test_return_attention_gives_each_hypothesis_its_alignment(model):
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "Sunday, 31 December 2049"])
    rows = model.decode(ids, DecodeOptions("beam", beam_width=3, n_best=2), lengths=lengths, return_attention=True)
    for row, length in zip(rows, lengths):
        for h in row:
            assert h.attention.shape == (len(h.tokens) + int(h.ended), length)
            np.testing.assert_allclose(h.attention.sum(axis=1), 1.0, atol=1e-5)  # nothing on padding
    # replayed weights are the step graph's own: the first row's first step, computed here directly
    state = model.encode(ids, lengths)
    start = np.full(2, model.target_vocab.start_id, np.int32)
    weights = model.bundle.sessions["decoder_step"].run(["attention"], {**state, "step_input": start[:, None]})[0]
    np.testing.assert_allclose(rows[0][0].attention[0], weights[0, : lengths[0]], atol=1e-6)
    greedy = model.decode(ids, lengths=lengths, return_attention=True)
    assert [h.attention.shape[0] for r in greedy for h in r] == [11, 11]  # ten characters and </s>


def test_return_attention_needs_an_attention_bundle(dates_bundle):
    plain = load(dates_bundle)
    ids, lengths = plain.source_vocab.encode_batch(["3 mei 1961"])
    with pytest.raises(InputError, match=r"^return_attention needs an attention bundle"):
        plain.decode(ids, lengths=lengths, return_attention=True)


def test_cli_show_attention(attention_bundle, dates_bundle, capsys):
    assert main(["run", str(attention_bundle), "--show-attention", "3 mei 1961"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "3 mei 1961 -> 1961-05-03"
    assert lines[1].split() == ["3", "m", "e", "i", "1", "9", "6", "1"]  # the spaces are columns too
    body = lines[2:]
    assert [line.split()[0] for line in body] == list("1961-05-03") + ["</s>"]
    for line in body:
        assert abs(sum(int(v) for v in line.split()[1:]) - 100) <= 6  # percents of one distribution, rounded
    assert main(["run", str(dates_bundle), "--show-attention", "3 mei 1961"]) == 1
    assert "has no attention: --show-attention needs a bundle trained with --attention" in capsys.readouterr().err


def test_explicit_lengths_cut_the_source_and_its_mask(model):
    """A length shorter than the row's tokens encodes only that prefix: mask and memory stop there too."""
    vocab = model.source_vocab
    full, _ = vocab.encode_batch(["3 mei 1961"])
    state = model.encode(full, np.array([4], np.int32))
    assert state["source_mask"].tolist() == [[1.0] * 4 + [0.0] * 6]
    assert not state["memory"][0, 4:].any()
    cut, lengths = vocab.encode_batch(["3 mei 1961"[:4]])
    assert [r.tolist() for r in model.generate(full, lengths=np.array([4], np.int32))] == \
        [r.tolist() for r in model.generate(cut, lengths=lengths)]


def test_bad_constants_in_a_state(model):
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "1 May 1999"])
    state = model.encode(ids, lengths)
    x = np.zeros(2, np.int32)
    memory = state["memory"].copy()
    memory[0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"^state 'memory': holds NaN or infinite values"):
        model.step(x, dict(state, memory=memory))
    with pytest.raises(InputError, match=r"^state 'source_mask': a source mask holds only 0 and 1, with a 1 in every"):
        model.step(x, dict(state, source_mask=state["source_mask"] * 2))
    with pytest.raises(InputError, match=r"^state 'source_mask': a source mask holds only 0 and 1, with a 1 in every"):
        model.step(x, dict(state, source_mask=np.zeros_like(state["source_mask"])))
    with pytest.raises(InputError, match=r"^state 'memory': not an array"):
        model.step(x, dict(state, memory=[[1.0], [1.0, 2.0]]))
    with pytest.raises(InputError, match=r"^state 'memory': expected float \(2, time, 32\), got float32 \(2, 0, 32\)"):
        model.step(x, dict(state, memory=state["memory"][:, :0]))
