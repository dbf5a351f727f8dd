"""seq2seq_edge.runtime: load a bundle and decode with numpy + onnxruntime only.

>>> from seq2seq_edge.runtime import load
>>> model = load("bundle")
>>> model.generate_text(["14 juillet 2023"])
['2023-07-14']

This package never imports tensorflow, keras, tf2onnx or onnx.
"""

from .autoencoder import AutoencoderModel
from .errors import BundleError, InputError, Seq2SeqEdgeError, UnknownTokenError
from .loader import load
from .manifest import AutoencoderManifest, Manifest
from .model import Seq2SeqModel
from .strategies import DecodeOptions, Hypothesis
from .vocab import Vocabulary

__all__ = ["load", "Seq2SeqModel", "AutoencoderModel", "DecodeOptions", "Hypothesis", "Manifest",
           "AutoencoderManifest", "Vocabulary", "Seq2SeqEdgeError", "BundleError", "InputError", "UnknownTokenError"]
