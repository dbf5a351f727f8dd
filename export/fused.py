"""Hand-built fast graphs: the whole greedy decode (or real-valued rollout) inside one ONNX Loop.

Built from the trained weights, not by tf2onnx: token ids go through a Gather
(no one-hot MatMul), each layer is ONNX's native LSTM or GRU op, the argmax is
fed back inside the graph, and the loop stops early once every row has ended.
One ``run`` decodes a whole batch, so applications in any language that has
onnxruntime can decode with a single call.

Graph ``decode_loop``:
    inputs   h{k}[, c{k}] (batch, units)   the encoder's state
             first_input (batch,) int32 ids, or (batch, features) float32
             max_steps () int64
    outputs  tokens (steps, batch) int32, or predictions (steps, batch, features) float32
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convert import ExportError

__all__ = ["RecurrentWeights", "DecoderWeights", "build_decode_loop", "LOOP_INPUT", "LOOP_STEPS"]

LOOP_INPUT, LOOP_STEPS = "first_input", "max_steps"
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}


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
        cell = {"LSTM": "lstm", "GRU": "gru"}[type(layer).__name__]
        if getattr(layer.recurrent_activation, "__name__", "") != "sigmoid":
            raise ExportError(f"layer {layer.name!r}: the fused loop needs recurrent_activation='sigmoid'")
        activation = getattr(layer.activation, "__name__", "")
        if activation not in ("tanh", "relu") or not layer.use_bias:
            raise ExportError(f"layer {layer.name!r}: the fused loop supports tanh or relu with a bias")
        kernel, recurrent, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        return cls(cell, layer.units, activation, kernel, recurrent, bias, getattr(layer, "reset_after", True))


@dataclass(frozen=True)
class DecoderWeights:
    """What the decoder computes each step: [embedding] -> recurrent layers -> dense (logits or values)."""

    embedding: np.ndarray | None  # (vocab, dim) for token inputs; None for real-valued inputs
    layers: tuple[RecurrentWeights, ...]
    dense_kernel: np.ndarray      # (units, vocab or features)
    dense_bias: np.ndarray


def _lstm_onnx(w: RecurrentWeights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras gates (i, f, c, o) -> ONNX (i, o, f, c); W (1, 4u, in), R (1, 4u, u), B (1, 8u)."""
    def reorder(m: np.ndarray) -> np.ndarray:
        i, f, c, o = np.split(m, 4, axis=-1)
        return np.concatenate([i, o, f, c], axis=-1)

    return (reorder(w.kernel).T[None], reorder(w.recurrent).T[None],
            np.concatenate([reorder(w.bias), np.zeros_like(w.bias)])[None])


