"""Vocabularies: index <-> token maps with special ids, stored as JSON in the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import BundleError, InputError, UnknownTokenError

__all__ = ["Vocabulary", "PAD", "UNK", "START", "END"]

PAD, UNK, START, END = "<pad>", "<unk>", "<s>", "</s>"
ON_UNKNOWN = ("error", "unk")
MAX_TOKENS, MAX_TOKEN_CHARS = 1_000_000, 256


@dataclass(frozen=True)
class Vocabulary:
    """An ordered token list; a token's id is its index.

    ``separator`` says how text splits into tokens: ``""`` for characters,
    ``" "`` for space-separated symbols (phonemes, words). ``on_unknown``
    says what a symbol outside the list does: ``"error"`` raises
    UnknownTokenError, ``"unk"`` maps it to ``unk_id``. ``reverse``: ``encode``
    returns the symbols last-first (source sides trained on reversed input).
    """

    tokens: tuple[str, ...]
    separator: str = ""
    pad_id: int | None = 0
    unk_id: int | None = None
    start_id: int | None = None
    end_id: int | None = None
    on_unknown: str = "error"
    reverse: bool = False
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = tuple(self.tokens)
        object.__setattr__(self, "tokens", tokens)
        if not 0 < len(tokens) <= MAX_TOKENS:
            raise BundleError(f"vocabulary: needs 1 to {MAX_TOKENS} tokens, got {len(tokens)}")
        bad = [t for t in tokens if not (isinstance(t, str) and 0 < len(t) <= MAX_TOKEN_CHARS)]
        if bad:  # (a list, not next(..., None): a token may itself be None)
            raise BundleError(f"vocabulary: every token must be a string of 1 to {MAX_TOKEN_CHARS} characters, "
                              f"got {bad[0]!r:.80}")
        if len(set(tokens)) != len(tokens):
            raise BundleError("vocabulary: tokens must be unique")
        for name in ("pad_id", "unk_id", "start_id", "end_id"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                          and 0 <= value < len(tokens)):
                raise BundleError(f"vocabulary: {name}={value!r} is not an index into {len(tokens)} tokens")
        if not isinstance(self.separator, str) or len(self.separator) > 1:
            raise BundleError(f"vocabulary: separator must be '' or one character, got {self.separator!r:.80}")
        if not isinstance(self.reverse, bool):
            raise BundleError(f"vocabulary: reverse must be true or false, got {self.reverse!r:.80}")
        if self.on_unknown not in ON_UNKNOWN:
            raise BundleError(f"vocabulary: on_unknown must be one of {ON_UNKNOWN}, got {self.on_unknown!r}")
        if self.on_unknown == "unk" and self.unk_id is None:
            raise BundleError("vocabulary: on_unknown='unk' needs an unk_id")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(tokens)})

    @classmethod
    def build(cls, texts: Iterable[str], *, separator: str = "", with_start_end: bool = False,
              on_unknown: str = "error", reverse: bool = False) -> "Vocabulary":
        """Build a vocabulary from example texts: specials first, then sorted symbols."""
        symbols = sorted({sym for text in texts for sym in _split(text, separator)})
        specials = [PAD, UNK] + ([START, END] if with_start_end else [])
        clash = {PAD, UNK, START, END} & set(symbols)
        if clash:
            raise InputError(f"training text contains reserved token(s) {sorted(clash)}")
        ids = {name: i for i, name in enumerate(specials)}
        return cls(tuple(specials + symbols), separator=separator, pad_id=ids[PAD], unk_id=ids[UNK],
                   start_id=ids.get(START), end_id=ids.get(END), on_unknown=on_unknown, reverse=reverse)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Map one text to ids (no start or end token added)."""
        ids = []
        for position, sym in enumerate(_split(text, self.separator)):
            idx = self._index.get(sym)
            if idx is None or idx in self._special_ids():
                if self.on_unknown == "error":
                    raise UnknownTokenError(
                        f"{sym!r:.40} at position {position} of {_excerpt(text, position)} is not in the model's "
                        f"vocabulary; known symbols: {self._known_preview()}. Remove or replace it")
                idx = self.unk_id
            ids.append(idx)
        return ids[::-1] if self.reverse else ids

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Encode texts into right-padded ids (batch, time) and lengths (batch,), both int32."""
        return self.pad([self.encode(t) for t in texts])

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad encoded rows into ids (batch, time) and lengths (batch,), both int32."""
        lengths = np.array([len(r) for r in rows], dtype=np.int32)  # (batch,)
        fill = 0 if self.pad_id is None else self.pad_id  # with no pad id, lengths say where rows end
        ids = np.full((len(rows), max(lengths, default=0)), fill, dtype=np.int32)  # (batch, time)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        return ids, lengths

    def decode(self, ids: Iterable[int]) -> str:
        """Map ids back to text, stopping at the end id and skipping pad and start ids."""
        out = []
        for idx in ids:
            idx = int(idx)
            if idx == self.end_id:
                break
            if idx in (self.pad_id, self.start_id):
                continue
            out.append(self.tokens[idx])
        return self.separator.join(out)

    def _special_ids(self) -> set[int]:
        return {i for i in (self.pad_id, self.unk_id, self.start_id, self.end_id) if i is not None}

    def _known_preview(self, limit: int = 60) -> str:
        specials = self._special_ids()
        known = [t for i, t in enumerate(self.tokens) if i not in specials]
        text = " ".join(repr(t) for t in known[:limit])
        return text + (" ..." if len(known) > limit else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in manifest.json."""
        return {"tokens": list(self.tokens), "separator": self.separator, "pad_id": self.pad_id,
                "unk_id": self.unk_id, "start_id": self.start_id, "end_id": self.end_id,
                "on_unknown": self.on_unknown, "reverse": self.reverse}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocabulary":
        """Inverse of to_dict; raises BundleError on a malformed entry."""
        if not isinstance(data.get("tokens"), list):
            raise BundleError(f"vocabulary: field 'tokens' must be a list of strings, got "
                              f"{type(data.get('tokens')).__name__}")
        try:
            return cls(tuple(data["tokens"]), separator=data.get("separator", ""), pad_id=data.get("pad_id"),
                       unk_id=data.get("unk_id"), start_id=data.get("start_id"), end_id=data.get("end_id"),
                       on_unknown=data.get("on_unknown", "error"), reverse=data.get("reverse", False))
        except (KeyError, TypeError) as exc:
            raise BundleError(f"vocabulary: malformed entry ({exc!r:.200})") from exc


def _excerpt(text: str, position: int, width: int = 30) -> str:
    """``text`` as repr, cut to the part around ``position`` when it is long (error messages stay short)."""
    if len(text) <= 2 * width + 20:
        return repr(text)
    start = max(0, position - width)
    return (f"{'...' if start else ''}{text[start:position + width]!r}{'...' if position + width < len(text) else ''}"
            f" (a text of {len(text)} characters)")


def _split(text: str, separator: str) -> list[str]:
    return list(text) if separator == "" else [s for s in text.split(separator) if s]
