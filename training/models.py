"""Keras builders: the teacher-forced training model and the inference models that share its layers.

Layers are named and found by name:
    source_embedding (token sources), encoder_rnn_{k}, target_embedding (token
    targets), decoder_rnn_{k}, output.
Each recurrent layer is an LSTM (state h, c) or a GRU (state h). Decoder layer
k starts from the final state of encoder layer k (with a bidirectional encoder,
its forward and backward final states side by side, joined by the
encoder_{h,c}{k}_both Concatenate layers). Inference models name their
outputs with Identity layers, so the exported graphs carry our tensor names:
encoder -> h{k}[, c{k}]; decoder_step -> step output, h{k}_out[, c{k}_out].
Attention adds attention_key_dense, attend and attention_combine; with input
feeding, one input_fed_decoder layer holds the decoder cells (decoder_cell_{k}),
attend and attention_combine instead (``decoder_layers``, ``attention_layers``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from ..runtime.contract import (ATTENTION, ATTENTION_KEYS, ATTENTIONAL, MEMORY, SOURCE, SOURCE_MASK, STEP_INPUT,
                                STEP_OUTPUTS, state_kinds, state_output)
from .attention import Attend, InputFedDecoder
from .config import ConfigError, ModelConfig, Sides

__all__ = ["build_training_model", "build_encoder", "build_decoder_step", "decoder_layers", "attention_layers",
           "INPUT_FED_DECODER"]

INPUT_FED_DECODER = "input_fed_decoder"


def decoder_layers(model: keras.Model, cfg: ModelConfig) -> list:
    """The decoder's recurrent layers (LSTM/GRU layers, or the cells of an input-fed decoder), bottom first."""
    if cfg.input_feeding:
        return list(model.get_layer(INPUT_FED_DECODER).cells)
    return [model.get_layer(f"decoder_rnn_{k}") for k in range(cfg.layers)]


def attention_layers(model: keras.Model, cfg: ModelConfig) -> tuple:
    """(attend, attention_combine) of an attention model."""
    if cfg.input_feeding:
        decoder = model.get_layer(INPUT_FED_DECODER)
        return decoder.attend, decoder.combine
    return model.get_layer("attend"), model.get_layer("attention_combine")


def recurrent_layer(cell: str, units: int, activation: str, name: str, **options) -> layers.Layer:
    """An LSTM or GRU layer (Keras defaults otherwise, e.g. GRU reset_after=True)."""
    cls = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    return cls(units, activation=activation, name=name, **options)


def _rnn(cfg: ModelConfig, name: str) -> layers.Layer:
    return recurrent_layer(cfg.cell, cfg.units, cfg.activation, name, return_sequences=True, return_state=True)


def _encoder_rnn(cfg: ModelConfig, k: int) -> layers.Layer:
    if not cfg.bidirectional:
        return _rnn(cfg, f"encoder_rnn_{k}")
    cell = recurrent_layer(cfg.cell, cfg.units // 2, cfg.activation, f"encoder_cell_{k}", return_sequences=True,
                           return_state=True)
    return layers.Bidirectional(cell, name=f"encoder_rnn_{k}")


def _encode(layer: layers.Layer, x, cfg: ModelConfig, k: int):
    """Run encoder layer k: (sequence, [h] or [h, c]); a bidirectional layer's states are [forward; backward]."""
    x, *state = layer(x)
    if cfg.bidirectional:  # state: fh, fc, bh, bc -> concat(fh, bh), concat(fc, bc)
        half = len(state) // 2
        state = [layers.Concatenate(name=f"encoder_{kind}{k}_both")([f, b])
                 for kind, f, b in zip(state_kinds(cfg.cell), state[:half], state[half:])]
    return x, state