def _gru_onnx(w: RecurrentWeights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras and ONNX share the gate order (z, r, h); reset_after is linear_before_reset=1."""
    bias = w.bias.reshape(-1) if w.reset_after else np.concatenate([w.bias, np.zeros_like(w.bias)])
    return w.kernel.T[None], w.recurrent.T[None], bias[None]


class _Graph:
    """A tiny helper over onnx.helper that names constants and nodes uniquely."""

    def __init__(self, prefix: str) -> None:
        self.nodes, self.inits, self.prefix, self.count = [], [], prefix, 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", outputs: int | list[str] = 1, **attrs):
        from onnx import helper

        names = outputs if isinstance(outputs, list) else [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if len(names) == 1 else names


def _step(g: _Graph, spec: DecoderWeights, x: str, states: list[list[str]]) -> tuple[str, list[list[str]]]:
    """One decoder step inside the loop body: x (batch, dim) -> (output (batch, width), new states)."""
    zero = g.const(np.array([0], np.int64), "axis0")
    one = g.const(np.array([1], np.int64), "axis1")
    y = g.op("Unsqueeze", [x, zero], "seq")  # (1, batch, dim)
    new_states = []
    for w, state in zip(spec.layers, states):
        W, R, B = (_lstm_onnx if w.cell == "lstm" else _gru_onnx)(w)
        init = [g.op("Unsqueeze", [s, zero], "init") for s in state]  # (1, batch, u) each
        act = ACTIVATIONS[w.activation]
        if w.cell == "lstm":
            seq, h, c = g.op("LSTM", [y, g.const(W, "W"), g.const(R, "R"), g.const(B, "B"), "", init[0], init[1]],
                             outputs=3, hidden_size=w.units, activations=["Sigmoid", act, act])
            new_states.append([g.op("Squeeze", [h, zero]), g.op("Squeeze", [c, zero])])
        else:
            seq, h = g.op("GRU", [y, g.const(W, "W"), g.const(R, "R"), g.const(B, "B"), "", init[0]], outputs=2,
                          hidden_size=w.units, activations=["Sigmoid", act], linear_before_reset=int(w.reset_after))
            new_states.append([g.op("Squeeze", [h, zero])])
        y = g.op("Squeeze", [seq, one], "y")  # (1, batch, u): next layer's input sequence
    out = g.op("Gemm", [new_states[-1][0], g.const(spec.dense_kernel, "dense_W"), g.const(spec.dense_bias, "dense_b")])
    return out, new_states


def build_decode_loop(spec: DecoderWeights, state_names: list[list[str]], end_id: int | None, opset: int = 17):
    """The fused decode graph (see the module docstring). ``state_names[k]`` lists layer k's state names."""
    from onnx import TensorProto, helper

    tokens = spec.embedding is not None
    flat = [n for names in state_names for n in names]
    body = _Graph("body_")
    carried_in = (["token_in", "finished_in"] if tokens else ["x_in"]) + [f"{n}_in" for n in flat]
    grouped = [[f"{n}_in" for n in names] for names in state_names]
    if tokens:
        x = body.op("Gather", [body.const(spec.embedding, "embedding"), "token_in"], "embedded")
    else:
        x = "x_in"
    out, new_states = _step(body, spec, x, grouped)
    if tokens:
        nxt = body.op("Cast", [body.op("ArgMax", [out], axis=1, keepdims=0)], "next", to=TensorProto.INT32)
        done = body.op("Or", ["finished_in", body.op("Equal", [nxt, body.const(np.array(end_id, np.int32))])])
        all_done = body.op("ReduceMin", [body.op("Cast", [done], to=TensorProto.INT32)], keepdims=0)
        cond = body.op("Equal", [all_done, body.const(np.array(0, np.int32))], "cond")  # some row still running
        carried_out = [nxt, done]
        scan = [body.op("Identity", [nxt], "scan_token")]
    else:
        cond = body.op("Identity", ["cond_in"], "cond")
        carried_out = [out]
        scan = [body.op("Identity", [out], "scan_value")]
    carried_out += [s for layer in new_states for s in layer]
    carried_out = [body.op("Identity", [t], "carry") for t in carried_out]

    def vi(name, elem, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    f32, i32 = TensorProto.FLOAT, TensorProto.INT32
    width = spec.dense_kernel.shape[1]
    first_vi = [vi("token_in", i32, ["batch"]), vi("finished_in", TensorProto.BOOL, ["batch"])] if tokens else \
        [vi("x_in", f32, ["batch", width])]
    sizes = {n: w.units for names, w in zip(state_names, spec.layers) for n in names}
    carried_types = ([i32, TensorProto.BOOL] if tokens else [f32]) + [f32] * len(flat)
    body_graph = helper.make_graph(
        body.nodes, "decode_step",
        [vi("iteration", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, [])] + first_vi
        + [vi(f"{n}_in", f32, ["batch", sizes[n]]) for n in flat],
        [vi(cond, TensorProto.BOOL, [])] + [vi(t, kind, None) for t, kind in zip(carried_out, carried_types)]
        + [vi(scan[0], i32 if tokens else f32, None)],
        initializer=body.inits)

    outer = _Graph("")
    loop_inputs = [LOOP_STEPS, outer.const(np.array(True), "true")]
    if tokens:
        finished = outer.op("Cast", [outer.op("Mul", [LOOP_INPUT, outer.const(np.array(0, np.int32))])],
                            to=TensorProto.BOOL)
        loop_inputs += [LOOP_INPUT, finished]
    else:
        loop_inputs += [LOOP_INPUT]
    loop_inputs += flat
    n_carried = len(carried_out)
    result = "tokens" if tokens else "predictions"
    outer.op("Loop", loop_inputs, outputs=[outer.name("final") for _ in range(n_carried)] + [result],
             body=body_graph)
    graph = helper.make_graph(
        outer.nodes, "decode_loop",
        [vi(n, f32, ["batch", sizes[n]]) for n in flat]
        + [vi(LOOP_INPUT, i32, ["batch"]) if tokens else vi(LOOP_INPUT, f32, ["batch", width]),
           vi(LOOP_STEPS, TensorProto.INT64, [])],
        [vi(result, i32, ["steps", "batch"]) if tokens else vi(result, f32, ["steps", "batch", width])],
        initializer=outer.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="seq2seq-edge")
    return model


def quantize_loop(proto):
    """int8 dynamic quantisation of the loop body (LSTM -> DynamicQuantizeLSTM, MatMul -> MatMulInteger).

    onnxruntime's quantize_dynamic leaves Loop bodies alone, so the body is
    quantised as a model of its own and put back.
    """
    import copy
    import logging
    import tempfile
    from pathlib import Path

    import onnx
    from onnx import helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = copy.deepcopy(proto)
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body = next(a for a in loop.attribute if a.name == "body")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "body.onnx", Path(tmp) / "body_int8.onnx"
        onnx.save(helper.make_model(body.g, opset_imports=model.opset_import), str(src))
        logging.disable(logging.WARNING)  # its advice to pre-process applies to image models, not this body
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(str(dst))
    body.g.CopyFrom(quantized.graph)
    domains = {o.domain for o in model.opset_import}
    for opset in quantized.opset_import:
        if opset.domain not in domains:
            model.opset_import.append(opset)
    return model


def decoder_weights(model, config) -> DecoderWeights:
    """The step computation of one of our trained encoder-decoders, found by layer name."""
    embedding = (np.asarray(model.get_layer("target_embedding").get_weights()[0], np.float32)
                 if config.sides.target_kind == "tokens" else None)
    layers = tuple(RecurrentWeights.from_layer(model.get_layer(f"decoder_rnn_{k}"))
                   for k in range(config.model.layers))
    kernel, bias = (np.asarray(w, np.float32) for w in model.get_layer("output").get_weights())
    return DecoderWeights(embedding, layers, kernel, bias)
