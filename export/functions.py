"""Export plain functions (subclassed Keras models, hand-written TensorFlow): an ``encode`` and a ``step``
function are traced with tf.function, converted with tf2onnx, renamed to the bundle contract and checked
against the same functions called eagerly.

The probing of the functions (what they return, what they take) and the eager reference live in
functions_reference.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..runtime.contract import SOURCE, SOURCE_MASK, STEP_INPUT, STEP_OUTPUTS, state_output
from ..runtime.errors import BundleError
from ..runtime.fsutil import atomic_directory
from ..runtime.manifest import ConstantSpec, IONames, Manifest, StateSpec, TokenSpec
from ..runtime.vocab import Vocabulary
from .convert import OPSET, ExportError
from .functions_reference import FunctionPlan, FunctionReference, plan_functions
from .manifest_builder import versions
from .parity import ParityReport, default_mode, token_parity
from .writing import DECODER_FILE, ENCODER_FILE, ExportResult, ParityError, check_modes, write_graph, write_verified

__all__ = ["export_functions", "fused_modes_from_step"]

LOGITS = STEP_OUTPUTS["tokens"]
DRAWN_SAMPLES, DRAWN_LENGTHS = 48, (3, 12)  # seeded random parity inputs: rows of 3 to 12 ids


def export_functions(encode: Callable, step: Callable, out: str | Path, *, source_tokens: Sequence[str],
                     target_tokens: Sequence[str], start_token: str, end_token: str, max_steps: int,
                     zero_states: Mapping[str, int] | None = None, parity_sources=None, force: bool = False,
                     modes=None) -> ExportResult:
    """Export an encoder and a one-step decoder written as plain functions to a verified bundle.

    For models that export_keras cannot read (subclassed Keras models, custom layers, hand-written
    TensorFlow): write two small functions around the model and export those.

    ``encode(source)``: ``source`` is int32 ids (batch, time) of one unpadded group of rows; returns a dict
    of named tensors. Each (batch, size) tensor is an initial decoder state, named as ``step`` takes it;
    each (batch, time, size) tensor is a per-sequence constant (e.g. the memory attention reads).

    ``step(token, states, constants)``: ``token`` int32 (batch,), ``states`` and ``constants`` dicts of
    those tensors; returns ``(output, new_states)``: logits or log-probabilities (batch, len(target_tokens))
    (probabilities are turned into log-probabilities), and the next value of every state, same keys.

    ``zero_states`` (name -> size): the decoder states ``step`` reads that ``encode`` does not return;
    they start at zero (e.g. a decoder GRU whose initial state is zeros). Every state must be declared
    one way or the other: a state ``step`` looks up but nobody gives is an ExportError.

    ``source_tokens``/``target_tokens``: the index-to-token lists of the ids; ``start_token`` is the first
    decoder input and ``end_token`` ends a row; ``max_steps`` caps decoding. Rows are encoded unpadded (the
    bundle's io padding is ``none``: the runtime encodes rows of each length together and runs the steps
    of rows of equal length together), so a model's own padding mask is never needed.

    Parity: the bundle's greedy decode must give the same tokens as a greedy loop that calls ``encode`` and
    ``step`` eagerly, and every step's states and outputs must agree within export.parity's tolerance
    (else ParityError, nothing written). It runs on ``parity_sources`` (texts, a (samples, time) id array
    or a list of id lists) or on seeded random rows of 3 to 12 ids. ``modes``: step mode only for now.
    ``force``: replace an existing ``out``.
    """
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ExportError(f"max_steps must be a positive integer (the longest output to decode), got {max_steps!r}")
    keep = check_modes(modes)
    vocabs = _vocabularies(source_tokens, target_tokens, start_token, end_token)
    plan = plan_functions(encode, step, vocabs, dict(zero_states or {}))
    ref = FunctionReference(encode, step, plan)
    try:
        return _write(encode, step, plan, ref, vocabs, out, max_steps, force, parity_sources, keep, fused=True)
    except ParityError as exc:
        # The step graph matches the user's functions but the loop built around it does not (or the step mode
        # itself fails, which is re-raised): keep the step mode unless the caller asked for a fused one.
        report = exc.report
        step_ok = report is not None and replace(report, modes={"step": report.modes["step"]}).ok
        if not step_ok or "fused" not in report.modes or (keep is not None and set(keep) - {"step"}):
            raise
        why = ", ".join(f"{k} {v}" for k, v in report.modes["fused"].items())
        return _write(encode, step, plan, ref, vocabs, out, max_steps, force, parity_sources, keep, fused=False,
                      note=f"step mode only: the loop built from the step graph did not match it ({why}); "
                           "please report the model")


def _write(encode, step, plan, ref, vocabs, out, max_steps, force, parity_sources, keep, *, fused: bool,
           note: str | None = None) -> ExportResult:
    with atomic_directory(out, force) as tmp:
        graphs = {"encoder": write_graph(_convert_encoder(encode, plan), tmp, ENCODER_FILE)}
        step_proto = _convert_step(step, plan)
        graphs["decoder_step"] = write_graph(step_proto, tmp, DECODER_FILE)
        modes_built = None
        if fused:
            try:
                modes_built = fused_modes_from_step(step_proto, plan, vocabs[1].end_id, graphs, tmp)
            except ExportError as exc:
                note = f"step mode only: {exc}"
            if modes_built and "fused-int8" not in modes_built:
                note = ("no fused-int8 mode: onnxruntime's quantiser broke the loop built from this step graph "
                        "(nested loops, as tf2onnx writes a GRU); step and fused are built")
        if keep is not None and set(keep) - {"step"} and not modes_built:
            raise ExportError(f"modes {list(keep)}: the fused loop could not be built ({note}); export with "
                              "modes=['step']")

        def manifest(report) -> dict:
            m = _manifest(plan, vocabs, graphs, max_steps, report.to_dict() if report else {})
            if modes_built:
                m = replace(m, modes=modes_built, default_mode=default_mode(report, modes_built) if report else "step")
            return m.to_dict()

        report, sizes = write_verified(tmp, manifest, lambda runtime: _measure(ref, runtime, parity_sources), keep,
                                       calibrate=lambda runtime: _calibrate(runtime, parity_sources))
    return ExportResult(Path(out), report, (note,) if note else (), sizes, keep or tuple(sizes))


def fused_modes_from_step(step_proto, plan: FunctionPlan, end_id: int, graphs: dict, folder: Path) -> dict:
    """The fused modes of a function export: a decode Loop built around the converted step graph
    ``step_proto`` (step_loop.build_step_loop) and its int8 variant, written into ``folder`` and added to
    ``graphs``; returns the manifest's modes. Parity then checks every mode like the step mode."""
    from .step_loop import StepLoopSpec, write_generic_fused_modes

    constants = tuple(plan.constants.values())
    spec = StepLoopSpec(states=tuple((n, state_output(n)) for n in plan.states),
                        constants=constants + ((SOURCE_MASK,) if constants else ()), end_id=end_id)
    return write_generic_fused_modes(spec, graphs, folder, OPSET)


