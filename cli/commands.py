"""The `seq2seq-edge` command: thin wrappers over the Python API, flags mirroring the config fields.

Heavy packages (tensorflow, tf2onnx) are imported only by the sub-commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.strategies import DecodeOptions

__all__ = ["main"]

MODES_HELP = ("comma-separated decode modes to write (step, fused, fused-int8; default: all that can be built); "
              "without step the bundle decodes greedily only, and is smaller")
TENSORFLOW_COMMANDS = {"quickstart", "train", "export", "export-keras", "bench"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 error, 2 usage)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # texts given after options: `run BUNDLE --max-steps 4 "text"`
        if args.command != "run" or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.inputs += extra
    try:
        if args.command in TENSORFLOW_COMMANDS:
            from .quiet import import_tensorflow

            import_tensorflow()
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`... | head -1`): stop quietly, as `yes` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except (Seq2SeqEdgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="seq2seq-edge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"seq2seq-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quickstart", help="train, export and run a small `dates` model")
    p.add_argument("--out", default="quickstart-out", help="directory for run/ and bundle/ (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--samples", type=int, default=20000)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("train", help="train a built-in task into a run directory")
    p.add_argument("task", help="built-in task: dates, sine, g2p, ecg or kdd135")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--family", choices=("seq2seq", "autoencoder"), default=None,
                   help="model family (default: the task's own: seq2seq for dates, sine and g2p, autoencoder "
                        "for ecg and kdd135)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--quick", action="store_true",
                   help=f"the task's small preset, minutes on two cores, for tests and demos: {_show_presets()} "
                        "(flags given win)")
    p.add_argument("--distribute", choices=("mirrored", "multi-worker"),
                   help="train with tf.distribute: mirrored (one replica per local device: the GPUs, or "
                        "--cpu-devices) or multi-worker (one replica per process; the cluster from TF_CONFIG or "
                        "--workers); each global batch is split among the replicas, so the steps are those of one "
                        "process")
    p.add_argument("--cpu-devices", type=int, metavar="N",
                   help="mirrored, without GPUs: split the CPU into N logical devices (shows mirrored training "
                        "working; no speed-up)")
    p.add_argument("--workers", metavar="HOST:PORT,...",
                   help="multi-worker: every worker's address, the same list in each worker's command")
    p.add_argument("--worker-index", type=int, metavar="I",
                   help="multi-worker with --workers: this process's place in the list (0 is the chief, which "
                        "writes --out)")
    _config_flags(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("export-keras", help="export your own Keras models (.keras files) to a verified bundle")
    p.add_argument("--encoder", help="encoder_model .keras (source -> states)")
    p.add_argument("--decoder", help="decoder_model .keras ([step input] + states -> [output] + states)")
    p.add_argument("--autoencoder", help="a RepeatVector sequence autoencoder .keras, instead of the pair")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--vocab", help="JSON with source_tokens, target_tokens, start_token, end_token")
    p.add_argument("--max-steps", type=int, help="decode cap (required for encoder/decoder pairs)")
    p.add_argument("--state-map", help="comma-separated decoder state input names fed by the encoder's outputs")
    p.add_argument("--parity-sources", metavar="FILE",
                   help="a UTF-8 text file, one source per line, to check parity on (default: seeded random "
                        "sequences that export draws itself)")
    p.add_argument("--first-input", choices=("zeros", "last_source_step"), default="zeros",
                   help="real-valued decoders: the first decoder input (default: %(default)s)")
    p.add_argument("--threshold", help="autoencoders: the detect threshold, a number or a rule applied to "
                   "--normal windows: quantile:Q or sigma:K")
    p.add_argument("--normal", help="autoencoders: .npy windows (n, window, features) known to be normal, to "
                   "calibrate a threshold rule on (and check parity)")
    p.add_argument("--modes", help=MODES_HELP)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_export_keras)

    p = sub.add_parser("evaluate", help="score a built-in task's bundle on its held-out test split")
    p.add_argument("bundle")
    p.add_argument("--beam-width", type=int, default=5, help="g2p: the beam searched beside greedy (default: 5)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a metric falls below the floor that the bundle's documented recipe records "
                        "(the run directory's quality.json, carried into the manifest at export)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of tables")
    p.add_argument("--plot", metavar="FILE.png",
                   help="autoencoder bundles of a labelled series (ecg, kdd135): draw the test signal, its "
                        "reconstruction, the error against the threshold and the flagged windows (needs the [plot] "
                        "extra)")
    p.add_argument("--force", action="store_true", help="replace --plot's file if it exists")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export", help="export a run directory to a verified ONNX bundle")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--parity-samples", type=int, default=256, help="held-out samples for the parity check")
    p.add_argument("--modes", help=MODES_HELP)
    p.add_argument("--threshold", default="quantile:0.995",
                   help="autoencoders: the rule that sets detect's thresholds from the task's validation "
                        "windows: quantile:Q (0.5-1) or sigma:K (mean + K standard deviations); "
                        "default: %(default)s")
    p.set_defaults(func=_export)

    p = sub.add_parser("bench", help="greedy decoding speed: Keras, LiteRT, plain tf2onnx and our runtime")
    p.add_argument("--model", action="append", default=None,
                   help="a token run directory, or a built-in: char-lstm-1x256, char-lstm-2x256, char-gru-1x256, "
                        "char-lstm-1x256-luong (Luong attention over 20-character sources), keras-io-lstm-256 (the "
                        "keras-io example's own one-hot/softmax models, exported with export-keras) (repeatable; "
                        "default: all five built-ins)")
    p.add_argument("--batch", action="append", type=int, default=None, help="batch sizes (default: 1 and 32)")
    p.add_argument("--threads", type=int, default=1, help="threads for every engine (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per row (default: %(default)s)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("demo", help="serve a web page that decodes with the bundle in the browser (onnxruntime-web)")
    p.add_argument("bundle")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default: %(default)s; 0: any free one)")
    p.add_argument("--ort", metavar="DIR", help="onnxruntime-web's dist folder (default: bindings/web/node_modules/"
                   "onnxruntime-web/dist of this checkout, after `npm ci` in bindings/web)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("score", help="decode every row of a file with a bundle, on several processes "
                       "(numpy + onnxruntime only)")
    p.add_argument("bundle")
    p.add_argument("--input", required=True, help="sources: .txt (one per line), .csv or .jsonl (with --column), "
                   ".parquet (needs pyarrow); autoencoder bundles: windows in .npy (n, window, features) or a "
                   "Parquet list column")
    p.add_argument("--output", required=True, help="results, one row per input row: .jsonl or .parquet")
    p.add_argument("--column", default="source", help="the sources' column in CSV, JSON Lines or Parquet "
                   "(default: %(default)s)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine; ray: Ray Data actors, on a local Ray or the "
                        "cluster at --address (needs the [scale] extra) (default: %(default)s)")
    p.add_argument("--address", help="ray: the cluster to join (default: start a local Ray with --workers CPUs)")
    p.add_argument("--workers", type=int, default=1, help="processes (or Ray actors), each with the bundle loaded "
                   "once and one onnxruntime thread (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.add_argument("--max-steps", type=int, default=None, help="decode at most this many steps")
    p.add_argument("--mode", default=None, help="decode mode (default: the bundle's)")
    _dataclass_flags(p.add_argument_group("decoding: DecodeOptions"), DecodeOptions)
    p.set_defaults(func=_score)

    p = sub.add_parser("run", help="decode with a bundle (numpy + onnxruntime only)")
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="*", help="texts to convert (token bundles); none: read lines from stdin")
    p.add_argument("--input", help="feature bundles: a .npy (time, features) or (batch, time, features), or a .csv")
    p.add_argument("--output", help="feature bundles: write .npy or .csv here (default: CSV on stdout)")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.add_argument("--max-steps", type=int, default=None, help="decode at most this many steps")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--mode", default=None, help="decode mode (step, fused, fused-int8; default: the bundle's)")
    p.add_argument("--scores", action="store_true", help="token bundles: print each output's log-probability")
    p.add_argument("--show-attention", metavar="TEXT",
                   help="attention bundles: decode TEXT and print its alignment (percent of each output token's "
                        "attention on each source token)")
    p.add_argument("--plot", metavar="FILE.png", help="with --show-attention: also draw the alignment matrix "
                   "(needs the [plot] extra: matplotlib)")
    p.add_argument("--per-step", action="store_true",
                   help="autoencoder bundles: score and flag every time step (window,step,score,anomalous)")
    _dataclass_flags(p.add_argument_group("decoding (token bundles): DecodeOptions"), DecodeOptions)
    p.set_defaults(func=_run)
    return parser


def _config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per field of ModelConfig, AutoencoderConfig and TrainConfig (tuples as 32,16)."""
    from ..training.config import AutoencoderConfig, ModelConfig, TrainConfig

    autoencoder_defaults = {f.name: f.default for f in fields(AutoencoderConfig)}
    seen: set[str] = set()
    for cls in (ModelConfig, AutoencoderConfig, TrainConfig):
        notes = {name: f"autoencoders: {_show(value)}" for name, value in autoencoder_defaults.items()
                 if cls is ModelConfig}
        _dataclass_flags(p.add_argument_group(cls.__name__), cls, seen, notes)


