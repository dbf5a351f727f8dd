"""The model object applications use: encode, step, generate, generate_text."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .bundle import Bundle
from .contract import LOOP_INPUT, LOOP_STEPS
from .decoding import FeedBack, State, decode, rollout_features, run
from .errors import InputError
from .inputs import (check_features, check_lengths, check_normalised, check_state, check_texts, check_token_ids,
                     normalise)
from .manifest import FeatureSpec, Manifest, TokenSpec
from .strategies import DecodeOptions, Hypothesis, greedy_tokens, make_search
from .vocab import Vocabulary

__all__ = ["Seq2SeqModel", "TOKEN_BUDGET", "encoder_chunks", "length_chunks"]

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


class Seq2SeqModel:
    """An encoder plus a single-step decoder. Holds no decode state: safe to share across threads."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        m = self.manifest
        self._decoder = bundle.sessions["decoder_step"] if m.has_step else None
        self._state_sizes = {s.name: s.size for s in m.state}
        # Attention decoders: per-sequence constants (memory, keys, mask) ride in the state dict, so every
        # search (beam search tiles and reorders rows) carries them with the state; steps pass them on.
        self._constants = {c.name: c for c in m.constants}
        # A source mask the step graph does not take: steps run per group of rows of equal source length.
        self._unfed_mask = next((c.name for c in m.constants if not c.decoder_input), None)
        self._encoder_outputs = ([s.encoder_output for s in m.state if s.init == "encoder"]
                                 + [c.encoder_output for c in m.constants])
        self._decoder_outputs = [m.io.step_output] + [s.output for s in m.state]
        options = next(iter(bundle.sessions.values())).get_session_options()
        self._chunk_encoder = options.intra_op_num_threads == 1  # see ENCODE_CHUNK_ROWS

    # -- introspection ----------------------------------------------------
    @property
    def source_vocab(self) -> Vocabulary:
        """The source vocabulary (token bundles only)."""
        return self._vocab(self.manifest.source, "source")

    @property
    def target_vocab(self) -> Vocabulary:
        """The target vocabulary (token bundles only)."""
        return self._vocab(self.manifest.target, "target")

    @property
    def max_steps(self) -> int:
        """The hard cap on decode length from the manifest."""
        return self.manifest.max_steps

    # -- the three calls --------------------------------------------------
    def encode(self, source: Any, lengths: Any = None) -> State:
        """Run the encoder: the decoder's initial state, one named (batch, size) array per state tensor.

        Token bundles take right-padded ids (batch, time) and optional lengths (batch,);
        feature bundles take raw (un-normalised) values (batch, time, features).
        """
        return self._encode(source, lengths, self.manifest.step_mode)

    def _need_step(self, what: str) -> None:
        if self._decoder is None:
            raise InputError(f"{what} needs the step graph (decoder_step.onnx), and this bundle was exported "
                             f"without it (modes {list(self.manifest.modes)}: greedy decoding only, with generate "
                             "or generate_text); export it again with 'step' among its modes")

    def _encode(self, source: Any, lengths: Any, mode: str) -> State:
        m = self.manifest
        encoder = self.bundle.sessions[m.modes[mode]["encoder"]]
        if isinstance(m.source, FeatureSpec):
            x = check_normalised(normalise(check_features(source, m.source.features), m.source.mean, m.source.std))
            return self._encode_feed(encoder, {m.io.source: x})
        vocab = m.source.vocabulary
        ids = check_token_ids(source, len(vocab))
        lengths = check_lengths(lengths, ids, vocab.pad_id)
        if m.io.padding == "lengths":
            return self._encode_chunked(encoder, ids, lengths)
        if m.io.padding == "mask":
            return self._encode_feed(encoder, {m.io.source: ids})
        return self._encode_by_length(encoder, ids, lengths)

    def step(self, step_input: Any, state: State) -> tuple[np.ndarray, State]:
        """One decoder call: ``(output, next_state)``; the state passed in is not modified.

        ``step_input`` is token ids (batch,) or normalised features (batch, features);
        ``output`` is logits (batch, vocab) or normalised features (batch, features).
        """
        m = self.manifest
        if isinstance(m.target, TokenSpec):
            x = check_token_ids(step_input, len(m.target.vocabulary), "step_input", rank=1)
        else:
            x = check_features(step_input, m.target.features, "step_input", rank=2)
        self._need_step("step()")
        return self._step(x, check_state(state, self._state_sizes, x.shape[0], self._constants))

    @property
    def modes(self) -> tuple[str, ...]:
        """The decode modes this bundle offers ('step', 'fused', 'fused-int8': those it was exported with)."""
        return tuple(self.manifest.modes)

    def generate(self, source: Any, max_steps: int | None = None, *, lengths: Any = None,
                 first_input: Any = None, mode: str | None = None,
                 options: DecodeOptions | None = None) -> list[np.ndarray] | np.ndarray:
        """Greedy decode of a batch.

        Token bundles: a list of int32 id arrays, one per row, each stopping at its own
        end token (not included) or at ``max_steps``. Feature bundles: an array
        (batch, max_steps, features) in the data's units; the first decoder input is
        ``first_input`` (batch, features) or what the manifest defines. ``mode``: one of
        ``modes`` ('step' drives decoder_step from Python; 'fused' runs the whole loop in
        one graph call); default: the manifest's default_mode. ``options`` (token bundles):
        sampling or beam search instead of greedy; they run in step mode and return each
        row's best sequence (``decode`` gives scores and n-best lists).
        """
        self.check_decoding(mode, options)
        if options is not None and options.strategy != "greedy":
            return [row[0].tokens for row in self.decode(source, options, lengths=lengths, max_steps=max_steps)]
        steps = self._check_max_steps(max_steps)
        mode = self._check_mode(mode)
        state = self._encode(source, lengths, mode)
        batch = next(iter(state.values())).shape[0]
        m = self.manifest
        if isinstance(m.target, TokenSpec):
            if first_input is not None:
                raise InputError("first_input applies to feature bundles only; token decoding starts at <s>")
            vocab = m.target.vocabulary
            start = np.full(batch, vocab.start_id, dtype=np.int32)
            if mode != "step":
                return self._fused_tokens(mode, state, start, steps, vocab.end_id)
            return greedy_tokens(self._step, state, start, vocab.end_id, steps)
        first = self._first_features(source, first_input, batch)
        if mode != "step":
            out = self._fused(mode, state, first, steps).transpose(1, 0, 2)  # (batch, steps, features)
        else:
            out = rollout_features(self._step, state, first, steps)  # (batch, steps, features)
        return out * np.asarray(m.target.std, np.float32) + np.asarray(m.target.mean, np.float32)

    def _fused(self, mode: str, state: State, first: np.ndarray, steps: int) -> np.ndarray:
        session = self.bundle.sessions[self.manifest.modes[mode]["decoder"]]
        feed = {**state, LOOP_INPUT: first, LOOP_STEPS: np.array(steps, np.int64)}
        return session.run(None, feed)[0][:steps]  # (steps run, batch[, features]); the graph may run past steps

    def _fused_tokens(self, mode: str, state: State, start: np.ndarray, steps: int, end_id: int) -> list[np.ndarray]:
        tokens = self._fused(mode, state, start, steps).T  # (batch, steps run)
        ended = tokens == end_id
        lengths = np.where(ended.any(axis=1), ended.argmax(axis=1), tokens.shape[1])
        return [tokens[i, : lengths[i]].astype(np.int32) for i in range(len(tokens))]

    def check_decoding(self, mode: str | None = None, options: DecodeOptions | None = None) -> None:
        """Raise InputError unless this bundle can decode in ``mode`` with ``options`` (what generate
        checks, for callers that want to know before they have inputs)."""
        self._check_mode(mode)
        if options is not None and options.strategy != "greedy":
            self._need_step(f"the {options.strategy!r} strategy")
            if mode not in (None, "step"):
                raise InputError(f"mode {mode!r} decodes greedily; the {options.strategy!r} strategy runs in step mode")

    def _check_mode(self, mode: str | None) -> str:
        if mode is None:
            return self.manifest.default_mode
        if mode not in self.manifest.modes:
            raise InputError(f"mode must be one of {list(self.manifest.modes)} for this bundle, got {mode!r}")
        return mode

    def generate_text(self, texts: Sequence[str], max_steps: int | None = None, *, mode: str | None = None,
                      options: DecodeOptions | None = None) -> list[str]:
        """Translate a list of strings (greedy by default; ``options`` picks sampling or beam search).

        Texts are decoded in length-sorted chunks of at most TOKEN_BUDGET padded ids, so memory
        follows the input's total size, not its count times its longest text; results keep the
        caller's order.
        """
        results = self._by_chunks(texts, lambda ids, lengths: self.generate(
            ids, max_steps, lengths=lengths, mode=mode, options=options))
        return [self.target_vocab.decode(row) for row in results]

    def decode(self, source: Any, options: DecodeOptions | None = None, *, lengths: Any = None,
               max_steps: int | None = None, return_attention: bool = False) -> list[list[Hypothesis]]:
        """Token bundles: decode with scores. One list per row: 1 hypothesis (greedy, sample) or the
        ``n_best`` of a beam search, best first, each with its log-probability and ranking score.

        ``return_attention`` (attention bundles): each hypothesis also carries its alignment, the
        step graph's weights over the row's source positions at every output step.
        """
        options = options or DecodeOptions()
        self._need_step("decode() (scores, sampling and beam search)")
        steps = self._check_max_steps(max_steps)
        if return_attention and self.manifest.io.attention is None:
            raise InputError("return_attention needs an attention bundle; this decoder has no attention output")
        vocab = self.target_vocab
        state = self._encode(source, lengths, "step")
        start = np.full(next(iter(state.values())).shape[0], vocab.start_id, np.int32)
        search = decode(self._step, state, start, steps, make_search(options, vocab.end_id))
        rows = search.hypotheses()
        return self._with_attention(state, rows) if return_attention else rows

    def _with_attention(self, state: State, rows: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
        """Replay every hypothesis through the step graph (all of them as one batch) and keep the weights.

        Each is fed its own tokens, so the weights are exactly those the decode computed.
        """
        m, vocab = self.manifest, self.target_vocab
        owner = [i for i, row in enumerate(rows) for _ in row]
        hyps = [h for row in rows for h in row]
        if not hyps:
            return rows
        batch = {name: value[owner] for name, value in state.items()}
        feeds = [np.concatenate([[vocab.start_id], h.tokens]).astype(np.int32) for h in hyps]
        steps = [len(h.tokens) + int(h.ended) for h in hyps]  # the end token's step too, when it ended
        width = max(steps)
        x = np.full((len(hyps), width), vocab.pad_id or 0, np.int32)
        for j, f in enumerate(feeds):
            x[j, : min(len(f), width)] = f[:width]
        weights = []
        names = [m.io.step_output, m.io.attention] + [s.output for s in m.state]
        for t in range(width):
            feed = dict(batch)
            feed[m.io.step_input] = x[:, t, None]
            _, attention, *values = self._run_decoder(names, feed)
            weights.append(attention)
            batch.update({s.name: v for s, v in zip(m.state, values)})
        lengths = batch[next(c.name for c in m.constants if c.kind == "mask")].sum(axis=1).astype(int)
        stacked = np.stack(weights, axis=1)  # width >= 1: every hypothesis has a token or its end
        done = [replace(h, attention=stacked[j, : steps[j], : lengths[j]]) for j, h in enumerate(hyps)]
        out, k = [], 0
        for row in rows:
            out.append(done[k: k + len(row)])
            k += len(row)
        return out

    def decode_text(self, texts: Sequence[str], options: DecodeOptions | None = None,
                    max_steps: int | None = None) -> list[list[tuple[str, float, float]]]:
        """``decode`` for strings: per input, a list of (text, log_prob, score), best first (chunked as
        ``generate_text``)."""
        results = self._by_chunks(texts, lambda ids, lengths: self.decode(
            ids, options, lengths=lengths, max_steps=max_steps))
        return [[(self.target_vocab.decode(h.tokens), h.log_prob, h.score) for h in row] for row in results]

    def _by_chunks(self, texts: Sequence[str], run: Callable[[np.ndarray, np.ndarray], list]) -> list:
        """``run(ids, lengths)`` over length-sorted chunks of ``texts``; one result per text, in order."""
        texts = check_texts(texts)
        vocab = self.source_vocab
        rows = [vocab.encode(t) for t in texts]
        results: list = [None] * len(rows)
        for chunk in length_chunks([len(r) for r in rows], TOKEN_BUDGET):
            ids, lengths = vocab.pad([rows[i] for i in chunk])  # (chunk, longest in chunk)
            for i, result in zip(chunk, run(ids, lengths)):
                results[i] = result
        return results

    def stream(self, source: Any, max_steps: int | None = None, *, lengths: Any = None, first_input: Any = None,
               options: DecodeOptions | None = None) -> Iterator[np.ndarray]:
        """Yield each step's output as soon as it is computed.

        Token bundles: the step's token ids (batch,), -1 for rows that already ended
        (greedy or sampling; beam search only knows its best sequence at the end).
        Feature bundles: the step's rows (batch, features) in the data's units.
        Arguments are checked and the source encoded when ``stream`` is called, not at the first ``next``.
        """
        options = options or DecodeOptions()
        self._need_step("stream()")
        steps = self._check_max_steps(max_steps)
        m = self.manifest
        if options.strategy == "beam":
            raise InputError("stream supports the greedy and sample strategies; beam search only knows its best "
                             "sequence at the end: use decode()")
        if isinstance(m.target, TokenSpec) and first_input is not None:
            raise InputError("first_input applies to feature bundles only; token decoding starts at <s>")
        state = self._encode(source, lengths, "step")
        batch = next(iter(state.values())).shape[0]
        if isinstance(m.target, TokenSpec):
            search = make_search(options, m.target.vocabulary.end_id)
            start = np.full(batch, m.target.vocabulary.start_id, np.int32)
            return (search.emitted for _ in run(self._step, state, start, steps, search))
        first = self._first_features(source, first_input, batch)
        std, mean = np.asarray(m.target.std, np.float32), np.asarray(m.target.mean, np.float32)
        return (x * std + mean for x in run(self._step, state, first, steps, FeedBack()))

    # -- internals ----------------------------------------------------------
    def _encode_feed(self, encoder, feed: dict[str, np.ndarray]) -> State:
        outputs = dict(zip(self._encoder_outputs, encoder.run(self._encoder_outputs, feed)))
        batch = next(iter(feed.values())).shape[0]
        state = {s.name: outputs[s.encoder_output] if s.init == "encoder"
                 else np.zeros((batch, s.size), np.float32) for s in self.manifest.state}
        return {**state, **{c.name: outputs[c.encoder_output] for c in self.manifest.constants}}

    def _encode_chunked(self, encoder, ids: np.ndarray, lengths: np.ndarray) -> State:
        """Encoders that take lengths: rows of very different lengths run in length-sorted chunks, each cut to
        its longest row (``encoder_chunks``). In float32 every row's result is what it is alone; an int8
        encoder quantises each call's rows together, so its values move within int8 rounding, as with any
        other batch. The constants keep the width of ``ids``; past each row's length, where its mask is 0
        and attention ignores them, they hold zeros or what the encoder computed there (a key bias)."""
        io = self.manifest.io
        chunks = encoder_chunks(lengths) if self._chunk_encoder else None
        if chunks is None:
            return self._encode_feed(encoder, {io.source: ids, io.source_length: lengths})
        return self._assemble([(rows, self._encode_feed(encoder, {io.source: ids[rows, :lengths[rows[-1]]],
                                                                  io.source_length: lengths[rows]}))
                               for rows in chunks], len(ids), ids.shape[1])

    def _encode_by_length(self, encoder, ids: np.ndarray, lengths: np.ndarray) -> State:
        """Encoders that see padding as input: encode each group of equal-length rows unpadded."""
        parts = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            parts.append((rows, self._encode_feed(encoder, {self.manifest.io.source: ids[rows, :length]})))
        return self._assemble(parts, len(ids), int(lengths.max()))

    def _assemble(self, parts: list[tuple[np.ndarray, State]], batch: int, width: int) -> State:
        """One state from the states of groups of rows; attention constants padded with zeros to ``width``."""
        state = {s.name: np.empty((batch, s.size), np.float32) for s in self.manifest.state}
        state.update({c.name: np.zeros((batch, width) + (() if c.size is None else (c.size,)), np.float32)
                      for c in self.manifest.constants})
        for rows, values in parts:
            for name, value in values.items():
                if name in self._constants:
                    state[name][rows, :value.shape[1]] = value
                else:
                    state[name][rows] = value
        return state

    def _step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        m = self.manifest
        feed = dict(state)
        feed[m.io.step_input] = x[:, None] if isinstance(m.target, TokenSpec) else x
        out, *next_values = self._run_decoder(self._decoder_outputs, feed)
        return out, {**{s.name: v for s, v in zip(m.state, next_values)},
                     **{name: state[name] for name in self._constants}}

    def _run_decoder(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One decoder_step call. When the step graph does not take the source mask, it would attend to
        padding: rows of equal source length then run together, their constants cut to that length, and
        the attention weights come back padded with zeros."""
        if self._unfed_mask is None:
            return self._decoder.run(names, feed)
        feed = dict(feed)
        mask = feed.pop(self._unfed_mask)  # (batch, time), 1 then 0 per row
        lengths = mask.sum(axis=1).astype(np.int64)
        time = mask.shape[1]
        if not (mask == (np.arange(time) < lengths[:, None])).all():
            raise InputError(f"state {self._unfed_mask!r}: this decoder takes no mask, so the runtime cuts each row "
                             "to its length; the mask must be 1 for a prefix of each row and 0 after it")
        if (lengths == time).all():
            return self._decoder.run(names, feed)
        results: list[np.ndarray] = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            part = {k: v[rows, :length] if k in self._constants else v[rows] for k, v in feed.items()}
            values = self._decoder.run(names, part)
            if not results:
                results = [np.zeros((len(lengths), time) if n == self.manifest.io.attention
                                    else (len(lengths),) + v.shape[1:], v.dtype) for n, v in zip(names, values)]
            for n, full, v in zip(names, results, values):
                if n == self.manifest.io.attention:
                    full[rows, :length] = v
                else:
                    full[rows] = v
        return results

    def _first_features(self, source: Any, first_input: Any, batch: int) -> np.ndarray:
        m = self.manifest
        if first_input is not None:
            raw = check_features(first_input, m.target.features, "first_input", rank=2)
            if raw.shape[0] != batch:
                raise InputError(f"first_input: batch {raw.shape[0]} does not match the source's {batch}")
        elif m.first_input == "last_source_step":
            raw = np.asarray(source, np.float32)[:, -1, :]  # (batch, features), validated by encode()
        else:
            return np.zeros((batch, m.target.features), np.float32)
        return check_normalised(normalise(raw, m.target.mean, m.target.std), "first_input")

    def _check_max_steps(self, max_steps: int | None) -> int:
        cap = self.manifest.max_steps
        if max_steps is None:
            return cap
        if not isinstance(max_steps, (int, np.integer)) or isinstance(max_steps, bool) or not 1 <= max_steps <= cap:
            raise InputError(f"max_steps must be an integer in [1, {cap}] (the bundle's decode.max_steps cap), "
                             f"got {max_steps!r}")
        return int(max_steps)

    def _vocab(self, side: Any, name: str) -> Vocabulary:
        if not isinstance(side, TokenSpec):
            raise InputError(f"this bundle's {name} is real-valued features, not tokens; use generate()")
        return side.vocabulary
