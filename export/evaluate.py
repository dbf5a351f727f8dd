"""Score a built-in task's bundle on its held-out test split (`seq2seq-edge evaluate BUNDLE`).

Needs the task's data (the [train] extra, and [ecg] for ecg) but not TensorFlow: the splits are
rebuilt from the manifest's data record, the bundle decodes them with the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime import load
from ..runtime.errors import BundleError, Seq2SeqEdgeError
from ..runtime.metrics import exact_match, phoneme_word_error_rates, token_agreement

__all__ = ["Evaluation", "open_evaluation", "evaluate", "evaluate_bundle", "g2p_metrics", "token_metrics",
           "anomaly_metrics", "best_operating_point", "discord_scores"]

BATCH = 256


@dataclass(frozen=True)
class Evaluation:
    """A loaded bundle beside the splits of the task it was trained on (rebuilt from its data record)."""

    model: object  # Seq2SeqModel or AutoencoderModel
    task: str
    splits: object  # TokenSplits, AnomalySplits or the real-valued task's splits

    @property
    def labelled_series(self) -> bool:
        """True for an autoencoder task of a labelled series (ecg, kdd135): the splits that can be drawn."""
        from ..training.tasks import AnomalySplits

        return isinstance(self.splits, AnomalySplits)


def open_evaluation(path: str | Path) -> Evaluation:
    """Load the bundle at ``path`` and rebuild its task's splits from the manifest's data record."""
    from ..training.config import TrainConfig
    from ..training.tasks import make_splits

    model = load(path)
    record = model.manifest.data
    if not record:
        raise Seq2SeqEdgeError(f"{path}: the manifest has no data record; evaluate works on bundles exported "
                               "from `seq2seq-edge train` runs of a built-in task")
    keys = ("task", "samples", "seed", "validation_split", "test_split")
    missing = [k for k in keys if k not in record]
    if missing:
        raise BundleError(f"{path}: the manifest's data record lacks {missing}; it says how the task's splits "
                          f"were made, and evaluate needs all of {list(keys)}: export the run again",
                          code="data_record", field="data")
    try:
        config = TrainConfig(samples=record["samples"], seed=record["seed"],
                             validation_split=record["validation_split"], test_split=record["test_split"])
        return Evaluation(model, record["task"], make_splits(record["task"], config))
    except (TypeError, ValueError, Seq2SeqEdgeError) as exc:  # a value of the wrong type or out of range
        why = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."
        raise BundleError(f"{path}: the manifest's data record cannot rebuild the task's splits ({why}); export "
                          "the run again", code="data_record", field="data") from None


def evaluate_bundle(path: str | Path, beam_width: int = 5) -> dict:
    """Metrics of the bundle on its task's test split (rebuilt from the manifest's data record).

    g2p: phoneme and word error rates, greedy and with a beam of ``beam_width``.
    """
    return evaluate(open_evaluation(path), beam_width)


def evaluate(evaluation: Evaluation, beam_width: int = 5) -> dict:
    """The metrics of ``evaluation``'s bundle on its test split (see evaluate_bundle)."""
    from ..training.tasks import TokenSplits

    model, task, splits = evaluation.model, evaluation.task, evaluation.splits
    if evaluation.labelled_series:
        return {"task": task, **anomaly_metrics(model, splits)}
    if task == "g2p":
        return {"task": "g2p", **g2p_metrics(model, splits.test, beam_width)}
    if isinstance(splits, TokenSplits):
        return {"task": task, **token_metrics(model, splits.test)}
    source, target = splits.test
    if model.manifest.family == "autoencoder":  # an autoencoder of a real-valued task's windows
        return {"task": task, "windows": len(source), "reconstruction_mse": float(np.mean(model.score(source)))}
    predicted = np.stack(model.generate(source, target.shape[1]))  # (batch, steps, features)
    return {"task": task, "samples": len(source), "mse": float(np.mean((predicted - target) ** 2)),
            "mae": float(np.mean(np.abs(predicted - target)))}


def g2p_metrics(model, pairs: list[tuple[str, str]], beam_width: int) -> dict:
    """PER and WER on the test words (a word is right if it matches any of its pronunciations).

    ``greedy``: the bundle's default mode; ``greedy_by_mode``: every decode mode
    (fp32 and int8); ``beam{width}``: beam search, which runs the fp32 step graph (left out
    for a bundle exported without it).
    """
    from ..runtime import DecodeOptions
    from ..training.tasks.g2p import references

    refs = references(pairs)
    words = sorted(refs)

    def rates(**kwargs) -> dict:
        outputs = [o for i in range(0, len(words), BATCH) for o in model.generate_text(words[i:i + BATCH], **kwargs)]
        return phoneme_word_error_rates(dict(zip(words, outputs)), refs)

    by_mode = {mode: rates(mode=mode) for mode in model.modes}
    result = {"greedy": by_mode[model.manifest.default_mode], "greedy_by_mode": by_mode}
    if model.manifest.has_step:  # a bundle exported without the step graph decodes greedily only
        result[f"beam{beam_width}"] = rates(options=DecodeOptions("beam", beam_width=beam_width))
    else:
        result["not_run"] = {f"beam{beam_width}": "beam search needs the step graph, which this bundle was "
                                                   "exported without (--modes)"}
    return result


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
        result["modes"][mode] = {"exact_match": exact_match(texts, targets),
                                 "token_agreement_with_default": token_agreement(reference, rows)["token_agreement"]}
    result["exact_match"] = result["modes"][result["default_mode"]]["exact_match"]
    return result


