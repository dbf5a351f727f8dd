"""export_functions' reading of the user's functions: what ``encode`` returns and ``step`` takes (probed
eagerly on a small batch, with errors that name the fix), and the eager greedy loop parity compares with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..runtime.contract import (ATTENTION, ATTENTION_KEYS, LOOP_INPUT, LOOP_STEPS, MEMORY, SOURCE, SOURCE_LENGTH,
                                SOURCE_MASK, STEP_INPUT, STEP_OUTPUTS)
from ..runtime.strategies import greedy_tokens
from .convert import ExportError

__all__ = ["FunctionPlan", "FunctionReference", "plan_functions"]

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
RESERVED = {SOURCE, SOURCE_LENGTH, STEP_INPUT, SOURCE_MASK, MEMORY, ATTENTION_KEYS, ATTENTION, LOOP_INPUT, LOOP_STEPS,
            *STEP_OUTPUTS.values()}
PROBE_BATCH, PROBE_TIME = 2, 5


class _Given(dict):
    """The states or constants passed to ``step``: a missing name is an ExportError that says how to fix it."""

    def __init__(self, values: dict, what: str) -> None:
        super().__init__(values)
        self.what = what

    def __missing__(self, key):
        if self.what == "states":
            raise ExportError(f"step reads state {key!r}, but encode does not return it and zero_states does not "
                              f"declare it (states given: {sorted(self)}); return it from encode, or if it starts "
                              f"at zero declare it: zero_states={{{key!r}: SIZE}}")
        raise ExportError(f"step reads constant {key!r}, but encode returns no (batch, time, size) tensor of that "
                          f"name (constants given: {sorted(self)})")


@dataclass(frozen=True)
class FunctionPlan:
    """What the functions exchange. ``states``: every decoder state, name -> size (encode's first, then
    zero_states); ``encoder_states``: those encode returns; ``constants``: encode's name -> our graph name;
    ``constant_sizes``: our name -> size; ``vocab``: step output width; ``probabilities``: step returns
    probabilities, exported as their log."""

    states: dict
    encoder_states: tuple
    constants: dict
    constant_sizes: dict
    vocab: int
    probabilities: bool = False

    def call_encode(self, encode: Callable, source) -> dict:
        """``encode(source)``, checked to be a dict."""
        outs = encode(source)
        if not isinstance(outs, dict):
            raise ExportError(f"encode must return a dict of named tensors, got {type(outs).__name__}")
        return outs

    def call_step(self, step: Callable, token, states: dict, constants: dict):
        """``step(token, states, constants)`` -> (output as float32 logits or log-probabilities, new states)."""
        import tensorflow as tf

        result = step(token, _Given(states, "states"), _Given(constants, "constants"))
        if not (isinstance(result, (tuple, list)) and len(result) == 2 and isinstance(result[1], dict)):
            raise ExportError("step must return (output, new_states): the logits (batch, vocab) and a dict of the "
                              "next states")
        output = tf.cast(result[0], tf.float32)
        if self.probabilities:
            output = tf.math.log(tf.maximum(output, 1e-30))
        return output, result[1]


def _rank_shape(value, what: str) -> tuple:
    shape = tuple(np.shape(np.asarray(value)))
    if not shape or shape[0] != PROBE_BATCH:
        raise ExportError(f"{what} has shape {shape}; expected a batch axis first ({PROBE_BATCH} rows were given)")
    return shape


def _check_name(name, what: str) -> None:
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED or name.endswith("_out"):
        raise ExportError(f"{what} {name!r}: names must be identifiers of letters, digits and '_' (not ending in "
                          f"'_out', not one of {sorted(RESERVED)})")


def _probing(what: str, given: str, call, *args):
    """Call a user's function on the probe batch; its own errors become an ExportError that says what it got."""
    try:
        return call(*args)
    except ExportError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ExportError(f"{what} raised {type(exc).__name__} ({text[0][:300] if text else 'no message'}) when "
                          f"export called it eagerly with {given}") from exc


