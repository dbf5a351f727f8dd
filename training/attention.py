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

__all__ = ["Attend", "InputFedDecoder", "ATTENTIONS", "NEG_INF"]

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


@keras.saving.register_keras_serializable(package="seq2seq_edge")
class InputFedDecoder(keras.layers.Layer):
    """The recurrent decoder with attention and Luong's input feeding, as one layer.

    Each step's input is the target embedding joined with the previous step's
    attentional vector (zeros at the first step), so the recurrent layers know
    where the decoder attended last: ``[y_t; a_{t-1}] -> cells -> Attend ->
    a_t = tanh(W_c [context; h_top])``. The layer owns the cells
    (``decoder_cell_{k}``, LSTMCell or GRUCell), ``attend`` and
    ``attention_combine``; export finds them here.

    inputs:  [y (batch, steps, embedding), keys, memory, mask, (fed (batch, units),) *states]
             states: h{k}[, c{k}] per layer, (batch, units); ``fed`` defaults to zeros
    outputs: [attentional (batch, steps, units), weights (batch, steps, time), fed_out, *states_out]
    With a single static step (the exported step model) no loop is built.
    """

    def __init__(self, cell: str, units: int, layers: int, activation: str, kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True  # the memory's Keras mask stops here; the source mask is an input
        cls = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}[cell]
        self.cell_kind, self.units, self.depth, self.activation, self.kind = cell, units, layers, activation, kind
        self.per_layer = 2 if cell == "lstm" else 1
        self.cells = [cls(units, activation=activation, name=f"decoder_cell_{k}") for k in range(layers)]
        self.attend = Attend(kind, units, name="attend")
        self.combine = keras.layers.Dense(units, activation="tanh", name="attention_combine")

    def build(self, input_shape) -> None:
        width = input_shape[0][-1] + self.units
        for cell in self.cells:
            cell.build((None, width))
            width = self.units
        query = (None, 1, self.units)
        self.attend.build([query, input_shape[1], input_shape[2], input_shape[3]])
        self.combine.build((None, 1, 2 * self.units))

    def step(self, y_t, fed, states, keys, memory, mask):
        """One step: y_t (batch, embedding) -> (a_t (batch, units), weights (batch, time), new states)."""
        x, new_states = ops.concatenate([y_t, fed], axis=-1), []
        for cell, state in zip(self.cells, states):
            x, state = cell(x, list(state))
            new_states.append(list(state) if isinstance(state, (list, tuple)) else [state])
        query = ops.expand_dims(x, 1)  # (batch, 1, units)
        context, weights = self.attend([query, keys, memory, mask])
        attentional = self.combine(ops.concatenate([context, query], axis=-1))  # (batch, 1, units)
        return attentional[:, 0], weights[:, 0], new_states

    def call(self, inputs):
        y, keys, memory, mask, *rest = inputs
        n = self.depth * self.per_layer
        fed = rest[0] if len(rest) == n + 1 else ops.zeros_like(rest[0][:, : self.units])
        flat = rest[-n:]
        states = [flat[k * self.per_layer:(k + 1) * self.per_layer] for k in range(self.depth)]
        if y.shape[1] == 1:  # one step, no loop: the exported step graph stays plain ops
            a, w, states = self.step(y[:, 0], fed, states, keys, memory, mask)
            return [a[:, None], w[:, None], a] + [t for s in states for t in s]

        def body(carry, y_t):  # keras.ops.scan stacks outputs shaped like the carry, so the carry holds w too
            fed, _, *flat = carry
            layered = [flat[k * self.per_layer:(k + 1) * self.per_layer] for k in range(self.depth)]
            a, w, layered = self.step(y_t, fed, layered, keys, memory, mask)
            carry = [a, w] + [t for s in layered for t in s]
            return carry, carry

        init = [fed, ops.zeros_like(mask)] + list(flat)
        carry, stacked = ops.scan(body, init, ops.transpose(y, (1, 0, 2)))  # stacked: (steps, batch, ...)
        a, w = ops.transpose(stacked[0], (1, 0, 2)), ops.transpose(stacked[1], (1, 0, 2))
        return [a, w, carry[0]] + list(carry[2:])

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        y, keys = input_shape[0], input_shape[1]
        state = (y[0], self.units)
        return [(y[0], y[1], self.units), (y[0], y[1], keys[1]), state] + [state] * (self.depth * self.per_layer)

    def get_config(self) -> dict:
        return {**super().get_config(), "cell": self.cell_kind, "units": self.units, "layers": self.depth,
                "activation": self.activation, "kind": self.kind}
