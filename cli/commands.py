"""The `seq2seq-edge` command: ``main`` and a thin handler per subcommand over the Python API.

The flags are in parser.py, the `run` command in run.py. Heavy packages (tensorflow, tf2onnx) are
imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.strategies import DecodeOptions
from .parser import build_parser, pick, train_configs
from .run import run

__all__ = ["main"]

TENSORFLOW_COMMANDS = {"quickstart", "train", "export", "export-keras", "bench"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 error, 2 usage)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # texts given after options: `run BUNDLE --max-steps 4 "text"`
        if args.command != "run" or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.inputs += extra
    try:
        if args.command in TENSORFLOW_COMMANDS:
            from .quiet import import_tensorflow

            import_tensorflow()
        return HANDLERS[args.command](args)
    except KeyboardInterrupt as exc:  # Ctrl-C (or SIGTERM during score): one line, the shell's status for SIGINT
        print(f"error: {exc}" if str(exc) else "error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head -1`): stop quietly, as `yes` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except (Seq2SeqEdgeError, OSError) as exc:
        notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))
        print(f"error: {exc}{notes}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory; decode fewer rows at a time (--batch-size, shorter inputs)", file=sys.stderr)
        return 1
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise  # a bug of ours: its traceback is what a report needs
        # onnxruntime failing at run time (a graph that computes on shapes its interface did not declare, an
        # allocation it could not make): one line, as short as every other error
        print(f"error: onnxruntime failed while decoding: {one_line(str(exc))}; if the bundle was altered or "
              "built elsewhere, export it again", file=sys.stderr)
        return 1


def one_line(text: str, width: int = 300) -> str:
    """``text`` on one line, at most ``width`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _quickstart(args: argparse.Namespace) -> int:
    from .quickstart import quickstart

    quickstart(args.out, force=args.force, epochs=args.epochs, samples=args.samples)
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..training import train
    from ..training.config import ConfigError
    from ..training.distribute import Distribution

    model, config = train_configs(args)  # the task's recipe, or its quick preset, and the flags given
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
    from ..export import export_keras

    if args.autoencoder:
        result = _export_keras_autoencoder(args)
    else:
        if not (args.encoder and args.decoder):
            raise Seq2SeqEdgeError("pass --encoder and --decoder (or --autoencoder)")
        vocab = json.loads(Path(args.vocab).read_text(encoding="utf-8")) if args.vocab else {}
        result = export_keras(_load_keras(args.encoder), _load_keras(args.decoder), args.out, force=args.force,
                              max_steps=args.max_steps, first_input=args.first_input,
                              state_map=[e.split("+") for e in args.state_map.split(",")] if args.state_map else None,
                              zero_states=args.zero_states.split(",") if args.zero_states else None,
                              parity_sources=_parity_sources(args.parity_sources), modes=args.modes,
                              **{k: vocab.get(k) for k in ("source_tokens", "target_tokens", "start_token",
                                                           "end_token")})
    print(f"parity: {result.parity.summary()}")
    for note in result.notes:
        print(f"note: {note}")
    _print_modes(result)
    print(f"wrote {result.path}")
    return 0


def _export_keras_autoencoder(args: argparse.Namespace):
    from ..export import export_autoencoder

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
    return export_autoencoder(_load_keras(args.autoencoder), args.out, force=args.force, threshold=threshold,
                              normal=normal)


def _load_keras(path: str):
    import keras

    if not Path(path).is_file():
        raise Seq2SeqEdgeError(f"{path}: no such file")
    return keras.models.load_model(path)


def _parity_sources(path: str | None) -> list[str] | None:
    """--parity-sources: one source per line of a UTF-8 text file."""
    if not path:
        return None
    if not Path(path).is_file():
        raise Seq2SeqEdgeError(f"{path}: no such file (--parity-sources takes a text file, one source per line)")
    sources = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
    if not sources:
        raise Seq2SeqEdgeError(f"{path}: no sources in it (one per line)")
    return sources


def _print_modes(result) -> None:
    """Each decode mode's size (its encoder and decoder graphs), the default, and what the bundle can run."""
    if not result.mode_sizes:
        return
    from ..runtime.manifest import parse_manifest

    m = parse_manifest(json.loads((result.path / "manifest.json").read_text(encoding="utf-8")))
    total = sum(p.stat().st_size for p in result.path.iterdir())
    print(f"modes: {result.sizes_summary()}; default {m.default_mode!r}; strategies {', '.join(m.strategies)}; "
          f"bundle {total / 1e6:.1f} MB")


def _bench(args: argparse.Namespace) -> int:
    from ..bench import bench
    from ..bench.models import BUILTIN, NMT

    bench(args.model or [*BUILTIN, NMT], args.batch or [1, 32], threads=args.threads, budget_s=args.seconds)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..export.evaluate import evaluate, open_evaluation
    from .plots import check_plot_output, plot_anomalies
    from .report import metrics_table

    if args.plot:
        check_plot_output(args.plot, args.force)
    evaluation = open_evaluation(args.bundle)
    if args.plot and not evaluation.labelled_series:
        raise Seq2SeqEdgeError(f"{args.bundle}: --plot draws an autoencoder's evaluation on a labelled series "
                               "(signal, reconstruction, scores): tasks ecg and kdd135; this bundle's task is "
                               f"{evaluation.task!r}")
    metrics = evaluate(evaluation, args.beam_width)
    if args.plot:
        plot_anomalies(evaluation.model, evaluation.splits, Path(args.plot), args.force)
    print(json.dumps(metrics, indent=1) if args.json else metrics_table(metrics), end="\n" if args.json else "")
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return _check_floors(args.bundle, evaluation.model.manifest, metrics) if args.check else 0


def _check_floors(bundle: str, manifest, metrics: dict) -> int:
    """evaluate --check: 1 when a metric falls below a floor of the recipe the bundle's run followed."""
    from ..training.recipes import check_floors

    quality = (manifest.data or {}).get("quality")
    if not quality:
        raise Seq2SeqEdgeError(f"{bundle}: --check compares with the floors of a documented recipe, and this "
                               "bundle's run followed none (its run directory has no quality.json)")
    problems = check_floors(metrics, {k: tuple(v) for k, v in quality["floors"].items()})
    for line in problems:
        print(f"check failed: {line} (recipe {quality['recipe']}: {quality['command']})", file=sys.stderr)
    if not problems:
        print(f"check passed: {len(quality['floors'])} documented floors of recipe {quality['recipe']} hold",
              file=sys.stderr)
    return 1 if problems else 0


def _demo(args: argparse.Namespace) -> int:
    from ..serve.demo import serve_demo

    if not 0 <= args.port <= 65535:
        raise Seq2SeqEdgeError(f"--port must be from 0 to 65535, got {args.port}")
    serve_demo(args.bundle, args.port, args.ort)
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from ..serve.oip import serve
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise Seq2SeqEdgeError(f"serve needs {exc.name}: pip install 'seq2seq-edge[serve]'") from None

    def ready(port: int) -> None:
        print(f"serving {args.bundle} on http://{args.host}:{port}/v2 (Open Inference Protocol); Ctrl-C stops",
              file=sys.stderr, flush=True)

    if not 0 <= args.port <= 65535 or (args.engine == "ray" and args.port == 0):
        raise Seq2SeqEdgeError(f"--port must be from {1 if args.engine == 'ray' else 0} to 65535, got {args.port}")
    if args.engine != "ray" and (args.address or args.replicas != 2):
        raise Seq2SeqEdgeError("--replicas and --address are for --engine ray")
    options = dict(name=args.name, mode=args.mode, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                   max_queue=args.max_queue, threads=args.threads)
    if args.engine == "ray":
        from ..serve.ray_serve import serve_on_ray

        serve_on_ray(args.bundle, replicas=args.replicas, host=args.host, port=args.port, address=args.address,
                     ready=ready, **options)
    else:
        serve(args.bundle, host=args.host, port=args.port, ready=ready, **options)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a job as Ctrl-C does: what was scored is kept for --resume


def _score(args: argparse.Namespace) -> int:
    from ..scale import score_file
    from ..scale.local import print_progress

    if args.address and args.engine != "ray":
        raise Seq2SeqEdgeError("--address names a Ray cluster: pass it with --engine ray")
    progress = print_progress if sys.stderr.isatty() else None
    stop = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        summary = score_file(args.bundle, args.input, args.output, column=args.column, workers=args.workers,
                             batch_size=args.batch_size, options=pick(DecodeOptions, args), mode=args.mode,
                             max_steps=args.max_steps, force=args.force, progress=progress, engine=args.engine,
                             address=args.address, allow_batch_dependence=args.allow_batch_dependence,
                             resume=args.resume)
    finally:
        if stop is not None:
            signal.signal(signal.SIGTERM, stop)
        if progress:  # the progress line ends before the summary, or an error, is printed
            sys.stderr.write("\n")
    print(summary)
    return 0


HANDLERS = {"quickstart": _quickstart, "train": _train, "export-keras": _export_keras, "evaluate": _evaluate,
            "export": _export, "bench": _bench, "demo": _demo, "serve": _serve, "score": _score,
            "run": run}
