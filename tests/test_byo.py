"""Bring your own Keras models: the keras-io char seq2seq pair, the 4-layer sine decoder, refusals."""

import json

import numpy as np
import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.export import ExportError, export_keras
from seq2seq_edge.runtime import load

from graph_metadata import check_graph_metadata
from keras_examples import keras_io_char_seq2seq, sine_four_layer_decoder

WORDS = ["Go.", "Hi.", "Wait!", "Hello!", "Run!", "Help!"]


@pytest.fixture(scope="module")
def keras_io():
    return keras_io_char_seq2seq(epochs=40)


@pytest.fixture(scope="module")
def keras_io_bundle(keras_io, tmp_path_factory):
    enc, dec, source_tokens, target_tokens, _, max_out = keras_io
    return export_keras(enc, dec, tmp_path_factory.mktemp("byo") / "b", source_tokens=source_tokens,
                        target_tokens=target_tokens, start_token="\t", end_token="\n", max_steps=max_out)


def test_keras_io_pair_matches_its_own_decode_loop(keras_io, keras_io_bundle):
    decode_sequence = keras_io[4]
    assert keras_io_bundle.parity.ok and keras_io_bundle.parity.tokens_identical
    model = load(keras_io_bundle.path)
    want = [decode_sequence(w) for w in WORDS]
    assert model.generate_text(["Go."]) == want[:1]
    assert model.generate_text(WORDS) == want  # different lengths in one batch
    # The fused loop built from the example's own weights (one-hot input: a row lookup; softmax head).
    assert model.modes == ("step", "fused", "fused-int8") and keras_io_bundle.notes == ()
    assert keras_io_bundle.parity.modes["fused"]["tokens_identical"]
    assert model.generate_text(WORDS, mode="fused") == want
    # No held-out data: export drew the parity samples itself, says so, and records the int8 rule's measure.
    report = keras_io_bundle.parity
    assert report.samples == 64 and report.data == ("seeded random token sequences of 12 steps drawn by export "
                                                    "(pass parity_sources= to check on real inputs)")
    verdict = model.manifest.parity["int8_default"]
    assert verdict["token_agreement"] == report.modes["fused-int8"]["token_agreement"]
    assert model.manifest.default_mode == ("fused-int8" if verdict["eligible"] else "fused")


def test_a_decoder_the_pattern_does_not_know_gets_the_loop_built_from_its_step_graph(keras_io, tmp_path):
    import keras

    enc, dec, source_tokens, target_tokens, _, max_out = keras_io
    step, h, c = dec.inputs
    lstm = next(layer for layer in dec.layers if type(layer).__name__ == "LSTM")
    head = next(layer for layer in dec.layers if type(layer).__name__ == "Dense")
    y, h2, c2 = lstm(step, initial_state=[h, c])
    extra = keras.layers.Dense(lstm.units, activation="tanh", name="between")(y)  # not a plain stack any more
    odd = keras.Model([step, h, c], [head(extra), h2, c2])
    result = export_keras(enc, odd, tmp_path / "b", source_tokens=source_tokens, target_tokens=target_tokens,
                          start_token="\t", end_token="\n", max_steps=max_out)
    assert load(result.path).modes == ("step", "fused", "fused-int8")
    assert result.parity.modes["fused"]["tokens_identical"]
    why = f"recurrent layer {lstm.name!r} does not feed {head.name} directly; the fused loop computes a plain stack"
    assert result.notes == (f"fused modes built around the step graph: {why}",)
    only = export_keras(enc, odd, tmp_path / "c", source_tokens=source_tokens, target_tokens=target_tokens,
                        start_token="\t", end_token="\n", max_steps=max_out, modes=["fused"])
    assert load(only.path).modes == ("fused",)


def test_keras_io_state_contract_read_from_the_models(keras_io_bundle):
    check_graph_metadata(keras_io_bundle.path)
    m = load(keras_io_bundle.path).manifest
    assert m.cell == "lstm" and m.io.padding == "none"
    assert [(s.name, s.init, s.encoder_output) for s in m.state] == [("h0", "encoder", "h0"), ("c0", "encoder", "c0")]
    assert m.target.vocabulary.start_id == m.target.vocabulary.tokens.index("\t")
    assert [t.name for t in m.graphs["decoder_step"].inputs] == ["step_input", "h0", "c0"]
    assert m.graphs["decoder_step"].input("step_input").dtype == "int32"  # ids, though Keras took one-hot