def anomaly_metrics(model, splits) -> dict:
    """How well ``detect`` finds the labelled anomalies of the test windows, and how much the model learned.

    Per window at the manifest's threshold: precision and recall against the
    labels; per event (point-adjusted): an event counts as found when any flagged
    window touches it. ``per_step``: the same figures when a window is flagged as
    soon as one of its steps exceeds the per-step threshold. ``best``: the highest
    recall any threshold reaches at a precision of at least 0.9 (the operating
    point the scores allow).
    ``top_window_hits_event``: whether the highest-scoring window touches a
    labelled event (the UCR archive's one-anomaly criterion). On the held-out
    normal (validation) windows: the model's reconstruction error beside the
    mean predictor's (predicting the training windows' mean at every step);
    ``reconstruction_ratio`` near 1 means a collapsed model. ``discord``: the
    nearest-neighbour discord baseline on the same windows (see discord_scores).
    """
    from ..training.losses import mean_predictor_loss

    steps = model.score(splits.test, per_step=True)  # (n, window)
    result = {"windows": int(len(steps)), "anomalous_windows": int(splits.test_labels.sum()),
              "threshold": model.threshold, "threshold_rule": (model.manifest.anomaly or {}).get("rule"),
              **_detection(steps.mean(axis=1), model.threshold, splits.test_labels, splits.test_events)}
    # The per-step rule: a window is flagged when any of its steps is (for anomalies much shorter than a window)
    result["per_step"] = {"step_threshold": model.step_threshold,
                          **_detection(steps.max(axis=1), model.step_threshold, splits.test_labels,
                                       splits.test_events)}
    std = np.asarray(model.manifest.source.std, np.float32)
    mean = np.asarray(model.manifest.source.mean, np.float32)
    train, normal = ((w - mean) / std for w in (splits.train, splits.validation))
    result["normal_mse"] = float(np.mean(model.score(splits.validation)))
    result["mean_predictor_mse"] = mean_predictor_loss(train, normal)
    result["reconstruction_ratio"] = result["normal_mse"] / result["mean_predictor_mse"]
    discord = discord_scores(np.concatenate([splits.train, splits.validation]), splits.test)
    result["discord"] = {k: v for k, v in _detection(discord, None, splits.test_labels, splits.test_events).items()
                         if k in ("best", "top_window_hits_event")}
    return result


def _detection(scores: np.ndarray, threshold: float | None, labels: np.ndarray, events: np.ndarray) -> dict:
    flagged = scores > threshold if threshold is not None else np.zeros(len(scores), bool)
    tp, n_flagged = int(np.sum(flagged & labels)), int(flagged.sum())
    all_events = sorted(set(events[events >= 0].tolist()))
    found = [e for e in all_events if np.any(flagged & (events == e))]
    return {"flagged": n_flagged,
            "precision": tp / n_flagged if n_flagged else 0.0,
            "recall": tp / labels.sum() if labels.sum() else 0.0,
            "event_precision": int(np.sum(flagged & (events >= 0))) / n_flagged if n_flagged else 0.0,
            "event_recall": len(found) / len(all_events) if all_events else 0.0, "events": len(all_events),
            "best": best_operating_point(scores, labels),
            "top_window_hits_event": bool(events[int(np.argmax(scores))] >= 0)}


def best_operating_point(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.9) -> dict:
    """The threshold with the highest window recall at precision >= ``min_precision`` (flag scores above it)."""
    best = {"recall": 0.0, "precision": 0.0, "threshold": None, "min_precision": min_precision}
    for cut in np.unique(scores)[::-1]:
        flagged = scores >= cut
        tp = int(np.sum(flagged & labels))
        precision, recall = tp / int(flagged.sum()), tp / max(int(labels.sum()), 1)
        if precision >= min_precision and recall > best["recall"]:
            below = scores[scores < cut]
            best = {"recall": recall, "precision": precision, "min_precision": min_precision,
                    "threshold": float((cut + below.max()) / 2) if below.size else float(cut) / 2}
    return best


def discord_scores(normal: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The semi-supervised discord baseline (Keogh's matrix-profile family): each test window's z-normalised
    Euclidean distance to its nearest neighbour among the normal windows (all features side by side)."""
    def z(w: np.ndarray) -> np.ndarray:
        flat = w.reshape(len(w), -1).astype(np.float64)
        flat = flat - flat.mean(axis=1, keepdims=True)
        return flat / np.maximum(flat.std(axis=1, keepdims=True), 1e-8)

    a, b = z(test), z(normal)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T  # (n_test, n_normal)
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))
