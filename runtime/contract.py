"""The bundle contract's names, in one place: the runtime owns them, export and training import them.

State tensors: layer k of an LSTM carries ``h{k}`` and ``c{k}``, of a GRU ``h{k}``;
the step graph takes each by that name and returns it as ``{name}_out``.
"""

from __future__ import annotations

__all__ = ["STATE_KINDS", "SOURCE", "SOURCE_LENGTH", "STEP_INPUT", "STEP_OUTPUTS", "LOOP_INPUT", "LOOP_STEPS",
           "LOOP_OUTPUTS", "RECONSTRUCTION", "LATENT", "CONSTANT_KINDS", "MEMORY", "ATTENTION_KEYS", "SOURCE_MASK",
           "ATTENTION", "ATTENTIONAL", "state_kinds", "state_names", "state_output"]

STATE_KINDS = {"lstm": ("h", "c"), "gru": ("h",)}  # the state tensors one layer of each cell carries

SOURCE, SOURCE_LENGTH, STEP_INPUT = "source", "source_length", "step_input"
STEP_OUTPUTS = {"tokens": "logits", "features": "prediction"}  # by target kind

# Fused decode loop graphs: every state, the first decoder input and the step cap in; the outputs out.
LOOP_INPUT, LOOP_STEPS = "first_input", "max_steps"
LOOP_OUTPUTS = {"tokens": "tokens", "features": "predictions"}  # by target kind

# Attention decoders: per-sequence constants the encoder returns and every decoder step takes unchanged
# (kind -> our tensor name), and the step graph's optional attention weights (batch, source time).
MEMORY, ATTENTION_KEYS, SOURCE_MASK = "memory", "attention_keys", "source_mask"
CONSTANT_KINDS = {"memory": MEMORY, "keys": ATTENTION_KEYS, "mask": SOURCE_MASK}
ATTENTION = "attention"
# Input feeding: the previous step's attentional vector, a decoder state of its own that starts at zeros.
ATTENTIONAL = "attentional"

# Autoencoder bundles.
RECONSTRUCTION, LATENT = "reconstruction", "latent"


def state_kinds(cell: str) -> tuple[str, ...]:
    """('h', 'c') for LSTM, ('h',) for GRU."""
    return STATE_KINDS[cell]


def state_names(cell: str, layers: int) -> list[tuple[int, str, str]]:
    """(layer, kind, name) of every state tensor, in the decoder's order: h0, c0, h1, c1, ..."""
    return [(k, kind, f"{kind}{k}") for k in range(layers) for kind in state_kinds(cell)]


def state_output(name: str) -> str:
    """The step graph's output that carries state ``name`` to the next step."""
    return f"{name}_out"
