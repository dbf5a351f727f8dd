"""What a built-in task produces: deterministic train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TokenSplits", "FeatureSplits", "AnomalySplits", "split_sizes"]

Pair = tuple[str, str]


@dataclass(frozen=True)
class TokenSplits:
    """(source text, target text) pairs per split, and how each side splits into tokens."""

    train: list[Pair]
    validation: list[Pair]
    test: list[Pair]
    source_separator: str = ""
    target_separator: str = ""
    reverse_source: bool = False  # feed the source last-first (helps plain encoder-decoders on long inputs)
    kind: str = "tokens"


@dataclass(frozen=True)
class FeatureSplits:
    """(source (n, window, features), target (n, horizon, features)) arrays per split."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    kind: str = "features"


def split_sizes(samples: int, validation_split: float, test_split: float) -> tuple[int, int, int]:
    """Sizes of (train, validation, test) for ``samples`` examples."""
    n_val, n_test = max(1, int(samples * validation_split)), max(1, int(samples * test_split))
    return samples - n_val - n_test, n_val, n_test


@dataclass(frozen=True)
class AnomalySplits:
    """Windows (n, window, features) for an autoencoder: normal ones to train on, labelled ones to test."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray  # (n_test,) bool: at least half the window is labelled anomalous
    test_events: np.ndarray  # (n_test,) int: the labelled anomaly the window touches, -1 for none
    kind: str = "anomaly"
