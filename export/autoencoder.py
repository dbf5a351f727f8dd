"""Export RepeatVector sequence autoencoders: the whole model and its encoder half, in one bundle."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.contract import LATENT, RECONSTRUCTION, SOURCE
from ..runtime.inputs import normalise
from ..runtime.manifest import AutoencoderManifest, FeatureSpec
from ..runtime.fsutil import atomic_directory
from .convert import OPSET, ExportError, keras_to_onnx, name_axes
from .manifest_builder import versions
from .parity import STEP_TOLERANCE
from .support import all_layers, cell_of_layer, check_supported_layers
from .writing import ExportResult, write_graph, write_verified

__all__ = ["AutoencoderParity", "ThresholdRule", "DEFAULT_RULE", "export_autoencoder", "write_autoencoder_bundle",
           "find_encoder_half"]


# The reconstruction runs the decoder recurrence over the whole window from one latent vector, and two
# correct float32 implementations drift apart along it: on the ECG quick preset (GRU 32, 96 steps) the
# latent vectors agree to 1.3e-06 while the reconstructions part by 2e-06 at step 1 and 3.4e-04 by step 40.
RECONSTRUCTION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class AutoencoderParity:
    """Keras-vs-onnxruntime agreement of reconstructions (normalised units, relative where above 1,
    within RECONSTRUCTION_TOLERANCE) and latent vectors (within ``tolerance``)."""

    samples: int
    max_reconstruction_error: float
    max_abs_latent: float
    tolerance: float
    reconstruction_tolerance: float = RECONSTRUCTION_TOLERANCE

    @property
    def ok(self) -> bool:
        return (self.max_reconstruction_error <= self.reconstruction_tolerance
                and self.max_abs_latent <= self.tolerance)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        return (f"{self.samples} samples: reconstruction {self.max_reconstruction_error:.2e} (normalised, relative; "
                f"tolerance {self.reconstruction_tolerance:g}), latent {self.max_abs_latent:.2e} "
                f"(tolerance {self.tolerance:g})")


@dataclass(frozen=True)
class ThresholdRule:
    """How export turns the scores of normal windows into ``detect``'s thresholds.

    ``quantile:Q`` - the Q quantile of the normal scores (0.5 <= Q <= 1);
    ``sigma:K`` - their mean plus K standard deviations (K > 0).
    The same rule gives the window threshold (on window scores) and the
    per-step threshold (on the scores of every time step of those windows).
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind == "quantile" and not 0.5 <= self.value <= 1:
            raise ExportError(f"threshold rule quantile:{self.value:g}: the quantile must be in [0.5, 1]")
        if self.kind == "sigma" and not 0 < self.value < math.inf:
            raise ExportError(f"threshold rule sigma:{self.value:g}: K must be a number > 0")
        if self.kind not in ("quantile", "sigma"):
            raise ExportError(f"threshold rule {self.kind!r}: use quantile:Q or sigma:K")

    @classmethod
    def parse(cls, text: "str | ThresholdRule") -> "ThresholdRule":
        """``quantile:0.995`` or ``sigma:4``."""
        if isinstance(text, ThresholdRule):
            return text
        kind, _, value = str(text).partition(":")
        try:
            number = float(value)
        except ValueError:
            raise ExportError(f"threshold rule {text!r}: write quantile:Q (e.g. quantile:0.995) or sigma:K "
                              "(e.g. sigma:4)") from None
        return cls(kind, number)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"

    def apply(self, scores: np.ndarray) -> float:
        scores = np.asarray(scores, np.float64).ravel()
        if self.kind == "quantile":
            return float(np.quantile(scores, self.value))
        return float(scores.mean() + self.value * scores.std())

    def calibrate(self, runtime, normal: np.ndarray, source: str) -> dict:
        """The manifest's ``anomaly`` record: thresholds from the scores of ``normal`` raw windows."""
        if len(normal) == 0:
            raise ExportError("the threshold rule needs normal windows to calibrate on, got none")
        steps = runtime.score(normal, per_step=True)  # (n, window)
        return {"score": "mse", "rule": str(self), "threshold": self.apply(steps.mean(axis=1)),
                "step_threshold": self.apply(steps), "calibration": source,
                "calibration_windows": int(len(normal))}


