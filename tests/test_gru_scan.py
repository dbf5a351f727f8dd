"""GRU ops written out as a Scan (export/gru_scan.py): the same numbers as ONNX's GRU op, and int8 reaches them."""

import copy

import numpy as np
import onnxruntime as ort
import pytest

from seq2seq_edge.export.fused import RecurrentWeights, build_gru_encoder, quantize_model
from seq2seq_edge.export.gru_scan import _names_read, gru_ops_as_scans

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Each test draws the same weights whether it runs alone, after the others or on another xdist worker."""
    global RNG
    RNG = np.random.default_rng(0)


def _layer(inputs: int, units: int, activation: str = "tanh") -> RecurrentWeights:
    def w(*shape):
        return RNG.normal(0, 0.3, shape).astype(np.float32)

    return RecurrentWeights("gru", units, activation, w(inputs, 3 * units), w(units, 3 * units), w(2, 3 * units))


def _run(proto, feeds):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options).run(None, feeds)


def _ops(proto) -> set[str]:
    return {n.op_type for n in proto.graph.node}


def _scan_body_ops(proto) -> set[str]:
    return {m.op_type for n in proto.graph.node if n.op_type == "Scan" for a in n.attribute if a.name == "body"
            for m in a.g.node}


@pytest.mark.parametrize("attention", [False, True], ids=["states", "attention-constants"])
def test_token_encoder_as_scans_equals_the_gru_op_row_by_row(attention):
    """Two layers (tanh, relu) over padded rows of different lengths: every output (final states; memory, zero
    past each row's end; keys; mask) equals the native op's within float rounding."""
    embedding = RNG.normal(0, 1, (20, 8)).astype(np.float32)
    keys = (RNG.normal(0, 0.3, (12, 12)).astype(np.float32), None) if attention else None
    encoder = build_gru_encoder(embedding, (_layer(8, 16), _layer(16, 12, "relu")), None, 18, attention_keys=keys)
    rewritten = copy.deepcopy(encoder)
    assert gru_ops_as_scans(rewritten) == 2
    assert "GRU" not in _ops(rewritten) and "Scan" in _ops(rewritten)
    lengths = np.array([9, 3, 1, 6, 9], np.int32)
    source = RNG.integers(1, 20, (5, 9)).astype(np.int32)
    source[np.arange(9)[None] >= lengths[:, None]] = 0
    feeds = {"source": source, "source_length": lengths}
    want, got = _run(encoder, feeds), _run(rewritten, feeds)
    assert len(got) == (5 if attention else 2)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, atol=1e-6)
    # each row alone (no padding) gives what it gave in the padded batch
    for row in range(5):
        alone = _run(rewritten, {"source": source[row:row + 1, :lengths[row]], "source_length": lengths[row:row + 1]})
        np.testing.assert_allclose(alone[1], got[1][row:row + 1], atol=1e-6)


def test_feature_encoder_without_lengths():
    """Real-valued sources have no lengths: two layers, the first one's sequence feeding the second."""
    encoder = build_gru_encoder(None, (_layer(3, 16), _layer(16, 8)), 3, 18)
    rewritten = copy.deepcopy(encoder)
    assert gru_ops_as_scans(rewritten) == 2
    source = RNG.normal(0, 1, (4, 7, 3)).astype(np.float32)
    for w, g in zip(_run(encoder, {"source": source}), _run(rewritten, {"source": source}), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)


@pytest.mark.parametrize("layers, attention", [(1, False), (2, False), (1, True)])
def test_every_initializer_is_read(layers, attention):
    """No graph that export writes carries an initializer nothing reads (onnxruntime warns about each one
    when a user loads the bundle): the GRU encoder, its Scan rewrite and its int8 form."""
    embedding = RNG.normal(0, 1, (20, 8)).astype(np.float32)
    keys = (RNG.normal(0, 0.3, (16, 16)).astype(np.float32), None) if attention else None
    stack = (_layer(8, 16),) + (_layer(16, 16),) * (layers - 1)
    encoder = build_gru_encoder(embedding, stack, None, 18, attention_keys=keys)
    rewritten = copy.deepcopy(encoder)
    gru_ops_as_scans(rewritten)
    for proto in (encoder, rewritten, quantize_model(encoder)):
        unread = {i.name for i in proto.graph.initializer} - _names_read(proto.graph)
        assert not unread


def test_int8_encoder_quantises_both_products_of_a_gru():
    """quantize_model used to leave GRU ops in float32; now the input product (outside the Scan) and the
    recurrent one (in its body) run as MatMulInteger, within int8 rounding of float32."""
    embedding = RNG.normal(0, 1, (20, 8)).astype(np.float32)
    encoder = build_gru_encoder(embedding, (_layer(8, 32),), None, 18)
    int8 = quantize_model(encoder)
    assert "GRU" not in _ops(int8) and "MatMulInteger" in _ops(int8) and "MatMulInteger" in _scan_body_ops(int8)
    assert "GRU" in _ops(encoder)  # the float32 graph is left as it was
    source = RNG.integers(1, 20, (6, 8)).astype(np.int32)
    feeds = {"source": source, "source_length": np.full(6, 8, np.int32)}
    (want,), (got,) = _run(encoder, feeds), _run(int8, feeds)
    error = np.abs(got - want).max()
    assert 0 < error < 0.04, error  # states under 1; measured 0.011-0.037 over 100 draws of the weights


def test_int8_attention_encoder_with_padding():
    """The quantised Scan body honours lengths: memory is exactly 0 past each row's end, and the states, memory
    and keys are within int8 rounding of the float32 graph's."""
    embedding = RNG.normal(0, 1, (20, 8)).astype(np.float32)
    keys = (RNG.normal(0, 0.3, (16, 16)).astype(np.float32), None)
    encoder = build_gru_encoder(embedding, (_layer(8, 16), _layer(16, 16)), None, 18, attention_keys=keys)
    lengths = np.array([7, 2, 5], np.int32)
    source = RNG.integers(1, 20, (3, 7)).astype(np.int32)
    source[np.arange(7)[None] >= lengths[:, None]] = 0
    feeds = {"source": source, "source_length": lengths}
    want, got = _run(encoder, feeds), _run(quantize_model(encoder), feeds)
    memory = got[2]
    assert not memory[np.arange(7)[None] >= lengths[:, None]].any()
    for w, g in zip(want, got, strict=True):  # measured at most 0.035 over 100 draws of the weights (keys: 0.035,
        assert np.abs(g - w).max() < 0.04     # values up to 2.1; states and memory: 0.031, values under 1)


def _gru_model(opset: int = 18, direction: str = "forward", linear_before_reset: int = 1, initial_h: bool = False,
               weights_as_inputs: bool = False):
    from onnx import TensorProto, helper, numpy_helper

    units, directions = 4, 2 if direction == "bidirectional" else 1
    w = [numpy_helper.from_array(RNG.normal(0, 0.3, shape).astype(np.float32), name)
         for name, shape in (("W", (directions, 3 * units, 3)), ("R", (directions, 3 * units, units)),
                             ("B", (directions, 6 * units)))]
    vi = helper.make_tensor_value_info
    inputs = [vi("x", TensorProto.FLOAT, [5, 1, 3])] + ([vi("h0", TensorProto.FLOAT, [directions, 1, units])]
                                                        if initial_h else [])
    if weights_as_inputs:  # weights fed at run time, not stored in the graph
        inputs += [vi(t.name, TensorProto.FLOAT, list(t.dims)) for t in w]
        w = []
    node = helper.make_node("GRU", ["x", "W", "R", "B", "", "h0" if initial_h else ""], ["y", "y_h"],
                            hidden_size=units, direction=direction, linear_before_reset=linear_before_reset)
    graph = helper.make_graph([node], "g", inputs, [vi("y_h", TensorProto.FLOAT, [directions, 1, units])],
                              initializer=w)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("kind", [{"direction": "bidirectional"}, {"linear_before_reset": 0}, {"initial_h": True},
                                  {"weights_as_inputs": True}, {"opset": 12}], ids=lambda k: next(iter(k)))
def test_other_gru_ops_are_left_alone(kind):
    """GRU ops outside the pattern (a bidirectional one, reset before the product, an initial state, weights
    that are inputs, a graph older than opset 13) stay GRU ops: nothing is rewritten."""
    proto = _gru_model(**kind)
    before = proto.SerializeToString()
    assert gru_ops_as_scans(proto) == 0 and proto.SerializeToString() == before


def test_rewrite_keeps_weights_that_something_else_reads():
    """Only the rewritten GRU's own weights leave the graph: an initializer that another node also reads
    (here the recurrent weights, read again by an Identity) stays."""
    from onnx import TensorProto, helper

    proto = _gru_model()
    proto.graph.node.append(helper.make_node("Identity", ["R"], ["r_copy"]))
    proto.graph.output.append(helper.make_tensor_value_info("r_copy", TensorProto.FLOAT, None))
    assert gru_ops_as_scans(proto) == 1
    names = {i.name for i in proto.graph.initializer}
    assert "R" in names and not {"W", "B"} & names
    x = RNG.normal(0, 1, (5, 1, 3)).astype(np.float32)
    assert _run(proto, {"x": x})[0].shape == (1, 1, 4)
