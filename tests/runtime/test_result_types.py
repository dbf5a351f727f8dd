"""One result type per call, whatever the bundle (runtime/__init__.py's "Stable API"), and an empty batch
gives an empty result of that type without running a graph."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from seq2seq_edge.runtime import DecodeOptions, Hypothesis, InputError, TextHypothesis, load

DATA = Path(__file__).parent.parent / "data"
# Encoders fed lengths, an attention decoder, and an encoder that sees padding as input; their golden inputs.
TOKEN_BUNDLES = {"dates_tiny": "dates", "dates_attention_tiny": "attention", "keras_io_tiny": "keras_io"}
STRATEGIES = [None, DecodeOptions("sample", seed=1), DecodeOptions("beam", beam_width=2, n_best=2)]


@pytest.fixture(scope="module", params=list(TOKEN_BUNDLES))
def token_model(request, golden):
    """(model, three texts its vocabulary holds)."""
    return load(DATA / request.param), golden[TOKEN_BUNDLES[request.param]]["inputs"][:3]


@pytest.fixture(scope="module")
def sine_model():
    return load(DATA / "sine_tiny")


@pytest.fixture(scope="module")
def ae_model():
    return load(DATA / "sine_ae_tiny")


@pytest.fixture
def no_graph_runs(monkeypatch):
    """Any onnxruntime call fails the test: an empty batch must not reach a graph."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("an empty batch ran a graph")

    monkeypatch.setattr(ort.InferenceSession, "run", refuse)


def _ids(model, texts):
    return model.source_vocab.encode_batch(texts)  # (3, time) int32, (3,) int32


def _check_state(model, state, batch: int, time: int | None = None) -> None:
    m = model.manifest
    assert isinstance(state, dict)
    assert set(state) == {s.name for s in m.state} | {c.name for c in m.constants}
    for s in m.state:
        assert state[s.name].dtype == np.float32 and state[s.name].shape == (batch, s.size), s.name
    for c in m.constants:
        value = state[c.name]
        assert value.dtype == np.float32 and value.shape[0] == batch and value.ndim == (2 if c.size is None else 3)
        if time is not None:
            assert value.shape[1] == time, c.name


# -- token bundles ----------------------------------------------------------------------------------------------

def test_token_calls_return_their_types(token_model):
    model, texts = token_model
    ids, lengths = _ids(model, texts)
    _check_state(model, model.encode(ids, lengths), 3, ids.shape[1])
    start = np.full(3, model.target_vocab.start_id, np.int32)
    result = model.step(start, model.encode(ids, lengths))
    assert isinstance(result, tuple) and len(result) == 2
    logits, state = result
    assert logits.dtype == np.float32 and logits.shape == (3, len(model.target_vocab))
    _check_state(model, state, 3)
    for mode in model.modes:
        rows = model.generate(ids, lengths=lengths, mode=mode)
        assert isinstance(rows, list) and len(rows) == 3, mode
        assert all(isinstance(r, np.ndarray) and r.dtype == np.int32 and r.ndim == 1 for r in rows), mode
        out = model.generate_text(texts, mode=mode)
        assert isinstance(out, list) and all(isinstance(t, str) for t in out) and len(out) == 3
        assert out == [model.target_vocab.decode(r) for r in rows], mode
    for options in STRATEGIES[1:]:
        rows = model.generate(ids, lengths=lengths, options=options)
        assert isinstance(rows, list) and len(rows) == 3
        assert all(isinstance(r, np.ndarray) and r.dtype == np.int32 and r.ndim == 1 for r in rows)


@pytest.mark.parametrize("options", STRATEGIES)
def test_decode_returns_hypothesis_lists(token_model, options):
    model, texts = token_model
    ids, lengths = _ids(model, texts)
    found = model.decode(ids, options, lengths=lengths)
    n = 1 if options is None or options.strategy != "beam" else options.n_best
    assert isinstance(found, list) and [len(row) for row in found] == [n] * 3
    for row in found:
        assert isinstance(row, list) and all(isinstance(h, Hypothesis) for h in row)
        assert all(h.tokens.dtype == np.int32 and h.tokens.ndim == 1 and isinstance(h.log_prob, float)
                   for h in row)
    texts = model.decode_text(texts, options)
    assert [len(row) for row in texts] == [n] * 3
    for row, hyps in zip(texts, found):
        assert all(isinstance(h, TextHypothesis) for h in row)
        assert [h.text for h in row] == [model.target_vocab.decode(h.tokens) for h in hyps]
        assert [x for h in row for x in (h.log_prob, h.score)] == pytest.approx(
                [x for h in hyps for x in (h.log_prob, h.score)])
        text, log_prob, score = row[0]  # still a tuple
        assert (text, log_prob, score) == (row[0].text, row[0].log_prob, row[0].score)


