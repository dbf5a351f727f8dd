"""Decoding strategies for token bundles: greedy, sampling (temperature, top-k, top-p) and beam search.

Each is a search object for the one loop in decoding.py, over a single-step
function ``step(tokens (batch,), state) -> (logits (batch, vocab), state)``.
All are batched (each row finishes on its own, and a row's result does not
depend on the batch it is in) and score every result with its
log-probability (the end token included).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Callable, NamedTuple

import numpy as np

from .decoding import State, StepFn, decode
from .errors import InputError

__all__ = ["DecodeOptions", "Hypothesis", "TextHypothesis", "STRATEGIES", "TokenSearch", "BeamSearch",
           "make_search", "greedy_tokens", "log_softmax"]

STRATEGIES = ("greedy", "sample", "beam")
# Caps, each an InputError past it: a beam of a million took 63 s and 3.4 GB for one input; a length penalty
# of 1e300 overflowed length ** alpha. Usual values are 1-16 and 0-2.
MAX_BEAM_WIDTH = 256
MAX_LENGTH_PENALTY = 10.0


def _number(value, name: str, low: float, high: float | None = None, *, integer: bool = False,
            include_low: bool = True) -> None:
    kind = numbers.Integral if integer else numbers.Real  # numpy scalars (np.int64(3)) included
    ok = isinstance(value, kind) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value) and (
        value >= low if include_low else value > low)
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = f"{'>=' if include_low else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        shown = value.item() if isinstance(value, np.generic) else value
        raise InputError(f"{name} must be {'an integer' if integer else 'a number'} {bound}, got {shown!r}")


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode; validated when built.

    ``strategy``: 'greedy', 'sample' or 'beam'. Sampling: ``temperature`` > 0,
    ``top_k`` (keep the k likeliest tokens), ``top_p`` in (0, 1] (keep the
    smallest set whose probability reaches p), ``seed`` for reproducible draws.
    Beam search: ``beam_width`` from 1 to MAX_BEAM_WIDTH (256), ``length_penalty`` alpha from 0 to
    MAX_LENGTH_PENALTY (10; hypotheses are ranked by log_prob / length**alpha), ``n_best`` results per row
    (at most the beam width).
    """

    strategy: str = field(default="greedy", metadata={"help": "greedy, sample or beam"})
    temperature: float = field(default=1.0, metadata={"help": "sampling: divide log-probabilities by this"})
    top_k: int | None = field(default=None, metadata={"help": "sampling: draw from the k likeliest tokens"})
    top_p: float | None = field(default=None, metadata={"help": "sampling: draw from the smallest set reaching p"})
    seed: int | None = field(default=None, metadata={"help": "sampling: reproducible draws"})
    beam_width: int = field(default=4, metadata={"help": "beam search: hypotheses kept per step"})
    length_penalty: float = field(default=1.0, metadata={"help": "beam search: rank by log_prob / length**alpha"})
    n_best: int = field(default=1, metadata={"help": "beam search: results per input"})

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
        _number(self.beam_width, "beam_width", 1, MAX_BEAM_WIDTH, integer=True)
        _number(self.length_penalty, "length_penalty", 0, MAX_LENGTH_PENALTY)
        limit = self.beam_width if self.strategy == "beam" else 1
        _number(self.n_best, "n_best", 1, limit, integer=True)
        for f in fields(self):  # numpy scalars become plain Python numbers
            value = getattr(self, f.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, f.name, value.item())


@dataclass(frozen=True)
class Hypothesis:
    """One decoded sequence: its ids (end token excluded), total log-probability (the end token's
    included), ranking score ``log_prob / length ** length_penalty`` (length counts the end token),
    and whether it ended (False: cut at max_steps). ``attention``: with ``decode(..., return_attention=True)``
    on an attention bundle, the weights over the source (output steps, source length), one row per
    token and one for the end token when it ended."""

    tokens: np.ndarray
    log_prob: float
    score: float
    ended: bool = True
    attention: np.ndarray | None = None


