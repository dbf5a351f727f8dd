"""Hand-built fast graphs: the whole greedy decode (or real-valued rollout) inside one ONNX Loop.

Built from the trained weights, not by tf2onnx: the first layer's input
projection is precomputed per token (embedding x kernel + bias), so a token
costs one Gather; each cell is written out as a few MatMul / Sigmoid / Mul
ops (measured faster here than ONNX's LSTM op at batch 1); the argmax is fed
back inside the graph, and the loop stops early once every row has ended.
One ``run`` decodes a whole batch, so applications in any language that has
onnxruntime can decode with a single call.

Graph ``decode_loop``:
    inputs   h{k}[, c{k}] (batch, units)   the encoder's state
             first_input (batch,) int32 ids, or (batch, features) float32
             max_steps () int64
    outputs  tokens (steps, batch) int32, or predictions (steps, batch, features) float32
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..runtime.contract import (ATTENTION_KEYS, ATTENTIONAL, LOOP_INPUT, LOOP_OUTPUTS, LOOP_STEPS, MEMORY,
                                SOURCE_MASK)
from .convert import ExportError, length_mask_nodes

__all__ = ["RecurrentWeights", "AttentionWeights", "DecoderWeights", "build_decode_loop", "build_gru_encoder",
           "quantize_loop", "quantize_model", "decoder_weights"]
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}
NEG_INF = -1e9  # the score of a padded source position (as training/attention.py's Attend)

def _ir_version(opset: int) -> int:
    """The ONNX IR version of a graph built here: the oldest that its opset needs (8 for opset 18). onnx's default
    is its newest (14 with onnx 1.23), which onnxruntime-node and onnxruntime-web 1.30 refuse (they read up to 13)."""
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


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


class _Graph:
    """A tiny helper over onnx.helper that names constants and nodes uniquely."""

    def __init__(self, prefix: str) -> None:
        self.nodes, self.inits, self.prefix, self.count, self.seen = [], [], prefix, 0, {}

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        """An initializer; equal arrays share one (unrolled steps reuse the same weights)."""
        from onnx import numpy_helper

        value = np.asarray(value)
        key = (value.dtype.str, value.shape, hashlib.sha1(value.tobytes()).hexdigest())
        if key not in self.seen:
            self.seen[key] = self.name(hint)
            self.inits.append(numpy_helper.from_array(value, self.seen[key]))
        return self.seen[key]

    def op(self, op_type: str, inputs: list[str], hint: str = "", outputs: int | list[str] = 1, **attrs):
        from onnx import helper

        names = outputs if isinstance(outputs, list) else [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if len(names) == 1 else names


def _gate_order(w: RecurrentWeights, m: np.ndarray) -> np.ndarray:
    """LSTM: Keras gates (i, f, c, o) -> (i, f, o, c), so that one Sigmoid covers i, f, o. GRU: unchanged."""
    if w.cell != "lstm":
        return m
    i, f, c, o = np.split(m, 4, axis=-1)
    return np.concatenate([i, f, o, c], axis=-1)


def _input_projection(g: _Graph, w: RecurrentWeights, x: str, embedding: np.ndarray | None,
                      fed: str | None = None) -> str:
    """x W + b_input (batch, gates * units). For token ids the product with the embedding is precomputed
    into a table, so the first layer's input costs one Gather instead of a matrix product. ``fed``
    (input feeding): the input is [x; fed], so fed times the kernel's last rows is added."""
    kernel = _gate_order(w, w.kernel)
    bias = _gate_order(w, w.bias if w.cell == "lstm" else w.bias[0])
    if fed is not None:
        kernel, fed_kernel = kernel[: -w.units], kernel[-w.units:]
    if embedding is not None:
        xw = g.op("Gather", [g.const((embedding @ kernel + bias).astype(np.float32), "table"), x], "xw")
    else:
        xw = g.op("Add", [g.op("MatMul", [x, g.const(kernel, "W")]), g.const(bias, "b")], "xw")
    if fed is not None:
        xw = g.op("Add", [xw, g.op("MatMul", [fed, g.const(fed_kernel, "W_fed")])], "xw_fed")
    return xw


