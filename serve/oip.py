"""A bundle served over HTTP with the Open Inference Protocol (KServe v2 / Triton's HTTP/REST API).

``create_app(bundle)`` is an ASGI app (Starlette) that any ASGI server runs; ``serve(bundle)`` runs it on
uvicorn, which is what `seq2seq-edge serve` does. Endpoints:

- ``GET /v2/health/live``, ``GET /v2/health/ready`` (503 while loading or draining), ``GET /v2`` (server
  metadata), ``GET /v2/models`` and ``POST /v2/repository/index`` (the served model),
  ``GET /v2/models/{name}[/versions/1]`` (metadata: a BYTES input ``source`` of shape [-1] for token
  bundles; FP32 ``source`` [-1, -1, features] for real-valued ones), ``GET /v2/models/{name}/ready``;
- ``POST /v2/models/{name}[/versions/1]/infer``: JSON tensors, or the binary tensor extension that
  tritonclient uses by default (``Inference-Header-Content-Length``); decode options as request
  ``parameters`` (strategy, beam_width, n_best, temperature, top_k, top_p, seed, length_penalty, max_steps,
  mode) and Triton's ``timeout`` (microseconds a request may wait in the queue; 0: none);
- ``POST /v2/models/{name}/generate`` and ``generate_stream`` (Triton's generate extension: ``text_input``
  in, ``text_output`` out; the stream sends one server-sent event per token);
- ``GET /metrics``: Prometheus text format.

Concurrent requests are decoded together (serve.batching). Every error is ``{"error": "..."}``: 400 for a
malformed request, 404 for an unknown model or path, 413 for a body over ``max_body`` bytes or more rows than
``max_queue``, 503 (with Retry-After) when the queue is full or the server is draining, 504 when a request's
``timeout`` passed in the queue, 500 only for a failure of the bundle itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import struct
import time
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime import BundleError, DecodeOptions, InputError, load
from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.inputs import check_source_length
from ..runtime.schema import show
from .batching import Batcher, DeadlineExceeded, QueueFull

__all__ = ["create_app", "serve", "MAX_BODY"]

MAX_BODY = 1 << 20  # bytes in one request body
MAX_TIMEOUT_US = 3_600_000_000  # a request's timeout parameter, at most an hour
DRAIN_LIMIT = 1 << 24  # a larger body than MAX_BODY is still read (and dropped) up to this size before the 413
VERSION = "1"
OPTION_NAMES = tuple(f.name for f in fields(DecodeOptions))
PARAMETERS = OPTION_NAMES + ("max_steps", "mode", "timeout")
IGNORED_PARAMETERS = ("binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority",
                      "headers")  # tritonclient's and Triton's own, which change nothing here


class RequestError(Exception):
    """The caller's mistake: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


