"""Bring your own Keras models: how encoder states start decoder layers (state_map one->many, zero_states,
refusal of an undeclared wiring), parity against the user's own decode loop (reference=), float id inputs,
and the messages for a training model or a subclassed model passed where an inference model is expected."""

import re

import numpy as np
import pytest

from seq2seq_edge.export import ExportError, export_keras
from seq2seq_edge.export.writing import ParityError
from seq2seq_edge.runtime import load

TOKENS = list("\t\nabcdefghij")  # "\t" starts, "\n" ends, as in the keras-io example
START, END, STEPS = 0, 1, 10


def one_layer_encoder_two_layer_decoder(units: int = 8, seed: int = 0, dtype: str = "int32", mask_zero=False):
    """A word-level tutorial's shape: Embedding + LSTM encoder whose [h, c] start both layers of a 2-layer
    LSTM decoder; ``dtype="float32"`` writes the inputs as keras.Input(shape=(None,)) does by default."""
    import keras

    keras.utils.set_random_seed(seed)
    src = keras.Input(shape=(None,), dtype=dtype)
    _, h, c = keras.layers.LSTM(units, return_state=True)(keras.layers.Embedding(len(TOKENS), 8,
                                                                                   mask_zero=mask_zero)(src))
    encoder_model = keras.Model(src, [h, c])
    step = keras.Input(shape=(None,), dtype=dtype)
    first = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    second = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    states = [keras.Input(shape=(units,)) for _ in range(4)]
    y, h1, c1 = first(keras.layers.Embedding(len(TOKENS), 8)(step), initial_state=states[:2])
    y, h2, c2 = second(y, initial_state=states[2:])
    probs = keras.layers.Dense(len(TOKENS), activation="softmax")(y)
    decoder_model = keras.Model([step] + states, [probs, h1, c1, h2, c2])
    return encoder_model, decoder_model


def users_loop(encoder_model, decoder_model, layer2="encoder"):
    """The user's own greedy loop (decoder_model called per step): layer 2 starts from the encoder's [h, c]
    (as the user's training model wires it) or from zeros."""
    dtype = encoder_model.inputs[0].dtype

    def decode(ids) -> list[int]:
        h, c = (np.asarray(t) for t in encoder_model(np.asarray([ids], dtype)))
        states = [h, c, h, c] if layer2 == "encoder" else [h, c, np.zeros_like(h), np.zeros_like(c)]
        token, out = START, []
        for _ in range(STEPS):
            probs, *states = (np.asarray(t) for t in decoder_model([np.asarray([[token]], dtype)] + states))
            token = int(np.argmax(probs[0, -1]))
            if token == END:
                break
            out.append(token)
        return out

    return decode


SOURCES = np.random.default_rng(1).integers(2, len(TOKENS), size=(8, 5)).astype(np.int32)
KW = dict(source_tokens=TOKENS, target_tokens=TOKENS, start_token="\t", end_token="\n", max_steps=STEPS,
          parity_sources=SOURCES)


@pytest.fixture(scope="module")
def pair():
    return one_layer_encoder_two_layer_decoder()


def _names(decoder_model):
    return [t.name for t in decoder_model.inputs[1:]]  # h1, c1, h2, c2 inputs


def test_undeclared_zero_states_are_refused_with_both_fixes(pair, tmp_path):
    enc, dec = pair
    h1, c1, h2, c2 = _names(dec)
    with pytest.raises(ExportError) as err:
        export_keras(enc, dec, tmp_path / "b", **KW)
    assert str(err.value) == (
        f"decoder_model state inputs {[h2, c2]} get no encoder output (encoder_model returns 2 state tensors) and "
        f"nothing says they start at zero. Say how your decode loop starts them: state_map={{0: {[h1, h2]}, "
        f"1: {[c1, c2]}}} feeds one encoder output (by index or name) to several decoder states, or "
        f"zero_states={[h2, c2]} starts them at zero")
    assert not (tmp_path / "b").exists()
    with pytest.raises(ExportError, match=r"state inputs \['%s', '%s'\] get no encoder output" % (h2, c2)):
        export_keras(enc, dec, tmp_path / "b", state_map=[h1, c1], **KW)  # a list that leaves layer 2 open
    with pytest.raises(ExportError, match=r"zero_states: \['nope'\] are not decoder state inputs"):
        export_keras(enc, dec, tmp_path / "b", zero_states=["nope"], **KW)
    with pytest.raises(ExportError, match=r"are both in state_map and in zero_states"):
        export_keras(enc, dec, tmp_path / "b", state_map={0: [h1, h2], 1: [c1, c2]}, zero_states=[h2], **KW)
    with pytest.raises(ExportError, match=r"state_map: encoder outputs \[1\] feed no decoder state"):
        export_keras(enc, dec, tmp_path / "b", state_map={0: [h1, h2]}, zero_states=[c1, c2], **KW)
    assert not (tmp_path / "b").exists()


