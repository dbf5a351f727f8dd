"""Feature arrays on disk for the CLI: .npy (time, features) or (batch, time, features), and .csv."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from ..runtime.fsutil import write_bytes_atomic

__all__ = ["read_features", "write_features"]


def read_features(path: Path) -> tuple[np.ndarray, bool]:
    """Load (batch, time, features) float32; ``single`` is True when the file held one sequence."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            _check_npy_size(path)
            x = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            x = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)  # (time, features)
        else:
            raise InputError(f"{path}: expected a .npy or .csv file")
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{path}: cannot read numbers from it ({exc})") from exc
    if x.ndim == 2:
        return x[None], True
    return x, False


def _check_npy_size(path: Path) -> None:
    """The header's shape and dtype must account for the file's size (a header can claim any size)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        header = f.tell()
    if dtype.hasobject:
        raise InputError(f"{path}: holds Python objects, not numbers; save a float array")
    want = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = path.stat().st_size - header
    if want != have:
        raise InputError(f"{path}: its header describes {want} bytes of {dtype} data {tuple(shape)}, but the file "
                         f"holds {have}; the file is truncated or corrupt")


def write_features(y: np.ndarray, path: Path | None, force: bool) -> None:
    """Write .npy or .csv (2-D only) atomically, or CSV to stdout when ``path`` is None."""
    if path is None or path.suffix.lower() == ".csv":
        if y.ndim != 2:
            raise InputError(f"CSV holds one sequence (time, features); got shape {y.shape}: write a .npy instead")
        buffer = io.StringIO()
        np.savetxt(buffer, y, delimiter=",", fmt="%.7g")
        if path is None:
            sys.stdout.write(buffer.getvalue())
        else:
            write_bytes_atomic(path, buffer.getvalue().encode(), force)
        return
    if path.suffix.lower() != ".npy":
        raise InputError(f"{path}: expected a .npy or .csv output file")
    buffer = io.BytesIO()
    np.save(buffer, y.astype(np.float32))
    write_bytes_atomic(path, buffer.getvalue(), force)
