"""Bring your own attention models: Keras's Attention, AdditiveAttention and MultiHeadAttention layers and
attention written with Dense/Dot/Softmax, LSTM and GRU, with and without a mask input.

The reference is the user's own models driven by a plain greedy loop, one text at a time (no padding):
the bundle must give the same tokens for the same texts decoded together in one padded batch.
"""

import json

import numpy as np
import pytest

from seq2seq_edge.export import ExportError, export_keras
from seq2seq_edge.runtime import DecodeOptions, load

from keras_examples import PAIRS, attention_seq2seq

TEXTS = ["Go.", "Hello!", "I see.", "Wow!", "Stop!", "Hi."]  # source lengths 3 to 6: a padded batch
MAX_STEPS = 16


@pytest.fixture(scope="module", params=[("luong", "lstm", True), ("bahdanau", "gru", False), ("mha", "lstm", True),
                                        ("dense", "gru", True), ("dense", "lstm", False)],
                ids=["Attention-lstm-mask", "AdditiveAttention-gru-no-mask", "MultiHeadAttention-lstm-mask",
                     "dense-dot-softmax-gru-mask", "dense-dot-softmax-lstm-no-mask"])
def brought(request, tmp_path_factory):
    kind, cell, mask = request.param
    enc, dec, source_tokens, target_tokens = attention_seq2seq(kind, cell, mask=mask)
    result = export_keras(enc, dec, tmp_path_factory.mktemp(kind) / "b", source_tokens=source_tokens,
                          target_tokens=target_tokens, start_token="\t", end_token="\n", max_steps=MAX_STEPS)
    return enc, dec, source_tokens, target_tokens, mask, result


def _keras_greedy(enc, dec, ids: list[int], target_tokens, mask: bool) -> list[int]:
    """The user's models, one unpadded row, the step model's inputs in its own order."""
    memory, *states = (np.asarray(v) for v in enc(np.asarray([ids], np.int32), training=False))
    token, out = target_tokens.index("\t"), []
    for _ in range(MAX_STEPS):
        feed = [np.array([[token]], np.int32)] + states + [memory] + ([np.ones((1, len(ids)), bool)] if mask else [])
        probs, *rest = (np.asarray(v) for v in dec(feed, training=False))
        states = rest[: len(states)]
        token = int(np.argmax(probs.reshape(-1)))
        if target_tokens[token] == "\n":
            break
        out.append(token)
    return out


NOT_FUSED = {
    "mha": "fused modes built around the step graph: the fused loop does not compute MultiHeadAttention (its per-head projections of query, "
           "keys and values); Keras's Attention and AdditiveAttention layers get it",
    "dense": "fused modes built around the step graph: the fused loop computes Keras's Attention or AdditiveAttention layers, concatenated "
             "with the top recurrent layer's output; this decoder concatenates ['Dot', '{cell}']"}


INT8_BROKEN = ("no fused-int8 mode: onnxruntime's quantiser broke the loop built from this step graph; step and "
               "fused are built")


def dec_kind(brought) -> str:
    layers = {type(layer).__name__ for layer in brought[1].layers}
    return next((k for k, name in (("luong", "Attention"), ("bahdanau", "AdditiveAttention"),
                                   ("mha", "MultiHeadAttention")) if name in layers), "dense")


def test_parity_and_the_contract_read_from_the_graphs(brought):
    _, _, _, _, mask, result = brought
    assert result.parity.ok and result.parity.tokens_identical
    m = load(result.path).manifest
    assert [(c.name, c.kind, c.decoder_input) for c in m.constants] == [("memory", "memory", True),
                                                                        ("source_mask", "mask", mask)]
    assert m.io.attention == "attention" and m.io.padding == "none"
    kind = dec_kind(brought)
    if kind in ("luong", "bahdanau"):  # Keras's Attention / AdditiveAttention: the fused loops from their weights
        assert tuple(m.modes) == ("step", "fused", "fused-int8") and result.notes == ()
        assert result.parity.modes["fused"]["tokens_identical"] and m.default_mode in ("fused", "fused-int8")
    else:
        # Other attention: the fused loop built around the converted step graph, checked like the rest.
        assert tuple(m.modes)[:2] == ("step", "fused") and result.parity.modes["fused"]["tokens_identical"]
        cell = next(type(layer).__name__ for layer in brought[1].layers if type(layer).__name__ in ("LSTM", "GRU"))
        assert result.notes[0] == NOT_FUSED[kind].format(cell=cell)
        assert result.notes[1:] == (() if "fused-int8" in m.modes else (INT8_BROKEN,))
    written = json.loads((result.path / "manifest.json").read_text())["constants"][1]
    assert ("decoder_input" in written) == (not mask)  # written only when false


