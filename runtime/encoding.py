"""The encoder side of a seq2seq bundle: checked source in, the decoder's initial state out.

Token sources run as the bundle's encoder takes them: with per-row lengths (in length-sorted chunks where
that skips padding), with a mask, or in groups of rows of equal length (encoders that see padding as input).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import chunks
from .decoding import State
from .inputs import check_features, check_lengths, check_normalised, check_token_ids, normalise
from .manifest import FeatureSpec, Manifest

__all__ = ["SourceEncoder"]


class SourceEncoder:
    """Runs one of a bundle's encoders (per decode mode) on a batch. Holds no per-call state."""

    def __init__(self, manifest: Manifest, sessions: dict, chunked: bool) -> None:
        self.manifest, self.sessions = manifest, sessions
        self.chunked = chunked  # one intra-op thread: length-sorted chunks pay (see chunks.ENCODE_CHUNK_ROWS)
        self.constants = {c.name: c for c in manifest.constants}
        self.outputs = ([s.encoder_output for s in manifest.state if s.init == "encoder"]
                        + [c.encoder_output for c in manifest.constants])

    def encode(self, source: Any, lengths: Any, mode: str) -> State:
        """The initial state (and attention constants) for ``source`` with the encoder of ``mode``. A batch of
        no rows gives (0, size) states (and (0, time[, size]) constants) without running the encoder."""
        m = self.manifest
        encoder = self.sessions[m.modes[mode]["encoder"]]
        if isinstance(m.source, FeatureSpec):
            x = check_normalised(normalise(check_features(source, m.source.features), m.source.mean, m.source.std))
            return self.feed(encoder, {m.io.source: x}) if len(x) else self.assemble([], 0, x.shape[1])
        vocab = m.source.vocabulary
        ids = check_token_ids(source, len(vocab))
        lengths = check_lengths(lengths, ids, vocab.pad_id)
        if len(ids) == 0:
            return self.assemble([], 0, ids.shape[1])
        if m.io.padding == "lengths":
            return self.by_chunks(encoder, ids, lengths)
        if m.io.padding == "mask":
            return self.feed(encoder, {m.io.source: ids})
        return self.by_length(encoder, ids, lengths)

    def feed(self, encoder, feed: dict[str, np.ndarray]) -> State:
        """One encoder call; states the encoder does not give start at zero."""
        outputs = dict(zip(self.outputs, encoder.run(self.outputs, feed)))
        batch = next(iter(feed.values())).shape[0]
        state = {s.name: outputs[s.encoder_output] if s.init == "encoder"
                 else np.zeros((batch, s.size), np.float32) for s in self.manifest.state}
        return {**state, **{c.name: outputs[c.encoder_output] for c in self.manifest.constants}}

    def by_chunks(self, encoder, ids: np.ndarray, lengths: np.ndarray) -> State:
        """Encoders that take lengths: rows of very different lengths run in length-sorted chunks, each cut to
        its longest row (``chunks.encoder_chunks``). In float32 every row's result is what it is alone; an int8
        encoder quantises each call's rows together, so its values move within int8 rounding, as with any
        other batch. The constants keep the width of ``ids``; past each row's length, where its mask is 0
        and attention ignores them, they hold zeros or what the encoder computed there (a key bias)."""
        io = self.manifest.io
        parts = chunks.encoder_chunks(lengths) if self.chunked else None
        if parts is None:
            return self.feed(encoder, {io.source: ids, io.source_length: lengths})
        return self.assemble([(rows, self.feed(encoder, {io.source: ids[rows, :lengths[rows[-1]]],
                                                         io.source_length: lengths[rows]}))
                              for rows in parts], len(ids), ids.shape[1])

    def by_length(self, encoder, ids: np.ndarray, lengths: np.ndarray) -> State:
        """Encoders that see padding as input: encode each group of equal-length rows unpadded."""
        parts = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            parts.append((rows, self.feed(encoder, {self.manifest.io.source: ids[rows, :length]})))
        return self.assemble(parts, len(ids), int(lengths.max()))

    def assemble(self, parts: list[tuple[np.ndarray, State]], batch: int, width: int) -> State:
        """One state from the states of groups of rows; attention constants padded with zeros to ``width``."""
        state = {s.name: np.empty((batch, s.size), np.float32) for s in self.manifest.state}
        state.update({c.name: np.zeros((batch, width) + (() if c.size is None else (c.size,)), np.float32)
                      for c in self.manifest.constants})
        for rows, values in parts:
            for name, value in values.items():
                if name in self.constants:
                    state[name][rows, :value.shape[1]] = value
                else:
                    state[name][rows] = value
        return state