def _vocabularies(source_tokens, target_tokens, start_token, end_token) -> tuple[Vocabulary, Vocabulary]:
    if source_tokens is None or target_tokens is None:
        raise ExportError("export_functions takes token ids on both sides: pass source_tokens and target_tokens "
                          "(the index-to-token lists)")
    missing = [n for n, t in (("start_token", start_token), ("end_token", end_token)) if t not in target_tokens]
    if missing:
        raise ExportError(f"{' and '.join(missing)} must be one of target_tokens")
    tokens = tuple(target_tokens)
    try:
        return (Vocabulary(tuple(source_tokens), pad_id=None),
                Vocabulary(tokens, pad_id=None, start_id=tokens.index(start_token), end_id=tokens.index(end_token)))
    except BundleError as exc:  # the vocabulary's own rules (e.g. no empty token)
        raise ExportError(f"source_tokens/target_tokens: {exc}") from None


def _convert(function, signature, names_out: dict[str, tuple], what: str):
    """tf2onnx of a tf.function with our input names; ``names_out``: output name -> its axes/sizes."""
    import onnx
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    except ExportError:
        raise
    except Exception as exc:  # tf2onnx raises many types; its message names the op it could not convert
        text = str(exc).strip().splitlines()
        raise ExportError(f"{what}: tf2onnx {tf2onnx.__version__} could not convert it at opset {OPSET} "
                          f"({type(exc).__name__}: {text[0][:300] if text else 'no message'})") from exc
    _freeze_captures(proto, function.get_concrete_function(*signature), len(signature))
    want_in, got_in = [s.name for s in signature], [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if sorted(got_in) != sorted(want_in) or sorted(got_out) != sorted(names_out):
        raise ExportError(f"{what}: tf2onnx named the graph's tensors {got_in} -> {got_out}, expected "
                          f"{want_in} -> {sorted(names_out)}")
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = names_out.get(value.name) or tuple(
            {None: "batch"}.get(d, d) if k == 0 else ("time" if d is None else d)
            for k, d in enumerate(next(s.shape for s in signature if s.name == value.name)))
        _set_shape(value, dims)
    onnx.checker.check_model(proto)
    return proto


def _freeze_captures(proto, concrete, given: int) -> None:
    """Tensors the functions close over (``tf.constant`` weights, not variables) reach tf2onnx as extra
    graph inputs: make each an initializer holding its captured value."""
    from onnx import numpy_helper

    captured = {t.name: value for t, value in zip(concrete.inputs[given:], concrete.captured_inputs)
                if t.dtype.name != "resource"}
    for value in [v for v in proto.graph.input if v.name in captured]:
        proto.graph.initializer.append(numpy_helper.from_array(np.asarray(captured[value.name]), value.name))
        proto.graph.input.remove(value)


def _set_shape(value, dims: tuple) -> None:
    """Give a graph input or output its full shape: names for dynamic axes, sizes for the others."""
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = int(d)


def _convert_encoder(encode, plan: FunctionPlan):
    """encoder.onnx: source -> every state encode returns, each constant by our name, and the mask (ones:
    rows are encoded unpadded)."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, None), tf.int32, name=SOURCE)]

    @tf.function(input_signature=signature)
    def encoder(source):
        outs = plan.call_encode(encode, source)
        named = {n: tf.identity(tf.cast(outs[n], tf.float32)) for n in plan.encoder_states}
        named.update({ours: tf.identity(tf.cast(outs[user], tf.float32)) for user, ours in plan.constants.items()})
        if plan.constants:
            named[SOURCE_MASK] = tf.ones(tf.shape(source), tf.float32)
        return named

    outputs = {n: ("batch", plan.states[n]) for n in plan.encoder_states}
    outputs.update({ours: ("batch", "time", plan.constant_sizes[ours]) for ours in plan.constants.values()})
    if plan.constants:
        outputs[SOURCE_MASK] = ("batch", "time")
    return _convert(encoder, signature, outputs, "encode")


def _convert_step(step, plan: FunctionPlan):
    """decoder_step.onnx: step_input (batch, 1), the states and constants -> logits and NAME_out."""
    import tensorflow as tf

    states, constants = list(plan.states), list(plan.constants.items())
    signature = ([tf.TensorSpec((None, 1), tf.int32, name=STEP_INPUT)]
                 + [tf.TensorSpec((None, plan.states[n]), tf.float32, name=n) for n in states]
                 + [tf.TensorSpec((None, None, plan.constant_sizes[ours]), tf.float32, name=ours)
                    for _, ours in constants])

    @tf.function(input_signature=signature)
    def decoder_step(token, *args):
        given = dict(zip(states, args[: len(states)]))
        consts = {user: value for (user, _), value in zip(constants, args[len(states):])}
        output, new = plan.call_step(step, token[:, 0], given, consts)
        named = {LOGITS: tf.identity(output)}
        named.update({state_output(n): tf.identity(tf.cast(new[n], tf.float32)) for n in states})
        return named

    outputs = {LOGITS: ("batch", plan.vocab)}
    outputs.update({state_output(n): ("batch", size) for n, size in plan.states.items()})
    return _convert(decoder_step, signature, outputs, "step")


def _manifest(plan: FunctionPlan, vocabs, graphs, max_steps: int, parity: dict) -> Manifest:
    """The manifest: states named as ``step`` takes them ('h' states of one layer each: the step graph is
    opaque, so the cell is recorded as 'gru', whose states are h only), constants and their mask."""
    state = tuple(StateSpec(n, k, "h", size, state_output(n), init="encoder" if n in plan.encoder_states else "zeros",
                            encoder_output=n if n in plan.encoder_states else None)
                  for k, (n, size) in enumerate(plan.states.items()))
    constants = tuple(ConstantSpec(ours, "memory", ours, plan.constant_sizes[ours])
                      for ours in plan.constants.values())
    if constants:  # the step graph takes no mask: the runtime steps rows of equal source length together
        constants += (ConstantSpec(SOURCE_MASK, "mask", SOURCE_MASK, None, decoder_input=False),)
    encoder_units = tuple(plan.states[n] for n in plan.encoder_states) + tuple(plan.constant_sizes.values())
    io = IONames(source_length=None, padding="none", step_output=LOGITS)
    return Manifest(family="seq2seq", cell="gru", encoder_units=encoder_units,
                    decoder_units=tuple(plan.states.values()), graphs=graphs, state=state,
                    source=TokenSpec(vocabs[0]), target=TokenSpec(vocabs[1]), io=io,
                    max_steps=max_steps, first_input="start_token", task=None, parity=parity,
                    versions=versions(OPSET), constants=constants)


def _measure(ref: FunctionReference, runtime, sources) -> ParityReport:
    """Greedy tokens and per-step errors of the bundle against the user's functions, rows unpadded."""
    ids, lengths, data = _parity_inputs(runtime, sources)
    return token_parity(ref, runtime, ids, lengths, data=data, unpadded_keras=True)


def _calibrate(runtime, sources) -> None:
    """A greedy decode of the parity inputs in the fp32 fused mode: what the int8 scales are calibrated on."""
    ids, lengths, _ = _parity_inputs(runtime, sources)
    runtime.generate(ids, lengths=lengths, mode="fused")


def _parity_inputs(runtime, sources) -> tuple[np.ndarray, np.ndarray, str]:
    """``sources`` or seeded random token sequences, as right-padded ids, lengths and a description."""
    if sources is None:
        rng = np.random.default_rng(0)
        lengths = rng.integers(DRAWN_LENGTHS[0], DRAWN_LENGTHS[1] + 1, size=DRAWN_SAMPLES).astype(np.int32)
        ids = rng.integers(0, len(runtime.source_vocab), size=(DRAWN_SAMPLES, DRAWN_LENGTHS[1])).astype(np.int32)
        data = (f"seeded random token sequences of {DRAWN_LENGTHS[0]} to {DRAWN_LENGTHS[1]} steps drawn by export "
                "(pass parity_sources= to check on real inputs)")
        return ids, lengths, data
    return _sources(sources, runtime.source_vocab)


def _sources(x, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, str]:
    """parity_sources as right-padded ids and lengths: texts, a (samples, time) array, or id lists."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        x = x.tolist()
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
        if not all(x):
            raise ExportError("parity_sources: a text is empty; give sources of at least one symbol")
        ids, lengths = vocab.encode_batch(list(x))
        return ids, lengths, "texts given as parity_sources"
    what = "texts, a (samples, time) array of ids or a list of id lists"
    try:
        rows = [np.asarray(r, np.int64).reshape(-1) for r in x]
    except (TypeError, ValueError) as exc:
        raise ExportError(f"parity_sources: expected {what}: {exc}") from None
    if not rows or not all(len(r) for r in rows):
        raise ExportError(f"parity_sources: expected {what}, with at least one id per row")
    bad = [i for i, r in enumerate(rows) if r.min() < 0 or r.max() >= len(vocab)]
    if bad:
        raise ExportError(f"parity_sources: row {bad[0]} holds ids outside [0, {len(vocab)})")
    ids, lengths = vocab.pad([r.tolist() for r in rows])
    return ids, lengths, "inputs given as parity_sources"
