"""Boundaries and less travelled paths: exact limits, tampered graph roles, streams with every argument."""

import json

import numpy as np
import pytest

from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load
from seq2seq_edge.runtime.manifest import MAX_SIZE, FeatureSpec
from seq2seq_edge.runtime.strategies import chooser
from seq2seq_edge.runtime.vocab import _excerpt


def _edit(bundle, change):
    data = json.loads((bundle / "manifest.json").read_text())
    change(data)
    (bundle / "manifest.json").write_text(json.dumps(data))
    return bundle


def test_top_k_filters_a_single_row_too():
    logp = np.log(np.array([[0.4, 0.3, 0.2, 0.1]]))
    draws = {int(chooser(DecodeOptions("sample", top_k=2, seed=s))(logp)[0]) for s in range(200)}
    assert draws == {0, 1}
    draws = {int(chooser(DecodeOptions("sample", top_k=3, seed=s))(logp)[0]) for s in range(300)}
    assert draws == {0, 1, 2}


def test_the_largest_id_is_refused_and_the_one_below_accepted(dates):
    size = len(dates.source_vocab)
    with pytest.raises(InputError, match=rf"^source: ids must lie in \[0, {size}\), got values from 5 to {size}$"):
        dates.encode(np.array([[5, size]]))
    dates.encode(np.array([[5, size - 1]]))


def test_a_state_that_is_not_a_dict(dates):
    with pytest.raises(InputError, match=r"^state must be a dict of arrays named \['c0', 'h0'\], got list$"):
        dates.step(np.array([2]), [np.zeros((1, 48))])


@pytest.mark.parametrize("features, ok", [(1, True), (MAX_SIZE, True), (0, False), (MAX_SIZE + 1, False)])
def test_feature_counts_at_the_bounds(features, ok):
    make = lambda: FeatureSpec(features, (0.0,) * max(features, 0), (1.0,) * max(features, 0))  # noqa: E731
    if ok:
        assert make().features == features
    else:
        with pytest.raises(BundleError, match=rf"^features: features must be an integer in \[1, {MAX_SIZE}\], "
                                              rf"got {features}$") as info:
            make()
        assert (info.value.code, info.value.field) == ("range", "features")


def test_excerpts_of_long_texts():
    assert _excerpt("a" * 80, 3) == repr("a" * 80)  # short enough: whole
    text = "".join(chr(ord("a") + i % 26) for i in range(81))
    assert _excerpt(text, 0) == repr(text[:30]) + "... (a text of 81 characters)"
    assert _excerpt(text, 80) == "..." + repr(text[50:]) + " (a text of 81 characters)"
    assert _excerpt(text, 40) == "..." + repr(text[10:70]) + "... (a text of 81 characters)"


def test_stream_takes_lengths_and_first_input(dates, sine, golden):
    ids, lengths = dates.source_vocab.encode_batch(["3 mei 1961 plus junk", "1 May 2000"])
    lengths[0] = len("3 mei 1961")
    rows = np.stack(list(dates.stream(ids, lengths=lengths)), axis=1)
    assert [dates.target_vocab.decode(r[r >= 0]) for r in rows] == ["1961-05-03", "2000-05-01"]
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    first = np.zeros((3, 2), np.float32)
    streamed = np.stack(list(sine.stream(x, 6, first_input=first)), axis=1)
    np.testing.assert_allclose(streamed, sine.generate(x, 6, first_input=first, mode="step"), atol=1e-6)
    assert streamed.dtype == np.float32


def test_a_bundle_whose_decoder_starts_from_zeros(sine_bundle, golden, copy_bundle):
    model = load(_edit(copy_bundle(sine_bundle), lambda d: d["decode"].update(first_input="zeros")))
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    zeros = np.zeros((3, 2), np.float32)
    m = model.manifest
    want = model.generate(x, 5, first_input=(zeros * np.float32(m.target.std)) + np.float32(m.target.mean),
                          mode="step")
    np.testing.assert_allclose(model.generate(x, 5, mode="step"), want, atol=1e-6)
    np.testing.assert_allclose(model.generate(x, 5, mode="fused"), want, atol=1e-5)


def test_a_decode_mode_whose_loop_is_another_graph(bundle_copy):
    def change(d):
        d["decode"]["modes"]["fused"]["decoder"] = "encoder"
    with pytest.raises(BundleError, match=r"^encoder.onnx \(mode 'fused'\): inputs \['source', 'source_length'\] "
                                          r"should be \['c0', 'first_input', 'h0', 'max_steps'\]$"):
        load(_edit(bundle_copy, change))


def test_autoencoder_graph_roles_are_checked(ae_bundle, dates_bundle, copy_bundle):
    swapped = copy_bundle(ae_bundle)
    _edit(swapped, lambda d: d["graphs"].update(encoder=d["graphs"]["autoencoder"]))
    with pytest.raises(BundleError, match=r"^autoencoder.onnx outputs: no tensor named 'latent' "
                                          r"\(have \['reconstruction'\]\)$"):
        load(swapped)


def test_autoencoder_window_must_match_the_graphs(ae_bundle, copy_bundle):
    with pytest.raises(BundleError, match=r"^autoencoder source: tensor 'source' has shape \['batch', 40, 2\], "
                                          r"expected \['batch', 39, 2\]; encoder, decoder and manifest disagree"):
        load(_edit(copy_bundle(ae_bundle), lambda d: d.update(window=39)))


def test_an_autoencoder_graph_with_two_inputs(ae_bundle, dates_bundle, copy_bundle):
    bundle = copy_bundle(ae_bundle)
    (bundle / "encoder.onnx").write_bytes((dates_bundle / "encoder.onnx").read_bytes())
    dates_graph = json.loads((dates_bundle / "manifest.json").read_text())["graphs"]["encoder"]
    _edit(bundle, lambda d: d["graphs"].update(encoder=dates_graph))
    with pytest.raises(BundleError, match=r"^encoder.onnx: inputs \['source', 'source_length'\] should be just "
                                          r"\['source'\]; the manifest belongs to another bundle$"):
        load(bundle)