def _keras_sine_loop(enc, dec, x, steps, feeds):
    """What users write: encoder states into the decoder inputs named in ``feeds``, zeros elsewhere."""
    states = {t.name: np.zeros((len(x), t.shape[-1]), np.float32) for t in dec.inputs[1:]}
    for name, value in zip(feeds, enc(x)):
        states[name] = np.asarray(value)
    y, out = np.zeros((len(x), 1, 1), np.float32), []
    for _ in range(steps):
        y, *values = (np.asarray(v) for v in dec([y] + [states[t.name] for t in dec.inputs[1:]]))
        states = dict(zip([t.name for t in dec.inputs[1:]], values))
        out.append(y[:, 0])
    return np.stack(out, axis=1)


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_four_layer_decoder_with_zero_started_layers(tmp_path):
    enc, dec = sine_four_layer_decoder(horizon=150)
    with pytest.raises(ExportError, match=r"get no encoder output .* zero_states=\["):
        export_keras(enc, dec, tmp_path / "b", max_steps=150)  # zero-started layers must be declared
    result = export_keras(enc, dec, tmp_path / "b", max_steps=150, zero_states=[t.name for t in dec.inputs[3:]])
    assert result.parity.ok
    model = load(result.path)
    assert [(s.name, s.init) for s in model.manifest.state] == [
        ("h0", "encoder"), ("c0", "encoder"), ("h1", "zeros"), ("c1", "zeros"), ("h2", "zeros"), ("c2", "zeros"),
        ("h3", "zeros"), ("c3", "zeros")]
    x = np.sin(np.linspace(0, 6, 30, dtype=np.float32))[None, :, None] * np.float32([[[1.0]], [[0.5]]])
    want = _keras_sine_loop(enc, dec, x, 150, [t.name for t in dec.inputs[1:3]])
    assert model.modes == ("step", "fused", "fused-int8") and result.notes == ()
    for mode in model.modes:  # the fused loop from the brought weights: zero-started layers, output fed back
        got = np.stack(model.generate(x, mode=mode))
        assert got.shape == (2, 150, 1)
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_state_map_routes_encoder_states(tmp_path):
    enc, dec = sine_four_layer_decoder()
    feeds = [dec.inputs[3].name, dec.inputs[4].name]  # layer 1's h and c
    zero = [t.name for t in dec.inputs[1:] if t.name not in feeds]
    result = export_keras(enc, dec, tmp_path / "b", max_steps=20, state_map=feeds, zero_states=zero)
    model = load(result.path)
    assert [s.name for s in model.manifest.state if s.init == "encoder"] == ["h1", "c1"]
    x = np.cos(np.linspace(0, 4, 12, dtype=np.float32))[None, :, None]
    want = _keras_sine_loop(enc, dec, x, 20, feeds)
    for mode in ("step", "fused"):  # fp32 (the int8 default is held to the decode tolerance, 1e-3)
        np.testing.assert_allclose(model.generate(x, mode=mode), want, atol=1e-4)