def test_one_encoder_output_feeds_both_decoder_layers(pair, tmp_path):
    enc, dec = pair
    h1, c1, h2, c2 = _names(dec)
    loop = users_loop(enc, dec)
    result = export_keras(enc, dec, tmp_path / "b", state_map={enc.outputs[0].name: [h1, h2], 1: [c1, c2]},
                          reference=loop, **KW)
    model = load(result.path)
    assert [(s.name, s.init, s.encoder_output) for s in model.manifest.state] == [
        ("h0", "encoder", "h0"), ("c0", "encoder", "c0"), ("h1", "encoder", "h1"), ("c1", "encoder", "c1")]
    want = [loop(row) for row in SOURCES]
    for mode in ("step", "fused"):
        assert [r.tolist() for r in model.generate(SOURCES, mode=mode)] == want  # 8/8 like the user's loop
    loop_report = model.manifest.parity["reference_loop"]
    assert loop_report["rows"] == 8 and loop_report["identical"] and loop_report["first_difference"] is None
    assert all(loop_report["modes"][m]["rows_identical"] == 8 for m in ("step", "fused"))
    assert "rows identical to your own decode loop (reference=): step 8/8, fused 8/8" in result.parity.summary()


def test_declared_zero_states_decode_like_a_loop_that_starts_them_at_zero(pair, tmp_path):
    enc, dec = pair
    h1, c1, h2, c2 = _names(dec)
    loop = users_loop(enc, dec, layer2="zeros")
    result = export_keras(enc, dec, tmp_path / "b", zero_states=[h2, c2], reference=loop, **KW)
    model = load(result.path)
    assert [(s.name, s.init) for s in model.manifest.state] == [
        ("h0", "encoder"), ("c0", "encoder"), ("h1", "zeros"), ("c1", "zeros")]
    assert [r.tolist() for r in model.generate(SOURCES, mode="step")] == [loop(row) for row in SOURCES]


def test_reference_refuses_a_bundle_that_decodes_unlike_the_users_loop(pair, tmp_path):
    """The user's loop starts layer 2 from the encoder; the export declares it zero (a wrong wiring that the
    graph-by-graph parity cannot see). reference= must refuse it, showing the first differing row."""
    enc, dec = pair
    h1, c1, h2, c2 = _names(dec)
    loop, wrong = users_loop(enc, dec), users_loop(enc, dec, layer2="zeros")
    differing = [i for i, row in enumerate(SOURCES) if loop(row) != wrong(row)]
    assert differing  # the two wirings decode differently on these sources, so the check below can fail
    assert export_keras(enc, dec, tmp_path / "a", zero_states=[h2, c2], **KW).parity.ok  # blind without reference
    with pytest.raises(ParityError) as err:
        export_keras(enc, dec, tmp_path / "b", zero_states=[h2, c2], reference=loop, **KW)
    i = differing[0]
    message = str(err.value)
    assert message.startswith("parity check failed, nothing written: ")
    assert (f"first difference: step mode, row {i}, source {SOURCES[i].tolist()!r}: your loop gave "
            f"{loop(SOURCES[i])!r}, the bundle {wrong(SOURCES[i])!r}") in message
    assert f"step {8 - len(differing)}/8" in message
    assert not (tmp_path / "b").exists()


def test_reference_in_text_form(pair, tmp_path):
    """A decode function that returns text (ending with its end token, as some loops do) is compared as text."""
    enc, dec = pair
    h1, c1, h2, c2 = _names(dec)
    loop = users_loop(enc, dec)
    text = lambda ids: "".join(TOKENS[t] for t in loop(ids)) + "\n"  # noqa: E731
    result = export_keras(enc, dec, tmp_path / "b", state_map=[[h1, h2], [c1, c2]], reference=text, **KW)
    assert result.parity.reference_loop["identical"]
    with pytest.raises(ExportError, match=re.escape(f"reference: your decode function raised ValueError: no on "
                                                    f"parity source 0 ({SOURCES[0].tolist()}); it is called with one "
                                                    "source at a time")):
        export_keras(enc, dec, tmp_path / "c", state_map=[[h1, h2], [c1, c2]], reference=_raises, **KW)


def _raises(ids):
    raise ValueError("no")


def test_float_id_inputs_feeding_embeddings(tmp_path):
    """keras.Input(shape=(None,)) is float32: with an Embedding behind it, it takes ids (cast by the wrapper)."""
    enc, dec = one_layer_encoder_two_layer_decoder(seed=2, dtype="float32", mask_zero=True)
    assert "float" in str(enc.inputs[0].dtype) and "float" in str(dec.inputs[0].dtype)
    h1, c1, h2, c2 = _names(dec)
    loop = users_loop(enc, dec)
    result = export_keras(enc, dec, tmp_path / "b", state_map={0: [h1, h2], 1: [c1, c2]}, reference=loop, **KW)
    model = load(result.path)
    assert model.manifest.graphs["encoder"].input("source").dtype == "int32"
    assert model.manifest.graphs["decoder_step"].input("step_input").dtype == "int32"
    for mode in model.modes:
        if "int8" not in mode:
            assert [r.tolist() for r in model.generate(SOURCES, mode=mode)] == [loop(row) for row in SOURCES]


