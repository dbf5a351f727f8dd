"""Dynamic batching for a served bundle: concurrent requests are queued and decoded together.

One decode runs at a time, on a worker thread (onnxruntime releases the GIL, so the event loop keeps
accepting and parsing requests meanwhile). When the decoder is free it takes every queued row that can
share the head request's decode (same mode, max_steps and options; feature windows of the same length), up
to ``max_batch`` rows, so batches form while the previous one decodes and a lone request is sent at once, as
adaptive batchers do. With ``max_wait`` > 0, an idle decoder also waits up to that long for more rows, but
only while requests arrive faster than they are served (the last batch held more than one request). On a
2-core machine that wait only cost throughput (tools/serve_load.py: 873 against 2,098 requests/s at 8
clients with 5 ms), so the default is 0. The queue holds at most ``max_queue`` rows: beyond that ``submit``
raises QueueFull at once. A request whose client went away, or whose deadline passed, before its batch started is
dropped without being decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Hashable

__all__ = ["Batcher", "QueueFull", "DeadlineExceeded", "Job"]


class QueueFull(Exception):
    """The queue holds ``max_queue`` rows already: the caller should answer 503 and ask to retry."""


class DeadlineExceeded(Exception):
    """The request's deadline passed before its batch started."""


@dataclass(eq=False)
class Job:
    rows: list  # texts, or windows (time, features)
    key: Hashable  # requests with equal keys can share one decode
    deadline: float | None  # time.monotonic() after which the job is dropped unless started
    future: asyncio.Future
    queued: float = field(default_factory=time.monotonic)


class Batcher:
    """``decode(key, rows) -> (results, tokens)`` runs on one worker thread; ``submit`` queues a request's rows
    and returns exactly its own results. ``on_batch(requests, rows, queue_seconds, compute_seconds, tokens)``
    is told about each batch (metrics)."""

    def __init__(self, decode: Callable[[Hashable, list], tuple[list, int]], *, max_batch: int = 32,
                 max_wait: float = 0.0, max_queue: int = 1024,
                 on_batch: Callable[..., None] | None = None) -> None:
        self.decode, self.max_batch, self.max_wait, self.max_queue = decode, max_batch, max_wait, max_queue
        self.on_batch = on_batch or (lambda *args: None)
        self.jobs: deque[Job] = deque()
        self.queued_rows = 0
        self.batches = 0  # decode calls made (tests see batching through it)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="seq2seq-edge-decode")
        self._last_requests = 1
        self._closing = False

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, rows: list, key: Hashable, deadline: float | None = None) -> list:
        """Queue ``rows`` and wait for their results (cancel the awaiting task to withdraw them)."""
        if self._closing:
            raise QueueFull("the server is shutting down")
        if self.queued_rows + len(rows) > self.max_queue:
            raise QueueFull(f"the queue holds {self.queued_rows} rows (--max-queue {self.max_queue})")
        job = Job(rows, key, deadline, asyncio.get_running_loop().create_future())
        self.jobs.append(job)
        self.queued_rows += len(rows)
        self._wake.set()
        try:
            return await job.future
        finally:
            if not job.future.done():  # withdrawn: the client went away; the batcher skips it
                job.future.cancel()

    async def drain(self) -> None:
        """Refuse new requests, finish the queued ones, stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._pool.shutdown(wait=True)

    def _take(self) -> list[Job]:
        """The head job and every queued job that can share its decode, up to max_batch rows; drops jobs that
        were withdrawn or are past their deadline."""
        now = time.monotonic()
        batch: list[Job] = []
        rows = 0
        kept: deque[Job] = deque()
        while self.jobs:
            job = self.jobs.popleft()
            if job.future.done():  # cancelled while queued
                self.queued_rows -= len(job.rows)
                continue
            if job.deadline is not None and now > job.deadline:
                self.queued_rows -= len(job.rows)
                job.future.set_exception(DeadlineExceeded("the request's deadline passed while it was queued"))
                continue
            if batch and (job.key != batch[0].key or rows + len(job.rows) > self.max_batch):
                kept.append(job)
                continue
            batch.append(job)
            rows += len(job.rows)
        self.jobs = kept
        for job in batch:
            self.queued_rows -= len(job.rows)
        return batch

    def _rows_like_head(self) -> int:
        head = next((j for j in self.jobs if not j.future.done()), None)
        return 0 if head is None else sum(len(j.rows) for j in self.jobs if j.key == head.key and
                                          not j.future.done())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.jobs:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._last_requests > 1 and self.max_wait > 0 and self._rows_like_head() < self.max_batch:
                # Requests are arriving faster than they are served: give the batch a moment to fill.
                deadline = loop.time() + self.max_wait
                while self._rows_like_head() < self.max_batch and loop.time() < deadline and not self._closing:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
                    except asyncio.TimeoutError:
                        break
            batch = self._take()
            if not batch:
                continue
            self._last_requests = len(batch)
            try:
                rows = [r for job in batch for r in job.rows]
                started = time.monotonic()
                try:
                    results, tokens = await loop.run_in_executor(self._pool, self.decode, batch[0].key, rows)
                finally:
                    self.batches += 1
                computed = time.monotonic()
                if len(results) != len(rows):
                    raise RuntimeError(f"the decode returned {len(results)} results for {len(rows)} rows")
                k = 0
                for job in batch:
                    if not job.future.done():
                        job.future.set_result(results[k: k + len(job.rows)])
                    k += len(job.rows)
                self.on_batch(len(batch), len(rows), [started - job.queued for job in batch], computed - started,
                              tokens)
            except Exception as exc:  # noqa: BLE001 - the batch's requests get the error; the batcher goes on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
