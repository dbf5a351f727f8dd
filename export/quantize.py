"""int8 dynamic quantisation of our graphs, Loop and Scan bodies included (onnxruntime's quantize_dynamic
leaves subgraphs alone)."""

from __future__ import annotations

__all__ = ["quantize_model", "quantize_loop"]


def quantize_model(proto):
    """int8 dynamic quantisation of a plain graph (the encoder: LSTM -> DynamicQuantizeLSTM, MatMul ->
    MatMulInteger). GRU ops, which onnxruntime cannot quantise, are first written out as a Scan of MatMul
    steps (export/gru_scan.py) whose body is quantised too."""
    import copy
    import tempfile
    from pathlib import Path

    import onnx

    from .gru_scan import gru_ops_as_scans
    from .lstm_scan import lstm_ops_as_scans

    proto = copy.deepcopy(proto)
    nested = any(n.op_type in CONTROL_FLOW for n in proto.graph.node)  # before our Scans, which quantise safely
    gru_ops_as_scans(proto, quantize_body=_quantize_subgraph)
    lstm_ops_as_scans(proto, quantize_body=_quantize_subgraph)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model_int8.onnx"
        onnx.save(proto, str(src))
        _quantize_file(src, dst, keep_gather=nested)
        quantized = onnx.load(str(dst))
    sort_nodes(quantized.graph)
    return quantized


def _outer_reads(node) -> set:
    """Names a node's subgraphs (Loop, Scan, If bodies, nested ones too) read from enclosing graphs."""
    from onnx import AttributeProto

    reads = set()
    for a in node.attribute:
        for g in [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs):
            defined = ({i.name for i in g.input} | {i.name for i in g.initializer}
                       | {o for n in g.node for o in n.output})
            for n in g.node:
                reads |= ({i for i in n.input if i} | _outer_reads(n)) - defined
    return reads


def sort_nodes(graph) -> None:
    """Put ``graph``'s nodes in an order where every node comes after what it reads, values its subgraphs
    read from this graph included; otherwise the order is kept. quantize_dynamic sorts by the nodes' own
    inputs only, so a Loop whose body reads an outer value (tf2onnx's GRU) could land before that value's
    producer: a graph onnxruntime refuses. Names produced by no node (inputs, initializers, an enclosing
    graph's values) are taken as ready; a cycle leaves the order as it was, for onnx's checker to report."""
    import copy
    import heapq

    producer = {o: k for k, n in enumerate(graph.node) for o in n.output if o}
    waits = [{producer[i] for i in ({*n.input} | _outer_reads(n)) if i in producer} - {k}
             for k, n in enumerate(graph.node)]
    users: dict[int, list[int]] = {}
    for k, need in enumerate(waits):
        for j in need:
            users.setdefault(j, []).append(k)
    left = [len(need) for need in waits]
    ready = [k for k, n in enumerate(left) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for u in users.get(k, ()):
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(ready, u)
    if len(order) == len(graph.node):
        nodes = [copy.deepcopy(graph.node[k]) for k in order]
        del graph.node[:]
        graph.node.extend(nodes)


CONTROL_FLOW = ("Loop", "Scan", "If")


def _quantize_file(src, dst, keep_gather: bool = False) -> None:
    """quantize_dynamic with int8 weights. ``keep_gather``: leave Gather (embedding) nodes in float. A graph
    whose Loop body reads a value of the enclosing graph (a GRU step as tf2onnx writes it, in the TF NMT
    tutorial's decoder) makes onnxruntime 1.32 abort the whole process on load (a failed assertion, not an
    exception) once its Gathers are quantised; MatMuls quantise safely."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    # LSTM: never DynamicQuantizeLSTM, whose scales come from the batch (lstm_scan writes plain LSTMs out first)
    types = [t for t in IntegerOpsRegistry if t != "LSTM" and not (keep_gather and t == "Gather")]
    logging.disable(logging.WARNING)  # its advice to pre-process applies to image models, not these graphs
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=types)
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
