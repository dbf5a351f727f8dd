"""The generic fused loop (export/step_loop.py): decode_loop.onnx built from decoder_step.onnx's own nodes.

Each committed bundle is copied with its fused graphs replaced by the generic ones (write_generic_fused_modes,
as an export would write them); the runtime loads the copy, which checks the loop's interface against the
manifest, and its fused decode must equal its own step-mode greedy decode: identical tokens, features within
1e-5. The int8 variant must agree with the step decode on most rows.
"""

import json
import shutil

import numpy as np
import onnx
import pytest

from seq2seq_edge.export.convert import ExportError
from seq2seq_edge.export.step_loop import StepLoopSpec, build_step_loop, spec_from_manifest, write_generic_fused_modes
from seq2seq_edge.runtime import load

from conftest import DATA

BUNDLES = ["dates_tiny", "dates_attention_tiny", "sine_tiny"]
GOLDEN = json.loads((DATA / "golden.json").read_text())


def _generic_bundle(name: str, out):
    """A copy of bundle ``name`` whose decode_loop, decode_loop_int8 and encoder_int8 are the generic ones."""
    shutil.copytree(DATA / name, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for role in ("decode_loop", "decode_loop_int8", "encoder_int8"):
        (out / manifest["graphs"][role]["file"]).unlink()
    graphs = {}
    modes = write_generic_fused_modes(spec_from_manifest(load(DATA / name).manifest), graphs, out, 17)
    for role, spec in graphs.items():
        manifest["graphs"][role] = spec.to_dict()
    assert modes == manifest["decode"]["modes"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module", params=BUNDLES)
def generic(request, tmp_path_factory):
    return request.param, load(_generic_bundle(request.param, tmp_path_factory.mktemp("generic") / request.param),
                               threads=1)


def _sources(name: str, model):
    """(source, lengths): the golden inputs and seeded random rows (which often never produce the end token)."""
    rng = np.random.default_rng(7)
    if name == "sine_tiny":
        waves = np.asarray(GOLDEN["sine"]["inputs"], np.float32)
        return np.concatenate([waves, rng.normal(size=(40,) + waves.shape[1:]).astype(np.float32)]), None
    texts = GOLDEN["dates"]["inputs"]
    ids, lengths = model.source_vocab.encode_batch(texts)
    noise = rng.integers(2, len(model.source_vocab), size=(40, ids.shape[1])).astype(np.int32)
    noise_lengths = rng.integers(1, ids.shape[1] + 1, size=40).astype(np.int32)
    return np.concatenate([ids, noise]), np.concatenate([lengths, noise_lengths])


def test_the_generic_loop_is_the_step_graph_inlined(generic):
    name, model = generic
    step = onnx.load(str(DATA / name / "decoder_step.onnx"))
    built = build_step_loop(step, spec_from_manifest(model.manifest))
    onnx.checker.check_model(built)
    body = next(a.g for a in next(n for n in built.graph.node if n.op_type == "Loop").attribute if a.name == "body")
    # two unrolled copies of every step node, and the step graph's weights once
    assert len([n for n in body.node if n.name.startswith("sl0_")]) == len(step.graph.node)
    assert len([n for n in body.node if n.name.startswith("sl1_")]) == len(step.graph.node)
    assert {t.name for t in body.initializer} >= {f"slw_{t.name}" for t in step.graph.initializer}
    # the hand-built loop's interface exactly: names, order, dtypes, axes
    hand = onnx.load(str(DATA / name / "decode_loop.onnx"))
    assert [_signature(v) for v in built.graph.input] == [_signature(v) for v in hand.graph.input]
    assert [_signature(v) for v in built.graph.output] == [_signature(v) for v in hand.graph.output]


def _signature(value) -> tuple:
    t = value.type.tensor_type
    return value.name, t.elem_type, [d.dim_param or d.dim_value for d in t.shape.dim]


@pytest.mark.parametrize("max_steps", [None, 1, 4, 7])
def test_generic_fused_decode_equals_the_step_decode(generic, max_steps):
    name, model = generic
    source, lengths = _sources(name, model)
    step = model.generate(source, max_steps, lengths=lengths, mode="step")
    fused = model.generate(source, max_steps, lengths=lengths, mode="fused")
    assert len(fused) == len(step) == len(source)
    if name == "sine_tiny":
        np.testing.assert_allclose(np.stack(fused), np.stack(step), rtol=0, atol=1e-5)
    else:
        assert [r.tolist() for r in fused] == [r.tolist() for r in step]
        if max_steps is None:  # every row ended before the cap (so the loop's early stop was exercised)
            assert max(map(len, step)) < model.manifest.max_steps


def test_generic_fused_decode_of_one_row_equals_the_batch(generic):
    name, model = generic
    source, lengths = _sources(name, model)
    row = model.generate(source[:1], lengths=None if lengths is None else lengths[:1], mode="fused")
    whole = model.generate(source, lengths=lengths, mode="fused")
    np.testing.assert_array_equal(row[0], whole[0])


def test_generic_int8_loop_agrees_with_the_step_decode(generic):
    name, model = generic
    source, lengths = _sources(name, model)
    step = model.generate(source, lengths=lengths, mode="step")
    int8 = model.generate(source, lengths=lengths, mode="fused-int8")
    if name == "sine_tiny":  # int8 rollouts drift (the hand-built int8 loop too): no worse than the hand-built one
        hand = load(DATA / name, threads=1).generate(source, mode="fused-int8")
        error, hand_error = (float(np.abs(np.stack(out) - np.stack(step)).mean()) for out in (int8, hand))
        assert 0 < error <= 1.25 * hand_error, (error, hand_error)
    else:
        same = sum(a.tolist() == b.tolist() for a, b in zip(int8, step))
        assert same >= 0.8 * len(step), (same, len(step))
        golden = len(GOLDEN["dates"]["inputs"])  # the real dates: every one as the step decode
        assert all(a.tolist() == b.tolist() for a, b in zip(int8[:golden], step[:golden]))


def test_a_description_that_does_not_match_the_step_graph_is_refused():
    step = onnx.load(str(DATA / "dates_tiny" / "decoder_step.onnx"))
    spec = StepLoopSpec(states=(("h0", "h0_out"), ("c1", "c1_out")), end_id=3)
    with pytest.raises(ExportError, match=r"decoder_step inputs \['step_input', 'h0', 'c0'\] do not match the "
                                          r"description .*unknown \['c0'\], missing \['c1'\]"):
        build_step_loop(step, spec)
    spec = StepLoopSpec(states=(("h0", "h0_out"), ("c0", "c_out")), end_id=3)
    with pytest.raises(ExportError, match=r"decoder_step has no output\(s\) \['c_out'\]"):
        build_step_loop(step, spec)
    with pytest.raises(ExportError, match="needs the target vocabulary's end_id"):
        build_step_loop(step, StepLoopSpec(states=(("h0", "h0_out"), ("c0", "c0_out"))))


def test_a_step_node_with_a_subgraph_reads_the_renamed_values():
    """An If node whose branches read the step graph's own values (as a GRU rewritten as a Scan would): the
    inlined copies must read each step's values, not the first step's or the enclosing graph's."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    f32, vi = TensorProto.FLOAT, helper.make_tensor_value_info

    def branch(op):
        return helper.make_graph([helper.make_node(op, ["scaled", "h0"], ["branch_out"])], op.lower(), [],
                                 [vi("branch_out", f32, None)])

    nodes = [helper.make_node("Mul", ["step_input", "half"], ["scaled"]),
             helper.make_node("If", ["yes"], ["prediction"], then_branch=branch("Add"), else_branch=branch("Sub")),
             helper.make_node("Tanh", ["prediction"], ["h0_out"])]
    graph = helper.make_graph(nodes, "step", [vi("step_input", f32, ["batch", 2]), vi("h0", f32, ["batch", 2])],
                              [vi("prediction", f32, ["batch", 2]), vi("h0_out", f32, ["batch", 2])],
                              initializer=[helper.make_tensor("half", f32, [], [0.5]),
                                           helper.make_tensor("yes", TensorProto.BOOL, [], [True])])
    step = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    spec = StepLoopSpec(states=(("h0", "h0_out"),), step_output="prediction", target="features")
    loop = build_step_loop(step, spec)
    rng = np.random.default_rng(3)
    x, h = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    got = ort.InferenceSession(loop.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"h0": h, "first_input": x, "max_steps": np.array(5, np.int64)})[0][:5]
    want = []
    for _ in range(5):
        x = x * 0.5 + h
        h = np.tanh(x)
        want.append(x)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6, atol=1e-6)


def test_nodes_are_sorted_after_the_values_their_subgraphs_read():
    """quantize_dynamic sorts nodes by their own inputs only; a Loop body reading an outer value (tf2onnx's
    GRU) can land before that value's producer, which onnxruntime refuses. sort_nodes puts it after, and
    leaves the rest of the order alone."""
    from onnx import TensorProto, helper

    from seq2seq_edge.export.quantize import sort_nodes

    f32, vi = TensorProto.FLOAT, helper.make_tensor_value_info
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Add", ["acc", "outer"], ["acc_out"])], "body",
                             [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                              vi("acc", f32, [2])], [vi("cond_out", TensorProto.BOOL, []), vi("acc_out", f32, [2])])
    nodes = [helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body),  # reads 'outer' before it exists
             helper.make_node("Neg", ["x"], ["unrelated"]),
             helper.make_node("Relu", ["x"], ["outer"])]
    graph = helper.make_graph(nodes, "g", [vi("x", f32, [2])], [vi("y", f32, [2]), vi("unrelated", f32, [2])],
                              initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)
    sort_nodes(model.graph)
    assert [n.op_type for n in model.graph.node] == ["Neg", "Relu", "Loop"]
    onnx.checker.check_model(model)
