"""Property tests that reach the decoder (issue 31): inputs of the bundles' real shapes and vocabularies, and
manifests altered in ways that still load, decoded, with invariants checked on every output.

- tokens: texts drawn from the dates bundle's own source symbols (a few with a symbol it lacks), decoded in
  every mode and strategy: every id lies in the target vocabulary, no output is longer than max_steps or
  holds the end id, a row decoded alone equals the same row in a batch, step mode equals the fused loop, a
  beam of width 1 is greedy, n_best hypotheses come best first.
- features: windows of the sine bundle's shape (any length, 2 features, values of any scale), forecast in
  every mode: finite, of the right shape, alone = batch, step = fused, stream = generate.
- manifests: edits of the fields a user or a hostile party would change that leave a loadable bundle
  (tokens, including control characters, special ids, max_steps, the default mode, on_unknown, reverse,
  the task); each loaded bundle decodes, and the same invariants hold, or the call raises our error.

Each test counts how many of its examples reached a decode and asserts it is at least half; the counts are
printed (`pytest -s`). Derandomized, so CI sees the same cases every run.
"""

import json
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OUR_ERRORS = (InputError, BundleError)


class Tally:
    """How many examples a property test generated, and how many of them decoded."""

    def __init__(self, name: str) -> None:
        self.name, self.examples, self.decoded = name, 0, 0

    def check(self) -> None:
        print(f"\n{self.name}: {self.decoded} of {self.examples} examples decoded "
              f"({self.decoded / max(1, self.examples):.0%})")
        assert self.examples > 0 and self.decoded >= self.examples / 2, (self.decoded, self.examples)


@pytest.fixture(scope="module")
def dates(dates_bundle):
    return load(dates_bundle, threads=1)


@pytest.fixture(scope="module")
def sine(sine_bundle):
    return load(sine_bundle, threads=1)


def _symbols(model) -> list[str]:
    vocab = model.source_vocab
    specials = {vocab.pad_id, vocab.unk_id, vocab.start_id, vocab.end_id}
    return [t for i, t in enumerate(vocab.tokens) if i not in specials]


def _texts(symbols: list[str]):
    """Texts of the vocabulary's symbols; one in ten lists holds a symbol outside it or a blank text."""
    known = st.text(alphabet=st.sampled_from(symbols), min_size=1, max_size=30).filter(str.strip)
    odd = st.one_of(st.just(" "), st.text(alphabet="\u2603\x1b\u00e9Q", min_size=1, max_size=3))
    good = st.lists(known, min_size=1, max_size=6)
    return st.one_of(good, good, good, good, good, good, good, good, good,
                     st.lists(st.one_of(known, odd), min_size=1, max_size=6))


def _check_tokens(model, rows, steps: int) -> None:
    """Each row: ids inside the target vocabulary, at most ``steps`` of them, no end id among them."""
    size, end = len(model.target_vocab), model.target_vocab.end_id
    for row in rows:
        row = np.asarray(row)
        assert row.ndim == 1 and len(row) <= steps
        assert ((row >= 0) & (row < size)).all() and not (row == end).any()


