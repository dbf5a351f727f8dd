"""seq2seq_edge.serve: serving bundles over HTTP.

``serve_demo`` is the static server of `seq2seq-edge demo`: the page decodes in the browser with
onnxruntime-web, and nothing but files is served. Standard library and the runtime only.
"""

from .demo import serve_demo

__all__ = ["serve_demo"]
