"""Small builders for hand-written ONNX graphs (the fused decode loop, the native-GRU encoder)."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["ACTIVATIONS", "Graph", "ir_version", "finish_model"]

ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}  # Keras activation -> ONNX op


def ir_version(opset: int) -> int:
    """The ONNX IR version of a graph built here: the oldest that its opset needs (8 for opset 18). onnx's default
    is its newest (14 with onnx 1.23), which onnxruntime-node and onnxruntime-web 1.30 refuse (they read up to 13)."""
    from onnx import helper

    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def finish_model(graph, opset: int):
    """``graph`` as a model of the default domain at ``opset``, with the oldest IR version that opset needs."""
    from onnx import helper

    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="seq2seq-edge",
                             ir_version=ir_version(opset))


class Graph:
    """A tiny helper over onnx.helper that names constants and nodes uniquely."""

    def __init__(self, prefix: str) -> None:
        self.nodes, self.inits, self.prefix, self.count, self.seen = [], [], prefix, 0, {}

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        """An initializer; equal arrays share one (unrolled steps reuse the same weights)."""
        from onnx import numpy_helper

        value = np.asarray(value)
        key = (value.dtype.str, value.shape, hashlib.sha1(value.tobytes()).hexdigest())
        if key not in self.seen:
            self.seen[key] = self.name(hint)
            self.inits.append(numpy_helper.from_array(value, self.seen[key]))
        return self.seen[key]

    def op(self, op_type: str, inputs: list[str], hint: str = "", outputs: int | list[str] = 1, **attrs):
        from onnx import helper

        names = outputs if isinstance(outputs, list) else [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(op_type), **attrs))
        return names[0] if len(names) == 1 else names
