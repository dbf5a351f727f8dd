"""ONNX GRU ops rewritten as a Scan of MatMul steps, so that int8 dynamic quantisation reaches them.

onnxruntime quantises the LSTM op (DynamicQuantizeLSTM) but has no quantised GRU:
an int8 bundle's GRU encoder stayed float32. Here each forward GRU node
(linear_before_reset=1, as Keras's reset_after=True; with or without
sequence_lens; no initial_h) becomes the same computation written out:

    xw = X W^T + Wb                                  one MatMul over every step (outside the Scan)
    per step:  hr = h R^T + Rb;  z, r = sigmoid(xw_zr + hr_zr);  n = act(xw_n + r hr_n)
               h' = n + z (h - n);  h stays where the step is past the row's length
    Y = h' where the step is within the row, else 0 (as the GRU op's Y; only when Y is used); Y_h = the last h

The Scan body is quantised as a model of its own (quantize_dynamic leaves subgraphs alone) and the
outer MatMul by the usual pass, so the input and recurrent products both run in int8.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gru_ops_as_scans"]

_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def gru_ops_as_scans(proto, quantize_body=None) -> int:
    """Rewrite ``proto``'s GRU nodes that follow the pattern above in place; returns how many were rewritten
    (others, such as bidirectional ones or any in a graph older than opset 13, stay as they are).
    ``quantize_body(graph, model) -> graph`` quantises each Scan body (adding the opsets it needs to ``model``)."""
    from onnx import numpy_helper

    if opset_of(proto) < 13:  # Split and Unsqueeze take their sizes and axes as inputs from opset 13
        return 0
    inits = {i.name: i for i in proto.graph.initializer}
    consumed = _names_read(proto.graph)
    nodes, rewritten, weights = [], 0, set()
    for node in proto.graph.node:
        acts = _plain_gru(node, inits)
        if acts is None:
            nodes.append(node)
            continue
        W, R, B = (numpy_helper.to_array(inits[name]) for name in node.input[1:4])
        new_nodes, new_inits = _scan_nodes(node, W[0], R[0], B[0], acts, proto, quantize_body, rewritten, consumed)
        nodes.extend(new_nodes)
        proto.graph.initializer.extend(new_inits)
        weights.update(node.input[1:4])
        rewritten += 1
    if rewritten:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        unread = weights - _names_read(proto.graph)  # the GRUs' own weights, unless something else reads them
        produced = ({i.name for i in proto.graph.input} | {i.name for i in proto.graph.initializer}
                    | {o for n in proto.graph.node for o in n.output})
        for field, drop in ((proto.graph.initializer, unread), (proto.graph.input, unread),
                            (proto.graph.value_info, None)):
            kept = [v for v in field if (v.name not in drop if drop is not None else v.name in produced)]
            del field[:]
            field.extend(kept)
    return rewritten


def opset_of(model) -> int:
    """The default-domain opset ``model`` imports (0 if none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _names_read(graph) -> set[str]:
    """Every name that ``graph``'s nodes (and the graphs inside them: Loop, Scan and If bodies) read, and its
    outputs."""
    from onnx import AttributeProto

    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == AttributeProto.GRAPH else attr.graphs):
                names |= _names_read(sub)
    return names


def _plain_gru(node, inits: dict) -> tuple[str, str] | None:
    """(gate activation, candidate activation) for a GRU node this module rewrites, else None."""
    from onnx import TensorProto

    if node.op_type != "GRU" or node.domain not in ("", "ai.onnx"):
        return None
    attrs = {a.name: a for a in node.attribute}
    direction = attrs["direction"].s.decode() if "direction" in attrs else "forward"
    linear = attrs["linear_before_reset"].i if "linear_before_reset" in attrs else 0
    layout = attrs["layout"].i if "layout" in attrs else 0
    acts = [a.decode().lower() for a in attrs["activations"].strings] if "activations" in attrs else ["sigmoid", "tanh"]
    inputs = list(node.input) + [""] * (6 - len(node.input))
    if (direction != "forward" or linear != 1 or layout != 0 or "clip" in attrs or inputs[5]
            or any(name not in inits or inits[name].data_type != TensorProto.FLOAT for name in inputs[1:4])
            or acts[0] != "sigmoid" or acts[1] not in _ACTIVATIONS):
        return None
    return acts[0], acts[1]


