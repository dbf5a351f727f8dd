"""Built-in tasks. Each generates deterministic splits from a seed, with no download."""

from __future__ import annotations

from typing import Callable, Union

from ..config import ConfigError, TrainConfig
from . import dates, ecg, g2p, kdd135, sine
from .base import AnomalySplits, FeatureSplits, TokenSplits

__all__ = ["TASKS", "FAMILIES", "make_splits", "TokenSplits", "FeatureSplits", "AnomalySplits"]

Splits = Union[TokenSplits, FeatureSplits, AnomalySplits]
TASKS: dict[str, Callable[..., Splits]] = {"dates": dates.make, "sine": sine.make, "ecg": ecg.make,
                                           "g2p": g2p.make, "kdd135": kdd135.make}
# The model family each task trains by default: sine also trains autoencoders (on its windows).
FAMILIES = {"dates": ("seq2seq",), "sine": ("seq2seq", "autoencoder"), "ecg": ("autoencoder",),
            "g2p": ("seq2seq",), "kdd135": ("autoencoder",)}


def make_splits(task: str, train: TrainConfig) -> Splits:
    """The train / validation / test data of a built-in task."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; built-in tasks: {', '.join(sorted(TASKS))}")
    return TASKS[task](train.samples, train.seed, train.validation_split, train.test_split)
