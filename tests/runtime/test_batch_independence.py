"""Same row, same answer: every mode of every committed bundle kind decodes each row identically alone, in one
batch, and in shuffled batches (int8 included: its activation scales are constants calibrated at export, not
the batch's range), and `score` writes byte-identical files whatever the worker count and batch size.

With the dynamic int8 that bundles had before, 13 of these 300 dates rows, 11 attention rows and every one of
the 203 sine windows differed between alone and batch in `fused-int8`."""

import json

import numpy as np
import pytest

from seq2seq_edge.runtime import load
from seq2seq_edge.scale import score_file

ROWS, CHUNK = 300, 37


def _texts(model, seed: int = 0) -> list[str]:
    """The golden dates and random strings of the bundle's own source symbols, 1 to 24 of them: inputs from
    inside and far outside what the model was calibrated on."""
    rng = np.random.default_rng(seed)
    symbols = [s for s in model.source_vocab.tokens if len(s) == 1 and s.isprintable() and not s.isspace()]
    golden = [t for t in ("14 juillet 2023", "July 14, 2023", "3 mei 1961", "Sunday, 31 December 2049")
              if set(t) <= set(symbols) | {" "}]
    return golden + ["".join(rng.choice(symbols, rng.integers(1, 25))) for _ in range(ROWS - len(golden))]


def _windows(model, golden) -> np.ndarray:
    inputs = np.asarray(golden["sine"]["inputs"], np.float32)
    noise = np.random.default_rng(0).normal(size=(200,) + inputs.shape[1:]).astype(np.float32)
    return np.concatenate([inputs, noise])


def _alone_batch_shuffled(decode, rows) -> tuple[list, list, list]:
    """Each row's output decoded alone, all in one batch, and in shuffled batches of CHUNK (put back in order)."""
    batch = decode(rows)
    alone = [decode(rows[i:i + 1])[0] for i in range(len(rows))]
    order = np.random.default_rng(1).permutation(len(rows))
    shuffled = [None] * len(rows)
    for k in range(0, len(rows), CHUNK):
        part = order[k:k + CHUNK]
        for i, out in zip(part, decode([rows[i] for i in part] if isinstance(rows, list) else rows[part])):
            shuffled[i] = out
    return alone, batch, shuffled


def _differing(a: list, b: list) -> int:
    return sum(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["dates_bundle", "attention_bundle", "keras_io_bundle"])
def test_token_bundles_every_mode(name, request):
    model = load(request.getfixturevalue(name))
    texts = _texts(model)
    for mode in model.modes:
        alone, batch, shuffled = _alone_batch_shuffled(lambda rows: model.generate_text(list(rows), mode=mode), texts)
        assert (_differing(alone, batch), _differing(shuffled, batch)) == (0, 0), mode


def test_feature_bundle_every_mode(sine_bundle, golden):
    model = load(sine_bundle)
    windows = _windows(model, golden)
    for mode in model.modes:
        alone, batch, shuffled = _alone_batch_shuffled(lambda rows: model.generate(rows, mode=mode), windows)
        assert (_differing(alone, batch), _differing(shuffled, batch)) == (0, 0), mode  # bit for bit


@pytest.mark.parametrize("name", ["dates_bundle", "attention_bundle", "sine_bundle"])
def test_int8_is_static_and_says_so(name, request):
    model = load(request.getfixturevalue(name))
    assert "fused-int8" in model.modes
    assert model.manifest.int8["method"] == "static" and model.manifest.int8["batch_independent"] is True


def test_score_writes_the_same_file_whatever_the_workers_and_batches(dates_bundle, tmp_path):
    """The default mode (fused-int8) on 300 rows: 1 worker in batches of 256, 2 in batches of 7, 3 in batches
    of 37."""
    model = load(dates_bundle)
    assert model.manifest.default_mode == "fused-int8"
    (tmp_path / "in.txt").write_text("\n".join(_texts(model, seed=2)) + "\n", encoding="utf-8")
    outputs = []
    for workers, batch_size in ((1, 256), (2, 7), (3, 37)):
        out = tmp_path / f"out{workers}.jsonl"
        score_file(dates_bundle, tmp_path / "in.txt", out, workers=workers, batch_size=batch_size)
        outputs.append(out.read_bytes())
    assert outputs[1] == outputs[0] and outputs[2] == outputs[0]
    rows = [json.loads(line) for line in outputs[0].decode("utf-8").splitlines()]
    assert len(rows) == ROWS and rows[2]["output"] == "1961-05-03"


def test_autoencoder_scores_a_window_alone_as_in_a_batch(ae_bundle, golden):
    """Autoencoder bundles have one fp32 graph per role and no int8: a window's reconstruction, score and
    latent do not depend on its neighbours. Alone they are not the same bits (onnxruntime multiplies a single
    row by another kernel: measured at most 3.3e-6 on values up to 5.4), so this compares within 1e-5 of
    the largest value; batches of any size above one give the same bits."""
    model = load(ae_bundle)
    windows = np.concatenate([np.asarray(golden["autoencoder"]["inputs"], np.float32),
                              np.random.default_rng(2).normal(size=(60, 40, 2)).astype(np.float32)])
    for method in (model.reconstruct, model.score, model.embed):
        alone, batch, shuffled = _alone_batch_shuffled(method, windows)
        scale = float(np.abs(np.asarray(batch)).max())
        assert np.abs(np.asarray(alone) - np.asarray(batch)).max() <= 1e-5 * scale, method.__name__
        assert _differing(shuffled, batch) == 0, method.__name__