class TextHypothesis(NamedTuple):
    """A Hypothesis as text (``decode_text``): the decoded string, its log-probability and ranking score.
    A tuple, so ``text, log_prob, score = h`` works as well as ``h.text``."""

    text: str
    log_prob: float
    score: float


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def chooser(options: DecodeOptions) -> Callable[[np.ndarray], np.ndarray]:
    """Picks next tokens (batch,) from log-probabilities (batch, vocab): argmax, or a filtered draw."""
    if options.strategy == "greedy":
        return _argmax
    rng = np.random.default_rng(options.seed)

    def sample(logp: np.ndarray) -> np.ndarray:
        # Shift before dividing: the best token scales to 0, so even temperature=1e-308 gives no NaN.
        with np.errstate(over="ignore"):  # a tiny temperature sends all but the best token to -inf
            scaled = (logp - logp.max(axis=-1, keepdims=True)) / options.temperature
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
        draws = rng.random(1 if options.seed is not None else len(probs))[:, None]  # (1 or batch, 1)
        return np.minimum((np.cumsum(probs, axis=-1) < draws).sum(axis=-1), probs.shape[-1] - 1)
    return sample


class TokenSearch:
    """Greedy or sampled decoding: one hypothesis per row, each row stopping at its own end token.

    ``choose`` picks tokens from log-probabilities (default: argmax); ``scores``
    accumulates each row's log-probability (greedy decoding without scores takes
    the argmax of the logits directly). After ``update``, ``emitted`` holds the
    step's tokens with -1 for rows that had already ended.
    """

    def __init__(self, end_id: int, choose: Callable[[np.ndarray], np.ndarray] | None = None, *,
                 scores: bool = True, length_penalty: float = 1.0) -> None:
        self.end_id, self.choose, self.scores, self.length_penalty = end_id, choose, scores, length_penalty

    def start(self, state: State, first: np.ndarray) -> tuple[np.ndarray, State]:
        batch = len(first)
        self.finished = np.zeros(batch, bool)  # (batch,) the row has produced its end token
        self.log_probs = np.zeros(batch)       # (batch,)
        self._emitted: list[np.ndarray] = []
        self.done = False
        return first.astype(np.int32), state

    def update(self, logits: np.ndarray) -> tuple[np.ndarray, None]:
        if self.choose is None and not self.scores:
            tokens = logits.argmax(axis=-1).astype(np.int32)
        else:
            logp = log_softmax(logits.astype(np.float64))  # (batch, vocab)
            tokens = (self.choose or _argmax)(logp).astype(np.int32)
            self.log_probs += np.where(self.finished, 0.0, logp[np.arange(len(tokens)), tokens])
        # The step's tokens as chosen; ``emitted`` masks ended rows only when asked (the per-step decode
        # loop pays for no np.where), and ``sequences`` cuts each row at its first end token either way.
        self._was_finished = self.finished
        self._emitted.append(tokens)
        self.finished = self.finished | (tokens == self.end_id)
        self.done = bool(self.finished.all())
        return tokens, None

    @property
    def emitted(self) -> np.ndarray:
        """The last step's tokens (batch,) int32, -1 for rows that had ended before it."""
        return np.where(self._was_finished, -1, self._emitted[-1]).astype(np.int32)

    def sequences(self) -> list[np.ndarray]:
        """Each row's ids, without the end token."""
        steps = np.stack(self._emitted, axis=1)  # (batch, steps), what each step chose: cut at the first end
        ended = steps == self.end_id
        lengths = np.where(ended.any(axis=1), ended.argmax(axis=1), steps.shape[1])
        return [steps[i, : lengths[i]] for i in range(len(steps))]

    def hypotheses(self) -> list[list[Hypothesis]]:
        """One scored hypothesis per row (needs ``scores=True``)."""
        return [[_hypothesis(seq.tolist(), lp, self.length_penalty, bool(ended))]
                for seq, lp, ended in zip(self.sequences(), self.log_probs, self.finished)]


