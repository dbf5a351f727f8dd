"""Property-based attacks (hypothesis): random manifests and random inputs either work or raise our errors.

Loading a bundle whose manifest.json was changed at a random place, to a random JSON value, must
succeed or raise BundleError; decoding random arrays, texts and options must succeed or raise
InputError (or BundleError) - never any other exception. Several thousand cases per run, derandomized
so that CI sees the same cases every time.
"""

import copy
import json
import math
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                         st.sampled_from(["h0", "c0", "source", "encoder", "step", "fused", "lstm", "gru", "tokens",
                                          "features", "lengths", "none", "mask", "zeros", "start_token"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)


def _paths(data, prefix=()):
    """Every place in a JSON tree: (path to the container, key or index)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        yield prefix, key
        yield from _paths(value, prefix + (key,))


@st.composite
def mutated(draw, manifest: dict):
    data = copy.deepcopy(manifest)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(data))
        parent_path, key = draw(st.sampled_from(places))
        parent = data
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        elif action == "add":
            parent.append(draw(json_values))
        else:
            parent[key] = draw(json_values)
    return data


def _attack(bundle, data) -> None:
    text = json.dumps(data, allow_nan=True)
    (bundle / "manifest.json").write_text(text)
    try:
        load(bundle, threads=1)
    except BundleError:
        pass


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, dates_bundle, sine_bundle, ae_bundle):
    root = tmp_path_factory.mktemp("attacked")
    out = {}
    for name, src in (("dates", dates_bundle), ("sine", sine_bundle), ("ae", ae_bundle)):
        shutil.copytree(src, root / name)
        out[name] = (root / name, json.loads((src / "manifest.json").read_text()))
    return out


@pytest.mark.parametrize("name, examples", [("dates", 1200), ("sine", 500), ("ae", 500)])
def test_random_manifests_load_or_raise_bundle_error(bundles, name, examples):
    bundle, manifest = bundles[name]

    @settings(max_examples=examples, **SETTINGS)
    @given(mutated(manifest))
    def attack(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _attack(bundle, data)

    attack()


# -- inputs ----------------------------------------------------------------------------------------

dtypes = st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.uint64, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64])
arrays = st.builds(lambda shape, dtype, fill, seed: _array(shape, dtype, fill, seed),
                   st.lists(st.integers(0, 5), max_size=4), dtypes,
                   st.sampled_from(["random", "big", "nan", "inf", "negative", "zero"]), st.integers(0, 2**16))


def _array(shape, dtype, fill, seed):
    rng = np.random.default_rng(seed)
    values = {"random": rng.normal(size=shape) * 10, "big": np.full(shape, 1e39), "nan": np.full(shape, math.nan),
              "inf": np.full(shape, math.inf), "negative": -np.abs(rng.normal(size=shape)) * 100,
              "zero": np.zeros(shape)}[fill]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return values.astype(dtype)


option_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=True),
                          st.text(max_size=5), st.just(np.int64(2)), st.just(np.float32(0.5)))
options = st.one_of(st.none(), st.builds(
    lambda kwargs: kwargs, st.dictionaries(st.sampled_from(["strategy", "temperature", "top_k", "top_p", "seed",
                                                            "beam_width", "length_penalty", "n_best"]),
                                           st.one_of(option_values, st.sampled_from(["greedy", "sample", "beam"])),
                                           max_size=4)))


def _expect_our_errors(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning escapes either
        try:
            call()
        except (InputError, BundleError):
            pass


@pytest.fixture(scope="module")
def models(dates_bundle, sine_bundle, ae_bundle):
    return load(dates_bundle, threads=1), load(sine_bundle, threads=1), load(ae_bundle, threads=1)


@settings(max_examples=500, **SETTINGS)
@given(source=arrays, lengths=st.one_of(st.none(), arrays), kwargs=options, max_steps=option_values,
       mode=st.sampled_from([None, "step", "fused", "fused-int8", "bogus"]))
def test_random_token_inputs(models, source, lengths, kwargs, max_steps, mode):
    dates = models[0]

    def call():
        opts = None if kwargs is None else DecodeOptions(**kwargs)
        steps = max_steps if isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps < 50 \
            else None
        dates.generate(source, steps, lengths=lengths, mode=mode, options=opts)
        dates.decode(source, opts, lengths=lengths)
        list(dates.stream(source, lengths=lengths, options=opts))
    _expect_our_errors(call)


@settings(max_examples=400, **SETTINGS)
@given(texts=st.one_of(st.text(max_size=30), st.lists(st.one_of(st.text(max_size=30), st.integers(), st.none()),
                                                       max_size=5)),
       kwargs=options)
def test_random_texts(models, texts, kwargs):
    _expect_our_errors(lambda: models[0].generate_text(
        texts, options=None if kwargs is None else DecodeOptions(**kwargs)))


@settings(max_examples=400, **SETTINGS)
@given(source=arrays, first=st.one_of(st.none(), arrays), state=arrays,
       mode=st.sampled_from([None, "step", "fused", "fused-int8"]), threshold=option_values)
def test_random_feature_inputs(models, source, first, state, mode, threshold):
    sine, ae = models[1], models[2]
    _expect_our_errors(lambda: sine.generate(source, 5, first_input=first, mode=mode))
    _expect_our_errors(lambda: sine.step(first, {"h0": state, "c0": state}))
    _expect_our_errors(lambda: list(sine.stream(source, 3, first_input=first)))
    _expect_our_errors(lambda: ae.detect(source, threshold=threshold))
    _expect_our_errors(lambda: (ae.reconstruct(source), ae.embed(source)))
