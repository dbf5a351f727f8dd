"""Write and verify the bundle of a user's own encoder/decoder pair (see byo.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..runtime.contract import ATTENTION, MEMORY, SOURCE, SOURCE_MASK, STEP_OUTPUTS, state_output
from ..runtime.manifest import ConstantSpec, FeatureSpec, IONames, Manifest, StateSpec, TokenSpec
from ..runtime.fsutil import atomic_directory
from ..training.inference import KerasSeq2Seq
from .convert import OPSET, ExportError
from .manifest_builder import versions
from .loop_parity import with_reference_loop
from .parity import ParityReport, default_mode, feature_parity, token_parity
from .support import all_layers, cell_of_layer
from .writing import ExportResult, ParityError, write_fused_modes, write_seq2seq_graphs, write_verified

__all__ = ["write_byo_bundle"]


def _manifest(contract, feeds, vocabs, graphs, encoder_model, max_steps, first_input, parity) -> Manifest:
    source_vocab, target_vocab = vocabs
    state = tuple(StateSpec(s.name, s.layer, s.kind, s.size, state_output(s.name),
                            init="encoder" if s.name in feeds else "zeros",
                            encoder_output=s.name if s.name in feeds else None) for s in contract.slots)
    step_output = STEP_OUTPUTS["tokens" if target_vocab else "features"]
    enc_src = graphs["encoder"].input(SOURCE)
    dec_out = graphs["decoder_step"].output(step_output)
    source = TokenSpec(source_vocab) if source_vocab else FeatureSpec(
        enc_src.shape[-1], (0.0,) * enc_src.shape[-1], (1.0,) * enc_src.shape[-1])
    target = TokenSpec(target_vocab) if target_vocab else FeatureSpec(
        dec_out.shape[-1], (0.0,) * dec_out.shape[-1], (1.0,) * dec_out.shape[-1])
    attention = contract.memory_index is not None
    io = IONames(source_length=None, padding="none" if source_vocab else None,
                 step_output=step_output, attention=ATTENTION if contract.attention_index is not None else None)
    constants = (ConstantSpec(MEMORY, "memory", MEMORY, contract.memory_size),
                 ConstantSpec(SOURCE_MASK, "mask", SOURCE_MASK, None, contract.mask_index is not None)) \
        if attention else ()
    layer_units = lambda model: tuple(l.units for l in all_layers(model) if cell_of_layer(l))  # noqa: E731
    decoder_units = tuple(s.size for s in contract.slots if s.kind == "h")
    return Manifest(family="seq2seq", cell=contract.cell, encoder_units=layer_units(encoder_model),
                    decoder_units=decoder_units, graphs=graphs, state=state, source=source, target=target, io=io,
                    max_steps=max_steps, first_input="start_token" if target_vocab else first_input, task=None,
                    parity=parity, versions=versions(OPSET), constants=constants)


def first_input_rule(first_input, vocabs, encoder, decoder):
    """export_keras's ``first_input`` as the manifest records it, checked against the wrapped models' widths.

    'zeros' and 'last_source_step' stay names; {"source_features": [i, ...]} (the last source step's features at
    these indices, one per target feature, as a forecaster's own loop starts from x[:, -1, [i, ...]]) becomes
    the rule {"rule": "source_step", "step": -1, "features": [i, ...]}. Token targets start at <s>.
    """
    if vocabs[1] is not None and not isinstance(first_input, dict):
        return first_input
    where = "first_input"
    if vocabs[1] is not None:
        raise ExportError(f"{where}: a rule over the source applies to real-valued targets; token decoding starts "
                          "at start_token")
    width = encoder.inputs[0].shape[-1] if vocabs[0] is None else None
    target = decoder.outputs[0].shape[-1]
    if first_input == "last_source_step" and width != target:
        raise ExportError(f"{where}: 'last_source_step' feeds the whole last source step ({width} features) to a "
                          f"decoder that takes {target}; pass first_input={{'source_features': [...]}} with the "
                          f"{target} source feature indices the decoder starts from")
    if not isinstance(first_input, dict):
        return first_input
    if set(first_input) != {"source_features"}:
        raise ExportError(f"{where}: expected 'zeros', 'last_source_step' or {{'source_features': [indices]}}, "
                          f"got {first_input!r}")
    if width is None:
        raise ExportError(f"{where}: source_features needs a real-valued source; this model reads tokens")
    indices = first_input["source_features"]
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__len__") or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in indices):
        raise ExportError(f"{where}: source_features must be a list of integer source feature indices, got "
                          f"{indices!r}")
    bad = [int(i) for i in indices if not 0 <= i < width]
    if bad:
        raise ExportError(f"{where}: source feature index {bad[0]} is out of range: the source has {width} features "
                          f"(indices 0 to {width - 1})")
    if len(indices) != target:
        raise ExportError(f"{where}: source_features holds {len(indices)} indices but the decoder takes {target} "
                          f"features per step: give one source index per target feature")
    return {"rule": "source_step", "step": -1, "features": [int(i) for i in indices]}


DRAWN_SAMPLES, DRAWN_LENGTH = 64, 12


def _default_samples(runtime, encoder) -> tuple[np.ndarray, str]:
    """Seeded random inputs of equal length (no padding): ids over ordinary tokens, or normal features;
    with a description for the report."""
    rng = np.random.default_rng(0)
    m = runtime.manifest
    time = encoder.inputs[0].shape[1] or DRAWN_LENGTH
    what = (f"seeded random {'token sequences' if isinstance(m.source, TokenSpec) else 'feature windows'} of "
            f"{time} steps drawn by export (pass parity_sources= to check on real inputs)")
    if isinstance(m.source, TokenSpec):
        return rng.integers(0, len(m.source.vocabulary), size=(DRAWN_SAMPLES, time)).astype(np.int32), what
    return rng.normal(size=(DRAWN_SAMPLES, time, m.source.features)).astype(np.float32), what


def write_byo_bundle(encoder, decoder, contract, feeds, vocabs, out: str | Path, *, max_steps: int, force: bool,
                     first_input, parity_sources, encoder_model, fused=None, not_fused: str | None = None,
                     modes: tuple[str, ...] | None = None, reference=None) -> ExportResult:
    """Convert the wrapped models, check parity against them, and write the bundle atomically.

    ``fused`` (fused.DecoderWeights of the user's decoder): also the fused and fused-int8 modes, each checked
    like the step mode; the default mode is the fastest that matched. Without it (``not_fused``: why), or when
    its loop does not match, the fused modes are built around the converted step graph (step_loop), and
    failing that the bundle has the step mode alone; the result's notes say which and why.
    ``modes``: keep only these modes' graphs (check_modes).
    ``reference``: the user's own decode function, compared row by row with every mode (loop_parity).
    """
    first_input = first_input_rule(first_input, vocabs, encoder, decoder)
    args = (encoder, decoder, contract, feeds, vocabs, out)
    kwargs = dict(max_steps=max_steps, force=force, first_input=first_input, parity_sources=parity_sources,
                  encoder_model=encoder_model, reference=reference, keep=modes)
    # The loop read from the decoder's weights where its pattern is known, else the loop built around the
    # converted step graph (step_loop), else the step mode alone; each later try only when the step graph
    # matched and the fused loop did not.
    tries = (["weights"] if fused is not None else []) + ["step graph", None]
    why = not_fused
    for loop in tries:
        try:
            return _write(*args, **kwargs, fused=fused if loop == "weights" else None, generic=loop == "step graph",
                          not_fused=None if loop == "weights" else why)
        except ParityError as exc:
            report = exc.report
            step_only = report is not None and replace(report, modes={"step": report.modes["step"]}).ok
            if loop is None or not step_only or (modes is not None and set(modes) - {"step"}):
                raise
            found = ", ".join(f"{key} {v:.3g}" if isinstance(v, float) else f"{key} {v}"
                              for key, v in report.modes.get("fused", {}).items())
            why = (f"the fused loop built from the decoder's {loop} did not match it at export ({found}); "
                   "please report the model")
    raise AssertionError("unreachable: the step-only try returns or raises")


def _write(encoder, decoder, contract, feeds, vocabs, out, *, max_steps, force, first_input, parity_sources,
           encoder_model, fused, not_fused, keep, reference, generic: bool = False) -> ExportResult:
    names = [s.name for s in contract.slots]
    constants = [MEMORY, SOURCE_MASK] if contract.memory_index is not None else []
    keras_ref = KerasSeq2Seq(encoder, decoder, names, tokens=vocabs[1] is not None, constant_names=constants)
    with atomic_directory(out, force) as tmp:
        graphs = write_seq2seq_graphs(encoder, decoder, tmp, OPSET)
        modes = None
        if fused is not None:
            layers = sorted({s.layer for s in contract.slots})
            by_layer = [[s.name for s in contract.slots if s.layer == k] for k in layers]
            modes = write_fused_modes(fused, by_layer, vocabs[1].end_id if vocabs[1] else None, graphs, tmp, OPSET)
        elif generic:
            try:
                modes = _generic_modes(contract, vocabs, graphs, tmp)
            except ExportError as exc:  # the step mode alone, in this same conversion
                generic, not_fused = False, f"the fused loop could not be built around the step graph ({exc})"
        if keep is not None and set(keep) - {"step"} and not modes:
            raise ExportError(f"modes {list(keep)}: {not_fused}; export it with modes=['step']")

        def manifest(report) -> dict:
            m = _manifest(contract, feeds, vocabs, graphs, encoder_model, max_steps, first_input,
                          report.to_dict() if report else {})
            if modes:
                m = replace(m, modes=modes, default_mode=default_mode(report, modes) if report else "step")
            return m.to_dict()

        report, sizes = write_verified(
            tmp, manifest, lambda runtime: _measure(keras_ref, runtime, encoder, parity_sources, reference), keep,
            calibrate=lambda runtime: _calibrate(runtime, encoder, parity_sources))
    notes = () if not_fused is None else (
        f"fused modes built around the step graph: {not_fused}" if generic else f"step mode only: {not_fused}",)
    if generic and "fused-int8" not in modes:
        notes += ("no fused-int8 mode: onnxruntime's quantiser broke the loop built from this step graph; step and "
                  "fused are built",)
    return ExportResult(Path(out), report, notes, sizes, keep or tuple(sizes))


def _generic_modes(contract, vocabs, graphs, folder) -> dict:
    """The fused modes built around the converted decoder_step.onnx (step_loop), for decoders whose layer
    pattern the weight-reading builder does not know."""
    from .step_loop import StepLoopSpec, write_generic_fused_modes

    tokens = vocabs[1] is not None
    spec = StepLoopSpec(states=tuple((s.name, state_output(s.name)) for s in contract.slots),
                        constants=(MEMORY, SOURCE_MASK) if contract.memory_index is not None else (),
                        step_output=STEP_OUTPUTS["tokens" if tokens else "features"],
                        target="tokens" if tokens else "features", end_id=vocabs[1].end_id if tokens else None)
    return write_generic_fused_modes(spec, graphs, folder, OPSET)


def _measure(keras_ref: KerasSeq2Seq, runtime, encoder, sources, reference=None) -> ParityReport:
    """Parity on ``sources`` (texts, ids or feature windows) or on seeded random inputs; with ``reference``,
    also each mode's greedy decode against the user's own loop on the same sources."""
    x, lengths, rows, data = _parity_inputs(runtime, encoder, sources)
    if lengths is None:
        report = feature_parity(keras_ref, runtime, x, data=data)
        return report if reference is None else with_reference_loop(report, reference, runtime, rows)
    report = token_parity(keras_ref, runtime, x, lengths, data=data, unpadded_keras=True)
    if reference is None:
        return report
    return with_reference_loop(report, reference, runtime, rows, x, lengths)


def _calibrate(runtime, encoder, sources) -> None:
    """A greedy decode of the parity inputs in the fp32 fused mode: what the int8 scales are calibrated on."""
    x, lengths, _, _ = _parity_inputs(runtime, encoder, sources)
    runtime.generate(x, lengths=lengths, mode="fused")


def _parity_inputs(runtime, encoder, sources) -> tuple:
    """(x, lengths, rows, data): ``sources`` (texts, ids or feature windows) or seeded random inputs, as ids and
    lengths (token sources) or windows (lengths None); ``rows`` as the user's loop takes them."""
    if sources is None:
        x, data = _default_samples(runtime, encoder)
    else:
        x, data = sources, "inputs given as parity_sources"
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        x = x.tolist()
    texts = isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(t, str) for t in x)
    if isinstance(runtime.manifest.source, FeatureSpec):
        if texts:
            raise ExportError("parity_sources: this model reads real-valued windows, not texts; pass an array "
                              "(samples, time, features)")
        windows = _array(x, np.float32, 3)
        return windows, None, list(windows), data
    if texts:
        empty = [i for i, t in enumerate(x) if not t]
        if empty:
            raise ExportError(f"parity_sources: text {empty[0]} is empty; give sources of at least one symbol")
        ids, lengths = runtime.source_vocab.encode_batch(list(x))
        data = "texts given as parity_sources"
    else:
        ids = _array(x, np.int32, 2)
        lengths = np.full(len(ids), ids.shape[1], np.int32)
    fixed = encoder.inputs[0].shape[1]
    if fixed is not None and set(lengths.tolist()) != {fixed}:
        raise ExportError(f"parity_sources: encoder_model takes sources of exactly {fixed} steps; these have "
                          f"{sorted(set(lengths.tolist()))}")
    rows = list(x) if texts else [row[:n] for row, n in zip(ids, lengths)]
    return ids, lengths, rows, data


def _array(x, dtype, rank: int) -> np.ndarray:
    """``x`` as a non-empty array of ``rank`` dimensions, or an ExportError that says what was given."""
    what = "texts or a (samples, time) array of ids" if rank == 2 else "a (samples, time, features) array"
    try:
        a = np.asarray(x, dtype)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"parity_sources: expected {what}: {exc}") from None
    if a.ndim != rank or not a.size:
        raise ExportError(f"parity_sources: expected {what}, got shape {a.shape}")
    return a
