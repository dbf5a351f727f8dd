"""Keras inference models -> ONNX with tf2onnx, with our tensor names and dynamic axes."""

from __future__ import annotations

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.manifest import TensorSpec

__all__ = ["ExportError", "keras_to_onnx", "name_axes", "add_sequence_lengths", "interface"]

OPSET = 17
ONNX_DTYPES = {1: "float32", 6: "int32", 7: "int64"}


class ExportError(Seq2SeqEdgeError):
    """A model cannot be exported, or its export does not compute what Keras computes."""


def keras_to_onnx(model, opset: int = OPSET):
    """Convert with tf2onnx; graph inputs and outputs keep the Keras names we gave them."""
    import tensorflow as tf
    import tf2onnx

    spec = tuple(tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many types; its message names the op it could not convert
        kinds = sorted({type(layer).__name__ for layer in getattr(model, "layers", ())})
        text = str(exc).strip().splitlines()
        raise ExportError(f"{model.name}: tf2onnx {tf2onnx.__version__} could not convert it at opset {opset} "
                          f"({type(exc).__name__}: {text[0][:300] if text else 'no message'}); its layers: "
                          f"{', '.join(kinds)}. Replace the layer the message names, or export with "
                          "export_functions around code tf2onnx converts") from exc
    want_in, want_out = {t.name for t in model.inputs}, set(model.output_names)
    got_in, got_out = {i.name for i in proto.graph.input}, {o.name for o in proto.graph.output}
    if got_in != want_in or got_out != want_out:
        raise ExportError(f"{model.name}: tf2onnx named the graph's tensors {sorted(got_in)} -> {sorted(got_out)}, "
                          f"expected {sorted(want_in)} -> {sorted(want_out)}")
    return proto


def name_axes(proto, axes: dict[str, tuple]) -> None:
    """Give dynamic dimensions our names ("batch", "time"): ``axes[tensor] = ('batch', None, ...)``."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        names = axes.get(value.name)
        if names is None:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(names):
            raise ExportError(f"{value.name}: graph rank {len(dims)} does not match the expected {len(names)}")
        for dim, name in zip(dims, names):
            if name is not None:
                dim.ClearField("dim_value")
                dim.dim_param = name


def add_sequence_lengths(proto, name: str, expected_lstms: int) -> None:
    """Add an int32 input ``name`` (batch,) and feed it to every LSTM op's sequence_lens.

    The encoder is converted without Keras's padding mask (a mask turns the
    native LSTM op into a slow Loop); sequence_lens makes the native op stop
    each row at its own length, which is what the mask did in Keras.
    """
    from onnx import TensorProto, helper

    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    if len(lstms) != expected_lstms:
        found = sorted({n.op_type for n in proto.graph.node})
        raise ExportError(f"encoder: expected {expected_lstms} native ONNX LSTM op(s), tf2onnx produced "
                          f"{len(lstms)} (ops: {found}); this layer type cannot take per-row lengths")
    for node in lstms:
        while len(node.input) < 5:
            node.input.append("")
        if node.input[4]:
            raise ExportError(f"encoder: LSTM op {node.name} already has sequence_lens {node.input[4]!r}")
        node.input[4] = name
    proto.graph.input.append(helper.make_tensor_value_info(name, TensorProto.INT32, ["batch"]))


def length_mask_nodes(lengths: str, source: str, mask: str) -> list:
    """ONNX nodes writing ``mask`` (batch, time) float: 1 where the step is before the row's ``lengths``
    (int32 (batch,)), else 0; time is the second axis of ``source``. Internal names start with 'mask/'."""
    from onnx import TensorProto, helper

    def const(name: str, value: int, dims: list[int]):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, dims,
                                                                                   [value]))

    return [
        const("mask/zero", 0, []), const("mask/one", 1, []), const("mask/axis0", 0, [1]), const("mask/axis1", 1, [1]),
        helper.make_node("Shape", [source], ["mask/shape"]),
        helper.make_node("Gather", ["mask/shape", "mask/one"], ["mask/time"]),
        helper.make_node("Range", ["mask/zero", "mask/time", "mask/one"], ["mask/steps"]),
        helper.make_node("Unsqueeze", ["mask/steps", "mask/axis0"], ["mask/steps_row"]),
        helper.make_node("Cast", [lengths], ["mask/lengths64"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["mask/lengths64", "mask/axis1"], ["mask/lengths_column"]),
        helper.make_node("Less", ["mask/steps_row", "mask/lengths_column"], ["mask/below"]),
        helper.make_node("Cast", ["mask/below"], [mask], to=TensorProto.FLOAT),
    ]


def mask_from_lengths(proto, lengths: str, mask: str, source: str) -> None:
    """Compute output ``mask`` (batch, time) float from input ``lengths`` instead of from the ids.

    Keras derives an attention model's source mask from the pad id; the runtime also accepts
    explicit lengths shorter than a row's tokens, and the LSTM ops stop at ``lengths``, so the mask
    must stop there too. The node that wrote ``mask`` keeps running into a dead-end name.
    """
    producers = [n for n in proto.graph.node if mask in n.output]
    if len(producers) != 1:
        raise ExportError(f"encoder: expected one node writing {mask!r}, found {len(producers)}")
    node = producers[0]
    node.output[list(node.output).index(mask)] = f"{mask}_from_ids"
    proto.graph.node.extend(length_mask_nodes(lengths, source, mask))


def interface(proto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's inputs and outputs as manifest TensorSpecs."""
    def spec(value) -> TensorSpec:
        t = value.type.tensor_type
        if t.elem_type not in ONNX_DTYPES:
            raise ExportError(f"{value.name}: unsupported element type {t.elem_type}")
        shape = tuple(d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim)
        return TensorSpec(value.name, ONNX_DTYPES[t.elem_type], shape)

    return tuple(spec(v) for v in proto.graph.input), tuple(spec(v) for v in proto.graph.output)
