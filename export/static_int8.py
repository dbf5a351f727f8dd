"""int8 whose answer depends only on the row: static activation scales, calibrated at export.

onnxruntime's dynamic quantisation (quantize_dynamic) puts a DynamicQuantizeLinear before each int8 matrix
product: it scales the activations by the range of the whole tensor, so a row's answer could change with the
rows decoded beside it (the batch, a worker's share of a file). Here each of those nodes (in the graph and in
its Loop and Scan bodies, nested ones too) becomes a QuantizeLinear whose scale and zero point are constants:
the range its input took while the fp32 graphs decoded the calibration inputs (export's parity sources).

    calibrate(proto, feeds)   the range of every DynamicQuantizeLinear's input over ``feeds`` (one run each)
    make_static(proto, ranges) those nodes as QuantizeLinear with constant scale and zero point
    dynamic_ops(proto)        the ops left whose scales depend on the batch (none, in a static graph)

A range is widened by MARGIN of its width on each side (so that inputs a little beyond the calibration
sources do not saturate), then to hold 0, and each scale is (max - min) / 255 with zero point
round(-min / scale), as DynamicQuantizeLinear computes them; a value outside the widened range saturates.
The margin was chosen on seeded one-epoch date models (LSTM 3x12 and 2x12, calibrated on 32 sources): int8
tokens equal to fp32 on 256 held-out dates 98.9% and 96.5% with no margin, 99.1% and 97.4% with 10%,
99.4% and 96.0% with 25% (dynamic int8: 98.4% and 96.3%).
"""

from __future__ import annotations

import copy

import numpy as np

__all__ = ["calibrate", "make_static", "dynamic_ops", "DYNAMIC_OPS", "METHOD"]

DYNAMIC = "DynamicQuantizeLinear"
DYNAMIC_OPS = (DYNAMIC, "DynamicQuantizeLSTM", "DynamicQuantizeMatMul")  # scales computed from the batch
LOOPS = ("Loop", "Scan")
METHOD = "static"  # the manifest's decode.int8.method
MARGIN = 0.1  # of a calibrated range's width, added on each side


def _bodies(node):
    from onnx import AttributeProto

    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == AttributeProto.GRAPHS:
            for g in attr.graphs:
                yield attr.name, g


def dynamic_ops(proto) -> list[str]:
    """The op types in ``proto`` (bodies included) whose quantisation scales come from the batch."""
    found = []

    def walk(graph):
        for node in graph.node:
            if node.op_type in DYNAMIC_OPS:
                found.append(node.op_type)
            for _, body in _bodies(node):
                walk(body)

    walk(proto.graph)
    return sorted(set(found))


def _key(path: str, node) -> str:
    return f"{path}/{node.output[0]}"


def _instrument(graph, path: str) -> list[tuple[str, str, str]]:
    """Add to ``graph`` scalar min and max values of every DynamicQuantizeLinear input in it and in its Loop and
    Scan bodies (those as extra scan outputs, reduced again here); returns (key, min name, max name)."""
    from onnx import TensorProto, helper

    found: list[tuple[str, str, str]] = []
    added = []
    for node in list(graph.node):
        if node.op_type == DYNAMIC:
            key = _key(path, node)
            lo, hi = f"{node.output[0]}__calib_min", f"{node.output[0]}__calib_max"
            added += [helper.make_node("ReduceMin", [node.input[0]], [lo], keepdims=0),
                      helper.make_node("ReduceMax", [node.input[0]], [hi], keepdims=0)]
            found.append((key, lo, hi))
            continue
        if node.op_type not in LOOPS:
            continue
        body = next(g for name, g in _bodies(node) if name == "body")
        inner = _instrument(body, f"{path}/{node.output[0] if node.output else node.name}")
        for key, lo, hi in inner:
            body.output.extend([helper.make_tensor_value_info(lo, TensorProto.FLOAT, []),
                                helper.make_tensor_value_info(hi, TensorProto.FLOAT, [])])
            stacked = (f"{lo}__stacked", f"{hi}__stacked")
            node.output.extend(stacked)
            for attr in node.attribute:  # a Scan that lists its scan outputs' axes or directions lists these too
                if attr.name in ("scan_output_axes", "scan_output_directions"):
                    attr.ints.extend([0, 0])
            outer = (f"{lo}__outer", f"{hi}__outer")
            added += [helper.make_node("ReduceMin", [stacked[0]], [outer[0]], keepdims=0),
                      helper.make_node("ReduceMax", [stacked[1]], [outer[1]], keepdims=0)]
            found.append((key, *outer))
    graph.node.extend(added)
    return found


