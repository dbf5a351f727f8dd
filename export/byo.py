"""Bring your own Keras models: export the encoder_model / decoder_model pair of the keras-io
seq2seq example (one-hot or id inputs, "\\t" start and "\\n" end) or a continuous decoder fed its
own output, reading the state contract from the models' own graphs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..runtime.contract import ATTENTION, MEMORY, SOURCE, SOURCE_MASK, STEP_INPUT, STEP_OUTPUTS, state_output
from ..runtime.contract import STATE_KINDS as KINDS
from ..runtime.vocab import Vocabulary
from .byo_bundle import write_byo_bundle
from .byo_fused import fused_weights
from .byo_wiring import check_models, encoder_feeds, memory_output
from .convert import ExportError
from .writing import check_modes
from .support import all_layers, cell_of_layer, check_supported_layers

__all__ = ["export_keras", "StateSlot", "decoder_contract"]

@dataclass(frozen=True)
class StateSlot:
    """One decoder state: our name, its layer and kind, and where it sits in the user's decoder_model."""

    name: str
    layer: int
    kind: str
    size: int
    input_index: int
    output_index: int
    input_name: str


@dataclass(frozen=True)
class DecoderContract:
    cell: str
    slots: tuple[StateSlot, ...]
    step_input_index: int
    step_output_index: int
    probabilities: bool  # the step output is a softmax, not logits
    # Attention decoders: which decoder_model input is the encoder's sequence (batch, time, units), which
    # (if any) its mask (batch, time), and which output (if any) the attention weights.
    memory_index: int | None = None
    mask_index: int | None = None
    attention_index: int | None = None
    memory_size: int | None = None


def _initial_state(node) -> list:
    args, kwargs = node.arguments.args, node.arguments.kwargs
    init = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
    if init is None:
        return []
    return list(init) if isinstance(init, (list, tuple)) else [init]


def decoder_contract(decoder_model, memory_size: int | None = None) -> DecoderContract:
    """Pair each recurrent layer's state inputs and outputs by tracing the decoder_model's graph.

    ``memory_size``: the units of the encoder's sequence output, for attention decoders.
    """
    check_supported_layers(decoder_model)
    rnn = [layer for layer in all_layers(decoder_model) if cell_of_layer(layer)]
    cells = {cell_of_layer(layer) for layer in rnn}
    if len(cells) != 1:
        raise ExportError(f"{decoder_model.name}: the decoder needs recurrent layers of one kind (LSTM or GRU), "
                          f"found {sorted(cells) or 'none'}")
    cell = cells.pop()
    input_index = {id(t): i for i, t in enumerate(decoder_model.inputs)}
    slots = []
    for out_i, tensor in enumerate(decoder_model.outputs):
        layer, node_index, tensor_index = tensor._keras_history
        if not cell_of_layer(layer) or tensor_index == 0:
            continue
        kind = KINDS[cell][tensor_index - 1]
        init = _initial_state(layer._inbound_nodes[node_index])
        if len(init) != len(KINDS[cell]) or id(init[tensor_index - 1]) not in input_index:
            raise ExportError(f"decoder layer {layer.name!r} returns its {kind} state but does not take it as an "
                              "initial_state input of decoder_model; build decoder_model as "
                              "Model([decoder_inputs] + state_inputs, [outputs] + states)")
        in_i = input_index[id(init[tensor_index - 1])]
        k = rnn.index(layer)
        slots.append(StateSlot(f"{kind}{k}", k, kind, layer.units, in_i, out_i, decoder_model.inputs[in_i].name))
    slots.sort(key=lambda s: (s.layer, KINDS[cell].index(s.kind)))
    missing = [layer.name for k, layer in enumerate(rnn) if len([s for s in slots if s.layer == k]) != len(KINDS[cell])]
    if missing:
        raise ExportError(f"decoder layer(s) {missing} do not both take and return their full state "
                          "(return_state=True, initial_state from decoder_model inputs)")
    rest_in = [i for i in range(len(decoder_model.inputs)) if i not in {s.input_index for s in slots}]
    rest_out = [i for i in range(len(decoder_model.outputs)) if i not in {s.output_index for s in slots}]
    roles = _attention_roles(decoder_model, rest_in, rest_out, memory_size)
    rest_in = [i for i in rest_in if i not in (roles["memory"], roles["mask"])]
    rest_out = [i for i in rest_out if i != roles["attention"]]
    if len(rest_in) != 1 or len(rest_out) != 1:
        raise ExportError(f"{decoder_model.name}: expected one step input and one step output besides the states"
                          f"{' and the attention inputs' if roles['memory'] is not None else ''}, found "
                          f"{len(rest_in)} inputs and {len(rest_out)} outputs")
    return DecoderContract(cell, tuple(slots), rest_in[0], rest_out[0],
                           _is_softmax(decoder_model.outputs[rest_out[0]]._keras_history[0]),
                           roles["memory"], roles["mask"], roles["attention"], memory_size)