def _dataclass_flags(group, cls: type, seen: set[str] | None = None, notes: dict[str, str] | None = None) -> None:
    """One flag per field of ``cls`` (values kept as text and parsed by ``_pick``); fields in ``seen`` are skipped."""
    seen = set() if seen is None else seen
    for f in fields(cls):
        if f.name in seen:
            continue
        seen.add(f.name)
        text = f"(default: {_show(f.default)}" + (f"; {notes[f.name]}" if notes and f.name in notes else "") + ")"
        text = f"{f.metadata['help']} {text}" if "help" in f.metadata else text
        flag = f"--{f.name.replace('_', '-')}"
        if _field_type(cls, f.name) is bool:  # a switch: present means true
            group.add_argument(flag, action="store_const", const="true", default=None, help=text)
            continue
        group.add_argument(flag, default=None, metavar=_field_type(cls, f.name).__name__.upper(), help=text)


def _field_type(cls: type, name: str) -> type:
    """The type a field's flag parses to: int for ``int | None``, tuple for ``tuple[int, ...]``."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return args[0]
    return typing.get_origin(hint) or hint


def _show_presets() -> str:
    from ..training.recipes import QUICK

    return "; ".join(f"{task}: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in preset.items())
                     for task, preset in QUICK.items())


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _pick(cls: type, args: argparse.Namespace):
    """Build ``cls`` from the flags given; fields not given keep the dataclass defaults."""
    values = {}
    for f in fields(cls):
        text = getattr(args, f.name, None)
        if text is None:
            continue
        kind = _field_type(cls, f.name)
        if kind is bool:
            values[f.name] = text == "true"
            continue
        try:
            values[f.name] = tuple(int(v) for v in text.split(",")) if kind is tuple else kind(text)
        except ValueError as exc:
            raise Seq2SeqEdgeError(f"--{f.name.replace('_', '-')}: {text!r} is not a valid {kind.__name__}") from exc
    return cls(**values)


def _quickstart(args: argparse.Namespace) -> int:
    from .quickstart import quickstart

    quickstart(args.out, force=args.force, epochs=args.epochs, samples=args.samples)
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..training import ModelConfig, TrainConfig, train
    from ..training.config import AutoencoderConfig, ConfigError
    from ..training.distribute import Distribution
    from ..training.recipes import QUICK
    from ..training.tasks import FAMILIES

    if args.quick:
        for name, value in QUICK.get(args.task, QUICK["dates"]).items():
            if getattr(args, name, None) is None:
                setattr(args, name, value)
    family = args.family or FAMILIES.get(args.task, ("seq2seq",))[0]
    model = _pick(AutoencoderConfig if family == "autoencoder" else ModelConfig, args)
    config = _pick(TrainConfig, args)
    distribute = None
    if args.distribute or args.cpu_devices is not None or args.workers or args.worker_index is not None:
        if not args.distribute:
            raise ConfigError("--cpu-devices, --workers and --worker-index go with --distribute")
        workers = tuple(w.strip() for w in args.workers.split(",")) if args.workers else ()
        distribute = Distribution(args.distribute, args.cpu_devices, workers, args.worker_index)
    run = train(args.task, args.out, model, config, force=args.force, verbose=0 if args.quiet else None,
                distribute=distribute)
    if run is None:
        print("done: this worker's part of the training; the chief wrote the run directory")
    else:
        print(f"wrote {run.path} (model.keras, config.json, history.json)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..export import export_run
    from ..runtime import load

    result = export_run(args.run_dir, args.out, force=args.force, parity_samples=args.parity_samples,
                        threshold=args.threshold, modes=args.modes)
    print(f"parity: {result.parity.summary()}")
    _print_modes(result)
    anomaly = getattr(load(result.path).manifest, "anomaly", None)
    if anomaly:
        print(f"threshold: {anomaly['threshold']:.6g} per window, {anomaly['step_threshold']:.6g} per step "
              f"({anomaly['rule']} of {anomaly['calibration_windows']} {anomaly['calibration']})")
    print(f"wrote {result.path} ({', '.join(sorted(p.name for p in result.path.iterdir()))})")
    return 0


def _export_keras(args: argparse.Namespace) -> int:
    import json

    import keras

    from ..export import export_autoencoder, export_keras

    def load_model(path: str):
        if not Path(path).is_file():
            raise Seq2SeqEdgeError(f"{path}: no such file")
        return keras.models.load_model(path)

    if args.autoencoder:
        if args.encoder or args.decoder:
            raise Seq2SeqEdgeError("pass either --autoencoder or --encoder with --decoder, not both")
        if args.modes:
            raise Seq2SeqEdgeError("--modes applies to encoder/decoder pairs; an autoencoder bundle has no decode "
                                   "modes")
        threshold = args.threshold
        try:
            threshold = None if threshold is None else float(threshold)
        except ValueError:
            pass  # a rule: quantile:Q or sigma:K
        normal = None
        if args.normal:
            from .io_files import read_features

            normal, _ = read_features(Path(args.normal))
        result = export_autoencoder(load_model(args.autoencoder), args.out, force=args.force,
                                    threshold=threshold, normal=normal)
    else:
        if not (args.encoder and args.decoder):
            raise Seq2SeqEdgeError("pass --encoder and --decoder (or --autoencoder)")
        vocab = json.loads(Path(args.vocab).read_text(encoding="utf-8")) if args.vocab else {}
        sources = None
        if args.parity_sources:
            if not Path(args.parity_sources).is_file():
                raise Seq2SeqEdgeError(f"{args.parity_sources}: no such file (--parity-sources takes a text file, "
                                       "one source per line)")
            sources = [line for line in Path(args.parity_sources).read_text(encoding="utf-8").splitlines() if line]
            if not sources:
                raise Seq2SeqEdgeError(f"{args.parity_sources}: no sources in it (one per line)")
        result = export_keras(load_model(args.encoder), load_model(args.decoder), args.out, force=args.force,
                              max_steps=args.max_steps, first_input=args.first_input,
                              state_map=args.state_map.split(",") if args.state_map else None,
                              parity_sources=sources, modes=args.modes,
                              **{k: vocab.get(k) for k in ("source_tokens", "target_tokens", "start_token",
                                                           "end_token")})
    print(f"parity: {result.parity.summary()}")
    for note in result.notes:
        print(f"note: {note}")
    _print_modes(result)
    print(f"wrote {result.path}")
    return 0


def _print_modes(result) -> None:
    """Each decode mode's size (its encoder and decoder graphs), the default, and what the bundle can run."""
    if not result.mode_sizes:
        return
    import json

    from ..runtime.manifest import parse_manifest

    m = parse_manifest(json.loads((result.path / "manifest.json").read_text(encoding="utf-8")))
    total = sum(p.stat().st_size for p in result.path.iterdir())
    print(f"modes: {result.sizes_summary()}; default {m.default_mode!r}; strategies {', '.join(m.strategies)}; "
          f"bundle {total / 1e6:.1f} MB")


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench
    from .bench.models import BUILTIN

    bench(args.model or list(BUILTIN), args.batch or [1, 32], threads=args.threads, budget_s=args.seconds)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate import evaluate_bundle
    from .plots import check_plot_output
    from .report import metrics_table

    from ..runtime import load
    from ..training.recipes import check_floors

    if args.plot:
        check_plot_output(args.plot, args.force)
    metrics = evaluate_bundle(args.bundle, beam_width=args.beam_width, plot=args.plot, force=args.force)
    print(json.dumps(metrics, indent=1) if args.json else metrics_table(metrics), end="\n" if args.json else "")
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    if not args.check:
        return 0
    quality = (load(args.bundle).manifest.data or {}).get("quality")
    if not quality:
        raise Seq2SeqEdgeError(f"{args.bundle}: --check compares with the floors of a documented recipe, and this "
                               "bundle's run followed none (its run directory has no quality.json)")
    problems = check_floors(metrics, {k: tuple(v) for k, v in quality["floors"].items()})
    for line in problems:
        print(f"check failed: {line} (recipe {quality['recipe']}: {quality['command']})", file=sys.stderr)
    if not problems:
        print(f"check passed: {len(quality['floors'])} documented floors of recipe {quality['recipe']} hold",
              file=sys.stderr)
    return 1 if problems else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import serve_demo

    if not 0 <= args.port <= 65535:
        raise Seq2SeqEdgeError(f"--port must be from 0 to 65535, got {args.port}")
    serve_demo(args.bundle, args.port, args.ort)
    return 0


