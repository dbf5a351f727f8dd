"""How far two decodes agree: shared by export's parity checks, evaluate and the benchmark."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["token_agreement"]


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
