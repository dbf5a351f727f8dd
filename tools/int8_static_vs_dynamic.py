"""int8 with static scales (what export writes) against the dynamic int8 bundles had before, on the bench's models.

    TF_CPP_MIN_LOG_LEVEL=3 python tools/int8_static_vs_dynamic.py char-lstm-1x256 char-gru-1x256 ...

Each model is built and exported as `seq2seq-edge bench` does (bench.run._prepare). Its fp32 graphs are then
quantised the old way: onnxruntime's quantize_dynamic, with DynamicQuantizeLSTM for LSTMs and the GRU Scan
rewrite. The encoder and fused loop of both are timed per generated token, one onnxruntime thread, best of 9
interleaved rounds, on the feeds the runtime gives them at batch 1 and 32. The table also counts the rows whose
int8 tokens differ from fp32's, for each. Prints a Markdown table (docs/benchmarks.md has the one of
2026-12-06).
"""
import os, sys, time, copy, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from pathlib import Path
import numpy as np, onnx, onnxruntime as ort
from seq2seq_edge.bench.run import _prepare
from seq2seq_edge.export.gru_scan import gru_ops_as_scans
from seq2seq_edge.export.quantize import _quantize_subgraph, quantize_loop, sort_nodes
from seq2seq_edge.runtime import load

def old_quantize_model(proto):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    proto = copy.deepcopy(proto)
    gru_ops_as_scans(proto, quantize_body=_quantize_subgraph)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(proto, f"{tmp}/m.onnx"); quantize_dynamic(f"{tmp}/m.onnx", f"{tmp}/q.onnx", weight_type=QuantType.QInt8)
        q = onnx.load(f"{tmp}/q.onnx")
    sort_nodes(q.graph); return q

def session(p):
    o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; o.log_severity_level = 3
    return ort.InferenceSession(p if isinstance(p, str) else p.SerializeToString(), o, providers=["CPUExecutionProvider"])

class Rec:
    def __init__(s, sess): s.sess, s.feeds = sess, []
    def run(s, names, feed, *a): s.feeds.append(dict(feed)); return s.sess.run(names, feed, *a)
    def __getattr__(s, k): return getattr(s.sess, k)

work = Path(tempfile.mkdtemp())  # the exported bundles stay here, for a look afterwards
print("| model | batch | old int8 us/token | new int8 us/token | new/old | rows unlike fp32: old | new |")
for name in sys.argv[1:]:
    p = _prepare(name, work)
    folder = p.bundle
    m = load(folder, threads=1)
    g = m.manifest.graphs; fp32, int8 = m.manifest.modes["fused"], m.manifest.modes["fused-int8"]
    old = {"encoder": session(old_quantize_model(onnx.load(str(folder / g[fp32["encoder"]].file)))),
           "decoder": session(quantize_loop(onnx.load(str(folder / g[fp32["decoder"]].file))))}
    new = {r: session(str(folder / g[int8[r]].file)) for r in ("encoder", "decoder")}
    srcs = p.sources
    ids, lengths = m.source_vocab.encode_batch(srcs) if isinstance(srcs[0], str) else (np.asarray(srcs), None)
    want = m.generate(ids, lengths=lengths, mode="fused")
    differ = {}
    for label, sess in (("old", old), ("new", new)):
        for r in sess: m.bundle.sessions[int8[r]] = sess[r]
        got = m.generate(ids, lengths=lengths, mode="fused-int8")
        differ[label] = sum(not np.array_equal(a, b) for a, b in zip(got, want))
    for batch in (1, 32):
        feeds = {}
        for label, sess in (("old", old), ("new", new)):
            recs = {r: Rec(sess[r]) for r in sess}
            for r in recs: m.bundle.sessions[int8[r]] = recs[r]
            out = m.generate(ids[:batch], lengths=None if lengths is None else lengths[:batch], mode="fused-int8")
            feeds[label] = (recs, sum(len(o) + 1 for o in out))
        best = {"old": 1e9, "new": 1e9}
        n = 20 if batch == 1 else 4
        for _ in range(9):
            for label, (recs, tokens) in feeds.items():
                t = time.process_time()
                for _ in range(n):
                    for r in ("encoder", "decoder"):
                        for f in recs[r].feeds: recs[r].sess.run(None, f)
                best[label] = min(best[label], (time.process_time() - t) / n / tokens * 1e6)
        print(f"| {name} | {batch} | {best['old']:.1f} | {best['new']:.1f} | {best['new']/best['old']:.2f} | {differ['old']} of {len(srcs)} | {differ['new']} |", flush=True)