DEFAULT_RULE = ThresholdRule("quantile", 0.995)


def find_encoder_half(model):
    """The layers before the model's single RepeatVector, as a model: source -> latent vector."""
    import keras

    repeats = [layer for layer in model.layers if isinstance(layer, keras.layers.RepeatVector)]
    if len(repeats) != 1:
        raise ExportError(f"{model.name}: expected exactly one RepeatVector layer to split the encoder half at, "
                          f"found {len(repeats)}; pass encoder= explicitly")
    return keras.Model(model.inputs, repeats[0].input, name="encoder_half")


def _renamed(model, output_name: str):
    """A wrapper whose input is 'source' (any batch size) and whose output carries ``output_name``."""
    import keras

    source = keras.Input(tuple(model.inputs[0].shape[1:]), name=SOURCE)
    return keras.Model(source, keras.layers.Identity(name=output_name)(model(source)), name=output_name)


def _cell(model) -> str:
    cells = {c for c in (cell_of_layer(layer) for layer in all_layers(model)) if c}
    return cells.pop() if len(cells) == 1 else "mixed"


def _units(model, encoder) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Widths of the recurrent layers in the encoder half and after it."""
    in_encoder = {id(layer) for layer in all_layers(encoder)}
    rnn = [layer for layer in all_layers(model) if cell_of_layer(layer)]
    return (tuple(r.units for r in rnn if id(r) in in_encoder),
            tuple(r.units for r in rnn if id(r) not in in_encoder))


def check_autoencoder(model, encoder) -> tuple[int, int]:
    """(window, features) of a supported autoencoder; refuses what we cannot export."""
    check_supported_layers(model)
    shape = tuple(model.inputs[0].shape)
    if len(model.inputs) != 1 or len(shape) != 3 or shape[1] is None or shape[2] is None:
        raise ExportError(f"{model.name}: an autoencoder takes one input (batch, window, features) with a fixed "
                          f"window and feature count, got {[tuple(t.shape) for t in model.inputs]}")
    if tuple(model.outputs[0].shape[1:]) != shape[1:] or len(model.outputs) != 1:
        raise ExportError(f"{model.name}: the output {tuple(model.outputs[0].shape)} must have the input's "
                          f"shape {shape} to reconstruct it")
    if len(encoder.outputs) != 1 or len(encoder.outputs[0].shape) != 2:
        raise ExportError(f"{encoder.name}: the encoder half must return one (batch, size) latent vector, got "
                          f"{[tuple(t.shape) for t in encoder.outputs]}")
    return shape[1], shape[2]


def write_autoencoder_bundle(model, encoder, out: str | Path, *, source: FeatureSpec, task: str | None,
                             held_out: np.ndarray, threshold: float | None = None,
                             rule: ThresholdRule | None = None, normal: np.ndarray | None = None,
                             calibration: str = "", force: bool = False, opset: int = OPSET,
                             data: dict | None = None) -> ExportResult:
    """Convert, verify against Keras on ``held_out`` raw windows, and write the bundle atomically.

    The thresholds: ``rule`` applied to the exported graphs' scores of ``normal`` raw windows
    (``calibration`` says which windows they are), or a fixed ``threshold``, or none.
    """
    if threshold is not None and rule is not None:
        raise ExportError("pass a threshold or a threshold rule, not both")
    if rule is not None and normal is None:
        raise ExportError(f"threshold rule {rule}: pass the normal windows to calibrate it on (normal=...)")
    window, features = check_autoencoder(model, encoder)
    enc_units, dec_units = _units(model, encoder)
    with atomic_directory(out, force) as tmp:
        graphs = {}
        for key, keras_model in (("autoencoder", _renamed(model, RECONSTRUCTION)),
                                 ("encoder", _renamed(encoder, LATENT))):
            proto = keras_to_onnx(keras_model, opset)
            name_axes(proto, {v.name: ("batch",) + (None,) * (len(v.type.tensor_type.shape.dim) - 1)
                              for v in list(proto.graph.input) + list(proto.graph.output)})
            graphs[key] = write_graph(proto, tmp, f"{key}.onnx")

        anomaly = None if threshold is None else {"score": "mse", "threshold": float(threshold), "rule": "fixed"}

        def manifest(report: AutoencoderParity | None) -> dict:
            return AutoencoderManifest(cell=_cell(model), encoder_units=enc_units, decoder_units=dec_units,
                                       graphs=graphs, source=source, window=window, anomaly=anomaly, task=task,
                                       parity=report.to_dict() if report else {}, versions=versions(opset),
                                       data=data).to_dict()

        def measure(runtime) -> AutoencoderParity:
            nonlocal anomaly
            report = _parity(model, encoder, runtime, source, held_out)
            if report.ok and rule is not None:  # thresholds from the graphs that ship, once they match Keras
                anomaly = rule.calibrate(runtime, np.asarray(normal, np.float32), calibration)
            return report

        report, _ = write_verified(tmp, manifest, measure)
    return ExportResult(Path(out), report)


def _parity(model, encoder, runtime, source: FeatureSpec, raw: np.ndarray) -> AutoencoderParity:
    mean, std = np.float32(source.mean), np.float32(source.std)
    x = normalise(raw, mean, std)
    with warnings.catch_warnings():  # reloaded .keras models expect a one-element list; a tensor is fine
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        want_rec = np.asarray(model(x, training=False)) * std + mean
        want_latent = np.asarray(encoder(x, training=False))
    # Reconstructions are compared in normalised units and relative to the value where it exceeds 1: in data
    # units the error scales with the data's spread (a blood-pressure series with std 13 turned a 1.5e-05
    # difference into 2e-04), and a float32 recurrence drifts in proportion to what it outputs (an ECG's
    # R-peaks reach 7 standard deviations).
    got_n, want_n = (runtime.reconstruct(raw) - mean) / std, (want_rec - mean) / std
    relative = np.abs(got_n - want_n) / np.maximum(1.0, np.abs(want_n))
    return AutoencoderParity(len(raw), float(np.max(relative)),
                             float(np.max(np.abs(runtime.embed(raw) - want_latent))), STEP_TOLERANCE)


def export_autoencoder(model, out_dir: str | Path, *, encoder=None, force: bool = False,
                       threshold: "float | str | ThresholdRule | None" = None, normal: np.ndarray | None = None,
                       samples: np.ndarray | None = None) -> ExportResult:
    """Export a user's Keras sequence autoencoder (e.g. a Sequential with RepeatVector and TimeDistributed).

    ``encoder`` is the encoder half (source -> latent vector); by default the layers
    before the RepeatVector. ``threshold`` is stored for ``detect``: a number, or a
    rule (``"quantile:0.995"``, ``"sigma:4"``) applied to the scores of ``normal``
    windows (held-out windows known to be normal). Parity is checked on ``samples``
    (raw windows), else on ``normal``, else on seeded random windows.
    Inputs are used as they are (no normalisation).
    """
    encoder = find_encoder_half(model) if encoder is None else encoder
    window, features = check_autoencoder(model, encoder)
    rule = None
    if isinstance(threshold, (str, ThresholdRule)):
        rule, threshold = ThresholdRule.parse(threshold), None
    elif threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                    or not 0 <= threshold < math.inf):
        raise ExportError(f"threshold must be a finite number >= 0 or a rule such as quantile:0.995, "
                          f"got {threshold!r}")
    if normal is not None:
        normal = np.asarray(normal, np.float32)
        if normal.ndim != 3 or normal.shape[1:] != (window, features):
            raise ExportError(f"normal: expected windows of shape (n, {window}, {features}), got {normal.shape}")
    if samples is None:
        samples = (normal[:256] if normal is not None else
                   np.random.default_rng(0).normal(size=(32, window, features)).astype(np.float32))
    source = FeatureSpec(features, (0.0,) * features, (1.0,) * features)
    return write_autoencoder_bundle(model, encoder, out_dir, source=source, task=None,
                                    held_out=np.asarray(samples, np.float32), threshold=threshold, rule=rule,
                                    normal=normal, calibration=f"{0 if normal is None else len(normal)} "
                                    "windows passed as normal=", force=force)
