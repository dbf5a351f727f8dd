"""The one decode loop. Every strategy (greedy, sampling, beam search, streaming, the real-valued
rollout) is a small search object driven by ``run`` over a single-step function.

    step(x, state) -> (output, next_state)     x: ids (batch,) or features (batch, features)

A search picks each next input from the step's output and may reorder the rows of
the state (beam search does). State is a dict of named (batch, size) arrays held in
local variables only, never in an object that outlives the call.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

import numpy as np

__all__ = ["State", "StepFn", "Search", "run", "decode", "FeedBack", "rollout_features"]

State = dict[str, np.ndarray]                                     # name -> (batch, size)
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]  # (input, state) -> (output, next state)


class Search(Protocol):
    """What ``run`` needs of a strategy."""

    done: bool  # every row has finished: stop before max_steps

    def start(self, state: State, first: np.ndarray) -> tuple[np.ndarray, State]:
        """The first input and state (a beam search tiles both per beam)."""

    def update(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Record one step's output; return the next input and the state rows to keep (None: as they are)."""


def run(step: StepFn, state: State, first: np.ndarray, max_steps: int, search: Search) -> Iterator[np.ndarray]:
    """Drive ``search`` for at most ``max_steps`` steps, yielding each step's chosen next input."""
    x, state = search.start(state, first)
    for _ in range(max_steps):
        output, state = step(x, state)
        x, rows = search.update(output)
        if rows is not None:
            state = {name: value[rows] for name, value in state.items()}
        yield x
        if search.done:
            return


def decode(step: StepFn, state: State, first: np.ndarray, max_steps: int, search: Search) -> Search:
    """Run the loop to its end; returns ``search``, which now holds the result."""
    for _ in run(step, state, first, max_steps, search):
        pass
    return search


class FeedBack:
    """Real-valued decoding: each prediction is the next input; ``outputs`` (batch, steps, features)."""

    done = False

    def start(self, state: State, first: np.ndarray) -> tuple[np.ndarray, State]:
        self._rows: list[np.ndarray] = []
        return first, state

    def update(self, output: np.ndarray) -> tuple[np.ndarray, None]:
        self._rows.append(output)  # (batch, features)
        return output, None

    @property
    def outputs(self) -> np.ndarray:
        return np.stack(self._rows, axis=1).astype(np.float32, copy=False)  # (batch, steps, features)


def rollout_features(step: StepFn, state: State, first: np.ndarray, steps: int) -> np.ndarray:
    """Feed each prediction back as the next input for ``steps`` steps: (batch, steps, features)."""
    return decode(step, state, first, steps, FeedBack()).outputs