def test_refusals(keras_io, tmp_path):
    import keras

    enc, dec, source_tokens, target_tokens, _, _ = keras_io
    kw = dict(source_tokens=source_tokens, target_tokens=target_tokens, start_token="\t", end_token="\n")
    with pytest.raises(ExportError, match=r"max_steps must be a positive integer"):
        export_keras(enc, dec, tmp_path / "a", **kw)
    with pytest.raises(ExportError, match=r"start_token must be one of target_tokens"):
        export_keras(enc, dec, tmp_path / "a", max_steps=5, **dict(kw, start_token="<go>"))
    with pytest.raises(ExportError, match=r"source input has \d+ one-hot channels but 3 tokens were given"):
        export_keras(enc, dec, tmp_path / "a", max_steps=5, **dict(kw, source_tokens=["a", "b", "c"]))
    with pytest.raises(ExportError, match=r"state_map: \['nope', 'nope2'\] are not decoder state inputs"):
        export_keras(enc, dec, tmp_path / "a", max_steps=5, state_map=["nope", "nope2"], **kw)
    small = keras.Input((None, len(source_tokens)))
    _, h, c = keras.layers.LSTM(3, return_state=True)(small)
    with pytest.raises(ExportError, match=r"encoder output .* has shape \(None, 3\) but feeds decoder state input"):
        export_keras(keras.Model(small, [h, c]), dec, tmp_path / "a", max_steps=5, **kw)
    stateful_in = keras.Input((1, 1), batch_size=1)
    s_out, s_h, s_c = keras.layers.LSTM(2, stateful=True, return_state=True, name="remember")(stateful_in)
    with pytest.raises(ExportError, match=r"layer 'remember': stateful=True is not supported"):
        export_keras(keras.Model(stateful_in, [s_h, s_c]), dec, tmp_path / "a", max_steps=5, **kw)
    assert not (tmp_path / "a").exists()


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_parity_on_the_users_own_sources_of_mixed_lengths(keras_io, tmp_path):
    """parity_sources: every text is checked (Keras sees each length group unpadded, the runtime the padded
    batch), and the report says what it was checked on."""
    enc, dec, source_tokens, target_tokens, decode_sequence, max_out = keras_io
    texts = WORDS + ["We won.", "Stop!", "I see.", "Got it!"]
    result = export_keras(enc, dec, tmp_path / "b", source_tokens=source_tokens, target_tokens=target_tokens,
                          start_token="\t", end_token="\n", max_steps=max_out, parity_sources=texts,
                          modes=["fused", "fused-int8"])
    assert result.parity.samples == len(texts) and result.parity.tokens_identical
    # modes: every mode checked, only the loops' graphs written; the default is the fused loop
    assert sorted(p.name for p in result.path.iterdir()) == ["decode_loop.onnx", "decode_loop_int8.onnx",
                                                             "encoder.onnx", "encoder_int8.onnx", "manifest.json"]
    model = load(result.path)
    assert model.generate_text(WORDS) == [decode_sequence(w) for w in WORDS]
    verdict = model.manifest.parity["int8_default"]
    assert not verdict["eligible"] and model.manifest.default_mode == "fused"  # this small model's int8 drifts
    with pytest.raises(ExportError, match=r"modes \['fused-int8'\]: the int8 mode did not pass its rule to be a "
                                          r"default \(\d+\.\d\d% of its tokens agree with fp32, under 99.9%\)"):
        export_keras(enc, dec, tmp_path / "i", source_tokens=source_tokens, target_tokens=target_tokens,
                     start_token="\t", end_token="\n", max_steps=max_out, parity_sources=texts,
                     modes=["fused-int8"])
    assert not (tmp_path / "i").exists()
    assert result.parity.data == "texts given as parity_sources"
    assert result.parity.summary().startswith(f"{len(texts)} texts given as parity_sources, {max_out} steps")
    assert load(result.path).manifest.parity["data"] == "texts given as parity_sources"
    with pytest.raises(ExportError, match=r"parity_sources: expected texts or a \(samples, time\) array of ids"):
        export_keras(enc, dec, tmp_path / "c", source_tokens=source_tokens, target_tokens=target_tokens,
                     start_token="\t", end_token="\n", max_steps=max_out, parity_sources=np.zeros(3, np.int32))
    with pytest.raises(ExportError, match=r"parity_sources: text 1 is empty; give sources of at least one symbol"):
        export_keras(enc, dec, tmp_path / "c", source_tokens=source_tokens, target_tokens=target_tokens,
                     start_token="\t", end_token="\n", max_steps=max_out, parity_sources=["Go.", ""])
    with pytest.raises(ExportError, match=r"parity_sources: expected texts or a \(samples, time\) array of ids: "):
        export_keras(enc, dec, tmp_path / "c", source_tokens=source_tokens, target_tokens=target_tokens,
                     start_token="\t", end_token="\n", max_steps=max_out, parity_sources=[[1, 2], [3]])
    assert not (tmp_path / "c").exists()
    with pytest.warns(DeprecationWarning, match=r"export_keras\(samples=...\) is now parity_sources=..."):
        old = export_keras(enc, dec, tmp_path / "d", source_tokens=source_tokens, target_tokens=target_tokens,
                           start_token="\t", end_token="\n", max_steps=max_out, samples=texts[:3])
    assert old.parity.samples == 3 and old.parity.data == "texts given as parity_sources"


