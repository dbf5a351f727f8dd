"""Beam search checked against what it claims: exhaustive search on a toy model small enough to
enumerate, replayed hypotheses, the score formula, and beam >= greedy."""

import itertools

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, load
from seq2seq_edge.runtime.decoding import decode
from seq2seq_edge.runtime.strategies import BeamSearch, TokenSearch, log_softmax

VOCAB, START, END, STEPS = 4, 0, 3, 4


def toy_step(seed: int):
    """A tiny random RNN over ids: logits depend on the whole history through the state."""
    rng = np.random.default_rng(seed)
    w, e, o = rng.normal(size=(6, 6)), rng.normal(size=(VOCAB, 6)), rng.normal(size=(6, VOCAB)) * 2

    def step(tokens, state):
        h = np.tanh(state["h"] @ w + e[tokens])  # (batch, 6)
        return h @ o, {"h": h}
    return step


def replay(step, tokens: list[int], ended: bool) -> float:
    """Log-probability of one sequence (and its end token, if it ended), one step at a time."""
    state, x, total = {"h": np.zeros((1, 6))}, np.array([START]), 0.0
    for t in tokens + ([END] if ended else []):
        logits, state = step(x, state)
        total += log_softmax(logits.astype(np.float64))[0, t]
        x = np.array([t])
    return total


def every_sequence():
    """Every possible output: ended at each length up to STEPS, or cut at STEPS."""
    words = [t for t in range(VOCAB) if t != END]
    for n in range(STEPS):
        for seq in itertools.product(words, repeat=n):
            yield list(seq), True
    for seq in itertools.product(words, repeat=STEPS):
        yield list(seq), False


def beam(step, width: int, alpha: float, n_best: int, batch: int = 1):
    options = DecodeOptions("beam", beam_width=width, length_penalty=alpha, n_best=n_best)
    state = {"h": np.zeros((batch, 6))}
    return decode(step, state, np.full(batch, START), STEPS, BeamSearch(END, options)).hypotheses()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_a_beam_covering_every_path_finds_the_true_best(seed, alpha):
    step = toy_step(seed)
    truth = []
    for tokens, ended in every_sequence():
        lp = replay(step, tokens, ended)
        truth.append((lp / (len(tokens) + ended) ** alpha, lp, tokens, ended))
    truth.sort(key=lambda t: -t[0])
    (found,) = beam(step, width=len(truth), alpha=alpha, n_best=5)
    assert [(h.tokens.tolist(), h.ended) for h in found] == [(t[2], t[3]) for t in truth[:5]]
    np.testing.assert_allclose([h.score for h in found], [t[0] for t in truth[:5]], rtol=1e-12)
    np.testing.assert_allclose([h.log_prob for h in found], [t[1] for t in truth[:5]], rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_narrow_beams_replay_and_never_lose_to_greedy_at_alpha_0(seed):
    step = toy_step(seed)
    search = TokenSearch(END, length_penalty=0.0)
    greedy = decode(step, {"h": np.zeros((1, 6))}, np.array([START]), STEPS, search).hypotheses()[0][0]
    assert greedy.log_prob == pytest.approx(replay(step, greedy.tokens.tolist(), greedy.ended), abs=1e-12)
    for width in (2, 3):
        hyps = beam(step, width=width, alpha=0.0, n_best=width)[0]
        assert hyps[0].log_prob >= greedy.log_prob - 1e-12
        for h in hyps:  # a beam whose state rows were not reordered would replay to other numbers
            assert h.log_prob == pytest.approx(replay(step, h.tokens.tolist(), h.ended), abs=1e-12)


def test_rows_of_a_batch_are_searched_independently():
    step = toy_step(4)
    alone = beam(step, width=3, alpha=1.0, n_best=3)[0]
    batched = beam(step, width=3, alpha=1.0, n_best=3, batch=4)
    for row in batched:
        assert [(h.tokens.tolist(), h.score) for h in row] == [(h.tokens.tolist(), h.score) for h in alone]


# -- on the committed bundle ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(dates_bundle):
    return load(dates_bundle)


def _replay(model, source_ids, length, hypothesis) -> float:
    state = model.encode(source_ids[None], np.array([length]))
    x, total = np.array([model.target_vocab.start_id]), 0.0
    for t in hypothesis.tokens.tolist() + ([model.target_vocab.end_id] if hypothesis.ended else []):
        logits, state = model.step(x, state)
        total += log_softmax(logits.astype(np.float64))[0, t]
        x = np.array([t])
    return total


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_bundle_hypotheses_replay_through_step_and_follow_the_score_formula(model, golden, alpha):
    ids, lengths = model.source_vocab.encode_batch(golden["dates"]["inputs"])
    rows = model.decode(ids, DecodeOptions("beam", beam_width=5, n_best=3, length_penalty=alpha), lengths=lengths)
    for i, row in enumerate(rows):
        assert len(row) == 3
        for h in row:
            assert h.log_prob == pytest.approx(_replay(model, ids[i], lengths[i], h), abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + h.ended) ** alpha, rel=1e-12)


def test_bundle_beam_at_alpha_0_is_never_below_greedy(model, golden):
    ids, lengths = model.source_vocab.encode_batch(golden["dates"]["inputs"])
    greedy = model.decode(ids, DecodeOptions("greedy"), lengths=lengths)
    beam_rows = model.decode(ids, DecodeOptions("beam", beam_width=4, length_penalty=0.0), lengths=lengths)
    for g, b in zip(greedy, beam_rows):
        assert b[0].log_prob >= g[0].log_prob - 1e-6
