"""The fast graphs built by hand from the trained weights, gathered under one name.

Each job lives in its own module; this one re-exports their public names so that
``from seq2seq_edge.export.fused import ...`` keeps working:

- ``fused_weights``: ``RecurrentWeights``, ``AttentionWeights``, ``DecoderWeights`` and
  ``decoder_weights`` (what the loop computes, read from a trained model);
- ``fused_loop``: ``build_decode_loop`` (the whole greedy decode inside one ONNX Loop);
- ``gru_encoder``: ``build_gru_encoder`` (a GRU encoder on ONNX's native GRU op);
- ``quantize``: ``quantize_model`` and ``quantize_loop`` (int8, subgraphs included);
- ``graph_ops``: the small graph builder they share.
"""

from __future__ import annotations

from .fused_loop import build_decode_loop
from .fused_weights import AttentionWeights, DecoderWeights, RecurrentWeights, decoder_weights
from .gru_encoder import build_gru_encoder
from .quantize import quantize_loop, quantize_model

__all__ = ["RecurrentWeights", "AttentionWeights", "DecoderWeights", "build_decode_loop", "build_gru_encoder",
           "quantize_loop", "quantize_model", "decoder_weights"]
