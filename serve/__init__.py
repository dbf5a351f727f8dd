"""seq2seq_edge.serve: serving bundles over HTTP.

``serve.oip`` is the inference server of `seq2seq-edge serve`: the Open Inference Protocol (KServe v2) on an
ASGI app with a dynamic batcher (``serve.batching``), on uvicorn or on Ray Serve (``serve.ray_serve``); the
``[serve]`` extra. ``serve_demo`` is the static server of `seq2seq-edge demo`: the page decodes in the browser
with onnxruntime-web, and nothing but files is served (standard library and the runtime only).
"""

from .demo import serve_demo
from .oip import create_app, serve

__all__ = ["create_app", "serve", "serve_demo"]