def test_a_padded_batch_decodes_as_the_users_own_loop_does_row_by_row(brought):
    enc, dec, source_tokens, target_tokens, mask, result = brought
    model = load(result.path)
    want = [_keras_greedy(enc, dec, [source_tokens.index(c) for c in t], target_tokens, mask) for t in TEXTS]
    ids, lengths = model.source_vocab.encode_batch(TEXTS)
    assert len(set(lengths.tolist())) > 1  # the batch really is padded
    for mode in [m for m in model.modes if "int8" not in m]:  # step, and the fused loop where it was built
        assert [row.tolist() for row in model.generate(ids, lengths=lengths, mode=mode)] == want, mode
    state = model.encode(ids, lengths)
    np.testing.assert_array_equal(state["source_mask"], (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.float32))
    assert not state["memory"][0, lengths[0]:].any()  # zeros past the row's length


def test_beam_search_and_alignments_alone_equal_batch(brought):
    *_, result = brought
    model = load(result.path)
    options = DecodeOptions("beam", beam_width=3, n_best=2)
    batch = model.decode_text(TEXTS, options)
    for text, row in zip(TEXTS, batch):
        alone = model.decode_text([text], options)[0]
        assert [h[0] for h in alone] == [h[0] for h in row]
        np.testing.assert_allclose([h[1] for h in alone], [h[1] for h in row], atol=1e-4)
    ids, lengths = model.source_vocab.encode_batch(TEXTS)
    rows = model.decode(ids, lengths=lengths, return_attention=True)
    for (best,), n in zip(rows, lengths):
        assert best.attention.shape == (len(best.tokens) + int(best.ended), n)
        np.testing.assert_allclose(best.attention.sum(axis=1), 1.0, atol=1e-4)  # weights over the row's source


def test_refused_attention_patterns_name_what_is_wrong(tmp_path):
    import keras
    from keras import layers

    enc, dec, source_tokens, target_tokens = attention_seq2seq("luong", "lstm", mask=True, epochs=1)
    kw = dict(source_tokens=source_tokens, target_tokens=target_tokens, start_token="\t", end_token="\n",
              max_steps=5)
    # An encoder whose sequence has another width than the decoder's memory input.
    src = keras.Input((None,), dtype="int32")
    seq, h, c = layers.LSTM(16, return_sequences=True, return_state=True)(layers.Embedding(len(source_tokens), 4)(src))
    wide = layers.Dense(24)(seq)
    with pytest.raises(ExportError, match=r"encoder_model returns a sequence \(batch, time, 24\), so "
                                          r"decoder_model must take it as exactly one input of shape "
                                          r"\(batch, time, 24\); found none"):
        export_keras(keras.Model(src, [wide, h, c]), dec, tmp_path / "a", **kw)
    with pytest.raises(ExportError, match=r"encoder_model returns 2 sequences \(batch, time, units\); an attention "
                                          r"encoder returns one"):
        export_keras(keras.Model(src, [seq, seq, h, c]), dec, tmp_path / "a", **kw)
    # Any layer tf2onnx converts is exported as written: a Lambda of Keras ops (the mean of the memory) too, in
    # step mode (the fused loop's pattern does not know it), checked against the models.
    step, hi, ci = keras.Input((1,), dtype="int32"), keras.Input((16,)), keras.Input((16,))
    memory = keras.Input((None, 16))
    y, h2, c2 = layers.LSTM(16, return_sequences=True, return_state=True)(layers.Embedding(len(target_tokens), 4)(step),
                                                                         initial_state=[hi, ci])
    context = layers.Lambda(lambda t: keras.ops.mean(t, axis=1, keepdims=True), name="average")(memory)
    probs = layers.Dense(len(target_tokens), activation="softmax")(layers.Concatenate()([y, context]))
    result = export_keras(enc, keras.Model([step, hi, ci, memory], [probs, h2, c2]), tmp_path / "a", **kw)
    assert result.parity.ok and result.parity.tokens_identical
    assert result.notes and result.notes[0].startswith("fused modes built around the step graph:")
    assert list(load(tmp_path / "a").modes)[:2] == ["step", "fused"]