def _score(args: argparse.Namespace) -> int:
    from ..scale import score_file
    from ..scale.local import print_progress

    if args.address and args.engine != "ray":
        raise Seq2SeqEdgeError("--address names a Ray cluster: pass it with --engine ray")
    progress = print_progress if sys.stderr.isatty() else None
    try:
        summary = score_file(args.bundle, args.input, args.output, column=args.column, workers=args.workers,
                             batch_size=args.batch_size, options=_pick(DecodeOptions, args), mode=args.mode,
                             max_steps=args.max_steps, force=args.force, progress=progress, engine=args.engine,
                             address=args.address)
    finally:
        if progress:  # the progress line ends before the summary, or an error, is printed
            sys.stderr.write("\n")
    print(summary)
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..runtime import AutoencoderModel, load
    from ..runtime.manifest import TokenSpec
    from .io_files import read_features, write_features

    model = load(args.bundle, threads=args.threads)
    if isinstance(model, AutoencoderModel):
        return _run_autoencoder(model, args)
    if args.plot and not args.show_attention:
        raise Seq2SeqEdgeError("--plot draws the alignment of --show-attention TEXT; pass both")
    if isinstance(model.manifest.source, TokenSpec):
        if args.input or args.output:
            raise Seq2SeqEdgeError("--input/--output are for feature bundles; pass texts as arguments or on stdin")
        if args.show_attention is not None:
            return _show_attention(model, args)
        return _run_texts(model, args)
    if not args.input:
        raise Seq2SeqEdgeError("this bundle reads real-valued features: pass --input FILE.npy or FILE.csv")
    x, single = read_features(Path(args.input))
    rows = model.generate(x, args.max_steps, mode=args.mode)  # one (steps, features) array per row
    shape = (0, args.max_steps or model.max_steps, model.manifest.target.features)
    y = np.stack(rows) if rows else np.zeros(shape, np.float32)  # (batch, steps, features)
    write_features(y[0] if single else y, Path(args.output) if args.output else None, force=args.force)
    return 0


