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
    assert model.threshold == pytest.approx(1.5693561)
    assert model.detect(windows).tolist() == golden["autoencoder"]["anomalous"]
    assert model.detect(windows, threshold=0).all()
    assert not model.detect(windows, threshold=1e9).any()
    scores = model.score(windows)
    cut = float(np.sort(scores)[2])  # strictly above: the two lowest and the cut itself are not flagged
    assert model.detect(windows, threshold=cut).tolist() == (scores > cut).tolist()
    assert model.detect(windows, threshold=cut).sum() == 5


def test_per_step_scores_locate_the_burst(model, windows):
    steps = model.score(windows, per_step=True)
    std = np.float32(model.manifest.source.std)
    want = np.mean(((model.reconstruct(windows) - windows) / std) ** 2, axis=2)  # recomputed here
    assert steps.shape == (8, 40)
    np.testing.assert_allclose(steps, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(steps.mean(axis=1), model.score(windows), rtol=1e-5)
    assert all(15 <= i < 25 for i in steps[4:].argmax(axis=1))  # the burst fills steps 15-24
    flags = model.detect(windows, per_step=True)
    assert model.step_threshold == model.manifest.anomaly["step_threshold"] > 0
    assert flags.tolist() == (steps > model.step_threshold).tolist()
    assert flags[4:, 15:25].any(axis=1).all() and not flags[:4].any() and not flags[4:, :10].any()
    assert model.detect(windows, threshold=0.0, per_step=True).all()


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
    with pytest.raises(InputError, match=r"^this bundle has no threshold: pass detect\(x, threshold=...\) or export it with a threshold rule"):
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


def test_cli_per_step(ae_bundle, windows, tmp_path, capsys):
    npy = tmp_path / "w.npy"
    np.save(npy, windows[3:5])  # a normal window, then one with a burst at steps 15-24
    assert main(["run", str(ae_bundle), "--input", str(npy), "--per-step"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "window,step,score,anomalous" and len(lines) == 1 + 2 * 40
    rows = [line.split(",") for line in lines[1:]]
    model = load(ae_bundle)
    steps = model.score(windows[3:5], per_step=True)
    assert [(int(w), int(t)) for w, t, _, _ in rows] == [(w, t) for w in range(2) for t in range(40)]
    np.testing.assert_allclose([float(r[2]) for r in rows], steps.ravel(), rtol=1e-5)
    flagged = {int(t) for w, t, _, f in rows if w == "1" and f == "1"}
    assert flagged and flagged <= set(range(15, 25)) and not any(f == "1" for w, _, _, f in rows if w == "0")
