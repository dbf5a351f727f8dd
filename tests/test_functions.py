"""export_functions on TensorFlow's NMT-with-attention tutorial (tests/nmt_tutorial.py): a subclassed Keras
model that export_keras cannot read, exported through a few lines of glue around its encoder and decoder.

The tutorial's own loop is compared on unpadded rows, one at a time. On a 0-padded batch its Keras 3 port
attends to the padding from the second step on: MultiHeadAttention deletes ``context._keras_mask`` the first
time it reads it. The bundle encodes rows unpadded and steps rows of equal length together, so it needs
no mask at all (the mask constant it carries is ones over each row).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from seq2seq_edge.export import ExportError, export_functions
from seq2seq_edge.bench.nmt import glue, translate_rows  # the README's glue: encode returns the context, step one decoder call
from seq2seq_edge.runtime import load

import nmt_tutorial as nmt

MAX_LENGTH = 8


@pytest.fixture(scope="module")
def translator():
    return nmt.train_reverse(units=16, epochs=3)


def export(translator, out, **kwargs):
    encode, step = glue(translator)
    args = dict(source_tokens=nmt.TOKENS, target_tokens=nmt.TOKENS, start_token="[START]", end_token="[END]",
                max_steps=MAX_LENGTH, zero_states={"state": 16})
    return export_functions(encode, step, out, **{**args, **kwargs})


def tutorial_tokens(translator, row) -> list[int]:
    """The tutorial's translate loop on one unpadded row, cut at its end (the loop writes 0 from there on)."""
    return translate_rows(translator, np.asarray([row], np.int32), MAX_LENGTH)[0].tolist()


