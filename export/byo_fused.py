"""The fused decode loop for users' own decoders: find, in the decoder_model's graph, the pattern the loop
computes - [Embedding or one-hot] -> LSTM/GRU stack -> Dense - and take its weights; or say why not."""

from __future__ import annotations

import numpy as np

from .convert import ExportError
from .fused_weights import AttentionWeights, DecoderWeights, RecurrentWeights
from .support import all_layers, cell_of_layer

__all__ = ["fused_weights"]

PASS_THROUGH = ("Dropout", "Identity")  # identities at inference


def _producer(tensor):
    """(layer, its call's positional arguments, output index) that made ``tensor``, skipping identities."""
    layer, node, index = _node(tensor)
    return layer, node.arguments.args, index


def _node(tensor):
    """(layer, the call node, output index) that made ``tensor``, skipping identities."""
    while True:
        layer, node_index, index = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if type(layer).__name__ in PASS_THROUGH and node.arguments.args:
            tensor = node.arguments.args[0]
            continue
        return layer, node, index


def fused_weights(decoder_model, contract, target_kind: str) -> tuple[DecoderWeights | None, str | None]:
    """(weights, None) when the fused loop computes exactly what ``decoder_model`` does each step;
    (None, reason) otherwise. ``target_kind``: 'ids', 'one_hot' or 'features'."""
    rnn = [layer for layer in all_layers(decoder_model) if cell_of_layer(layer)]
    head, args, _ = _producer(decoder_model.outputs[contract.step_output_index])
    dense = getattr(head, "layer", head) if type(head).__name__ == "TimeDistributed" else head
    if type(dense).__name__ != "Dense":
        return None, (f"the step output comes from layer {head.name!r} ({type(head).__name__}); the fused loop "
                      "computes a Dense layer on the last recurrent layer's output")
    activation = getattr(dense.activation, "__name__", "")
    if activation not in (("linear", "softmax") if target_kind != "features" else ("linear",)):
        return None, (f"output layer {dense.name!r} has activation {activation!r}; the fused loop takes "
                      + ("softmax or none" if target_kind != "features" else "none (its output is fed back)"))
    kernel, bias = _dense_weights(dense)
    attention = None
    if contract.memory_index is not None:
        found = _attention(decoder_model, contract, args[0], rnn[-1], kernel, bias)
        if isinstance(found, str):
            return None, found
        attention, x = found
    else:
        x = args[0]
    for layer in reversed(rnn):  # each layer's output is the next one's input, down to the first
        producer, args, index = _producer(x)
        if producer is not layer or index != 0:
            fed = (head.name if attention is None else "the attention") if layer is rnn[-1] else \
                "the next recurrent layer"
            return None, (f"recurrent layer {layer.name!r} does not feed {fed} directly; the fused loop computes "
                          "a plain stack")
        x = args[0]
    step = decoder_model.inputs[contract.step_input_index]
    embedding = None
    if target_kind == "ids":
        producer, args, _ = _producer(x)
        if type(producer).__name__ != "Embedding" or args[0] is not step:
            return None, "the first recurrent layer does not read an Embedding of the step input"
        embedding = np.asarray(producer.get_weights()[0], np.float32)
    elif x is not step:
        return None, "the first recurrent layer does not read the step input directly"
    elif target_kind == "one_hot":
        embedding = np.eye(step.shape[-1], dtype=np.float32)  # a one-hot vector times the kernel is a row lookup
    try:
        layers = tuple(RecurrentWeights.from_layer(layer) for layer in rnn)
    except ExportError as exc:
        return None, str(exc)
    if any(w.cell == "gru" and not w.reset_after for w in layers):
        return None, "the fused loop supports GRU layers with reset_after=True (the Keras default)"
    return DecoderWeights(embedding, layers, kernel, bias, attention), None


ATTENTION = ("Attention", "AdditiveAttention")
ATTENTION_CALL = {"mask", "return_attention_scores", "training"}  # call arguments the loop computes the same


