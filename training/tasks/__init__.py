"""Built-in tasks. Each generates deterministic splits from a seed, with no download."""

from __future__ import annotations

from typing import Callable, Union

from ..config import ConfigError, TrainConfig
from . import dates, sine
from .base import FeatureSplits, TokenSplits

__all__ = ["TASKS", "make_splits", "TokenSplits", "FeatureSplits"]

Splits = Union[TokenSplits, FeatureSplits]
TASKS: dict[str, Callable[..., Splits]] = {"dates": dates.make, "sine": sine.make}


def make_splits(task: str, train: TrainConfig) -> Splits:
    """The train / validation / test data of a built-in task."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; built-in tasks: {', '.join(sorted(TASKS))}")
    return TASKS[task](train.samples, train.seed, train.validation_split, train.test_split)
