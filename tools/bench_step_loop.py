"""Time the generic fused loop (export/step_loop.py, built from decoder_step.onnx) against the hand-built
decode_loop.onnx (export/fused_loop.py) of bundles that have one: one process, 1 thread, side by side.

    python tools/bench_step_loop.py [BUNDLE ...]      (default: the committed tests/data bundles)

Prints a markdown table: microseconds per decoded token (call time / (batch x steps the loop ran)) at batch 1
and 32, fp32 and int8, for each bundle. The encoder runs once per batch, outside the timing.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "tests" / "data" / n for n in ("dates_tiny", "dates_attention_tiny", "sine_tiny")]


def _session(proto_or_path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    data = proto_or_path if isinstance(proto_or_path, (str, bytes)) else proto_or_path.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _feed(folder: Path, manifest, batch: int) -> dict:
    """The loop's inputs for ``batch`` seeded sources: the encoder's outputs, first_input, max_steps."""
    rng = np.random.default_rng(0)
    enc = _session(str(folder / manifest.graphs["encoder"].file))
    time_ = 16
    if manifest.source.kind == "tokens":
        source = rng.integers(2, len(manifest.source.vocabulary), size=(batch, time_)).astype(np.int32)
    else:
        source = rng.normal(size=(batch, time_, manifest.source.features)).astype(np.float32)
    names = [i.name for i in enc.get_inputs()]
    feed = {manifest.io.source: source}
    if manifest.io.source_length in names:
        feed[manifest.io.source_length] = np.full(batch, time_, np.int32)
    out = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, feed)))
    loop = {s.name: out[s.encoder_output] if s.encoder_output else np.zeros((batch, s.size), np.float32)
            for s in manifest.state}
    loop.update({c.name: out[c.encoder_output] for c in manifest.constants})
    if manifest.target.kind == "tokens":
        loop["first_input"] = np.full(batch, manifest.target.vocabulary.start_id, np.int32)
    else:
        loop["first_input"] = np.zeros((batch, manifest.target.features), np.float32)
    loop["max_steps"] = np.array(manifest.max_steps, np.int64)
    return loop


def bench(folder: Path, batches=(1, 32), repeats: int = 7, min_time: float = 0.05) -> list[tuple]:
    """Rows (bundle, batch, variant, us/token, steps run) for the four loops of ``folder``."""
    import onnx

    from seq2seq_edge.export.step_loop import build_step_loop, build_step_loop_int8, spec_from_manifest
    from seq2seq_edge.runtime import load

    manifest = load(folder).manifest
    step, spec = onnx.load(str(folder / "decoder_step.onnx")), spec_from_manifest(manifest)
    loops = {"hand fp32": _session(str(folder / manifest.graphs["decode_loop"].file)),
             "generic fp32": _session(build_step_loop(step, spec)),
             "hand int8": _session(str(folder / manifest.graphs["decode_loop_int8"].file)),
             "generic int8": _session(_static(build_step_loop_int8(step, spec), [_feed(folder, manifest, 32)]))}
    rows = []
    for batch in batches:
        feed = _feed(folder, manifest, batch)
        steps = {k: min(len(s.run(None, feed)[0]), manifest.max_steps) for k, s in loops.items()}
        calls = {k: max(1, int(min_time / _once(s, feed))) for k, s in loops.items()}
        times = {k: [] for k in loops}
        for _ in range(repeats):  # interleaved, so that drift in the machine's speed hits every variant alike
            for k, s in loops.items():
                start = time.perf_counter()
                for _ in range(calls[k]):
                    s.run(None, feed)
                times[k].append((time.perf_counter() - start) / calls[k])
        for k in loops:
            rows.append((folder.name, batch, k, statistics.median(times[k]) * 1e6 / (batch * steps[k]), steps[k]))
    return rows


def _static(proto, feeds: list[dict]):
    """``proto`` with static int8 scales calibrated on ``feeds``, as export writes int8 loops."""
    from seq2seq_edge.export.static_int8 import calibrate, make_static

    return make_static(proto, calibrate(proto, feeds))


def _once(session, feed) -> float:
    start = time.perf_counter()
    session.run(None, feed)
    return max(time.perf_counter() - start, 1e-6)


def main(argv: list[str]) -> None:
    folders = [Path(a) for a in argv] or DEFAULT
    print("| bundle | batch | hand fp32 | generic fp32 | hand int8 | generic int8 | steps |")
    print("|---|---|---|---|---|---|---|")
    for folder in folders:
        rows = bench(folder)
        for batch in sorted({r[1] for r in rows}):
            us = {r[2]: r[3] for r in rows if r[1] == batch}
            steps = {r[4] for r in rows if r[1] == batch}
            print(f"| {folder.name} | {batch} | {us['hand fp32']:.1f} | {us['generic fp32']:.1f} | "
                  f"{us['hand int8']:.1f} | {us['generic int8']:.1f} | {'/'.join(map(str, sorted(steps)))} |")


if __name__ == "__main__":
    main(sys.argv[1:])
