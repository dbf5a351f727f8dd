"""Anomaly detection that keeps working: window labels, threshold rules, per-step scores, the discord
baseline, the kdd135 task, the documented recipes' floors and `evaluate --check`."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.export.evaluate import best_operating_point, discord_scores, evaluate_bundle
from seq2seq_edge.export import ExportError, export_autoencoder
from seq2seq_edge.export.autoencoder import ThresholdRule
from seq2seq_edge.runtime import InputError, load
from seq2seq_edge.training import TrainConfig
from seq2seq_edge.training.config import ConfigError
from seq2seq_edge.training.recipes import RECIPES, check_floors
from seq2seq_edge.training.tasks import kdd135, make_splits
from seq2seq_edge.training.tasks.base import labelled_windows, packaged_file

from keras_examples import sequential_autoencoder


def test_window_labels_long_and_short_events():
    labels = np.zeros(40, bool)
    labels[10:30] = True   # a long event: 20 samples
    labels[36:38] = True   # a short one: 2 samples
    got, events = labelled_windows(labels, 0, 40, 8, 4)  # windows start at 0, 4, ..., 32
    # [0,8) none; [4,12) 2 of 8; [8,16) 6; ...; [28,36) 2; [32,40) covers the whole 2-sample event
    assert got.tolist() == [False, False, True, True, True, True, True, False, True]
    assert events.tolist() == [-1, 0, 0, 0, 0, 0, 0, 0, 1]


def test_threshold_rules():
    scores = np.arange(1, 101, dtype=np.float64)
    assert ThresholdRule.parse("quantile:0.99").apply(scores) == pytest.approx(np.quantile(scores, 0.99))
    assert ThresholdRule.parse("sigma:3").apply(scores) == pytest.approx(scores.mean() + 3 * scores.std())
    assert str(ThresholdRule.parse("sigma:4")) == "sigma:4"
    for text, message in [("quantile:1.5", r"quantile:1.5: the quantile must be in \[0.5, 1\]"),
                          ("sigma:0", r"sigma:0: K must be a number > 0"),
                          ("median:3", r"threshold rule 'median': use quantile:Q or sigma:K"),
                          ("quantile", r"threshold rule 'quantile': write quantile:Q \(e.g. quantile:0.995\)")]:
        with pytest.raises(ExportError, match=message):
            ThresholdRule.parse(text)


def test_best_operating_point_and_discord():
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.3])
    labels = np.array([False, True, True, False, False, True])
    best = best_operating_point(scores, labels)
    # flagging 0.8 and above: 2 of 2 right, recall 2/3; going lower to 0.7 brings precision to 2/3
    assert best == {"recall": pytest.approx(2 / 3), "precision": 1.0, "min_precision": 0.9,
                    "threshold": pytest.approx(0.75)}
    normal = np.sin(np.linspace(0, 20, 400)).reshape(20, 20, 1)
    odd = normal[:3].copy()
    odd[1, 10] += 3.0  # a spike in the second window
    d = discord_scores(normal, odd)
    assert d[0] == pytest.approx(0, abs=1e-6) and d[2] == pytest.approx(0, abs=1e-6) and d[1] > 1


def test_user_autoencoder_with_a_rule(tmp_path):
    net = sequential_autoencoder()
    normal = np.random.default_rng(0).normal(size=(64, 20, 2)).astype(np.float32)
    model = load(export_autoencoder(net, tmp_path / "b", threshold="sigma:3", normal=normal).path)
    steps = model.score(normal, per_step=True)  # recomputed from the exported graphs
    windows = steps.mean(axis=1)
    a = model.manifest.anomaly
    assert a["rule"] == "sigma:3" and a["calibration_windows"] == 64
    assert a["threshold"] == pytest.approx(windows.mean() + 3 * windows.std(), rel=1e-5)
    assert a["step_threshold"] == pytest.approx(steps.mean() + 3 * steps.std(), rel=1e-5)
    np.testing.assert_allclose(windows, model.score(normal), rtol=1e-6)
    assert model.detect(normal, per_step=True).shape == (64, 20)
    with pytest.raises(ExportError, match=r"threshold rule quantile:0.9: pass the normal windows"):
        export_autoencoder(net, tmp_path / "c", threshold="quantile:0.9")
    with pytest.raises(ExportError, match=r"normal: expected windows of shape \(n, 20, 2\), got \(3, 20\)"):
        export_autoencoder(net, tmp_path / "d", threshold="quantile:0.9", normal=np.zeros((3, 20)))
    fixed = load(export_autoencoder(net, tmp_path / "e", threshold=0.5).path)
    assert fixed.manifest.anomaly == {"score": "mse", "threshold": 0.5, "rule": "fixed"}
    with pytest.raises(InputError, match=r"^this bundle has no per-step threshold: pass detect\(x, threshold=...\)"):
        fixed.detect(normal, per_step=True)
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_kdd135_is_the_archive_series():
    values, labels = kdd135.load_series()
    assert values.shape == (7501,) and np.flatnonzero(labels).tolist() == list(range(4187, 4199))
    s = kdd135.make(0, 0, 0.05, 0.05)
    assert s.train.shape[1:] == (kdd135.WINDOW, 1) and len(s.validation) > 0
    assert s.train.shape == (437, 128, 1) and s.validation.shape == (37, 128, 1) and s.test.shape == (772, 128, 1)
    # 17 windows touch the 12-sample anomaly; 16 cover at least 6 of its samples
    assert s.test_labels.sum() == 16 and np.sum(s.test_events >= 0) == 17 and sorted(set(s.test_events)) == [-1, 0]


def test_a_missing_or_changed_data_file_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"task 'x' reads d.csv, which no-such-dist ships in its package; "
                                          r"install it with pip install 'seq2seq-edge\[anomaly\]'"):
        packaged_file("x", "no-such-dist", "d.csv", "0" * 64, "anomaly")
    with pytest.raises(ConfigError, match=r"differs from the file task 'x' was built on \(sha256 mismatch\)"):
        packaged_file("x", "aeon", kdd135.CSV, "0" * 64, "anomaly")


def test_floors():
    metrics = {"recall": 0.5, "discord": {"best": {"recall": 0.7}}}
    assert check_floors(metrics, {"recall": (">=", 0.4), "discord.best.recall": ("<=", 0.8)}) == []
    assert check_floors(metrics, {"recall": (">=", 0.6), "precision": (">=", 0.1)}) == [
        "recall = 0.5, documented floor >= 0.6", "precision: not in the evaluation"]
    skipped = {**metrics, "not_run": {"beam5": "beam search needs the step graph"}}
    assert check_floors(skipped, {"beam5.wer": ("<=", 0.3)}) == [
        "beam5.wer: not in the evaluation (beam search needs the step graph)"]


@pytest.mark.slow  # minutes: each trains its quick preset in full (the default run evaluates a tiny ecg model)
@pytest.mark.parametrize("task", ["ecg", "kdd135"])
def test_quick_preset_learns_and_detects(task, tmp_path, capsys):
    """A real training run of the quick preset: its reconstruction error on held-out normal windows is
    well below the mean predictor's (a collapsed model's ratio is about 1), and it keeps the floors
    recorded for the preset, checked by `evaluate --check` as a user would run it."""
    run_dir, bundle = tmp_path / "run", tmp_path / "bundle"
    assert main(["train", task, "--quick", "--out", str(run_dir), "--quiet"]) == 0
    quality = json.loads((run_dir / "quality.json").read_text())
    assert quality["recipe"] == f"{task}-quick"
    assert main(["export", str(run_dir), "--out", str(bundle)]) == 0
    capsys.readouterr()
    plot = tmp_path / "evaluation.png"
    code = main(["evaluate", str(bundle), "--check", "--json", "--plot", str(plot)])
    out, err = capsys.readouterr()
    metrics = json.loads(out)
    assert metrics["reconstruction_ratio"] < 0.5, metrics
    assert code == 0, err
    assert f"check passed: {len(quality['floors'])} documented floors of recipe {task}-quick hold" in err
    assert f"wrote {plot}" in err and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20000
    # the same metrics as tables for a person (the default), and an existing plot is not replaced
    assert main(["evaluate", str(bundle), "--plot", str(plot)]) == 1
    assert f"{plot} already exists; choose another path or pass --force" in capsys.readouterr().err
    assert main(["evaluate", str(bundle)]) == 0
    table = capsys.readouterr().out
    assert f"task: {task}\n" in table and f"reconstruction_ratio: {metrics['reconstruction_ratio']:.4g}\n" in table
    assert "\nper_step " in table and "\ndiscord " in table
    # the same bundle against a floor it cannot reach fails, naming the metric and the recipe
    doctored = tmp_path / "doctored"
    shutil.copytree(bundle, doctored)
    manifest = json.loads((doctored / "manifest.json").read_text())
    manifest["data"]["quality"]["floors"]["recall"] = [">=", 1.01]
    (doctored / "manifest.json").write_text(json.dumps(manifest))
    assert main(["evaluate", str(doctored), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"check failed: recall = {metrics['recall']:.4g}, documented floor >= 1.01 (recipe {task}-quick:" in err


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes (the ecg_tiny fixture trains)
def test_a_collapsed_autoencoder_fails_the_check(ecg_tiny, tmp_path, capsys):
    """One epoch of a 4-unit model predicts about the mean: the ratio is near 1 and the quick floors fail.
    `evaluate --json --plot` reports the same metrics and draws the evaluation."""
    bundle = ecg_tiny[1].path  # conftest.py
    metrics = evaluate_bundle(bundle)
    assert metrics["reconstruction_ratio"] > 0.8
    floors = next(r for r in RECIPES if r.name == "ecg-quick").floors
    assert "reconstruction_ratio" in check_floors(metrics, floors)[0]
    plot = tmp_path / "evaluation.png"
    assert main(["evaluate", str(bundle), "--json", "--plot", str(plot)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["reconstruction_ratio"] == pytest.approx(metrics["reconstruction_ratio"])
    assert f"wrote {plot}" in err and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bad_fixed_threshold_is_refused(tmp_path):
    net = sequential_autoencoder()
    for bad in (-1.0, float("inf"), "0.5x", True):
        with pytest.raises(ExportError, match=r"threshold must be a finite number >= 0 or a rule such as "
                                              r"quantile:0.995|threshold rule '0.5x'"):
            export_autoencoder(net, tmp_path / "b", threshold=bad)
    assert not (tmp_path / "b").exists()
    assert load(export_autoencoder(net, tmp_path / "c", threshold=np.float32(0.25)).path).threshold == 0.25


@pytest.mark.parametrize("name, task", [("dates_tiny", "dates"), ("sine_ae_tiny", "sine")])
def test_plot_is_for_labelled_anomaly_tasks(name, task, tmp_path, capsys):
    bundle = Path(__file__).parent / "data" / name
    assert main(["evaluate", str(bundle), "--plot", str(tmp_path / "p.png")]) == 1
    assert ("--plot draws an autoencoder's evaluation on a labelled series (signal, reconstruction, scores): "
            f"tasks ecg and kdd135; this bundle's task is '{task}'") in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_an_autoencoder_of_sine_windows_is_evaluated_by_its_reconstruction(capsys):
    bundle = Path(__file__).parent / "data" / "sine_ae_tiny"
    assert main(["evaluate", str(bundle), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    windows = make_splits("sine", TrainConfig(samples=3000, seed=1, validation_split=0.05, test_split=0.05)).test[0]
    assert metrics == {"task": "sine", "windows": len(windows),
                       "reconstruction_mse": pytest.approx(float(np.mean(load(bundle).score(windows))))}


def test_stitched_windows_average_their_overlap():
    from seq2seq_edge.cli.plots import stitch

    windows = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])  # stride 2: samples 2-3 in both
    assert stitch(windows, 2, 7).tolist()[:6] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert np.isnan(stitch(windows, 2, 7)[6])


def test_check_needs_a_documented_recipe(dates_bundle, capsys):
    assert main(["evaluate", str(dates_bundle), "--check"]) == 1
    assert ("--check compares with the floors of a documented recipe, and this bundle's run followed none "
            "(its run directory has no quality.json)") in capsys.readouterr().err
