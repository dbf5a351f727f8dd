"""Lower bounds for one decoder step: its arithmetic at the measured matmul rate, its weights at the
measured memory bandwidth."""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["machine_rates", "step_macs", "step_floor_us"]


def machine_rates(threads: int = 1) -> dict:
    """The float32 matmul rate (GFLOP/s) of onnxruntime on ``threads`` threads, as the engines run, and
    numpy's copy bandwidth (GB/s) from memory and from cache."""
    return {"gflops": _matmul_rate(threads), "gbps": _copy_rate(64 * 2 ** 20, 3),
            "gbps_cache": _copy_rate(2 ** 18, 2000), "cores": os.cpu_count(), "threads": threads}


def _matmul_rate(threads: int, n: int = 512, reps: int = 20) -> float:
    """GFLOP/s of one onnxruntime MatMul (n x n by n x n) on ``threads`` intra-op threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    b = np.random.default_rng(0).random((n, n), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                              initializer=[numpy_helper.from_array(b, "b")])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(helper.make_model(graph).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"a": b}
    session.run(None, feed)
    best = min(_elapsed(lambda: session.run(None, feed)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _elapsed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _copy_rate(floats: int, reps: int) -> float:
    """GB/s of np.copyto (read + write) on float32 arrays of this size: 256 MB for memory, 1 MB for cache."""
    src, dst = np.ones(floats, np.float32), np.empty(floats, np.float32)
    np.copyto(dst, src)
    started = time.perf_counter()
    for _ in range(reps):
        np.copyto(dst, src)
    return 2 * src.nbytes * reps / (time.perf_counter() - started) / 1e9


def step_macs(model, config) -> int:
    """Multiply-accumulates of one decoder step for one sequence, from the trained weights."""
    from ..training.models import attention_layers, decoder_layers

    macs = 0
    for layer in decoder_layers(model, config.model):
        kernel, recurrent = layer.get_weights()[:2]
        macs += kernel.size + recurrent.size
    if config.model.attention:  # the combine layer's weights; scores and context scale with the source instead
        macs += attention_layers(model, config.model)[1].get_weights()[0].size
    return macs + model.get_layer("output").get_weights()[0].size


def step_floor_us(macs: int, rates: dict, batch: int) -> dict:
    """Per-sequence floor of one decoder step: 2 FLOPs per MAC at the matmul rate, and the float32
    weights read once per step (shared by the batch) at the memory bandwidth."""
    flops, weight_bytes = 2 * macs, 4 * macs
    return {"flops": flops, "bytes": weight_bytes, "flops_us": flops / (rates["gflops"] * 1e3),
            "bytes_us": weight_bytes / batch / (rates["gbps"] * 1e3),
            "cache_us": weight_bytes / batch / (rates["gbps_cache"] * 1e3)}
