"""The decoder side of a seq2seq bundle: one decoder_step call, state in and state out.

Attention constants ride in the state dict and pass through every step unchanged. A step graph that takes
no source mask would attend to padding, so its rows run in groups of equal source length.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .decoding import State
from .errors import BundleError, InputError
from .manifest import Manifest, TokenSpec
from .schema import show
from .strategies import Hypothesis

__all__ = ["StepRunner"]


class StepRunner:
    """Calls a bundle's decoder_step graph. Holds no decode state: safe to share across threads."""

    def __init__(self, manifest: Manifest, session) -> None:
        self.manifest, self.session = manifest, session
        self.constants = {c.name: c for c in manifest.constants}
        # A source mask the step graph does not take: steps run per group of rows of equal source length.
        self.unfed_mask = next((c.name for c in manifest.constants if not c.decoder_input), None)
        self.outputs = [manifest.io.step_output] + [s.output for s in manifest.state]
        self.state_names = [s.name for s in manifest.state]
        self.ids = isinstance(manifest.target, TokenSpec)  # step input: ids (batch,) fed as (batch, 1)
        target = manifest.target
        self.width = len(target.vocabulary) if isinstance(target, TokenSpec) else target.features  # step output

    def step(self, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """``x`` ids (batch,) or normalised features (batch, features) -> (output, next state). A batch of
        no rows gives a (0, width) output and the state as it was, without running the graph."""
        if len(x) == 0:
            return np.zeros((0, self.width), np.float32), dict(state)
        feed = dict(state)  # the caller's dict stays as it was
        feed[self.manifest.io.step_input] = x[:, None] if self.ids else x
        out, *next_values = self.run(self.outputs, feed)
        if out.shape != (len(x), self.width):  # wider logits would let argmax pick an id outside the vocabulary
            file = self.manifest.graphs[self.manifest.modes["step"]["decoder"]].file
            name = show(self.manifest.io.step_output)
            raise BundleError(f"{file}: the graph's {name} came back with shape {out.shape}, not "
                              f"({len(x)}, {self.width}) (a row per input, a value per target "
                              f"{'token' if self.ids else 'feature'}); the bundle is corrupt or was altered: "
                              "export it again", code="graph_output", field="graphs.decoder_step")
        after = dict(zip(self.state_names, next_values))
        for name in self.constants:
            after[name] = state[name]
        return out, after

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One decoder_step call. When the step graph does not take the source mask, it would attend to
        padding: rows of equal source length then run together, their constants cut to that length, and
        the attention weights come back padded with zeros."""
        if self.unfed_mask is None:
            return self.session.run(names, feed)
        feed = dict(feed)
        mask = feed.pop(self.unfed_mask)  # (batch, time), 1 then 0 per row
        lengths = mask.sum(axis=1).astype(np.int64)
        time = mask.shape[1]
        if not (mask == (np.arange(time) < lengths[:, None])).all():
            raise InputError(f"state {self.unfed_mask!r}: this decoder takes no mask, so the runtime cuts each row "
                             "to its length; the mask must be 1 for a prefix of each row and 0 after it")
        if (lengths == time).all():
            return self.session.run(names, feed)
        attention = self.manifest.io.attention
        results: list[np.ndarray] = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            part = {k: v[rows, :length] if k in self.constants else v[rows] for k, v in feed.items()}
            values = self.session.run(names, part)
            if not results:
                results = [np.zeros((len(lengths), time) if n == attention else (len(lengths),) + v.shape[1:],
                                    v.dtype) for n, v in zip(names, values)]
            for n, full, v in zip(names, results, values):
                if n == attention:
                    full[rows, :length] = v
                else:
                    full[rows] = v
        return results

    def with_attention(self, state: State, rows: list[list[Hypothesis]]) -> list[list[Hypothesis]]:
        """Replay every hypothesis through the step graph (all of them as one batch) and keep the weights.

        Each is fed its own tokens, so the weights are exactly those the decode computed.
        """
        m = self.manifest
        vocab = m.target.vocabulary
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
            _, attention, *values = self.run(names, feed)
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
