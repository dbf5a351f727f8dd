"""Keras reference decoding: the runtime's encode/step interface, computed by Keras.

Export uses it to prove parity; quickstart and benchmarks use it as the baseline.
The decode loops themselves are the runtime's (seq2seq_edge.runtime.decoding),
so Keras and onnxruntime are compared through exactly the same loop.
"""

from __future__ import annotations

import numpy as np

from seq2seq_edge.runtime.decoding import greedy_tokens, rollout_features

from .config import RunConfig
from .models import build_decoder_step, build_encoder, state_names

__all__ = ["KerasSeq2Seq"]

State = dict[str, np.ndarray]


class KerasSeq2Seq:
    """Encoder and step decoder built from a trained model's layers, called directly (no predict())."""

    def __init__(self, model, config: RunConfig) -> None:
        self.config = config
        self.encoder = build_encoder(model, config.model, config.sides, masked=True)
        self.decoder = build_decoder_step(model, config.model, config.sides)
        self.state_names = [f"{kind}{k}" for k, kind in state_names(config.model)]
        self.tokens = config.sides.target_kind == "tokens"

    def encode(self, source: np.ndarray) -> State:
        """Model-space source (ids right-padded with 0, or normalised features) -> named state."""
        outputs = self.encoder(source, training=False)
        return {name: np.asarray(value) for name, value in zip(self.state_names, outputs)}

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One decoder step in model space: ids (batch,) or features (batch, features)."""
        feed = dict(state, step_input=x[:, None] if self.tokens else x)
        output, *values = (np.asarray(v) for v in self.decoder(feed, training=False))
        return output, dict(zip(self.state_names, values))

    def generate_ids(self, ids: np.ndarray, start_id: int, end_id: int, max_steps: int) -> list[np.ndarray]:
        """Greedy decode of right-padded ids (batch, time)."""
        start = np.full(ids.shape[0], start_id, np.int32)
        return greedy_tokens(self.step, self.encode(ids), start, end_id, max_steps, pad_id=0)

    def generate_features(self, source: np.ndarray, steps: int) -> np.ndarray:
        """Continue raw source windows (batch, window, features) for ``steps``; raw units out."""
        stats = self.config.normalisation
        src_mean, src_std = (np.float32(stats["source"][k]) for k in ("mean", "std"))
        tgt_mean, tgt_std = (np.float32(stats["target"][k]) for k in ("mean", "std"))
        state = self.encode(((source - src_mean) / src_std).astype(np.float32))
        first = ((source[:, -1, :] - tgt_mean) / tgt_std).astype(np.float32)  # (batch, features)
        return rollout_features(self.step, state, first, steps) * tgt_std + tgt_mean
