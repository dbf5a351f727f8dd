"""The local engine: N worker processes on this machine, each with the bundle loaded once."""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator

from ..runtime import DecodeOptions
from ..runtime.errors import InputError
from .files import ResultWriter, count_rows, read_sources
from .scorer import Scorer

__all__ = ["score_file", "ScoreSummary"]

_worker: Scorer | None = None


@dataclass(frozen=True)
class ScoreSummary:
    rows: int
    errors: int
    seconds: float
    output: Path

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
        return (f"scored {self.rows} rows ({self.errors} with an error) in {self.seconds:.1f} s, {shown} rows/s "
                f"-> {self.output}")


def _init(bundle: str, options: DecodeOptions, mode: str | None, max_steps: int | None) -> None:
    global _worker
    _worker = Scorer(bundle, options, mode, max_steps, threads=1)


def _score(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    assert _worker is not None
    return _worker(batch)


def _batches(rows: Iterator[tuple[int, Any]], size: int) -> Iterator[dict[str, list[Any]]]:
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield {"id": [i for i, _ in chunk], "source": [s for _, s in chunk]}


def score_file(bundle: str | Path, input: str | Path, output: str | Path, *, column: str = "source",
               workers: int = 1, batch_size: int = 256, options: DecodeOptions | None = None,
               mode: str | None = None, max_steps: int | None = None, force: bool = False,
               progress: Callable[[int, int | None, float], None] | None = None, engine: str = "local",
               address: str | None = None, allow_batch_dependence: bool = False) -> ScoreSummary:
    """Score every row of ``input`` with ``bundle`` into ``output`` (see the package docstring).

    ``workers`` processes (1: in this process) each load the bundle once with one onnxruntime thread and
    take batches of ``batch_size`` rows; at most two batches per worker are in flight, so memory stays
    bounded whatever the input's size. ``progress(done, total, seconds)`` is called after each batch.
    ``engine='ray'``: the same on Ray Data with ``workers`` actors (scale.ray_engine), on a local Ray
    started with ``workers`` CPUs or on the cluster at ``address``; the input is read on the driver.
    A mode whose answers depend on the batch (int8 of a bundle exported before static int8 scales) is refused
    on more than one worker, where rows are batched differently from run to run, unless
    ``allow_batch_dependence``.
    """
    if engine not in ("local", "ray"):
        raise InputError(f"engine must be 'local' or 'ray', got {engine!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    options = options or DecodeOptions()
    rows = read_sources(input, column)
    first = next(rows, None)  # the input's own errors (missing file or column) before any worker starts
    rows = iter(()) if first is None else _chain(first, rows)
    probe = Scorer(str(bundle), options, mode, max_steps, threads=1)  # a broken bundle fails here, once
    if probe.windows and engine == "ray":
        raise InputError("the ray engine scores token bundles; score autoencoder windows with the local engine")
    if not probe.windows and workers > 1 and not allow_batch_dependence:
        used = "step" if options.strategy != "greedy" else mode or probe.model.manifest.default_mode
        if used in probe.model.batch_dependent_modes:
            raise InputError(
                f"{bundle}: mode {used!r} scales int8 by each batch's range (the bundle was exported before int8 "
                f"scales were fixed at export), so a row's output would depend on how rows are split among "
                f"{workers} workers; export the bundle again, or pass --mode fused, or "
                "--allow-batch-dependence (allow_batch_dependence=True) to accept it")
    writer = ResultWriter(output, force, windows=probe.windows)
    total = count_rows(input, column) if progress else None  # a second pass over the input: only to show it
    started, done, errors = time.perf_counter(), 0, 0
    results = iter(())
    try:
        if engine == "ray":
            from .ray_engine import run_ray

            results = run_ray(str(bundle), rows, workers, batch_size, options, mode, max_steps, address)
        else:
            results = _run(str(bundle), probe if workers == 1 else None, rows, workers, batch_size, options, mode,
                           max_steps)
        for result in results:
            writer.write(result)
            done += len(result["id"])
            errors += sum(e is not None for e in result["error"])
            if progress:
                progress(done, total, time.perf_counter() - started)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        results.close() if hasattr(results, "close") else None  # stops the worker pool, closes the input
    return ScoreSummary(done, errors, time.perf_counter() - started, Path(output))


def _chain(first, rest):
    yield first
    yield from rest


def _run(bundle: str, scorer: Scorer | None, rows, workers: int, batch_size: int, options, mode, max_steps):
    batches = _batches(rows, batch_size)
    if scorer is not None:  # one worker: this process
        yield from (scorer(b) for b in batches)
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                               initargs=(bundle, options, mode, max_steps))
    try:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(_score, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:  # an error, or the caller stopped early: drop what is queued, then stop the workers
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def print_progress(done: int, total: int | None, seconds: float, stream=None) -> None:
    """One line, rewritten in place: rows done (of total), rows/s and the time left."""
    stream = stream or sys.stderr
    rate = done / seconds if seconds > 0 else 0.0
    if total:
        left = (total - done) / rate if rate > 0 else float("nan")
        text = f"\r{done:,}/{total:,} rows ({100 * done / total:.0f}%), {rate:,.0f} rows/s, ETA {left:,.0f} s"
    else:
        text = f"\r{done:,} rows, {rate:,.0f} rows/s"
    stream.write(text + " " * 4)
    stream.flush()