def test_cli_export_keras(keras_io, tmp_path, capsys):
    enc, dec, source_tokens, target_tokens, decode_sequence, max_out = keras_io
    enc.save(tmp_path / "enc.keras")
    dec.save(tmp_path / "dec.keras")
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"source_tokens": source_tokens, "target_tokens": target_tokens,
                                 "start_token": "\t", "end_token": "\n"}))
    bundle = tmp_path / "bundle"
    sources = tmp_path / "sources.txt"
    sources.write_text("Go.\nHello!\n\nWait!\n", encoding="utf-8")
    assert main(["export-keras", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--vocab", str(vocab), "--max-steps", str(max_out), "--out", str(bundle),
                 "--parity-sources", str(sources)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("parity: 3 texts given as parity_sources") and "greedy tokens identical: True" in out
    assert main(["run", str(bundle), "Go.", "Hello!"]) == 0
    assert capsys.readouterr().out.splitlines() == [decode_sequence("Go."), decode_sequence("Hello!")]
    assert main(["export-keras", "--encoder", str(tmp_path / "enc.keras"), "--out", str(tmp_path / "x")]) == 1
    assert "pass --encoder and --decoder (or --autoencoder)" in capsys.readouterr().err
    assert main(["export-keras", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--vocab", str(vocab), "--max-steps", "5", "--out", str(tmp_path / "y"),
                 "--parity-sources", str(tmp_path / "missing.txt")]) == 1
    assert "missing.txt: no such file (--parity-sources takes a text file, one source per line)" in \
        capsys.readouterr().err


@pytest.mark.slow  # trains its own LSTM 64 for 20 epochs; the keras_io fixture's model exports in the default run
def test_a_keras_io_model_with_large_log_probabilities_exports(tmp_path):
    """LSTM 64, softmax output, 20 epochs: its rare tokens' log-probabilities are large, and an absolute 1e-4
    on them refused a correct model before; the relative step measure and identical tokens let it through."""
    enc, dec, source_tokens, target_tokens, decode_sequence, max_out = keras_io_char_seq2seq(latent_dim=64, epochs=20)
    result = export_keras(enc, dec, tmp_path / "b", source_tokens=source_tokens, target_tokens=target_tokens,
                          start_token="\t", end_token="\n", max_steps=max_out)
    assert result.parity.ok and result.parity.tokens_identical and result.parity.step_output_error < 1e-5
    assert load(result.path).generate_text(WORDS) == [decode_sequence(w) for w in WORDS]


@pytest.mark.parametrize("cell, activation", [("gru", "tanh"), ("lstm", "relu")])
def test_fused_loop_from_a_brought_id_decoder(tmp_path, cell, activation):
    """Ids through an Embedding, a 2-layer stack, a Dense head with no activation (logits)."""
    import keras

    keras.utils.set_random_seed(3)
    rnn = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[cell]
    per_layer = 2 if cell == "lstm" else 1
    tokens = ["<pad>", "<s>", "</s>"] + list("abcdefgh")
    src = keras.Input((None,), dtype="int32")
    x, states = keras.layers.Embedding(len(tokens), 8)(src), []
    for _ in range(2):
        x, *s = rnn(12, activation=activation, return_sequences=True, return_state=True)(x)
        states += s
    encoder = keras.Model(src, states)
    step = keras.Input((1,), dtype="int32")
    inputs = [keras.Input((12,)) for _ in range(2 * per_layer)]
    y, outputs = keras.layers.Embedding(len(tokens), 8)(step), []
    for k in range(2):
        y, *s = rnn(12, activation=activation, return_sequences=True, return_state=True)(
            y, initial_state=inputs[k * per_layer:(k + 1) * per_layer])
        outputs += s
    decoder = keras.Model([step] + inputs, [keras.layers.Dense(len(tokens))(y)] + outputs)
    result = export_keras(encoder, decoder, tmp_path / "b", source_tokens=tokens, target_tokens=tokens,
                          start_token="<s>", end_token="</s>", max_steps=12)
    model = load(result.path)
    assert model.modes == ("step", "fused", "fused-int8") and result.notes == ()
    assert result.parity.modes["fused"]["tokens_identical"]
    texts = ["abc", "hgfedcba", "d"]
    assert model.generate_text(texts, mode="fused") == model.generate_text(texts, mode="step")


def test_every_mode_of_a_brought_model_gives_a_row_its_answer_alone(keras_io_bundle):
    """The keras-io pair as export_keras writes it (step, fused, fused-int8 with static scales): 120 texts of
    its own symbols, decoded alone, in one batch and in shuffled batches of 37, the same in every mode."""
    model = load(keras_io_bundle.path)
    assert "fused-int8" in model.modes and model.manifest.int8["method"] == "static"
    assert model.batch_dependent_modes == ()
    rng = np.random.default_rng(3)
    symbols = [s for s in model.source_vocab.tokens if s.isprintable() and not s.isspace()]
    texts = ["".join(rng.choice(symbols, rng.integers(1, 12))) for _ in range(120)]
    order = rng.permutation(len(texts))
    for mode in model.modes:
        batch = model.generate_text(texts, mode=mode)
        alone = [model.generate_text([t], mode=mode)[0] for t in texts]
        shuffled = {}
        for k in range(0, len(texts), 37):
            part = [int(i) for i in order[k:k + 37]]
            shuffled.update(zip(part, model.generate_text([texts[i] for i in part], mode=mode)))
        assert alone == batch and [shuffled[i] for i in range(len(texts))] == batch, mode
