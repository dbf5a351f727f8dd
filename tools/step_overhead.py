"""How much our runtime's `step` mode costs over a plain onnxruntime loop on the same two graphs (issue 29).

    TF_CPP_MIN_LOG_LEVEL=3 python tools/step_overhead.py [--rounds 7] [--batches 1 32] [--units 256]

Exports the keras-io character model (one-hot source, LSTM, softmax; bench/models.py make_keras_io_models) once
with export_keras into a temporary directory, then, in this one process with one onnxruntime thread, alternates
the plain loop (bench/engines.py plain_onnx: the bundle's encoder.onnx and decoder_step.onnx, one session.run per
step, argmax in numpy) with ``model.generate(ids, mode="step")`` over the same inputs, round after round, and
prints the best round's us per generated token of each and their ratio. Both must give identical tokens.
--graph-ops also times decoder_step.onnx alone against copies without the ops export_keras's wrapper adds.

Measured (2 shared cores, CPU time, 2026-12-05): batch 1 72.2 vs 73.4 us/token (1.02x), batch 32 14.1 vs 14.2;
the wrapper's ops cost 5.9 us of the step graph's 48.3 at batch 1, 4.3 of them the negative-index handling
tf2onnx puts before the one-hot Gather.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def export(workdir: Path, units: int, modes=("step",)) -> tuple[Path, list[str]]:
    """The keras-io model exported with export_keras (step mode only) and 256 source strings of length 16."""
    from seq2seq_edge.bench.models import BUILTIN, KERAS_IO, make_keras_io_models, sample_sources
    from seq2seq_edge.export import export_keras
    from seq2seq_edge.runtime.vocab import Vocabulary

    encoder, decoder, source_tokens, target_tokens = make_keras_io_models(units)
    sources = sample_sources(Vocabulary(tuple(source_tokens), pad_id=None), 256,
                             length=BUILTIN[KERAS_IO].source_length)
    bundle = export_keras(encoder, decoder, workdir / "bundle", source_tokens=source_tokens,
                          target_tokens=target_tokens, start_token="\t", end_token="\n", max_steps=40,
                          parity_sources=sources[:16], modes=modes).path
    return bundle, sources


def timed(decode, data, clock=time.thread_time) -> tuple[float, int, list]:
    """One pass over ``data``: (seconds, generated tokens with each row's end step, outputs)."""
    tokens, outputs = 0, []
    started = clock()
    for ids, lengths in data:
        rows = decode(ids, lengths)
        outputs.extend(rows)
        tokens += sum(len(r) + 1 for r in rows)
    return clock() - started, tokens, outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--rows", type=int, default=64, help="sources decoded per round at each batch size")
    parser.add_argument("--all-modes", action="store_true", help="export every mode, as the bench does")
    parser.add_argument("--workdir", type=Path, help="export into this directory and keep the bundle (and "
                        "sources.json); a later run given the same directory times that bundle again")
    parser.add_argument("--graph-ops", action="store_true", help="also time the step graph without the ops "
                        "export_keras's wrapper adds (one-hot by Gather, log of the softmax)")
    parser.add_argument("--old", type=Path, help="also time another copy of the package, for a before/after in "
                        "one process: a directory PKG made with `git archive OLD | tar -x -C PKG`, then imported as "
                        "the module 'PKG's name' from its parent")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu (default): this thread's CPU time, which other processes on a shared machine "
                        "disturb far less than wall-clock time (one onnxruntime thread runs in the caller's)")
    args = parser.parse_args(argv)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    from seq2seq_edge.bench import engines
    from seq2seq_edge.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        if (workdir / "bundle").is_dir():
            bundle, sources = workdir / "bundle", json.loads((workdir / "sources.json").read_text())
        else:
            bundle, sources = export(workdir, args.units, None if args.all_modes else ("step",))
            (workdir / "sources.json").write_text(json.dumps(sources))
        model = load(bundle, threads=1)
        tv = model.target_vocab
        plain = engines.plain_onnx(bundle, tv.start_id, tv.end_id, model.max_steps, 1)
        ours = engines.runtime_mode(model, "step")
        engines_timed = [("plain", plain), ("ours", ours)]
        if args.old:
            import importlib

            sys.path.insert(0, str(args.old.resolve().parent))
            old = importlib.import_module(args.old.name + ".runtime").load(bundle, threads=1)
            engines_timed.append(("old", engines.runtime_mode(old, "step")))
        print(f"keras-io LSTM {args.units}, one thread, best of {args.rounds} alternating rounds ({args.clock} time), "
              f"{args.rows} sources per round")
        extra = f" {'--old us/token':>14} | {'ratio':>5} |" if args.old else ""
        print(f"| {'batch':>5} | {'plain loop us/token':>19} | {'runtime step us/token':>21} | {'ratio':>5} |"
              f"{extra} {'tokens/row':>10} |")
        print(f"|{'-' * 7}|{'-' * 21}|{'-' * 23}|{'-' * 7}|" + ("-" * 16 + "|" + "-" * 7 + "|" if args.old else "")
              + f"{'-' * 12}|")
        for batch in args.batches:
            rows = sources[: max(args.rows, batch)]
            data = [model.source_vocab.encode_batch(rows[i:i + batch]) for i in range(0, len(rows) - batch + 1, batch)]
            times: dict[str, list[float]] = {name: [] for name, _ in engines_timed}
            results = {}
            for name, decode in engines_timed:
                timed(decode, data[:2])  # warm-up
            for _ in range(args.rounds):
                for name, decode in engines_timed:
                    seconds, tokens, results[name] = timed(decode, data, clock)
                    times[name].append(seconds * 1e6 / tokens)
            same = all(np.array_equal(a, b) for name in results for a, b in zip(results["plain"], results[name]))
            if not same:
                sys.exit(f"batch {batch}: the runtime's tokens differ from the plain loop's")
            p, o = min(times["plain"]), min(times["ours"])
            extra = f" {min(times['old']):14.1f} | {min(times['old']) / p:5.2f} |" \
                if args.old else ""
            print(f"| {batch:5} | {p:19.1f} | {o:21.1f} | {o / p:5.2f} |{extra} {tokens / (len(data) * batch):10.1f} |",
                  flush=True)
        if args.graph_ops:
            graph_ops(bundle, model.manifest, args.batches, args.rounds, clock)


