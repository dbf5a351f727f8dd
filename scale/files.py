"""Reading sources and writing results, row by row, in the formats `score` takes: text (one source per line),
CSV or JSON Lines with a column, Parquet (with pyarrow); results as JSON Lines or Parquet."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..runtime.errors import InputError
from ..runtime.fsutil import check_output_path, publish_file

__all__ = ["read_sources", "ResultWriter", "INPUT_KINDS", "OUTPUT_KINDS", "count_rows"]

INPUT_KINDS = {".txt": "text", ".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet", ".npy": "npy"}
OUTPUT_KINDS = {".jsonl": "jsonl", ".parquet": "parquet"}
MAX_FIELD = 1 << 24  # characters in one CSV field


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
    # Lines end at \n (or \r\n) only, so ids are line numbers (csv needs newline=""); a BOM is not data.
    with open(path, encoding="utf-8-sig", newline="" if kind == "csv" else "\n") as f:
        try:
            if kind == "text":
                for number, line in enumerate(f):
                    yield number, line.removesuffix("\n").removesuffix("\r")
            elif kind == "csv":  # ids are record numbers (csv skips blank lines: they are no records)
                csv.field_size_limit(MAX_FIELD)
                reader = csv.DictReader(f)
                if column not in (reader.fieldnames or []):
                    raise InputError(f"{path}: no column {column!r} (columns: {reader.fieldnames}); pick one with "
                                     "--column")
                for number, row in enumerate(reader):
                    yield number, row[column]
            else:
                for number, line in enumerate(f):
                    yield number, _json_row(path, number, line, column)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not valid UTF-8 ({exc.reason}); convert it") from None
        except csv.Error as exc:
            raise InputError(f"{path}: not readable as CSV ({exc})") from None


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
    """Rows written to a temporary sibling of ``out`` as they come, renamed into place by ``close``; an
    existing ``out`` is replaced only with ``force``, and nothing is left behind on failure (``abort``)."""

    COLUMNS = ("id", "source", "output", "log_prob", "error")
    WINDOW_COLUMNS = ("id", "score", "anomalous", "error")

    def __init__(self, out: str | Path, force: bool = False, windows: bool = False) -> None:
        self.out, self.force = Path(out), force
        self.columns = self.WINDOW_COLUMNS if windows else self.COLUMNS
        self.kind = _kind(self.out, OUTPUT_KINDS, "output")
        check_output_path(self.out, force, directory=False)
        if self.kind == "parquet":
            pq = _pyarrow_parquet()  # before anything is created: a missing pyarrow leaves nothing behind
            import pyarrow as pa

            self._pa = pa
            types = {"id": pa.int64(), "source": pa.string(), "output": pa.string(), "log_prob": pa.float64(),
                     "error": pa.string(), "score": pa.float64(), "anomalous": pa.bool_()}
            self._schema = pa.schema([(c, types[c]) for c in self.columns])
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent)
        os.close(fd)
        try:
            self._file = (open(self.tmp, "w", encoding="utf-8") if self.kind == "jsonl"
                          else pq.ParquetWriter(self.tmp, self._schema))
        except BaseException:
            os.unlink(self.tmp)
            raise

    def write(self, columns: dict[str, list]) -> None:
        if self.kind == "jsonl":
            for values in zip(*(columns[c] for c in self.columns)):
                self._file.write(json.dumps(dict(zip(self.columns, values)), ensure_ascii=False) + "\n")
        else:
            data = {c: [v if not isinstance(v, _Bad) else str(v) for v in columns[c]] for c in self.columns}
            self._file.write_table(self._pa.table(data, schema=self._schema))

    def close(self) -> None:
        self._file.close()
        try:
            publish_file(Path(self.tmp), self.out, self.force)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - already failing; the temporary file goes either way
            pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
