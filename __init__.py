"""seq2seq-edge: train recurrent seq2seq models in Keras, export to ONNX, decode with onnxruntime.

Subpackages: ``training`` (Keras), ``export`` (Keras -> bundle), ``runtime``
(numpy + onnxruntime only). Importing this package imports none of them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