class Served:
    """One loaded bundle and what the endpoints need to know about it."""

    def __init__(self, bundle: str | Path, name: str | None, mode: str | None, threads: int) -> None:
        self.model = load(bundle, threads=threads)
        if not hasattr(self.model, "stream"):
            raise InputError(f"{bundle} is an autoencoder bundle; serve takes seq2seq bundles (score its windows "
                             "with `seq2seq-edge score`)")
        m = self.model.manifest
        self.name = name or Path(bundle).resolve().name
        self.tokens = hasattr(m.source, "vocabulary")
        self.mode = self.model._check_mode(mode) if mode is not None else m.default_mode
        self.features = None if self.tokens else m.source.features
        self.target_features = None if self.tokens else m.target.features
        sep = m.target.vocabulary.separator if self.tokens else ""
        self.count_tokens = (len if sep == "" else (lambda text: len([t for t in text.split(sep) if t])))
        self.output_names = [o["name"] for o in self.metadata()["outputs"]]

    def metadata(self) -> dict:
        if self.tokens:
            inputs = [{"name": "source", "datatype": "BYTES", "shape": [-1]}]
            outputs = [{"name": "output", "datatype": "BYTES", "shape": [-1]},
                       {"name": "log_prob", "datatype": "FP32", "shape": [-1]}]
        else:
            inputs = [{"name": "source", "datatype": "FP32", "shape": [-1, -1, self.features]}]
            outputs = [{"name": "output", "datatype": "FP32", "shape": [-1, -1, self.target_features]}]
        return {"name": self.name, "versions": [VERSION], "platform": "seq2seq-edge", "inputs": inputs,
                "outputs": outputs,
                "parameters": {"modes": list(self.model.modes), "default_mode": self.mode,
                               "max_steps": self.model.max_steps, "task": self.model.manifest.task}}

    def decode(self, key, rows: list) -> tuple[list, int]:
        """One batch (the batcher's worker thread): results per row and the tokens generated."""
        mode, max_steps, options = key[:3]
        if not self.tokens:
            out = self.model.generate(np.stack(rows), max_steps, mode=mode)
            return out, sum(len(o) for o in out)
        if options.strategy == "greedy":  # in the requested mode; options that only sampling reads change nothing
            texts = self.model.generate_text(rows, max_steps, mode=mode)
            return [[(t, None)] for t in texts], sum(self.count_tokens(t) for t in texts)
        hyps = self.model.decode_text(rows, options, max_steps)
        return ([[(h.text, h.log_prob) for h in row] for row in hyps],
                sum(self.count_tokens(h.text) for row in hyps for h in row))


