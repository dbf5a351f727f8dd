"""`seq2seq-edge serve`: the Open Inference Protocol over HTTP on a real uvicorn, called with tritonclient (the
protocol's standard client, unchanged), raw HTTP and the ASGI app in process; dynamic batching, backpressure,
deadlines, shutdown and metrics. Behaviour only: timings are tools/serve_load.py's."""

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, load
from seq2seq_edge.serve.batching import Batcher, QueueFull
from seq2seq_edge.serve.oip import create_app

TEXTS = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000", "Sunday, 31 December 2049", "14. Juli 2023"]


@pytest.fixture(scope="module")
def server(dates_bundle):
    """`seq2seq-edge serve` on a free port, as a user starts it; yields its base URL."""
    proc, port = _start(dates_bundle)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(timeout=60) == 0


def _start(bundle, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge", "serve", str(bundle), "--port", "0", *extra],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert " on http://127.0.0.1:" in line, line + proc.stderr.read()
    return proc, int(line.split("127.0.0.1:")[1].split("/")[0])


def _post(url: str, body: bytes, headers: dict | None = None):
    """POST with no Content-Type unless ``headers`` give one (the protocol's JSON is the default)."""
    import http.client

    host, path = url.split("/", 1)
    connection = http.client.HTTPConnection(host, timeout=60)
    try:
        connection.request("POST", "/" + path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _get(url: str):
    try:
        with urllib.request.urlopen(f"http://{url}", timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_tritonclient_works_unchanged(server, dates):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("dates_tiny")
    meta = client.get_model_metadata("dates_tiny")
    assert meta["inputs"] == [{"name": "source", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"][0] == {"name": "output", "datatype": "BYTES", "shape": [-1]}
    assert client.get_model_repository_index() == [{"name": "dates_tiny", "version": "1", "state": "READY"}]
    want = dates.generate_text(TEXTS)
    source = httpclient.InferInput("source", [len(TEXTS)], "BYTES")
    source.set_data_from_numpy(np.array(TEXTS, dtype=object))  # the binary tensor extension, tritonclient's default
    assert client.infer("dates_tiny", [source]).as_numpy("output").tolist() == want
    source.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=False)
    result = client.infer("dates_tiny", [source], outputs=[httpclient.InferRequestedOutput("output",
                                                                                          binary_data=False)])
    assert result.as_numpy("output").tolist() == want
    beam = client.infer("dates_tiny", [source], parameters={"strategy": "beam", "beam_width": 3, "n_best": 2})
    expect = dates.decode_text(TEXTS, DecodeOptions(strategy="beam", beam_width=3, n_best=2))
    assert beam.as_numpy("output").tolist() == [[h.text for h in row] for row in expect]
    np.testing.assert_allclose(beam.as_numpy("log_prob"), [[h.log_prob for h in row] for row in expect], rtol=1e-5)
    with pytest.raises(Exception, match=r"\[404\] unknown model 'elsewhere'; this server serves 'dates_tiny'"):
        client.infer("elsewhere", [source])


def _infer(texts, **extra):
    return json.dumps({"inputs": [{"name": "source", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
                       **extra}).encode()


MALFORMED = [
    ("dates_tiny/infer", b"{bad", 400, "the request body is not JSON"),
    ("dates_tiny/infer", b"[1, 2]", 400, "the request body must be a JSON object"),
    ("dates_tiny/infer", _infer([]), 400, "input 'source' holds no rows; send at least one"),
    ("dates_tiny/infer", _infer(["3 mei 1961"]).replace(b'"source"', b'"text"'), 400,
     "unknown input 'text'; this model takes one input, 'source'"),
    ("dates_tiny/infer", _infer(["3 mei 1961"]).replace(b'"BYTES"', b'"FP32"'), 400,
     "input 'source' has datatype BYTES, got 'FP32'"),
    ("dates_tiny/infer", _infer(["3 mei 1961"]).replace(b"[1]", b"[2]"), 400,
     "input 'source': shape [2] holds 2 values, data has 1"),
    ("dates_tiny/infer", _infer(["3 mei 1961 \u2603"]), 400, "'\u2603' at position 11"),
    ("dates_tiny/infer", _infer(["1" * 5000]), 400,
     "input 'source': row 0 has 5000 tokens; a source has at most 4096 (MAX_SOURCE_STEPS)"),
    ("dates_tiny/infer", _infer(["x" * 2_000_000]), 413, "the request body is 2,000,"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"beam_widht": 3}), 400,
     "unknown parameter(s) ['beam_widht']"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"strategy": "beam", "beam_width": 0}), 400,
     "beam_width"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"max_steps": 10**9}), 400, "max_steps"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], outputs=[{"name": "attention"}]), 400, "unknown output 'attention'"),
    ("elsewhere/infer", _infer(["3 mei 1961"]), 404, "unknown model 'elsewhere'"),
    ("dates_tiny/versions/7/infer", _infer(["3 mei 1961"]), 404, "unknown version '7'"),
    ("dates_tiny/generate", b'{"text_input": ""}', 400, "generate needs text_input, a non-empty string"),
    ("dates_tiny/generate_stream", b'{"text_input": "3 mei 1961", "parameters": {"strategy": "beam"}}', 400,
     "greedy or sample, not beam"),
    # values Python cannot use were 500s (found in review)
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"strategy": "sample", "temperature": 10**400}), 400,
     "a value in the request cannot be used: OverflowError"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"timeout": 10**400}), 400,
     "parameter timeout is in microseconds, an integer from 0 (none) to 3600000000"),
    ("dates_tiny/infer", _infer(["3 mei 1961"], parameters={"mode": ["fused"]}), 400,
     "parameter mode must be a string, one of ['step', 'fused', 'fused-int8']; got ['fused']"),
    ("dates_tiny/generate", b'{"text_input": "3 mei 1961", "parameters": {"seed": 1e400}}', 400, "seed"),
    ("dates_tiny/infer", _infer(["3 mei 1961"] * 1025), 413,
     "input 'source' holds 1025 rows; a request holds at most 1024 (the server's --max-queue): split it"),
]


