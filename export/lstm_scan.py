"""ONNX LSTM ops rewritten as a Scan of MatMul steps, so that int8 with static scales reaches them.

onnxruntime quantises the LSTM op as DynamicQuantizeLSTM, which scales its input and hidden state by the
range of the whole batch: a row's answer then depends on its neighbours, and no calibrated scale can be
given to it. Here each LSTM node (forward, reverse or bidirectional; no peepholes, no clip,
input_forget=0, layout 0; with or without sequence_lens, initial_h and initial_c) becomes the same
computation written out, per direction (a reverse one reads each row reversed within its length, by
ReverseSequence, and its Y is reversed back):

    xw = X W^T + Wb + Rb                             one MatMul over every step (outside the Scan)
    per step:  g = xw_t + h R^T;  i, o, f = sigmoid(g_iof);  c' = f c + i act(g_c);  h' = o act(c')
               h, c stay where the step is past the row's length
    Y = h' where the step is within the row, else 0 (only when Y is used); Y_h, Y_c = the last h, c

The Scan body is quantised as a model of its own (quantize_dynamic leaves subgraphs alone) and the outer
MatMul by the usual pass; static_int8 then fixes every activation scale.

Only LSTMs of at least MIN_UNITS units are rewritten; smaller ones stay float32 LSTM ops. Measured on this
project's 2-core machine (one thread, 20 steps, 64 inputs; us per call, float32 LSTM op / int8 Scan):
64 units 49 / 207 at batch 1, 607 / 625 at batch 32; 128 units 105 / 240 and 1575 / 1147; 256 units
379 / 383 and 4920 / 2625; 512 units 1253 / 647 and 16224 / 6521. A Scan pays about half a microsecond
per op per step, which the native op does not, so the int8 products win only once they are large.
"""

from __future__ import annotations

import numpy as np

from .gru_scan import _names_read, finish_body, opset_of

__all__ = ["lstm_ops_as_scans", "MIN_UNITS"]

MIN_UNITS = 256

_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def lstm_ops_as_scans(proto, quantize_body=None, min_units: int = MIN_UNITS) -> int:
    """Rewrite ``proto``'s LSTM nodes of ``min_units`` units or more that follow the pattern above in place
    (the main graph's and those in Loop and Scan bodies); returns how many were rewritten (others stay as they
    are). ``quantize_body(graph, model) -> graph`` quantises each new Scan body (adding the opsets it needs to
    ``model``)."""
    if opset_of(proto) < 13:  # Split and Unsqueeze take their sizes and axes as inputs from opset 13
        return 0
    counter = [0]
    _rewrite(proto.graph, proto, quantize_body, counter, min_units)
    return counter[0]


def _rewrite(graph, model, quantize_body, counter: list[int], min_units: int) -> None:
    from onnx import AttributeProto, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    consumed = _names_read(graph)
    nodes, weights, rewritten = [], set(), 0
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH and node.op_type in ("Loop", "Scan"):
                _rewrite(attr.g, model, quantize_body, counter, min_units)
        acts = _plain_lstm(node, inits)
        R = None if acts is None else numpy_helper.to_array(inits[node.input[2]])
        if R is None or R.shape[-1] < min_units:
            nodes.append(node)
            continue
        W = numpy_helper.to_array(inits[node.input[1]])
        B = numpy_helper.to_array(inits[node.input[3]]) if len(node.input) > 3 and node.input[3] \
            else np.zeros((R.shape[0], 8 * R.shape[2]), np.float32)
        new_nodes, new_inits = _scan_nodes(node, W, R, B, acts, model, quantize_body, counter[0], consumed)
        nodes.extend(new_nodes)
        graph.initializer.extend(new_inits)
        weights.update(node.input[1:4])
        counter[0] += 1
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        unread = weights - _names_read(graph)
        kept = [i for i in graph.initializer if i.name not in unread]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        produced = ({i.name for i in graph.input} | {i.name for i in graph.initializer}
                    | {o for n in graph.node for o in n.output})
        info = [v for v in graph.value_info if v.name in produced]
        del graph.value_info[:]
        graph.value_info.extend(info)


