"""Reading sources and writing results, row by row, in the formats `score` takes: text (one source per line),
CSV or JSON Lines with a column, Parquet (with pyarrow); results as JSON Lines or Parquet."""

from __future__ import annotations

import csv
import json
import os
import stat
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from ..runtime.errors import InputError
from ..runtime.schema import show
from ..runtime.fsutil import OutputExistsError, check_output_path, publish_file, write_bytes_atomic

__all__ = ["read_sources", "ResultWriter", "INPUT_KINDS", "OUTPUT_KINDS", "count_rows"]

INPUT_KINDS = {".txt": "text", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".npy": "npy"}
OUTPUT_KINDS = {".jsonl": "jsonl", ".parquet": "parquet"}
MAX_FIELD = 1 << 24  # characters in one CSV field
MAX_ROW_BYTES = 1 << 20  # bytes in one line of a text or JSON Lines input; a longer line is that row's error


def _kind(path: Path, kinds: dict, what: str) -> str:
    kind = kinds.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: the {what} format is chosen by its extension, one of {sorted(kinds)}; "
                         f"got {path.suffix or 'none'!r}")
    return kind


def read_sources(path: str | Path, column: str = "source") -> Iterator[tuple[int, Any]]:
    """(row number, source) for every row of ``path``, in order, read as a stream. A text file gives one
    source per line (UTF-8, \\n or \\r\\n; blank lines are rows too, and get an error when scored)."""
    path = Path(path)
    kind = _kind(path, INPUT_KINDS, "input")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if kind == "parquet":
        yield from enumerate(_parquet_column(path, column))
        return
    if kind == "npy":  # windows (n, window, features), read a row at a time from a memory map
        import numpy as np

        try:
            windows = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path}: not a .npy array of numbers ({exc})") from None
        if not isinstance(windows, np.ndarray):  # an .npz archive under a .npy name
            windows.close()
            raise InputError(f"{path}: not a .npy array (an .npz archive?); save the windows with numpy.save")
        if windows.ndim not in (2, 3):
            raise InputError(f"{path}: windows are (n, window, features) or (n, window); this array is "
                             f"{windows.shape}")
        for number in range(len(windows)):
            yield number, np.array(windows[number])
        return
    if kind == "csv":  # ids are record numbers (csv skips blank lines: they are no records); a BOM is not data
        # Undecodable bytes become lone surrogates, so one bad record is that record's error, not the job's.
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            try:
                csv.field_size_limit(MAX_FIELD)
                reader = csv.DictReader(f)
                if column not in (reader.fieldnames or []):
                    raise InputError(f"{path}: no column {column!r} (columns: {show(reader.fieldnames, 200)}); "
                                     "pick one with --column")
                for number, row in enumerate(reader):
                    value = row[column]
                    if value is None:  # a record with fewer fields than the header
                        yield number, _Bad(f"record {number + 1} (line {reader.line_num}) has no field {column!r}")
                    else:
                        yield number, value if _utf8(value) else _Bad(
                            f"record {number + 1} (line {reader.line_num}) is not valid UTF-8; convert the file")
            except csv.Error as exc:
                raise InputError(f"{path}: not readable as CSV ({str(exc)[:200]})") from None
        return
    for number, line in _lines(path):  # text and JSON Lines
        yield number, line if kind == "text" or isinstance(line, _Bad) else _json_row(path, number, line, column)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, line) for each line of ``path``, read a line at a time in binary: lines end at \n (or \r\n)
    only, a BOM is not data, and a line that is not UTF-8 or longer than MAX_ROW_BYTES is a ``_Bad`` row
    (the longer line is skipped a block at a time, never held)."""
    with open(path, "rb") as f:
        number = 0
        while line := f.readline(MAX_ROW_BYTES + 1):
            if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
                size = len(line)
                while rest := f.readline(1 << 20):
                    size += len(rest)
                    if rest.endswith(b"\n"):
                        break
                yield number, _Bad(f"line {number + 1} is {size:,} bytes long; a row has at most {MAX_ROW_BYTES:,}")
            else:
                if number == 0:
                    line = line.removeprefix(b"\xef\xbb\xbf")
                line = line.removesuffix(b"\n").removesuffix(b"\r")
                try:
                    yield number, line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield number, _Bad(f"line {number + 1} is not valid UTF-8 (byte {line[exc.start]:#04x} at "
                                       f"byte {exc.start + 1} of the line); convert the file")
            number += 1


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_row(path: Path, number: int, line: str, column: str) -> Any:
    """A JSON Lines row's ``column``; a line that is not an object with it is a row the scorer marks bad."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return _Bad(f"line {number + 1} is not JSON ({exc.msg})")
    except (ValueError, RecursionError) as exc:  # numbers past Python's digit limit, nesting past its stack
        return _Bad(f"line {number + 1} is not readable JSON ({type(exc).__name__})")
    if not isinstance(row, dict) or column not in row:
        return _Bad(f"line {number + 1} has no field {column!r}")
    return row[column]


