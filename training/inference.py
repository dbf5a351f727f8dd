"""Keras reference decoding: the runtime's encode/step interface, computed by Keras.

Export uses it to prove parity; quickstart and benchmarks use it as the baseline.
The decode loop itself is the runtime's (runtime/decoding.py),
so Keras and onnxruntime are compared through exactly the same loop.
"""

from __future__ import annotations

import numpy as np

from ..runtime.contract import ATTENTIONAL, CONSTANT_KINDS, state_names
from ..runtime.decoding import State, rollout_features
from ..runtime.inputs import normalise, source_step_features
from ..runtime.strategies import greedy_tokens
from .config import RunConfig
from .models import build_decoder_step, build_encoder

__all__ = ["KerasSeq2Seq"]

class KerasSeq2Seq:
    """An encoder and a step decoder with our tensor names, called directly (no predict()).

    ``encoder``: source -> named state outputs; ``decoder``: step_input and named
    states -> step output and ``<name>_out`` states (the interface export converts).
    """

    def __init__(self, encoder, decoder, state_names: list[str], tokens: bool,
                 normalisation: dict | None = None, constant_names: list[str] = ()) -> None:
        self.encoder, self.decoder = encoder, decoder
        self.state_names, self.tokens, self.normalisation = list(state_names), tokens, normalisation
        self.constant_names = list(constant_names)  # attention decoders: passed to every step unchanged
        self._encoder_outputs = list(encoder.output_names)
        self._decoder_inputs = [t.name for t in decoder.inputs]

    @classmethod
    def from_run(cls, model, config: RunConfig) -> "KerasSeq2Seq":
        """The inference models of one of our trained encoder-decoders."""
        return cls(build_encoder(model, config.model, config.sides, masked=True),
                   build_decoder_step(model, config.model, config.sides),
                   [name for _, _, name in state_names(config.model.cell, config.model.layers)]
                   + ([ATTENTIONAL] if config.model.input_feeding else []),
                   config.sides.target_kind == "tokens", config.normalisation,
                   list(CONSTANT_KINDS.values()) if config.model.attention else [])

    def encode(self, source: np.ndarray) -> State:
        """Model-space source (ids, or normalised features) -> every named state (zeros where not fed)."""
        outputs = self.encoder(source, training=False)
        return self.state_from(outputs, len(source))

    def state_from(self, outputs, batch: int) -> State:
        """The decode state from the encoder's outputs (in its output order, however computed): each
        named state the encoder returns, zeros for the others, and the constants."""
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        fed = {name: np.asarray(value) for name, value in zip(self._encoder_outputs, outputs)}
        sizes = {t.name: t.shape[-1] for t in self.decoder.inputs}
        state = {name: fed[name] if name in fed else np.zeros((batch, sizes[name]), np.float32)
                 for name in self.state_names}
        return {**state, **{name: fed[name] for name in self.constant_names}}

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One decoder step in model space: ids (batch,) or features (batch, features)."""
        feed = dict(state, step_input=x[:, None] if self.tokens else x)
        feed = {name: feed[name] for name in self._decoder_inputs}  # a constant it does not take stays out
        output, *values = (np.asarray(v) for v in self.decoder(feed, training=False))
        return output, {**dict(zip(self.state_names, values)), **{n: state[n] for n in self.constant_names}}

    def generate_ids(self, ids: np.ndarray, start_id: int, end_id: int, max_steps: int) -> list[np.ndarray]:
        """Greedy decode of right-padded ids (batch, time)."""
        start = np.full(ids.shape[0], start_id, np.int32)
        return greedy_tokens(self.step, self.encode(ids), start, end_id, max_steps)

    def generate_features(self, source: np.ndarray, steps: int, first_input="last_source_step") -> np.ndarray:
        """Continue raw source windows (batch, window, features) for ``steps``; raw units out.

        ``first_input``: the decoder's first input as the manifest records it: 'last_source_step', 'zeros', or a
        rule {"rule": "source_step", "step": -1, "features": [source indices]} (raw values, then normalised with
        the target's statistics).
        """
        stats = self.normalisation or {side: {"mean": 0.0, "std": 1.0} for side in ("source", "target")}
        src, tgt = stats["source"], stats["target"]
        state = self.encode(normalise(source, src["mean"], src["std"]))
        width = self.decoder.inputs[0].shape[-1]
        raw = source_step_features(source, first_input)
        first = (np.zeros((len(source), width), np.float32) if raw is None
                 else normalise(raw, tgt["mean"], tgt["std"]))  # (batch, features)
        out = rollout_features(self.step, state, first, steps)  # (batch, steps, features), normalised
        return out * np.float32(tgt["std"]) + np.float32(tgt["mean"])
