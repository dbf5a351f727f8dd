"""Import TensorFlow without its import-time native log lines.

TensorFlow 2.21 logs through absl from C++ while it loads ("oneDNN custom
operations are on", "Could not find cuda drivers", "All log messages before
absl::InitializeLog() ..."); TF_CPP_MIN_LOG_LEVEL does not reach those, and
they go straight to file descriptor 2. ``import_tensorflow`` points that
descriptor at a temporary file during the import and then writes back every
line that is not one of those known notices, so real errors still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

__all__ = ["import_tensorflow", "native_stderr_filtered", "NOISE"]

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc):\d+\] )")


@contextmanager
def native_stderr_filtered(noise: re.Pattern = NOISE) -> Iterator[None]:
    """Capture what native code writes to fd 2 inside the block; replay the lines ``noise`` does not match."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2 (some embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow() -> None:
    """Import tensorflow (and keras) once, without the import-time notices; a no-op when already imported."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_filtered():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
