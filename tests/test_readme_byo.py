"""The README's three "Bring your own Keras model" blocks, run as written on tiny models of each shape (the
keras-io example, the TF NMT tutorial, a forecaster), each bundle then compared with its author's own loop."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from seq2seq_edge.runtime import load

README = Path(__file__).resolve().parents[1] / "README.md"


def byo_blocks() -> list[str]:
    """The python blocks of the README's 'Bring your own Keras model' section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Bring your own Keras model"):]
    section = section[: section.index("\n## ", 4)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_section_holds_the_three_shapes():
    blocks = byo_blocks()
    assert [b.splitlines()[0][:5] for b in blocks] == ["# 1. ", "# 2. ", "# 3. "]


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_keras_io_block(tmp_path, monkeypatch):
    from keras_examples import PAIRS, keras_io_char_seq2seq

    encoder_model, decoder_model, input_characters, target_characters, decode_text, max_out = keras_io_char_seq2seq()
    names = dict(encoder_model=encoder_model, decoder_model=decoder_model, input_characters=input_characters,
                 target_characters=target_characters, max_decoder_seq_length=max_out,
                 input_texts=[a for a, _ in PAIRS], decode_text=decode_text)
    monkeypatch.chdir(tmp_path)
    exec(byo_blocks()[0], names)
    model = load(tmp_path / "bundles" / "fr")
    assert model.manifest.parity["reference_loop"]["rows"] == len(PAIRS)
    want = [decode_text(a) for a, _ in PAIRS]
    ids, lengths = model.source_vocab.encode_batch([a for a, _ in PAIRS])
    for mode in ("step", "fused"):  # every token emitted (the runtime's text would drop a stray start token)
        got = ["".join(target_characters[t] for t in row) for row in model.generate(ids, lengths=lengths, mode=mode)]
        assert got == want, mode


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_nmt_tutorial_block(tmp_path, monkeypatch):
    import nmt_tutorial as nmt

    translator = nmt.train_reverse(units=16, epochs=3)
    names = dict(translator=translator, vocabulary=list(nmt.TOKENS), units=16)
    monkeypatch.chdir(tmp_path)
    exec(byo_blocks()[1], names)
    model = load(tmp_path / "bundles" / "nmt")
    rows = nmt.reverse_data(8, seed=1)[0]
    for row in rows:
        want = translator.translate(np.asarray([row], np.int32), max_length=50)[0].tolist()
        want = want[: want.index(0)] if 0 in want else want  # the tutorial's loop writes 0 after the end
        want = want[:-1] if want and want[-1] == nmt.TOKENS.index("[END]") else want
        for mode in ("step", "fused"):
            assert model.generate(np.asarray([row], np.int32), mode=mode)[0].tolist() == want, mode


def test_forecaster_block(tmp_path, monkeypatch):
    from test_forecaster import forecaster as build

    encoder, decoder, forecast = build.__wrapped__() if hasattr(build, "__wrapped__") else build()
    monkeypatch.chdir(tmp_path)
    from seq2seq_edge.export import export_keras

    exec(byo_blocks()[2], dict(encoder=encoder, decoder=decoder, export_keras=export_keras))  # imported in block 1
    model = load(tmp_path / "bundles" / "forecast")
    x = np.random.default_rng(3).normal(size=(4, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(np.stack(model.generate(x, mode="step")), forecast(x), atol=1e-4)
