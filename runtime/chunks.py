"""Which rows run together: length-sorted chunks of texts (memory bounded by a token budget) and of encoder
rows (less padding stepped through)."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from .inputs import check_source_length
from .vocab import Vocabulary

__all__ = ["TOKEN_BUDGET", "ENCODE_CHUNK_ROWS", "ENCODE_MAX_CHUNKS", "ENCODE_MIN_SAVING", "length_chunks",
           "encoder_chunks", "by_text_chunks"]

TOKEN_BUDGET = 1 << 16  # padded source ids per decode chunk (rows x longest row) in generate_text/decode_text
# Encoders that take lengths still step every row of a call to the call's longest row (onnxruntime's LSTM and
# GRU ops, the int8 GRU Scan). Rows sorted by length and encoded in chunks of ENCODE_CHUNK_ROWS or more (at most
# ENCODE_MAX_CHUNKS calls) skip most of that padding: measured on the bench's 256-unit models at batch 32 with
# sources of 8-24 characters, encoder time per row 174 -> 129 us (LSTM fp32), 83 -> 51 (LSTM int8), 159 -> 107
# (GRU fp32). Chunks below 8 rows lose in int8 (the product of a small batch costs about as much as a larger
# one). Only with one intra-op thread: with more, onnxruntime's LSTM op splits the batch across its threads and
# skips the padding itself (two threads, batch 128: no gain; int8 none at any batch).
ENCODE_CHUNK_ROWS, ENCODE_MAX_CHUNKS, ENCODE_MIN_SAVING = 8, 8, 0.1


def length_chunks(lengths: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Indices of ``lengths`` sorted by length, cut into chunks whose rows x longest row stays within
    ``budget`` (a row longer than the budget goes alone)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * lengths[order[end]] <= budget:
            end += 1
        yield order[start:end]
        start = end


def encoder_chunks(lengths: np.ndarray) -> list[np.ndarray] | None:
    """Row indices sorted by length, in chunks of equal size (the last may be smaller), when that cuts the
    padded row-steps (rows x longest row, summed over calls) by ENCODE_MIN_SAVING or more; else None."""
    batch = len(lengths)
    if batch < 2 * ENCODE_CHUNK_ROWS:
        return None
    order = np.argsort(lengths, kind="stable")
    size = max(ENCODE_CHUNK_ROWS, -(-batch // ENCODE_MAX_CHUNKS))
    chunks = [order[i:i + size] for i in range(0, batch, size)]
    padded = sum(len(rows) * int(lengths[rows[-1]]) for rows in chunks)  # sorted: each chunk's last is longest
    return chunks if padded <= (1 - ENCODE_MIN_SAVING) * batch * int(lengths.max()) else None


def by_text_chunks(texts: list[str], vocab: Vocabulary, run: Callable[[np.ndarray, np.ndarray], list]) -> list:
    """``run(ids, lengths)`` over length-sorted chunks of ``texts`` of at most TOKEN_BUDGET padded ids, so
    memory follows the input's total size; one result per text, in the caller's order."""
    rows = []
    for i, text in enumerate(texts):
        rows.append(vocab.encode(text))
        check_source_length(len(rows[-1]), f"item {i}", "tokens")
    results: list = [None] * len(rows)
    for chunk in length_chunks([len(r) for r in rows], TOKEN_BUDGET):
        ids, lengths = vocab.pad([rows[i] for i in chunk])  # (chunk, longest in chunk)
        for i, result in zip(chunk, run(ids, lengths)):
            results[i] = result
    return results
