"""The committed bundles beyond the dates model: a user's own (keras-io) model whose encoder sees padding,
manifests that round-trip, and the numpy-only decode helpers that training and the benchmark use."""

import json

import numpy as np
import pytest

from seq2seq_edge.runtime import load
from seq2seq_edge.runtime.contract import state_names
from seq2seq_edge.runtime.decoding import rollout_features
from seq2seq_edge.runtime.manifest import parse_manifest
from seq2seq_edge.runtime.strategies import greedy_tokens


@pytest.fixture(scope="module")
def keras_io(keras_io_bundle):
    return load(keras_io_bundle)


def test_a_brought_model_reproduces_its_own_decode_loop(keras_io, golden):
    g = golden["keras_io"]
    assert keras_io.generate_text(g["inputs"]) == g["outputs"]  # recorded from the example's decode_sequence
    assert len(set(g["outputs"])) == len(g["outputs"])  # distinct answers: a mix-up between rows would show
    m = keras_io.manifest
    assert m.io.padding == "none" and m.source.vocabulary.pad_id is None and keras_io.modes == ("step",)


def test_an_encoder_that_sees_padding_encodes_each_length_apart(keras_io, golden):
    """The model was trained on unpadded one-hot rows, so each group of equal length is encoded on its own."""
    words = golden["keras_io"]["inputs"]
    ids, lengths = keras_io.source_vocab.encode_batch(words)
    batch = keras_io.encode(ids, lengths)
    for i, word in enumerate(words):
        one = keras_io.encode(*keras_io.source_vocab.encode_batch([word]))
        for name in batch:
            np.testing.assert_allclose(batch[name][i], one[name][0], atol=1e-6)
    assert keras_io.generate_text(words[::-1]) == golden["keras_io"]["outputs"][::-1]


@pytest.mark.parametrize("name", ["dates_tiny", "sine_tiny", "sine_ae_tiny", "keras_io_tiny"])
def test_manifests_round_trip(name, dates_bundle):
    data = json.loads((dates_bundle.parent / name / "manifest.json").read_text())
    assert parse_manifest(data).to_dict() == data


def test_state_names_follow_the_cell():
    assert state_names("lstm", 2) == [(0, "h", "h0"), (0, "c", "c0"), (1, "h", "h1"), (1, "c", "c1")]
    assert state_names("gru", 3) == [(0, "h", "h0"), (1, "h", "h1"), (2, "h", "h2")]


def test_the_loop_helpers_equal_step_mode(dates, sine, golden):
    ids, lengths = dates.source_vocab.encode_batch(golden["dates"]["inputs"])
    start = np.full(len(ids), dates.target_vocab.start_id, np.int32)
    rows = greedy_tokens(dates.step, dates.encode(ids, lengths), start, dates.target_vocab.end_id, dates.max_steps)
    assert [r.tolist() for r in rows] == golden["dates"]["output_ids"]
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    m = sine.manifest
    first = (x[:, -1, :] - np.float32(m.target.mean)) / np.float32(m.target.std)
    out = rollout_features(sine.step, sine.encode(x), first, 20) * np.float32(m.target.std) + np.float32(m.target.mean)
    np.testing.assert_allclose(out, golden["sine"]["outputs"], atol=1e-5)
    assert out.dtype == np.float32 and out.shape == (3, 20, 2)
