"""seq2seq_edge.export: Keras -> verified ONNX bundles (encoder, single-step decoder, manifest).

Importing this package imports neither TensorFlow nor onnx; the names below
import them when first used, so that ``parity`` (numpy only) and ``evaluate``
(a bundle scored on its task's test split) serve commands that never convert a model.
"""

import os
from importlib import import_module

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_PUBLIC = {"export_run": "api", "ExportResult": "writing", "ParityError": "writing", "export_keras": "byo",
           "export_autoencoder": "autoencoder", "AutoencoderParity": "autoencoder", "ExportError": "convert",
           "ParityReport": "parity", "evaluate_bundle": "evaluate", "export_functions": "functions"}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
