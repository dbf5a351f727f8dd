"""Export RepeatVector sequence autoencoders: the whole model and its encoder half, in one bundle."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.contract import LATENT, RECONSTRUCTION, SOURCE
from ..runtime.inputs import normalise
from ..runtime.manifest import AutoencoderManifest, FeatureSpec
from ..training.fsutil import atomic_directory
from .convert import OPSET, ExportError, keras_to_onnx, name_axes
from .manifest_builder import versions
from .parity import STEP_TOLERANCE
from .support import all_layers, cell_of_layer, check_supported_layers
from .writing import ExportResult, write_graph, write_verified

__all__ = ["AutoencoderParity", "export_autoencoder", "write_autoencoder_bundle", "find_encoder_half"]


@dataclass(frozen=True)
class AutoencoderParity:
    """Keras-vs-onnxruntime agreement of reconstructions and latent vectors."""

    samples: int
    max_abs_reconstruction: float
    max_abs_latent: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return max(self.max_abs_reconstruction, self.max_abs_latent) <= self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        return (f"{self.samples} samples: reconstruction {self.max_abs_reconstruction:.2e}, latent "
                f"{self.max_abs_latent:.2e} (tolerance {self.tolerance:g})")


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


def write_autoencoder_bundle(model, encoder, out: str | Path, *, source: FeatureSpec, anomaly: dict | None,
                             task: str | None, held_out: np.ndarray, force: bool = False, opset: int = OPSET,
                             data: dict | None = None) -> ExportResult:
    """Convert, verify against Keras on ``held_out`` raw windows, and write the bundle atomically."""
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

        def manifest(report: AutoencoderParity | None) -> dict:
            return AutoencoderManifest(cell=_cell(model), encoder_units=enc_units, decoder_units=dec_units,
                                       graphs=graphs, source=source, window=window, anomaly=anomaly, task=task,
                                       parity=report.to_dict() if report else {}, versions=versions(opset),
                                       data=data).to_dict()

        report = write_verified(tmp, manifest, lambda runtime: _parity(model, encoder, runtime, source, held_out))
    return ExportResult(Path(out), report)


def _parity(model, encoder, runtime, source: FeatureSpec, raw: np.ndarray) -> AutoencoderParity:
    mean, std = np.float32(source.mean), np.float32(source.std)
    x = normalise(raw, mean, std)
    with warnings.catch_warnings():  # reloaded .keras models expect a one-element list; a tensor is fine
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        want_rec = np.asarray(model(x, training=False)) * std + mean
        want_latent = np.asarray(encoder(x, training=False))
    return AutoencoderParity(len(raw), float(np.max(np.abs(runtime.reconstruct(raw) - want_rec))),
                             float(np.max(np.abs(runtime.embed(raw) - want_latent))), STEP_TOLERANCE)


def export_autoencoder(model, out_dir: str | Path, *, encoder=None, force: bool = False,
                       threshold: float | None = None, samples: np.ndarray | None = None) -> ExportResult:
    """Export a user's Keras sequence autoencoder (e.g. a Sequential with RepeatVector and TimeDistributed).

    ``encoder`` is the encoder half (source -> latent vector); by default the layers
    before the RepeatVector. ``threshold`` is stored for ``detect``. Parity is
    checked on ``samples`` (raw windows), or on seeded random windows when none are given.
    Inputs are used as they are (no normalisation).
    """
    encoder = find_encoder_half(model) if encoder is None else encoder
    window, features = check_autoencoder(model, encoder)
    if samples is None:
        samples = np.random.default_rng(0).normal(size=(32, window, features)).astype(np.float32)
    anomaly = None if threshold is None else {"score": "mse", "threshold": float(threshold)}
    source = FeatureSpec(features, (0.0,) * features, (1.0,) * features)
    return write_autoencoder_bundle(model, encoder, out_dir, source=source, anomaly=anomaly, task=None,
                                    held_out=np.asarray(samples, np.float32), force=force)
