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

import numpy as np

from ..runtime.contract import (ATTENTION_KEYS, ATTENTIONAL, LOOP_INPUT, LOOP_OUTPUTS, LOOP_STEPS, MEMORY,
                                SOURCE_MASK)
from .convert import ExportError
from .fused_weights import AttentionWeights, DecoderWeights, RecurrentWeights
from .graph_ops import ACTIVATIONS, Graph, finish_model

__all__ = ["build_decode_loop"]
NEG_INF = -1e9  # the score of a padded source position (as training/attention.py's Attend)


def _gate_order(w: RecurrentWeights, m: np.ndarray) -> np.ndarray:
    """LSTM: Keras gates (i, f, c, o) -> (i, f, o, c), so that one Sigmoid covers i, f, o. GRU: unchanged."""
    if w.cell != "lstm":
        return m
    i, f, c, o = np.split(m, 4, axis=-1)
    return np.concatenate([i, f, o, c], axis=-1)


def _input_projection(g: Graph, w: RecurrentWeights, x: str, embedding: np.ndarray | None,
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


def _lstm_cell(g: Graph, w: RecurrentWeights, xw: str, h: str, c: str) -> tuple[str, str]:
    """Keras LSTM step: gates = xW + hR + b; c' = f c + i act(g); h' = o act(c')."""
    act = ACTIVATIONS[w.activation]
    gates = g.op("Add", [xw, g.op("MatMul", [h, g.const(_gate_order(w, w.recurrent), "R")])])
    ifo, cand = g.op("Split", [gates, g.const(np.array([3 * w.units, w.units], np.int64))], outputs=2, axis=1)
    i, f, o = g.op("Split", [g.op("Sigmoid", [ifo])], outputs=3, axis=1, num_outputs=3)
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, g.op(act, [cand])])], "c")
    return g.op("Mul", [o, g.op(act, [c_new])], "h"), c_new


def _gru_cell(g: Graph, w: RecurrentWeights, xw: str, h: str) -> str:
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


def _attend(g: Graph, a: AttentionWeights, query: str) -> str:
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


def _step(g: Graph, spec: DecoderWeights, x: str, states: list[list[str]],
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
    g = Graph("body_")
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


def _loop_state(spec: DecoderWeights, state_names: list[list[str]]) -> tuple[list[str], dict[str, int]]:
    """The state the Loop carries, in order (every layer's, then ``attentional`` with input feeding), and sizes."""
    flat = [n for names in state_names for n in names]
    sizes = {n: w.units for names, w in zip(state_names, spec.layers) for n in names}
    if spec.attention is not None and spec.attention.input_feeding:
        flat.append(ATTENTIONAL)
        sizes[ATTENTIONAL] = spec.layers[-1].units
    return flat, sizes


def _body_graph(spec: DecoderWeights, state_names: list[list[str]], end_id: int | None, unroll: int):
    """The Loop's body as an ONNX graph, and the names of the values it carries."""
    from onnx import TensorProto, helper

    f32, i64, boolean = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    vi = helper.make_tensor_value_info
    tokens = spec.embedding is not None
    flat, sizes = _loop_state(spec, state_names)
    body, cond, carried, scan = _body(spec, state_names, end_id, unroll)
    first_vi = [vi("token_in", i64, ["batch"]), vi("running_in", i64, ["batch"])] if tokens else \
        [vi("x_in", f32, ["batch", spec.dense_kernel.shape[1]])]
    carried_types = ([i64, i64] if tokens else [f32]) + [f32] * len(flat)
    graph = helper.make_graph(
        body.nodes, "decode_steps",
        [vi("iteration", i64, []), vi("cond_in", boolean, [])] + first_vi + [vi(f"{n}_in", f32, ["batch", sizes[n]])
                                                                         for n in flat],
        [vi(cond, boolean, [])] + [vi(t, kind, None) for t, kind in zip(carried, carried_types)]
        + [vi(scan, i64 if tokens else f32, None)],
        initializer=body.inits)
    return graph, carried


def _attention_constants(g: Graph, spec: DecoderWeights) -> list:
    """Once per decode: the keys transposed for the scores, the mask as a bias, the memory times the combine
    layer's context rows; returns the constants' graph inputs (none without attention)."""
    from onnx import TensorProto, helper

    attention, f32, vi = spec.attention, TensorProto.FLOAT, helper.make_tensor_value_info
    if attention is None:
        return []
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
    return constants


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

    f32, i32, i64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64
    vi = helper.make_tensor_value_info
    tokens, width = spec.embedding is not None, spec.dense_kernel.shape[1]
    flat, sizes = _loop_state(spec, state_names)
    body_graph, carried = _body_graph(spec, state_names, end_id, unroll)
    g = Graph("")
    constants = _attention_constants(g, spec)
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
    return finish_model(graph, opset)
