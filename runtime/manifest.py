"""manifest.json: the contract between export (which writes it) and the runtime.

Everything the runtime needs is here, nothing implicit: graph files with their
hashes and exact tensor names, the state contract pairing decoder state inputs
with outputs by name, vocabularies or feature statistics, and decode limits.

This module holds the parsed form (frozen specs, and ``to_dict``, the exact content
export writes); the structure and limits are manifest.schema.json's, and reading a
manifest (the schema, then the rules between fields) is manifest_reader.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from .contract import LATENT, RECONSTRUCTION, SOURCE, SOURCE_LENGTH, STEP_INPUT, STEP_OUTPUTS
from .errors import BundleError
from .schema import at, validate
from .vocab import Vocabulary

__all__ = ["FORMAT", "TensorSpec", "GraphSpec", "StateSpec", "ConstantSpec", "TokenSpec", "FeatureSpec", "IONames",
           "Manifest", "AutoencoderManifest", "parse_manifest", "strategies_for", "check_features"]

FORMAT = at("#/properties/format/const")

# Upper bounds on every size a manifest declares, so that a hostile bundle fails at load with a
# BundleError instead of asking for an allocation of the machine later: read from the schema, where they live.
MAX_STEPS = at("#/$defs/decode/properties/max_steps/maximum")          # decode.max_steps
MAX_SIZE = at("#/$defs/size/maximum")                                  # a state's size, a feature count, units
MAX_LAYERS = at("#/$defs/units/maxItems")                              # recurrent layers
MAX_TOKENS = at("#/$defs/vocabulary/properties/tokens/maxItems")       # vocabulary entries
MAX_WINDOW = at("#/$defs/autoencoder/properties/window/maximum")       # autoencoder window
MAX_ENTRIES = at("#/$defs/graphs/maxProperties")                       # graphs, modes, state tensors, tensors
MAX_RANK = at("#/$defs/tensor/properties/shape/maxItems")              # dimensions of a declared tensor
MAX_NAME = at("#/$defs/name/maxLength")                                # characters in a tensor or graph name
FAMILIES = tuple(at("#/properties/family/enum"))
CELLS = tuple(at("#/$defs/seq2seq/properties/model/properties/cell/enum"))
PADDINGS = tuple(p for p in at("#/$defs/io/properties/padding/enum") if p is not None)
FIRST_INPUTS = tuple(at("#/$defs/decode/properties/first_input/then/enum"))
DTYPES = tuple(at("#/$defs/tensor/properties/dtype/enum"))
STEP_MODE = "step"
# with decoder_step; a bundle of fused modes only decodes greedily
STEP_STRATEGIES = tuple(at("#/$defs/decode/properties/strategies/items/enum"))


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: our name, its dtype, its shape (ints or axis names)."""

    name: str
    dtype: str
    shape: tuple

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the bundle and its interface."""

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, f"{self.file} inputs")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, f"{self.file} outputs")

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor of the decoder (batch, size).

    ``name`` is the decoder_step input, ``output`` the decoder_step output that
    carries its next value; ``init`` is ``"encoder"`` (taken from the encoder
    output ``encoder_output``) or ``"zeros"``. ``kind``: ``h`` or ``c`` of a
    recurrent layer, or ``attentional`` (input feeding: the previous step's
    attentional vector).
    """

    name: str
    layer: int
    kind: str
    size: int
    output: str
    init: str = "encoder"
    encoder_output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "kind": self.kind, "size": self.size,
                "output": self.output, "init": self.init, "encoder_output": self.encoder_output}


@dataclass(frozen=True)
class ConstantSpec:
    """A per-sequence constant of an attention decoder: the encoder returns it as ``encoder_output`` and
    every decoder_step call takes it, unchanged, as ``name``.

    ``kind``: ``memory`` (the encoder's outputs) or ``keys`` (their attention projection), float32
    (batch, time, size); ``mask`` (1 at source tokens, 0 at padding), float32 (batch, time), size null.
    ``decoder_input`` false (a mask only; written only when false): the step graph does not take the
    mask, so it would attend to padding; the runtime then runs each step on the rows of equal
    source length together, with the constants cut to that length.
    """

    name: str
    kind: str
    encoder_output: str
    size: int | None = None
    decoder_input: bool = True

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "size": self.size, "encoder_output": self.encoder_output}
        return out if self.decoder_input else {**out, "decoder_input": False}


