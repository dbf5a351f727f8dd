"""`seq2seq-edge run BUNDLE`: decode texts or feature files with a bundle and print the results.

numpy + onnxruntime only: nothing here imports training code or TensorFlow.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from ..runtime.errors import InputError, Seq2SeqEdgeError
from ..runtime.strategies import DecodeOptions
from .parser import pick

__all__ = ["run"]


# C0 and C1 control characters, DEL and the Unicode line and paragraph separators: a decoded text (whose
# tokens come from a bundle, perhaps one the user did not build) must not move the cursor, set the terminal's
# title or clipboard (ESC ] 52), or turn one input's output into several lines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``, ``\\n``, ``\\u2028``), for a terminal."""
    def escape(match: re.Match) -> str:
        c = match.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _CONTROL.sub(escape, text)


def run(args: argparse.Namespace) -> int:
    """`seq2seq-edge run BUNDLE`: texts through a token bundle, or feature files through a real-valued or
    autoencoder bundle."""
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
    found = model.decode(ids, pick(DecodeOptions, args), lengths=lengths, max_steps=args.max_steps,
                         return_attention=True)[0]
    if not found:
        raise Seq2SeqEdgeError(f"no hypothesis was decoded for {text!r}")
    best = found[0]
    columns = [printable(source.tokens[i]) for i in ids[0, : lengths[0]]]
    weights = best.attention  # (output steps, source length), in the order the encoder read the source
    if source.reverse:  # show the source as written
        columns, weights = columns[::-1], weights[:, ::-1]
    rows = [printable(target.tokens[int(t)]) for t in best.tokens] + (["</s>"] if best.ended else [])
    print(f"{printable(text)} -> {printable(target.decode(best.tokens))}")
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
    options = pick(DecodeOptions, args)
    scored = options.n_best > 1 or args.scores
    for block in ([args.inputs] if args.inputs else _stdin_blocks(STDIN_BLOCK)):
        if scored:
            for row in model.decode_text(block, options, args.max_steps):
                for text, log_prob, score in row:
                    print("\t".join([printable(text), f"{log_prob:.6g}"]
                                    + ([f"{score:.6g}"] if options.n_best > 1 else [])))
        else:
            for result in model.generate_text(block, args.max_steps, mode=args.mode, options=options):
                print(printable(result))
        sys.stdout.flush()
    return 0


def _stdin_blocks(size: int) -> Iterator[list[str]]:
    """Non-blank stdin lines, without their line ending (\\n or \\r\\n), in lists of at most ``size``."""
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
