"""`seq2seq-edge bench`: greedy decoding speed of Keras, LiteRT, plain tf2onnx and our runtime, side by side."""

from .run import bench

__all__ = ["bench"]