def build_training_model(cfg: ModelConfig, sides: Sides) -> keras.Model:
    """Teacher-forced model: inputs ``source`` and ``target_input``, output per-step logits or values.

    With ``cfg.dropout``, Dropout layers sit on every non-recurrent connection
    (inputs of each recurrent layer, and the output layer's input); they are
    identities at inference, so the inference models simply leave them out.
    The output layer computes in float32 under a mixed-precision policy too
    (logits feed a softmax and the loss).
    """
    drop = (lambda t: layers.Dropout(cfg.dropout)(t)) if cfg.dropout else (lambda t: t)
    if cfg.attention and sides.source_kind != "tokens":
        raise ConfigError(f"attention is built for token sources; this task's source is {sides.source_kind}")
    source = _source_input(sides)
    x = _embed_source(source, sides, cfg, mask=True)
    states = []
    for k in range(cfg.layers):
        x, state = _encode(_encoder_rnn(cfg, k), drop(x), cfg, k)  # x: (batch, time, units); state: [h] or [h, c]
        states.append(state)
    if sides.target_kind == "tokens":
        target_input = keras.Input((None,), dtype="int32", name="target_input")
        y = layers.Embedding(sides.target_size, cfg.embedding_dim, name="target_embedding")(target_input)
    else:
        target_input = keras.Input((None, sides.target_size), dtype="float32", name="target_input")
        y = target_input
    if cfg.attention:
        memory, mask = x, _source_mask(source, sides)  # (batch, time, units), (batch, time)
        keys = _keys_layer(cfg)(memory)
    if cfg.input_feeding:  # one layer runs the cells, attention and the fed-back attentional vector per step
        decoder = InputFedDecoder(cfg.cell, cfg.units, cfg.layers, cfg.activation, cfg.attention,
                                  name=INPUT_FED_DECODER)
        y = decoder([drop(y), keys, memory, mask] + [t for state in states for t in state])[0]
        output = layers.Dense(sides.target_size, name="output", dtype="float32")(drop(y))
        return keras.Model([source, target_input], output, name="seq2seq")
    for k in range(cfg.layers):
        y, *_ = _rnn(cfg, f"decoder_rnn_{k}")(drop(y), initial_state=states[k])  # (batch, steps, units)
    if cfg.attention:
        y, _ = _attentional(cfg, y, keys, memory, mask)
    # (batch, steps, vocab or features)
    output = layers.Dense(sides.target_size, name="output", dtype="float32")(drop(y))
    return keras.Model([source, target_input], output, name="seq2seq")


def _keys_layer(cfg: ModelConfig) -> layers.Layer:
    """The memory's projection, once per sequence: Luong's W_a of the "general" score, Bahdanau's W_1 (+ bias)."""
    return layers.Dense(cfg.units, use_bias=cfg.attention == "bahdanau", name="attention_key_dense")


def _attentional(cfg: ModelConfig, y, keys, memory, mask, model: keras.Model | None = None):
    """(attentional vector tanh(W_c [context; y]) (batch, steps, units), weights (batch, steps, time))."""
    get = model.get_layer if model is not None else None
    attend = get("attend") if get else Attend(cfg.attention, cfg.units, name="attend")
    combine = get("attention_combine") if get else layers.Dense(cfg.units, activation="tanh",
                                                                 name="attention_combine")
    context, weights = attend([y, keys, memory, mask])
    return combine(layers.Concatenate(name="attention_concat")([context, y])), weights


def _source_mask(source, sides: Sides, model: keras.Model | None = None):
    """(batch, time) float, 1 where the source has a token and 0 at padding: a frozen embedding of the ids."""
    if model is not None:
        embed = model.get_layer("source_mask_embedding")
    else:
        embed = layers.Embedding(sides.source_size, 1, trainable=False, name="source_mask_embedding")
        embed.build((None, None))
        embed.set_weights([np.concatenate([[[0.0]], np.ones((sides.source_size - 1, 1))]).astype("float32")])
    return layers.Reshape((-1,), name="source_mask_flat")(embed(source))


def build_encoder(model: keras.Model, cfg: ModelConfig, sides: Sides, *, masked: bool = True) -> keras.Model:
    """source -> h{k}[, c{k}] for every layer; ``masked`` keeps Keras's padding mask on token sources.

    The unmasked LSTM form is what export converts: padding is then honoured
    by the ONNX LSTM op's sequence_lens input, which keeps the fast native op.
    """
    source = _source_input(sides)
    x = _embed_source(source, sides, cfg, mask=masked, model=model)
    outputs = []
    for k in range(cfg.layers):
        x, state = _encode(model.get_layer(f"encoder_rnn_{k}"), x, cfg, k)
        outputs += [layers.Identity(name=f"{kind}{k}")(t) for kind, t in zip(state_kinds(cfg.cell), state)]
    if cfg.attention:  # the per-sequence constants every decoder step takes
        outputs += [layers.Identity(name=MEMORY)(x), layers.Identity(name=ATTENTION_KEYS)(model.get_layer(
            "attention_key_dense")(x)), layers.Identity(name=SOURCE_MASK)(_source_mask(source, sides, model))]
    return keras.Model(source, outputs, name="encoder")


