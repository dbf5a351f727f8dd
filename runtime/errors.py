"""Exception types raised by the runtime (and reused by export and training)."""

__all__ = ["Seq2SeqEdgeError", "BundleError", "InputError", "UnknownTokenError"]


class Seq2SeqEdgeError(Exception):
    """Base class of every error this package raises on purpose."""


class BundleError(Seq2SeqEdgeError):
    """A bundle is missing, corrupt, tampered with, or disagrees with its manifest."""


class InputError(Seq2SeqEdgeError, ValueError):
    """Input given to the model has the wrong shape, dtype or values."""


class UnknownTokenError(InputError):
    """Text holds a symbol that is not in the model's vocabulary."""