def plan_functions(encode: Callable, step: Callable, vocabs, zero_states: dict) -> FunctionPlan:
    """Call ``encode`` and ``step`` once eagerly on a small batch and read the contract from what they return."""
    import tensorflow as tf

    source_vocab, target_vocab = vocabs
    for name, size in zero_states.items():
        _check_name(name, "zero_states name")
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
            raise ExportError(f"zero_states[{name!r}] must be the state's size (a positive integer), got {size!r}")
    ids = (np.arange(PROBE_BATCH * PROBE_TIME).reshape(PROBE_BATCH, PROBE_TIME) % max(len(source_vocab) - 1, 1)) + 1
    ids = np.minimum(ids, len(source_vocab) - 1).astype(np.int32)
    probe = FunctionPlan({}, (), {}, {}, len(target_vocab))
    outs = _probing("encode", f"a tf.Tensor of int32 ids {ids.shape}", probe.call_encode, encode, tf.constant(ids))
    states, constants, sizes = {}, {}, {}
    for name, value in outs.items():
        _check_name(name, "encode output")
        shape = _rank_shape(value, f"encode output {name!r}")
        if len(shape) == 2:
            states[name] = int(shape[1])
        elif len(shape) == 3 and shape[1] == PROBE_TIME:
            constants[name] = None
            sizes[name] = int(shape[2])
        else:
            raise ExportError(f"encode output {name!r} has shape {shape} for a source of shape {ids.shape}; expected "
                              f"an initial state (batch, size) or a per-sequence constant (batch, time, size) with "
                              "the source's time")
    both = sorted(set(states) & set(zero_states))
    if both:
        raise ExportError(f"state(s) {both} are returned by encode and declared in zero_states; declare in "
                          "zero_states only the states encode does not return")
    ours = {user: MEMORY if len(constants) == 1 else f"{MEMORY}_{user}" for user in constants}
    taken = set(states) | set(zero_states)
    clash = [n for n in ours.values() if n in taken]
    if clash:
        raise ExportError(f"constant name(s) {clash} would equal a state's name; rename the state")
    all_states = {**states, **{n: int(s) for n, s in zero_states.items()}}
    plan = FunctionPlan(all_states, tuple(states), ours, {ours[u]: sizes[u] for u in ours}, len(target_vocab))
    given = {n: tf.constant(np.asarray(outs[n], np.float32)) for n in states}
    given.update({n: tf.zeros((PROBE_BATCH, s), tf.float32) for n, s in zero_states.items()})
    consts = {u: tf.constant(np.asarray(outs[u], np.float32)) for u in constants}
    token = tf.fill((PROBE_BATCH,), np.int32(target_vocab.start_id))
    output, new = _probing("step", f"token int32 ({PROBE_BATCH},) and the states {sorted(given)}", plan.call_step,
                           step, token, given, consts)
    out_shape = _rank_shape(output, "step's output")
    if out_shape != (PROBE_BATCH, len(target_vocab)):
        raise ExportError(f"step's output has shape {out_shape}; expected (batch, {len(target_vocab)}): one logit per "
                          "target token (squeeze a time axis of 1)")
    extra, missing = sorted(set(new) - set(all_states)), sorted(set(all_states) - set(new))
    if extra:
        raise ExportError(f"step returns state(s) {extra} that encode does not return and zero_states does not "
                          f"declare; return them from encode, or if they start at zero declare them: "
                          f"zero_states={{{extra[0]!r}: SIZE}}")
    if missing:
        raise ExportError(f"step does not return state(s) {missing}; it must return the next value of every state "
                          f"it is given ({sorted(all_states)})")
    for name, size in all_states.items():
        shape = _rank_shape(new[name], f"state {name!r} returned by step")
        if shape != (PROBE_BATCH, size):
            raise ExportError(f"step returns state {name!r} of shape {shape}, but it starts as (batch, {size}); "
                              "a state keeps its size from step to step")
    p = np.asarray(output, np.float64)
    probabilities = bool((p >= 0).all() and np.allclose(p.sum(-1), 1.0, atol=1e-4))
    return FunctionPlan(all_states, tuple(states), ours, plan.constant_sizes, len(target_vocab), probabilities)


class FunctionReference:
    """The user's functions called eagerly with the bundle's names: what parity.token_parity compares the
    bundle with (encode, step and a greedy loop, each on the rows it is given, unpadded)."""

    def __init__(self, encode: Callable, step: Callable, plan: FunctionPlan) -> None:
        self.encode_fn, self.step_fn, self.plan = encode, step, plan

    def encode(self, source: np.ndarray) -> dict:
        """ids (batch, time) -> every state (zeros where declared so), each constant and the mask of ones."""
        import tensorflow as tf

        outs = self.plan.call_encode(self.encode_fn, tf.constant(np.asarray(source, np.int32)))
        batch = len(source)
        state = {n: np.asarray(outs[n], np.float32) if n in self.plan.encoder_states
                 else np.zeros((batch, size), np.float32) for n, size in self.plan.states.items()}
        state.update({ours: np.asarray(outs[user], np.float32) for user, ours in self.plan.constants.items()})
        if self.plan.constants:
            state[SOURCE_MASK] = np.ones(np.shape(source), np.float32)
        return state

    def step(self, x: np.ndarray, state: dict) -> tuple[np.ndarray, dict]:
        """token ids (batch,) -> (logits (batch, vocab), next state with the constants unchanged)."""
        import tensorflow as tf

        given = {n: tf.constant(state[n]) for n in self.plan.states}
        consts = {user: tf.constant(state[ours]) for user, ours in self.plan.constants.items()}
        output, new = self.plan.call_step(self.step_fn, tf.constant(np.asarray(x, np.int32)), given, consts)
        nxt = {n: np.asarray(new[n], np.float32) for n in self.plan.states}
        nxt.update({k: v for k, v in state.items() if k not in self.plan.states})
        return np.asarray(output, np.float32), nxt

    def generate_ids(self, ids: np.ndarray, start_id: int, end_id: int, max_steps: int) -> list[np.ndarray]:
        """Greedy decode of rows of equal length (batch, time)."""
        start = np.full(len(ids), start_id, np.int32)
        return greedy_tokens(self.step, self.encode(ids), start, end_id, max_steps)
