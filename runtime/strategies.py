"""Decoding strategies for token bundles: greedy, sampling (temperature, top-k, top-p) and beam search.

All of them are batched (each row finishes on its own), run over a single-step
function ``step(tokens (batch,), state) -> (logits (batch, vocab), state)``,
keep the state in local variables, and score every result with its
log-probability (the end token included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .errors import InputError

__all__ = ["DecodeOptions", "Hypothesis", "STRATEGIES", "token_steps", "sequential", "beam_search", "log_softmax"]

STRATEGIES = ("greedy", "sample", "beam")
State = dict[str, np.ndarray]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


def _number(value, name: str, low: float, high: float | None = None, *, integer: bool = False,
            include_low: bool = True) -> None:
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and (value >= low if include_low else value > low)
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = f"{'>=' if include_low else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise InputError(f"{name} must be {'an integer' if integer else 'a number'} {bound}, got {value!r}")


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode; validated when built.

    ``strategy``: 'greedy', 'sample' or 'beam'. Sampling: ``temperature`` > 0,
    ``top_k`` (keep the k likeliest tokens), ``top_p`` in (0, 1] (keep the
    smallest set whose probability reaches p), ``seed`` for reproducible draws.
    Beam search: ``beam_width`` >= 1, ``length_penalty`` alpha >= 0 (hypotheses
    are ranked by log_prob / length**alpha), ``n_best`` results per row.
    """

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    beam_width: int = 4
    length_penalty: float = 1.0
    n_best: int = 1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        _number(self.temperature, "temperature", 0, include_low=False)
        if self.top_k is not None:
            _number(self.top_k, "top_k", 1, integer=True)
        if self.top_p is not None:
            _number(self.top_p, "top_p", 0, 1, include_low=False)
        if self.seed is not None:
            _number(self.seed, "seed", 0, integer=True)
        _number(self.beam_width, "beam_width", 1, integer=True)
        _number(self.length_penalty, "length_penalty", 0)
        limit = self.beam_width if self.strategy == "beam" else 1
        _number(self.n_best, "n_best", 1, limit, integer=True)


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sequence: its ids (end token excluded), total log-probability, and ranking score."""

    tokens: np.ndarray
    log_prob: float
    score: float


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def chooser(options: DecodeOptions) -> Callable[[np.ndarray], np.ndarray]:
    """Picks next tokens (batch,) from log-probabilities (batch, vocab): argmax, or a filtered draw."""
    if options.strategy == "greedy":
        return lambda logp: logp.argmax(axis=-1)
    rng = np.random.default_rng(options.seed)

    def sample(logp: np.ndarray) -> np.ndarray:
        scaled = logp / options.temperature
        if options.top_k is not None and options.top_k < scaled.shape[-1]:
            kth = np.partition(scaled, -options.top_k, axis=-1)[:, -options.top_k][:, None]
            scaled = np.where(scaled < kth, -np.inf, scaled)
        probs = np.exp(log_softmax(scaled))
        if options.top_p is not None:
            order = np.argsort(-probs, axis=-1)
            sorted_p = np.take_along_axis(probs, order, axis=-1)
            keep_sorted = np.cumsum(sorted_p, axis=-1) - sorted_p < options.top_p  # always keeps the top token
            keep = np.zeros_like(keep_sorted)
            np.put_along_axis(keep, order, keep_sorted, axis=-1)
            probs = np.where(keep, probs, 0.0)
            probs /= probs.sum(axis=-1, keepdims=True)
        draws = rng.random(len(probs))[:, None]
        return np.minimum((np.cumsum(probs, axis=-1) < draws).sum(axis=-1), probs.shape[-1] - 1)
    return sample


def token_steps(step: StepFn, state: State, start: np.ndarray, end_id: int, max_steps: int,
                choose: Callable[[np.ndarray], np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (tokens (batch,), their log-probabilities (batch,), rows already finished before this step)."""
    tokens = start.astype(np.int32)
    finished = np.zeros(len(start), bool)
    for _ in range(max_steps):
        logits, state = step(tokens, state)
        logp = log_softmax(logits.astype(np.float64))  # (batch, vocab)
        tokens = choose(logp).astype(np.int32)
        yield tokens, logp[np.arange(len(tokens)), tokens], finished.copy()
        finished |= tokens == end_id
        if finished.all():
            return