def test_pairs_are_the_examples_data():
    assert len(PAIRS) == 10  # the builder trains on these; texts above come from them
    assert all(t in [a for a, _ in PAIRS] for t in TEXTS)


@pytest.mark.parametrize("brought", [("bahdanau", "gru", False)], indirect=True, ids=["AdditiveAttention-gru-no-mask"])
def test_a_mask_the_decoder_does_not_take_must_cover_a_prefix(brought):
    from seq2seq_edge.runtime import InputError

    *_, result = brought
    model = load(result.path)
    ids, lengths = model.source_vocab.encode_batch(["Go.", "Hello!"])
    state = model.encode(ids, lengths)
    holes = state["source_mask"].copy()
    holes[1, 1] = 0.0  # 1, 0, 1, ...: not a row cut to its length
    with pytest.raises(InputError, match=r"state 'source_mask': this decoder takes no mask, so the runtime cuts each "
                                         r"row to its length; the mask must be 1 for a prefix"):
        model.step(np.full(2, model.target_vocab.start_id, np.int32), dict(state, source_mask=holes))
    logits, _ = model.step(np.full(2, model.target_vocab.start_id, np.int32), state)
    alone, _ = model.step(np.full(1, model.target_vocab.start_id, np.int32), model.encode(ids[:1, :3], lengths[:1]))
    np.testing.assert_allclose(logits[0], alone[0], atol=1e-5)  # the short row, stepped with its own length


@pytest.mark.parametrize("layer, order, combine", [("Attention-scaled", "output-first", True),
                                                   ("AdditiveAttention-unscaled", "context-first", False)])