@pytest.mark.parametrize("path, body, status, message", MALFORMED, ids=[m[3][:40] for m in MALFORMED])
def test_malformed_requests_are_4xx_with_a_json_error(server, path, body, status, message):
    code, headers, payload = _post(f"{server}/v2/models/{path}", body)  # no Content-Type: accepted as JSON
    assert code == status and headers["content-type"] == "application/json"
    error = json.loads(payload)["error"]
    assert message in error and len(error) < 400


def test_generate_and_its_stream_give_the_runtimes_text(server, dates):
    code, _, payload = _post(f"{server}/v2/models/dates_tiny/generate", b'{"text_input": "3 mei 1961"}')
    assert code == 200 and json.loads(payload)["text_output"] == dates.generate_text(["3 mei 1961"])[0]
    code, headers, payload = _post(f"{server}/v2/models/dates_tiny/generate_stream", b'{"text_input": "1 May 2000"}')
    assert code == 200 and headers["content-type"].startswith("text/event-stream")
    events = [json.loads(e[len("data: "):]) for e in payload.decode().split("\n\n") if e]
    assert "".join(e["text_output"] for e in events) == "2000-05-01" and len(events) == 10


def test_metrics_count_requests_batches_and_tokens(server, dates):
    before = _metric_values(server)
    for text in TEXTS:
        assert _post(f"{server}/v2/models/dates_tiny/infer", _infer([text]))[0] == 200
    assert _post(f"{server}/v2/models/dates_tiny/infer", b"{bad")[0] == 400
    after = _metric_values(server)

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    assert delta('seq2seq_edge_requests_total{code="200",endpoint="infer"}') == 5
    assert delta('seq2seq_edge_errors_total{code="400"}') == 1
    assert delta("seq2seq_edge_batch_rows_count") == 5 and delta("seq2seq_edge_batch_rows_sum") == 5
    assert delta("seq2seq_edge_tokens_generated_total") == sum(len(t) for t in dates.generate_text(TEXTS))
    assert delta("seq2seq_edge_queue_seconds_count") == 5 and "seq2seq_edge_queue_rows" in after