def _lstm_cell(g: _Graph, w: RecurrentWeights, xw: str, h: str, c: str) -> tuple[str, str]:
    """Keras LSTM step: gates = xW + hR + b; c' = f c + i act(g); h' = o act(c')."""
    act = ACTIVATIONS[w.activation]
    gates = g.op("Add", [xw, g.op("MatMul", [h, g.const(_gate_order(w, w.recurrent), "R")])])
    ifo, cand = g.op("Split", [gates, g.const(np.array([3 * w.units, w.units], np.int64))], outputs=2, axis=1)
    i, f, o = g.op("Split", [g.op("Sigmoid", [ifo])], outputs=3, axis=1, num_outputs=3)
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, g.op(act, [cand])])], "c")
    return g.op("Mul", [o, g.op(act, [c_new])], "h"), c_new


def _gru_cell(g: _Graph, w: RecurrentWeights, xw: str, h: str) -> str:
    """Keras GRU step (reset_after=True): z, r = sigmoid(xW + hR + b); n = act(x_n + r (hR_n + b_n));
    h' = n + z (h - n)."""
    act = ACTIVATIONS[w.activation]
    hr = g.op("Add", [g.op("MatMul", [h, g.const(w.recurrent, "R")]), g.const(w.bias[1], "rb")])
    sizes = g.const(np.array([2 * w.units, w.units], np.int64))
    x_zr, x_n = g.op("Split", [xw, sizes], outputs=2, axis=1)
    h_zr, h_n = g.op("Split", [hr, sizes], outputs=2, axis=1)
    z, r = g.op("Split", [g.op("Sigmoid", [g.op("Add", [x_zr, h_zr])])], outputs=2, axis=1, num_outputs=2)
    n = g.op(act, [g.op("Add", [x_n, g.op("Mul", [r, h_n])])])
    return g.op("Add", [n, g.op("Mul", [z, g.op("Sub", [h, n])])], "h")


# Names the loop body reads from the enclosing graph (attention decoders): computed once per decode.
KEYS_T, MASK_BIAS, MEMORY_COMBINED = "attention_keys_t", "source_mask_bias", "memory_combined"


def _attend(g: _Graph, a: AttentionWeights, query: str) -> str:
    """query (batch, units) -> the attentional vector (batch, units), from the constants in scope."""
    one = g.const(np.array([1], np.int64), "axis1")
    q = g.op("Unsqueeze", [query, one], "query")  # (batch, 1, units)
    if a.kind == "luong":
        scores = g.op("MatMul", [q, KEYS_T], "scores")  # (batch, 1, time)
        if a.score_scale is not None:
            scores = g.op("Mul", [scores, g.const(np.array(a.score_scale, np.float32), "score_scale")], "scaled")
    else:
        projected = q if a.query_kernel is None else g.op("MatMul", [q, g.const(a.query_kernel, "query_kernel")])
        keys = ATTENTION_KEYS if a.keys == "input" else MEMORY
        hidden = g.op("Tanh", [g.op("Add", [projected, keys])])  # (batch, time, units)
        scores = g.op("Transpose", [g.op("MatMul", [hidden, g.const(a.score_vector[:, None], "score_vector")])],
                      "scores", perm=[0, 2, 1])  # (batch, 1, time)
    weights = g.op("Softmax", [g.op("Add", [scores, MASK_BIAS])], "weights", axis=-1)
    # [context; h] W_c = weights (memory W_c_top) + h W_c_bottom: memory W_c_top is computed once per decode
    # (MEMORY_COMBINED), so a step reads a (time, units) table instead of the (units, units) weights.
    context = g.op("Squeeze", [g.op("MatMul", [weights, MEMORY_COMBINED]), one], "context_w")  # (batch, units)
    units = a.combine_kernel.shape[0] // 2  # rows [context; query], each as wide as the top layer
    own = g.op("Gemm", [query, g.const(a.combine_kernel[units:], "combine_W_h"),
                        g.const(a.combine_bias, "combine_b")])  # (batch, units)
    combined = g.op("Add", [context, own], "combined")
    return g.op("Tanh", [combined], "attentional") if a.combine_tanh else combined