def test_fused_loop_from_other_keras_attention_shapes(tmp_path, layer, order, combine):
    """Keras's Attention with use_scale, [output, context] concatenated the other way round and a tanh
    combine layer (Luong's attentional vector) before the head; AdditiveAttention without a scale. Seeded
    weights, untrained: export checks the fused loops against the models token for token."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    source_tokens, target_tokens = ["<pad>"] + list("abcdefgh"), ["\t", "\n"] + list("wxyz")
    src = keras.Input((None,), dtype="int32")
    memory, h, c = layers.LSTM(12, return_sequences=True, return_state=True)(
        layers.Embedding(len(source_tokens), 6)(src))
    encoder = keras.Model(src, [memory, h, c])
    step, h_in, c_in = keras.Input((1,), dtype="int32"), keras.Input((12,)), keras.Input((12,))
    memory_in, mask_in = keras.Input((None, 12)), keras.Input((None,), dtype="bool")
    out, h2, c2 = layers.LSTM(12, return_sequences=True, return_state=True)(
        layers.Embedding(len(target_tokens), 6)(step), initial_state=[h_in, c_in])
    attend = layers.Attention(use_scale=True) if layer.startswith("Attention") else \
        layers.AdditiveAttention(use_scale=False)
    context, weights = attend([out, memory_in], mask=[None, mask_in], return_attention_scores=True)
    if layer.startswith("Attention"):
        attend.scale.assign(4.0)  # not the initial 1.0: the loop must read it
    x = layers.Concatenate()([out, context] if order == "output-first" else [context, out])
    mixer = layers.Dense(12, activation="tanh", use_bias=False) if combine else None  # Luong's W_c has no bias
    if combine:
        x = mixer(x)
    head = layers.Dense(len(target_tokens), activation="softmax", use_bias=combine)
    probs = head(x)
    head_weights = head.get_weights()
    head.set_weights([head_weights[0] * 6] + head_weights[1:])
    decoder = keras.Model([step, h_in, c_in, memory_in, mask_in], [probs, h2, c2, weights])
    # What the loop reads from the graph: the kind, the scale, the combine's rows as [context; output]
    from seq2seq_edge.export.byo import decoder_contract
    from seq2seq_edge.export.byo_fused import fused_weights

    spec, why = fused_weights(decoder, decoder_contract(decoder, 12), "ids")
    a = spec.attention
    assert why is None and a.keys == "memory" and a.combine_tanh == combine
    if layer.startswith("Attention"):
        assert a.kind == "luong" and a.score_scale == pytest.approx(4.0)
    else:
        assert a.kind == "bahdanau" and a.query_kernel is None and np.all(a.score_vector == 1.0)
    rows = (mixer or head).get_weights()[0]
    context_rows = rows[12:] if order == "output-first" else rows[:12]
    np.testing.assert_array_equal(a.combine_kernel[:12], context_rows)
    texts = ["abc", "hgfedcba", "d", "eeee"]
    result = export_keras(encoder, decoder, tmp_path / "b", source_tokens=source_tokens, target_tokens=target_tokens,
                          start_token="\t", end_token="\n", max_steps=10, parity_sources=texts)
    model = load(result.path)
    assert model.modes == ("step", "fused", "fused-int8") and result.notes == ()
    assert result.parity.modes["fused"]["tokens_identical"] and result.parity.samples == len(texts)
    ids, lengths = model.source_vocab.encode_batch(texts)
    fused = model.generate(ids, lengths=lengths, mode="fused")
    for row, want in zip(fused, model.generate(ids, lengths=lengths, mode="step")):
        np.testing.assert_array_equal(row, want)
    assert any(len(row) for row in fused)  # something was decoded


def test_attention_called_with_what_the_loop_does_not_compute_keeps_the_step_mode(tmp_path):
    """use_causal_mask=True (only position 0 for a one-step query): no fused loop, and the note says why."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    tokens = ["<pad>", "\t", "\n"] + list("abcd")
    src = keras.Input((None,), dtype="int32")
    memory, h = layers.GRU(8, return_sequences=True, return_state=True)(layers.Embedding(len(tokens), 4)(src))
    step, h_in, memory_in = keras.Input((1,), dtype="int32"), keras.Input((8,)), keras.Input((None, 8))
    out, h2 = layers.GRU(8, return_sequences=True, return_state=True)(layers.Embedding(len(tokens), 4)(step),
                                                                      initial_state=[h_in])
    attend = layers.Attention()
    context = attend([out, memory_in], use_causal_mask=True)
    probs = layers.Dense(len(tokens), activation="softmax")(layers.Concatenate()([context, out]))
    result = export_keras(keras.Model(src, [memory, h]), keras.Model([step, h_in, memory_in], [probs, h2]),
                          tmp_path / "b", source_tokens=tokens, target_tokens=tokens, start_token="\t",
                          end_token="\n", max_steps=6)
    assert load(result.path).modes[:2] == ("step", "fused") and result.parity.modes["fused"]["tokens_identical"]
    assert result.notes[0] == (f"fused modes built around the step graph: attention layer {attend.name!r} is called "
                               "with ['use_causal_mask']; the fused loop computes attention(inputs, mask=..., "
                               "return_attention_scores=...) only")


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_a_fused_loop_that_does_not_match_falls_back_to_the_step_graph_loop(tmp_path, monkeypatch):
    """Should the pattern be misread, the loop fails its parity check: the bundle gets the loop built around the
    step graph instead (which matched), and the note says what happened."""
    from dataclasses import replace

    import seq2seq_edge.export.byo as byo

    real = byo.fused_weights

    def misread(*args):
        spec, why = real(*args)
        return replace(spec, attention=replace(spec.attention, combine_kernel=-spec.attention.combine_kernel)), why

    monkeypatch.setattr(byo, "fused_weights", misread)
    enc, dec, source_tokens, target_tokens = attention_seq2seq("luong", "lstm", mask=True, epochs=5)
    result = export_keras(enc, dec, tmp_path / "b", source_tokens=source_tokens, target_tokens=target_tokens,
                          start_token="\t", end_token="\n", max_steps=MAX_STEPS)
    assert load(result.path).modes[:2] == ("step", "fused") and result.parity.tokens_identical
    assert result.parity.modes["fused"]["tokens_identical"]  # the loop around the step graph, which matched
    assert result.notes[0].startswith(
        "fused modes built around the step graph: the fused loop built from the decoder's weights did not match it "
        "at export "
        "(tokens_identical False, sequences_differing ")
