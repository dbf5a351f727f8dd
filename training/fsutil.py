"""Atomic writes: build outputs beside their destination, then rename into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..runtime.errors import Seq2SeqEdgeError

__all__ = ["OutputExistsError", "atomic_directory", "check_output_path", "write_bytes_atomic"]


class OutputExistsError(Seq2SeqEdgeError, FileExistsError):
    """The output path exists and overwriting was not asked for."""


def check_output_path(out: Path, force: bool, *, directory: bool) -> None:
    """Refuse an existing output unless ``force``; refuse a file where a directory goes and vice versa."""
    if not out.exists():
        return
    if directory != out.is_dir():
        kind = "a file" if directory else "a directory"
        raise OutputExistsError(f"{out} exists and is {kind}; choose another output path")
    if not force:
        raise OutputExistsError(f"{out} already exists; choose another path or pass --force "
                                "(force=True) to replace it")


@contextmanager
def atomic_directory(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` only when the block succeeds.

    On any error the temporary directory is removed and ``out`` is left as it was.
    """
    out = Path(out)
    check_output_path(out, force, directory=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes_atomic(out: str | Path, data: bytes, force: bool = False) -> None:
    """Write a file through a temporary sibling and a rename."""
    out = Path(out)
    check_output_path(out, force, directory=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
