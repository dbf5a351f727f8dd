"""Validation of what callers hand the runtime. Every check raises InputError with the fix."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import InputError

__all__ = ["MAX_SOURCE_STEPS", "check_texts", "check_source_length", "check_token_ids", "check_lengths", "check_features", "check_state", "normalise",
           "check_normalised"]

# The longest source a row may have, in tokens or time steps: the encoder's memory grows with it (a row of a
# million characters took 1.2 GB), and no model here is trained on sources of more than a few hundred steps.
MAX_SOURCE_STEPS = 4096

# An empty batch ([] or an array whose first axis is 0) is valid input everywhere: the calls return an empty
# result of their usual type without running a graph.


def _no_rows(x: Any) -> bool:
    """``[]``, ``()`` or an array of shape (0,): a batch of no rows, whatever rank its rows would have had."""
    if isinstance(x, (list, tuple)):
        return len(x) == 0
    return isinstance(x, np.ndarray) and x.shape == (0,)


def check_texts(texts: Any) -> list[str]:
    """A list of non-empty strings (an empty list is an empty batch)."""
    if isinstance(texts, str):
        raise InputError("expected a list of strings, got a single string; wrap it: [text]")
    if not isinstance(texts, Sequence) or isinstance(texts, bytes):
        raise InputError(f"expected a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"item {i} is {type(text).__name__}, expected str")
        if not text.strip():
            raise InputError(f"item {i} is an empty string; every input needs at least one symbol")
    return list(texts)


def check_source_length(steps: int, what: str, unit: str = "steps") -> None:
    """InputError when one row's source is longer than MAX_SOURCE_STEPS."""
    if steps > MAX_SOURCE_STEPS:
        raise InputError(f"{what} has {steps} {unit}; a source has at most {MAX_SOURCE_STEPS} (MAX_SOURCE_STEPS): "
                         "split it into shorter sources")


def check_token_ids(ids: Any, vocab_size: int, name: str = "source", rank: int = 2) -> np.ndarray:
    """Integer ids of the given rank, each in [0, vocab_size); returned as int32. ``[]``: no rows."""
    if _no_rows(ids):
        return np.zeros((0,) * rank, np.int32)
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{name}: token ids must be integers, got dtype {arr.dtype}; "
                         "for text use generate_text() or the vocabulary's encode_batch()")
    if arr.ndim != rank:
        want = "(batch, time)" if rank == 2 else "(batch,)"
        raise InputError(f"{name}: expected shape {want}, got {arr.shape}")
    if rank == 2 and arr.shape[0] and arr.shape[1] == 0:
        raise InputError(f"{name}: sequences have no time steps; pass at least one token each")
    if rank == 2:
        check_source_length(arr.shape[1], f"{name}: each row")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise InputError(f"{name}: ids must lie in [0, {vocab_size}), got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int32, copy=False)


def check_lengths(lengths: Any, ids: np.ndarray, pad_id: int | None) -> np.ndarray:
    """Lengths (batch,) for right-padded ids; derived from the padding when None."""
    batch, time = ids.shape
    if batch == 0 and (lengths is None or np.shape(lengths) == (0,)):
        return np.zeros(0, np.int32)
    if lengths is None and pad_id is None:  # no pad id: every row is as long as the array
        lengths = np.full(batch, time, np.int32)
    if lengths is None:
        nonpad = ids != pad_id  # (batch, time)
        lengths = np.where(nonpad.any(axis=1), time - np.argmax(nonpad[:, ::-1], axis=1), 0)
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu" or arr.shape != (batch,):
        raise InputError(f"lengths: expected integers of shape ({batch},), got {arr.dtype} {arr.shape}")
    bad = np.flatnonzero((arr < 1) | (arr > time))
    if bad.size:
        raise InputError(f"lengths: sequence {bad[0]} has length {arr[bad[0]]}; every length must be in "
                         f"[1, {time}] (a row of only padding is an empty input)")
    return arr.astype(np.int32, copy=False)


def check_features(x: Any, features: int, name: str = "source", rank: int = 3) -> np.ndarray:
    """Finite float32 values of shape (batch, time, features) (rank 3) or (batch, features) (rank 2).

    For rank 2, (batch, 1, features) - what a Keras decoder model takes for one step - is accepted too.
    ``[]``: no rows.
    """
    if _no_rows(x):
        return np.zeros((0,) * (rank - 1) + (features,), np.float32)
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise InputError(f"{name}: expected floating-point values, got dtype {arr.dtype}; "
                         "convert with np.asarray(x, dtype=np.float32)")
    if rank == 2 and arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]  # (batch, 1, features) -> (batch, features)
    want = "(batch, time, features)" if rank == 3 else "(batch, features) or (batch, 1, features)"
    if arr.ndim != rank:
        raise InputError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.shape[-1] != features:
        raise InputError(f"{name}: the model takes {features} features, got {arr.shape[-1]} (shape {arr.shape})")
    if rank == 3 and arr.shape[0] and arr.shape[1] == 0:
        raise InputError(f"{name}: empty input of shape {arr.shape}; pass at least one step of each sequence")
    if rank == 3:
        check_source_length(arr.shape[1], f"{name}: each row")
    with np.errstate(over="ignore"):  # overflow is reported below, as an InputError
        out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        if np.isfinite(arr[where]):
            raise InputError(f"{name}: value {arr[where].item()!r} at index {where} does not fit in float32 (largest "
                             f"{np.finfo(np.float32).max:.4g}); rescale the data")
        raise InputError(f"{name}: contains NaN or inf (first at index {where}); clean or impute it first")
    return out