def test_training_and_subclassed_models_are_refused_with_the_fix(pair, tmp_path):
    import keras

    enc, dec = pair
    src, step = keras.Input(shape=(None,), dtype="int32"), keras.Input(shape=(None,), dtype="int32")
    _, h, c = keras.layers.LSTM(8, return_state=True)(keras.layers.Embedding(12, 8)(src))
    y = keras.layers.LSTM(8, return_sequences=True)(keras.layers.Embedding(12, 8)(step), initial_state=[h, c])
    training = keras.Model([src, step], keras.layers.Dense(12, activation="softmax")(y), name="training")
    expected = ("takes 2 inputs and returns 1 output, like the training model Model([encoder_inputs, "
                "decoder_inputs], decoder_outputs); export_keras takes the two inference models built from its "
                "layers: encoder_model: source -> states: Model(encoder_inputs, encoder_states); decoder_model: "
                "[step input] + states -> [output] + states: Model([decoder_inputs] + decoder_states_inputs, "
                "[decoder_outputs] + decoder_states). See https://keras.io/examples/nlp/lstm_seq2seq/")
    for arg, models in (("encoder_model", (training, dec)), ("decoder_model", (enc, training))):
        with pytest.raises(ExportError) as err:
            export_keras(*models, tmp_path / "b", **KW)
        assert str(err.value).startswith(f"{arg}: 'training' {expected}")

    class Encoder(keras.Model):
        def call(self, x):
            return x

    for arg, models in (("encoder_model", (Encoder(), dec)), ("decoder_model", (enc, keras.layers.Dense(3)))):
        with pytest.raises(ExportError) as err:
            export_keras(*models, tmp_path / "b", **KW)
        kind = type(models[0] if arg == "encoder_model" else models[1]).__name__
        assert str(err.value) == (
            f"{arg}: {kind} is not a functional keras.Model (it has no .inputs and .outputs graph: a subclassed "
            "Model or Layer). Export subclassed models with seq2seq_edge.export.functions.export_functions(encode, "
            "step, ...), which traces your own encode and step functions")
    assert not (tmp_path / "b").exists()


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_reference_for_a_real_valued_decoder(tmp_path):
    """A continuous decoder: the user's loop returns a (steps, features) array per window; within the decode
    tolerance it matches, and a loop wired otherwise (encoder states into every layer) is refused."""
    from keras_examples import sine_four_layer_decoder

    enc, dec = sine_four_layer_decoder(horizon=20)
    names = [t.name for t in dec.inputs[1:]]

    def loop(window, every_layer=False):
        h, c = (np.asarray(t) for t in enc(window[None]))
        states = [h, c] * 4 if every_layer else [h, c] + [np.zeros_like(h)] * 6
        y, out = np.zeros((1, 1, 1), np.float32), []
        for _ in range(20):
            y, *states = (np.asarray(t) for t in dec([y] + states))
            out.append(y[0, 0])
        return np.stack(out)  # (steps, features)

    windows = np.sin(np.linspace(0, 6, 24, dtype=np.float32))[None, :, None] * np.float32([[[1]], [[.5]], [[-1]]])
    kw = dict(max_steps=20, parity_sources=windows, zero_states=names[2:])
    result = export_keras(enc, dec, tmp_path / "a", reference=loop, **kw)
    assert result.parity.reference_loop["identical"] and result.parity.reference_loop["rows"] == 3
    assert max(abs(loop(w, True) - loop(w)).max() for w in windows) > 1e-2  # the wirings differ here
    with pytest.raises(ParityError, match=r"first difference: step mode, row 0, source "):
        export_keras(enc, dec, tmp_path / "b", reference=lambda w: loop(w, every_layer=True), **kw)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_cli_declares_the_wiring(pair, tmp_path, capsys):
    import json

    from seq2seq_edge.cli import main

    enc, dec = pair
    enc.save(tmp_path / "enc.keras")
    dec.save(tmp_path / "dec.keras")
    names = [t.name for t in __import__("keras").saving.load_model(tmp_path / "dec.keras").inputs[1:]]
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"source_tokens": TOKENS, "target_tokens": TOKENS, "start_token": "\t",
                                 "end_token": "\n"}))
    args = ["export-keras", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
            "--vocab", str(vocab), "--max-steps", str(STEPS)]
    assert main(args + ["--out", str(tmp_path / "a")]) == 1
    assert f"zero_states={names[2:]} starts them at zero" in capsys.readouterr().err
    state_map = f"{names[0]}+{names[2]},{names[1]}+{names[3]}"
    assert main(args + ["--out", str(tmp_path / "b"), "--state-map", state_map]) == 0
    assert [s.init for s in load(tmp_path / "b").manifest.state] == ["encoder"] * 4
    assert main(args + ["--out", str(tmp_path / "c"), "--zero-states", ",".join(names[2:])]) == 0
    assert [s.init for s in load(tmp_path / "c").manifest.state] == ["encoder", "encoder", "zeros", "zeros"]
