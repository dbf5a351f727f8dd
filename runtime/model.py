"""The model object applications use: encode, step, generate, generate_text, decode, decode_text, stream.

Each call returns one type whatever the bundle (listed in runtime/__init__.py's "Stable API"), and a batch
of no rows returns an empty result of that type without running a graph.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import chunks
from .bundle import Bundle
from .chunks import TOKEN_BUDGET, encoder_chunks, length_chunks
from .contract import LOOP_INPUT, LOOP_STEPS
from .decoding import FeedBack, State, decode, rollout_features, run
from .encoding import SourceEncoder
from .errors import BundleError, InputError
from .inputs import (check_features, check_normalised, check_state, check_texts, check_token_ids, normalise,
                     source_step_features)
from .manifest import Manifest, TokenSpec
from .stepping import StepRunner
from .strategies import DecodeOptions, Hypothesis, TextHypothesis, greedy_tokens, make_search
from .vocab import Vocabulary

__all__ = ["Seq2SeqModel", "TOKEN_BUDGET", "encoder_chunks", "length_chunks"]  # the last three: from chunks.py


class Seq2SeqModel:
    """An encoder plus a single-step decoder. Holds no decode state: safe to share across threads."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.manifest: Manifest = bundle.manifest
        m = self.manifest
        self._decoder = StepRunner(m, bundle.sessions["decoder_step"]) if m.has_step else None
        self._state_sizes = {s.name: s.size for s in m.state}
        # Attention decoders: per-sequence constants (memory, keys, mask) ride in the state dict, so every
        # search (beam search tiles and reorders rows) carries them with the state; steps pass them on.
        self._constants = {c.name: c for c in m.constants}
        options = next(iter(bundle.sessions.values())).get_session_options()
        self._encoder = SourceEncoder(m, bundle.sessions, chunked=options.intra_op_num_threads == 1)

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

    # -- the calls ----------------------------------------------------------
    def encode(self, source: Any, lengths: Any = None) -> State:
        """Run the encoder: the decoder's initial state, a dict of named float32 arrays, (batch, size) per
        state tensor (attention bundles add their constants, (batch, time[, size])).

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
        return self._encoder.encode(source, lengths, mode)

    def step(self, step_input: Any, state: State) -> tuple[np.ndarray, State]:
        """One decoder call: a tuple ``(output, next_state)``; the state passed in is not modified.

        ``step_input`` is token ids (batch,) or normalised features (batch, features);
        ``output`` is float32 logits (batch, vocab) or normalised features (batch, features).
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

    @property
    def batch_dependent_modes(self) -> tuple[str, ...]:
        """The modes in which a row's answer may depend on the rows decoded with it: int8 graphs that scale by
        the batch's range (bundles exported before static int8; read from the graphs). Empty for bundles
        exported now: every mode gives each row its answer alone."""
        dependent = self.bundle.batch_dependent
        return tuple(m for m, graphs in self.manifest.modes.items() if dependent & set(graphs.values()))

    def generate(self, source: Any, max_steps: int | None = None, *, lengths: Any = None,
                 first_input: Any = None, mode: str | None = None,
                 options: DecodeOptions | None = None) -> list[np.ndarray]:
        """Greedy decode of a batch: a list of one array per row, in the input's order.

        Token bundles: each row's int32 ids (length,), stopping at its own end token (not
        included) or at ``max_steps``. Feature bundles: each row's float32 (max_steps, features)
        in the data's units (``np.stack`` gives the (batch, steps, features) array); the first
        decoder input is ``first_input`` (batch, features) or what the manifest defines. ``mode``: one of
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
        if isinstance(self.manifest.target, TokenSpec) and first_input is not None:
            raise InputError("first_input applies to feature bundles only; token decoding starts at <s>")
        state = self._encode(source, lengths, mode)
        if isinstance(self.manifest.target, TokenSpec):
            return self._generate_tokens(state, mode, steps)
        return self._generate_features(source, state, mode, steps, first_input)

    def _generate_tokens(self, state: State, mode: str, steps: int) -> list[np.ndarray]:
        batch = next(iter(state.values())).shape[0]
        if batch == 0:
            return []
        vocab = self.manifest.target.vocabulary
        start = np.full(batch, vocab.start_id, dtype=np.int32)
        if mode != "step":
            return self._fused_tokens(mode, state, start, steps, vocab.end_id)
        return greedy_tokens(self._step, state, start, vocab.end_id, steps)

    def _generate_features(self, source: Any, state: State, mode: str, steps: int,
                           first_input: Any) -> list[np.ndarray]:
        batch = next(iter(state.values())).shape[0]
        first = self._first_features(source, first_input, batch)  # checked for an empty batch too
        if batch == 0:
            return []
        if mode != "step":
            out = self._fused(mode, state, first, steps).transpose(1, 0, 2)  # (batch, steps, features)
        else:
            out = rollout_features(self._step, state, first, steps)  # (batch, steps, features)
        target = self.manifest.target
        return list(out * np.asarray(target.std, np.float32) + np.asarray(target.mean, np.float32))

    def _fused(self, mode: str, state: State, first: np.ndarray, steps: int, pad: int = 0) -> np.ndarray:
        """The fused loop's output (steps run, batch[, features]). When the step graph takes no source mask,
        rows of equal source length run together, their constants cut to that length (as step mode does);
        groups that stop early are padded with ``pad`` (the end id)."""
        session = self.bundle.sessions[self.manifest.modes[mode]["decoder"]]
        unfed = next((c.name for c in self.manifest.constants if not c.decoder_input), None)
        lengths = None if unfed is None else state[unfed].sum(axis=1).astype(np.int64)
        if lengths is None or (lengths == state[unfed].shape[1]).all():
            feed = {**state, LOOP_INPUT: first, LOOP_STEPS: np.array(steps, np.int64)}
            return session.run(None, feed)[0][:steps]  # the graph may run past steps
        constants = {c.name for c in self.manifest.constants}
        parts = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            feed = {k: v[rows, :length] if k in constants else v[rows] for k, v in state.items()}
            parts.append((rows, session.run(None, {**feed, LOOP_INPUT: first[rows],
                                                   LOOP_STEPS: np.array(steps, np.int64)})[0][:steps]))
        run = max(p.shape[0] for _, p in parts)
        out = np.full((run, len(lengths)) + parts[0][1].shape[2:], pad, parts[0][1].dtype)
        for rows, p in parts:
            out[: p.shape[0], rows] = p
        return out

    def _fused_tokens(self, mode: str, state: State, start: np.ndarray, steps: int, end_id: int) -> list[np.ndarray]:
        tokens = self._fused(mode, state, start, steps, pad=end_id).T  # (batch, steps run)
        size = len(self.manifest.target.vocabulary)
        low, high = (int(tokens.min()), int(tokens.max())) if tokens.size else (0, 0)
        if low < 0 or high >= size:
            key = self.manifest.modes[mode]["decoder"]
            raise BundleError(f"{self.manifest.graphs[key].file}: the graph emitted token id "
                              f"{low if low < 0 else high}, outside the target vocabulary's ids 0 to {size - 1}; "
                              "the bundle is corrupt or was altered: export it again",
                              code="graph_output", field=f"graphs.{key}")
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
        """Translate a list of strings: one string per text, in order (greedy by default; ``options``
        picks sampling or beam search). Token bundles only.

        Texts are decoded in length-sorted chunks of at most TOKEN_BUDGET padded ids, so memory
        follows the input's total size, not its count times its longest text; results keep the
        caller's order.
        """
        self.check_decoding(mode, options)  # checked for an empty list too
        self._check_max_steps(max_steps)
        results = self._by_chunks(texts, lambda ids, lengths: self.generate(
            ids, max_steps, lengths=lengths, mode=mode, options=options))
        return [self.target_vocab.decode(row) for row in results]

    def decode(self, source: Any, options: DecodeOptions | None = None, *, lengths: Any = None,
               max_steps: int | None = None, return_attention: bool = False) -> list[list[Hypothesis]]:
        """Token bundles: decode with scores. A list per row of Hypothesis (tokens, log_prob, score,
        ended): 1 (greedy, sample) or the ``n_best`` of a beam search, best first.

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
        batch = next(iter(state.values())).shape[0]
        if batch == 0:
            return []
        start = np.full(batch, vocab.start_id, np.int32)
        search = decode(self._step, state, start, steps, make_search(options, vocab.end_id))
        rows = search.hypotheses()
        return self._decoder.with_attention(state, rows) if return_attention else rows

    def decode_text(self, texts: Sequence[str], options: DecodeOptions | None = None,
                    max_steps: int | None = None) -> list[list[TextHypothesis]]:
        """``decode`` for strings: per input, a list of TextHypothesis (text, log_prob, score), a named
        tuple, best first (chunked as ``generate_text``)."""
        self._need_step("decode() (scores, sampling and beam search)")  # checked for an empty list too
        self._check_max_steps(max_steps)
        results = self._by_chunks(texts, lambda ids, lengths: self.decode(
            ids, options, lengths=lengths, max_steps=max_steps))
        return [[TextHypothesis(self.target_vocab.decode(h.tokens), h.log_prob, h.score) for h in row]
                for row in results]

    def _by_chunks(self, texts: Sequence[str], run: Callable[[np.ndarray, np.ndarray], list]) -> list:
        """``run(ids, lengths)`` over length-sorted chunks of ``texts``; one result per text, in order."""
        texts = check_texts(texts)
        source, _ = self.source_vocab, self.target_vocab  # token bundles only: refused for an empty list too
        return chunks.by_text_chunks(texts, source, run)

    def stream(self, source: Any, max_steps: int | None = None, *, lengths: Any = None, first_input: Any = None,
               options: DecodeOptions | None = None) -> Iterator[np.ndarray]:
        """An iterator of each step's output (one array per step), yielded as soon as it is computed.

        Token bundles: the step's int32 token ids (batch,), -1 for rows that already ended
        (greedy or sampling; beam search only knows its best sequence at the end).
        Feature bundles: the step's float32 rows (batch, features) in the data's units.
        Arguments are checked and the source encoded when ``stream`` is called, not at the first ``next``;
        a batch of no rows yields nothing.
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
        if batch == 0:
            if not isinstance(m.target, TokenSpec):
                self._first_features(source, first_input, batch)  # a bad first_input is refused all the same
            return iter(())
        if isinstance(m.target, TokenSpec):
            search = make_search(options, m.target.vocabulary.end_id)
            start = np.full(batch, m.target.vocabulary.start_id, np.int32)
            return (search.emitted for _ in run(self._step, state, start, steps, search))
        first = self._first_features(source, first_input, batch)
        std, mean = np.asarray(m.target.std, np.float32), np.asarray(m.target.mean, np.float32)
        return (x * std + mean for x in run(self._step, state, first, steps, FeedBack()))

    # -- internals ----------------------------------------------------------
    def _step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        return self._decoder.step(x, state)

    def _first_features(self, source: Any, first_input: Any, batch: int) -> np.ndarray:
        m = self.manifest
        if first_input is not None:
            raw = check_features(first_input, m.target.features, "first_input", rank=2)
            if raw.shape[0] != batch:
                raise InputError(f"first_input: batch {raw.shape[0]} does not match the source's {batch}")
        else:  # 'last_source_step' or a source_step rule: (batch, features), the source validated by encode()
            raw = source_step_features(source, m.first_input) if batch else None
            if raw is None:
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