def _dense_weights(dense) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of a Dense layer; zeros for a layer without a bias."""
    weights = [np.asarray(w, np.float32) for w in dense.get_weights()]
    kernel = weights[0]
    return kernel, weights[1] if dense.use_bias else np.zeros(kernel.shape[1], np.float32)


def _attention(decoder_model, contract, head_input, top, kernel, bias):
    """Keras's Attention (dot scores, optionally scaled) or AdditiveAttention over the memory input, its
    context concatenated with the top recurrent layer's output, then [Dense tanh ->] the head.

    Returns (AttentionWeights, the query tensor) or the reason the loop cannot compute it.
    """
    combine, (producer, args, _) = None, _producer(head_input)
    if type(producer).__name__ == "Dense" and getattr(producer.activation, "__name__", "") == "tanh":
        combine, (producer, args, _) = producer, _producer(args[0])  # Luong's attentional vector
    if type(producer).__name__ != "Concatenate" or not args or len(args[0]) != 2 or producer.axis not in (-1, 2):
        return ("brought attention decoders get the fused loop when the head reads Concatenate([context, "
                f"output]) of the attention and the top recurrent layer; here it reads {producer.name!r} "
                f"({type(producer).__name__})")
    parts = [_node(t) for t in args[0]]
    kinds = [type(layer).__name__ for layer, _, _ in parts]
    if "MultiHeadAttention" in kinds:
        return ("the fused loop does not compute MultiHeadAttention (its per-head projections of query, keys and "
                "values); Keras's Attention and AdditiveAttention layers get it")
    if not (set(kinds) & set(ATTENTION)) or not any(layer is top for layer, _, _ in parts):
        return (f"the fused loop computes Keras's Attention or AdditiveAttention layers, concatenated with the top "
                f"recurrent layer's output; this decoder concatenates {kinds}")
    context_first = kinds[0] in ATTENTION
    attend, node, index = parts[0] if context_first else parts[1]
    _, _, query_index = parts[1] if context_first else parts[0]
    kwargs = node.arguments.kwargs
    other = sorted(k for k in set(kwargs) - ATTENTION_CALL if not (k == "use_causal_mask" and not kwargs[k]))
    if other or not node.arguments.args:
        return (f"attention layer {attend.name!r} is called with {other or 'its inputs as a keyword'}; the fused "
                "loop computes attention(inputs, mask=..., return_attention_scores=...) only")
    if kwargs.get("training"):
        return f"attention layer {attend.name!r} is called with training=True (dropout at inference)"
    inputs = node.arguments.args[0]
    memory = decoder_model.inputs[contract.memory_index]
    query = inputs[0]
    if index != 0 or query_index != 0 or _producer(query)[0] is not top or inputs[1] is not memory or (
            len(inputs) > 2 and inputs[2] is not memory):
        return (f"attention layer {attend.name!r} must take [the top recurrent layer's output, the memory input] "
                "for the fused loop")
    masks = kwargs.get("mask") or [None, None]
    wanted = None if contract.mask_index is None else decoder_model.inputs[contract.mask_index]
    if len(masks) < 2 or masks[1] is not wanted or masks[0] is not None:
        return (f"attention layer {attend.name!r} does not mask the memory with the decoder's mask input; the "
                "fused loop masks padded source positions")
    k, b = (kernel, bias) if combine is None else _dense_weights(combine)
    units = memory.shape[-1]
    if not context_first:  # rows [output; context] -> [context; output], as the loop reads them
        k = np.concatenate([k[units:], k[:units]])
    if type(attend).__name__ == "Attention":
        if attend.score_mode != "dot":
            return f"attention layer {attend.name!r} has score_mode {attend.score_mode!r}; the fused loop takes 'dot'"
        scale = float(np.asarray(attend.scale)) if attend.use_scale else None
        weights = AttentionWeights("luong", k, b, keys="memory", score_scale=scale, combine_tanh=combine is not None)
    else:
        vector = np.asarray(attend.scale, np.float32) if attend.use_scale else np.ones(units, np.float32)
        weights = AttentionWeights("bahdanau", k, b, score_vector=vector, keys="memory",
                                   combine_tanh=combine is not None)
    return weights, query