def test_token_inputs_decode_with_invariants(dates):
    tally = Tally("tokens")
    symbols = _symbols(dates)
    options = st.one_of(st.just(DecodeOptions()),
                        st.builds(lambda w, n, a: DecodeOptions(strategy="beam", beam_width=w, n_best=min(n, w),
                                                                length_penalty=a),
                                  st.integers(1, 5), st.integers(1, 3), st.sampled_from([0.0, 0.6, 1.0, 2.0])),
                        st.builds(lambda seed, t: DecodeOptions(strategy="sample", seed=seed, temperature=t),
                                  st.integers(0, 2**31), st.sampled_from([0.5, 1.0, 1.5])))

    @settings(max_examples=250, **SETTINGS)
    @given(texts=_texts(symbols), options=options, max_steps=st.one_of(st.none(), st.integers(1, dates.max_steps)))
    def decode(texts, options, max_steps):
        tally.examples += 1
        steps = max_steps or dates.max_steps
        if any(not t.strip() for t in texts):
            with pytest.raises(InputError, match=r"^item \d+ is an empty string"):
                dates.generate_text(texts, max_steps)
            return
        try:
            ids, lengths = dates.source_vocab.encode_batch(texts)
        except OUR_ERRORS:
            with pytest.raises(OUR_ERRORS):  # a text the vocabulary refuses is refused by decoding too
                dates.generate_text(texts, max_steps)
            return
        if (lengths == 0).any():
            with pytest.raises(InputError):
                dates.generate_text(texts, max_steps)
            return
        outputs = {}
        for mode in dates.modes:
            rows = dates.generate(ids, max_steps, lengths=lengths, mode=mode)
            _check_tokens(dates, rows, steps)
            outputs[mode] = [list(r) for r in rows]
            alone = [list(dates.generate(ids[i:i + 1, :lengths[i]], max_steps, mode=mode)[0])
                     for i in range(len(texts))]
            assert alone == outputs[mode], mode  # a row's answer does not depend on its neighbours
        assert outputs["step"] == outputs["fused"]  # the fused loop runs the step graph's computation
        assert dates.generate_text(texts, max_steps) == [dates.target_vocab.decode(r)
                                                          for r in outputs[dates.manifest.default_mode]]
        hypotheses = dates.decode(ids, options, lengths=lengths, max_steps=max_steps)
        assert len(hypotheses) == len(texts)
        for row, greedy in zip(hypotheses, outputs["step"]):
            want = options.n_best if options.strategy == "beam" else 1
            assert len(row) == want and all(np.isfinite(h.log_prob) and h.log_prob <= 1e-6 for h in row)
            _check_tokens(dates, [h.tokens for h in row], steps)
            assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
            if options.strategy == "greedy" or (options.strategy == "beam" and options.beam_width == 1):
                assert list(row[0].tokens) == greedy
        streamed = list(dates.stream(ids, max_steps, lengths=lengths))
        assert len(streamed) <= steps
        tally.decoded += 1

    decode()
    tally.check()


def test_feature_inputs_decode_with_invariants(sine):
    tally = Tally("features")
    features = sine.manifest.source.features
    windows = st.builds(
        lambda batch, time, scale, seed, nan: _window(batch, time, features, scale, seed, nan),
        st.integers(1, 4), st.integers(1, 60), st.sampled_from([0.01, 1.0, 10.0, 1e3, 1e30]), st.integers(0, 2**16),
        st.integers(0, 9))

    @settings(max_examples=200, **SETTINGS)
    @given(x=windows, steps=st.integers(1, sine.max_steps))
    def forecast(x, steps):
        tally.examples += 1
        try:
            out = {mode: np.stack(sine.generate(x, steps, mode=mode)) for mode in sine.modes}
        except InputError:
            assert not np.isfinite(x).all() or np.abs(x).max() > 1e20  # only NaN or overflowing values are refused
            return
        for mode, y in out.items():
            assert y.shape == (len(x), steps, sine.manifest.target.features) and y.dtype == np.float32, mode
            assert np.isfinite(y).all(), mode
            alone = np.stack([sine.generate(x[i:i + 1], steps, mode=mode)[0] for i in range(len(x))])
            np.testing.assert_allclose(alone, y, rtol=1e-5, atol=1e-5 * (1 + np.abs(y).max()))
        np.testing.assert_allclose(out["step"], out["fused"], rtol=1e-5, atol=1e-5 * (1 + np.abs(out["step"]).max()))
        np.testing.assert_array_equal(np.stack(list(sine.stream(x, steps)), axis=1), out["step"])
        tally.decoded += 1

    forecast()
    tally.check()