class _Bad(str):
    """A row that could not be read: scored as an error with this text, not decoded."""


def _parquet_column(path: Path, column: str) -> Iterator[Any]:
    pq = _pyarrow_parquet()
    table = pq.ParquetFile(path)
    if column not in table.schema_arrow.names:
        raise InputError(f"{path}: no column {column!r} (columns: {table.schema_arrow.names}); pick one with --column")
    for batch in table.iter_batches(columns=[column], batch_size=4096):
        yield from batch.column(0).to_pylist()


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Parquet needs pyarrow: pip install 'seq2seq-edge[scale]'") from None
    return pq


def count_rows(path: str | Path, column: str = "source") -> int | None:
    """How many rows ``path`` holds (for the progress display), or None when counting would read it twice
    at a cost (CSV and JSON Lines are counted by lines)."""
    path = Path(path)
    kind = INPUT_KINDS.get(path.suffix.lower())
    if kind == "parquet":
        return _pyarrow_parquet().ParquetFile(path).metadata.num_rows
    if kind == "npy":
        import numpy as np

        try:
            return len(np.load(path, mmap_mode="r", allow_pickle=False))
        except (ValueError, TypeError):
            return None
    with open(path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        f.seek(max(0, f.seek(0, os.SEEK_END) - 1))
        last = f.read(1)
    lines += bool(last) and last != b"\n"  # a last line without its newline
    return lines - (kind == "csv")  # the header


class ResultWriter:
    """Rows appended, batch by batch, to ``OUT.partial`` (JSON Lines, flushed after each batch), which
    ``close`` publishes as ``out`` exactly once (Parquet: converted first). ``OUT.partial.json`` records the
    job (bundle, input, options) beside it. A job that is killed leaves just these two, and ``resume=True``
    continues from them: the rows already written are kept (a line torn by the kill is cut off) and
    ``resumed`` says how many input rows to skip. An existing ``out`` is replaced only with ``force``; a
    partial output of an earlier run is an error unless ``resume`` (continue it) or ``force`` (start over).
    ``abort`` removes both files; ``suspend`` keeps them, for a later ``resume``. While a job writes, it holds
    an exclusive lock on the partial file, so a second job cannot write or remove it."""

    COLUMNS = ("id", "source", "output", "log_prob", "error")
    WINDOW_COLUMNS = ("id", "score", "anomalous", "error")

    def __init__(self, out: str | Path, force: bool = False, windows: bool = False, *, job: dict | None = None,
                 resume: bool = False) -> None:
        self.out, self.force = Path(out), force
        self.columns = self.WINDOW_COLUMNS if windows else self.COLUMNS
        self.kind = _kind(self.out, OUTPUT_KINDS, "output")
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.job_file = self.out.with_name(self.out.name + ".partial.json")
        self.job = json.loads(json.dumps({"columns": self.columns, "format": self.kind, **(job or {})},
                                         default=lambda v: v.item() if hasattr(v, "item") else str(v)))
        self.resumed = self.resumed_errors = 0
        check_output_path(self.out, force, directory=False)
        if self.kind == "parquet":
            _pyarrow_parquet()  # before anything is created: a missing pyarrow leaves nothing behind
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = None
        if os.path.lexists(self.partial):
            if not (resume or force):
                raise OutputExistsError(
                    f"{self.partial} holds the rows of an earlier run that did not finish (or of a job writing it "
                    "now): pass --resume (resume=True) to continue it, or --force to start over")
            self._file = self._open_locked(os.O_RDWR)
            if resume:
                self._continue()
            else:
                self._file.truncate(0)
        if self._file is None:
            self._file = self._open_locked(os.O_RDWR | os.O_CREAT | os.O_EXCL)
        if not self.resumed:
            write_bytes_atomic(self.job_file, json.dumps(self.job, sort_keys=True).encode(), force=True)

    def _open_locked(self, flags: int):
        try:
            fd = os.open(self.partial, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o666)
        except FileExistsError:
            raise OutputExistsError(f"{self.partial} was created by another job meanwhile; choose another "
                                    "output path") from None
        except OSError as exc:  # a link (O_NOFOLLOW), a folder
            raise InputError(f"{self.partial} is not a regular file ({exc.strerror}); move it away") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"{self.partial} is not a regular file; move it away")
        f = os.fdopen(fd, "r+b")
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): the O_EXCL creation above is the only guard
            pass
        except BlockingIOError:
            f.close()
            raise OutputExistsError(f"another job is writing {self.partial} now; wait for it, or choose another "
                                    "output path") from None
        return f

    def _continue(self) -> None:
        """Check that the partial output was written by this same job, cut a torn last line, count the rows."""
        try:
            recorded = json.loads(self.job_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict):
            self._file.close()
            raise InputError(f"{self.job_file}, which says what job wrote {self.partial}, is missing or unreadable; "
                             "pass --force to start over")
        for key in sorted(set(recorded) | set(self.job)):
            if recorded.get(key) != self.job.get(key):
                self._file.close()
                raise InputError(f"{self.partial} was written by another job: its {key} was "
                                 f"{show(recorded.get(key), 200)}, now {show(self.job.get(key), 200)}; run that job "
                                 "again to continue it, or pass --force to start over")
        kept = rows = errors = 0
        self._file.seek(0)
        for line in self._file:
            if not line.endswith(b"\n"):
                break  # the line the kill tore
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or row.get("id") != rows:
                self._file.close()
                raise InputError(f"{self.partial}: line {rows + 1} is not the result of row {rows}; the file was "
                                 "altered: pass --force to start over")
            kept += len(line)
            rows += 1
            errors += row.get("error") is not None
        self._file.truncate(kept)
        self._file.seek(kept)
        self.resumed, self.resumed_errors = rows, errors

    def write(self, columns: dict[str, list]) -> None:
        """Append rows, then flush: a row written is a row a kill cannot take back."""
        lines = [json.dumps(dict(zip(self.columns, values)), ensure_ascii=False) + "\n"
                 for values in zip(*(columns[c] for c in self.columns))]
        self._file.write("".join(lines).encode("utf-8"))
        self._file.flush()

    def close(self) -> None:
        """Publish the complete output as ``out`` (exactly once) and remove the job record. If publishing fails
        (``out`` was created meanwhile by someone else), the partial output is kept for ``resume``."""
        try:
            if self.kind == "jsonl":
                publish_file(self.partial, self.out, self.force)  # under the lock: no other job touches it
                self._file.close()
            else:
                self._publish_parquet()
        except BaseException:
            self.suspend()
            raise
        self.job_file.unlink(missing_ok=True)

    def _publish_parquet(self) -> None:
        pq = _pyarrow_parquet()
        import pyarrow as pa

        types = {"id": pa.int64(), "source": pa.string(), "output": pa.string(), "log_prob": pa.float64(),
                 "error": pa.string(), "score": pa.float64(), "anomalous": pa.bool_()}
        schema = pa.schema([(c, types[c]) for c in self.columns])
        fd, tmp = tempfile.mkstemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent)
        os.close(fd)
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                self._file.seek(0)
                while block := list(islice(self._file, 65536)):
                    rows = [json.loads(line) for line in block]
                    writer.write_table(pa.table({c: [r[c] for r in rows] for c in self.columns}, schema=schema))
            publish_file(Path(tmp), self.out, self.force)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._file.close()
        self.partial.unlink()

    def suspend(self) -> None:
        """Stop writing and keep the partial output and its job record, for ``resume``."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def abort(self) -> None:
        """Remove the partial output and its job record."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        for path in (self.partial, self.job_file):
            path.unlink(missing_ok=True)