@dataclass(frozen=True)
class TokenSpec:
    """A side (source or target) made of token ids."""

    vocabulary: Vocabulary
    kind: str = "tokens"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocabulary": self.vocabulary.to_dict()}


@dataclass(frozen=True)
class FeatureSpec:
    """A side made of real-valued feature vectors, with the normalisation used in training."""

    features: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    kind: str = "features"

    def __post_init__(self) -> None:
        data = self.to_dict()
        validate(data, "#/$defs/features_side", where="features")
        check_features(data, "features", "")
        object.__setattr__(self, "features", int(self.features))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": self.features, "mean": list(self.mean), "std": list(self.std)}


Side = Union[TokenSpec, FeatureSpec]


@dataclass(frozen=True)
class IONames:
    """Names of the non-state tensors the runtime feeds and reads, and how token padding is handled.

    ``padding`` (token sources only): ``"lengths"`` - the encoder takes per-row
    lengths in ``source_length``; ``"mask"`` - the encoder masks the pad id
    itself; ``"none"`` - the encoder sees padding as input, so the runtime
    encodes rows of different lengths separately.
    """

    source: str = SOURCE
    source_length: str | None = SOURCE_LENGTH
    step_input: str = STEP_INPUT
    step_output: str = STEP_OUTPUTS["tokens"]
    padding: str | None = "lengths"
    attention: str | None = None  # attention decoders: the step output holding the weights (batch, time)

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "source_length": self.source_length, "step_input": self.step_input,
               "step_output": self.step_output, "padding": self.padding}
        return {**out, "attention": self.attention} if self.attention else out


