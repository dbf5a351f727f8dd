"""What the fused decode loop computes, as weights: the recurrent layers, attention and output layer of a
decoder in Keras layout, read from one of our trained models (``decoder_weights``) or from a user's decoder
(export/byo_fused.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convert import ExportError

__all__ = ["RecurrentWeights", "AttentionWeights", "DecoderWeights", "decoder_weights"]


@dataclass(frozen=True)
class RecurrentWeights:
    """One recurrent layer's weights in Keras layout."""

    cell: str             # "lstm" | "gru"
    units: int
    activation: str       # "tanh" | "relu"
    kernel: np.ndarray    # (input, gates * units)
    recurrent: np.ndarray  # (units, gates * units)
    bias: np.ndarray      # LSTM (4u,); GRU (2, 3u) with reset_after, else (3u,)
    reset_after: bool = True

    @classmethod
    def from_layer(cls, layer) -> "RecurrentWeights":
        cell = {"LSTM": "lstm", "GRU": "gru", "LSTMCell": "lstm", "GRUCell": "gru"}[type(layer).__name__]
        if getattr(layer.recurrent_activation, "__name__", "") != "sigmoid":
            raise ExportError(f"layer {layer.name!r}: the fused loop needs recurrent_activation='sigmoid'")
        activation = getattr(layer.activation, "__name__", "")
        if activation not in ("tanh", "relu") or not layer.use_bias:
            raise ExportError(f"layer {layer.name!r}: the fused loop supports tanh or relu with a bias")
        kernel, recurrent, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        return cls(cell, layer.units, activation, kernel, recurrent, bias, getattr(layer, "reset_after", True))


@dataclass(frozen=True)
class AttentionWeights:
    """Attention over the encoder's outputs after the top layer (training/attention.py), in Keras layout.

    The loop takes the per-sequence constants memory, attention_keys (the memory's projection)
    and source_mask; each step scores the top layer's h against the keys (Luong: a dot product;
    Bahdanau: v . tanh(W h + key)), takes the masked softmax, and the attentional vector
    tanh([context; h] W_c + b_c) feeds the output layer and, with ``input_feeding``, the
    first layer's next input (carried as the state ``attentional``).
    """

    kind: str                          # "luong" | "bahdanau"
    combine_kernel: np.ndarray         # (2 units, units): rows [context; query]
    combine_bias: np.ndarray           # (units,)
    query_kernel: np.ndarray | None = None   # bahdanau: (units, units); None: the query as it is
    score_vector: np.ndarray | None = None   # bahdanau: (units,)
    input_feeding: bool = False
    # Users' decoders (Keras's Attention / AdditiveAttention, export_keras): the keys are the memory itself
    # ("memory") instead of the encoder's attention_keys constant ("input"); Luong scores may be scaled; and
    # without a tanh combine layer, [context; query] W_c + b_c are the output layer's logits themselves.
    keys: str = "input"
    score_scale: float | None = None
    combine_tanh: bool = True


@dataclass(frozen=True)
class DecoderWeights:
    """What the decoder computes each step: [embedding] -> recurrent layers -> [attention] -> dense."""

    embedding: np.ndarray | None  # (vocab, dim) for token inputs; None for real-valued inputs
    layers: tuple[RecurrentWeights, ...]
    dense_kernel: np.ndarray      # (units, vocab or features)
    dense_bias: np.ndarray
    attention: AttentionWeights | None = None


def decoder_weights(model, config) -> DecoderWeights:
    """The step computation of one of our trained encoder-decoders, found by layer name."""
    from ..training.models import attention_layers, decoder_layers

    cfg = config.model
    embedding = (np.asarray(model.get_layer("target_embedding").get_weights()[0], np.float32)
                 if config.sides.target_kind == "tokens" else None)
    layers = tuple(RecurrentWeights.from_layer(layer) for layer in decoder_layers(model, cfg))
    kernel, bias = (np.asarray(w, np.float32) for w in model.get_layer("output").get_weights())
    attention = None
    if cfg.attention:
        attend, combine = attention_layers(model, cfg)
        combine_kernel, combine_bias = (np.asarray(w, np.float32) for w in combine.get_weights())
        query_kernel = score_vector = None
        if cfg.attention == "bahdanau":
            query_kernel, score_vector = (np.asarray(w, np.float32) for w in (attend.query_kernel, attend.score_vector))
        attention = AttentionWeights(cfg.attention, combine_kernel, combine_bias, query_kernel, score_vector,
                                     cfg.input_feeding)
    return DecoderWeights(embedding, layers, kernel, bias, attention)
