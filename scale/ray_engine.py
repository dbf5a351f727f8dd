"""The Ray engine: the same scoring on Ray Data - rows in a Dataset, ``map_batches`` over an actor class that
holds one loaded model per actor (one onnxruntime thread, one CPU), results streamed back in order.

Ray is the ``[scale]`` extra, imported only here. Actors that die are restarted and their batches retried
by Ray (``max_restarts``, ``max_task_retries``), so every row still comes back exactly once.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from ..runtime import DecodeOptions
from ..runtime.errors import BundleError, InputError, Seq2SeqEdgeError
from .files import _Bad
from .scorer import Scorer, unreadable

__all__ = ["score_dataset", "RayScorer", "run_ray"]

# Tests only: the path of a marker file; the first actor to score a batch creates it and exits at once.
DIE_ONCE = "SEQ2SEQ_EDGE_TEST_DIE_ONCE"
READ_ERROR = "_read_error"  # a row the reader could not read (rides beside the source through Ray)
FAILURE = "_failure"  # a batch that failed as a whole: the error's class and message


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("the ray engine needs Ray: pip install 'seq2seq-edge[scale]'") from None
    return ray


class RayScorer:
    """A Ray Data actor: one Scorer per actor; batches are Arrow tables with the source column (and any
    others, passed through); it adds ``output``, ``log_prob`` and ``error``."""

    def __init__(self, bundle: str, options: DecodeOptions | None, mode: str | None, max_steps: int | None,
                 column: str) -> None:
        self.scorer, self.column = Scorer(bundle, options, mode, max_steps, threads=1), column

    def __call__(self, batch):
        import pyarrow as pa

        marker = os.environ.get(DIE_ONCE)
        if marker and not os.path.exists(marker):  # fault injection for the tests: die once, mid-job
            Path(marker).touch()
            os._exit(1)
        sources = batch.column(self.column).to_pylist()
        if READ_ERROR in batch.column_names:
            errors = batch.column(READ_ERROR).to_pylist()
            sources = [s if e is None else _Bad(e) for s, e in zip(sources, errors)]
            batch = batch.drop_columns([READ_ERROR])
        try:
            result = self.scorer({"id": list(range(len(sources))), "source": sources})
        except Seq2SeqEdgeError as exc:  # the job's error, not a row's (a bundle that fails while decoding):
            # passed back as data, since Ray reports an exception as a wrapper that has lost the original
            return pa.table({FAILURE: [type(exc).__name__], "message": [str(exc)]})
        batch = batch.set_column(batch.column_names.index(self.column), self.column,
                                 pa.array(result["source"], pa.string()))
        for name, kind in (("output", pa.string()), ("log_prob", pa.float64()), ("error", pa.string())):
            batch = batch.append_column(name, pa.array(result[name], kind))
        return batch


def score_dataset(dataset, bundle: str | Path, *, column: str = "source", options: DecodeOptions | None = None,
                  mode: str | None = None, max_steps: int | None = None, batch_size: int = 256,
                  concurrency: int | None = None):
    """A Ray Dataset of rows with a ``column`` of sources -> the same rows with ``output``, ``log_prob`` (beam
    search and sampling) and ``error`` (a row that could not be decoded), scored by ``concurrency`` actors
    (default: one per CPU of the cluster), each holding the bundle loaded once.

    Lazy, as Ray Data is: nothing runs until the dataset is consumed or written. The bundle path must be
    readable where the actors run. fp32 modes give each row the same output whatever the batching; int8's
    dynamic quantisation scales by the batch (pass ``mode='fused'`` where that matters).
    """
    ray = _ray()
    if Scorer(str(bundle), options, mode, max_steps).windows:  # a broken bundle or bad options fail here too
        raise InputError(f"{bundle} is an autoencoder bundle; score_dataset scores texts (score its windows "
                         "with the local engine)")
    clash = [c for c in ("output", "log_prob", "error") if c in (dataset.columns() or [])]
    if clash:
        raise InputError(f"the dataset already has column(s) {clash}, which scoring adds; rename them")
    workers = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Ray Data restarts an actor pool's dead actors and retries their batches by default.
    return dataset.map_batches(RayScorer, batch_format="pyarrow", batch_size=batch_size, num_cpus=1,
                               compute=ray.data.ActorPoolStrategy(size=workers),
                               fn_constructor_kwargs=dict(bundle=str(bundle), options=options, mode=mode,
                                                          max_steps=max_steps, column=column))


def run_ray(bundle: str, rows: Iterator[tuple[int, Any]], workers: int, batch_size: int, options, mode,
            max_steps, address: str | None) -> Iterator[dict[str, list]]:
    """score_file's ray engine: ``rows`` into a Dataset (read on the driver, so ids are the input's row
    numbers), score_dataset, and the results back in input order."""
    import logging

    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ notices, before it starts
    ray = _ray()
    ray.data.DataContext.get_current()  # importing ray.data configures its loggers, which are quieted next
    for name in ("ray", "ray.data"):  # its INFO lines about execution plans and progress bars
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("ray", "ray.data"):  # Ray Data's own ERROR lines and stack traces: the error is ours to report
        logging.getLogger(name).setLevel(logging.CRITICAL)
    started = not ray.is_initialized()
    if started:  # a local Ray of `workers` CPUs, unless a cluster is named (here or in RAY_ADDRESS)
        joining = address or os.environ.get("RAY_ADDRESS")
        with _quiet_stderr():  # Ray's C++ core says which log level it read from the environment
            ray.init(address=address, num_cpus=None if joining else workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    try:
        yield from _scored(ray, bundle, rows, workers, batch_size, options, mode, max_steps)
    except Exception as exc:
        if not type(exc).__module__.startswith("ray"):
            raise
        raise _worker_error(exc) from None  # one line, not Ray's 75 lines of stack
    finally:
        if started:
            ray.shutdown()


def _worker_error(exc: BaseException) -> Seq2SeqEdgeError:
    """A Ray failure as one bounded line: the last line of what Ray reports, without its colour codes."""
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    last = " ".join((lines[-1] if lines else "").split())
    return Seq2SeqEdgeError(f"a Ray worker failed ({type(exc).__name__}): {last[:300]}")


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 points at /dev/null for the block (output of native code included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _scored(ray, bundle, rows, workers, batch_size, options, mode, max_steps) -> Iterator[dict[str, list]]:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    import pyarrow as pa

    ids, sources, errors = [], [], []
    for i, s in rows:
        problem = unreadable(s)
        ids.append(i)
        sources.append(None if problem else s)
        errors.append(problem)
    if not ids:
        return
    table = pa.table({"id": pa.array(ids, pa.int64()), "source": pa.array(sources, pa.string()),
                      READ_ERROR: pa.array(errors, pa.string())})
    block = max(batch_size, -(-len(ids) // (8 * workers)))  # blocks for every actor, a few batches each
    blocks = [table.slice(k, block) for k in range(0, len(ids), block)]
    scored = score_dataset(ray.data.from_arrow(blocks), bundle, options=options, mode=mode, max_steps=max_steps,
                           batch_size=batch_size, concurrency=workers)
    for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
        if FAILURE in batch.column_names:
            kind = {"BundleError": BundleError, "InputError": InputError}.get(batch.column(FAILURE)[0].as_py(),
                                                                                Seq2SeqEdgeError)
            raise kind(batch.column("message")[0].as_py())
        yield batch.select(["id", "source", "output", "log_prob", "error"]).to_pydict()