def build_decoder_step(model: keras.Model, cfg: ModelConfig, sides: Sides) -> keras.Model:
    """(step_input, h{k}[, c{k}]) -> (step output, h{k}_out[, c{k}_out]): one decoder step."""
    if sides.target_kind == "tokens":
        step_input = keras.Input((1,), dtype="int32", name=STEP_INPUT)  # (batch, 1) ids
        y = model.get_layer("target_embedding")(step_input)  # (batch, 1, embedding)
    else:
        step_input = keras.Input((sides.target_size,), dtype="float32", name=STEP_INPUT)  # (batch, features)
        y = layers.Reshape((1, sides.target_size), name="step_time_axis")(step_input)
    state_inputs, outputs = [], []
    if cfg.input_feeding:
        return _input_fed_step(model, cfg, sides, step_input, y)
    for k in range(cfg.layers):
        kinds = state_kinds(cfg.cell)
        inputs = [keras.Input((cfg.units,), name=f"{kind}{k}") for kind in kinds]
        y, *state = model.get_layer(f"decoder_rnn_{k}")(y, initial_state=inputs)
        state_inputs += inputs
        outputs += [layers.Identity(name=state_output(f"{kind}{k}"))(t) for kind, t in zip(kinds, state)]
    if cfg.attention:
        memory = keras.Input((None, cfg.units), name=MEMORY)
        keys = keras.Input((None, cfg.units), name=ATTENTION_KEYS)
        mask = keras.Input((None,), name=SOURCE_MASK)
        y, weights = _attentional(cfg, y, keys, memory, mask, model)  # (batch, 1, units), (batch, 1, time)
        result = model.get_layer("output")(layers.Reshape((cfg.units,), name="step_attentional")(y))
        result = layers.Identity(name=STEP_OUTPUTS[sides.target_kind])(result)
        weights = layers.Reshape((-1,), name=ATTENTION)(weights)
        return keras.Model([step_input] + state_inputs + [memory, keys, mask], [result] + outputs + [weights],
                           name="decoder_step")
    # The last layer's new h equals its (single) output step: (batch, units) -> (batch, vocab or features).
    result = model.get_layer("output")(state[0])
    result = layers.Identity(name=STEP_OUTPUTS[sides.target_kind])(result)
    return keras.Model([step_input] + state_inputs, [result] + outputs, name="decoder_step")


def _input_fed_step(model: keras.Model, cfg: ModelConfig, sides: Sides, step_input, y) -> keras.Model:
    """The input-fed step: states h{k}[, c{k}] and ``attentional`` (the previous step's vector) in and out."""
    state_inputs = [keras.Input((cfg.units,), name=f"{kind}{k}") for k in range(cfg.layers)
                    for kind in state_kinds(cfg.cell)]
    fed = keras.Input((cfg.units,), name=ATTENTIONAL)
    memory = keras.Input((None, cfg.units), name=MEMORY)
    keys = keras.Input((None, cfg.units), name=ATTENTION_KEYS)
    mask = keras.Input((None,), name=SOURCE_MASK)
    attentional, weights, fed_out, *states = model.get_layer(INPUT_FED_DECODER)(
        [y, keys, memory, mask, fed] + state_inputs)  # y: (batch, 1, embedding): one step, no loop
    result = model.get_layer("output")(layers.Reshape((cfg.units,), name="step_attentional")(attentional))
    outputs = [layers.Identity(name=STEP_OUTPUTS[sides.target_kind])(result)]
    outputs += [layers.Identity(name=state_output(t.name))(v) for t, v in zip(state_inputs, states)]
    outputs += [layers.Identity(name=state_output(ATTENTIONAL))(fed_out),
                layers.Reshape((-1,), name=ATTENTION)(weights)]
    return keras.Model([step_input] + state_inputs + [fed, memory, keys, mask], outputs, name="decoder_step")


def _source_input(sides: Sides) -> keras.KerasTensor:
    if sides.source_kind == "tokens":
        return keras.Input((None,), dtype="int32", name=SOURCE)  # (batch, time) ids, right-padded with 0
    return keras.Input((None, sides.source_size), dtype="float32", name=SOURCE)  # (batch, time, features)


def _embed_source(source, sides: Sides, cfg: ModelConfig, *, mask: bool, model: keras.Model | None = None):
    if sides.source_kind != "tokens":
        return source
    if model is None:
        return layers.Embedding(sides.source_size, cfg.embedding_dim, mask_zero=True,
                                name="source_embedding")(source)
    trained = model.get_layer("source_embedding")
    if mask:
        return trained(source)
    # Same weights, no mask: a copy of the layer with mask_zero off.
    plain = layers.Embedding(sides.source_size, cfg.embedding_dim, mask_zero=False, name="source_embedding")
    plain.build((None, None))
    plain.set_weights(trained.get_weights())
    return plain(source)
