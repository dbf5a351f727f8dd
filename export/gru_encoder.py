"""A GRU encoder on ONNX's native GRU op, built from the trained weights (tf2onnx would write a slow Loop)."""

from __future__ import annotations

import numpy as np

from ..runtime.contract import ATTENTION_KEYS, MEMORY, SOURCE_MASK
from .convert import ExportError, length_mask_nodes
from .fused_weights import RecurrentWeights
from .graph_ops import ACTIVATIONS, Graph, finish_model

__all__ = ["build_gru_encoder"]


def build_gru_encoder(embedding: np.ndarray | None, layers: tuple[RecurrentWeights, ...], features: int | None,
                      opset: int = 18, attention_keys: tuple[np.ndarray, np.ndarray | None] | None = None):
    """A GRU encoder on ONNX's native GRU op, honouring per-row lengths through sequence_lens.

    tf2onnx turns Keras GRU layers into a slow Loop that cannot take lengths;
    this graph computes the same thing (reset_after=True is linear_before_reset=1).
    Inputs: source (batch, time) int32 ids and source_length (batch,) int32, or
    source (batch, time, features) float32. Outputs: h{k} (batch, units) per layer.
    ``attention_keys`` (kernel, bias or None; token sources): also the attention constants,
    memory (the last layer's outputs, zero at padding), attention_keys (memory @ kernel + bias)
    and source_mask (1 before each row's length, else 0).
    """
    from onnx import TensorProto, helper

    g = Graph("")
    tokens = embedding is not None
    x = g.op("Gather", [g.const(embedding, "embedding"), "source"]) if tokens else "source"
    y = g.op("Transpose", [x], "time_major", perm=[1, 0, 2])  # (time, batch, dim)
    zero = g.const(np.array([0], np.int64))
    for k, w in enumerate(layers):
        if w.cell != "gru" or not w.reset_after:
            raise ExportError("build_gru_encoder takes GRU layers with reset_after=True")
        bias = w.bias.reshape(-1)[None]  # (1, 6u): input bias then recurrent bias
        seq, h = g.op("GRU", [y, g.const(w.kernel.T[None], "W"), g.const(w.recurrent.T[None], "R"), g.const(bias, "B"),
                              "source_length" if tokens else ""], outputs=2, hidden_size=w.units,
                      activations=["Sigmoid", ACTIVATIONS[w.activation]], linear_before_reset=1)
        g.op("Squeeze", [h, zero], outputs=[f"h{k}"])
        if k + 1 < len(layers) or attention_keys is not None:  # the sequence feeds the next layer or the memory
            y = g.op("Squeeze", [seq, g.const(np.array([1], np.int64))], "y")  # (time, batch, units)
    vi = helper.make_tensor_value_info
    inputs = ([vi("source", TensorProto.INT32, ["batch", "time"]), vi("source_length", TensorProto.INT32, ["batch"])]
              if tokens else [vi("source", TensorProto.FLOAT, ["batch", "time", features])])
    outputs = [vi(f"h{k}", TensorProto.FLOAT, ["batch", w.units]) for k, w in enumerate(layers)]
    if attention_keys is not None:
        if not tokens:
            raise ExportError("attention encoders take token sources")
        kernel, key_bias = attention_keys
        units = layers[-1].units
        g.op("Transpose", [y], perm=[1, 0, 2], outputs=[MEMORY])  # (batch, time, units)
        keys = g.op("MatMul", [MEMORY, g.const(kernel.astype(np.float32), "key_kernel")], "keys")
        if key_bias is not None:
            keys = g.op("Add", [keys, g.const(key_bias.astype(np.float32), "key_bias")], "keys_biased")
        g.op("Identity", [keys], outputs=[ATTENTION_KEYS])
        g.nodes.extend(length_mask_nodes("source_length", "source", SOURCE_MASK))
        outputs += [vi(MEMORY, TensorProto.FLOAT, ["batch", "time", units]),
                    vi(ATTENTION_KEYS, TensorProto.FLOAT, ["batch", "time", kernel.shape[1]]),
                    vi(SOURCE_MASK, TensorProto.FLOAT, ["batch", "time"])]
    graph = helper.make_graph(g.nodes, "encoder", inputs, outputs, initializer=g.inits)
    return finish_model(graph, opset)
