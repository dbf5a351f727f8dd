"""seq2seq_edge.export: Keras -> verified ONNX bundles (encoder, single-step decoder, manifest)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .api import ExportResult, ParityError, export_run  # noqa: E402
from .autoencoder import AutoencoderParity, export_autoencoder  # noqa: E402
from .byo import export_keras  # noqa: E402
from .convert import ExportError  # noqa: E402
from .parity import ParityReport  # noqa: E402

__all__ = ["export_run", "export_keras", "export_autoencoder", "ExportResult", "ExportError", "ParityError",
           "ParityReport", "AutoencoderParity"]