def _show_attention(model, args: argparse.Namespace) -> int:
    """Decode one text with the chosen strategy and print (and with --plot draw) its alignment."""
    if model.manifest.io.attention is None:
        raise Seq2SeqEdgeError(f"{args.bundle} has no attention: --show-attention needs a bundle trained with "
                               "--attention luong or bahdanau")
    text = args.show_attention
    source, target = model.source_vocab, model.target_vocab
    ids, lengths = source.encode_batch([text])
    found = model.decode(ids, _pick(DecodeOptions, args), lengths=lengths, max_steps=args.max_steps,
                         return_attention=True)[0]
    if not found:
        raise Seq2SeqEdgeError(f"no hypothesis was decoded for {text!r}")
    best = found[0]
    columns = [source.tokens[i] for i in ids[0, : lengths[0]]]
    weights = best.attention  # (output steps, source length), in the order the encoder read the source
    if source.reverse:  # show the source as written
        columns, weights = columns[::-1], weights[:, ::-1]
    rows = [target.tokens[int(t)] for t in best.tokens] + (["</s>"] if best.ended else [])
    print(f"{text} -> {target.decode(best.tokens)}")
    label = max(len(r) for r in rows)
    width = max(3, max(len(c) for c in columns))
    print(" " * label + " " + " ".join(c.rjust(width) for c in columns))
    for row, values in zip(rows, weights):
        print(row.rjust(label) + " " + " ".join(f"{round(100 * v):>{width}d}" for v in values))
    if args.plot:
        from .plots import plot_alignment

        plot_alignment(columns, rows, weights, Path(args.plot), args.force)
        print(f"wrote {args.plot}")
    return 0


