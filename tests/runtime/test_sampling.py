"""The sampler and the loop's bookkeeping, on fixed log-probabilities: what each option may draw, and how often."""

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, load
from seq2seq_edge.runtime.decoding import decode
from seq2seq_edge.runtime.strategies import TokenSearch, chooser, log_softmax

PROBS = np.array([0.5, 0.25, 0.15, 0.06, 0.04])  # token 0 likeliest
LOGP = np.log(np.tile(PROBS, (4000, 1)))  # 4000 identical rows: each draws independently without a seed


def frequencies(tokens: np.ndarray) -> np.ndarray:
    return np.bincount(tokens, minlength=len(PROBS)) / len(tokens)


def test_greedy_is_the_argmax_every_time():
    logp = log_softmax(np.random.default_rng(0).normal(size=(500, 9)))
    assert (chooser(DecodeOptions("greedy"))(logp) == logp.argmax(-1)).all()


def test_plain_sampling_follows_the_distribution():
    got = frequencies(chooser(DecodeOptions("sample"))(LOGP))
    np.testing.assert_allclose(got, PROBS, atol=0.03)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_draws_only_the_k_likeliest_in_proportion(k):
    got = frequencies(chooser(DecodeOptions("sample", top_k=k))(LOGP))
    want = np.r_[PROBS[:k], np.zeros(len(PROBS) - k)]
    np.testing.assert_allclose(got, want / want.sum(), atol=0.03)


@pytest.mark.parametrize("p, keep", [(0.5, 1), (0.6, 2), (0.75, 2), (0.8, 3), (1.0, 5)])
def test_top_p_draws_from_the_smallest_set_reaching_p(p, keep):
    got = frequencies(chooser(DecodeOptions("sample", top_p=p))(LOGP))
    want = np.r_[PROBS[:keep], np.zeros(len(PROBS) - keep)]
    np.testing.assert_allclose(got, want / want.sum(), atol=0.03)


def test_temperature_sharpens_and_flattens():
    cold = frequencies(chooser(DecodeOptions("sample", temperature=0.5))(LOGP))
    hot = frequencies(chooser(DecodeOptions("sample", temperature=2.0))(LOGP))
    for t, got in ((0.5, cold), (2.0, hot)):
        want = PROBS ** (1 / t)
        np.testing.assert_allclose(got, want / want.sum(), atol=0.03)


def test_a_seed_repeats_and_gives_identical_rows_identical_draws():
    a = chooser(DecodeOptions("sample", seed=4))(LOGP[:50])
    b = chooser(DecodeOptions("sample", seed=4))(LOGP[:50])
    assert (a == b).all() and len(set(a.tolist())) == 1  # one random number per step, shared by the rows
    unseeded = chooser(DecodeOptions("sample"))(LOGP[:50])
    assert len(set(unseeded.tolist())) > 1


def test_log_softmax_is_stable_row_by_row():
    logits = np.array([[1000.0, 0.0], [-1000.0, -1001.0]])
    want = np.array([[0.0, -1000.0], [-np.log1p(np.exp(-1)), -1 - np.log1p(np.exp(-1))]])
    np.testing.assert_allclose(log_softmax(logits), want, rtol=1e-12)


def steps(rows: list[list[int]], end: int = 9):
    """A step function that replays fixed token rows (then repeats the end token)."""
    def step(x, state):
        t = state["t"]
        logits = np.full((len(rows), 10), -5.0)
        for i, row in enumerate(rows):
            logits[i, row[t[i, 0]] if t[i, 0] < len(row) else end] = 5.0
        return logits, {"t": t + 1}
    return step


def test_token_search_stops_when_every_row_has_ended_and_marks_ended_rows():
    rows = [[1, 2, 9], [3, 9], [4, 5, 6, 7, 9]]
    search = TokenSearch(9, length_penalty=0.0)
    emitted = []
    search.start({"t": np.zeros((3, 1), int)}, np.zeros(3, np.int32))
    state, x = {"t": np.zeros((3, 1), int)}, np.zeros(3, np.int32)
    step = steps(rows)
    while not search.done:
        logits, state = step(x, state)
        x, _ = search.update(logits)
        emitted.append(search.emitted.copy())
    assert len(emitted) == 5 and all(e.dtype == np.int32 for e in emitted)  # stops at the longest row's end
    assert np.stack(emitted, axis=1).tolist() == [[1, 2, 9, -1, -1], [3, 9, -1, -1, -1], [4, 5, 6, 7, 9]]
    assert [s.tolist() for s in search.sequences()] == [[1, 2], [3], [4, 5, 6, 7]]
    hyps = search.hypotheses()
    assert [h[0].ended for h in hyps] == [True, True, True]


def test_rows_cut_at_max_steps_have_not_ended():
    search = decode(steps([[1, 2, 3, 4, 9], [1, 9]]), {"t": np.zeros((2, 1), int)}, np.zeros(2, np.int32), 3,
                    TokenSearch(9, length_penalty=1.0))
    assert [s.tolist() for s in search.sequences()] == [[1, 2, 3], [1]]
    assert [h[0].ended for h in search.hypotheses()] == [False, True]
    long_one = search.hypotheses()[0][0]
    assert long_one.score == pytest.approx(long_one.log_prob / 3)  # length 3: no end token to count


def test_stream_marks_ended_rows_with_minus_one(dates_bundle):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["3 mei 1961", "1 May 2000"])
    rows = list(model.stream(ids, lengths=lengths))
    assert len(rows) == 11 and all(r.dtype == np.int32 and r.shape == (2,) for r in rows)  # 10 digits + end
    end = model.target_vocab.end_id
    assert [int(r[0]) for r in rows[-1:]] == [end] and all(r[0] != -1 for r in rows)
    assert model.target_vocab.decode([int(r[0]) for r in rows]) == "1961-05-03"
