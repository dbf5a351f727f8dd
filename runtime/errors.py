"""Exception types raised by the runtime (and reused by export and training).

Every error carries a stable, machine-readable ``code`` and, where one field of the manifest is at fault,
``field`` (its path, e.g. ``"decode.modes.fused.decoder"`` or ``"state[0].size"``); the Node.js runtime
(bindings/node/lib/errors.js) gives the same code and field for the same refusal. The message is for people.
"""

from __future__ import annotations

__all__ = ["Seq2SeqEdgeError", "BundleError", "InputError", "UnknownTokenError"]


class Seq2SeqEdgeError(Exception):
    """Base class of every error this package raises on purpose."""

    code: str = "error"
    field: str | None = None


class BundleError(Seq2SeqEdgeError):
    """A bundle is missing, corrupt, tampered with, or disagrees with its manifest.

    ``code``: what kind of refusal, ``"bundle"`` unless given; ``field``: the
    manifest field at fault, or None when the refusal is about a file rather than a field.
    """

    code = "bundle"

    def __init__(self, message: str = "", *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.field = field


class InputError(Seq2SeqEdgeError, ValueError):
    """Input given to the model has the wrong shape, dtype or values."""

    code = "input"


class UnknownTokenError(InputError):
    """Text holds a symbol that is not in the model's vocabulary."""

    code = "unknown_token"
