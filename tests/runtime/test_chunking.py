"""Long batches decode in length-sorted chunks: memory follows the total input, results keep their order."""

import tracemalloc

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, load
from seq2seq_edge.runtime.model import length_chunks


@pytest.mark.parametrize("seed", range(5))
def test_chunks_cover_every_row_once_within_the_budget(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 300, size=500).tolist() + [5000]
    chunks = list(length_chunks(lengths, 2048))
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        longest = max(lengths[i] for i in chunk)
        assert len(chunk) * longest <= 2048 or len(chunk) == 1
        assert [lengths[i] for i in chunk] == sorted(lengths[i] for i in chunk)
    assert chunks[-1] == [len(lengths) - 1]  # the 5000-long row goes alone


def test_chunks_are_as_large_as_the_budget_allows():
    assert list(length_chunks([2, 2, 2, 2, 2], 6)) == [[0, 1, 2], [3, 4]]
    assert list(length_chunks([3, 1, 2], 100)) == [[1, 2, 0]]
    assert list(length_chunks([], 10)) == []


def test_one_huge_line_among_many_short_ones_costs_its_own_size(dates_bundle):
    model = load(dates_bundle, threads=1)
    short = ["14 juillet 2023", "3 mei 1961", "1 May 2000"] * 1000
    huge = "1 May 2000 " * 372  # 4,092 characters, near the cap of 4,096 tokens a source
    texts = short[:1500] + [huge] + short[1500:]
    tracemalloc.start()
    out = model.generate_text(texts, max_steps=12)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Padding every row to the longest would take 3001 x 4,092 int32 = 49 MB (one-hot and states more).
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"
    assert out[:3] == ["2023-07-14", "1961-05-03", "2000-05-01"] and out[1501:1504] == out[:3]
    assert len(out) == len(texts) and out[1500] == model.generate_text([huge], max_steps=12)[0]


def test_chunked_results_equal_one_batch(dates_bundle, monkeypatch):
    import seq2seq_edge.runtime.chunks as chunks_module

    monkeypatch.setattr(chunks_module, "TOKEN_BUDGET", 40)  # two or three texts per chunk
    model = load(dates_bundle)
    texts = [f"{d} {m} {y}" for d, m, y in zip(range(1, 29), ["May", "juillet", "Juli", "mei"] * 7,
                                                    range(1950, 2040, 3))]
    ids, lengths = model.source_vocab.encode_batch(texts)
    want = [model.target_vocab.decode(r) for r in model.generate(ids, lengths=lengths)]
    assert model.generate_text(texts) == want
    beam = DecodeOptions("beam", beam_width=3, n_best=2)
    whole = model.decode(ids, beam, lengths=lengths)
    assert [[h[0] for h in row] for row in model.decode_text(texts, beam)] == \
        [[model.target_vocab.decode(h.tokens) for h in row] for row in whole]
    assert len(list(length_chunks([len(model.source_vocab.encode(t)) for t in texts], 40))) >= 10


# -- the encoder's chunks: rows of very different lengths encode in length-sorted chunks -----------------------

def test_encoder_chunks_rule():
    from seq2seq_edge.runtime.model import encoder_chunks

    mixed = np.array([8 + (i * 7) % 17 for i in range(32)])  # 8..24
    chunks = encoder_chunks(mixed)
    assert [len(c) for c in chunks] == [8, 8, 8, 8]
    flat = np.concatenate(chunks)
    assert sorted(flat.tolist()) == list(range(32)) and (np.diff(mixed[flat]) >= 0).all()
    assert [len(c) for c in encoder_chunks(np.resize(mixed, 200))] == [25] * 8  # at most eight calls
    assert encoder_chunks(mixed[:15]) is None  # fewer than two chunks of eight rows
    assert encoder_chunks(np.full(32, 12)) is None  # nothing to save
    assert encoder_chunks(np.array([10] * 31 + [9])) is None  # under 10% to save


class _Counting:
    """An onnxruntime session that counts its calls and the batch of each."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, names, feed):
        self.batches.append(next(iter(feed.values())).shape[0])
        return self.session.run(names, feed)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.mark.parametrize("fixture", ["dates_bundle", "attention_bundle"])
def test_chunked_encoder_equals_one_call(fixture, request, monkeypatch):
    import seq2seq_edge.runtime.chunks as chunks_module

    model = load(request.getfixturevalue(fixture), threads=1)
    texts = [f"{d} {m} {y}" for d, m, y in zip(range(1, 41), ["May", "juillet", "Juli", "mei", "September"] * 8,
                                                range(1950, 2040, 2))]
    texts[3] = "Saturday 1 September 1984"
    ids, lengths = model.source_vocab.encode_batch(texts)
    ids = np.pad(ids, ((0, 0), (0, 3)), constant_values=model.source_vocab.pad_id)  # wider than the longest row
    assert chunks_module.encoder_chunks(lengths) is not None
    assert load(request.getfixturevalue(fixture))._encoder.chunked is False  # onnxruntime's threads: no chunks
    for mode in model.modes:
        name = model.manifest.modes[mode]["encoder"]
        counting = _Counting(model.bundle.sessions[name])
        monkeypatch.setitem(model.bundle.sessions, name, counting)
        chunked = model._encode(ids, lengths, mode)
        tokens = model.generate(ids, lengths=lengths, mode=mode)
        assert counting.batches[:5] == [8, 8, 8, 8, 8], mode
        monkeypatch.setattr(chunks_module, "encoder_chunks", lambda lengths: None)
        whole = model._encode(ids, lengths, mode)
        assert counting.batches[-1] == 40
        past = np.arange(ids.shape[1])[None, :] >= lengths[:, None]  # where each row's mask is 0
        for key, value in whole.items():
            assert chunked[key].shape == value.shape, key
            # Attention ignores the constants past each row's length (a key bias may leave values there).
            used = ~past if key in model._constants else np.ones(len(value), bool)
            # int8: each call quantises its own rows. Measured on the two bundles: at most 0.0074 where values stay
            # within 1 (h, memory), 0.041 on the cell state (values up to 12) and 0.031 on the keys (up to 7).
            tolerance = 1e-6 if not mode.endswith("int8") else 0.01 if np.abs(value[used]).max() <= 1 else 0.05
            np.testing.assert_allclose(chunked[key][used], value[used], atol=tolerance, err_msg=f"{mode} {key}")
        for mask in (c.name for c in model.manifest.constants if c.size is None):
            np.testing.assert_array_equal(chunked[mask], (~past).astype(np.float32))
        if not mode.endswith("int8"):
            assert all((a == b).all() for a, b in zip(tokens, model.generate(ids, lengths=lengths, mode=mode)))
        monkeypatch.undo()