def _scan_nodes(node, W: np.ndarray, R: np.ndarray, B: np.ndarray, acts: tuple[str, str], model, quantize_body,
                index: int, consumed: set[str]):
    """The nodes and initializers that replace one GRU node (its outputs that nothing reads are left out)."""
    from onnx import TensorProto, helper, numpy_helper

    units = R.shape[1]
    p = f"gru_scan{index}/"
    x, lengths = node.input[0], node.input[4] if len(node.input) > 4 else ""
    y, y_h = (name if name in consumed else "" for name in (list(node.output) + ["", ""])[:2])
    inits = [numpy_helper.from_array(W.T.astype(np.float32), p + "W_t"),
             numpy_helper.from_array(B[: 3 * units].astype(np.float32), p + "Wb")]
    i64 = lambda name, values: numpy_helper.from_array(np.array(values, np.int64), p + name)  # noqa: E731
    inits += [i64("axis0", [0]), i64("axis1", [1]), i64("axis2", [2]), i64("zero", 0), i64("one", 1),
              i64("units", [units])]
    n = [helper.make_node("MatMul", [x, p + "W_t"], [p + "xw_raw"]),
         helper.make_node("Add", [p + "xw_raw", p + "Wb"], [p + "xw"]),  # (time, batch, 3 units)
         helper.make_node("Shape", [x], [p + "shape"]),
         helper.make_node("Gather", [p + "shape", p + "axis1"], [p + "batch"]),
         helper.make_node("Concat", [p + "batch", p + "units"], [p + "state_shape"], axis=0),
         helper.make_node("ConstantOfShape", [p + "state_shape"], [p + "h0"],
                          value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))]
    scan_inputs = [p + "xw"]
    if lengths:  # (time, batch, 1): 1 while the step is within the row
        n += [helper.make_node("Gather", [p + "shape", p + "zero"], [p + "time"]),
              helper.make_node("Range", [p + "zero", p + "time", p + "one"], [p + "steps"]),
              helper.make_node("Unsqueeze", [p + "steps", p + "axis1"], [p + "steps_column"]),
              helper.make_node("Cast", [lengths], [p + "lengths64"], to=TensorProto.INT64),
              helper.make_node("Unsqueeze", [p + "lengths64", p + "axis0"], [p + "lengths_row"]),
              helper.make_node("Less", [p + "steps_column", p + "lengths_row"], [p + "within"]),
              helper.make_node("Unsqueeze", [p + "within", p + "axis2"], [p + "mask"])]
        scan_inputs.append(p + "mask")
    body = _body(R, B[3 * units:], units, acts[1], bool(lengths), bool(y), model, quantize_body, p)
    n.append(helper.make_node("Scan", [p + "h0"] + scan_inputs, [p + "h_last"] + ([p + "ys"] if y else []),
                              body=body, num_scan_inputs=len(scan_inputs), name=p + "scan"))
    if y:
        n.append(helper.make_node("Unsqueeze", [p + "ys", p + "axis1"], [y]))  # (time, 1, batch, units)
    if y_h:
        n.append(helper.make_node("Unsqueeze", [p + "h_last", p + "axis0"], [y_h]))  # (1, batch, units)
    return n, inits


def _body(R: np.ndarray, Rb: np.ndarray, units: int, act: str, masked: bool, sequence: bool, model,
          quantize_body, prefix: str):
    """The Scan body: state h (batch, units); scanned xw (batch, 3 units)[, mask (batch, 1) bool]; outputs the
    next h[, and y (batch, units) when the GRU's sequence output is used]. Its names start with ``prefix``, so
    that none shadows a name of the enclosing graph."""
    from onnx import TensorProto, helper, numpy_helper

    vi = helper.make_tensor_value_info
    f = TensorProto.FLOAT
    inits = [numpy_helper.from_array(R.T.astype(np.float32), "R_t"),
             numpy_helper.from_array(Rb.astype(np.float32), "Rb"),
             numpy_helper.from_array(np.array([2 * units, units], np.int64), "sizes"),
             numpy_helper.from_array(np.array([units, units], np.int64), "halves")]
    last = "h_out" if masked or not sequence else "h_new"  # unmasked with y: h_new is y, h_out a copy
    n = [helper.make_node("MatMul", ["h", "R_t"], ["hr_raw"]),
         helper.make_node("Add", ["hr_raw", "Rb"], ["hr"]),
         helper.make_node("Split", ["xw", "sizes"], ["x_zr", "x_n"], axis=1),
         helper.make_node("Split", ["hr", "sizes"], ["h_zr", "h_n"], axis=1),
         helper.make_node("Add", ["x_zr", "h_zr"], ["zr_in"]),
         helper.make_node("Sigmoid", ["zr_in"], ["zr"]),
         helper.make_node("Split", ["zr", "halves"], ["z", "r"], axis=1),
         helper.make_node("Mul", ["r", "h_n"], ["rh"]),
         helper.make_node("Add", ["x_n", "rh"], ["n_in"]),
         helper.make_node(_ACTIVATIONS[act], ["n_in"], ["n"]),
         helper.make_node("Sub", ["h", "n"], ["h_minus_n"]),
         helper.make_node("Mul", ["z", "h_minus_n"], ["z_part"]),
         helper.make_node("Add", ["n", "z_part"], [last if not masked else "h_new"])]
    inputs = [vi("h", f, ["batch", units]), vi("xw", f, ["batch", 3 * units])]
    outputs = [vi("h_out", f, ["batch", units])]
    if masked:  # past the row's end: h is kept (and y is 0)
        n.append(helper.make_node("Where", ["mask", "h_new", "h"], ["h_out"]))
        inputs.append(vi("mask", TensorProto.BOOL, ["batch", 1]))
        if sequence:
            n.append(helper.make_node("Where", ["mask", "h_new", "zeros"], ["y"]))
            inits.append(numpy_helper.from_array(np.zeros(1, np.float32), "zeros"))
    elif sequence:
        n.append(helper.make_node("Identity", ["h_new"], ["h_out"]))
    if sequence:
        outputs.append(vi("y" if masked else "h_new", f, ["batch", units]))
    graph = helper.make_graph(n, "gru_step", inputs, outputs, initializer=inits)
    return finish_body(graph, prefix, model, quantize_body)


def finish_body(graph, prefix: str, model, quantize_body):
    """A Scan body with every name prefixed by ``prefix`` (so that none shadows a name of the enclosing graph),
    quantised by ``quantize_body(graph, model)`` when one is given."""
    for value in list(graph.input) + list(graph.output) + list(graph.initializer):
        value.name = prefix + value.name
    for node in graph.node:
        node.input[:] = [prefix + name for name in node.input]
        node.output[:] = [prefix + name for name in node.output]
    return graph if quantize_body is None else quantize_body(graph, model)
