"""How the model reads what it is given: explicit lengths over any padding, per-call caps, feature steps."""

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, InputError, load
from seq2seq_edge.runtime.inputs import check_lengths


def test_lengths_without_a_pad_id_default_to_the_full_width():
    ids = np.array([[4, 5, 6], [7, 8, 9]])
    assert check_lengths(None, ids, None).tolist() == [3, 3]
    assert check_lengths(None, np.array([[4, 0, 0], [7, 8, 0]]), 0).tolist() == [1, 2]
    assert check_lengths([2, 1], ids, None).tolist() == [2, 1] and check_lengths([2, 1], ids, None).dtype == np.int32


@pytest.mark.parametrize("lengths, match", [
    ([0, 1], r"^lengths: sequence 0 has length 0; every length must be in \[1, 3\]"),
    ([1, 4], r"^lengths: sequence 1 has length 4; every length must be in \[1, 3\]"),
    ([1.0, 2.0], r"^lengths: expected integers of shape \(2,\), got float64 \(2,\)"),
    ([1], r"^lengths: expected integers of shape \(2,\), got int64 \(1,\)"),
])
def test_bad_lengths(lengths, match):
    with pytest.raises(InputError, match=match):
        check_lengths(lengths, np.array([[4, 5, 6], [7, 8, 9]]), 0)


@pytest.mark.parametrize("options", [None, DecodeOptions("beam", beam_width=3), DecodeOptions("sample", seed=2)],
                         ids=["greedy", "beam", "sample"])
def test_explicit_lengths_win_over_what_follows_them(dates_bundle, options):
    """Tokens after a row's length are not padding ids here: only the lengths can tell the model where rows end."""
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "1 May 2000 and more text"])
    lengths[1] = len("1 May 2000")
    short_ids, short_lengths = model.source_vocab.encode_batch(["3 mei 1961", "1 May 2000"])
    want = model.generate(short_ids, lengths=short_lengths, options=options)
    got = model.generate(ids, lengths=lengths, options=options)
    assert [r.tolist() for r in got] == [r.tolist() for r in want]
    assert [model.target_vocab.decode(r) for r in got] == ["1961-05-03", "2000-05-01"]


@pytest.mark.parametrize("options", [DecodeOptions("beam", beam_width=3), DecodeOptions("sample", seed=2)],
                         ids=["beam", "sample"])
def test_max_steps_caps_every_strategy(dates_bundle, options):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "1 May 2000"])
    assert [len(r) for r in model.generate(ids, 4, lengths=lengths, options=options)] == [4, 4]


def test_feature_steps_are_checked(sine_bundle):
    model = load(sine_bundle)
    state = model.encode(np.zeros((2, 40, 2), np.float32))
    with pytest.raises(InputError, match=r"^step_input: the model takes 2 features, got 3 \(shape \(2, 3\)\)"):
        model.step(np.zeros((2, 3), np.float32), state)
    with pytest.raises(InputError, match=r"^step_input: expected floating-point values, got dtype int64"):
        model.step(np.zeros((2, 2), np.int64), state)
    with pytest.raises(InputError, match=r"^state 'h0': expected float \(3, 32\), got float32 \(2, 32\)"):
        model.step(np.zeros((3, 2), np.float32), state)
    out, nxt = model.step(np.zeros((2, 2), np.float32), state)
    assert out.shape == (2, 2) and set(nxt) == {"h0", "c0"} and out.dtype == np.float32


def test_token_steps_are_checked(dates_bundle):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961"])
    state = model.encode(ids, lengths)
    with pytest.raises(InputError, match=r"^step_input: expected shape \(batch,\), got \(1, 1\)"):
        model.step(np.array([[2]]), state)
    with pytest.raises(InputError, match=r"^step_input: ids must lie in \[0, "):
        model.step(np.array([999]), state)
