"""How much our runtime's `step` mode costs over a plain onnxruntime loop on the same two graphs (issue 29).

    TF_CPP_MIN_LOG_LEVEL=3 python tools/step_overhead.py [--rounds 7] [--batches 1 32] [--units 256]

Exports the keras-io character model (one-hot source, LSTM, softmax; bench/models.py make_keras_io_models) once
with export_keras into a temporary directory, then, in this one process with one onnxruntime thread, alternates
the plain loop (bench/engines.py plain_onnx: the bundle's encoder.onnx and decoder_step.onnx, one session.run per
step, argmax in numpy) with ``model.generate(ids, mode="step")`` over the same inputs, round after round, and
prints the best round's us per generated token of each and their ratio. Both must give identical tokens.
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
    parser.add_argument("--bundle", type=Path, help="time this bundle (written by export() here, with its "
                        "sources.json) instead of exporting one")
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
        if args.bundle:
            bundle, sources = args.bundle, json.loads((args.bundle.parent / "sources.json").read_text())
        else:
            bundle, sources = export(Path(tmp), args.units, None if args.all_modes else ("step",))
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


if __name__ == "__main__":
    main()