def _step(g: _Graph, spec: DecoderWeights, x: str, states: list[list[str]],
          fed: str | None = None) -> tuple[str, list[list[str]], str | None]:
    """One decoder step inside the loop body: x (batch,) ids or (batch, dim) -> (output, new states, new fed)."""
    new_states = []
    for k, (w, state) in enumerate(zip(spec.layers, states)):
        xw = _input_projection(g, w, x, spec.embedding if k == 0 else None, fed if k == 0 else None)
        if w.cell == "lstm":
            h, c = _lstm_cell(g, w, xw, *state)
            new_states.append([h, c])
        else:
            if not w.reset_after:
                raise ExportError("the fused loop supports GRU layers with reset_after=True (the Keras default)")
            h = _gru_cell(g, w, xw, state[0])
            new_states.append([h])
        x = h
    if spec.attention is not None:
        x = _attend(g, spec.attention, x)
        fed = x if spec.attention.input_feeding else None
        if not spec.attention.combine_tanh:  # the combine was the output layer: x holds its logits
            return x, new_states, fed
    out = g.op("Gemm", [x, g.const(spec.dense_kernel, "dense_W"), g.const(spec.dense_bias, "dense_b")])
    return out, new_states, fed


def _body(spec: DecoderWeights, state_names: list[list[str]], end_id: int | None, unroll: int):
    """The Loop body: ``unroll`` decoder steps, then the continue condition (some row still running)."""
    from onnx import TensorProto

    tokens = spec.embedding is not None
    g = _Graph("body_")
    states = [[f"{n}_in" for n in names] for names in state_names]
    fed = f"{ATTENTIONAL}_in" if spec.attention is not None and spec.attention.input_feeding else None
    x, scans, misses = ("token_in" if tokens else "x_in"), [], ["running_in"]
    for _ in range(unroll):
        out, states, fed = _step(g, spec, x, states, fed)
        if tokens:  # int64 ids, as ArgMax gives them and Gather takes them: no cast per step
            x = g.op("ArgMax", [out], "next", axis=1, keepdims=0)  # (batch,)
            misses.append(g.op("BitwiseXor", [x, g.const(np.array(end_id, np.int64), "end_id")], "miss"))
        else:
            x = out  # (batch, features): fed back as the next input
        scans.append(x)
    # Each iteration's steps side by side along the batch axis, (unroll * batch[, features]): reshaped into
    # steps once after the loop rather than unsqueezed at every step.
    scan = g.op("Concat", scans, "scan", axis=0) if unroll > 1 else g.op("Identity", [x], "scan")
    if tokens:
        # id XOR end_id is 0 exactly at the end token and positive otherwise, so a row's running value (the
        # minimum over its steps, carried) is 0 once it has ended; the loop goes on while some row's is not:
        # one node per step and three per iteration (measured faster than Equal/Or per step and Not, Cast,
        # ReduceMax, Cast per iteration).
        running = g.op("Min", misses, "running")
        cond = g.op("Cast", [g.op("ReduceMax", [running], keepdims=0)], "cond", to=TensorProto.BOOL)
        carried = [x, running]
    else:
        cond, carried = g.op("Identity", ["cond_in"], "cond"), [x]
    carried += [t for layer in states for t in layer] + ([g.op("Identity", [fed], "fed_out")] if fed else [])
    return g, cond, carried, scan


