"""What we can export: walk a Keras model's layers and refuse, by name and with the reason, what cannot work.

Every layer tf2onnx converts is exported (the graphs are converted as the user built them); what is
refused here is what cannot be right whatever the converter does: recurrent layers that keep state
between calls (the runtime passes state explicitly), and Lambda layers around Python code that a
graph cannot hold. A layer tf2onnx itself cannot convert is reported by keras_to_onnx with the
converter's reason.
"""

from __future__ import annotations

from .convert import ExportError

__all__ = ["all_layers", "cell_of_layer", "check_supported_layers", "REFUSED"]

# Layers that cannot be part of an exported graph, and why (shown in the error).
REFUSED = {
    "TextVectorization": "it reads strings, which the bundle's runtimes do not feed to a graph; export the model "
                         "from its integer ids and give the vocabulary as source_tokens",
    "StringLookup": "it reads strings; export from the integer ids and give the vocabulary as tokens",
    "ConvLSTM1D": "convolutional recurrent layers are not exported (tf2onnx has no converter for them)",
    "ConvLSTM2D": "convolutional recurrent layers are not exported (tf2onnx has no converter for them)",
    "ConvLSTM3D": "convolutional recurrent layers are not exported (tf2onnx has no converter for them)",
}


def all_layers(model):
    """Every layer, nested models opened up; a Bidirectional wrapper gives its forward and backward layers."""
    for layer in model.layers:
        if type(layer).__name__ == "Bidirectional":
            yield layer.forward_layer
            yield layer.backward_layer
        elif hasattr(layer, "layers"):
            yield from all_layers(layer)
        else:
            yield layer


def cell_of_layer(layer) -> str | None:
    """'lstm' or 'gru' for recurrent layers, else None."""
    return {"LSTM": "lstm", "GRU": "gru"}.get(type(layer).__name__)


def check_supported_layers(model) -> None:
    """Raise ExportError naming the first layer that cannot be exported, and why."""
    for layer in all_layers(model):
        kind = type(layer).__name__
        inner = getattr(layer, "layer", None)
        for what, name in ((kind, layer.name), (type(inner).__name__ if inner is not None else None, layer.name)):
            if what in REFUSED:
                raise ExportError(f"layer {name!r} ({what}) cannot be exported: {REFUSED[what]}")
        if getattr(layer, "stateful", False):
            raise ExportError(f"layer {layer.name!r}: stateful=True is not supported (the runtime passes state "
                              "explicitly); rebuild the model with stateful=False and copy the weights over")
