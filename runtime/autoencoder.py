"""Sequence autoencoder bundles: reconstruct, embed, score, detect."""

from __future__ import annotations

from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import InputError
from .inputs import check_features, check_normalised, normalise
from .manifest import AutoencoderManifest

__all__ = ["AutoencoderModel"]


class AutoencoderModel:
    """A RepeatVector autoencoder and its encoder half. Stateless: safe to share across threads.

    Every method takes raw windows (batch, window, features) in the data's units and returns one
    numpy array, batch first; any batch size works, and a batch of no rows ([] or (0, window,
    features)) gives an empty array of the usual shape without running a graph.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.manifest: AutoencoderManifest = bundle.manifest
        self._autoencoder = bundle.sessions["autoencoder"]
        self._encoder = bundle.sessions["encoder"]
        self._mean = np.asarray(self.manifest.source.mean, np.float32)
        self._std = np.asarray(self.manifest.source.std, np.float32)

    @property
    def window(self) -> int:
        """The sequence length the model was built for (RepeatVector's count)."""
        return self.manifest.window

    @property
    def threshold(self) -> float | None:
        """The window score above which ``detect`` flags a window, chosen at export (or None)."""
        return None if self.manifest.anomaly is None else float(self.manifest.anomaly["threshold"])

    @property
    def step_threshold(self) -> float | None:
        """The per-step score above which ``detect(..., per_step=True)`` flags a time step (or None)."""
        anomaly = self.manifest.anomaly
        return None if anomaly is None or "step_threshold" not in anomaly else float(anomaly["step_threshold"])

    def reconstruct(self, x: Any) -> np.ndarray:
        """The model's reconstruction of each window: float32 (batch, window, features), data units."""
        normalised = self._normalised(x)
        return self._run_autoencoder(normalised) * self._std + self._mean

    def embed(self, x: Any) -> np.ndarray:
        """Latent vectors: float32 (batch, latent size)."""
        m = self.manifest
        normalised = self._normalised(x)
        if len(normalised) == 0:
            return np.zeros((0, self._latent_size()), np.float32)
        return self._encoder.run([m.latent_name], {m.source_name: normalised})[0]

    def score(self, x: Any, per_step: bool = False) -> np.ndarray:
        """Squared reconstruction error in normalised units, float32: its mean per window (batch,), or with
        ``per_step`` its mean over features at every time step (batch, window), to locate an anomaly
        inside a window (the window score is the mean of the step scores)."""
        normalised = self._normalised(x)
        error = self._run_autoencoder(normalised) - normalised  # (batch, window, features)
        steps = np.mean(error * error, axis=2)
        return steps if per_step else np.mean(steps, axis=1)

    def detect(self, x: Any, threshold: float | None = None, per_step: bool = False) -> np.ndarray:
        """A bool array, True where a window's score exceeds ``threshold`` (batch,), or with ``per_step`` where a time
        step's score does (batch, window). The default threshold is the manifest's, chosen at export."""
        if threshold is None:
            threshold = self.step_threshold if per_step else self.threshold
            if threshold is None:
                which = "per-step threshold" if per_step and self.threshold is not None else "threshold"
                raise InputError(f"this bundle has no {which}: pass detect(x, threshold=...) "
                                 "or export it with a threshold rule")
        elif not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold >= 0:
            raise InputError(f"threshold must be a number >= 0, got {threshold!r}")
        # in float64: a threshold near float32's largest value would overflow a float32 cast
        return self.score(x, per_step=per_step) > np.float64(threshold)

    def _run_autoencoder(self, normalised: np.ndarray) -> np.ndarray:
        m = self.manifest
        if len(normalised) == 0:
            return np.zeros_like(normalised)
        return self._autoencoder.run([m.reconstruction_name], {m.source_name: normalised})[0]

    def _normalised(self, x: Any) -> np.ndarray:
        m = self.manifest
        arr = check_features(x, m.source.features)
        if len(arr) == 0 and arr.shape[1] == 0:  # [] : no rows of the usual shape
            arr = np.zeros((0, m.window, m.source.features), np.float32)
        if arr.shape[1] != m.window:
            raise InputError(f"source: the autoencoder reads windows of {m.window} steps, got {arr.shape[1]} "
                             f"(shape {arr.shape}); cut the series into windows of {m.window}")
        return check_normalised(normalise(arr, self._mean, self._std))

    def _latent_size(self) -> int:
        """The latent width the encoder graph declares (the last encoder layer's units where it is symbolic)."""
        size = self.manifest.graphs["encoder"].output(self.manifest.latent_name).shape[-1]
        return size if isinstance(size, int) else self.manifest.encoder_units[-1]
