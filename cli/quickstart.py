"""The main job: train a small `dates` model, export it, verify it, and show it working."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..runtime.fsutil import check_output_path
from ..runtime.metrics import exact_match

__all__ = ["quickstart", "EXAMPLES", "latency_per_token"]

EXAMPLES = ("vendredi 14 juillet 2023", "July 14, 2023", "14. Juli 2023", "martes, 4 de julio de 1995",
            "1 gennaio 2000", "Sunday, 31 December 2049", "3 mei 1961")


def latency_per_token(generate: Callable[[np.ndarray], list], inputs: list[np.ndarray]) -> tuple[float, int]:
    """Decode each (1, time) input alone; return (microseconds per generated token, tokens).

    Generated tokens count the end token too: it costs a decoder step like any other.
    """
    tokens, started = 0, time.perf_counter()
    for ids in inputs:
        tokens += sum(len(row) + 1 for row in generate(ids))
    return (time.perf_counter() - started) * 1e6 / tokens, tokens


def quickstart(out: str | Path = "quickstart-out", *, force: bool = False, epochs: int = 4,
               samples: int = 20000, print_fn: Callable[[str], None] = print) -> dict:
    """Train, export and run the `dates` model under ``out`` (run/ and bundle/); returns the measurements."""
    from ..export import export_run
    from ..runtime import load
    from ..training import train
    from ..training.inference import KerasSeq2Seq
    from ..training.recipes import configure
    from ..training.tasks import make_splits

    out = Path(out)
    check_output_path(out, force, directory=True)
    model, config = configure("dates", train={"samples": samples, "epochs": epochs})  # the dates recipe
    print_fn(f"[1/4] training `dates` ({samples} examples, {epochs} epochs, LSTM {model.units}) -> {out / 'run'}")
    started = time.perf_counter()
    run = train("dates", out / "run", model, config, force=force)
    train_seconds = time.perf_counter() - started
    print_fn(f"      trained in {train_seconds:.0f} s")
    print_fn(f"[2/4] exporting to {out / 'bundle'} and checking parity against Keras")
    result = export_run(run.path, out / "bundle", force=force)
    print_fn(f"      parity: {result.parity.summary()}")
    model = load(result.path)
    print_fn("[3/4] the runtime (numpy + onnxruntime) converting a few dates:")
    for text, iso in zip(EXAMPLES, model.generate_text(list(EXAMPLES))):
        print_fn(f"      {text!r:32} -> {iso}")
    test = make_splits("dates", config).test
    predictions = model.generate_text([s for s, _ in test])
    accuracy = exact_match(predictions, [t for _, t in test])
    print_fn(f"      held-out exact match: {accuracy:.2%} of {len(test)} dates never seen in training")
    print_fn("[4/4] batch-1 greedy latency on the same 20 held-out inputs:")
    vocab, target = model.source_vocab, model.target_vocab
    inputs = [vocab.encode_batch([s])[0] for s, _ in test[:20]]
    keras_ref = KerasSeq2Seq.from_run(run.load_model(), run.config)
    ours, _ = latency_per_token(model.generate, inputs)
    theirs, _ = latency_per_token(
        lambda ids: keras_ref.generate_ids(ids, target.start_id, target.end_id, model.max_steps), inputs)
    print_fn(f"      seq2seq-edge runtime: {ours:8.0f} us/token")
    print_fn(f"      Keras (direct calls): {theirs:8.0f} us/token  ({theirs / ours:.0f}x slower)")
    return {"accuracy": accuracy, "test_size": len(test), "train_seconds": train_seconds,
            "parity": result.parity.to_dict(), "runtime_us_per_token": ours, "keras_us_per_token": theirs}