STDIN_BLOCK = 4096  # lines decoded at a time from stdin: memory stays bounded, output starts early


def _run_texts(model, args: argparse.Namespace) -> int:
    """Texts from the arguments, or stdin read block by block; one output line per input line."""
    options = _pick(DecodeOptions, args)
    scored = options.n_best > 1 or args.scores
    for block in ([args.inputs] if args.inputs else _stdin_blocks(STDIN_BLOCK)):
        if scored:
            for row in model.decode_text(block, options, args.max_steps):
                for text, log_prob, score in row:
                    print("\t".join([text, f"{log_prob:.6g}"] + ([f"{score:.6g}"] if options.n_best > 1 else [])))
        else:
            for result in model.generate_text(block, args.max_steps, mode=args.mode, options=options):
                print(result)
        sys.stdout.flush()
    return 0


def _stdin_blocks(size: int) -> Iterator[list[str]]:
    """Non-blank stdin lines, without their line ending (\\n or \\r\\n), in lists of at most ``size``."""
    from ..runtime.errors import InputError

    raw = getattr(sys.stdin, "buffer", None)
    block: list[str] = []
    for number, line in enumerate(raw if raw is not None else sys.stdin, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"stdin line {number} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                                 "convert the input to UTF-8") from None
        line = line.removesuffix("\n").removesuffix("\r")
        if line.strip():
            block.append(line)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _run_autoencoder(model, args: argparse.Namespace) -> int:
    """Print each window's (or, with --per-step, each time step's) score and whether it is flagged;
    --output writes the reconstructions."""
    import numpy as np

    from .io_files import read_features, write_features

    if not args.input:
        raise Seq2SeqEdgeError("this is an autoencoder bundle: pass --input FILE.npy (windows) or FILE.csv (one window)")
    x, single = read_features(Path(args.input))
    if args.per_step:
        steps = model.score(x, per_step=True)
        flags = (steps > model.step_threshold if model.step_threshold is not None
                 else np.full(steps.shape, None))
        print("window,step,score,anomalous")
        for (i, t), score in np.ndenumerate(steps):
            print(f"{i},{t},{score:.6g},{'' if flags[i, t] is None else int(flags[i, t])}")
    else:
        scores = model.score(x)
        flags = model.detect(x) if model.threshold is not None else [None] * len(scores)
        print("window,score,anomalous")
        for i, (score, flag) in enumerate(zip(scores, flags)):
            print(f"{i},{score:.6g},{'' if flag is None else int(flag)}")
    if args.output:
        y = model.reconstruct(x)
        write_features(y[0] if single else y, Path(args.output), force=args.force)
    return 0
