"""One worker's model: decode a batch of rows, each row's failure kept to that row."""

from __future__ import annotations

from typing import Any

from ..runtime import DecodeOptions, load
from ..runtime.errors import InputError, Seq2SeqEdgeError
from ..runtime.inputs import check_source_length
from .files import _Bad

__all__ = ["Scorer", "unreadable"]

UNENCODABLE = "not valid Unicode (a lone surrogate); it cannot be decoded or written back"


class Scorer:
    """Holds one loaded model (``threads`` onnxruntime threads) and scores batches of rows.

    ``__call__({"id": [...], "source": [...]})`` returns the same rows with ``output``, ``log_prob``
    (beam search and sampling; None for greedy decoding in the bundle's default mode) and ``error``
    (None, or why the row could not be decoded). Row results do not depend on the rest of the batch in any
    mode of a bundle exported with static int8 scales (``model.batch_dependent_modes`` is empty).
    """

    def __init__(self, bundle: str, options: DecodeOptions | None = None, mode: str | None = None,
                 max_steps: int | None = None, threads: int = 1) -> None:
        self.model = load(bundle, threads=threads)
        self.options, self.mode, self.max_steps = options or DecodeOptions(), mode, max_steps
        self.windows = not hasattr(self.model, "generate_text")  # an autoencoder: windows in, scores out
        if self.windows:
            if mode is not None or self.options != DecodeOptions() or max_steps is not None:
                raise InputError(f"{bundle} is an autoencoder bundle: it scores windows, with no decode mode, "
                                 "strategy or max_steps")
            return
        if not hasattr(self.model.manifest.source, "vocabulary"):
            raise InputError(f"{bundle}: score takes token bundles (texts in, texts out) or autoencoder bundles "
                             "(windows in, scores out); this one reads real-valued sequences")
        self.model.check_decoding(mode, self.options)  # before any row: a bad option stops the job at once

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of a result, in order."""
        return ("id", "score", "anomalous", "error") if self.windows else ("id", "source", "output", "log_prob",
                                                                            "error")

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if self.windows:
            return self._score_windows(list(batch["id"]), list(batch["source"]))
        ids, sources = list(batch["id"]), list(batch["source"])
        outputs: list[Any] = [None] * len(ids)
        log_probs: list[Any] = [None] * len(ids)
        errors: list[Any] = [None] * len(ids)
        good = []
        for i, text in enumerate(sources):
            problem = self._check(text)
            if problem:
                errors[i] = problem
            else:
                good.append(i)
        if good:
            texts = [sources[i] for i in good]
            if self.options.strategy == "greedy":
                results = [(t, None) for t in self.model.generate_text(texts, self.max_steps, mode=self.mode)]
            else:
                results = [(row[0].text, row[0].log_prob) for row in self.model.decode_text(texts, self.options,
                                                                                           self.max_steps)]
            for i, (text, log_prob) in zip(good, results):
                outputs[i], log_probs[i] = text, None if log_prob is None else float(log_prob)
        sources = [t if isinstance(t, str) and not isinstance(t, _Bad) and errors[i] != UNENCODABLE else None
                   for i, t in enumerate(sources)]  # what is written back is a text, or nothing
        return {"id": ids, "source": sources, "output": outputs, "log_prob": log_probs, "error": errors}

    def _check(self, text: Any) -> str | None:
        problem = unreadable(text)
        if problem:
            return problem
        if not text.strip():
            return "empty source"
        try:
            check_source_length(len(self.model.source_vocab.encode(text)), "the source", "tokens")
        except Seq2SeqEdgeError as exc:
            return str(exc)
        return None

    def _score_windows(self, ids: list, windows: list) -> dict[str, list[Any]]:
        """Each window's score (mean squared reconstruction error, normalised units) and whether it exceeds
        the bundle's threshold (None without one); a window of the wrong shape or with NaN gets an error."""
        import numpy as np

        m = self.model
        shape = (m.window, m.manifest.source.features)
        mean, std = (np.asarray(v, np.float32) for v in (m.manifest.source.mean, m.manifest.source.std))
        scores: list[Any] = [None] * len(ids)
        flags: list[Any] = [None] * len(ids)
        errors: list[Any] = [None] * len(ids)
        good, rows = [], []
        for i, w in enumerate(windows):
            if isinstance(w, _Bad):
                errors[i] = str(w)
                continue
            try:
                x = np.asarray(w, np.float32)
            except (TypeError, ValueError, OverflowError) as exc:
                errors[i] = f"not a window of numbers ({exc})"
                continue
            if x.ndim == 1 and shape[1] == 1:
                x = x[:, None]  # a univariate window given as a flat list
            if x.shape != shape:
                errors[i] = f"a window has shape {shape} (window, features); this one {x.shape}"
            elif not np.isfinite(x).all():
                errors[i] = "the window holds NaN or infinite values"
            elif not _finite_normalised(x, mean, std):
                errors[i] = "the window's values overflow float32 once normalised"
            else:
                good.append(i)
                rows.append(x)
        if rows:
            values = m.score(np.stack(rows))
            for i, v in zip(good, values.tolist()):
                scores[i] = float(v)
                flags[i] = None if m.threshold is None else bool(v > m.threshold)
        return {"id": ids, "score": scores, "anomalous": flags, "error": errors}


def _finite_normalised(x, mean, std) -> bool:
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite((x - mean) / std).all())


def unreadable(source: Any) -> str | None:
    """Why a row is no text that can be decoded and written back (UTF-8), or None: a row the reader could not
    read, a value of another type, a lone surrogate."""
    if isinstance(source, _Bad):
        return str(source)
    if not isinstance(source, str):
        return f"not a text: {type(source).__name__}"
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        return UNENCODABLE
    return None
