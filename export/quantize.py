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
