"""seq2seq_edge.bench: greedy decoding speed of Keras, LiteRT, plain tf2onnx and our runtime, side by side.

The harness behind `seq2seq-edge bench` (the [bench] extra: TensorFlow and LiteRT). It sits above
training, export and the runtime, and no room imports it.
"""

from .run import bench

__all__ = ["bench"]