def test_the_bundle_decodes_as_the_tutorials_own_loop(translator, tmp_path):
    rows, src, _, _ = nmt.reverse_data(8, seed=1)  # held out: training used seed 0
    result = export(translator, tmp_path / "nmt", parity_sources=[r.tolist() for r in rows])
    assert result.parity.tokens_identical and result.parity.ok, result.parity.summary()
    assert result.parity.max_abs_step_state < 1e-4 and result.parity.data == "inputs given as parity_sources"

    model = load(tmp_path / "nmt")
    lengths = np.array([len(r) for r in rows], np.int32)
    want = [tutorial_tokens(translator, r) for r in rows]
    assert model.modes == ("step", "fused", "fused-int8")  # the fused loops are built from the step graph
    for mode in model.modes:
        got = [g.tolist() for g in model.generate(src, lengths=lengths, mode=mode)]  # one 0-padded batch of 8
        if "int8" in mode:  # measured by its rule, not promised identical
            assert sum(a == b for a, b in zip(got, want)) >= 6
        else:
            assert got == want, mode  # 8/8 identical
    assert len({tuple(w) for w in want}) >= 4 and sum(w == r[::-1].tolist() for w, r in zip(want, rows)) >= 2

    manifest = json.loads((tmp_path / "nmt" / "manifest.json").read_text())
    assert manifest["state"] == [{"name": "state", "layer": 0, "kind": "h", "size": 16, "output": "state_out",
                                  "init": "zeros", "encoder_output": None}]
    assert [(c["name"], c["kind"], c.get("decoder_input", True)) for c in manifest["constants"]] == [
        ("memory", "memory", True), ("source_mask", "mask", False)]
    assert manifest["io"]["padding"] == "none" and list(manifest["decode"]["modes"])[:2] == ["step", "fused"]
    assert manifest["decode"]["default_mode"] in ("fused", "fused-int8")
    assert result.notes == ()  # int8 too, though tf2onnx writes the decoder's GRU as a Loop nested in the loop

    # The runtime serves it without TensorFlow, Keras, onnx or tf2onnx.
    code = ("import sys, json\n"
            "for m in ('tensorflow', 'keras', 'onnx', 'tf2onnx'): sys.modules[m] = None\n"
            "import numpy as np\nfrom seq2seq_edge.runtime import load\n"
            f"m = load({str(tmp_path / 'nmt')!r})\n"
            f"print(json.dumps([g.tolist() for g in m.generate(np.array({src.tolist()}, np.int32), "
            f"lengths=np.array({lengths.tolist()}, np.int32))]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == want


def test_a_state_step_reads_but_nobody_gives_is_refused(translator, tmp_path):
    out = tmp_path / "nmt"
    with pytest.raises(ExportError, match=r"step reads state 'state', but encode does not return it and zero_states "
                                          r"does not declare it .*zero_states=\{'state': SIZE\}"):
        export(translator, out, zero_states=None)
    assert not out.exists()


def test_glue_mistakes_name_the_fix(translator, tmp_path):
    encode, step = glue(translator)

    def step_with_default(token, states, constants):  # reads the state with .get: it returns a state never given
        logits, state = translator.decoder(constants["context"], token[:, None], state=states.get("state"),
                                           return_state=True)
        return logits[:, 0], {"state": state}

    def step_3d(token, states, constants):
        logits, state = translator.decoder(constants["context"], token[:, None], state=states["state"],
                                           return_state=True)
        return logits, {"state": state}

    args = dict(source_tokens=nmt.TOKENS, target_tokens=nmt.TOKENS, start_token="[START]", end_token="[END]",
                max_steps=MAX_LENGTH)
    with pytest.raises(ExportError, match=r"step returns state\(s\) \['state'\] that encode does not return and "
                                          r"zero_states does not declare"):
        export_functions(encode, step_with_default, tmp_path / "a", **args)
    with pytest.raises(ExportError, match=r"step's output has shape \(2, 1, 12\); expected \(batch, 12\)"):
        export_functions(encode, step_3d, tmp_path / "b", zero_states={"state": 16}, **args)
    with pytest.raises(ExportError, match=r"state\(s\) \['context'\] are returned by encode and declared in "
                                          r"zero_states"):
        export_functions(lambda s: {"context": encode(s)["context"][:, 0]}, step, tmp_path / "c",
                         zero_states={"context": 16}, **args)
    with pytest.raises(ExportError, match=r"modes must name one or more of \['step', 'fused', 'fused-int8'\]"):
        export_functions(encode, step, tmp_path / "d", zero_states={"state": 16}, modes=["fast"], **args)
    assert not any((tmp_path / n).exists() for n in "abcd")


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_a_graph_that_computes_otherwise_than_the_eager_functions_is_refused(translator, tmp_path):
    import tensorflow as tf

    from seq2seq_edge.export import ParityError

    encode, step = glue(translator)

    def traced_differently(token, states, constants):  # the traced graph ends every row at once, eager does not
        logits, new = step(token, states, constants)
        if not tf.executing_eagerly():
            logits = logits + 100.0 * tf.one_hot(nmt.END, len(nmt.TOKENS))
        return logits, new

    rows = [r.tolist() for r in nmt.reverse_data(8, seed=1)[0]]
    with pytest.raises(ParityError, match=r"parity check failed, nothing written: .*greedy tokens identical: False"):
        export_functions(encode, traced_differently, tmp_path / "nmt", source_tokens=nmt.TOKENS,
                         target_tokens=nmt.TOKENS, start_token="[START]", end_token="[END]", max_steps=MAX_LENGTH,
                         zero_states={"state": 16}, parity_sources=rows)
    assert not (tmp_path / "nmt").exists()


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_states_only_and_probabilities_on_drawn_inputs(tmp_path):
    """No constants (a GRU encoder's final state starts the decoder), a step that returns probabilities
    (exported as log-probabilities), parity on the seeded random rows export draws itself."""
    import keras

    keras.utils.set_random_seed(1)
    embed, enc, dec = keras.layers.Embedding(12, 8), keras.layers.GRU(8), keras.layers.GRUCell(8)
    dense = keras.layers.Dense(12, activation="softmax")

    def encode(source):
        return {"h": enc(embed(source))}

    def step(token, states, constants):
        out, new = dec(embed(token), states["h"])
        return dense(out), {"h": new[0] if isinstance(new, (list, tuple)) else new}

    result = export_functions(encode, step, tmp_path / "gru", source_tokens=nmt.TOKENS, target_tokens=nmt.TOKENS,
                              start_token="[START]", end_token="[END]", max_steps=6)
    assert result.parity.ok and result.parity.samples == 48 and "seeded random" in result.parity.data
    manifest = json.loads((tmp_path / "gru" / "manifest.json").read_text())
    assert manifest["state"][0]["init"] == "encoder" and not manifest.get("constants")
    model = load(tmp_path / "gru")
    logits, _ = model.step(np.array([nmt.START], np.int32), model.encode(np.array([[4, 5, 6]], np.int32)))
    assert np.all(logits <= 0) and np.isclose(np.exp(logits).sum(), 1.0, atol=1e-5)  # log-probabilities


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_hand_written_tensorflow_with_two_constants_and_two_states(tmp_path):
    """Plain TensorFlow: two per-sequence constants (named memory_keys, memory_values in the bundle), a
    state from the encoder and one declared to start at zero, on rows of different lengths."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    emb, wk, wv = (tf.constant(rng.normal(size=s).astype(np.float32)) for s in ((12, 6), (6, 6), (6, 5)))
    wo = tf.constant(rng.normal(size=(6 + 5 + 4, 12)).astype(np.float32))

    def encode(source):
        x = tf.gather(emb, source)  # (batch, time, 6)
        return {"h": tf.reduce_mean(x, axis=1), "keys": tf.tanh(x @ wk), "values": x @ wv}

    def step(token, states, constants):
        q = tf.gather(emb, token) + states["h"]  # (batch, 6)
        weights = tf.nn.softmax(tf.einsum("bd,btd->bt", q, constants["keys"]), axis=-1)
        context = tf.einsum("bt,btd->bd", weights, constants["values"])
        count = states["count"] + 1.0
        logits = tf.concat([q, context, count], axis=-1) @ wo
        return logits, {"h": tf.tanh(q), "count": count}

    rows = [[4, 5, 6], [7, 8], [9, 10, 11, 4, 5], [6]]
    result = export_functions(encode, step, tmp_path / "tf", source_tokens=nmt.TOKENS, target_tokens=nmt.TOKENS,
                              start_token="[START]", end_token="[END]", max_steps=5, zero_states={"count": 4},
                              parity_sources=rows)
    assert result.parity.tokens_identical and result.parity.ok, result.parity.summary()
    manifest = json.loads((tmp_path / "tf" / "manifest.json").read_text())
    assert [(s["name"], s["init"]) for s in manifest["state"]] == [("h", "encoder"), ("count", "zeros")]
    assert [c["name"] for c in manifest["constants"]] == ["memory_keys", "memory_values", "source_mask"]


def test_a_function_that_fails_on_the_probe_says_what_it_was_given(tmp_path):
    def encode(source):
        return {"h": source.numpy_only_attribute}

    with pytest.raises(ExportError, match=r"encode raised AttributeError \(.*numpy_only_attribute.*\) when export "
                                          r"called it eagerly with a tf.Tensor of int32 ids \(2, 5\)"):
        export_functions(encode, lambda t, s, c: None, tmp_path / "x", source_tokens=nmt.TOKENS,
                         target_tokens=nmt.TOKENS, start_token="[START]", end_token="[END]", max_steps=3)