def build_decode_loop(spec: DecoderWeights, state_names: list[list[str]], end_id: int | None, opset: int = 18,
                      unroll: int = 2):
    """The fused decode graph (see the module docstring). ``state_names[k]`` lists layer k's state names.

    With ``spec.attention`` the graph also takes memory, attention_keys (our encoders; a brought decoder's
    keys are the memory itself) and source_mask, even where the user's step graph takes no mask (and, with
    input feeding, the state ``attentional``).

    Each Loop iteration runs ``unroll`` steps (less loop overhead per token), so ``tokens`` /
    ``predictions`` may hold up to unroll - 1 steps past max_steps: readers take the first max_steps.
    Opset 18 or later (Split with num_outputs).
    """
    from onnx import TensorProto, helper

    f32, i32, i64, boolean = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
    vi = helper.make_tensor_value_info
    tokens = spec.embedding is not None
    flat = [n for names in state_names for n in names]
    sizes = {n: w.units for names, w in zip(state_names, spec.layers) for n in names}
    attention = spec.attention
    if attention is not None and attention.input_feeding:
        flat.append(ATTENTIONAL)
        sizes[ATTENTIONAL] = spec.layers[-1].units
    width = spec.dense_kernel.shape[1]
    body, cond, carried, scan = _body(spec, state_names, end_id, unroll)
    first_vi = [vi("token_in", i64, ["batch"]), vi("running_in", i64, ["batch"])] if tokens else \
        [vi("x_in", f32, ["batch", width])]
    carried_types = ([i64, i64] if tokens else [f32]) + [f32] * len(flat)
    body_graph = helper.make_graph(
        body.nodes, "decode_steps",
        [vi("iteration", i64, []), vi("cond_in", boolean, [])] + first_vi + [vi(f"{n}_in", f32, ["batch", sizes[n]])
                                                                         for n in flat],
        [vi(cond, boolean, [])] + [vi(t, kind, None) for t, kind in zip(carried, carried_types)]
        + [vi(scan, i64 if tokens else f32, None)],
        initializer=body.inits)

    g = _Graph("")
    constants = []
    if attention is not None:  # once per decode: the keys transposed for the scores, the mask as a bias
        units = spec.layers[-1].units
        keys = ATTENTION_KEYS if attention.keys == "input" else MEMORY
        constants = [vi(MEMORY, f32, ["batch", "time", units])] + (
            [vi(ATTENTION_KEYS, f32, ["batch", "time", units])] if attention.keys == "input" else []) + [
            vi(SOURCE_MASK, f32, ["batch", "time"])]
        g.op("Transpose", [keys], outputs=[KEYS_T], perm=[0, 2, 1])  # (batch, units, time)
        bias = g.op("Mul", [g.op("Sub", [g.const(np.array(1, np.float32)), SOURCE_MASK]),
                            g.const(np.array(NEG_INF, np.float32))])
        g.op("Unsqueeze", [bias, g.const(np.array([1], np.int64))], outputs=[MASK_BIAS])  # (batch, 1, time)
        g.op("MatMul", [MEMORY, g.const(attention.combine_kernel[:units], "combine_W_context")],
             outputs=[MEMORY_COMBINED])  # (batch, time, units)
    trips = g.op("Div", [g.op("Add", [LOOP_STEPS, g.const(np.array(unroll - 1, np.int64))]),
                         g.const(np.array(unroll, np.int64))], "trips")  # ceil(max_steps / unroll)
    loop_inputs = [trips, g.const(np.array(True), "true")]
    if tokens:
        first = g.op("Cast", [LOOP_INPUT], "first_id", to=i64)
        loop_inputs += [first, g.op("Add", [g.op("Mul", [first, g.const(np.array(0, np.int64))]),
                                            g.const(np.array(1, np.int64))], "running0")]  # every row running
    else:
        loop_inputs.append(LOOP_INPUT)
    stacked = g.op("Loop", loop_inputs + flat, outputs=[g.name("final") for _ in carried] + [g.name("stacked")],
                   body=body_graph)[-1]  # (trips, unroll * batch[, features])
    shape = g.op("Concat", [g.const(np.array([-1], np.int64)), g.op("Shape", [LOOP_INPUT])], axis=0)
    result = LOOP_OUTPUTS["tokens" if tokens else "features"]
    if tokens:
        g.op("Cast", [g.op("Reshape", [stacked, shape], "steps")], outputs=[result], to=i32)  # (steps, batch)
    else:
        g.op("Reshape", [stacked, shape], outputs=[result])  # (trips * unroll, batch, features)
    graph = helper.make_graph(
        g.nodes, "decode_loop",
        [vi(n, f32, ["batch", sizes[n]]) for n in flat] + constants
        + [vi(LOOP_INPUT, i32, ["batch"]) if tokens else vi(LOOP_INPUT, f32, ["batch", width]),
           vi(LOOP_STEPS, i64, [])],
        [vi(result, i32, ["steps", "batch"]) if tokens else vi(result, f32, ["steps", "batch", width])],
        initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="seq2seq-edge",
                             ir_version=_ir_version(opset))


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

    g = _Graph("")
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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="seq2seq-edge",
                             ir_version=_ir_version(opset))