def calibrate(proto, feeds: list[dict]) -> dict[str, tuple[float, float]]:
    """The (min, max) of every DynamicQuantizeLinear input of ``proto`` over the runs ``feeds`` (feed dicts of its
    fp32 twin's inputs: the same names), keyed by the node's place in the graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = copy.deepcopy(proto)
    found = _instrument(model.graph, "")
    if not found:
        return {}
    for _, lo, hi in found:
        model.graph.output.extend([helper.make_tensor_value_info(lo, TensorProto.FLOAT, []),
                                   helper.make_tensor_value_info(hi, TensorProto.FLOAT, [])])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    names = [n for _, lo, hi in found for n in (lo, hi)]
    ranges = {key: (np.inf, -np.inf) for key, _, _ in found}
    for feed in feeds:
        values = session.run(names, {k: v for k, v in feed.items() if k in wanted})
        for k, (key, _, _) in enumerate(found):
            lo, hi = float(values[2 * k]), float(values[2 * k + 1])
            ranges[key] = (min(ranges[key][0], lo), max(ranges[key][1], hi))
    return ranges


def _scale_zero_point(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    """DynamicQuantizeLinear's formula on a fixed range, widened by MARGIN (a range never seen, or NaN, counts
    as [0, 0])."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo = hi = 0.0
    lo, hi = lo - MARGIN * (hi - lo), hi + MARGIN * (hi - lo)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zero = np.clip(np.round(-lo / scale), 0, 255)
    return np.float32(scale), np.uint8(zero)


def make_static(proto, ranges: dict[str, tuple[float, float]]):
    """A copy of ``proto`` whose DynamicQuantizeLinear nodes with a calibrated range are QuantizeLinear nodes with
    constant scale and zero point (written as initializers under the names the node's outputs had)."""
    from onnx import helper, numpy_helper

    model = copy.deepcopy(proto)

    def walk(graph, path: str):
        nodes = []
        for node in graph.node:
            key = _key(path, node) if node.op_type == DYNAMIC else None
            if key is not None and key in ranges:
                scale, zero = _scale_zero_point(*ranges[key])
                graph.initializer.extend([numpy_helper.from_array(np.array(scale), node.output[1]),
                                          numpy_helper.from_array(np.array(zero), node.output[2])])
                nodes.append(helper.make_node("QuantizeLinear", [node.input[0], node.output[1], node.output[2]],
                                              [node.output[0]], name=node.name))
                continue
            if node.op_type in LOOPS:
                for name, body in _bodies(node):
                    if name == "body":
                        walk(body, f"{path}/{node.output[0] if node.output else node.name}")
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(_fused_products(nodes, {i.name for i in graph.initializer},
                                          {i.name for i in graph.initializer if len(i.dims) == 1}))

    walk(model.graph, "")
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def _fused_products(nodes: list, constants: set[str], biases: set[str]) -> list:
    """quantize_dynamic's product pattern, Mul(a_scale, b_scale) -> s; MatMulInteger(a, b, a_zp, b_zp) -> Cast ->
    Mul(., s) [-> Add(., bias)], as one MatMulIntegerToFloat (onnxruntime's contrib op) where a_scale is now a
    constant; ``biases``: the names of constant 1-D tensors.
    onnxruntime fuses the dynamic pattern itself but not this one: it folds the constant scale product
    first, and its fusion looks for that Mul."""
    from onnx import helper

    producer = {o: n for n in nodes for o in n.output}
    readers: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    dropped, replaced = set(), {}
    for n in nodes:
        if n.op_type != "MatMulInteger" or len(n.input) != 4 or len(readers.get(n.output[0], [])) != 1:
            continue
        cast = readers[n.output[0]][0]
        if cast.op_type != "Cast" or len(readers.get(cast.output[0], [])) != 1:
            continue
        mul = readers[cast.output[0]][0]
        if mul.op_type != "Mul":
            continue
        scales = producer.get(next(i for i in mul.input if i != cast.output[0]))
        if scales is None or scales.op_type != "Mul" or len(scales.input) != 2:
            continue
        a_scale = next((s for s in scales.input if s in constants and s.endswith("_scale")), None)
        b_scale = next((s for s in scales.input if s != a_scale), None)
        if a_scale is None or b_scale is None:
            continue
        a, b, a_zero, b_zero = n.input
        if not a_scale.startswith(a.removesuffix("_quantized")):
            a_scale, b_scale = b_scale, a_scale  # the products name a's scale after a
        inputs, out = [a, b, a_scale, b_scale, a_zero, b_zero], mul.output[0]
        add = readers.get(out, [None])[0] if len(readers.get(out, [])) == 1 else None
        bias = None if add is None or add.op_type != "Add" else next((i for i in add.input if i != out), None)
        if bias in biases:  # a constant (N,) bias added to the product: the op's optional bias input
            inputs.append(bias)
            out = add.output[0]
            dropped.add(id(add))
        replaced[id(n)] = helper.make_node("MatMulIntegerToFloat", inputs, [out], name=n.name or out,
                                           domain="com.microsoft")
        dropped |= {id(cast), id(mul)}
        if len(readers.get(scales.output[0], [])) == 1:
            dropped.add(id(scales))
    return [replaced.get(id(n), n) for n in nodes if id(n) not in dropped]
