"""Regenerate the committed tiny bundles and their golden outputs (needs the [train] extra).

    python tests/make_fixtures.py

Writes tests/data/dates_tiny/, tests/data/sine_tiny/ and tests/data/golden.json.
The runtime tests use these without TensorFlow; regenerate them only when the
bundle format changes, and commit the result.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(__file__).parent / "data"
DATE_INPUTS = ["14 juillet 2023", "July 14, 2023", "14. Juli 2023", "3 mei 1961", "Sunday, 31 December 2049"]
SINE_SEED = 7


def sine_inputs() -> np.ndarray:
    from seq2seq_edge.training.tasks.sine import WINDOW, waves

    return waves(3, np.random.default_rng(SINE_SEED))[:, :WINDOW]  # (3, window, features)


def main() -> None:
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        dates = train("dates", Path(tmp) / "dates", ModelConfig(units=24, embedding_dim=8),
                      TrainConfig(samples=6000, epochs=4, batch_size=32, seed=1), verbose=0)
        sine = train("sine", Path(tmp) / "sine", ModelConfig(units=12),
                     TrainConfig(samples=1000, epochs=3, batch_size=32, seed=1), verbose=0)
        export_run(dates.path, DATA / "dates_tiny", force=True)
        export_run(sine.path, DATA / "sine_tiny", force=True)
    dates_model, sine_model = load(DATA / "dates_tiny"), load(DATA / "sine_tiny")
    ids, lengths = dates_model.source_vocab.encode_batch(DATE_INPUTS)
    golden = {
        "dates": {"inputs": DATE_INPUTS, "outputs": dates_model.generate_text(DATE_INPUTS),
                  "h0": dates_model.encode(ids, lengths)["h0"].round(6).tolist()},
        "sine": {"inputs": sine_inputs().tolist(), "outputs": sine_model.generate(sine_inputs()).round(6).tolist()},
    }
    (DATA / "golden.json").write_text(json.dumps(golden) + "\n", encoding="utf-8")
    print("wrote", DATA)


if __name__ == "__main__":
    main()
