"""Shared fixtures: the committed tiny bundles, and tiny models trained once per session."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def golden() -> dict:
    return json.loads((DATA / "golden.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def dates_bundle() -> Path:
    return DATA / "dates_tiny"


@pytest.fixture(scope="session")
def sine_bundle() -> Path:
    return DATA / "sine_tiny"


@pytest.fixture(scope="session")
def keras_io_bundle() -> Path:
    return DATA / "keras_io_tiny"


@pytest.fixture(scope="session")
def ae_bundle() -> Path:
    return DATA / "sine_ae_tiny"


@pytest.fixture(scope="session")
def dates(dates_bundle):
    """The committed dates bundle, loaded once."""
    from seq2seq_edge.runtime import load

    return load(dates_bundle)


@pytest.fixture(scope="session")
def sine(sine_bundle):
    """The committed sine bundle, loaded once."""
    from seq2seq_edge.runtime import load

    return load(sine_bundle)


@pytest.fixture
def copy_bundle(tmp_path):
    """copy_bundle(path) -> a writable copy of that bundle, for tampering with."""
    def copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        return target
    return copy


@pytest.fixture
def bundle_copy(tmp_path: Path, dates_bundle: Path) -> Path:
    """A writable copy of the tiny dates bundle, for tampering with."""
    target = tmp_path / "bundle"
    shutil.copytree(dates_bundle, target)
    return target


@pytest.fixture(scope="session")
def trained_dates(tmp_path_factory) -> Path:
    """A tiny `dates` run directory (trained once per test session, fixed seed)."""
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "dates"
    return train("dates", out, ModelConfig(units=16, embedding_dim=8),
                 TrainConfig(samples=1500, epochs=1, batch_size=32, seed=3), verbose=0).path


@pytest.fixture(scope="session")
def trained_sine(tmp_path_factory) -> Path:
    """A tiny 2-layer `sine` run directory."""
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "sine"
    return train("sine", out, ModelConfig(units=8, layers=2), TrainConfig(samples=400, epochs=1, batch_size=32, seed=3),
                 verbose=0).path


@pytest.fixture(scope="session")
def exported_dates(trained_dates: Path, tmp_path_factory):
    from seq2seq_edge.export import export_run

    return export_run(trained_dates, tmp_path_factory.mktemp("bundles") / "dates", parity_samples=64)


@pytest.fixture(scope="session")
def attention_bundle() -> Path:
    return DATA / "dates_attention_tiny"


@pytest.fixture(scope="session")
def ecg_tiny(tmp_path_factory):
    """One epoch of a 4-unit GRU autoencoder on `ecg` (it predicts about the mean), exported: (run, export result).
    Trained once for the tests that need a real ecg run and bundle but not a good one."""
    from seq2seq_edge.export import export_run
    from seq2seq_edge.training import TrainConfig, train
    from seq2seq_edge.training.config import AutoencoderConfig

    root = tmp_path_factory.mktemp("ecg")
    run = train("ecg", root / "run", AutoencoderConfig(cell="gru", units=(4,)),
                TrainConfig(epochs=1, batch_size=64, patience=0), verbose=0)
    return run, export_run(run.path, root / "bundle", parity_samples=16)


# `train g2p --quick` with small overrides, as a user types it; shared by tests/test_g2p.py and the Node binding's
# test (a reversed source, a space-separated target, every mode).
G2P_QUICK = ["train", "g2p", "--quick", "--samples", "1500", "--epochs", "1", "--units", "32", "--quiet",
             "--bidirectional", "--dropout", "0.1", "--lr-patience", "1"]


@pytest.fixture(scope="session")
def g2p_run(tmp_path_factory) -> Path:
    """The run directory of G2P_QUICK (trained once per test session)."""
    from seq2seq_edge.cli import main

    run = tmp_path_factory.mktemp("g2p") / "run"
    assert main(G2P_QUICK + ["--out", str(run)]) == 0
    return run


@pytest.fixture(scope="session")
def g2p_bundle(g2p_run: Path) -> Path:
    """g2p_run exported with `seq2seq-edge export` (every mode)."""
    from seq2seq_edge.cli import main

    bundle = g2p_run.parent / "bundle"
    assert main(["export", str(g2p_run), "--out", str(bundle), "--parity-samples", "32"]) == 0
    return bundle
