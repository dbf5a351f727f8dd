"""Regenerate the committed tiny bundles and their golden outputs (needs the [train] extra).

    python tests/make_fixtures.py

Writes tests/data/dates_tiny/, tests/data/sine_tiny/ and tests/data/golden.json. The
models are small but trained until they get their task right (the dates model converts
every held-out date exactly, in every decode mode), so that the golden outputs are the
right answers and a test can say so. golden.json stores token ids beside the text, so an
end token wrongly kept in the output would show. The runtime tests use these without
TensorFlow; regenerate them only when the bundle format changes, and commit the result.
Training is multi-threaded and not bit-reproducible: regenerated weights differ a little.
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
DATE_OUTPUTS = ["2023-07-14", "2023-07-14", "2023-07-14", "1961-05-03", "2049-12-31"]  # the right answers
SINE_SEED = 7


def sine_waves() -> np.ndarray:
    """(3, window + horizon, features): the golden inputs and their true continuations."""
    from seq2seq_edge.training.tasks.sine import waves

    return waves(3, np.random.default_rng(SINE_SEED))


def main() -> None:
    from seq2seq_edge.cli.evaluate import evaluate_bundle
    from seq2seq_edge.export import export_run
    from seq2seq_edge.runtime import load
    from seq2seq_edge.training import ModelConfig, TrainConfig, train
    from seq2seq_edge.training.tasks.sine import WINDOW

    with tempfile.TemporaryDirectory() as tmp:
        dates = train("dates", Path(tmp) / "dates", ModelConfig(units=48, embedding_dim=16),
                      TrainConfig(samples=20000, epochs=10, batch_size=64, seed=1), verbose=0)
        sine = train("sine", Path(tmp) / "sine", ModelConfig(units=32),
                     TrainConfig(samples=10000, epochs=20, batch_size=64, seed=1), verbose=0)
        export_run(dates.path, DATA / "dates_tiny", force=True)
        export_run(sine.path, DATA / "sine_tiny", force=True)
    quality = evaluate_bundle(DATA / "dates_tiny")
    print("dates held-out exact match by mode:", {m: v["exact_match"] for m, v in quality["modes"].items()})
    print("sine held-out:", evaluate_bundle(DATA / "sine_tiny"))
    dates_model, sine_model = load(DATA / "dates_tiny"), load(DATA / "sine_tiny")
    outputs = dates_model.generate_text(DATE_INPUTS, mode="step")
    if outputs != DATE_OUTPUTS:
        raise SystemExit(f"the dates model gets the golden inputs wrong: {outputs}; train it longer")
    ids, lengths = dates_model.source_vocab.encode_batch(DATE_INPUTS)
    waves = sine_waves()
    golden = {
        "dates": {"inputs": DATE_INPUTS, "outputs": outputs,
                  "output_ids": [row.tolist() for row in dates_model.generate(ids, lengths=lengths, mode="step")],
                  "h0": dates_model.encode(ids, lengths)["h0"].round(6).tolist()},
        "sine": {"inputs": waves[:, :WINDOW].tolist(), "truth": waves[:, WINDOW:].tolist(),
                 "outputs": sine_model.generate(waves[:, :WINDOW], mode="step").round(6).tolist()},
    }
    (DATA / "golden.json").write_text(json.dumps(golden) + "\n", encoding="utf-8")
    print("wrote", DATA)


if __name__ == "__main__":
    main()
