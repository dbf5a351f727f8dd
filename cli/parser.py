"""The `seq2seq-edge` command line's arguments: one function per subcommand's flags.

Flags mirror the fields of the configuration dataclasses (ModelConfig, AutoencoderConfig, TrainConfig,
DecodeOptions): their values are kept as text and turned into the dataclass by ``pick``.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import fields

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.strategies import DecodeOptions

__all__ = ["build_parser", "pick", "DESCRIPTION"]

DESCRIPTION = "The `seq2seq-edge` command: thin wrappers over the Python API, flags mirroring the config fields."
MODES_HELP = ("comma-separated decode modes to write (step, fused, fused-int8; default: all that can be built); "
              "without step the bundle decodes greedily only, and is smaller")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; ``args.command`` names the one chosen."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="seq2seq-edge", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"seq2seq-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_flags in (_quickstart_flags, _train_flags, _export_keras_flags, _evaluate_flags, _export_flags,
                      _bench_flags, _demo_flags, _serve_flags, _score_flags, _run_flags):  # --help's order
        add_flags(sub)
    return parser


def _quickstart_flags(sub) -> None:
    p = sub.add_parser("quickstart", help="train, export and run a small `dates` model")
    p.add_argument("--out", default="quickstart-out", help="directory for run/ and bundle/ (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--samples", type=int, default=20000)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _train_flags(sub) -> None:
    p = sub.add_parser("train", help="train a built-in task into a run directory")
    p.add_argument("task", help="built-in task: dates, sine, g2p, ecg or kdd135. With no other flags it trains the "
                   f"task's documented recipe (training/recipes.py), flags given replacing its fields: "
                   f"{_show_recipes(quick=False)}")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--family", choices=("seq2seq", "autoencoder"), default=None,
                   help="model family (default: the task's own: seq2seq for dates, sine and g2p, autoencoder "
                        "for ecg and kdd135)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--quick", action="store_true",
                   help="the task's small preset instead of its recipe, minutes on two cores, for tests and demos: "
                        f"{_show_recipes(quick=True)} (flags given win)")
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


def _first_input(text: str):
    """--first-input: 'zeros', 'last_source_step', or source:I[,J...] (export_keras's {"source_features": [...]})."""
    if text in ("zeros", "last_source_step"):
        return text
    indices = text.removeprefix("source:").split(",") if text.startswith("source:") else None
    if not indices or not all(i.strip().isdigit() for i in indices):
        raise argparse.ArgumentTypeError(f"expected zeros, last_source_step or source:I[,J...] (source feature "
                                         f"indices), got {text!r}")
    return {"source_features": [int(i) for i in indices]}


def _export_keras_flags(sub) -> None:
    p = sub.add_parser("export-keras", help="export your own Keras models (.keras files) to a verified bundle")
    p.add_argument("--encoder", help="encoder_model .keras (source -> states)")
    p.add_argument("--decoder", help="decoder_model .keras ([step input] + states -> [output] + states)")
    p.add_argument("--autoencoder", help="a RepeatVector sequence autoencoder .keras, instead of the pair")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--vocab", help="JSON with source_tokens, target_tokens, start_token, end_token")
    p.add_argument("--max-steps", type=int, help="decode cap (required for encoder/decoder pairs)")
    p.add_argument("--state-map", help="per encoder output, comma-separated, the decoder state input(s) it feeds; "
                   "'+' joins several (h1+h2,c1+c2 starts both layers from one encoder's [h, c])")
    p.add_argument("--zero-states", help="comma-separated decoder state input names your decode loop starts at zero")
    p.add_argument("--parity-sources", metavar="FILE",
                   help="a UTF-8 text file, one source per line, to check parity on (default: seeded random "
                        "sequences that export draws itself)")
    p.add_argument("--first-input", type=_first_input, default="zeros", metavar="zeros|last_source_step|source:I,...",
                   help="real-valued decoders: the first decoder input; source:0 starts from the last source step's "
                        "feature 0, as a forecaster's own loop starting from x[:, -1, [0]] (default: %(default)s)")
    p.add_argument("--threshold", help="autoencoders: the detect threshold, a number or a rule applied to "
                   "--normal windows: quantile:Q or sigma:K")
    p.add_argument("--normal", help="autoencoders: .npy windows (n, window, features) known to be normal, to "
                   "calibrate a threshold rule on (and check parity)")
    p.add_argument("--modes", help=MODES_HELP)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _evaluate_flags(sub) -> None:
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


def _export_flags(sub) -> None:
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


def _bench_flags(sub) -> None:
    p = sub.add_parser("bench", help="greedy decoding speed: Keras, LiteRT, plain tf2onnx and our runtime")
    p.add_argument("--model", action="append", default=None,
                   help="a token run directory, or a built-in: char-lstm-1x256, char-lstm-2x256, char-gru-1x256, "
                        "char-lstm-1x256-luong (Luong attention over 20-character sources), keras-io-lstm-256 (the "
                        "keras-io example's own one-hot/softmax models, exported with export-keras), tf-nmt-tutorial-256 "
                        "(TensorFlow's NMT tutorial, subclassed, exported with export_functions) (repeatable; "
                        "default: all six built-ins)")
    p.add_argument("--batch", action="append", type=int, default=None, help="batch sizes (default: 1 and 32)")
    p.add_argument("--threads", type=int, default=1, help="threads for every engine (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per row (default: %(default)s)")


def _demo_flags(sub) -> None:
    p = sub.add_parser("demo", help="serve a web page that decodes with the bundle in the browser (onnxruntime-web)")
    p.add_argument("bundle")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default: %(default)s; 0: any free one)")
    p.add_argument("--ort", metavar="DIR", help="onnxruntime-web's dist folder (default: bindings/web/node_modules/"
                   "onnxruntime-web/dist of this checkout, after `npm ci` in bindings/web)")