def _metrics():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry()
    latency = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    return registry, {
        "requests": Counter("seq2seq_edge_requests", "Requests answered, by endpoint and status code",
                            ["endpoint", "code"], registry=registry),
        "errors": Counter("seq2seq_edge_errors", "Requests answered with an error, by status code", ["code"],
                          registry=registry),
        "queue": Gauge("seq2seq_edge_queue_rows", "Rows waiting for a decode", registry=registry),
        "batch": Histogram("seq2seq_edge_batch_rows", "Rows per decode call",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=registry),
        "batch_requests": Histogram("seq2seq_edge_batch_requests", "Requests per decode call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=registry),
        "queue_seconds": Histogram("seq2seq_edge_queue_seconds", "Time a request waited for its decode",
                                   buckets=latency, registry=registry),
        "compute_seconds": Histogram("seq2seq_edge_compute_seconds", "Time of one decode call", buckets=latency,
                                     registry=registry),
        "tokens": Counter("seq2seq_edge_tokens_generated", "Output tokens (or forecast steps) generated",
                          registry=registry),
    }


def create_app(bundle: str | Path, *, name: str | None = None, mode: str | None = None, max_batch: int = 32,
               max_wait_ms: float = 0.0, max_queue: int = 1024, threads: int = 1, max_body: int = MAX_BODY):
    """The ASGI app serving ``bundle`` (loaded here: a broken bundle fails now, not at the first request).
    ``app.state.batcher`` is its Batcher, ``app.state.served`` the loaded bundle."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    for value, what, low in ((max_batch, "max_batch", 1), (max_queue, "max_queue", 1), (max_body, "max_body", 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{what} must be a positive integer, got {value!r}")
    if not (isinstance(max_wait_ms, (int, float)) and 0 <= max_wait_ms <= 10_000):
        raise InputError(f"max_wait_ms must be a number of milliseconds in [0, 10000], got {max_wait_ms!r}")
    served = Served(bundle, name, mode, threads)
    registry, metric = _metrics()

    def on_batch(requests, rows, queue_seconds, compute_seconds, tokens):
        metric["batch"].observe(rows)
        metric["batch_requests"].observe(requests)
        for s in queue_seconds:
            metric["queue_seconds"].observe(s)
        metric["compute_seconds"].observe(compute_seconds)
        metric["tokens"].inc(tokens)

    batcher = Batcher(served.decode, max_batch=max_batch, max_wait=max_wait_ms / 1000, max_queue=max_queue,
                      on_batch=on_batch)
    metric["queue"].set_function(lambda: batcher.queued_rows)

    def answer(endpoint: str, body: Any, status: int = 200, headers: dict | None = None) -> Response:
        metric["requests"].labels(endpoint, str(status)).inc()
        if status >= 400:
            metric["errors"].labels(str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers)

    def failure(endpoint: str, exc: Exception) -> Response:
        from starlette.requests import ClientDisconnect

        if isinstance(exc, ClientDisconnect):  # the client went away mid-upload: nobody reads an answer
            metric["requests"].labels(endpoint, "499").inc()
            return Response(status_code=499)
        if isinstance(exc, RequestError):
            return answer(endpoint, {"error": str(exc)}, exc.status, exc.headers)
        if isinstance(exc, QueueFull):
            return answer(endpoint, {"error": f"overloaded: {exc}; retry later"}, 503, {"Retry-After": "1"})
        if isinstance(exc, DeadlineExceeded):
            return answer(endpoint, {"error": str(exc)}, 504)
        if isinstance(exc, InputError):
            return answer(endpoint, {"error": str(exc)}, 400)
        if isinstance(exc, (BundleError, Seq2SeqEdgeError)):
            return answer(endpoint, {"error": f"the bundle failed: {exc}"}, 500)
        return answer(endpoint, {"error": f"internal error: {type(exc).__name__}"}, 500)

    def check_model(request) -> None:
        model, version = request.path_params["model"], request.path_params.get("version")
        if model != served.name:
            raise RequestError(f"unknown model {show(model, 60)}; this server serves {served.name!r}", 404)
        if version not in (None, VERSION):
            raise RequestError(f"unknown version {show(version, 60)} of {served.name!r}; it has version {VERSION}",
                               404)

    async def live(request):
        return answer("health", {"live": True})

    async def ready(request):
        if request.app.state.draining:
            return answer("health", {"ready": False, "error": "the server is shutting down"}, 503)
        return answer("health", {"ready": True})

    async def server_metadata(request):
        from .. import __version__

        return answer("metadata", {"name": "seq2seq-edge", "version": __version__, "extensions": ["generate"]})

    async def models(request):
        return answer("metadata", {"models": [{"name": served.name, "versions": [VERSION]}]})

    async def repository_index(request):
        return answer("metadata", [{"name": served.name, "version": VERSION, "state": "READY"}])

    async def model_metadata(request):
        try:
            check_model(request)
        except RequestError as exc:
            return failure("metadata", exc)
        return answer("metadata", served.metadata())

    async def model_ready(request):
        try:
            check_model(request)
        except RequestError as exc:
            return failure("health", exc)
        return await ready(request)

    async def infer(request):
        try:
            check_model(request)
            header, binary = await _read_body(request, max_body)
            rows, key, deadline, wanted, request_id = _checked(_parse_infer, served, header, binary, max_queue)
            results = await _await_or_disconnect(request, batcher.submit(rows, key, deadline))
            if results is None:
                return Response(status_code=499)  # the client went away; nobody reads this
            return answer("infer", _infer_response(served, request_id, results, wanted))
        except Exception as exc:  # noqa: BLE001 - every failure is a JSON error
            return failure("infer", exc)

    async def generate(request):
        try:
            check_model(request)
            text, params = await _generate_body(served, request, max_body)
            key, deadline = _checked(_key, served, params)
            results = await _await_or_disconnect(request, batcher.submit([text], key, deadline))
            if results is None:
                return Response(status_code=499)
            body = {"model_name": served.name, "model_version": VERSION, "text_output": results[0][0][0]}
            if results[0][0][1] is not None:
                body["log_prob"] = results[0][0][1]
            return answer("generate", body)
        except Exception as exc:  # noqa: BLE001
            return failure("generate", exc)

    streams = [0]  # streams being decoded now: each holds a thread of the default executor

    async def generate_stream(request):
        try:
            check_model(request)
            if request.app.state.draining:
                raise QueueFull("the server is shutting down")
            if streams[0] >= max_batch:
                raise QueueFull(f"{streams[0]} streams are being decoded (at most --max-batch {max_batch} at once)")
            text, params = await _generate_body(served, request, max_body)
            mode, max_steps, options = _checked(_key, served, params)[0][:3]
            if options.strategy == "beam":
                raise RequestError("generate_stream sends tokens as they are decoded: greedy or sample, not beam")
            loop = asyncio.get_running_loop()

            def start():
                ids, lengths = served.model.source_vocab.encode_batch([text])
                return served.model.stream(ids, max_steps, lengths=lengths, options=options)

            stream = await loop.run_in_executor(None, start)
        except Exception as exc:  # noqa: BLE001
            return failure("generate_stream", exc)
        vocab = served.model.target_vocab
        skip = {vocab.pad_id, vocab.start_id} - {None}
        streams[0] += 1

        async def events():
            done, first = object(), True
            try:
                while True:
                    try:
                        step = await loop.run_in_executor(None, next, stream, done)
                    except Exception as exc:  # noqa: BLE001 - the status is sent: the error is the last event
                        metric["errors"].labels("500").inc()
                        yield ("event: error\ndata: " + json.dumps({"error": f"the bundle failed: {exc}"})
                               + "\n\n").encode()
                        return
                    if step is done or step[0] < 0 or step[0] == vocab.end_id:
                        return
                    if int(step[0]) in skip:  # as Vocabulary.decode: pad and start ids are no text
                        continue
                    # the separator before every token but the first: the events join to generate's text
                    token = ("" if first else vocab.separator) + vocab.tokens[int(step[0])]
                    first = False
                    metric["tokens"].inc()
                    yield ("data: " + json.dumps({"model_name": served.name, "model_version": VERSION,
                                                  "text_output": token}) + "\n\n").encode()
            finally:
                streams[0] -= 1

        metric["requests"].labels("generate_stream", "200").inc()
        return StreamingResponse(events(), media_type="text/event-stream")

    async def metrics(request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 404)
        return answer("other", {"error": f"{request.method} {request.url.path[:100]}: "
                                         f"{'no such endpoint' if status == 404 else 'method not allowed'}"},
                      status)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        app.state.draining = False
        yield
        app.state.draining = True
        await batcher.drain()

    m = "/v2/models/{model}"
    v = "/v2/models/{model}/versions/{version}"
    routes = [Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata),
              Route("/v2/models", models), Route("/v2/repository/index", repository_index, methods=["POST"]),
              Route(m, model_metadata), Route(v, model_metadata), Route(m + "/ready", model_ready),
              Route(v + "/ready", model_ready), Route(m + "/infer", infer, methods=["POST"]),
              Route(v + "/infer", infer, methods=["POST"]), Route(m + "/generate", generate, methods=["POST"]),
              Route(v + "/generate", generate, methods=["POST"]),
              Route(m + "/generate_stream", generate_stream, methods=["POST"]),
              Route(v + "/generate_stream", generate_stream, methods=["POST"]), Route("/metrics", metrics)]
    from starlette.middleware import Middleware

    shed = Middleware(_Shed, batcher=batcher, refused={e: metric["requests"].labels(e, "503")
                                                       for e in ("infer", "generate")},
                      errors=metric["errors"].labels("503"))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[shed],
                    exception_handlers={404: not_found, 405: not_found})
    app.state.batcher, app.state.served, app.state.draining = batcher, served, True
    return app


def _checked(parse, *args):
    """``parse(*args)``, where a value the request holds that Python cannot use (a 400-digit number where a
    float goes, a list where a name goes) is the caller's mistake: a 400, not a 500."""
    try:
        return parse(*args)
    except Seq2SeqEdgeError:  # InputError is a ValueError too, and says more
        raise
    except (OverflowError, TypeError, ValueError) as exc:
        raise RequestError(f"a value in the request cannot be used: {type(exc).__name__}: {str(exc)[:120]}") from None


class _Shed:
    """While the queue is full, an infer or generate request is answered 503 before routing, parsing or reading
    its body: under overload, refusals are most of the traffic, and their cost is what keeps them quick."""

    def __init__(self, app, batcher: Batcher, refused, errors) -> None:
        self.app, self.batcher, self.refused, self.errors = app, batcher, refused, errors

    async def __call__(self, scope, receive, send) -> None:
        b = self.batcher
        if (scope["type"] == "http" and b.queued_rows >= b.max_queue and scope["method"] == "POST"
                and scope["path"].endswith(("/infer", "/generate"))):
            body = json.dumps({"error": f"overloaded: the queue holds {b.queued_rows} rows (--max-queue "
                                        f"{b.max_queue}); retry later"}).encode()
            self.refused["generate" if scope["path"].endswith("/generate") else "infer"].inc()
            self.errors.inc()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


async def _read_body(request, max_body: int) -> tuple[dict, bytes]:
    """The JSON header and the binary tensor data after it (empty without the binary extension)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_body:
        if int(declared) <= DRAIN_LIMIT:  # read and drop it, so that the client, still sending, reads the answer
            async for _ in request.stream():
                pass
        raise RequestError(f"the request body is {int(declared):,} bytes; at most {max_body:,}", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise RequestError(f"the request body is over {max_body:,} bytes", 413)
    size = request.headers.get("inference-header-content-length")
    if size is not None:
        if not (size.isascii() and size.isdigit()) or int(size) > len(body):
            raise RequestError(f"Inference-Header-Content-Length {show(size, 60)} does not fit a body of "
                               f"{len(body)} bytes")
        head, binary = bytes(body[:int(size)]), bytes(body[int(size):])
    else:
        head, binary = bytes(body), b""
    try:
        header = json.loads(head)
    except (ValueError, RecursionError) as exc:
        raise RequestError(f"the request body is not JSON ({str(exc)[:80]})") from None
    if not isinstance(header, dict):
        raise RequestError("the request body must be a JSON object")
    return header, binary


def _parse_infer(served: Served, header: dict, binary: bytes, max_rows: int):
    unknown = set(header) - {"id", "inputs", "outputs", "parameters"}
    if unknown:
        raise RequestError(f"unknown field(s) {show(sorted(unknown), 60)} in the request; it has id, inputs, "
                           "outputs and parameters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise RequestError("inputs must be a list of one tensor, named 'source'")
    tensor = inputs[0]
    if tensor.get("name") != "source":
        raise RequestError(f"unknown input {show(tensor.get('name'), 60)}; this model takes one input, 'source'")
    want = "BYTES" if served.tokens else "FP32"
    if tensor.get("datatype") != want:
        raise RequestError(f"input 'source' has datatype {want}, got {show(tensor.get('datatype'), 60)}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape)):
        raise RequestError(f"input 'source': shape must be a list of sizes, got {show(shape, 60)}")
    if served.tokens and (len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1)):
        raise RequestError(f"input 'source' has shape [n] (or [n, 1]): one text a row, got {shape}")
    if not served.tokens and (len(shape) != 3 or shape[2] != served.features):
        raise RequestError(f"input 'source' has shape [batch, time, {served.features}], got {shape}")
    count = math.prod(shape)
    if count == 0:
        raise RequestError("input 'source' holds no rows; send at least one")
    rows_asked = shape[0]
    if rows_asked > max_rows:  # it could never be queued: a 413 now, not a 503 that retrying cannot cure
        raise RequestError(f"input 'source' holds {rows_asked} rows; a request holds at most {max_rows} (the "
                           "server's --max-queue): split it", 413)
    params = tensor.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError("input 'source': parameters must be an object")
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if not isinstance(size, int) or size != len(binary):
            raise RequestError(f"input 'source': binary_data_size {show(size, 60)} but {len(binary)} bytes follow "
                               "the JSON header")
        values = _binary_values(binary, want, count)
    else:
        if "data" not in tensor:
            raise RequestError("input 'source' has no data (JSON 'data', or binary_data_size with the binary "
                               "extension)")
        values = _flatten(tensor["data"])
        if len(values) != count:
            raise RequestError(f"input 'source': shape {shape} holds {count} values, data has {len(values)}")
    if served.tokens:
        if not all(isinstance(t, str) for t in values):
            raise RequestError("input 'source': BYTES data must be strings (UTF-8 texts)")
        rows = list(values)
        for i, t in enumerate(rows):
            if not t.strip():
                raise RequestError(f"input 'source': row {i} is an empty text")
            # An unknown symbol or a source over the cap: 400 now, not a failed batch for everyone in it.
            check_source_length(len(served.model.source_vocab.encode(t)), f"input 'source': row {i}", "tokens")
    else:
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
            raise RequestError("input 'source': FP32 data must be numbers")
        x = np.asarray(values, np.float64).reshape(shape)
        if not np.isfinite(x).all() or np.abs(x).max() > np.finfo(np.float32).max:
            raise RequestError("input 'source' holds NaN, infinite or values beyond float32")
        rows = list(x.astype(np.float32))
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("parameters must be an object")
    key, deadline = _key(served, parameters, time_steps=None if served.tokens else shape[1])
    wanted = _wanted_outputs(served, header.get("outputs"))
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("id must be a string")
    return rows, key, deadline, wanted, request_id


def _binary_values(binary: bytes, datatype: str, count: int) -> list:
    if datatype == "FP32":
        if len(binary) != 4 * count:
            raise RequestError(f"input 'source': {count} FP32 values take {4 * count} bytes, got {len(binary)}")
        return np.frombuffer(binary, "<f4").astype(np.float64).tolist()
    values, at = [], 0
    for _ in range(count):
        if at + 4 > len(binary):
            raise RequestError("input 'source': the binary BYTES data ends early")
        (size,) = struct.unpack_from("<I", binary, at)
        at += 4
        if at + size > len(binary):
            raise RequestError("input 'source': the binary BYTES data ends early")
        try:
            values.append(binary[at: at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise RequestError(f"input 'source': row {len(values)} is not valid UTF-8") from None
        at += size
    if at != len(binary):
        raise RequestError(f"input 'source': {len(binary) - at} bytes follow the {count} texts of its shape")
    return values


def _flatten(data) -> list:
    if not isinstance(data, list):
        return [data]
    out: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > 8:
                    raise RequestError("input 'source': data is nested too deeply")
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _key(served: Served, parameters: dict, time_steps: int | None = None):
    """(mode, max_steps, options[, time]) from request parameters, and the deadline from ``timeout`` (us)."""
    unknown = set(parameters) - set(PARAMETERS) - set(IGNORED_PARAMETERS)
    if unknown:
        raise RequestError(f"unknown parameter(s) {show(sorted(unknown), 60)}; known: {', '.join(PARAMETERS)}")
    options = {k: parameters[k] for k in OPTION_NAMES if k in parameters}
    for k, value in options.items():
        if not (value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool)):
            raise RequestError(f"parameter {k} must be a number or a string, got {show(value, 60)}")
    decode = DecodeOptions(**options)  # InputError (400) names a bad value
    mode = parameters.get("mode", served.mode)
    if not isinstance(mode, str):
        raise RequestError(f"parameter mode must be a string, one of {list(served.model.modes)}; got {show(mode, 60)}")
    max_steps = parameters.get("max_steps")
    if served.tokens:
        served.model.check_decoding(mode if decode.strategy == "greedy" else parameters.get("mode"), decode)
    else:
        if decode != DecodeOptions():
            raise RequestError("real-valued bundles forecast greedily: no strategy parameters")
        served.model._check_mode(mode)
    served.model._check_max_steps(max_steps)
    timeout = parameters.get("timeout")
    deadline = None
    if timeout is not None:
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 <= timeout <= MAX_TIMEOUT_US:
            raise RequestError(f"parameter timeout is in microseconds, an integer from 0 (none) to "
                               f"{MAX_TIMEOUT_US}; got {show(timeout, 60)}")
        deadline = time.monotonic() + timeout / 1e6 if timeout else None  # Triton: 0 means no timeout
    seeded = decode.strategy == "sample" and decode.seed is not None
    # Seeded sampling is decoded alone: its draws would otherwise depend on the other rows of the batch.
    key = (mode if decode.strategy == "greedy" else "step", max_steps, decode, time_steps,
           object() if seeded else None)
    return key, deadline


def _wanted_outputs(served: Served, outputs) -> list[str]:
    names = served.output_names
    if outputs is None:
        return names
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise RequestError("outputs must be a list of objects with a name")
    for o in outputs:
        if o["name"] not in names:
            raise RequestError(f"unknown output {show(o['name'], 60)}; this model has {names}")
    return [o["name"] for o in outputs]


def _infer_response(served: Served, request_id, results: list, wanted: list[str]) -> dict:
    outputs = []
    if served.tokens:
        n_best = len(results[0])
        shape = [len(results)] if n_best == 1 else [len(results), n_best]
        texts = [t for row in results for t, _ in row]
        scores = [p for row in results for _, p in row]
        for name in wanted:
            if name == "output":
                outputs.append({"name": "output", "datatype": "BYTES", "shape": shape, "data": texts})
            elif scores[0] is not None:  # log-probabilities: beam search and sampling
                outputs.append({"name": "log_prob", "datatype": "FP32", "shape": shape, "data": scores})
    else:
        y = np.stack(results)
        outputs.append({"name": "output", "datatype": "FP32", "shape": list(y.shape),
                        "data": y.reshape(-1).tolist()})
    body = {"model_name": served.name, "model_version": VERSION, "outputs": outputs}
    if request_id is not None:
        body["id"] = request_id
    return body


async def _generate_body(served: Served, request, max_body: int) -> tuple[str, dict]:
    if not served.tokens:
        raise RequestError("generate takes texts; this bundle forecasts real values: use infer")
    header, _ = await _read_body(request, max_body)
    text = header.get("text_input", header.get("source"))
    if not isinstance(text, str) or not text.strip():
        raise RequestError("generate needs text_input, a non-empty string")
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError("parameters must be an object")
    unknown = set(header) - {"text_input", "source", "parameters", "id"}
    if unknown:  # Triton's generate extension passes other fields as parameters
        parameters = {**parameters, **{k: header[k] for k in unknown}}
    check_source_length(len(served.model.source_vocab.encode(text)), "text_input", "tokens")
    return text, parameters


async def _await_or_disconnect(request, waiting):
    """The result of ``waiting``, or None (and ``waiting`` withdrawn) if the client disconnects first."""
    task = asyncio.ensure_future(waiting)

    async def gone():
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watch = asyncio.ensure_future(gone())
    try:
        await asyncio.wait([task, watch], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        return None
    finally:
        watch.cancel()


def serve(bundle: str | Path, *, host: str = "127.0.0.1", port: int = 8000, backlog: int = 2048,
          ready: Any = None, **options) -> None:
    """Run ``create_app(bundle, **options)`` on uvicorn until SIGINT or SIGTERM, which stop accepting and
    drain: the queued requests are decoded and answered first. ``ready(port)`` is called once listening."""
    import uvicorn

    app = create_app(bundle, **options)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # As uvicorn's, without raising the signal again once drained: a drained shutdown exits with 0.
            app.state.draining = True  # /v2/health/ready says so at once
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop without waiting
            self.should_exit = True

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if ready is not None and self.servers:
                ready(self.servers[0].sockets[0].getsockname()[1])

    config = uvicorn.Config(app, host=host, port=port, backlog=backlog, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=60, lifespan="on")
    Server(config).run()
