"""How good a decode is, in numpy alone: shared by export's parity checks, evaluate, quickstart and the benchmark.

Token agreement between two decodes of the same rows, exact match against reference texts, and the
G2P error rates (edit distance over phonemes, PER and WER).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["token_agreement", "exact_match", "edit_distance", "phoneme_word_error_rates"]


def token_agreement(want: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> dict:
    """How far two greedy decodes of the same rows agree.

    ``token_agreement``: equal tokens over compared positions, where each row
    compares max(len) + 1 positions (the +1 is the end token, equal when the
    lengths are). ``sequences_differing``: rows that are not identical.
    """
    differing, equal, positions = 0, 0, 0
    for a, b in zip(want, got):
        a, b = np.asarray(a), np.asarray(b)
        n = min(len(a), len(b))
        differing += not np.array_equal(a, b)
        equal += int(np.sum(a[:n] == b[:n])) + (len(a) == len(b))
        positions += max(len(a), len(b)) + 1
    return {"tokens_identical": differing == 0, "sequences_differing": differing,
            "token_agreement": equal / positions if positions else 1.0}


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The share of predictions equal to their reference, pair by pair (nan for no pairs, as ``np.mean``)."""
    return float(np.mean([p == t for p, t in zip(predictions, references)]))


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
