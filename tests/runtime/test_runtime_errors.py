"""Bad input gets a specific error whose message says what was wrong and how to fix it."""

import numpy as np
import pytest

from seq2seq_edge.runtime import InputError, UnknownTokenError, load


@pytest.fixture
def window(golden):
    return np.asarray(golden["sine"]["inputs"], np.float32)


@pytest.mark.parametrize("texts, match", [
    ("1 May 2000", r"got a single string; wrap it: \[text\]"),
    (["1 May 2000", ""], r"item 1 is an empty string"),
    (["1 May 2000", "   "], r"item 1 is an empty string"),
    ([3], r"item 0 is int, expected str"),
])
def test_bad_text_batches(dates, texts, match):
    with pytest.raises(InputError, match=match):
        dates.generate_text(texts)


def test_unknown_character_names_symbol_and_position(dates):
    with pytest.raises(UnknownTokenError, match=r"^'☃' at position 6 of '1 May ☃2000' is not in the model's vocabulary"):
        dates.generate_text(["1 May ☃2000"])


def test_special_token_text_is_not_smuggled_in(dates):
    with pytest.raises(UnknownTokenError, match=r"^'<' at position 0"):
        dates.generate_text(["<s>1 May 2000"])


@pytest.mark.parametrize("ids, match", [
    (np.zeros((2, 3), np.float32), r"source: token ids must be integers, got dtype float32"),
    (np.zeros((3,), np.int32), r"source: expected shape \(batch, time\), got \(3,\)"),
    (np.zeros((2, 0), np.int32), r"source: sequences have no time steps"),
    (np.full((1, 2), 10_000), r"source: ids must lie in \[0, \d+\), got values from 10000 to 10000"),
    (np.full((1, 2), -1), r"source: ids must lie in \[0, \d+\)"),
    (np.array([[5, 6], [0, 0]]), r"lengths: sequence 1 has length 0"),
])
def test_bad_token_ids(dates, ids, match):
    with pytest.raises(InputError, match=match):
        dates.encode(ids)


def test_bad_lengths(dates):
    ids = np.array([[5, 6, 7]])
    with pytest.raises(InputError, match=r"^lengths: sequence 0 has length 4; every length must be in \[1, 3\]"):
        dates.encode(ids, [4])
    with pytest.raises(InputError, match=r"^lengths: expected integers of shape \(1,\)"):
        dates.encode(ids, [1.5])


@pytest.mark.parametrize("max_steps", [0, -1, 10_000, 2.5, True])
def test_max_steps_out_of_range(dates, max_steps):
    with pytest.raises(InputError, match=r"^max_steps must be an integer in \[1, \d+\] \(the bundle's decode.max_steps cap\)"):
        dates.generate_text(["1 May 2000"], max_steps=max_steps)


def test_bad_state(dates):
    ids = np.array([[5, 6, 7]])
    state = dates.encode(ids)
    start = np.array([dates.target_vocab.start_id])
    with pytest.raises(InputError, match=r"^state has keys \['h0'\], expected \['c0', 'h0'\]"):
        dates.step(start, {"h0": state["h0"]})
    with pytest.raises(InputError, match=r"^state 'c0': expected float \(1, 48\), got float32 \(2, 24\)"):
        dates.step(start, {"h0": state["h0"], "c0": np.zeros((2, 24), np.float32)})
    with pytest.raises(InputError, match=r"^state must be a dict"):
        dates.step(start, [state["h0"], state["c0"]])
    with pytest.raises(InputError, match=r"^step_input: expected shape \(batch,\)"):
        dates.step(start[:, None], state)


def test_first_input_is_for_features_only(dates):
    with pytest.raises(InputError, match=r"^first_input applies to feature bundles only"):
        dates.generate(np.array([[5, 6]]), first_input=np.zeros((1, 2), np.float32))


def test_token_api_on_feature_bundle(sine):
    with pytest.raises(InputError, match=r"^this bundle's source is real-valued features, not tokens; use generate\(\)"):
        sine.generate_text(["1 May 2000"])


@pytest.mark.parametrize("make, match", [
    (lambda w: w[:, :, :1], r"source: the model takes 2 features, got 1 \(shape \(3, 40, 1\)\)"),
    (lambda w: w[0], r"source: expected shape \(batch, time, features\), got \(40, 2\)"),
    (lambda w: w.astype(np.int64), r"source: expected floating-point values, got dtype int64"),
    (lambda w: w[:, :0], r"source: empty input of shape \(3, 0, 2\)"),
    (lambda w: np.where(np.arange(40)[None, :, None] == 7, np.nan, w), r"source: contains NaN or inf \(first at index \(0, 7, 0\)\)"),
    (lambda w: np.where(np.arange(40)[None, :, None] == 3, np.inf, w), r"source: contains NaN or inf \(first at index \(0, 3, 0\)\)"),
])
def test_bad_features(sine, window, make, match):
    with pytest.raises(InputError, match=match):
        sine.generate(make(window))


def test_bad_first_input(sine, window):
    with pytest.raises(InputError, match=r"^first_input: batch 1 does not match the source's 3"):
        sine.generate(window, first_input=np.zeros((1, 2), np.float32))
    with pytest.raises(InputError, match=r"^first_input: contains NaN or inf"):
        sine.generate(window, first_input=np.full((3, 2), np.nan, np.float32))


def test_threads_must_be_positive(dates_bundle):
    with pytest.raises(InputError, match=r"^threads must be a positive integer or None"):
        load(dates_bundle, threads=0)


def test_unknown_mode(dates):
    with pytest.raises(InputError, match=r"^mode must be one of \['step', 'fused', 'fused-int8'\] for this bundle, got 'turbo'"):
        dates.generate_text(["1 May 2000"], mode="turbo")