# Layers whose output may be the attention weights (Keras gives MultiHeadAttention's scores a static time
# axis of the query's length, so the source time cannot be told from the shape there).
ATTENTION_LAYERS = ("Attention", "AdditiveAttention", "MultiHeadAttention", "Softmax")


def _attention_roles(decoder_model, rest_in: list[int], rest_out: list[int], memory_size: int | None) -> dict:
    """Find the attention inputs and output by rank, size and dtype, not by position.

    memory: the (batch, time, units) input whose units equal the encoder's sequence output; mask: a
    (batch, time) bool or float input besides the step input (ids are integers); attention weights:
    the output whose last axis is the source time (unknown until run), (batch, [heads,] [1,] time).
    """
    roles = {"memory": None, "mask": None, "attention": None}
    if memory_size is None:
        return roles
    inputs, outputs = decoder_model.inputs, decoder_model.outputs
    memory = [i for i in rest_in if len(inputs[i].shape) == 3 and inputs[i].shape[-1] == memory_size
              and inputs[i].shape[1] is None and "float" in str(inputs[i].dtype)]
    if len(memory) != 1:
        found = [f"{inputs[i].name} {tuple(inputs[i].shape)}" for i in memory] or "none"
        raise ExportError(f"encoder_model returns a sequence (batch, time, {memory_size}), so decoder_model must "
                          f"take it as exactly one input of shape (batch, time, {memory_size}); found {found}")
    roles["memory"] = memory[0]
    masks = [i for i in rest_in if len(inputs[i].shape) == 2 and "int" not in str(inputs[i].dtype)]
    if len(masks) > 1:
        raise ExportError(f"decoder_model has {len(masks)} inputs that could be the source mask (batch, time): "
                          f"{[inputs[i].name for i in masks]}; it may take one")
    roles["mask"] = masks[0] if masks else None
    weights = [i for i in rest_out if 2 <= len(outputs[i].shape) <= 4 and (
        outputs[i].shape[-1] is None or type(outputs[i]._keras_history[0]).__name__ in ATTENTION_LAYERS)]
    if len(weights) > 1:
        raise ExportError(f"decoder_model has {len(weights)} outputs over the source time: "
                          f"{[outputs[i].name for i in weights]}; return at most one (the attention weights)")
    roles["attention"] = weights[0] if weights else None
    return roles


def _is_softmax(layer) -> bool:
    layer = getattr(layer, "layer", layer)  # TimeDistributed
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def _one_hot(size: int, name: str):
    import keras

    layer = keras.layers.Embedding(size, size, embeddings_initializer="identity", trainable=False, name=name)
    layer.build((None, None))
    return layer


def _source_size(source_tokens) -> int:
    """How many ids the wrapped encoder's source takes (its vocabulary)."""
    if source_tokens is None:
        raise ExportError("attention over the encoder's outputs is exported for token sources; pass source_tokens")
    return len(source_tokens)


def _side_kind(tensor, tokens: Sequence[str] | None, what: str) -> str:
    """'one_hot', 'ids' or 'features' for a model input."""
    rank, dtype = len(tensor.shape), str(tensor.dtype)
    if tokens is None:
        if "int" in dtype:
            raise ExportError(f"{what} takes integer ids: pass the index-to-token list ({what}_tokens=...)")
        return "features"
    if "int" in dtype or (rank == 2 and tensor.shape[-1] != len(tokens)):
        return "ids"  # a float (batch, time) input feeding an Embedding takes ids too: the wrapper casts them
    if tensor.shape[-1] != len(tokens):
        raise ExportError(f"{what} input has {tensor.shape[-1]} one-hot channels but {len(tokens)} tokens were given")
    return "one_hot" if rank == 3 else "features"


def _cast(ids, model_input):
    """Our int32 ids as the model input's dtype (a float Input(shape=(None,)) feeding an Embedding)."""
    import keras

    dtype = str(model_input.dtype)
    if "int" in dtype:
        return ids
    return keras.layers.Lambda(lambda t: keras.ops.cast(t, dtype), name=f"{ids.name}_as_{dtype}")(ids)