def _serve_flags(sub) -> None:
    p = sub.add_parser("serve", help="serve a bundle over HTTP with the Open Inference Protocol (KServe v2), "
                       "batching concurrent requests (needs the [serve] extra)")
    p.add_argument("bundle")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: every "
                   "interface)")
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s; 0: any free one)")
    p.add_argument("--name", help="the model's name in the protocol's paths (default: the bundle folder's name)")
    p.add_argument("--max-batch", type=int, default=32, help="most rows decoded together (default: %(default)s; "
                   "1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=0.0, help="how long an idle decoder may wait for more rows "
                   "while requests arrive faster than they are served; batches form anyway while one decodes, and a "
                   "lone request never waits (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=1024, help="most rows waiting; beyond it requests get 503 with "
                   "Retry-After (default: %(default)s)")
    p.add_argument("--mode", default=None, help="decode mode (default: the bundle's)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: %(default)s)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: one process; ray: Ray Serve replicas behind its HTTP proxy, on a local Ray or the "
                        "cluster at --address (needs ray[serve]) (default: %(default)s)")
    p.add_argument("--replicas", type=int, default=2, help="ray: replicas, one CPU and one loaded bundle each "
                   "(default: %(default)s)")
    p.add_argument("--address", help="ray: the cluster to join (default: start a local Ray)")


def _score_flags(sub) -> None:
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
    p.add_argument("--force", action="store_true", help="replace --output if it exists, and start over where an "
                   "earlier run left OUTPUT.partial")
    p.add_argument("--resume", action="store_true", help="continue the job an interrupted or killed run of the same "
                   "command left in OUTPUT.partial, from its first missing row (without one: score everything)")
    p.add_argument("--max-steps", type=int, default=None, help="decode at most this many steps")
    p.add_argument("--mode", default=None, help="decode mode (default: the bundle's)")
    p.add_argument("--allow-batch-dependence", action="store_true",
                   help="score on several workers in a mode whose outputs depend on the batch (int8 of bundles "
                        "exported before static int8 scales); refused otherwise")
    _dataclass_flags(p.add_argument_group("decoding: DecodeOptions"), DecodeOptions)


def _run_flags(sub) -> None:
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


def _config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per field of ModelConfig, AutoencoderConfig and TrainConfig (tuples as 32,16)."""
    from ..training.config import AutoencoderConfig, ModelConfig, TrainConfig

    autoencoder_defaults = {f.name: f.default for f in fields(AutoencoderConfig)}
    seen: set[str] = set()
    for cls in (ModelConfig, AutoencoderConfig, TrainConfig):
        notes = {name: f"autoencoders: {_show(value)}" for name, value in autoencoder_defaults.items()
                 if cls is ModelConfig}
        group = p.add_argument_group(cls.__name__, "the defaults shown are the dataclass's; the task's recipe "
                                     "replaces them (see task)")
        _dataclass_flags(group, cls, seen, notes)


def _dataclass_flags(group, cls: type, seen: set[str] | None = None, notes: dict[str, str] | None = None) -> None:
    """One flag per field of ``cls`` (values kept as text and parsed by ``pick``); fields in ``seen`` are skipped."""
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


def _show_recipes(quick: bool) -> str:
    """Each task's recipe (or quick preset) as the flags it sets."""
    from ..training.recipes import recipe_for
    from ..training.tasks import TASKS

    return "; ".join(f"{task}: {recipe_for(task, quick).flags() or 'the defaults below'}" for task in TASKS)


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def pick(cls: type, args: argparse.Namespace):
    """Build ``cls`` from the flags given; fields not given keep the dataclass defaults."""
    return cls(**given(cls, args))


def train_configs(args: argparse.Namespace) -> tuple:
    """`train`'s (model, training) configurations: the task's recipe (``--quick``: its small preset) with each
    field given as a flag replacing the recipe's (training/recipes.py ``configure``)."""
    from ..training.config import AutoencoderConfig, ModelConfig, TrainConfig
    from ..training.recipes import configure
    from ..training.tasks import FAMILIES

    family = args.family or FAMILIES.get(args.task, ("seq2seq",))[0]
    model_cls = AutoencoderConfig if family == "autoencoder" else ModelConfig
    return configure(args.task, quick=args.quick, family=family, model=given(model_cls, args),
                     train=given(TrainConfig, args))


def given(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` given as flags, parsed: {name: value}."""
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
    return values