def test_stream_yields_one_array_per_step(token_model):
    model, texts = token_model
    ids, lengths = _ids(model, texts)
    steps = list(model.stream(ids, 6, lengths=lengths))
    assert 1 <= len(steps) <= 6
    assert all(isinstance(s, np.ndarray) and s.dtype == np.int32 and s.shape == (3,) for s in steps)
    greedy = model.generate(ids, 6, lengths=lengths, mode="step")
    for i, row in enumerate(greedy):
        emitted = [int(s[i]) for s in steps if s[i] >= 0]
        assert emitted[:len(row)] == row.tolist()


@pytest.mark.parametrize("empty", [[], (), np.zeros(0, np.int32), np.zeros((0, 5), np.int32)],
                         ids=["list", "tuple", "shape (0,)", "shape (0, 5)"])
def test_token_empty_batches(token_model, empty, no_graph_runs):
    model, _ = token_model
    time = np.shape(empty)[1] if np.ndim(empty) == 2 else 0
    state = model.encode(empty)
    _check_state(model, state, 0, time)
    logits, after = model.step(np.zeros(0, np.int32), state)
    assert logits.dtype == np.float32 and logits.shape == (0, len(model.target_vocab))
    _check_state(model, after, 0, time)
    for mode in model.modes:
        assert model.generate(empty, mode=mode) == []
        assert model.generate(empty, 4, lengths=np.zeros(0, np.int32), mode=mode) == []
    for options in STRATEGIES:
        assert model.decode(empty, options) == []
        if options is not None:
            assert model.generate(empty, options=options) == []
        if options is None or options.strategy != "beam":
            assert list(model.stream(empty, options=options)) == []
    if model.manifest.io.attention is not None:
        assert model.decode(empty, return_attention=True) == []
    assert model.generate_text([]) == [] and model.decode_text([]) == []
    assert model.generate_text(()) == [] and model.decode_text([], DecodeOptions("beam")) == []


def test_empty_batches_still_check_the_arguments(dates, no_graph_runs):
    with pytest.raises(InputError, match=r"^mode must be one of"):
        dates.generate([], mode="turbo")
    with pytest.raises(InputError, match=r"^max_steps must be an integer"):
        dates.generate([], max_steps=0)
    with pytest.raises(InputError, match=r"^max_steps must be an integer"):
        dates.generate_text([], max_steps=0)
    with pytest.raises(InputError, match=r"^lengths: expected integers of shape \(0,\)"):
        dates.encode(np.zeros((0, 3), np.int32), lengths=[2])
    with pytest.raises(InputError, match=r"^source: token ids must be integers, got dtype float32"):
        dates.encode(np.zeros((0, 3), np.float32))
    with pytest.raises(InputError, match=r"^source: expected shape \(batch, time\), got \(0, 3, 1\)"):
        dates.encode(np.zeros((0, 3, 1), np.int32))
    with pytest.raises(InputError, match=r"^first_input applies to feature bundles only"):
        dates.generate([], first_input=np.zeros((0, 2), np.float32))
    with pytest.raises(InputError, match=r"^state has keys"):
        dates.step([], {})


# -- real-valued bundles ------------------------------------------------------------------------------------------

def test_feature_calls_return_their_types(sine_model, golden):
    model = sine_model
    x = np.asarray(golden["sine"]["inputs"], np.float32)  # (3, 40, 2)
    state = model.encode(x)
    _check_state(model, state, 3)
    output, after = model.step(np.zeros((3, 2), np.float32), state)
    assert output.dtype == np.float32 and output.shape == (3, 2)
    _check_state(model, after, 3)
    for mode in model.modes:
        for steps in (None, 5):
            rows = model.generate(x, steps, mode=mode)
            assert isinstance(rows, list) and len(rows) == 3, mode
            want = (steps or model.max_steps, 2)
            assert all(isinstance(r, np.ndarray) and r.dtype == np.float32 and r.shape == want for r in rows), mode
    np.testing.assert_allclose(np.stack(model.generate(x, mode="step")), golden["sine"]["outputs"], atol=1e-5)
    streamed = list(model.stream(x, 4))
    assert len(streamed) == 4 and all(s.dtype == np.float32 and s.shape == (3, 2) for s in streamed)
    np.testing.assert_allclose(np.stack(streamed, axis=1), np.stack(model.generate(x, 4, mode="step")), atol=1e-6)
    with pytest.raises(InputError, match=r"^this bundle's source is real-valued features, not tokens"):
        model.generate_text([])


