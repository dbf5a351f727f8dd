"""An experiment for issue 14 (not part of the product): does one ONNX graph for the encoder and the fused
decode loop (onnx.compose.merge_models, the states wired inside) decode faster than two session calls?

    python tools/try_merged_encoder_loop.py BUNDLE INPUTS.txt

Greedy, batch 1, one thread, the bundle's fp32 `fused` graphs; asserts identical tokens, then prints the time
per loop step of both, alternating, three times. Measured (session 7, a `dates --quick` bundle, LSTM 128, 100
held-out dates): 18.3 us/token with two calls, 17.9 with one graph.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import compose

from seq2seq_edge.runtime import load


def session(proto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main(bundle: str, inputs: str) -> None:
    encoder, loop = onnx.load(f"{bundle}/encoder.onnx"), onnx.load(f"{bundle}/decode_loop.onnx")
    for proto in (encoder, loop):
        del proto.metadata_props[:]  # merge_models refuses graphs whose metadata differ
    for opset in encoder.opset_import:
        if opset.domain == "":
            opset.version = loop.opset_import[0].version  # the encoder's ops are the same in opset 18
    states = [o.name for o in encoder.graph.output]
    merged = session(compose.merge_models(encoder, loop, io_map=[(s, s) for s in states]))
    enc, dec = session(encoder), session(loop)
    model = load(bundle, threads=1)
    texts = [t for t in open(inputs, encoding="utf-8").read().split("\n") if t.strip()]
    feeds = [model.source_vocab.encode_batch([t]) for t in texts]
    first = np.array([model.target_vocab.start_id], np.int32)
    steps = np.array(model.manifest.max_steps, np.int64)

    def two(ids, lengths):
        values = dict(zip(states, enc.run(None, {"source": ids, "source_length": lengths})))
        return dec.run(None, {**values, "first_input": first, "max_steps": steps})[0]

    def one(ids, lengths):
        return merged.run(None, {"source": ids, "source_length": lengths, "first_input": first, "max_steps": steps})[0]

    assert all(np.array_equal(two(*f), one(*f)) for f in feeds)
    tokens = sum(len(two(*f)) for f in feeds)
    for name, decode in [("two calls", two), ("one graph", one)] * 3:
        started = time.perf_counter()
        for _ in range(20):
            for f in feeds:
                decode(*f)
        print(f"{name}: {(time.perf_counter() - started) * 1e6 / (20 * tokens):.2f} us per loop step")


if __name__ == "__main__":
    main(*sys.argv[1:3])
