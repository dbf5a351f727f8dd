"""The fused decode loop for users' own decoders: find, in the decoder_model's graph, the pattern the loop
computes - [Embedding or one-hot] -> LSTM/GRU stack -> Dense - and take its weights; or say why not."""

from __future__ import annotations

import numpy as np

from .convert import ExportError
from .fused import DecoderWeights, RecurrentWeights
from .support import all_layers, cell_of_layer

__all__ = ["fused_weights"]

PASS_THROUGH = ("Dropout", "Identity")  # identities at inference


def _producer(tensor):
    """(layer, its call's positional arguments, output index) that made ``tensor``, skipping identities."""
    while True:
        layer, node_index, index = tensor._keras_history
        args = layer._inbound_nodes[node_index].arguments.args
        if type(layer).__name__ in PASS_THROUGH and args:
            tensor = args[0]
            continue
        return layer, args, index


def fused_weights(decoder_model, contract, target_kind: str) -> tuple[DecoderWeights | None, str | None]:
    """(weights, None) when the fused loop computes exactly what ``decoder_model`` does each step;
    (None, reason) otherwise. ``target_kind``: 'ids', 'one_hot' or 'features'."""
    if contract.memory_index is not None:
        return None, "attention decoders brought with export_keras run in step mode (no fused loop for them yet)"
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
    x = args[0]
    for layer in reversed(rnn):  # each layer's output is the next one's input, down to the first
        producer, args, index = _producer(x)
        if producer is not layer or index != 0:
            fed = head.name if layer is rnn[-1] else "the next recurrent layer"
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
    kernel, bias = (np.asarray(w, np.float32) for w in dense.get_weights())
    return DecoderWeights(embedding, layers, kernel, bias), None