@pytest.mark.parametrize("empty", [[], np.zeros(0, np.float32), np.zeros((0, 40, 2), np.float32),
                                   np.zeros((0, 7, 2), np.float32)],
                         ids=["list", "shape (0,)", "shape (0, 40, 2)", "shape (0, 7, 2)"])
def test_feature_empty_batches(sine_model, empty, no_graph_runs):
    model = sine_model
    _check_state(model, model.encode(empty), 0)
    output, _ = model.step(np.zeros((0, 2), np.float32), model.encode(empty))
    assert output.dtype == np.float32 and output.shape == (0, 2)
    for mode in model.modes:
        assert model.generate(empty, mode=mode) == []
        assert model.generate(empty, 5, first_input=np.zeros((0, 2), np.float32), mode=mode) == []
    assert list(model.stream(empty)) == []
    with pytest.raises(InputError, match=r"^first_input: batch 1 does not match the source's 0"):
        model.generate(empty, first_input=np.zeros((1, 2), np.float32))
    with pytest.raises(InputError, match=r"^first_input: batch 1 does not match the source's 0"):
        model.stream(empty, first_input=np.zeros((1, 2), np.float32))


def test_feature_empty_batches_still_check_the_shape(sine_model):
    with pytest.raises(InputError, match=r"^source: the model takes 2 features, got 3"):
        sine_model.generate(np.zeros((0, 40, 3), np.float32))
    with pytest.raises(InputError, match=r"^source: expected floating-point values, got dtype int64"):
        sine_model.encode(np.zeros((0, 40, 2), np.int64))


# -- autoencoder bundles ------------------------------------------------------------------------------------------

def _check_autoencoder_calls(model, windows, rows: int) -> None:
    """Every autoencoder call on ``windows`` returns a numpy array of its dtype with ``rows`` rows."""
    latent = model.manifest.graphs["encoder"].output(model.manifest.latent_name).shape[-1]
    results = {"reconstruct": (model.reconstruct(windows), np.float32, (rows, model.window, 2)),
               "embed": (model.embed(windows), np.float32, (rows, latent)),
               "score": (model.score(windows), np.float32, (rows,)),
               "score per step": (model.score(windows, per_step=True), np.float32, (rows, model.window)),
               "detect": (model.detect(windows, threshold=0.1), np.bool_, (rows,)),
               "detect per step": (model.detect(windows, threshold=0.1, per_step=True), np.bool_,
                                   (rows, model.window))}
    for name, (value, dtype, shape) in results.items():
        assert isinstance(value, np.ndarray) and value.dtype == dtype and value.shape == shape, name


def test_autoencoder_calls_return_their_types(ae_model, golden):
    windows = np.asarray(golden["sine"]["inputs"], np.float32)[:, :ae_model.window]  # (3, 40, 2)
    _check_autoencoder_calls(ae_model, windows, 3)


@pytest.mark.parametrize("empty", [[], np.zeros(0, np.float32), np.zeros((0, 40, 2), np.float32)],
                         ids=["list", "shape (0,)", "shape (0, 40, 2)"])
def test_autoencoder_empty_batches(ae_model, empty, no_graph_runs):
    _check_autoencoder_calls(ae_model, empty, 0)


def test_autoencoder_empty_batches_still_check_the_shape(ae_model):
    with pytest.raises(InputError, match=r"^source: the autoencoder reads windows of 40 steps, got 39"):
        ae_model.score(np.zeros((0, 39, 2), np.float32))
    with pytest.raises(InputError, match=r"^source: the model takes 2 features, got 3"):
        ae_model.embed(np.zeros((0, 40, 3), np.float32))
    with pytest.raises(InputError, match=r"^threshold must be a number >= 0"):
        ae_model.detect([], threshold=-1)


def test_cli_writes_an_empty_array_for_no_windows(sine_bundle, tmp_path):
    from seq2seq_edge.cli import main

    source, out = tmp_path / "none.npy", tmp_path / "out.npy"
    np.save(source, np.zeros((0, 40, 2), np.float32))
    assert main(["run", str(sine_bundle), "--input", str(source), "--output", str(out), "--max-steps", "7"]) == 0
    written = np.load(out)
    assert written.shape == (0, 7, 2) and written.dtype == np.float32
