"""The `seq2seq-edge` command: thin wrappers over the Python API, flags mirroring the config fields.

Heavy packages (tensorflow, tf2onnx) are imported only by the sub-commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from seq2seq_edge.runtime.errors import Seq2SeqEdgeError

__all__ = ["main"]


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
        return args.func(args)
    except (Seq2SeqEdgeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    from seq2seq_edge import __version__

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
    p.add_argument("task", help="built-in task: dates or sine")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    _config_flags(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export a run directory to a verified ONNX bundle")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--parity-samples", type=int, default=256, help="held-out samples for the parity check")
    p.set_defaults(func=_export)

    p = sub.add_parser("run", help="decode with a bundle (numpy + onnxruntime only)")
    p.add_argument("bundle")
    p.add_argument("inputs", nargs="*", help="texts to convert (token bundles); none: read lines from stdin")
    p.add_argument("--input", help="feature bundles: a .npy (time, features) or (batch, time, features), or a .csv")
    p.add_argument("--output", help="feature bundles: write .npy or .csv here (default: CSV on stdout)")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.add_argument("--max-steps", type=int, default=None, help="decode at most this many steps")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.set_defaults(func=_run)
    return parser


def _config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ModelConfig / TrainConfig field, defaults from the dataclasses."""
    from seq2seq_edge.training.config import ModelConfig, TrainConfig

    for cls in (ModelConfig, TrainConfig):
        group = p.add_argument_group(cls.__name__)
        for f in fields(cls):
            group.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                               help=f"(default: {f.default})")


def _pick(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def _quickstart(args: argparse.Namespace) -> int:
    from seq2seq_edge.quickstart import quickstart

    quickstart(args.out, force=args.force, epochs=args.epochs, samples=args.samples)
    return 0


def _train(args: argparse.Namespace) -> int:
    from seq2seq_edge.training import ModelConfig, TrainConfig, train

    model, config = _pick(ModelConfig, args), _pick(TrainConfig, args)
    run = train(args.task, args.out, model, config, force=args.force, verbose=0 if args.quiet else None)
    print(f"wrote {run.path} (model.keras, config.json, history.json)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from seq2seq_edge.export import export_run

    result = export_run(args.run_dir, args.out, force=args.force, parity_samples=args.parity_samples)
    print(f"parity: {result.parity.summary()}")
    print(f"wrote {result.path} (encoder.onnx, decoder_step.onnx, manifest.json)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from seq2seq_edge.runtime import load

    from .io_files import read_features, write_features

    model = load(args.bundle, threads=args.threads)
    if model.manifest.io.source_length is not None:  # token bundle
        if args.input or args.output:
            raise Seq2SeqEdgeError("--input/--output are for feature bundles; pass texts as arguments or on stdin")
        texts = args.inputs or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        for result in model.generate_text(texts, args.max_steps):
            print(result)
        return 0
    if not args.input:
        raise Seq2SeqEdgeError("this bundle reads real-valued features: pass --input FILE.npy or FILE.csv")
    x, single = read_features(Path(args.input))
    y = model.generate(x, args.max_steps)  # (batch, steps, features)
    write_features(y[0] if single else y, Path(args.output) if args.output else None, force=args.force)
    return 0
