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

    Every method takes raw windows (batch, window, features) in the data's units;
    any batch size works.
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
        """The score above which ``detect`` flags a window, calibrated at training time (or None)."""
        return None if self.manifest.anomaly is None else float(self.manifest.anomaly["threshold"])

    def reconstruct(self, x: Any) -> np.ndarray:
        """The model's reconstruction of each window, (batch, window, features), data units."""
        normalised = self._normalised(x)
        return self._run_autoencoder(normalised) * self._std + self._mean

    def embed(self, x: Any) -> np.ndarray:
        """Latent vectors (batch, latent size)."""
        m = self.manifest
        return self._encoder.run([m.latent_name], {m.source_name: self._normalised(x)})[0]

    def score(self, x: Any) -> np.ndarray:
        """Mean squared reconstruction error per window (batch,), in normalised units."""
        normalised = self._normalised(x)
        error = self._run_autoencoder(normalised) - normalised  # (batch, window, features)
        return np.mean(error * error, axis=(1, 2))

    def detect(self, x: Any, threshold: float | None = None) -> np.ndarray:
        """True where a window's score exceeds ``threshold`` (default: the manifest's calibrated one)."""
        if threshold is None:
            threshold = self.threshold
            if threshold is None:
                raise InputError("this bundle has no calibrated threshold: pass detect(x, threshold=...) "
                                 "or export it with a threshold")
        elif not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold >= 0:
            raise InputError(f"threshold must be a number >= 0, got {threshold!r}")
        return self.score(x) > threshold

    def _run_autoencoder(self, normalised: np.ndarray) -> np.ndarray:
        m = self.manifest
        return self._autoencoder.run([m.reconstruction_name], {m.source_name: normalised})[0]

    def _normalised(self, x: Any) -> np.ndarray:
        m = self.manifest
        arr = check_features(x, m.source.features)
        if arr.shape[1] != m.window:
            raise InputError(f"source: the autoencoder reads windows of {m.window} steps, got {arr.shape[1]} "
                             f"(shape {arr.shape}); cut the series into windows of {m.window}")
        return check_normalised(normalise(arr, self._mean, self._std))
