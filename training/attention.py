"""Attention over the encoder's outputs, as one Keras layer that converts to plain ONNX ops.

    Attend(kind)([query (batch, steps, units), keys (batch, time, units),
                  memory (batch, time, units), mask (batch, time) float: 1 real, 0 padding])
        -> [context (batch, steps, units), weights (batch, steps, time)]

``keys`` are the memory projected once per sequence (the ``attention_keys``
Dense layer), so a decoder step does not project the whole memory again.
``luong``: score = query . key (Luong's "general" score, the projection being
in the keys); ``bahdanau``: score = v . tanh(W query + key) (additive). Padded
positions get a score of -1e9 before the softmax, so a sequence attends to the
same positions alone or in a padded batch.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["Attend", "ATTENTIONS", "NEG_INF"]

ATTENTIONS = ("luong", "bahdanau")
NEG_INF = -1e9


@keras.saving.register_keras_serializable(package="seq2seq_edge")
class Attend(keras.layers.Layer):
    """Masked Luong or Bahdanau attention (see the module docstring)."""

    def __init__(self, kind: str, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True  # the source mask arrives as an input; Keras's own masks stop here
        if kind not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {kind!r}")
        self.kind, self.units = kind, units

    def build(self, input_shape) -> None:
        if self.kind == "bahdanau":
            self.query_kernel = self.add_weight(name="query_kernel", shape=(self.units, self.units))
            self.score_vector = self.add_weight(name="score_vector", shape=(self.units,))

    def call(self, inputs):
        query, keys, memory, mask = inputs
        if self.kind == "luong":
            scores = ops.einsum("bsu,btu->bst", query, keys)
        else:
            projected = ops.einsum("bsu,uv->bsv", query, self.query_kernel)
            hidden = ops.tanh(ops.expand_dims(projected, 2) + ops.expand_dims(keys, 1))  # (b, s, t, u)
            scores = ops.einsum("bstu,u->bst", hidden, self.score_vector)
        scores = scores + (1.0 - ops.expand_dims(mask, 1)) * NEG_INF
        weights = ops.softmax(scores, axis=-1)
        return [ops.einsum("bst,btu->bsu", weights, memory), weights]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        query, keys, memory = input_shape[0], input_shape[1], input_shape[2]
        return [tuple(query[:2]) + (memory[2],), tuple(query[:2]) + (keys[1],)]

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "units": self.units}