def _metric_values(server) -> dict:
    code, payload = _get(f"{server}/metrics")
    assert code == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in payload.decode().splitlines()
            if line and not line.startswith("#")}


class Gate:
    """Wraps a Served's decode: the first call blocks until ``open``; records the rows of every call."""

    def __init__(self, decode):
        self.decode, self.calls, self.event = decode, [], threading.Event()

    def __call__(self, key, rows):
        self.calls.append(list(rows))
        if len(self.calls) == 1:
            self.event.wait(30)
        return self.decode(key, rows)


def _gated(bundle):
    """The bundle as the server loads it, a Gate around its decode, and a greedy request's batching key."""
    served = create_app(bundle).state.served
    return served, Gate(served.decode), (served.mode, None, DecodeOptions(), None, None)


def test_concurrent_requests_are_decoded_together_and_each_gets_its_own_rows(dates_bundle, dates):
    served, gate, key = _gated(dates_bundle)

    async def scenario():
        batcher = Batcher(gate, max_batch=32)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([TEXTS[0]], key))
        await asyncio.sleep(0.05)  # the first decode has started, alone: a lone request does not wait
        others = [asyncio.ensure_future(batcher.submit([t, t], key)) for t in TEXTS[1:]]
        await asyncio.sleep(0.05)
        gate.event.set()
        results = await asyncio.gather(first, *others)
        await batcher.drain()
        return results, batcher.batches

    results, batches = asyncio.run(scenario())
    want = dict(zip(TEXTS, dates.generate_text(TEXTS, mode=served.mode)))
    assert batches == 2 and gate.calls[0] == [TEXTS[0]] and len(gate.calls[1]) == 8  # four requests, one call
    assert [[r[0][0] for r in res] for res in results] == [[want[TEXTS[0]]]] + [[want[t]] * 2 for t in TEXTS[1:]]


def test_a_full_queue_refuses_at_once_and_withdrawn_or_expired_requests_are_not_decoded(dates_bundle, dates):
    served, gate, key = _gated(dates_bundle)

    async def scenario():
        batcher = Batcher(gate, max_batch=32, max_queue=3)
        batcher.start()
        busy = asyncio.ensure_future(batcher.submit([TEXTS[0]], key))
        await asyncio.sleep(0.05)  # decoding, gated
        withdrawn = asyncio.ensure_future(batcher.submit([TEXTS[1]], key))
        expired = asyncio.ensure_future(batcher.submit([TEXTS[2]], key, deadline=time.monotonic()))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(QueueFull, match=r"the queue holds 2 rows \(--max-queue 3\)"):
            await batcher.submit([TEXTS[3], TEXTS[4]], key)
        refused_in = time.perf_counter() - started
        withdrawn.cancel()  # the client went away
        kept = asyncio.ensure_future(batcher.submit([TEXTS[4]], key))
        await asyncio.sleep(0.01)
        gate.event.set()
        done = await asyncio.gather(busy, kept, expired, return_exceptions=True)
        await batcher.drain()
        return done, refused_in

    (busy, kept, expired), refused_in = asyncio.run(scenario())
    assert refused_in < 0.05
    assert busy[0][0][0] == dates.generate_text([TEXTS[0]], mode=served.mode)[0]
    assert kept[0][0][0] == dates.generate_text([TEXTS[4]], mode=served.mode)[0]
    assert type(expired).__name__ == "DeadlineExceeded"
    assert gate.calls == [[TEXTS[0]], [TEXTS[4]]]  # neither the withdrawn nor the expired request was decoded


