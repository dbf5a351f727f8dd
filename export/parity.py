"""Prove that the exported graphs compute what Keras computes, on held-out samples."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..runtime.contract import SOURCE_MASK
from ..runtime.inputs import normalise, source_step_features
from ..runtime.metrics import exact_match, token_agreement
from ..runtime.strategies import log_softmax

__all__ = ["ParityReport", "token_parity", "feature_parity", "default_mode", "near_ties", "int8_verdict",
           "STEP_TOLERANCE", "DECODE_TOLERANCE", "TIE_MARGIN", "INT8_MIN_AGREEMENT"]

STEP_TOLERANCE = 1e-4    # states: max abs difference; step outputs: max |a - b| / (1 + |b|)
DECODE_TOLERANCE = 1e-3  # max abs difference over a whole real-valued decode, data units
TIE_MARGIN = 1e-4        # Keras's top-2 log-probabilities this close: float32 noise may pick either token
INT8_MIN_AGREEMENT = 0.999  # int8 may be the default when this share of its greedy tokens equals fp32's


@dataclass(frozen=True)
class ParityReport:
    """Measured Keras-vs-onnxruntime agreement; ``ok`` when every number is within tolerance."""

    samples: int
    steps: int
    max_abs_encoder_state: float
    max_abs_step_state: float
    step_output_error: float  # max |a - b| / (1 + |b|): logits and log-probabilities grow, and their rounding too
    step_tolerance: float
    decode_tolerance: float | None = None
    max_abs_decode: float | None = None
    tokens_identical: bool | None = None
    sequences_differing: int | None = None
    near_ties: int | None = None  # differing sequences whose first difference is at a near-tie of Keras's
    modes: dict = field(default_factory=dict)  # per decode mode: its whole decode against Keras
    data: str = ""  # what the samples were (held-out split, the caller's inputs, or drawn by export)
    reference: dict = field(default_factory=dict)  # sequence-level metrics of Keras's own decode (exact_match)

    @property
    def ok(self) -> bool:
        """Every number within tolerance, for every exact mode (int8 modes are measured, not gated).

        Token decodes match when they are identical or differ only after near-ties in Keras's own top-2.
        """
        within = max(self.max_abs_encoder_state, self.max_abs_step_state, self.step_output_error) <= self.step_tolerance
        exact = [r for mode, r in self.modes.items() if "int8" not in mode]
        if self.tokens_identical is not None:
            return within and all(_matched(r) for r in exact) and _matched(
                {"tokens_identical": self.tokens_identical, "sequences_differing": self.sequences_differing,
                 "near_ties": self.near_ties})
        return (within and self.max_abs_decode is not None and self.max_abs_decode <= self.decode_tolerance
                and all(r["max_abs_decode"] <= self.decode_tolerance for r in exact))

    def to_dict(self) -> dict:
        verdict = int8_verdict(self)
        return {**asdict(self), "ok": self.ok, **({"int8_default": verdict} if verdict else {})}

    def exact_modes(self) -> list[str]:
        """Modes whose whole decode matched Keras: identical tokens, or within the decode tolerance."""
        if self.tokens_identical is not None:
            return [mode for mode, r in self.modes.items() if _matched(r)]
        return [mode for mode, r in self.modes.items() if r["max_abs_decode"] <= self.decode_tolerance]

    def summary(self) -> str:
        text = (f"{self.samples} {self.data or 'samples'}, {self.steps} steps: "
                f"encoder state {self.max_abs_encoder_state:.2e}, step state {self.max_abs_step_state:.2e}, "
                f"step output {self.step_output_error:.2e} relative "
                f"(tolerance {self.step_tolerance:g})")
        if self.tokens_identical is not None:
            text += f"; greedy tokens identical: {self.tokens_identical}"
            if self.near_ties:
                text += f" (the {self.near_ties} differing sequence(s) first differ at near-ties of Keras's top 2)"
        else:
            text += f"; whole decode {self.max_abs_decode:.2e} (tolerance {self.decode_tolerance:g})"
        for mode, r in self.modes.items():
            if mode != "step":
                text += f"; {mode}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                  for k, v in r.items())
        verdict = int8_verdict(self)
        if verdict:
            text += f"; int8 {'may' if verdict['eligible'] else 'may not'} be the default ({verdict['why']})"
        return text


def _matched(r: dict) -> bool:
    """A token decode matched Keras: identical, or every difference starts at a near-tie."""
    return bool(r["tokens_identical"]) or r["sequences_differing"] == r.get("near_ties", 0)


SPEED_ORDER = ("fused-int8", "fused", "step")  # fastest first, as `seq2seq-edge bench` measures
INT8_MODE = "fused-int8"


def int8_verdict(report: ParityReport) -> dict | None:
    """Whether the int8 mode may be a token bundle's default, and why: its greedy tokens agree with fp32's
    (Keras's) on at least INT8_MIN_AGREEMENT of the compared positions, and every sequence-level metric
    measured on the samples (exact match, when their targets are known) is what Keras's decode gives.
    None for bundles without an int8 mode or with real-valued outputs (those keep the decode tolerance)."""
    r = report.modes.get(INT8_MODE)
    if r is None or report.tokens_identical is None:
        return None
    changed = {k: [v, r.get(k)] for k, v in report.reference.items() if r.get(k) != v}
    agree = r["token_agreement"] >= INT8_MIN_AGREEMENT
    if not agree:
        why = f"{_percent(r['token_agreement'])} of its tokens agree with fp32, under {INT8_MIN_AGREEMENT:.1%}"
    elif changed:
        why = ", ".join(f"{k} {a:.4g} with fp32 but {b:.4g} with int8" for k, (a, b) in changed.items())
    else:
        why = (f"{_percent(r['token_agreement'])} of its tokens agree with fp32" +
               (f", {', '.join(report.reference)} unchanged" if report.reference else ""))
    return {"min_token_agreement": INT8_MIN_AGREEMENT, "token_agreement": r["token_agreement"],
            "metrics": {k: {"fp32": v, "int8": r.get(k)} for k, v in report.reference.items()},
            "eligible": agree and not changed, "why": why}


def _percent(share: float) -> str:
    """A share as a percentage with two decimals, rounded down (99.895% reads 99.89%, not the 99.90% it misses)."""
    return f"{math.floor(share * 1e4 + 1e-9) / 100:.2f}%"


def default_mode(report: ParityReport, modes: dict) -> str:
    """The fastest of ``modes`` that may be the default: the fp32 modes whose held-out decode matched Keras
    exactly; the int8 mode when int8_verdict allows it (real-valued bundles: within the decode tolerance).

    Step mode is the fallback: export refuses a bundle whose step mode does not match (``ok``).
    """
    exact = set(report.exact_modes()) & set(modes) - {INT8_MODE}
    verdict = int8_verdict(report)
    if INT8_MODE in modes and (verdict["eligible"] if verdict else INT8_MODE in report.exact_modes()):
        exact.add(INT8_MODE)
    return next((mode for mode in SPEED_ORDER if mode in exact), "step")


def _max_diff(a: dict, b: dict) -> float:
    """Largest difference over the named arrays. With a source mask (attention decoders), per-position
    constants are compared at the source's tokens only: what sits at padding is never attended to (a
    masked Keras LSTM repeats its last output there, the ONNX op writes zeros)."""
    mask = a.get(SOURCE_MASK)
    def diff(k: str) -> float:
        d = np.abs(a[k] - b[k])
        if mask is not None and d.ndim == 3:
            d = d * (mask[..., None] > 0)
        return float(np.max(d)) if d.size else 0.0
    return max(diff(k) for k in a)


def _lockstep(keras_ref, runtime, state, first, steps: int, next_input) -> tuple[float, float]:
    """Per-step error: both step graphs get Keras's own input and state at every step of Keras's decode.

    Each step is measured from the same state, so the numbers are the step
    graph's own error. Letting each engine carry its own state would also
    measure how a trained network amplifies float rounding over many steps
    (the larger the model, the more), which the whole-decode check gates.
    """
    x, worst_state, worst_out = first, 0.0, 0.0
    for _ in range(steps):
        out_k, next_k = keras_ref.step(x, state)
        out_r, next_r = runtime.step(x, state)
        worst_state = max(worst_state, _max_diff(next_k, next_r))
        worst_out = max(worst_out, float(np.max(np.abs(out_k - out_r) / (1 + np.abs(out_k)))))
        x, state = next_input(out_k), next_k
    return worst_state, worst_out


def token_parity(keras_ref, runtime, ids: np.ndarray, lengths: np.ndarray, targets: list[str] | None = None,
                 data: str = "", unpadded_keras: bool = False) -> ParityReport:
    """Token bundles: states and logits per step, then a whole greedy decode of every sample.

    ``ids`` (n, time) right-padded with the pad id, ``lengths`` (n,). ``targets`` (the samples' expected
    texts, when known): each mode's exact match is measured beside Keras's. ``data``: what the samples are.
    ``unpadded_keras``: the Keras models do not mask padding (users' own), so Keras sees each group of
    rows of equal length cut to that length; the runtime decodes the padded batch as its users would.
    """
    tgt_vocab = runtime.target_vocab
    steps = runtime.max_steps
    groups = ([np.flatnonzero(lengths == n) for n in np.unique(lengths)] if unpadded_keras
              else [np.arange(len(ids))])
    enc = step_state = step_out = 0.0
    want: list = [None] * len(ids)
    for rows in groups:
        x = ids[rows, : lengths[rows].max()] if unpadded_keras else ids[rows]
        state_k = keras_ref.encode(x)
        enc = max(enc, _max_diff(state_k, runtime.encode(x, lengths[rows])))
        start = np.full(len(rows), tgt_vocab.start_id, np.int32)
        errors = _lockstep(keras_ref, runtime, state_k, start, steps, lambda logits: logits.argmax(-1).astype(np.int32))
        step_state, step_out = max(step_state, errors[0]), max(step_out, errors[1])
        for i, row in zip(rows, keras_ref.generate_ids(x, tgt_vocab.start_id, tgt_vocab.end_id, steps)):
            want[i] = row

    def metrics(rows: list) -> dict:
        if targets is None:
            return {}
        return {"exact_match": exact_match([tgt_vocab.decode(r) for r in rows], targets)}

    modes = {}
    for mode in runtime.modes:
        got = runtime.generate(ids, lengths=lengths, mode=mode)
        modes[mode] = {**token_agreement(want, got),
                       "near_ties": near_ties(keras_ref, ids, lengths, want, got, tgt_vocab.start_id), **metrics(got)}
    step = modes["step"]
    return ParityReport(len(ids), steps, enc, step_state, step_out, STEP_TOLERANCE,
                        tokens_identical=step["tokens_identical"], sequences_differing=step["sequences_differing"],
                        near_ties=step["near_ties"], modes=modes, data=data, reference=metrics(want))


def near_ties(keras_ref, ids: np.ndarray, lengths: np.ndarray, want: list, got: list, start_id: int) -> int:
    """How many rows that differ first differ where Keras's own two likeliest tokens are within TIE_MARGIN
    of each other in log-probability (replaying Keras's decode of that row up to that step)."""
    ties = 0
    for i, (w, g) in enumerate(zip(want, got)):
        w, g = np.asarray(w).tolist(), np.asarray(g).tolist()
        if w == g:
            continue
        t = next((k for k, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
        state, x = keras_ref.encode(ids[i:i + 1, : lengths[i]]), np.array([start_id], np.int32)
        for token in w[:t]:
            _, state = keras_ref.step(x, state)
            x = np.array([token], np.int32)
        logits, _ = keras_ref.step(x, state)
        top2 = np.sort(log_softmax(logits[0].astype(np.float64)))[-2:]
        ties += bool(top2[1] - top2[0] <= TIE_MARGIN)
    return ties


def feature_parity(keras_ref, runtime, source: np.ndarray, data: str = "") -> ParityReport:
    """Feature bundles: states and outputs per step, then a whole free-running decode over the horizon."""
    m = runtime.manifest
    state_k = keras_ref.encode(normalise(source, m.source.mean, m.source.std))
    state_r = runtime.encode(source)
    enc = _max_diff(state_k, state_r)
    steps = runtime.max_steps
    raw = source_step_features(source, m.first_input)  # 'last_source_step' or a source_step rule; None: zeros
    first = (np.zeros((len(source), m.target.features), np.float32) if raw is None
             else normalise(raw, m.target.mean, m.target.std))
    step_state, step_out = _lockstep(keras_ref, runtime, state_k, first, steps, lambda y: y)
    want = keras_ref.generate_features(source, steps, m.first_input)
    modes = {mode: {"max_abs_decode": float(np.max(np.abs(want - np.stack(runtime.generate(source, mode=mode)))))}
             for mode in runtime.modes}
    return ParityReport(len(source), steps, enc, step_state, step_out, STEP_TOLERANCE,
                        decode_tolerance=DECODE_TOLERANCE, max_abs_decode=modes["step"]["max_abs_decode"],
                        modes=modes, data=data)
