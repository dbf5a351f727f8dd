"""Parity against the user's own decode loop: export_keras(reference=...) runs the user's decode function on
every parity source and compares it with the bundle's greedy decode in every mode (see byo_bundle.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .convert import ExportError
from .parity import DECODE_TOLERANCE, ParityReport

__all__ = ["LoopParityReport", "with_reference_loop"]

SHOWN = 120  # characters of a source or an output shown in a message


@dataclass(frozen=True)
class LoopParityReport(ParityReport):
    """A ParityReport that also holds the bundle's greedy decode against the user's own loop.

    ``reference_loop``: rows compared, ``identical`` (every fp32 mode equals the user's loop on every row),
    per mode the rows identical, and the first differing row (mode, row, source, the user's and the bundle's
    output). Not ``ok`` when any fp32 mode differs from the user's loop on any row; int8 modes are measured.
    """

    reference_loop: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        loop = self.reference_loop.get("modes", {})
        return super().ok and all(loop[m]["identical"] for m in self.modes if "int8" not in m and m in loop)

    def summary(self) -> str:
        loop = self.reference_loop
        per_mode = ", ".join(f"{m} {r['rows_identical']}/{loop['rows']}" for m, r in loop["modes"].items())
        text = f"{super().summary()}; rows identical to your own decode loop (reference=): {per_mode}"
        first = loop.get("first_difference")
        if first:
            text += (f"; first difference: {first['mode']} mode, row {first['row']}, source {first['source']}: "
                     f"your loop gave {first['yours']}, the bundle {first['bundle']}")
        return text


def _show(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def _call(reference, i: int, source):
    try:
        return reference(source)
    except Exception as exc:  # the user's function: say which source it failed on, and how it is called
        raise ExportError(f"reference: your decode function raised {type(exc).__name__}: {exc} on parity source {i} "
                          f"({_show(source)}); it is called with one source at a time, as parity_sources holds "
                          "them, and returns the decoded text, token ids or (steps, features) array") from exc


def _same_tokens(yours, bundle_ids: np.ndarray, vocab) -> tuple[bool, object]:
    """The user's text or ids against the bundle's ids (one trailing end token of the user's is ignored);
    with the bundle's output in the user's form."""
    if isinstance(yours, str):
        end = vocab.tokens[vocab.end_id]
        yours = yours[: -len(end)] if end and yours.endswith(end) else yours
        # Every token the bundle emitted, start and pad included (an untrained model may emit them; the
        # runtime's text drops them, the user's loop usually does not): the computation is compared, not the text.
        text = vocab.separator.join(vocab.tokens[int(i)] for i in bundle_ids)
        return yours == text, text
    ids = [int(t) for t in np.asarray(yours).reshape(-1)]
    if ids and ids[-1] == vocab.end_id:
        ids = ids[:-1]
    return ids == bundle_ids.tolist(), bundle_ids.tolist()


def _same_features(yours, bundle: np.ndarray) -> tuple[bool, object]:
    yours = np.asarray(yours, np.float32)
    if yours.shape != bundle.shape:
        return False, bundle
    return float(np.max(np.abs(yours - bundle))) <= DECODE_TOLERANCE if bundle.size else True, bundle


def with_reference_loop(report: ParityReport, reference, runtime, sources, ids=None, lengths=None) -> ParityReport:
    """``report`` with the user's loop compared, row by row, with the bundle's greedy decode in every mode.

    ``sources``: the parity sources as the user gave them (texts, id rows or feature windows), one per row;
    ``ids``/``lengths``: the same token sources as the runtime takes them (None for feature bundles).
    """
    if not callable(reference):
        raise ExportError(f"reference must be your decode function (one source -> its decoded output), "
                          f"got {type(reference).__name__}")
    yours = [_call(reference, i, s) for i, s in enumerate(sources)]
    vocab = runtime.target_vocab if ids is not None else None  # token bundles give ids
    modes, first = {}, None
    for mode in runtime.modes:
        got = (runtime.generate(ids, lengths=lengths, mode=mode) if ids is not None
               else runtime.generate(np.asarray(sources, np.float32), mode=mode))
        same = 0
        for i, (y, g) in enumerate(zip(yours, got)):
            equal, shown = _same_tokens(y, g, vocab) if vocab is not None else _same_features(y, g)
            same += equal
            if not equal and first is None and "int8" not in mode:
                first = {"mode": mode, "row": i, "source": _show(sources[i]), "yours": _show(y),
                         "bundle": _show(shown)}
        modes[mode] = {"rows_identical": same, "identical": same == len(yours)}
    loop = {"rows": len(yours), "identical": first is None, "modes": modes, "first_difference": first}
    fields = {k: getattr(report, k) for k in report.__dataclass_fields__}
    return LoopParityReport(**{**fields, "reference_loop": loop})
