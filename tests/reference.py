"""An independent reference for "equals Keras": greedy decoding and real-valued rollouts written
out plainly over the Keras inference models, one row at a time.

Nothing here calls the runtime's decode loop, nor training/inference.py (which drives Keras
through the runtime's loop, so that export compares graphs): a bug in that loop cannot hide here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def keras_models(run_dir: Path):
    """(encoder, decoder_step, config) of a trained run: the Keras models export converts."""
    from seq2seq_edge.training import RunDir
    from seq2seq_edge.training.models import build_decoder_step, build_encoder

    run = RunDir(run_dir)
    model, cfg = run.load_model(), run.config
    return build_encoder(model, cfg.model, cfg.sides, masked=True), build_decoder_step(model, cfg.model, cfg.sides), cfg


def _encode_one(encoder, source: np.ndarray) -> dict[str, np.ndarray]:
    outputs = encoder(source[None], training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(value) for name, value in zip(encoder.output_names, outputs)}


def _step(decoder, x: np.ndarray, state: dict[str, np.ndarray]):
    """One Keras call: (step output (1, width), next state by input name)."""
    feed = {"step_input": x, **state}
    output, *values = (np.asarray(v) for v in decoder(feed, training=False))
    names = [name.removesuffix("_out") for name in decoder.output_names[1:]]
    return output, dict(zip(names, values))


def keras_greedy(encoder, decoder, rows: list[list[int]], start_id: int, end_id: int,
                 max_steps: int) -> list[list[int]]:
    """Each row alone (no padding): argmax of each step fed back, stopping at the end id (not included)."""
    results = []
    for row in rows:
        state, token, out = _encode_one(encoder, np.asarray(row, np.int32)), start_id, []
        for _ in range(max_steps):
            logits, state = _step(decoder, np.array([[token]], np.int32), state)
            token = int(np.argmax(logits[0]))
            if token == end_id:
                break
            out.append(token)
        results.append(out)
    return results


def keras_rollout(encoder, decoder, windows: np.ndarray, steps: int, normalisation: dict) -> np.ndarray:
    """Raw windows (batch, time, features) -> (batch, steps, features) in data units, each row alone:
    normalise, encode, start from the last source step, feed every prediction back, denormalise."""
    src, tgt = normalisation["source"], normalisation["target"]
    results = []
    for window in windows:
        x = (window - np.float32(src["mean"])) / np.float32(src["std"])
        state = _encode_one(encoder, x.astype(np.float32))
        y = ((window[-1] - np.float32(tgt["mean"])) / np.float32(tgt["std"]))[None].astype(np.float32)
        out = []
        for _ in range(steps):
            y, state = _step(decoder, y, state)
            out.append(y[0])
        results.append(np.stack(out) * np.float32(tgt["std"]) + np.float32(tgt["mean"]))
    return np.stack(results).astype(np.float32)