def sequential(step: StepFn, state: State, start: np.ndarray, end_id: int, max_steps: int,
               options: DecodeOptions) -> list[list[Hypothesis]]:
    """Greedy or sampled decoding: one hypothesis per row."""
    batch = len(start)
    rows: list[list[int]] = [[] for _ in range(batch)]
    log_probs = np.zeros(batch)
    ended = np.zeros(batch, bool)
    for tokens, chosen, done_before in token_steps(step, state, start, end_id, max_steps, chooser(options)):
        for i in np.flatnonzero(~done_before):
            log_probs[i] += chosen[i]
            if tokens[i] == end_id:
                ended[i] = True
            else:
                rows[i].append(int(tokens[i]))
    return [[_hypothesis(row, lp, options.length_penalty, ended_i)] for row, lp, ended_i in zip(rows, log_probs, ended)]


def _hypothesis(tokens: list[int], log_prob: float, alpha: float, ended: bool) -> Hypothesis:
    length = len(tokens) + int(ended)
    return Hypothesis(np.asarray(tokens, np.int32), float(log_prob), float(log_prob / max(length, 1) ** alpha))


def beam_search(step: StepFn, state: State, start: np.ndarray, end_id: int, max_steps: int,
                options: DecodeOptions) -> list[list[Hypothesis]]:
    """Batched beam search; finished beams keep their score and stop growing. Returns n_best per row."""
    batch, width = len(start), options.beam_width
    state = {k: np.repeat(v, width, axis=0) for k, v in state.items()}  # (batch * width, units)
    tokens = np.repeat(start.astype(np.int32), width)
    scores = np.tile(np.r_[0.0, np.full(width - 1, -np.inf)], (batch, 1))  # (batch, width): expand beam 0 first
    history = np.zeros((batch, width, 0), np.int32)
    finished = np.zeros((batch, width), bool)
    for _ in range(max_steps):
        logits, state = step(tokens, state)
        logp = log_softmax(logits.astype(np.float64)).reshape(batch, width, -1)  # (batch, width, vocab)
        vocab = logp.shape[-1]
        logp = np.where(finished[..., None], -np.inf, logp)
        logp[..., end_id] = np.where(finished, 0.0, logp[..., end_id])  # a finished beam repeats its end at no cost
        total = (scores[..., None] + logp).reshape(batch, width * vocab)
        best = np.argsort(-total, axis=-1, kind="stable")[:, :width]  # (batch, width)
        beam, tokens2d = best // vocab, best % vocab
        scores = np.take_along_axis(total, best, axis=-1)
        history = np.concatenate([np.take_along_axis(history, beam[..., None], axis=1), tokens2d[..., None]], axis=2)
        finished = np.take_along_axis(finished, beam, axis=1) | (tokens2d == end_id)
        rows = (np.arange(batch)[:, None] * width + beam).reshape(-1)
        state = {k: v[rows] for k, v in state.items()}
        tokens = tokens2d.reshape(-1).astype(np.int32)
        if finished.all():
            break
    return [_n_best(history[i], scores[i], finished[i], end_id, options) for i in range(batch)]


def _n_best(history: np.ndarray, scores: np.ndarray, finished: np.ndarray, end_id: int,
            options: DecodeOptions) -> list[Hypothesis]:
    hyps = []
    for seq, score, ended in zip(history, scores, finished):
        if not np.isfinite(score):
            continue
        cut = int(np.argmax(seq == end_id)) if ended else len(seq)
        hyps.append(_hypothesis(seq[:cut].tolist(), score, options.length_penalty, bool(ended)))
    hyps.sort(key=lambda h: -h.score)
    return hyps[: options.n_best]