def _window(batch, time, features, scale, seed, nan):
    x = np.random.default_rng(seed).normal(size=(batch, time, features)) * scale
    if nan == 0:  # one in ten: a NaN somewhere
        x[0, time // 2, 0] = np.nan
    return x.astype(np.float32)


# -- manifests that still load ---------------------------------------------------------------------------------

def _edits(manifest: dict):
    """One edit of a field a user (or a hostile party) would change, which the schema allows."""
    target = manifest["target"]["vocabulary"]
    source = manifest["source"]["vocabulary"]
    n = len(target["tokens"])
    token = st.text(min_size=1, max_size=6)
    return st.one_of(
        st.tuples(st.just("target token"), st.integers(0, n - 1), token),
        st.tuples(st.just("source token"), st.integers(0, len(source["tokens"]) - 1), token),
        st.tuples(st.just("swap target tokens"), st.integers(0, n - 1), st.integers(0, n - 1)),
        st.tuples(st.just("target special"), st.sampled_from(["pad_id", "unk_id", "start_id", "end_id"]),
                  st.integers(0, n - 1)),
        st.tuples(st.just("max_steps"), st.integers(1, 100_000), st.none()),
        st.tuples(st.just("default_mode"), st.sampled_from(list(manifest["decode"]["modes"])), st.none()),
        st.tuples(st.just("on_unknown"), st.sampled_from(["unk", "error"]), st.none()),
        st.tuples(st.just("reverse"), st.booleans(), st.none()),
        st.tuples(st.just("task"), st.text(max_size=40), st.none()),
    )


def _apply(manifest: dict, edit) -> dict:
    data = json.loads(json.dumps(manifest))
    kind, a, b = edit
    target, source = data["target"]["vocabulary"], data["source"]["vocabulary"]
    if kind == "target token":
        target["tokens"][a] = b
    elif kind == "source token":
        source["tokens"][a] = b
    elif kind == "swap target tokens":
        target["tokens"][a], target["tokens"][b] = target["tokens"][b], target["tokens"][a]
    elif kind == "target special":
        target[a] = b
    elif kind == "max_steps":
        data["decode"]["max_steps"] = a
    elif kind == "default_mode":
        data["decode"]["default_mode"] = a
    elif kind == "on_unknown":
        source["on_unknown"] = a
    elif kind == "reverse":
        source["reverse"] = a
    else:
        data["task"] = a
    return data


def test_altered_manifests_that_load_decode_with_invariants(dates_bundle, tmp_path):
    tally = Tally("altered manifests")
    bundle = tmp_path / "bundle"
    shutil.copytree(dates_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    texts = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000", "5 juni 1970 x"]

    @settings(max_examples=150, **SETTINGS)
    @given(edits=st.lists(_edits(manifest), min_size=1, max_size=2))
    def alter(edits):
        tally.examples += 1
        data = manifest
        for edit in edits:
            data = _apply(data, edit)
        (bundle / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
        try:
            model = load(bundle, threads=1)
        except BundleError:
            return  # refused whole, as the property test of random manifests checks
        steps = min(model.max_steps, 30)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                outputs = {mode: model.generate_text(texts[:3], steps, mode=mode) for mode in model.modes}
                ids, lengths = model.source_vocab.encode_batch(texts[:3])
                for mode in model.modes:
                    _check_tokens(model, model.generate(ids, steps, lengths=lengths, mode=mode), steps)
                beam = model.decode_text(texts[:3], DecodeOptions(strategy="beam", beam_width=3), steps)
        except OUR_ERRORS:
            return
        assert all(isinstance(t, str) for texts_ in outputs.values() for t in texts_)
        if data["target"]["vocabulary"]["end_id"] == manifest["target"]["vocabulary"]["end_id"]:
            assert outputs["step"] == outputs["fused"]  # (a loop graph stops at the end id it was built with)
        assert len(beam) == 3 and all(len(row) == 1 for row in beam)
        tally.decoded += 1

    alter()
    tally.check()
