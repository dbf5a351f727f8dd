"""Built-in task `sine`: continue multi-feature sine waves of varied frequency and phase.

The model reads a window of ``WINDOW`` steps and continues it for ``HORIZON`` steps.
"""

from __future__ import annotations

import numpy as np

from .base import FeatureSplits, split_sizes

__all__ = ["make", "FEATURES", "WINDOW", "HORIZON"]

FEATURES, WINDOW, HORIZON = 2, 40, 20


def waves(count: int, rng: np.random.Generator, features: int = FEATURES,
          steps: int = WINDOW + HORIZON) -> np.ndarray:
    """(count, steps, features) float32 sine waves; each series draws its own amplitude, frequency, phase."""
    t = np.arange(steps, dtype=np.float64)[None, :, None]  # (1, steps, 1)
    amplitude = rng.uniform(0.5, 1.5, (count, 1, features))
    frequency = rng.uniform(0.02, 0.10, (count, 1, features))  # cycles per step
    phase = rng.uniform(0.0, 2 * np.pi, (count, 1, features))
    return (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def make(samples: int, seed: int, validation_split: float, test_split: float) -> FeatureSplits:
    """Generate the task's splits; the same arguments always give the same data."""
    x = waves(samples, np.random.default_rng(seed))
    n_train, n_val, _ = split_sizes(samples, validation_split, test_split)
    parts = np.split(x, [n_train, n_train + n_val])
    train, val, test = ((p[:, :WINDOW], p[:, WINDOW:]) for p in parts)
    return FeatureSplits(train=train, validation=val, test=test)
