"""The committed tiny bundles reproduce their golden outputs; encode/step/generate behave as documented."""

import threading

import numpy as np
import pytest

from seq2seq_edge.runtime import load


def test_dates_golden_text(dates_bundle, golden):
    model = load(dates_bundle)
    assert model.generate_text(golden["dates"]["inputs"]) == golden["dates"]["outputs"]


def test_dates_golden_encoder_state(dates_bundle, golden):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(golden["dates"]["inputs"])
    np.testing.assert_allclose(model.encode(ids, lengths)["h0"], golden["dates"]["h0"], atol=1e-5)


def test_sine_golden_rollout(sine_bundle, golden):
    model = load(sine_bundle)
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    out = model.generate(x)
    assert out.shape == (3, model.max_steps, 2)
    np.testing.assert_allclose(out, golden["sine"]["outputs"], atol=1e-5)


def test_lengths_default_from_padding(dates_bundle, golden):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(golden["dates"]["inputs"])
    explicit, derived = model.encode(ids, lengths), model.encode(ids)
    for name in explicit:
        np.testing.assert_array_equal(explicit[name], derived[name])


@pytest.mark.parametrize("index", range(5))
def test_alone_equals_in_batch(dates_bundle, golden, index):
    """Padding does not change results: a row decoded alone equals the same row in a padded batch."""
    model = load(dates_bundle)
    texts = golden["dates"]["inputs"]
    alone = model.generate_text([texts[index]])[0]
    assert alone == model.generate_text(texts)[index]
    ids, lengths = model.source_vocab.encode_batch(texts)
    one_ids, one_len = model.source_vocab.encode_batch([texts[index]])
    np.testing.assert_allclose(model.encode(one_ids, one_len)["c0"][0], model.encode(ids, lengths)["c0"][index],
                               atol=1e-5)


def test_step_returns_new_state_and_leaves_input_alone(dates_bundle):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["1 May 2000", "2 June 1999"])
    state = model.encode(ids, lengths)
    before = {k: v.copy() for k, v in state.items()}
    start = np.full(2, model.target_vocab.start_id)
    logits, nxt = model.step(start, state)
    assert logits.shape == (2, len(model.target_vocab))
    assert set(nxt) == {"h0", "c0"}
    for name in state:
        np.testing.assert_array_equal(state[name], before[name])
        assert not np.array_equal(nxt[name], state[name])


def test_step_loop_matches_generate(dates_bundle):
    model = load(dates_bundle)
    ids, lengths = model.source_vocab.encode_batch(["July 14, 2023"])
    state, token, manual = model.encode(ids, lengths), np.array([model.target_vocab.start_id]), []
    for _ in range(model.max_steps):
        logits, state = model.step(token, state)
        token = logits.argmax(-1)
        if token[0] == model.target_vocab.end_id:
            break
        manual.append(int(token[0]))
    assert manual == model.generate(ids, lengths=lengths)[0].tolist()


def test_max_steps_truncates(dates_bundle):
    model = load(dates_bundle)
    assert [len(s) for s in model.generate_text(["July 14, 2023", "1 May 2000"], max_steps=3)] == [3, 3]


def test_threads_share_one_model(dates_bundle, golden):
    model = load(dates_bundle, threads=1)
    texts, want = golden["dates"]["inputs"], golden["dates"]["outputs"]
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(model.generate_text(texts))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80 and all(r == want for r in results)


def test_first_input_overrides_manifest(sine_bundle, golden):
    model = load(sine_bundle)
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    default = model.generate(x, 5)
    same = model.generate(x, 5, first_input=x[:, -1, :])
    other = model.generate(x, 5, first_input=np.zeros((3, 2), np.float32))
    np.testing.assert_allclose(default, same, atol=1e-6)
    assert not np.allclose(default, other)


def test_manifest_records_contract(dates_bundle):
    m = load(dates_bundle).manifest
    assert [(s.name, s.output, s.encoder_output) for s in m.state] == [("h0", "h0_out", "h0"), ("c0", "c0_out", "c0")]
    assert m.parity["ok"] is True and m.parity["tokens_identical"] is True
    assert m.graphs["encoder"].input("source").shape == ("batch", "time")
    assert "tensorflow" in m.versions and "tf2onnx" in m.versions


def test_modes_agree_on_the_committed_bundles(dates_bundle, sine_bundle, golden):
    dates = load(dates_bundle)
    assert dates.modes == ("step", "fused", "fused-int8")
    parity = dates.manifest.parity["modes"]
    fastest_exact = "fused-int8" if parity["fused-int8"]["tokens_identical"] else "fused"
    assert dates.manifest.default_mode == fastest_exact
    texts = golden["dates"]["inputs"]
    assert dates.generate_text(texts, mode="step") == dates.generate_text(texts, mode="fused") == golden["dates"]["outputs"]
    assert dates.generate_text(texts, max_steps=3, mode="fused") == dates.generate_text(texts, max_steps=3, mode="step")
    sine = load(sine_bundle)
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    np.testing.assert_allclose(sine.generate(x, mode="fused"), sine.generate(x, mode="step"), atol=1e-5)
    np.testing.assert_allclose(sine.generate(x, 7, mode="fused-int8"), sine.generate(x, 7), atol=0.05)


def test_int8_agreement_is_recorded(dates_bundle):
    parity = load(dates_bundle).manifest.parity
    assert parity["modes"]["fused"]["tokens_identical"] is True
    assert 0.0 <= parity["modes"]["fused-int8"]["token_agreement"] <= 1.0
