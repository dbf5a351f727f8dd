"""export_functions on the TF 2.x (2.0 to 2.5 era) edition of TensorFlow's NMT-with-attention tutorial
(tests/nmt25_tutorial.py): subclassed Encoder, BahdanauAttention and Decoder, exported through a few
lines of glue and compared with the tutorial's own ``evaluate`` loop.

Padding: the tutorial's ``evaluate`` pads every sentence with 0 at the end to max_length_inp and has no
mask, so its encoder GRU runs over the padding and its attention reads it: what it predicts depends on
the padding. The bundle is therefore given the rows as ``evaluate`` builds them, padded to max_length_inp
(0 is an ordinary source id to it: export_functions encodes what it is given, unpadded), and its tokens
must equal ``evaluate``'s on a batch of 8 sentences of 2 to 6 letters. Rows given unpadded (with their
lengths) are compared with ``evaluate`` run without padding: they decode differently, as the tutorial does.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from seq2seq_edge.export import export_functions
from seq2seq_edge.export.parity import int8_verdict
from seq2seq_edge.runtime import load

import nmt25_tutorial as t25
import nmt_tutorial as nmt

UNITS = 16


@pytest.fixture(scope="module")
def tutorial():
    return t25.train(units=UNITS)


def glue(encoder, decoder):
    """The few lines a user writes: the encoder's output is a constant, its final state the decoder's hidden."""
    def encode(source):
        enc_output, enc_hidden = encoder(source, [tf.zeros((tf.shape(source)[0], UNITS))])
        return {"enc_output": enc_output, "hidden": enc_hidden}

    def step(token, states, constants):
        logits, hidden, _ = decoder(token[:, None], states["hidden"], constants["enc_output"])
        return logits, {"hidden": hidden}

    return encode, step


def evaluate(tutorial, row, **kwargs) -> list[int]:
    """The tutorial's loop on <start> row <end>, its <end> cut (the bundle returns the tokens before it)."""
    tokens = t25.evaluate(*tutorial, [nmt.START, *row, nmt.END], UNITS, **kwargs)
    return tokens[:-1] if tokens[-1:] == [nmt.END] else tokens


def test_the_bundle_decodes_as_the_tutorials_evaluate(tutorial, tmp_path):
    rows = [r.tolist() for r in nmt.reverse_data(8, seed=1)[0]]  # held out: training used seed 0
    inp, _ = t25.tensors([np.asarray(r) for r in rows])  # (8, max_length_inp), as evaluate pads them
    encode, step = glue(*tutorial)
    result = export_functions(encode, step, tmp_path / "nmt25", source_tokens=nmt.TOKENS, target_tokens=nmt.TOKENS,
                              start_token="[START]", end_token="[END]", max_steps=t25.MAX_LENGTH_TARG,
                              parity_sources=inp)
    assert result.parity.tokens_identical and result.parity.ok, result.parity.summary()

    model = load(tmp_path / "nmt25")
    want = [evaluate(tutorial, r) for r in rows]
    assert model.modes[:2] == ("step", "fused")
    for mode in model.modes:
        got = [g.tolist() for g in model.generate(inp, mode=mode)]
        if "int8" in mode:  # measured by the 99.9% rule, not promised identical
            verdict = int8_verdict(result.parity)
            assert (model.manifest.default_mode == mode) == verdict["eligible"], verdict
            assert sum(a == b for a, b in zip(got, want)) >= 6, (got, want)
        else:
            assert got == want, mode  # 8/8 identical
    assert len({tuple(w) for w in want}) >= 4  # not a constant output

    # Unpadded rows: the bundle as evaluate without padding; the padding changes the tutorial's tokens.
    ids, lengths = np.zeros((8, 8), np.int32), np.array([len(r) + 2 for r in rows], np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r) + 2] = [nmt.START, *r, nmt.END]
    unpadded = [evaluate(tutorial, r, max_length_inp=None) for r in rows]
    assert [g.tolist() for g in model.generate(ids, lengths=lengths, mode="step")] == unpadded
    assert unpadded != want


def test_glue_that_starts_the_hidden_from_zeros_passes_export_but_not_the_tutorials_loop(tutorial, tmp_path):
    """export_functions checks the bundle against the glue, so glue that is self-consistent but not the
    tutorial (the decoder's hidden from zeros instead of the encoder's final state) is exported; only the
    comparison with the author's own loop, as above, catches it."""
    encoder = tutorial[0]
    _, step = glue(*tutorial)

    def encode_without_hidden(source):
        enc_output, _ = encoder(source, [tf.zeros((tf.shape(source)[0], UNITS))])
        return {"enc_output": enc_output}

    rows = [r.tolist() for r in nmt.reverse_data(8, seed=1)[0]]
    inp, _ = t25.tensors([np.asarray(r) for r in rows])
    result = export_functions(encode_without_hidden, step, tmp_path / "wrong", source_tokens=nmt.TOKENS,
                              target_tokens=nmt.TOKENS, start_token="[START]", end_token="[END]",
                              max_steps=t25.MAX_LENGTH_TARG, zero_states={"hidden": UNITS}, parity_sources=inp,
                              modes=["step"])
    assert result.parity.ok
    got = [g.tolist() for g in load(tmp_path / "wrong").generate(inp)]
    assert got != [evaluate(tutorial, r) for r in rows]