def check_state(state: Any, sizes: dict[str, int], batch: int, constants: dict | None = None) -> dict[str, np.ndarray]:
    """A dict holding exactly the named state arrays, each float32 (batch, size), and an attention
    decoder's constants (ConstantSpec by name), float32 (batch, time[, size]) with one time for all."""
    constants = constants or {}
    names = sorted(set(sizes) | set(constants))
    if not isinstance(state, dict):
        raise InputError(f"state must be a dict of arrays named {names}, got {type(state).__name__}")
    if set(state) != set(names):
        raise InputError(f"state has keys {sorted(state)}, expected {names}; pass the dict that "
                         "encode() or the previous step() returned")
    out, times = {}, set()
    for name, spec in constants.items():
        arr = _array(state[name], name)
        want = 2 if spec.size is None else 3
        if (arr.ndim != want or arr.shape[0] != batch or (batch and arr.shape[1] < 1) or arr.dtype.kind != "f"
                or (spec.size is not None and arr.shape[2] != spec.size)):
            shape = f"({batch}, time)" if spec.size is None else f"({batch}, time, {spec.size})"
            raise InputError(f"state {name!r}: expected float {shape}, got {arr.dtype} {arr.shape}")
        with np.errstate(over="ignore"):
            value = arr.astype(np.float32, copy=False)
        if not np.isfinite(value).all():
            raise InputError(f"state {name!r}: holds NaN or infinite values; pass the dict that encode() returned")
        if spec.kind == "mask" and not (np.isin(value, (0.0, 1.0)).all() and value.any(axis=1).all()):
            raise InputError(f"state {name!r}: a source mask holds only 0 and 1, with a 1 in every row")
        times.add(arr.shape[1])
        out[name] = value
    if len(times) > 1:
        raise InputError(f"state: the constants {sorted(constants)} disagree on the source length "
                         f"({sorted(times)}); pass the dict that encode() returned")
    for name, size in sizes.items():
        arr = _array(state[name], name)
        if arr.shape != (batch, size) or arr.dtype.kind != "f":
            raise InputError(f"state {name!r}: expected float ({batch}, {size}), got {arr.dtype} {arr.shape}")
        out[name] = arr.astype(np.float32, copy=False)
    return out


def _array(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"state {name!r}: not an array ({exc})") from None


def normalise(x: Any, mean: Any, std: Any) -> np.ndarray:
    """(x - mean) / std per feature, as float32: the scaling every real-valued model was trained on.

    Overflow gives inf without a warning; ``check_normalised`` turns it into an InputError."""
    with np.errstate(over="ignore"):
        return ((np.asarray(x, np.float32) - np.asarray(mean, np.float32))
                / np.asarray(std, np.float32)).astype(np.float32)


def source_step_features(source: Any, first_input: Any) -> np.ndarray | None:
    """The raw (batch, features) first decoder input that manifest ``first_input`` reads from a feature source.

    'last_source_step': the last source step; a rule {"rule": "source_step", "step": -1, "features": [i, ...]}:
    that step's features at those indices; anything else ('zeros', 'start_token'): None.
    """
    if first_input == "last_source_step":
        return np.asarray(source, np.float32)[:, -1, :]
    if isinstance(first_input, dict) and first_input.get("rule") == "source_step":
        return np.asarray(source, np.float32)[:, first_input["step"], list(first_input["features"])]
    return None


def check_normalised(x: np.ndarray, name: str = "source") -> np.ndarray:
    """Normalised values must still be finite in float32 (a tiny std can push large values past it)."""
    if not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise InputError(f"{name}: at index {where}, the value normalised with the bundle's mean and std overflows "
                         "float32; the data is far outside what the model was trained on")
    return x
