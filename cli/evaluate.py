"""`seq2seq-edge evaluate BUNDLE`: score a built-in task's bundle on its held-out test split.

Needs the task's data (the [train] extra, and [ecg] for ecg) but not TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..export.metrics import token_agreement
from ..runtime import load
from ..runtime.errors import Seq2SeqEdgeError

__all__ = ["evaluate_bundle", "g2p_metrics", "token_metrics", "anomaly_metrics", "edit_distance",
           "phoneme_word_error_rates"]

BATCH = 256


def evaluate_bundle(path: str | Path, beam_width: int = 5) -> dict:
    """Metrics of the bundle on its task's test split (rebuilt from the manifest's data record).

    g2p: phoneme and word error rates, greedy and with a beam of ``beam_width``.
    """
    from ..training.config import TrainConfig
    from ..training.tasks import AnomalySplits, TokenSplits, make_splits

    model = load(path)
    record = model.manifest.data
    if not record:
        raise Seq2SeqEdgeError(f"{path}: the manifest has no data record; evaluate works on bundles exported "
                               "from `seq2seq-edge train` runs of a built-in task")
    config = TrainConfig(samples=record["samples"], seed=record["seed"],
                         validation_split=record["validation_split"], test_split=record["test_split"])
    splits = make_splits(record["task"], config)
    if isinstance(splits, AnomalySplits):
        return {"task": record["task"], **anomaly_metrics(model, splits)}
    if record["task"] == "g2p":
        return {"task": "g2p", **g2p_metrics(model, splits.test, beam_width)}
    if isinstance(splits, TokenSplits):
        return {"task": record["task"], **token_metrics(model, splits.test)}
    source, target = splits.test
    predicted = model.generate(source, target.shape[1])
    return {"task": record["task"], "samples": len(source), "mse": float(np.mean((predicted - target) ** 2)),
            "mae": float(np.mean(np.abs(predicted - target)))}


def g2p_metrics(model, pairs: list[tuple[str, str]], beam_width: int) -> dict:
    """PER and WER on the test words (a word is right if it matches any of its pronunciations).

    ``greedy``: the bundle's default mode; ``greedy_by_mode``: every decode mode
    (fp32 and int8); ``beam{width}``: beam search, which runs the fp32 step graph.
    """
    from ..runtime import DecodeOptions
    from ..training.tasks.g2p import references

    refs = references(pairs)
    words = sorted(refs)

    def rates(**kwargs) -> dict:
        outputs = [o for i in range(0, len(words), BATCH) for o in model.generate_text(words[i:i + BATCH], **kwargs)]
        return phoneme_word_error_rates(dict(zip(words, outputs)), refs)

    by_mode = {mode: rates(mode=mode) for mode in model.modes}
    return {"greedy": by_mode[model.manifest.default_mode], "greedy_by_mode": by_mode,
            f"beam{beam_width}": rates(options=DecodeOptions("beam", beam_width=beam_width))}


def token_metrics(model, pairs: list[tuple[str, str]]) -> dict:
    """Exact match of every decode mode, and each mode's agreement with the default mode's tokens."""
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    ids = [model.source_vocab.encode_batch(sources[i:i + BATCH]) for i in range(0, len(sources), BATCH)]
    outputs = {mode: [row for x, lengths in ids for row in model.generate(x, lengths=lengths, mode=mode)]
               for mode in model.modes}
    reference = outputs[model.manifest.default_mode]
    result = {"samples": len(pairs), "default_mode": model.manifest.default_mode, "modes": {}}
    for mode, rows in outputs.items():
        texts = [model.target_vocab.decode(r) for r in rows]
        result["modes"][mode] = {"exact_match": float(np.mean([p == t for p, t in zip(texts, targets)])),
                                 "token_agreement_with_default": token_agreement(reference, rows)["token_agreement"]}
    result["exact_match"] = result["modes"][result["default_mode"]]["exact_match"]
    return result


def anomaly_metrics(model, splits) -> dict:
    """Window-level precision/recall of ``detect`` against the labels, and event-level (point-adjusted)
    figures: an event counts as found when any flagged window touches it."""
    flagged = model.detect(splits.test)
    labels, events = splits.test_labels, splits.test_events
    tp = int(np.sum(flagged & labels))
    touching = int(np.sum(flagged & (events >= 0)))
    all_events = sorted(set(events[events >= 0].tolist()))
    found = [e for e in all_events if np.any(flagged & (events == e))]
    return {"windows": int(len(labels)), "anomalous_windows": int(labels.sum()), "flagged": int(flagged.sum()),
            "threshold": model.threshold,
            "precision": tp / flagged.sum() if flagged.sum() else 0.0,
            "recall": tp / labels.sum() if labels.sum() else 0.0,
            "event_precision": touching / flagged.sum() if flagged.sum() else 0.0,
            "event_recall": len(found) / len(all_events) if all_events else 0.0, "events": len(all_events)}


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two symbol sequences (insertions, deletions, substitutions cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def phoneme_word_error_rates(predictions: dict[str, str], references: dict[str, set[str]]) -> dict:
    """PER (edit distance over phonemes against the closest reference, summed, over the summed lengths
    of those references) and WER (words whose prediction matches no reference)."""
    errors = length = wrong = 0
    for word, refs in references.items():
        predicted = predictions[word].split()
        distance, ref = min((edit_distance(predicted, r.split()), r) for r in refs)
        errors += distance
        length += len(ref.split())
        wrong += predictions[word] not in refs
    return {"words": len(references), "per": errors / length, "wer": wrong / len(references)}
