"""The local engine: N worker processes on this machine, each with the bundle loaded once."""

from __future__ import annotations

import hashlib
import os
import signal
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
    """``rows`` in the output (``resumed`` of them from an earlier, interrupted run), ``errors`` among them,
    ``seconds`` this run took."""
    rows: int
    errors: int
    seconds: float
    output: Path
    resumed: int = 0

    def __str__(self) -> str:
        scored = self.rows - self.resumed
        rate = scored / self.seconds if self.seconds > 0 else float("inf")
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
        kept = f", after {self.resumed} resumed" if self.resumed else ""
        return (f"scored {scored} rows{kept} ({self.errors} with an error) in {self.seconds:.1f} s, {shown} rows/s "
                f"-> {self.output}")


class ScoreInterrupted(KeyboardInterrupt):
    """score_file stopped by Ctrl-C or SIGTERM: the rows written so far are kept for ``resume``."""


def _init(bundle: str, options: DecodeOptions, mode: str | None, max_steps: int | None, parent: int) -> None:
    global _worker
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the job
    _worker = Scorer(bundle, options, mode, max_steps, threads=1)


def die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when its parent dies (a `kill -9` of the job leaves no worker
    scoring on); elsewhere the pool's own pipe tells workers their parent is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


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
               address: str | None = None, allow_batch_dependence: bool = False,
               resume: bool = False) -> ScoreSummary:
    """Score every row of ``input`` with ``bundle`` into ``output`` (see the package docstring).

    ``workers`` processes (1: in this process) each load the bundle once with one onnxruntime thread and
    take batches of ``batch_size`` rows; at most two batches per worker are in flight, so memory stays
    bounded whatever the input's size. ``progress(done, total, seconds)`` is called after each batch.
    ``engine='ray'``: the same on Ray Data with ``workers`` actors (scale.ray_engine), on a local Ray
    started with ``workers`` CPUs or on the cluster at ``address``; the input is read on the driver.
    A mode whose answers depend on the batch (int8 of a bundle exported before static int8 scales) is refused
    on more than one worker, where rows are batched differently from run to run, unless
    ``allow_batch_dependence``.

    Rows are appended to ``OUTPUT.partial`` as they are scored, and published as ``output`` once, when all are
    done. A job stopped by Ctrl-C or SIGTERM (ScoreInterrupted) or killed keeps that file and a record of the
    job beside it; ``resume=True`` continues it from the first row it lacks (the same bundle, input and
    options, or an InputError), and does a whole job where there is nothing to continue. Worker processes die
    with this one.
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
    writer = ResultWriter(output, force, windows=probe.windows, resume=resume,
                          job=_job(bundle, input, column, options, mode, max_steps))
    rows = islice(rows, writer.resumed, None)  # the rows an interrupted run already wrote
    total = count_rows(input, column) if progress else None  # a second pass over the input: only to show it
    started, done, errors = time.perf_counter(), writer.resumed, writer.resumed_errors
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
    except KeyboardInterrupt:
        writer.suspend()
        raise ScoreInterrupted(f"interrupted: {done} rows are kept in {writer.partial}; run the same command "
                               "with --resume (resume=True) to continue from there") from None
    except BaseException as exc:
        if done == 0:  # nothing scored (this run or before): nothing to keep
            writer.abort()
        else:  # a failure after hours of work (a worker killed for memory, a full disk) keeps the rows
            writer.suspend()
            exc.add_note(f"the {done} rows scored are kept in {writer.partial}: run the same command with "
                         "--resume (resume=True) to continue from there")
        raise
    finally:
        results.close() if hasattr(results, "close") else None  # stops the worker pool, closes the input
    return ScoreSummary(done, errors, time.perf_counter() - started, Path(output), writer.resumed)


def _job(bundle, input, column, options, mode, max_steps) -> dict:
    """What makes a job's rows what they are, recorded beside its partial output so that a resume is the
    same job: the bundle's manifest (its graphs' hashes are in it), the input file, the decode settings."""
    from dataclasses import asdict

    manifest = Path(bundle) / "manifest.json"
    info = Path(input).stat()
    return {"bundle_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "input": str(Path(input).resolve()), "input_bytes": info.st_size, "input_mtime_ns": info.st_mtime_ns,
            "column": column, "options": asdict(options), "mode": mode, "max_steps": max_steps}


def _chain(first, rest):
    yield first
    yield from rest


def _run(bundle: str, scorer: Scorer | None, rows, workers: int, batch_size: int, options, mode, max_steps):
    batches = _batches(rows, batch_size)
    if scorer is not None:  # one worker: this process
        yield from (scorer(b) for b in batches)
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                               initargs=(bundle, options, mode, max_steps, os.getpid()))
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
