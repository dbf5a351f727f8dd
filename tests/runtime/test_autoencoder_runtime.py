"""The committed tiny autoencoder bundle: golden reconstructions, scores recomputed, detection, errors."""

import json

import numpy as np
import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import AutoencoderModel, InputError, load


@pytest.fixture(scope="module")
def model(ae_bundle):
    return load(ae_bundle)


@pytest.fixture(scope="module")
def windows(golden):
    return np.asarray(golden["autoencoder"]["inputs"], np.float32)  # (8, 40, 2): 4 normal, then 4 with a burst


def test_load_gives_an_autoencoder(model):
    assert isinstance(model, AutoencoderModel)
    assert model.window == 40 and model.manifest.encoder_units == (16, 8) and model.manifest.decoder_units == (8, 16)


def test_golden_reconstructions_latents_and_scores(model, windows, golden):
    g = golden["autoencoder"]
    np.testing.assert_allclose(model.reconstruct(windows), g["reconstructions"], atol=1e-5)
    np.testing.assert_allclose(model.embed(windows), g["latent"], atol=1e-5)
    np.testing.assert_allclose(model.score(windows), g["scores"], atol=1e-5)


def test_score_is_the_normalised_mean_squared_error(model, windows):
    mean, std = np.float32(model.manifest.source.mean), np.float32(model.manifest.source.std)
    want = np.mean(((model.reconstruct(windows) - windows) / std) ** 2, axis=(1, 2))  # recomputed here
    np.testing.assert_allclose(model.score(windows), want, rtol=1e-4)
    assert model.reconstruct(windows).shape == windows.shape and mean.shape == (2,)


def test_detect_flags_the_bursts_and_only_them(model, windows, golden):
    assert model.threshold == pytest.approx(1.5823313)
    assert model.detect(windows).tolist() == golden["autoencoder"]["anomalous"]
    assert model.detect(windows, threshold=0).all()
    assert not model.detect(windows, threshold=1e9).any()
    scores = model.score(windows)
    cut = float(np.sort(scores)[2])  # strictly above: the two lowest and the cut itself are not flagged
    assert model.detect(windows, threshold=cut).tolist() == (scores > cut).tolist()
    assert model.detect(windows, threshold=cut).sum() == 5


def test_any_batch_size(model, windows):
    full = (model.reconstruct(windows), model.embed(windows), model.score(windows))
    for i in range(len(windows)):
        one = windows[i:i + 1]
        np.testing.assert_allclose(model.reconstruct(one)[0], full[0][i], atol=1e-5)
        np.testing.assert_allclose(model.embed(one)[0], full[1][i], atol=1e-5)
        np.testing.assert_allclose(model.score(one)[0], full[2][i], atol=1e-6)


@pytest.mark.parametrize("call, x, match", [
    ("score", np.zeros((2, 39, 2), np.float32), r"source: the autoencoder reads windows of 40 steps, got 39 "
                                                r"\(shape \(2, 39, 2\)\); cut the series into windows of 40"),
    ("embed", np.zeros((2, 40, 3), np.float32), r"source: the model takes 2 features, got 3"),
    ("reconstruct", np.zeros((40, 2), np.float32), r"source: expected shape \(batch, time, features\), got \(40, 2\)"),
    ("score", np.full((1, 40, 2), np.nan, np.float32), r"source: contains NaN or inf \(first at index \(0, 0, 0\)\)"),
    ("detect", np.zeros((0, 40, 2), np.float32), r"source: empty input of shape \(0, 40, 2\)"),
])
def test_bad_windows(model, call, x, match):
    with pytest.raises(InputError, match=match):
        getattr(model, call)(x)


@pytest.mark.parametrize("threshold", [-1, "high", True, float("nan")])
def test_bad_thresholds(model, windows, threshold):
    with pytest.raises(InputError, match=r"^threshold must be a number >= 0, got"):
        model.detect(windows, threshold=threshold)


def test_no_calibrated_threshold(ae_bundle, windows, copy_bundle):
    copy = copy_bundle(ae_bundle)
    data = json.loads((copy / "manifest.json").read_text())
    data["anomaly"] = None
    (copy / "manifest.json").write_text(json.dumps(data))
    model = load(copy)
    assert model.threshold is None
    with pytest.raises(InputError, match=r"^this bundle has no calibrated threshold: pass detect\(x, threshold=...\)"):
        model.detect(windows)
    assert model.detect(windows, threshold=2.0).tolist() == [False] * 4 + [True] * 4


def test_cli_scores_and_flags_each_window(ae_bundle, windows, golden, tmp_path, capsys):
    npy, out = tmp_path / "w.npy", tmp_path / "rec.npy"
    np.save(npy, windows)
    assert main(["run", str(ae_bundle), "--input", str(npy), "--output", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "window,score,anomalous" and len(lines) == 9
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[2]) for r in rows] == [0] * 4 + [1] * 4
    np.testing.assert_allclose([float(r[1]) for r in rows], golden["autoencoder"]["scores"], rtol=1e-5)
    np.testing.assert_allclose(np.load(out), golden["autoencoder"]["reconstructions"], atol=1e-5)
