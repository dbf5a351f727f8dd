"""The fused decode graph built from the converted step graph itself, for any decoder.

export/fused_loop.py writes a fast loop from weights that export/byo_fused.py recognises layer by layer; a
decoder whose pattern it does not know had no fused mode. This module needs no pattern: the Loop body is
decoder_step.onnx's own nodes (renamed so that nothing clashes with the enclosing graph, its initializers
kept in the body so that int8 quantisation still finds the weights), followed by the greedy feed-back.

Same interface and semantics as fused_loop.build_decode_loop (runtime/bundle.py ``_check_loop``):
    inputs   every state (batch, size) float32, every constant (memory, keys (batch, time, size), the source
             mask (batch, time)), first_input (batch,) int32 ids or (batch, features) float32, max_steps () int64
    outputs  tokens (steps, batch) int32 or predictions (steps, batch, features) float32
Token decoders feed the argmax back and stop once every row has produced end_id (a row that ended keeps
decoding until then: readers cut each row at its first end id); feature decoders feed the prediction back
for every step. Each iteration runs ``unroll`` steps, so the outputs may hold up to unroll - 1 steps past
max_steps: readers take the first max_steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.contract import LOOP_INPUT, LOOP_OUTPUTS, LOOP_STEPS, STEP_INPUT, STEP_OUTPUTS
from .convert import ExportError
from .graph_ops import Graph, ir_version

__all__ = ["StepLoopSpec", "spec_from_manifest", "build_step_loop", "build_step_loop_int8", "write_generic_fused_modes"]

MIN_OPSET = 18  # BitwiseXor in the end test (as fused_loop)


@dataclass(frozen=True)
class StepLoopSpec:
    """What build_step_loop needs to know of a step graph (the manifest's io, state and constants).

    ``states``: (step input, step output that carries it to the next step), in the loop's input order;
    ``constants``: names read unchanged by every step (attention memory, keys, mask: the loop takes each,
    even one the step graph does not read); ``target``: 'tokens' (argmax fed back, ``end_id`` ends a row)
    or 'features' (the prediction fed back).
    """

    states: tuple[tuple[str, str], ...]
    constants: tuple[str, ...] = ()
    step_input: str = STEP_INPUT
    step_output: str = STEP_OUTPUTS["tokens"]
    target: str = "tokens"
    end_id: int | None = None


def spec_from_manifest(manifest) -> StepLoopSpec:
    """The StepLoopSpec of a loaded bundle's manifest (runtime.manifest.Manifest)."""
    tokens = manifest.target.kind == "tokens"
    return StepLoopSpec(states=tuple((s.name, s.output) for s in manifest.state),
                        constants=tuple(c.name for c in manifest.constants),
                        step_input=manifest.io.step_input, step_output=manifest.io.step_output,
                        target="tokens" if tokens else "features",
                        end_id=manifest.target.vocabulary.end_id if tokens else None)


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _check(step, spec: StepLoopSpec) -> None:
    """The step graph's interface must be exactly what ``spec`` says: ExportError naming the difference."""
    if spec.target not in ("tokens", "features"):
        raise ExportError(f"target must be 'tokens' or 'features', got {spec.target!r}")
    if spec.target == "tokens" and not isinstance(spec.end_id, (int, np.integer)):
        raise ExportError("a token decoder's fused loop needs the target vocabulary's end_id (an int), got "
                          f"{spec.end_id!r}")
    inputs = [i.name for i in step.graph.input]
    outputs = {o.name for o in step.graph.output}
    known = {spec.step_input} | {s for s, _ in spec.states} | set(spec.constants)
    unknown = [n for n in inputs if n not in known]
    missing = [n for n in [spec.step_input] + [s for s, _ in spec.states] if n not in inputs]
    if unknown or missing:
        raise ExportError(f"decoder_step inputs {inputs} do not match the description (step input "
                          f"{spec.step_input!r}, states {[s for s, _ in spec.states]}, constants "
                          f"{list(spec.constants)}): unknown {unknown}, missing {missing}")
    absent = [n for n in [spec.step_output] + [o for _, o in spec.states] if n not in outputs]
    if absent:
        raise ExportError(f"decoder_step has no output(s) {absent} (its outputs: {sorted(outputs)})")
    if len(step.graph.sparse_initializer):
        raise ExportError("the generic fused loop cannot inline a step graph with sparse initializers; export this "
                          "decoder with modes=['step']")


def _rename_free(graph, names: dict) -> None:
    """In a subgraph of a step node (a Scan or If body), the names it reads from the step graph, renamed as
    ``names`` says (its own names are left alone, nested subgraphs likewise)."""
    local = ({i.name for i in graph.input} | {t.name for t in graph.initializer}
             | {o for n in graph.node for o in n.output})
    free = {k: v for k, v in names.items() if k not in local}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in free:
                node.input[i] = free[name]
        for a in node.attribute:
            for sub in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                _rename_free(sub, free)


def _at_opset(step, opset: int):
    """The step graph at default-domain opset ``opset`` (or its own, if newer)."""
    from onnx import version_converter

    own = next((o.version for o in step.opset_import if o.domain in ("", "ai.onnx")), opset)
    if own >= opset:
        return step
    try:
        return version_converter.convert_version(step, opset)
    except Exception as exc:  # onnx raises its own error types from C++
        raise ExportError(f"decoder_step (opset {own}) could not be converted to opset {opset} for the fused "
                          f"loop: {exc}") from exc


class _Inliner:
    """Copies the step graph's nodes into the body, once per unrolled step, under fresh names."""

    def __init__(self, step, spec: StepLoopSpec) -> None:
        self.step, self.spec = step, spec
        self.weights = {t.name: f"slw_{t.name}" for t in step.graph.initializer}
        self.copies = 0

    def initializers(self) -> list:
        from onnx import TensorProto

        out = []
        for t in self.step.graph.initializer:
            copy = TensorProto()
            copy.CopyFrom(t)
            copy.name = self.weights[t.name]
            out.append(copy)
        return out

    def run(self, g: Graph, x: str, states: list[str]) -> tuple[str, list[str]]:
        """One step: nodes appended to ``g``; returns (step output, next states) as body names."""
        from onnx import NodeProto

        k, self.copies = self.copies, self.copies + 1
        names = {self.spec.step_input: x, **{c: c for c in self.spec.constants}, **self.weights,
                 **{s: v for (s, _), v in zip(self.spec.states, states)}}
        for j, node in enumerate(self.step.graph.node):
            copy = NodeProto()
            copy.CopyFrom(node)
            copy.name = f"sl{k}_{node.name or f'node{j}'}"
            for i, name in enumerate(node.input):
                if name:
                    copy.input[i] = names[name]  # topologically sorted: every input is defined already
            for a in copy.attribute:
                for sub in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                    _rename_free(sub, names)
            for i, name in enumerate(node.output):
                if name:
                    names[name] = copy.output[i] = f"sl{k}_{name}"
            g.nodes.append(copy)
        return names[self.spec.step_output], [names[o] for _, o in self.spec.states]


def _body(step, spec: StepLoopSpec, unroll: int):
    """The Loop body graph: ``unroll`` inlined steps, the feed-back, the continue condition."""
    from onnx import TensorProto, helper

    f32, i32, i64, boolean = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
    vi, tokens = helper.make_tensor_value_info, spec.target == "tokens"
    sizes = {i.name: _dims(i) for i in step.graph.input}
    g, inline = Graph("sl_"), _Inliner(step, spec)
    states = [f"sl_{s}_in" for s, _ in spec.states]
    x, misses, scans = "sl_x_in", ["sl_running_in"], []
    for _ in range(unroll):
        out, states = inline.run(g, x, states)
        if tokens:  # (batch, 1) as the step input reads it
            ids = g.op("ArgMax", [out], "next", axis=1, keepdims=1)  # int64 (batch, 1)
            misses.append(g.op("BitwiseXor", [ids, g.const(np.array(spec.end_id, np.int64), "end_id")], "miss"))
            x = g.op("Cast", [ids], "next_i32", to=i32)
        else:
            x = out
        scans.append(x)
    scan = g.op("Concat", scans, "scan", axis=0) if unroll > 1 else g.op("Identity", [x], "scan")
    if tokens:  # as fused_loop: a row's running value is 0 once it produced end_id; go on while any is not
        running = g.op("Min", misses, "running")
        cond = g.op("Cast", [g.op("ReduceMax", [running], keepdims=0)], "cond", to=boolean)
        carried, types = [x, running], [i32, i64]
        first = [vi("sl_x_in", i32, ["batch", 1]), vi("sl_running_in", i64, ["batch", 1])]
    else:
        cond, carried, types = g.op("Identity", ["sl_cond_in"], "cond"), [x], [f32]
        first = [vi("sl_x_in", f32, sizes[spec.step_input])]
    outer = {f"sl_{s}_in" for s, _ in spec.states} | set(spec.constants) | set(inline.weights.values())
    carried += [g.op("Identity", [s], "state_out") if s in outer else s for s in states]  # (a passed-through state)
    types += [f32] * len(states)
    graph = helper.make_graph(
        g.nodes, "decode_steps",
        [vi("sl_iteration", i64, []), vi("sl_cond_in", boolean, [])] + first
        + [vi(f"sl_{s}_in", f32, sizes[s]) for s, _ in spec.states],
        [vi(cond, boolean, [])] + [vi(t, kind, None) for t, kind in zip(carried, types)]
        + [vi(scan, i32 if tokens else f32, None)],
        initializer=inline.initializers() + g.inits)
    return graph, len(carried)


def build_step_loop(step_proto, spec: StepLoopSpec, opset: int = MIN_OPSET, unroll: int = 2):
    """The fused decode graph (module docstring) whose body is ``step_proto``'s own nodes.

    ``step_proto``: decoder_step.onnx as converted (onnx.ModelProto); ``spec``: its interface (StepLoopSpec,
    or spec_from_manifest of a bundle). The model is at opset max(``opset``, 18, the step graph's own); an
    older step graph is converted first. Raises ExportError when the step graph does not match ``spec``.
    """
    from onnx import TensorProto, helper

    if unroll < 1:
        raise ExportError(f"unroll must be at least 1, got {unroll}")
    _check(step_proto, spec)
    opset = max(opset, MIN_OPSET)
    step = _at_opset(step_proto, opset)
    f32, i32, i64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64
    vi, tokens = helper.make_tensor_value_info, spec.target == "tokens"
    dims = {i.name: _dims(i) for i in step.graph.input}
    body, n_carried = _body(step, spec, unroll)
    g = Graph("outer_")
    trips = g.op("Div", [g.op("Add", [LOOP_STEPS, g.const(np.array(unroll - 1, np.int64))]),
                         g.const(np.array(unroll, np.int64))], "trips")  # ceil(max_steps / unroll)
    loop_inputs = [trips, g.const(np.array(True), "true")]
    if tokens:
        first = g.op("Unsqueeze", [LOOP_INPUT, g.const(np.array([1], np.int64), "axis1")], "first")  # (batch, 1)
        running0 = g.op("ConstantOfShape", [g.op("Shape", [first])], "running0",
                        value=helper.make_tensor("one", i64, [1], [1]))  # every row running
        loop_inputs += [first, running0]
    else:
        loop_inputs.append(LOOP_INPUT)
    loop_inputs += [s for s, _ in spec.states]
    stacked = g.op("Loop", loop_inputs, outputs=[g.name("final") for _ in range(n_carried)] + [g.name("stacked")],
                   body=body)[-1]  # (trips, unroll * batch, 1 or features)
    shape = g.op("Concat", [g.const(np.array([-1], np.int64)), g.op("Shape", [LOOP_INPUT])], axis=0)
    result = LOOP_OUTPUTS[spec.target]
    g.op("Reshape", [stacked, shape], outputs=[result])  # (steps, batch[, features])
    width = dims[spec.step_input][1]
    constants = [vi(c, f32, ["batch", "time"] + ([dims[c][2]] if len(dims.get(c, [])) == 3 else []))
                 for c in spec.constants]
    graph = helper.make_graph(
        g.nodes, "decode_loop",
        [vi(s, f32, ["batch", dims[s][1]]) for s, _ in spec.states] + constants
        + [vi(LOOP_INPUT, i32, ["batch"]) if tokens else vi(LOOP_INPUT, f32, ["batch", width]),
           vi(LOOP_STEPS, i64, [])],
        [vi(result, i32, ["steps", "batch"]) if tokens else vi(result, f32, ["steps", "batch", width])],
        initializer=g.inits)
    imports = [helper.make_opsetid("", opset)] + [o for o in step.opset_import if o.domain not in ("", "ai.onnx")]
    return helper.make_model(graph, opset_imports=imports, producer_name="seq2seq-edge",
                             ir_version=max(ir_version(opset), step.ir_version))


def build_step_loop_int8(step_proto, spec: StepLoopSpec, opset: int = MIN_OPSET, unroll: int = 2):
    """The int8 variant of build_step_loop: the step graph is int8-quantised first (quantize.quantize_model:
    LSTM -> DynamicQuantizeLSTM, MatMul -> MatMulInteger), then inlined.

    Not quantize.quantize_loop of the fp32 loop: onnxruntime's LSTM quantiser transposes an LSTM's W and R
    initializers in place, so with ``unroll`` > 1 (LSTM nodes sharing their weights) the second node's weights
    were transposed twice and the decode was wrong."""
    from .quantize import quantize_model

    _check(step_proto, spec)
    return build_step_loop(quantize_model(_at_opset(step_proto, max(opset, MIN_OPSET))), spec, opset, unroll)


def write_generic_fused_modes(spec: StepLoopSpec, graphs: dict, folder: Path, opset: int) -> dict:
    """Add decode_loop.onnx (fp32, built from ``folder``'s decoder_step.onnx), decode_loop_int8.onnx and
    encoder_int8.onnx to ``folder``, as writing.write_fused_modes does for a recognised decoder; returns the
    decode modes for the manifest. For decoders the pattern builder (byo_fused) does not recognise."""
    import onnx

    from .quantize import quantize_model
    from .writing import DECODER_FILE, ENCODER_FILE, write_graph

    step = onnx.load(str(Path(folder) / DECODER_FILE))
    graphs["decode_loop"] = write_graph(build_step_loop(step, spec, opset), folder, "decode_loop.onnx")
    modes = {"step": {"encoder": "encoder", "decoder": "decoder_step"},
             "fused": {"encoder": "encoder", "decoder": "decode_loop"}}
    int8 = build_step_loop_int8(step, spec, opset)
    encoder = quantize_model(onnx.load(str(Path(folder) / ENCODER_FILE)))
    if _loads(int8) and _loads(encoder):  # the quantiser can break graphs with nested loops (a GRU step graph's)
        graphs["decode_loop_int8"] = write_graph(int8, folder, "decode_loop_int8.onnx")
        graphs["encoder_int8"] = write_graph(encoder, folder, "encoder_int8.onnx")
        modes["fused-int8"] = {"encoder": "encoder_int8", "decoder": "decode_loop_int8"}
    return modes


def _loads(proto) -> bool:
    """Whether onnxruntime accepts the graph (the int8 variant is left out when it does not). Tried in a
    child process: on some quantised graphs with nested loops onnxruntime fails an assertion and aborts
    the whole process instead of raising, which would take the user's export (and Python) down with it."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.onnx"
        path.write_bytes(proto.SerializeToString())
        code = ("import sys, onnxruntime as ort\n"
                "ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n")
        try:
            run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            return False
    return run.returncode == 0