def _variants(path: Path, io) -> dict[str, bytes]:
    """The step graph as written, and without what export_keras's wrapper adds, step by step: the ops that
    turn the ids into Gather indices (negative-index handling), the Max before the Log, the Log (the softmax's
    probabilities come out), and the one-hot Gather itself (a float one-hot input: the user's own graph)."""
    import onnx
    from onnx import TensorProto, helper

    base = onnx.load(str(path))
    producer = {out: n for n in base.graph.node for out in n.output}
    consumers = {}
    for n in base.graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    gather = next(n for n in base.graph.node if n.op_type == "Gather" and step_input_feeds(n.input[1], producer,
                                                                                         io.step_input))
    index_ops = {id(n) for n in chain_to(gather.input[1], producer, io.step_input)}
    log = producer[io.step_output]
    highest = producer[log.input[0]]
    assert log.op_type == "Log" and highest.op_type == "Max", (log.op_type, highest.op_type)
    probs = highest.input[0]
    table = next(i for i in base.graph.initializer if i.name == gather.input[0])

    def build(drop_index=False, drop_max=False, drop_log=False, one_hot_in=False) -> bytes:
        model = onnx.ModelProto()
        model.CopyFrom(base)
        graph, nodes = model.graph, []
        for n in base.graph.node:
            if (drop_index or one_hot_in) and id(n) in index_ops or (drop_max or drop_log) and n is highest \
                    or drop_log and n is log or one_hot_in and n is gather:
                continue
            n = onnx.NodeProto.FromString(n.SerializeToString())
            n.input[:] = [io.step_input if (drop_index and name == gather.input[1]) else
                          "one_hot" if (one_hot_in and name == gather.output[0]) else
                          probs if (drop_max and name == highest.output[0]) else name for name in n.input]
            if drop_log:
                n.output[:] = [io.step_output if name == probs else name for name in n.output]
            nodes.append(n)
        del graph.node[:]
        graph.node.extend(nodes)
        if one_hot_in:
            i = next(k for k, v in enumerate(graph.input) if v.name == io.step_input)
            graph.input[i].CopyFrom(helper.make_tensor_value_info("one_hot", TensorProto.FLOAT,
                                                                  ["batch", 1, table.dims[0]]))
        return model.SerializeToString()

    return {"as exported": build(), "ids straight into the Gather": build(drop_index=True),
            "log without Max(p, 1e-30)": build(drop_max=True), "softmax out (no Max, no Log)": build(drop_log=True),
            "user's graph: one-hot in, softmax out": build(drop_log=True, one_hot_in=True)}


def step_input_feeds(name: str, producer: dict, step_input: str) -> bool:
    """Whether tensor ``name`` is computed from ``step_input``."""
    return bool(chain_to(name, producer, step_input)) or name == step_input


def chain_to(name: str, producer: dict, step_input: str) -> list:
    """The nodes between ``step_input`` and tensor ``name`` (those that depend on it)."""
    found, stack, seen = [], [name], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if any(i == step_input or step_input_feeds(i, producer, step_input) for i in node.input):
            found.append(node)
            stack.extend(node.input)
    return found


def graph_ops(bundle: Path, manifest, batches: list[int], rounds: int, clock) -> None:
    """us per decoder_step call of each variant (one thread, best of ``rounds``), checked to give the same
    state and the same argmax as the graph as exported."""
    import onnxruntime as ort

    io = manifest.io
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = {k: ort.InferenceSession(v, options, providers=["CPUExecutionProvider"])
                for k, v in _variants(bundle / "decoder_step.onnx", io).items()}
    names = [io.step_output] + [s.output for s in manifest.state]
    width = len(manifest.target.vocabulary)
    rng = np.random.default_rng(0)
    print("\ndecoder_step.onnx alone, us per call (one thread, best of", rounds, "rounds of 300 calls)")
    print(f"| {'graph':40} | " + " | ".join(f"{f'batch {b}':14}" for b in batches) + " |")
    rows = {k: [] for k in sessions}
    for batch in batches:
        state = {s.name: rng.standard_normal((batch, s.size)).astype(np.float32) for s in manifest.state}
        ids = rng.integers(0, width, (batch, 1)).astype(np.int32)
        one_hot = np.eye(width, dtype=np.float32)[ids]  # (batch, 1, width)
        feeds = {k: {**state, **({"one_hot": one_hot} if k.startswith("user") else {io.step_input: ids})}
                 for k in sessions}
        first = sessions["as exported"].run(names, feeds["as exported"])
        best = {}
        for k, session in sessions.items():
            out = session.run(names, feeds[k])
            assert all(np.array_equal(a, b) for a, b in zip(out[1:], first[1:])), k
            assert np.array_equal(out[0].argmax(1), first[0].argmax(1)), k
            best[k] = float("inf")
        for _ in range(rounds):
            for k, session in sessions.items():
                started = clock()
                for _ in range(300):
                    session.run(names, feeds[k])
                best[k] = min(best[k], (clock() - started) / 300 * 1e6)
        for k in sessions:
            rows[k].append(f"{best[k]:6.1f} ({best[k] - best['as exported']:+5.1f})")
    for k, cells in rows.items():
        print(f"| {k:40} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
