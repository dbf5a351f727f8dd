"""Vocabularies: index <-> token maps with special ids, stored as JSON in the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import BundleError, InputError, UnknownTokenError
from .schema import at, show, validate

__all__ = ["Vocabulary", "PAD", "UNK", "START", "END", "check_vocabulary"]

PAD, UNK, START, END = "<pad>", "<unk>", "<s>", "</s>"
SPECIAL_IDS = ("pad_id", "unk_id", "start_id", "end_id")
FIELDS = ("tokens", "separator", *SPECIAL_IDS, "on_unknown", "reverse")
ON_UNKNOWN = tuple(at("#/$defs/vocabulary/properties/on_unknown/enum"))
MAX_TOKENS = at("#/$defs/vocabulary/properties/tokens/maxItems")
MAX_TOKEN_CHARS = at("#/$defs/vocabulary/properties/tokens/items/maxLength")


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
        if isinstance(self.tokens, (list, tuple)):
            object.__setattr__(self, "tokens", tuple(self.tokens))
        data = {name: getattr(self, name) for name in FIELDS}
        validate(data, "#/$defs/vocabulary", where="vocabulary")
        check_vocabulary(data, "vocabulary", "")
        for name in SPECIAL_IDS:  # a JSON integer may arrive as 3.0
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else int(value))
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

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
        if not isinstance(data, dict):
            raise BundleError(f"vocabulary: must be object, got {show(data)}", code="type", field="")
        return cls(data.get("tokens"), separator=data.get("separator", ""), pad_id=data.get("pad_id"),
                   unk_id=data.get("unk_id"), start_id=data.get("start_id"), end_id=data.get("end_id"),
                   on_unknown=data.get("on_unknown", "error"), reverse=data.get("reverse", False))


def check_vocabulary(data: dict[str, Any], where: str, field: str) -> None:
    """The rules between a vocabulary's fields (its structure is the schema's): every special id indexes the
    tokens, and on_unknown 'unk' has an unk_id to map unknown symbols to."""
    prefix = f"{field}." if field else ""
    for name in SPECIAL_IDS:
        value = data.get(name)
        if value is not None and value >= len(data["tokens"]):
            raise BundleError(f"{where}: {prefix}{name}={show(value)} is not an index into {len(data['tokens'])} "
                              "tokens", code="index", field=prefix + name)
    if data.get("on_unknown", "error") == "unk" and data.get("unk_id") is None:
        raise BundleError(f"{where}: {prefix}on_unknown is 'unk', which needs an unk_id to map unknown symbols to",
                          code="unk_id", field=prefix + "unk_id")


def _excerpt(text: str, position: int, width: int = 30) -> str:
    """``text`` as repr, cut to the part around ``position`` when it is long (error messages stay short)."""
    if len(text) <= 2 * width + 20:
        return repr(text)
    start = max(0, position - width)
    return (f"{'...' if start else ''}{text[start:position + width]!r}{'...' if position + width < len(text) else ''}"
            f" (a text of {len(text)} characters)")


def _split(text: str, separator: str) -> list[str]:
    return list(text) if separator == "" else [s for s in text.split(separator) if s]