@dataclass(frozen=True)
class Manifest:
    """Parsed, validated manifest.json."""

    family: str
    cell: str
    encoder_units: tuple[int, ...]
    decoder_units: tuple[int, ...]
    graphs: dict[str, GraphSpec]
    state: tuple[StateSpec, ...]
    source: Side
    target: Side
    io: IONames
    max_steps: int
    first_input: str | dict[str, Any]  # a name, or a {"rule": "source_step", ...} rule over the source
    task: str | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None  # how the task's splits were made (built-in tasks), for evaluation
    # mode -> {"encoder": graph, "decoder": graph}; 'step' drives decoder_step one call per step
    modes: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"step": {"encoder": "encoder", "decoder": "decoder_step"}})
    default_mode: str = "step"
    constants: tuple[ConstantSpec, ...] = ()  # attention decoders: memory, keys, mask
    # The decode strategies the graphs allow: sampling and beam search (and step(), stream) need the step
    # graph; a bundle exported with fused modes only decodes greedily. None: derived from the modes.
    strategies: tuple[str, ...] | None = None
    # How the int8 mode's graphs were quantised (decode.int8: method 'static', batch_independent, ...); None in
    # bundles without one, and in bundles written before int8 was static (their scales follow the batch).
    int8: dict[str, Any] | None = None

    @property
    def has_step(self) -> bool:
        """Whether the bundle has the step graph (decoder_step.onnx), which step() and every strategy but
        fused greedy decoding need."""
        return STEP_MODE in self.modes

    @property
    def step_mode(self) -> str:
        """The mode whose encoder starts step(): 'step', or the default mode in a bundle without it."""
        return STEP_MODE if self.has_step else self.default_mode

    @property
    def step_encoder(self) -> str:
        """The encoder graph whose state step() continues."""
        return self.modes[self.step_mode]["encoder"]

    def __post_init__(self) -> None:
        if self.strategies is None:  # bundles written before decode.strategies: derived from the modes
            object.__setattr__(self, "strategies", strategies_for(self.modes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the exact content of manifest.json."""
        return {
            "format": FORMAT, "family": self.family, "task": self.task,
            "model": {"cell": self.cell, "encoder_units": list(self.encoder_units),
                      "decoder_units": list(self.decoder_units)},
            "graphs": {k: g.to_dict() for k, g in self.graphs.items()},
            "io": self.io.to_dict(),
            "state": [s.to_dict() for s in self.state],
            "source": self.source.to_dict(), "target": self.target.to_dict(),
            "decode": {"max_steps": self.max_steps, "first_input": self.first_input, "modes": self.modes,
                       "default_mode": self.default_mode, "strategies": list(self.strategies),
                       **({"int8": self.int8} if self.int8 is not None else {})},
            "data": self.data, "parity": self.parity, "versions": self.versions,
            **({"constants": [c.to_dict() for c in self.constants]} if self.constants else {}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        """Parse manifest.json content; every problem is a BundleError naming the field."""
        return _parsed(cls, data)


@dataclass(frozen=True)
class AutoencoderManifest:
    """Parsed manifest of a RepeatVector sequence autoencoder bundle.

    Graphs: ``autoencoder`` (source -> reconstruction) and ``encoder`` (source ->
    latent), both on normalised values of shape (batch, window, features).
    ``anomaly`` holds the detect thresholds on the score (mean squared
    reconstruction error per window, normalised units) and optionally per time
    step, with the rule that chose them at export, or None.
    """

    cell: str
    encoder_units: tuple[int, ...]
    decoder_units: tuple[int, ...]
    graphs: dict[str, GraphSpec]
    source: FeatureSpec
    window: int
    source_name: str = SOURCE
    reconstruction_name: str = RECONSTRUCTION
    latent_name: str = LATENT
    anomaly: dict[str, Any] | None = None
    task: str | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    family: str = "autoencoder"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the exact content of manifest.json."""
        return {
            "format": FORMAT, "family": self.family, "task": self.task,
            "model": {"cell": self.cell, "encoder_units": list(self.encoder_units),
                      "decoder_units": list(self.decoder_units)},
            "graphs": {k: g.to_dict() for k, g in self.graphs.items()},
            "io": {"source": self.source_name, "reconstruction": self.reconstruction_name,
                   "latent": self.latent_name},
            "source": self.source.to_dict(), "window": self.window, "anomaly": self.anomaly,
            "data": self.data, "parity": self.parity, "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "AutoencoderManifest":
        """Parse manifest.json content; every problem is a BundleError naming the field."""
        return _parsed(cls, data)


def strategies_for(modes) -> tuple[str, ...]:
    """The decode strategies a bundle with these modes can run: every one with the step graph, greedy alone
    without it."""
    return STEP_STRATEGIES if STEP_MODE in modes else ("greedy",)


def check_features(data: dict[str, Any], where: str, field: str) -> None:
    """The rule between a feature side's fields: ``mean`` and ``std`` hold one value per feature."""
    for key in ("mean", "std"):
        if len(data[key]) != data["features"]:
            path = f"{field}.{key}" if field else key
            raise BundleError(f"{where}: {path} has {len(data[key])} values; a side of {data['features']} features "
                              f"needs one per feature", code="features", field=path)


def parse_manifest(data: Any) -> Manifest | AutoencoderManifest:
    """Parse manifest.json content of either family (manifest_reader.parse_manifest: the schema, then the rules
    between fields); every problem is a BundleError with a ``code`` and a ``field``."""
    from .manifest_reader import parse_manifest as read  # the reader builds the classes above

    return read(data)


def _parsed(cls: type, data: Any):
    manifest = parse_manifest(data)
    if not isinstance(manifest, cls):
        raise BundleError(f"manifest.json: family is {manifest.family!r}, not the family {cls.__name__} reads",
                          code="const", field="family")
    return manifest


def _by_name(specs: tuple[TensorSpec, ...], name: str, where: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise BundleError(f"{where}: no tensor named {name!r} (have {[s.name for s in specs]})", code="contract")