def test_the_app_answers_503_with_retry_after_when_the_queue_is_full(dates_bundle):
    import httpx

    app = create_app(dates_bundle, max_queue=1)
    gate = Gate(app.state.served.decode)
    app.state.batcher.decode = gate

    async def scenario():
        async with app.router.lifespan_context(app):
            app.state.draining = False
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                url = "/v2/models/dates_tiny/infer"
                first = asyncio.ensure_future(client.post(url, content=_infer([TEXTS[0]])))
                await asyncio.sleep(0.05)
                second = asyncio.ensure_future(client.post(url, content=_infer([TEXTS[1]])))  # queued: 1 row
                await asyncio.sleep(0.05)
                refused = await client.post(url, content=_infer([TEXTS[2]]))
                timed_out = await client.post(url, content=_infer([TEXTS[2]], parameters={"timeout": 0}))
                gate.event.set()
                return refused, timed_out, await first, await second

    refused, timed_out, first, second = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": "overloaded: the queue holds 1 rows (--max-queue 1); retry later"}
    assert timed_out.status_code == 503  # the queue is still full: refused before its deadline matters
    assert first.status_code == 200 and second.status_code == 200


def test_sigterm_drains_the_queue_before_the_server_exits(dates_bundle, dates):
    proc, port = _start(dates_bundle, "--max-queue", "100000")
    texts = [TEXTS[i % 5] for i in range(4000)]
    want = dates.generate_text(texts)
    answers = []

    def call():
        answers.append((*_post(f"127.0.0.1:{port}/v2/models/dates_tiny/infer", _infer(texts)), time.monotonic()))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while True:  # until every request is in: answered, queued, or the one being decoded
        queued = _metric_values(f"127.0.0.1:{port}").get("seq2seq_edge_queue_rows", 0) // len(texts)
        if len(answers) + queued + 1 >= len(threads) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(120)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err
    assert len(answers) == 10 and all(code == 200 for code, _, _, _ in answers)
    assert all(json.loads(body)["outputs"][0]["data"] == want for _, _, body, _ in answers)
    assert sum(at > signalled for *_, at in answers) >= 3  # answered while draining, after the signal


def test_readiness_says_draining_and_the_cli_refuses_bad_flags(dates_bundle, ae_bundle, capsys):
    from seq2seq_edge.cli import main

    app = create_app(dates_bundle)
    assert app.state.draining  # not ready until the lifespan has started the batcher
    with pytest.raises(Exception, match=r"max_batch must be a positive integer, got 0"):
        create_app(dates_bundle, max_batch=0)
    assert main(["serve", str(ae_bundle)]) == 1
    assert "an autoencoder bundle; serve takes seq2seq bundles" in capsys.readouterr().err


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_ray_serve_replicas_give_the_same_answers(dates_bundle, dates):
    """`serve --engine ray --replicas 2`: Ray Serve's proxy in front of two replicas of the same app; tritonclient
    gets the runtime's answers, and SIGTERM stops Ray."""
    import socket

    import tritonclient.http as httpclient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge", "serve", str(dates_bundle), "--engine", "ray",
                             "--replicas", "2", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the server stopped"
            if line.startswith("serving "):
                break
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready() and client.get_model_metadata("dates_tiny")["platform"] == "seq2seq-edge"
        source = httpclient.InferInput("source", [len(TEXTS)], "BYTES")
        source.set_data_from_numpy(np.array(TEXTS, dtype=object))
        for _ in range(4):  # several requests: both replicas answer
            assert client.infer("dates_tiny", [source]).as_numpy("output").tolist() == dates.generate_text(TEXTS)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err


def test_the_node_package_calls_the_server_with_fetch(server, dates):
    """The Node binding's connect(): the same texts as the runtime, and a server's 4xx as an InputError."""
    from test_node_binding import NODE_DIR

    script = f"""
const {{ connect }} = require({json.dumps(str(NODE_DIR))});
(async () => {{
  const model = await connect('http://{server}', 'dates_tiny');
  console.log(JSON.stringify(await model.generateText({json.dumps(TEXTS)})));
  try {{ await model.generateText(['3 mei 1961 \\u2603']); }} catch (e) {{ console.log(e.name); }}
}})();
"""
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out, error = result.stdout.splitlines()
    assert json.loads(out) == dates.generate_text(TEXTS) and error == "InputError"


