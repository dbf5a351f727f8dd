"""Decoding strategies on the committed bundle: greedy, sampling, beam search, streaming, scores."""

import numpy as np
import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import DecodeOptions, InputError, load
from seq2seq_edge.runtime.strategies import log_softmax


@pytest.fixture(scope="module")
def model(dates_bundle):
    return load(dates_bundle)


@pytest.fixture(scope="module")
def batch(model, golden):
    return model.source_vocab.encode_batch(golden["dates"]["inputs"])


def _tokens(rows):
    return [r.tolist() for r in rows]


def test_beam_width_1_equals_greedy(model, batch):
    ids, lengths = batch
    greedy = model.generate(ids, lengths=lengths, mode="step")
    beam = model.generate(ids, lengths=lengths, options=DecodeOptions("beam", beam_width=1))
    assert _tokens(beam) == _tokens(greedy)


def test_sampling_repeats_with_a_seed_and_top_k_1_is_greedy(model, batch):
    ids, lengths = batch
    hot = DecodeOptions("sample", temperature=3.0, seed=7)
    first = model.generate(ids, lengths=lengths, options=hot)
    assert _tokens(model.generate(ids, lengths=lengths, options=hot)) == _tokens(first)
    others = [_tokens(model.generate(ids, lengths=lengths, options=DecodeOptions("sample", temperature=3.0, seed=s)))
              for s in range(8, 12)]
    assert any(o != _tokens(first) for o in others)  # a hot sampler does not always pick the same tokens
    greedy = model.generate(ids, lengths=lengths, mode="step")
    top1 = model.generate(ids, lengths=lengths, options=DecodeOptions("sample", top_k=1, temperature=2.0, seed=3))
    assert _tokens(top1) == _tokens(greedy)


def test_greedy_scores_are_log_probabilities(model, batch):
    ids, lengths = batch
    (hyp,) = model.decode(ids[:1], lengths=lengths[:1])[0]
    state, token, total = model.encode(ids[:1], lengths[:1]), np.array([model.target_vocab.start_id]), 0.0
    for want in hyp.tokens.tolist() + [model.target_vocab.end_id]:
        logits, state = model.step(token, state)
        total += log_softmax(logits.astype(np.float64))[0, want]
        token = np.array([want])
    assert hyp.log_prob == pytest.approx(total, abs=1e-9) and hyp.log_prob < 0


def test_n_best_lists_are_sorted(model, batch):
    ids, lengths = batch
    results = model.decode(ids, DecodeOptions("beam", beam_width=5, n_best=3, length_penalty=0.7), lengths=lengths)
    assert len(results) == len(ids)
    for row in results:
        assert len(row) == 3
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
        assert all(h.log_prob <= 0 for h in row)
        assert len({tuple(h.tokens.tolist()) for h in row}) == 3


def test_beam_respects_max_steps(model, batch):
    ids, lengths = batch
    rows = model.decode(ids, DecodeOptions("beam", beam_width=3), lengths=lengths, max_steps=4)
    assert all(len(h.tokens) <= 4 for row in rows for h in row)


@pytest.mark.parametrize("options", [None, DecodeOptions("sample", seed=5, top_p=0.9)])
def test_stream_yields_what_generate_returns(model, batch, options):
    ids, lengths = batch
    want = model.generate(ids, lengths=lengths, options=options, mode=None if options else "step")
    steps = list(model.stream(ids, lengths=lengths, options=options))
    rows = np.stack(steps, axis=1)  # (batch, steps)
    for row, expected in zip(rows, want):
        kept = row[row >= 0]
        end = model.target_vocab.end_id
        assert (kept[: np.argmax(kept == end)] if (kept == end).any() else kept).tolist() == expected.tolist()


def test_stream_features(sine_bundle, golden):
    sine = load(sine_bundle)
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    rows = list(sine.stream(x, 6))
    assert len(rows) == 6 and rows[0].shape == (3, 2)
    np.testing.assert_allclose(np.stack(rows, axis=1), sine.generate(x, 6, mode="step"), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "nucleus"}, r"strategy must be one of greedy, sample, beam, got 'nucleus'"),
    ({"temperature": -1.0}, r"temperature must be a number > 0, got -1.0"),
    ({"temperature": 0}, r"temperature must be a number > 0, got 0"),
    ({"top_p": 0}, r"top_p must be a number > 0 and <= 1, got 0"),
    ({"top_p": 1.5}, r"top_p must be a number > 0 and <= 1, got 1.5"),
    ({"top_k": 0}, r"top_k must be an integer >= 1, got 0"),
    ({"beam_width": 0}, r"beam_width must be an integer >= 1 and <= 256, got 0"),
    ({"length_penalty": -0.5}, r"length_penalty must be a number >= 0 and <= 10.0, got -0.5"),
    ({"strategy": "beam", "beam_width": 2, "n_best": 3}, r"n_best must be an integer >= 1 and <= 2, got 3"),
    ({"n_best": 2}, r"n_best must be an integer >= 1 and <= 1, got 2"),
    ({"seed": -3}, r"seed must be an integer >= 0, got -3"),
    ({"strategy": "beam", "beam_width": 2 ** 63}, r"beam_width must be an integer >= 1 and <= 256, got 9223372036854775808"),
    ({"strategy": "beam", "beam_width": 257}, r"beam_width must be an integer >= 1 and <= 256, got 257"),
    ({"length_penalty": 1e300}, r"length_penalty must be a number >= 0 and <= 10.0, got 1e\+300"),
])
def test_invalid_options_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        DecodeOptions(**kwargs)


def test_strategy_and_mode_conflicts(model, batch):
    ids, lengths = batch
    with pytest.raises(InputError, match=r"^mode 'fused' decodes greedily; the 'beam' strategy runs in step mode"):
        model.generate(ids, lengths=lengths, mode="fused", options=DecodeOptions("beam"))
    with pytest.raises(InputError, match=r"^stream supports the greedy and sample strategies"):
        next(model.stream(ids, lengths=lengths, options=DecodeOptions("beam")))


def test_cli_strategies(dates_bundle, golden, capsys):
    text = golden["dates"]["inputs"][0]
    assert main(["run", str(dates_bundle), "--strategy", "beam", "--beam-width", "4", "--n-best", "2", text]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 3 for line in lines)
    best = load(dates_bundle).decode_text([text], DecodeOptions("beam", beam_width=4, n_best=2))[0]
    assert [line.split("\t")[0] for line in lines] == [h[0] for h in best]
    assert main(["run", str(dates_bundle), "--scores", text]) == 0
    out, score = capsys.readouterr().out.strip().split("\t")
    assert out == golden["dates"]["outputs"][0] and float(score) < 0
    assert main(["run", str(dates_bundle), "--strategy", "sample", "--top-p", "0", text]) == 1
    assert "top_p must be a number > 0 and <= 1, got 0.0" in capsys.readouterr().err