def _argmax(logp: np.ndarray) -> np.ndarray:
    return logp.argmax(axis=-1)


def _hypothesis(tokens: list[int], log_prob: float, alpha: float, ended: bool) -> Hypothesis:
    length = len(tokens) + int(ended)
    return Hypothesis(np.asarray(tokens, np.int32), float(log_prob), float(log_prob / max(length, 1) ** alpha), ended)


class BeamSearch:
    """Batched beam search; finished beams keep their score and stop growing. ``hypotheses`` gives n_best per row."""

    def __init__(self, end_id: int, options: DecodeOptions) -> None:
        self.end_id, self.options, self.width = end_id, options, options.beam_width

    def start(self, state: State, first: np.ndarray) -> tuple[np.ndarray, State]:
        batch, width = len(first), self.width
        self.scores = np.tile(np.r_[0.0, np.full(width - 1, -np.inf)], (batch, 1))  # (batch, width): beam 0 first
        self.history = np.zeros((batch, width, 0), np.int32)  # (batch, width, steps)
        self.finished = np.zeros((batch, width), bool)
        self.done = False
        state = {k: np.repeat(v, width, axis=0) for k, v in state.items()}  # (batch * width, units)
        return np.repeat(first.astype(np.int32), width), state

    def update(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch, width = self.scores.shape
        logp = log_softmax(logits.astype(np.float64)).reshape(batch, width, -1)  # (batch, width, vocab)
        vocab = logp.shape[-1]
        logp = np.where(self.finished[..., None], -np.inf, logp)
        logp[..., self.end_id] = np.where(self.finished, 0.0, logp[..., self.end_id])  # an ended beam stays, free
        total = (self.scores[..., None] + logp).reshape(batch, width * vocab)
        best = np.argsort(-total, axis=-1, kind="stable")[:, :width]  # (batch, width)
        beam, tokens = best // vocab, best % vocab
        self.scores = np.take_along_axis(total, best, axis=-1)
        self.history = np.concatenate([np.take_along_axis(self.history, beam[..., None], axis=1),
                                       tokens[..., None]], axis=2)
        self.finished = np.take_along_axis(self.finished, beam, axis=1) | (tokens == self.end_id)
        self.done = bool(self.finished.all())
        rows = (np.arange(batch)[:, None] * width + beam).reshape(-1)  # the state rows each new beam continues
        return tokens.reshape(-1).astype(np.int32), rows

    def hypotheses(self) -> list[list[Hypothesis]]:
        return [self._n_best(h, s, f) for h, s, f in zip(self.history, self.scores, self.finished)]

    def _n_best(self, history: np.ndarray, scores: np.ndarray, finished: np.ndarray) -> list[Hypothesis]:
        hyps = []
        for seq, score, ended in zip(history, scores, finished):
            if not np.isfinite(score):
                continue
            cut = int(np.argmax(seq == self.end_id)) if ended else len(seq)
            hyps.append(_hypothesis(seq[:cut].tolist(), score, self.options.length_penalty, bool(ended)))
        hyps.sort(key=lambda h: -h.score)
        return hyps[: self.options.n_best]


def make_search(options: DecodeOptions, end_id: int) -> TokenSearch | BeamSearch:
    """The search object that carries out ``options``."""
    if options.strategy == "beam":
        return BeamSearch(end_id, options)
    return TokenSearch(end_id, chooser(options), length_penalty=options.length_penalty)


def greedy_tokens(step: StepFn, state: State, start: np.ndarray, end_id: int, max_steps: int) -> list[np.ndarray]:
    """Greedy argmax decode of a batch: one int32 id array per row, without the end id."""
    return decode(step, state, start, max_steps, TokenSearch(end_id, scores=False)).sequences()