def _plain_lstm(node, inits: dict) -> tuple[str, str, str] | None:
    """(gate, cell and hidden activations) for an LSTM node this module rewrites, else None."""
    from onnx import TensorProto

    if node.op_type != "LSTM" or node.domain not in ("", "ai.onnx"):
        return None
    attrs = {a.name: a for a in node.attribute}
    direction = _direction(node)
    layout = attrs["layout"].i if "layout" in attrs else 0
    forget = attrs["input_forget"].i if "input_forget" in attrs else 0
    acts = ([a.decode().lower() for a in attrs["activations"].strings] if "activations" in attrs
            else ["sigmoid", "tanh", "tanh"])
    inputs = list(node.input) + [""] * (8 - len(node.input))
    if (direction not in ("forward", "reverse", "bidirectional") or layout != 0 or forget or "clip" in attrs
            or "activation_alpha" in attrs
            or inputs[7] or any(name and (name not in inits or inits[name].data_type != TensorProto.FLOAT)
                                for name in inputs[1:4])
            or not inputs[1] or not inputs[2] or acts[0] != "sigmoid"
            or acts[1] not in _ACTIVATIONS or acts[2] not in _ACTIVATIONS):
        return None
    return acts[0], acts[1], acts[2]


def _scan_nodes(node, W: np.ndarray, R: np.ndarray, B: np.ndarray, acts, model, quantize_body, index: int,
                consumed: set[str]):
    """The nodes and initializers that replace one LSTM node (its outputs that nothing reads are left out).
    ``W``, ``R``, ``B``: per direction (1 or 2). A reverse direction runs the same Scan over each row reversed
    within its length (ReverseSequence), and its outputs are reversed back."""
    from onnx import TensorProto, helper, numpy_helper

    directions, units = R.shape[0], R.shape[2]
    backward = _direction(node) == "reverse"
    p = f"lstm_scan{index}/"
    inputs = list(node.input) + [""] * (8 - len(node.input))
    x, lengths, h0, c0 = inputs[0], inputs[4], inputs[5], inputs[6]
    y, y_h, y_c = (name if name in consumed else "" for name in (list(node.output) + ["", "", ""])[:3])
    i64 = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), p + name)  # noqa: E731
    inits = [i64("axis0", [0]), i64("axis1", [1]), i64("axis2", [2]), i64("zero", 0), i64("one", 1),
             i64("units", [units])]
    n = [helper.make_node("Shape", [x], [p + "shape"]),
         helper.make_node("Gather", [p + "shape", p + "axis1"], [p + "batch"]),
         helper.make_node("Gather", [p + "shape", p + "zero"], [p + "time"])]
    if h0 == "" or c0 == "":
        n += [helper.make_node("Concat", [p + "batch", p + "units"], [p + "state_shape"], axis=0),
              helper.make_node("ConstantOfShape", [p + "state_shape"], [p + "zeros"],
                               value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))]
    if lengths:  # (time, batch, 1): 1 while the step is within the row (a reversed row's too)
        n += [helper.make_node("Range", [p + "zero", p + "time", p + "one"], [p + "steps"]),
              helper.make_node("Unsqueeze", [p + "steps", p + "axis1"], [p + "steps_column"]),
              helper.make_node("Cast", [lengths], [p + "lengths64"], to=TensorProto.INT64),
              helper.make_node("Unsqueeze", [p + "lengths64", p + "axis0"], [p + "lengths_row"]),
              helper.make_node("Less", [p + "steps_column", p + "lengths_row"], [p + "within"]),
              helper.make_node("Unsqueeze", [p + "within", p + "axis2"], [p + "mask"])]
    if backward or directions == 2:  # ReverseSequence needs every row's length: the given ones, or the time
        if not lengths:
            n.append(helper.make_node("Expand", [p + "time", p + "batch"], [p + "lengths64"]))
        n.append(helper.make_node("ReverseSequence", [x, p + "lengths64"], [p + "x_reversed"], batch_axis=1,
                                  time_axis=0))
    outs = []
    for d in range(directions):
        q = f"{p}d{d}/"
        reverse = backward or d == 1
        source = p + "x_reversed" if reverse else x
        inits += [numpy_helper.from_array(W[d].T.astype(np.float32), q + "W_t"),
                  numpy_helper.from_array((B[d, : 4 * units] + B[d, 4 * units:]).astype(np.float32), q + "b"),
                  i64(f"d{d}/pick", [d])]
        n += [helper.make_node("MatMul", [source, q + "W_t"], [q + "xw_raw"]),
              helper.make_node("Add", [q + "xw_raw", q + "b"], [q + "xw"])]  # (time, batch, 4 units)
        starts = []
        for given, name in ((h0, "h0"), (c0, "c0")):
            if given:  # (directions, batch, units) -> this direction's (batch, units)
                n += [helper.make_node("Gather", [given, q + "pick"], [q + name + "_1"], axis=0),
                      helper.make_node("Squeeze", [q + name + "_1", p + "axis0"], [q + name])]
            starts.append(q + name if given else p + "zeros")
        body = _body(R[d], units, acts, bool(lengths), bool(y), model, quantize_body, q)
        scan_out = [q + "h_last", q + "c_last"] + ([q + "ys"] if y else [])
        n.append(helper.make_node("Scan", starts + [q + "xw"] + ([p + "mask"] if lengths else []), scan_out,
                                  body=body, num_scan_inputs=2 if lengths else 1, name=q + "scan"))
        if y and reverse:
            n.append(helper.make_node("ReverseSequence", [q + "ys", p + "lengths64"], [q + "ys_forward"],
                                      batch_axis=1, time_axis=0))
        ys = q + ("ys_forward" if reverse else "ys")
        outs.append((ys, q + "h_last", q + "c_last"))
        n += ([helper.make_node("Unsqueeze", [ys, p + "axis1"], [q + "y4"])] if y else []) + [
            helper.make_node("Unsqueeze", [q + "h_last", p + "axis0"], [q + "h3"]),
            helper.make_node("Unsqueeze", [q + "c_last", p + "axis0"], [q + "c3"])]
    for name, part, axis in ((y, "y4", 1), (y_h, "h3", 0), (y_c, "c3", 0)):  # (time, dirs, batch, units), (dirs, ...)
        if name:
            parts = [f"{p}d{d}/{part}" for d in range(directions)]
            n.append(helper.make_node("Concat", parts, [name], axis=axis) if directions == 2 else
                     helper.make_node("Identity", parts, [name]))
    return n, inits