def wrap_models(encoder_model, decoder_model, contract: DecoderContract, feeds: list[str],
                source_tokens, target_tokens):
    """Our-named (encoder, decoder_step) Keras models around the user's ones."""
    import keras
    from keras import layers

    src_t = encoder_model.inputs[0]
    src_kind = _side_kind(src_t, source_tokens, "source")
    if src_kind == "features":
        source = keras.Input(tuple(src_t.shape[1:]), name=SOURCE)
        x = source
    else:
        source = keras.Input(tuple(src_t.shape[1:2]), dtype="int32", name=SOURCE)
        x = _one_hot(len(source_tokens), "source_one_hot")(source) if src_kind == "one_hot" else _cast(source, src_t)
    outs = encoder_model(x)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    seq = memory_output(encoder_model)
    named = [layers.Identity(name=n)(o)  # one output per state it feeds: the manifest reads each by its name
             for group, o in zip(feeds, [o for i, o in enumerate(outs) if i != seq]) for n in group]
    if seq is not None:  # attention: the memory, and a mask of ones (rows are encoded unpadded; see runtime)
        named.append(layers.Identity(name=MEMORY)(outs[seq]))
        ones = layers.Embedding(_source_size(source_tokens), 1, embeddings_initializer="ones",
                                trainable=False, name="source_ones")
        named.append(layers.Reshape((-1,), name=SOURCE_MASK)(ones(source)))
    encoder = keras.Model(source, named, name="encoder")

    step_t = decoder_model.inputs[contract.step_input_index]
    tgt_kind = _side_kind(step_t, target_tokens, "target")
    if tgt_kind == "features":
        width = step_t.shape[-1]
        step = keras.Input((width,), name=STEP_INPUT)
        y = layers.Reshape((1, width))(step) if len(step_t.shape) == 3 else step
    else:
        step = keras.Input((1,), dtype="int32", name=STEP_INPUT)
        y = _one_hot(len(target_tokens), "target_one_hot")(step) if tgt_kind == "one_hot" else _cast(step, step_t)
    states = {s.name: keras.Input((s.size,), name=s.name) for s in contract.slots}
    args = [None] * len(decoder_model.inputs)
    args[contract.step_input_index] = y
    for s in contract.slots:
        args[s.input_index] = states[s.name]
    constants = []
    if contract.memory_index is not None:
        constants.append(keras.Input((None, contract.memory_size), name=MEMORY))
        args[contract.memory_index] = constants[-1]
    if contract.mask_index is not None:  # ours is float 1/0; give the model the dtype it declared
        constants.append(keras.Input((None,), name=SOURCE_MASK))
        dtype = str(decoder_model.inputs[contract.mask_index].dtype)
        args[contract.mask_index] = layers.Lambda(lambda m: keras.ops.cast(m, dtype), name="mask_cast")(constants[-1])
    outs = decoder_model(args)
    width = decoder_model.outputs[contract.step_output_index].shape[-1]
    result = layers.Reshape((width,))(outs[contract.step_output_index])  # (batch, vocab or features)
    if contract.probabilities:  # log-probabilities are logits: the runtime sees one kind of output
        result = layers.Lambda(lambda p: keras.ops.log(keras.ops.maximum(p, 1e-30)), name="log_probs")(result)
    name = STEP_OUTPUTS["features" if tgt_kind == "features" else "tokens"]
    outputs = [layers.Identity(name=name)(result)]
    outputs += [layers.Identity(name=state_output(s.name))(outs[s.output_index]) for s in contract.slots]
    if contract.attention_index is not None:  # (batch, [heads,] [1,] time) -> (batch, time), heads averaged
        weights = outs[contract.attention_index]
        if len(weights.shape) == 4:
            weights = layers.Lambda(lambda w: keras.ops.mean(w, axis=1), name="mean_over_heads")(weights)
        outputs.append(layers.Reshape((-1,), name=ATTENTION)(weights))
    decoder = keras.Model([step] + [states[s.name] for s in contract.slots] + constants, outputs,
                          name="decoder_step")
    return encoder, decoder, src_kind, tgt_kind


