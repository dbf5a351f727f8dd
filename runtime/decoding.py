"""Decode loops over a single-step function. State lives in local variables only."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["greedy_tokens", "rollout_features"]

State = dict[str, np.ndarray]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


def greedy_tokens(step: StepFn, state: State, start: np.ndarray, end_id: int, max_steps: int,
                  pad_id: int) -> list[np.ndarray]:
    """Greedy argmax decode of a batch; each row stops at its own end id or at max_steps.

    Returns one int32 array of ids per row, without the end id.
    """
    batch = start.shape[0]
    tokens = start.astype(np.int32)  # (batch,)
    out = np.full((batch, max_steps), pad_id, dtype=np.int32)  # (batch, max_steps)
    lengths = np.full(batch, max_steps, dtype=np.int64)
    finished = np.zeros(batch, dtype=bool)
    for t in range(max_steps):
        logits, state = step(tokens, state)  # (batch, vocab)
        tokens = logits.argmax(axis=-1).astype(np.int32)
        ended = (tokens == end_id) & ~finished
        lengths[ended] = t
        finished |= ended
        out[:, t] = np.where(finished, pad_id, tokens)
        if finished.all():
            break
    return [out[i, : lengths[i]] for i in range(batch)]


def rollout_features(step: StepFn, state: State, first: np.ndarray, steps: int) -> np.ndarray:
    """Feed each prediction back as the next input for ``steps`` steps: (batch, steps, features)."""
    x = first  # (batch, features)
    out = np.empty((first.shape[0], steps, first.shape[1]), dtype=np.float32)
    for t in range(steps):
        x, state = step(x, state)  # (batch, features)
        out[:, t] = x
    return out
