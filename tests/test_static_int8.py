"""int8 with static scales (export/static_int8.py) and LSTM ops written out as Scans (export/lstm_scan.py), on
hand-made ONNX graphs: the dynamic int8 that onnxruntime's quantize_dynamic writes gives a row a different
answer beside other rows; the static graph gives it the same bits, and stays near fp32."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from seq2seq_edge.export.lstm_scan import MIN_UNITS, lstm_ops_as_scans
from seq2seq_edge.export.quantize import quantize_model
from seq2seq_edge.export.static_int8 import calibrate, dynamic_ops, make_static

RNG = np.random.default_rng(0)


def _session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _matmul_model(k: int = 64, n: int = 32):
    w = (RNG.standard_normal((k, n)) * 0.2).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
                              initializer=[numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _lstm_model(units: int, inputs: int = 6, lengths: bool = True, initial: bool = True, direction="forward"):
    """An LSTM op as tf2onnx writes one (ONNX gate order), Y, Y_h and Y_c all read."""
    d = 2 if direction == "bidirectional" else 1
    w = (RNG.standard_normal((d, 4 * units, inputs)) * 0.3).astype(np.float32)
    r = (RNG.standard_normal((d, 4 * units, units)) / np.sqrt(units)).astype(np.float32)
    b = (RNG.standard_normal((d, 8 * units)) * 0.1).astype(np.float32)
    f = TensorProto.FLOAT
    graph_inputs = [helper.make_tensor_value_info("x", f, ["time", "batch", inputs])]
    names = ["x", "W", "R", "B", "", "", ""]
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
        names[4] = "lengths"
    if initial:
        graph_inputs += [helper.make_tensor_value_info(n, f, [d, "batch", units]) for n in ("h0", "c0")]
        names[5:7] = ["h0", "c0"]
    node = helper.make_node("LSTM", names, ["y", "y_h", "y_c"], hidden_size=units, direction=direction)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(n, f, None) for n in ("y", "y_h", "y_c")],
                              initializer=[numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _rows_alone(session, feed: dict, batch: int) -> list[list[np.ndarray]]:
    """Each row's outputs run alone (inputs with a batch axis sliced on it: axis 0, or 1 for time-major; scalars
    as they are)."""
    def row(v, i):
        return v if v.ndim == 0 else np.take(v, [i], axis=1 if v.ndim == 3 else 0)
    return [session.run(None, {k: row(v, i) for k, v in feed.items()}) for i in range(batch)]


def test_static_scales_give_a_row_the_same_bits_alone_and_in_a_batch():
    fp32 = _matmul_model()
    dynamic = quantize_model(fp32)
    assert dynamic_ops(dynamic) == ["DynamicQuantizeLinear"]
    x = RNG.standard_normal((16, 64)).astype(np.float32)
    x[3] *= 8  # one row with a wider range than its neighbours: it sets a dynamic batch's scale
    static = make_static(dynamic, calibrate(dynamic, [{"x": x}]))
    assert dynamic_ops(static) == []
    for proto, same in ((dynamic, False), (static, True)):
        session = _session(proto)
        batch = session.run(None, {"x": x})[0]
        alone = np.concatenate([out[0] for out in _rows_alone(session, {"x": x}, 16)])
        assert np.array_equal(alone, batch) is same
    want = _session(fp32).run(None, {"x": x})[0]
    got = _session(static).run(None, {"x": x})[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_products_become_one_op_and_scales_follow_the_range():
    dynamic = quantize_model(_matmul_model())
    static = make_static(dynamic, calibrate(dynamic, [{"x": np.full((2, 64), -1.0, np.float32)},
                                                      {"x": np.full((3, 64), 3.0, np.float32)}]))
    ops = [n.op_type for n in static.graph.node]
    assert ops == ["QuantizeLinear", "MatMulIntegerToFloat"]
    scale = next(numpy_helper.to_array(i) for i in static.graph.initializer if i.name == "x_scale")
    zero = next(numpy_helper.to_array(i) for i in static.graph.initializer if i.name == "x_zero_point")
    # range [-1, 3] over both runs, widened by 10% of its width on each side: [-1.4, 3.4]
    assert float(scale) == pytest.approx(4.8 / 255) and int(zero) == 74


@pytest.mark.parametrize("lengths, initial, direction", [
    (True, True, "forward"), (False, False, "forward"), (True, False, "forward"), (True, True, "bidirectional"),
    (False, False, "bidirectional"), (True, False, "reverse")])
def test_an_lstm_written_as_a_scan_computes_the_lstm_op(lengths, initial, direction):
    proto = _lstm_model(8, lengths=lengths, initial=initial, direction=direction)
    d = 2 if direction == "bidirectional" else 1
    scan = copy.deepcopy(proto)
    assert lstm_ops_as_scans(scan, min_units=1) == 1
    ops = [n.op_type for n in scan.graph.node]
    assert ops.count("Scan") == d and "LSTM" not in ops
    feed = {"x": RNG.standard_normal((7, 5, 6)).astype(np.float32)}
    if lengths:
        feed["lengths"] = np.array([7, 3, 1, 5, 7], np.int32)
    if initial:
        feed.update(h0=RNG.standard_normal((d, 5, 8)).astype(np.float32),
                    c0=RNG.standard_normal((d, 5, 8)).astype(np.float32))
    for got, want in zip(_session(scan).run(None, feed), _session(proto).run(None, feed)):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_small_lstms_stay_lstm_ops_and_int8_never_quantises_them_by_the_batch():
    small = quantize_model(_lstm_model(16))
    assert "LSTM" in [n.op_type for n in small.graph.node] and dynamic_ops(small) == []
    large = quantize_model(_lstm_model(MIN_UNITS, lengths=True, initial=False))
    assert "Scan" in [n.op_type for n in large.graph.node] and "DynamicQuantizeLSTM" not in dynamic_ops(large)


def test_an_int8_lstm_scan_with_static_scales_is_row_independent():
    proto = _lstm_model(MIN_UNITS, lengths=True, initial=False)
    feed = {"x": RNG.standard_normal((9, 6, 6)).astype(np.float32), "lengths": np.array([9, 2, 5, 9, 1, 7], np.int32)}
    feed["x"][:, 2] *= 6
    dynamic = quantize_model(proto)
    static = make_static(dynamic, calibrate(dynamic, [feed]))
    assert dynamic_ops(static) == []
    session = _session(static)
    batch = session.run(None, feed)
    for i, alone in enumerate(_rows_alone(session, {"x": feed["x"], "lengths": feed["lengths"]}, 6)):
        n = feed["lengths"][i]
        assert np.array_equal(alone[1][:, 0], batch[1][:, i]) and np.array_equal(alone[2][:, 0], batch[2][:, i])
        assert np.array_equal(alone[0][:n, :, 0], batch[0][:n, :, i])
    want = _session(proto).run(None, feed)[1]
    near = _session(dynamic).run(None, feed)[1]  # as near fp32 as dynamic int8 is, within 1.5x
    assert np.abs(batch[1] - want).max() < 1.5 * np.abs(near - want).max()


def test_a_calibrated_loop_body_is_static_too():
    """A Loop whose body holds an int8 product: its range is measured through the Loop (as a scan output)."""
    f = TensorProto.FLOAT
    w = (RNG.standard_normal((8, 8)) * 0.5).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "w"], ["m"]), helper.make_node("Tanh", ["m"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", f, ["batch", 8])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", f, ["batch", 8])],
        initializer=[numpy_helper.from_array(w, "w")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h"], ["h_last"], body=body)], "g",
        [helper.make_tensor_value_info("steps", TensorProto.INT64, []),
         helper.make_tensor_value_info("h", f, ["batch", 8])],
        [helper.make_tensor_value_info("h_last", f, ["batch", 8])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from seq2seq_edge.export.quantize import quantize_loop

    dynamic = quantize_loop(proto)
    feed = {"steps": np.array(5, np.int64), "h": RNG.standard_normal((4, 8)).astype(np.float32) * 3}
    ranges = calibrate(dynamic, [feed])
    assert len(ranges) == 1 and next(iter(ranges.values()))[0] < -1  # the first step's input, beyond tanh's range
    static = make_static(dynamic, ranges)
    assert dynamic_ops(static) == []
    onnx.checker.check_model(static)
    session = _session(static)
    batch = session.run(None, feed)[0]
    alone = np.concatenate([out[0] for out in _rows_alone(session, feed, 4)])
    assert np.array_equal(alone, batch)