def test_a_real_valued_bundle_takes_and_gives_fp32_tensors(sine_bundle, sine):
    """Feature bundles: FP32 source [batch, time, features] in, FP32 forecasts [batch, steps, features] out, the
    runtime's own numbers; a wrong feature count is a 400."""
    import httpx

    app = create_app(sine_bundle)
    x = np.random.default_rng(0).normal(size=(2, 30, 2)).astype(np.float32)

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                meta = (await client.get("/v2/models/sine_tiny")).json()
                body = {"inputs": [{"name": "source", "datatype": "FP32", "shape": [2, 30, 2],
                                    "data": x.reshape(-1).tolist()}], "parameters": {"max_steps": 5}}
                good = await client.post("/v2/models/sine_tiny/infer", json=body)
                body["inputs"][0]["shape"] = [2, 20, 3]
                bad = await client.post("/v2/models/sine_tiny/infer", json=body)
                return meta, good, bad

    meta, good, bad = asyncio.run(scenario())
    assert meta["inputs"] == [{"name": "source", "datatype": "FP32", "shape": [-1, -1, 2]}]
    out = good.json()["outputs"][0]
    assert good.status_code == 200 and out["shape"] == [2, 5, 2]
    np.testing.assert_allclose(np.reshape(out["data"], (2, 5, 2)), np.stack(sine.generate(x, 5)), rtol=1e-6)
    assert bad.status_code == 400 and bad.json()["error"] == "input 'source' has shape [batch, time, 2], got [2, 20, 3]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the listening socket's backlog with ss")
def test_the_listen_backlog_is_above_256(server):
    """A backlog of 5 stalled clients for 11 s: the server listens with 2,048 (the kernel may cap it lower)."""
    import shutil

    if shutil.which("ss") is None:
        pytest.fail("ss (iproute2) is needed to read the backlog")
    port = server.rsplit(":", 1)[1]
    lines = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout.split("\n")
    backlog = int(lines[0].split()[2])  # Send-Q of a listening socket: its backlog
    with open("/proc/sys/net/core/somaxconn") as f:
        assert backlog == min(2048, int(f.read())) and backlog > 256


def test_review_findings_timeout_zero_greedy_options_binary_header_and_stream_separators(server, dates, bundle_copy):
    """timeout 0 is Triton's "none" (it was an immediate 504); greedy with a sampling-only option stays greedy in
    the requested mode, without log_prob; a non-ASCII digit in Inference-Header-Content-Length is a 400; and a
    stream of a bundle whose tokens are separated by spaces joins to generate's text."""
    code, _, body = _post(f"{server}/v2/models/dates_tiny/infer", _infer(["3 mei 1961"], parameters={"timeout": 0}))
    assert code == 200
    code, _, body = _post(f"{server}/v2/models/dates_tiny/infer",
                          _infer(["3 mei 1961"], parameters={"temperature": 0.5, "mode": "fused"}))
    assert code == 200 and [o["name"] for o in json.loads(body)["outputs"]] == ["output"]
    code, _, body = _post(f"{server}/v2/models/dates_tiny/infer", _infer(["3 mei 1961"]),
                          {"Inference-Header-Content-Length": "\u00b2".encode().decode("latin-1")})
    assert code == 400 and "Inference-Header-Content-Length" in json.loads(body)["error"]

    manifest = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["target"]["vocabulary"]["separator"] = " "
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    proc, port = _start(bundle_copy)
    try:
        url = f"127.0.0.1:{port}/v2/models/bundle"
        code, _, body = _post(f"{url}/generate", b'{"text_input": "3 mei 1961"}')
        whole = json.loads(body)["text_output"]
        assert code == 200 and whole == "1 9 6 1 - 0 5 - 0 3"
        code, _, body = _post(f"{url}/generate_stream", b'{"text_input": "3 mei 1961"}')
        events = [json.loads(e[len("data: "):])["text_output"] for e in body.decode().split("\n\n") if e]
        assert code == 200 and "".join(events) == whole and events[:2] == ["1", " 9"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
