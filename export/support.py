"""What we can export: walk a Keras model's layers and refuse what we cannot convert, by name."""

from __future__ import annotations

from .convert import ExportError

__all__ = ["all_layers", "cell_of_layer", "check_supported_layers"]

SUPPORTED = ("InputLayer", "Embedding", "LSTM", "GRU", "Dense", "TimeDistributed", "RepeatVector", "Identity",
             "Reshape", "Dropout", "Activation", "Masking", "Functional", "Sequential", "Flatten",
             # attention over the encoder's outputs (written with Keras's layers or by hand)
             "Attention", "AdditiveAttention", "MultiHeadAttention", "Dot", "Concatenate", "Softmax", "Add",
             "Multiply", "Permute")


def all_layers(model):
    """Every layer, nested models opened up."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from all_layers(layer)
        else:
            yield layer


def cell_of_layer(layer) -> str | None:
    """'lstm' or 'gru' for recurrent layers, else None."""
    return {"LSTM": "lstm", "GRU": "gru"}.get(type(layer).__name__)


def check_supported_layers(model) -> None:
    """Raise ExportError naming the first layer we cannot export, and why."""
    for layer in all_layers(model):
        kind = type(layer).__name__
        if kind == "TimeDistributed":
            inner = type(layer.layer).__name__
            if inner not in SUPPORTED:
                raise ExportError(f"layer {layer.name!r}: TimeDistributed({inner}) is not supported")
            continue
        if kind not in SUPPORTED:
            raise ExportError(f"layer {layer.name!r} ({kind}) is not supported; supported layers: "
                              f"{', '.join(SUPPORTED)}")
        if cell_of_layer(layer) and getattr(layer, "stateful", False):
            raise ExportError(f"layer {layer.name!r}: stateful=True is not supported (the runtime passes state "
                              "explicitly); rebuild the model with stateful=False and copy the weights over")