def _direction(node) -> str:
    attrs = {a.name: a for a in node.attribute}
    return attrs["direction"].s.decode() if "direction" in attrs else "forward"


def _body(R: np.ndarray, units: int, acts, masked: bool, sequence: bool, model, quantize_body, prefix: str):
    """The Scan body: states h, c (batch, units); scanned xw (batch, 4 units)[, mask (batch, 1) bool]; outputs the
    next h, c[, and y (batch, units) when the LSTM's sequence output is used]. ONNX's gate order is i, o, f, c.
    Its names start with ``prefix``, so that none shadows a name of the enclosing graph."""
    from onnx import TensorProto, helper, numpy_helper

    vi = helper.make_tensor_value_info
    f = TensorProto.FLOAT
    gate, cell, hidden = (_ACTIVATIONS[a] for a in acts)
    inits = [numpy_helper.from_array(R.T.astype(np.float32), "R_t"),
             numpy_helper.from_array(np.array([3 * units, units], np.int64), "sizes")]
    h_new, c_new = ("h_new", "c_new") if masked else ("h_out", "c_out")
    n = [helper.make_node("MatMul", ["h", "R_t"], ["hr"]),
         helper.make_node("Add", ["xw", "hr"], ["gates"]),
         helper.make_node("Split", ["gates", "sizes"], ["iof_in", "cand_in"], axis=1),
         helper.make_node(gate, ["iof_in"], ["iof"]),
         helper.make_node("Split", ["iof"], ["i", "o", "f"], axis=1, num_outputs=3) if opset_of(model) >= 18 else
         helper.make_node("Split", ["iof", "thirds"], ["i", "o", "f"], axis=1),
         helper.make_node(cell, ["cand_in"], ["cand"]),
         helper.make_node("Mul", ["f", "c"], ["fc"]),
         helper.make_node("Mul", ["i", "cand"], ["ic"]),
         helper.make_node("Add", ["fc", "ic"], [c_new]),
         helper.make_node(hidden, [c_new], ["c_act"]),
         helper.make_node("Mul", ["o", "c_act"], [h_new])]
    if opset_of(model) < 18:
        inits.append(numpy_helper.from_array(np.array([units] * 3, np.int64), "thirds"))
    inputs = [vi("h", f, ["batch", units]), vi("c", f, ["batch", units]), vi("xw", f, ["batch", 4 * units])]
    outputs = [vi("h_out", f, ["batch", units]), vi("c_out", f, ["batch", units])]
    if masked:  # past the row's end: h and c are kept (and y is 0)
        n += [helper.make_node("Where", ["mask", "h_new", "h"], ["h_out"]),
              helper.make_node("Where", ["mask", "c_new", "c"], ["c_out"])]
        inputs.append(vi("mask", TensorProto.BOOL, ["batch", 1]))
        if sequence:
            n.append(helper.make_node("Where", ["mask", "h_new", "zeros"], ["y"]))
            inits.append(numpy_helper.from_array(np.zeros(1, np.float32), "zeros"))
    elif sequence:
        n.append(helper.make_node("Identity", ["h_out"], ["y"]))
    if sequence:
        outputs.append(vi("y", f, ["batch", units]))
    graph = helper.make_graph(n, "lstm_step", inputs, outputs, initializer=inits)
    return finish_body(graph, prefix, model, quantize_body)