def quantize_model(proto):
    """int8 dynamic quantisation of a plain graph (the encoder: LSTM -> DynamicQuantizeLSTM, MatMul ->
    MatMulInteger). GRU ops, which onnxruntime cannot quantise, are first written out as a Scan of MatMul
    steps (export/gru_scan.py) whose body is quantised too."""
    import copy
    import tempfile
    from pathlib import Path

    import onnx

    from .gru_scan import gru_ops_as_scans

    proto = copy.deepcopy(proto)
    gru_ops_as_scans(proto, quantize_body=_quantize_subgraph)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model_int8.onnx"
        onnx.save(proto, str(src))
        _quantize_file(src, dst)
        return onnx.load(str(dst))


def _quantize_file(src, dst) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to pre-process applies to image models, not these graphs
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _quantize_subgraph(graph, model):
    """A Loop or Scan body of ``model``, int8-quantised as a model of its own (quantize_dynamic leaves
    subgraphs alone): returns the quantised graph and adds the opsets it needs (com.microsoft) to ``model``.
    Names the body reads from the enclosing graph (attention constants) are inputs of the standalone model
    while it is quantised, and are taken out again afterwards."""
    import copy
    import tempfile
    from pathlib import Path

    import onnx
    from onnx import helper

    defined = ({i.name for i in graph.input} | {i.name for i in graph.initializer}
               | {o for n in graph.node for o in n.output})
    outer = sorted({i for n in graph.node for i in n.input if i and i not in defined})
    standalone = copy.deepcopy(graph)
    standalone.input.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outer)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "body.onnx", Path(tmp) / "body_int8.onnx"
        onnx.save(helper.make_model(standalone, opset_imports=model.opset_import), str(src))
        _quantize_file(src, dst)
        quantized = onnx.load(str(dst))
    inputs = [i for i in quantized.graph.input if i.name not in outer]
    del quantized.graph.input[:]
    quantized.graph.input.extend(inputs)
    domains = {o.domain for o in model.opset_import}
    model.opset_import.extend(o for o in quantized.opset_import if o.domain not in domains)
    return quantized.graph


def quantize_loop(proto):
    """int8 dynamic quantisation of the loop body (LSTM -> DynamicQuantizeLSTM, MatMul -> MatMulInteger).

    onnxruntime's quantize_dynamic leaves Loop bodies alone, so the body is
    quantised as a model of its own and put back.
    """
    import copy

    model = copy.deepcopy(proto)
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body = next(a for a in loop.attribute if a.name == "body")
    body.g.CopyFrom(_quantize_subgraph(body.g, model))
    return model


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
