"""What a built-in task produces: deterministic train / validation / test splits."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TokenSplits", "FeatureSplits", "AnomalySplits", "split_sizes", "windows", "labelled_windows",
           "split_by_time", "packaged_file"]

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
    test_labels: np.ndarray  # (n_test,) bool: see labelled_windows
    test_events: np.ndarray  # (n_test,) int: the labelled anomaly the window touches, -1 for none
    kind: str = "anomaly"
    # The test part of the series the test windows were cut from, every ``test_stride`` samples (for plots)
    test_series: np.ndarray | None = None         # (time,)
    test_series_labels: np.ndarray | None = None  # (time,) bool: labelled anomalous samples
    test_stride: int | None = None


def windows(x: np.ndarray, start: int, stop: int, window: int, stride: int) -> np.ndarray:
    """(n, window) windows of x[start:stop], every ``stride`` samples."""
    return np.stack([x[s: s + window] for s in range(start, stop - window + 1, stride)])


def labelled_windows(labels: np.ndarray, start: int, stop: int, window: int,
                     stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Window labels and events for the windows of ``windows(x, start, stop, window, stride)``.

    ``labels`` marks anomalous samples; a run of them is one event. A window is
    anomalous when at least half of it is labelled, or when it covers at least
    half of an event (so a short event still labels the windows that hold it).
    Returns (labels (n,) bool, events (n,) int: the event the window touches, -1 for none).
    """
    labels = np.asarray(labels, bool)
    events = np.cumsum(np.diff(labels.astype(np.int8), prepend=0) == 1) * labels - 1  # event id, -1 outside
    sizes = np.bincount(events[events >= 0]) if labels.any() else np.zeros(0, int)
    out_labels, out_events = [], []
    for s in range(start, stop - window + 1, stride):
        inside = events[s: s + window]
        ids, counts = np.unique(inside[inside >= 0], return_counts=True)
        covered = bool(np.any(2 * counts >= sizes[ids])) if len(ids) else False
        out_labels.append(2 * int((inside >= 0).sum()) >= window or covered)
        out_events.append(int(inside.max()))
    return np.array(out_labels, bool), np.array(out_events, int)


def split_by_time(task: str, what: str, x: np.ndarray, labels: np.ndarray, train_end: int, normal_end: int,
                  window: int, train_stride: int, test_stride: int) -> AnomalySplits:
    """A labelled series split by time: training windows before ``train_end``, validation windows up to
    ``normal_end`` (both must be free of labelled anomalies), test windows after it with their labels."""
    from ..config import ConfigError

    if labels[:normal_end].any():
        raise ConfigError(f"{task}: a labelled anomaly falls in the training part; the {what} changed")
    test_labels, test_events = labelled_windows(labels, normal_end, len(x), window, test_stride)
    return AnomalySplits(train=windows(x, 0, train_end, window, train_stride)[..., None],
                         validation=windows(x, train_end, normal_end, window, train_stride)[..., None],
                         test=windows(x, normal_end, len(x), window, test_stride)[..., None],
                         test_labels=test_labels, test_events=test_events, test_series=x[normal_end:],
                         test_series_labels=np.asarray(labels[normal_end:], bool), test_stride=test_stride)


def packaged_file(task: str, distribution: str, relpath: str, sha256: str, extra: str) -> bytes:
    """The bytes of a data file that an installed package ships, checked against ``sha256``.

    Nothing is downloaded: a missing package, a missing file or a different
    release is a ConfigError that names the extra to install.
    """
    from ..config import ConfigError

    install = f"pip install 'seq2seq-edge[{extra}]'"
    try:
        path = Path(md.distribution(distribution).locate_file(relpath))
    except md.PackageNotFoundError as exc:
        raise ConfigError(f"task {task!r} reads {relpath}, which {distribution} ships in its package; "
                          f"install it with {install}") from exc
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed {distribution}; install the pinned release "
                          f"with {install}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(f"{path} differs from the file task {task!r} was built on (sha256 mismatch); install "
                          f"the pinned {distribution} release with {install}")
    return data