def export_keras(encoder_model, decoder_model, out_dir: str | Path, *, source_tokens: Sequence[str] | None = None,
                 target_tokens: Sequence[str] | None = None, start_token: str | None = None,
                 end_token: str | None = None, max_steps: int | None = None, force: bool = False,
                 state_map=None, zero_states: Sequence[str] | None = None, first_input: str = "zeros",
                 parity_sources=None, modes=None, reference=None, samples=None):
    """Export a user's inference encoder_model and one-step decoder_model to a verified bundle.

    ``source_tokens``/``target_tokens``: index-to-token lists (the models read one-hot vectors
    over them, or integer ids if they embed); ``start_token``/``end_token`` delimit target
    sequences; ``max_steps`` caps decoding (required). The state contract is read from the
    models. How each decoder state starts is never guessed: when the encoder returns as many states as the
    decoder takes (sizes matching), they feed them in order; otherwise ``state_map`` says which decoder state
    input(s) each encoder output feeds, as a list (per encoder state output, an input name or a list of names)
    or a dict ``{encoder output index or name: input name or [names]}`` (one output may start several layers),
    and ``zero_states=[decoder state input names]`` declares the states your loop starts at zero. A decoder
    state left with neither is refused before anything is written, with a message showing both fixes.
    Real-valued decoders start from ``first_input``: 'zeros', 'last_source_step' (the whole last source step;
    source and target of one width), or ``{"source_features": [i, ...]}``: the last source step's features at
    these indices, one per target feature, as a forecaster's own loop starts from ``x[:, -1, [i, ...]]``. The
    manifest records it as a rule, so every runtime starts there with no argument, and parity is checked from it.
    A forecaster exported with 'zeros' decodes from zeros: right only if the user's loop starts from zeros too.
    Parity is checked on ``parity_sources`` (texts, or ids / feature windows as the models take them) or,
    without them, on seeded random inputs that export draws itself; the report and the manifest say which.
    ``modes`` (e.g. ``["fused-int8"]``): write only these decode modes' graphs; without 'step' the bundle
    decodes greedily only. Default: every mode that can be built.
    ``reference``: your own decode function, called on one parity source at a time (a text, a 1-D array of
    ids, or a (time, features) window, as ``parity_sources`` holds them; export's drawn sources otherwise)
    and returning the decoded text, its token ids, or a (steps, features) array, e.g. keras-io's
    ``decode_sequence`` behind a function that one-hot encodes the text. Export runs it on every parity source
    and refuses (ParityError, nothing written) a bundle whose greedy decode differs from it on any row in any
    fp32 mode; int8 modes report their agreement. Recorded as ``reference_loop`` in the parity report.
    encoder_model and decoder_model must be functional keras.Model objects (subclassed ones: see
    ``seq2seq_edge.export.functions.export_functions``); a float ``Input(shape=(None,))`` feeding an
    Embedding takes token ids like an int one.
    """
    import warnings

    if samples is not None:  # the argument's name before parity_sources
        warnings.warn("export_keras(samples=...) is now parity_sources=...", DeprecationWarning, stacklevel=2)
        if parity_sources is not None:
            raise ExportError("pass parity_sources= only (samples= is its old name)")
        parity_sources = samples
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ExportError(f"max_steps must be a positive integer (the longest output to decode), got {max_steps!r}")
    with warnings.catch_warnings():  # Keras warns that our Reshape/Identity layers drop the masks it tracks
        warnings.filterwarnings("ignore", message=r".*does not support masking")
        return _export(encoder_model, decoder_model, out_dir, source_tokens, target_tokens, start_token, end_token,
                       max_steps, force, state_map, zero_states, first_input, parity_sources, check_modes(modes),
                       reference)


def _export(encoder_model, decoder_model, out_dir, source_tokens, target_tokens, start_token, end_token, max_steps,
            force, state_map, zero_states, first_input, parity_sources, modes, reference):
    check_models(encoder_model=encoder_model, decoder_model=decoder_model)
    check_supported_layers(encoder_model)
    seq = memory_output(encoder_model)
    contract = decoder_contract(decoder_model, None if seq is None else encoder_model.outputs[seq].shape[-1])
    feeds = encoder_feeds(encoder_model, contract, state_map, zero_states)
    encoder, decoder, src_kind, tgt_kind = wrap_models(encoder_model, decoder_model, contract, feeds,
                                                       source_tokens, target_tokens)
    vocabs = _vocabularies(source_tokens, target_tokens, start_token, end_token, tgt_kind)
    fused, not_fused = fused_weights(decoder_model, contract, tgt_kind)
    fed = [name for group in feeds for name in group]
    return write_byo_bundle(encoder, decoder, contract, fed, vocabs, out_dir, max_steps=max_steps, force=force,
                            fused=fused, not_fused=not_fused,
                            first_input=first_input, parity_sources=parity_sources, encoder_model=encoder_model,
                            modes=modes, reference=reference)


def _vocabularies(source_tokens, target_tokens, start_token, end_token, tgt_kind):
    source = None if source_tokens is None else Vocabulary(tuple(source_tokens), pad_id=None)
    if tgt_kind == "features":
        return source, None
    missing = [n for n, t in (("start_token", start_token), ("end_token", end_token)) if t not in target_tokens]
    if missing:
        raise ExportError(f"{' and '.join(missing)} must be one of target_tokens (e.g. start_token='\\t', "
                          "end_token='\\n' for the keras-io example)")
    tokens = tuple(target_tokens)
    return source, Vocabulary(tokens, pad_id=None, start_id=tokens.index(start_token), end_id=tokens.index(end_token))
