"""The benchmark's models: keras-io sized character models with seeded weights, or any run directory."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.vocab import Vocabulary

__all__ = ["BenchModel", "BUILTIN", "KERAS_IO", "NMT", "NMT_SOURCE_LENGTH", "make_char_run", "make_keras_io_models", "sample_sources"]

# About 70 input and 90 output symbols, as in the keras-io English -> French example.
SOURCE_SYMBOLS = string.ascii_letters + string.digits + " .,!?'-"  # 69 characters
TARGET_SYMBOLS = SOURCE_SYMBOLS + "àâçéèêëîïôùûüÿœæÀÂÇÉÈÊ"  # 91 characters


@dataclass(frozen=True)
class BenchModel:
    name: str
    cell: str
    layers: int
    units: int = 256
    attention: str | None = None
    source_length: int | None = None  # every source this long (attention: the memory's length); else 8-24


# TensorFlow's NMT tutorial (bench/nmt.py), exported with export_functions; every source this long.
NMT, NMT_SOURCE_LENGTH = "tf-nmt-tutorial-256", 16

# The keras-io character seq2seq example's own models (one-hot inputs, softmax output), brought with export_keras.
KERAS_IO = "keras-io-lstm-256"
BUILTIN = {m.name: m for m in (BenchModel("char-lstm-1x256", "lstm", 1), BenchModel("char-lstm-2x256", "lstm", 2),
                               BenchModel("char-gru-1x256", "gru", 1),
                               BenchModel("char-lstm-1x256-luong", "lstm", 1, attention="luong", source_length=20),
                               BenchModel(KERAS_IO, "lstm", 1, source_length=16))}


def make_char_run(spec: BenchModel, out: Path, max_steps: int = 40, seed: int = 0) -> Path:
    """A run directory holding an untrained (seeded) character model of the given shape.

    Speed does not depend on training; every engine decodes the same weights
    and the same inputs, and the table checks that they produce the same tokens.
    """
    import keras

    from ..training.config import ModelConfig, RunConfig, Sides, TrainConfig
    from ..training.models import build_training_model
    from ..training.rundir import CONFIG_FILE, MODEL_FILE, RunDir

    keras.utils.set_random_seed(seed)
    source = Vocabulary.build([SOURCE_SYMBOLS])
    target = Vocabulary.build([TARGET_SYMBOLS], with_start_end=True)
    config = ModelConfig(cell=spec.cell, units=spec.units, layers=spec.layers, embedding_dim=64,
                         attention=spec.attention)
    sides = Sides("tokens", len(source), "tokens", len(target), max_steps)
    out.mkdir(parents=True, exist_ok=True)
    net = build_training_model(config, sides)
    # Larger output weights make the seeded model's choices decisive (no near-ties between logits).
    dense = net.get_layer("output")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias])
    net.save(out / MODEL_FILE)
    RunConfig("bench-char", config, TrainConfig(samples=100, epochs=1), sides).save(out / CONFIG_FILE)
    RunDir(out).save_vocabularies(source, target)
    return out


def sample_sources(vocab: Vocabulary, count: int, seed: int = 0, length: int | None = None) -> list[str]:
    """Random strings of ``length`` (default: 8 to 24) of the vocabulary's ordinary symbols."""
    rng = np.random.default_rng(seed)
    symbols = [t for i, t in enumerate(vocab.tokens) if i not in (vocab.pad_id, vocab.unk_id)]
    return ["".join(rng.choice(symbols, size=length or rng.integers(8, 25))) for _ in range(count)]


def make_keras_io_models(units: int = 256, seed: int = 0):
    """The keras-io character-level example's inference models, built exactly as it builds them (one-hot
    source and target, LSTM with return_state, Dense softmax; "\\t" starts, "\\n" ends), seeded, untrained.

    Returns (encoder_model, decoder_model, source_tokens, target_tokens).
    """
    import keras

    keras.utils.set_random_seed(seed)
    source_tokens = sorted(SOURCE_SYMBOLS)
    target_tokens = sorted(TARGET_SYMBOLS + "\t\n")
    encoder_inputs = keras.Input(shape=(None, len(source_tokens)))
    _, state_h, state_c = keras.layers.LSTM(units, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, len(target_tokens)))
    decoder_lstm = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    decoder_dense = keras.layers.Dense(len(target_tokens), activation="softmax")
    encoder_model = keras.Model(encoder_inputs, [state_h, state_c])
    states_in = [keras.Input(shape=(units,)), keras.Input(shape=(units,))]
    outputs, h, c = decoder_lstm(decoder_inputs, initial_state=states_in)
    decoder_model = keras.Model([decoder_inputs] + states_in, [decoder_dense(outputs), h, c])
    kernel, bias = decoder_dense.get_weights()
    decoder_dense.set_weights([kernel * 8, bias])  # decisive choices, as make_char_run's
    return encoder_model, decoder_model, source_tokens, target_tokens
