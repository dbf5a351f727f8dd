"""Load test of `seq2seq-edge serve`: closed-loop clients over loopback, one table.

    python tools/serve_load.py BUNDLE [--concurrency 1,8,64,256] [--seconds 10] [--max-requests N]
                                      [--configs batched,unbatched,overload] [--max-queue N]

For each server configuration (``batched``: the defaults, ``--max-batch 32``; ``unbatched``: ``--max-batch 1``;
``overload``: the defaults with a small ``--max-queue``; ``wait5``: ``--max-wait-ms 5``; ``ray``: Ray Serve
with 2 replicas) it starts the server as its own process, then for each concurrency
runs that many clients, each sending one-text infer requests back to back on a kept-alive connection, for
``--seconds`` or ``--max-requests`` in all. Every answer is checked against ``load(BUNDLE).generate_text`` of
the same text in the server's mode. It prints, per configuration and concurrency: requests/s, p50 and p99
latency, refusals (503/429: their count and p50/p99 time to the answer) and other errors, wrong answers, and the server's
memory (RSS) before and after. The clients are asyncio streams (on uvloop when it is installed) with
hand-written HTTP/1.1: no client library's cost on the two cores the server shares.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATES = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000", "Sunday, 31 December 2049", "14. Juli 2023",
         "5 juni 1970", "1 May 2000", "12 ottobre 1492", "2 février 1988", "23 Mar 1999"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port() if "ray" in extra else 0  # Ray Serve's proxy takes a given port
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge", "serve", bundle, "--port", str(port), *extra],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "serving " in line and " on http://" in line:
            port = int(line.split(" on http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            return proc, port
    proc.kill()
    raise SystemExit(f"the server did not start: {proc.stderr.read()[-2000:]}")


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def children_rss_mb(pid: int) -> float:
    total = rss_mb(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            total += sum(children_rss_mb(int(c)) for c in f.read().split())
    except FileNotFoundError:
        pass
    return total


async def client(port: int, name: str, texts: list[str], expected: dict, stop: float, budget: list, stats: dict):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = 0
    try:
        while time.monotonic() < stop and budget[0] > 0:
            budget[0] -= 1
            text = texts[k % len(texts)]
            k += 1
            body = json.dumps({"inputs": [{"name": "source", "datatype": "BYTES", "shape": [1],
                                           "data": [text]}]}).encode()
            head = (f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif lower.startswith(b"connection:") and b"close" in lower:
                    close = True
            payload = await reader.readexactly(length)
            seconds = time.perf_counter() - started
            if close:  # as an HTTP/1.1 client does: the server ends this connection, open another
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if status == 200:
                stats["latency"].append(seconds)
                got = json.loads(payload)["outputs"][0]["data"][0]
                stats["wrong"] += got != expected[text]
            elif status in (429, 503):
                stats["refused"].append(seconds)
            else:
                stats["errors"] += 1
                stats.setdefault("first_error", payload[:200])
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        stats["errors"] += 1
        stats.setdefault("first_error", repr(exc))
    finally:
        writer.close()


async def run_level(port: int, name: str, texts: list[str], expected: dict, concurrency: int, seconds: float,
                    max_requests: int) -> dict:
    stats = {"latency": [], "wrong": 0, "refused": [], "errors": 0}
    budget = [max_requests]
    started = time.perf_counter()
    stop = time.monotonic() + seconds
    await asyncio.gather(*(client(port, name, texts, expected, stop, budget, stats) for _ in range(concurrency)))
    stats["seconds"] = time.perf_counter() - started
    return stats


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--concurrency", default="1,8,64,256")
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per level (default: %(default)s)")
    parser.add_argument("--configs", default="batched,unbatched", help="batched, unbatched, overload, wait5, ray")
    parser.add_argument("--max-queue", type=int, default=32, help="the overload configuration's --max-queue")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:  # the clients share the cores with the server: the faster event loop keeps them from being the limit
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    from seq2seq_edge.runtime import load

    model = load(args.bundle, threads=1)
    name = Path(args.bundle).resolve().name
    expected = dict(zip(DATES, model.generate_text(DATES)))
    times = []
    for k in range(2000):  # the decode time of one text, for the lone request's latency
        started = time.perf_counter()
        model.generate_text([DATES[k % len(DATES)]])
        times.append(time.perf_counter() - started)
    configs = {"batched": [], "unbatched": ["--max-batch", "1"], "overload": ["--max-queue", str(args.max_queue)],
               "wait5": ["--max-wait-ms", "5"], "ray": ["--engine", "ray", "--replicas", "2"]}
    print(f"bundle {args.bundle} (mode {model.manifest.default_mode}), {os.cpu_count()} cores, "
          f"{args.seconds:g} s per level, one text per request; load(...).generate_text of one text alone: "
          f"p50 {1000 * percentile(times, 0.5):.2f} ms")
    print("| server | clients | requests/s | p50 ms | p99 ms | refused (p50/p99 ms) | errors | wrong "
          "| RSS MB before/after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config in args.configs.split(","):
        proc, port = start_server(args.bundle, configs[config])
        try:
            asyncio.run(run_level(port, name, DATES, expected, 4, 1.0, 400))  # warm-up
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                before = children_rss_mb(proc.pid)
                s = asyncio.run(run_level(port, name, DATES, expected, concurrency, args.seconds, args.max_requests))
                after = children_rss_mb(proc.pid)
                ok = len(s["latency"])
                refused = (f"{len(s['refused'])} ({1000 * percentile(s['refused'], 0.5):.0f}/"
                           f"{1000 * percentile(s['refused'], 0.99):.0f})" if s["refused"] else "0")
                p50, p99 = (1000 * percentile(s["latency"], q) for q in (0.5, 0.99))
                print(f"| {config} | {concurrency} | {ok / s['seconds']:,.0f} | {p50:.1f} | {p99:.1f} | {refused} "
                      f"| {s['errors']} | {s['wrong']} | {before:.0f}/{after:.0f} |", flush=True)
                if s.get("first_error"):
                    print(f"  first error: {s['first_error']}", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
