"""manifest.json: the contract between export (which writes it) and the runtime.

Everything the runtime needs is here, nothing implicit: graph files with their
hashes and exact tensor names, the state contract pairing decoder state inputs
with outputs by name, vocabularies or feature statistics, and decode limits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Union

from .contract import LATENT, RECONSTRUCTION, SOURCE, SOURCE_LENGTH, STEP_INPUT, STEP_OUTPUTS
from .errors import BundleError
from .vocab import Vocabulary

__all__ = ["FORMAT", "TensorSpec", "GraphSpec", "StateSpec", "ConstantSpec", "TokenSpec", "FeatureSpec", "IONames",
           "Manifest", "AutoencoderManifest", "parse_manifest"]

FORMAT = "seq2seq-edge/1"

# Upper bounds on every size a manifest declares, so that a hostile bundle fails at load with a
# BundleError instead of asking for an allocation of the machine later.
MAX_STEPS = 100_000       # decode.max_steps
MAX_SIZE = 65_536         # a state's size, a feature count, a layer's units
MAX_LAYERS = 64           # recurrent layers, state tensors per layer kind
MAX_TOKENS = 1_000_000    # vocabulary entries
MAX_WINDOW = 1_000_000    # autoencoder window
MAX_ENTRIES = 256         # graphs, modes, state tensors, tensors per graph
MAX_RANK = 8              # dimensions of a declared tensor
MAX_NAME = 256            # characters in a tensor, graph or token name
FAMILIES = ("seq2seq", "autoencoder")
CELLS = ("lstm", "gru")
PADDINGS = ("lengths", "mask", "none")
FIRST_INPUTS = ("start_token", "last_source_step", "zeros")
DTYPES = ("int32", "int64", "float32")
STEP_MODE = "step"
STEP_STRATEGIES = ("greedy", "sample", "beam")  # with decoder_step; a bundle of fused modes only decodes greedily


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
        if not (isinstance(self.features, int) and not isinstance(self.features, bool)
                and 1 <= self.features <= MAX_SIZE):
            raise BundleError(f"features: must be an integer in [1, {MAX_SIZE}], got {self.features!r}")
        if len(self.mean) != self.features or len(self.std) != self.features:
            raise BundleError(f"features: mean and std need {self.features} values each")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise BundleError(f"features: every {name} must be a finite number, got {list(values)[:8]!r}")
        if any(not s > 0 for s in self.std):
            raise BundleError("features: every std must be > 0")

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

    def __post_init__(self) -> None:
        if self.padding is not None and self.padding not in PADDINGS:
            raise BundleError(f"manifest.json: io.padding must be one of {list(PADDINGS)} or null, "
                              f"got {self.padding!r}")
        if (self.padding == "lengths") != (self.source_length is not None):
            raise BundleError("manifest.json: io.source_length is set exactly when io.padding is 'lengths'")

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
    first_input: str
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
        _check_choice("family", self.family, FAMILIES)
        if len(self.constants) > MAX_ENTRIES:
            raise BundleError(f"manifest.json: at most {MAX_ENTRIES} constants")
        names = [c.name for c in self.constants]
        if len(set(names)) != len(names) or set(names) & {s.name for s in self.state}:
            raise BundleError("manifest.json: constant names must be unique and differ from the state names")
        masks = [c for c in self.constants if c.kind == "mask"]
        if (self.io.attention is not None or self.constants) and len(masks) != 1:
            raise BundleError("manifest.json: an attention decoder needs exactly one constant of kind 'mask' "
                              f"(found {len(masks)})")
        if not self.modes:
            raise BundleError("manifest.json: decode.modes is empty; a bundle needs at least one decode mode")
        if self.has_step and self.modes["step"] != {"encoder": "encoder", "decoder": "decoder_step"}:
            raise BundleError("manifest.json: decode.modes.step must be {'encoder': 'encoder', 'decoder': "
                              "'decoder_step'}")
        for mode, graphs in self.modes.items():
            if not isinstance(graphs, dict) or set(graphs) != {"encoder", "decoder"}:
                raise BundleError(f"manifest.json: decode.modes.{mode} must name an 'encoder' and a 'decoder' graph")
            for role, graph in graphs.items():
                if graph not in self.graphs:
                    raise BundleError(f"manifest.json: decode.modes.{mode}.{role} names graph {graph!r}, "
                                      "which is not in graphs")
        _check_choice("decode.default_mode", self.default_mode, tuple(self.modes))
        _check_choice("cell", self.cell, CELLS)
        _check_choice("decode.first_input", self.first_input, FIRST_INPUTS)
        for required in (("encoder", "decoder_step") if self.has_step else ()):
            if required not in self.graphs:
                raise BundleError(f"manifest.json: graphs.{required} is missing")
        if any(graphs["decoder"] == "decoder_step" for mode, graphs in self.modes.items() if mode != STEP_MODE):
            raise BundleError("manifest.json: only decode mode 'step' may run graph 'decoder_step'")
        allowed = strategies_for(self.modes)
        if self.strategies is None:
            object.__setattr__(self, "strategies", allowed)
        elif tuple(self.strategies) != allowed:
            raise BundleError(f"manifest.json: decode.strategies {list(self.strategies)} do not match the graphs: "
                              f"{'with' if self.has_step else 'without'} the step graph the bundle runs "
                              f"{list(allowed)}")
        if not (isinstance(self.max_steps, int) and not isinstance(self.max_steps, bool)
                and 1 <= self.max_steps <= MAX_STEPS):
            raise BundleError(f"manifest.json: decode.max_steps must be an integer in [1, {MAX_STEPS}], "
                              f"got {self.max_steps!r}")
        if isinstance(self.target, TokenSpec) and self.target.vocabulary.end_id is None:
            raise BundleError("manifest.json: target.vocabulary.end_id is null; a token target needs an end token")
        if len(self.modes) > MAX_ENTRIES or len(self.state) > MAX_ENTRIES:
            raise BundleError(f"manifest.json: at most {MAX_ENTRIES} decode modes and state tensors")
        if self.first_input == "start_token" and not (
                isinstance(self.target, TokenSpec) and self.target.vocabulary.start_id is not None):
            raise BundleError("manifest.json: first_input 'start_token' needs a token target with a start_id")
        if self.first_input == "last_source_step" and not (
                isinstance(self.source, FeatureSpec) and isinstance(self.target, FeatureSpec)
                and self.source.features == self.target.features):
            raise BundleError("manifest.json: first_input 'last_source_step' needs feature source and target "
                              "of the same width")

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
                       "default_mode": self.default_mode, "strategies": list(self.strategies)},
            "data": self.data, "parity": self.parity, "versions": self.versions,
            **({"constants": [c.to_dict() for c in self.constants]} if self.constants else {}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        """Parse manifest.json content; every problem is a BundleError naming the field."""
        r = _header(data)
        model, decode = r.child("model"), r.child("decode")
        return cls(
            family=r.get("family", str), cell=model.get("cell", str),
            encoder_units=_units(model, "encoder_units"), decoder_units=_units(model, "decoder_units"),
            graphs=_graphs(r), state=tuple(_state(s) for s in r.items("state")),
            source=_side(r.child("source")), target=_side(r.child("target")), io=_io(r.child("io")),
            max_steps=decode.get("max_steps", int), first_input=decode.get("first_input", str),
            modes=_modes(decode), default_mode=decode.get("default_mode", str),
            strategies=_strategies(decode),
            constants=tuple(_constant(c) for c in r.items("constants")) if r.data.get("constants") else (),
            **_records(r))


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

    def __post_init__(self) -> None:
        _check_choice("model.cell", self.cell, CELLS + ("mixed",))
        for required in ("autoencoder", "encoder"):
            if required not in self.graphs:
                raise BundleError(f"manifest.json: graphs.{required} is missing")
        if not (isinstance(self.window, int) and self.window > 0):
            raise BundleError(f"manifest.json: window must be a positive integer, got {self.window!r}")
        if self.anomaly is not None:
            for key in ("threshold", "step_threshold"):
                if key == "threshold" or key in self.anomaly:
                    value = self.anomaly.get(key)
                    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf
                            or not math.isfinite(_as_float(value))):
                        raise BundleError(f"manifest.json: anomaly.{key} must be a finite number >= 0, "
                                          f"got {value!r}")

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
        r = _header(data)
        model, io = r.child("model"), r.child("io")
        source = _side(r.child("source"))
        if not isinstance(source, FeatureSpec):
            raise BundleError("manifest.json: an autoencoder's source must be features")
        anomaly = r.optional("anomaly", dict)
        window = r.get("window", int)
        if not 1 <= window <= MAX_WINDOW:
            raise BundleError(f"manifest.json: window must be an integer in [1, {MAX_WINDOW}], got {window!r}")
        return cls(cell=model.get("cell", str), encoder_units=_units(model, "encoder_units"),
                   decoder_units=_units(model, "decoder_units"), graphs=_graphs(r), source=source, window=window,
                   source_name=io.name("source"), reconstruction_name=io.name("reconstruction"),
                   latent_name=io.name("latent"), anomaly=anomaly, **_records(r))


def parse_manifest(data: Any) -> Manifest | AutoencoderManifest:
    """Parse manifest.json content of either family."""
    family = _header(data).get("family", str)
    _check_choice("family", family, FAMILIES)
    return AutoencoderManifest.from_dict(data) if family == "autoencoder" else Manifest.from_dict(data)


def _header(data: Any) -> "_Reader":
    r = _Reader(data, "manifest.json")
    fmt = r.get("format", str)
    if fmt != FORMAT:
        raise BundleError(f"manifest.json: format {fmt!r} is not supported (this runtime reads {FORMAT!r}); "
                          "re-export the bundle with a matching seq2seq-edge version")
    return r


class _Reader:
    """Typed field access with error messages that name the field's path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise BundleError(f"{path}: expected a JSON object, got {type(data).__name__}")
        self.data, self.path = data, path

    def get(self, key: str, kind: type) -> Any:
        if key not in self.data:
            raise BundleError(f"{self.path}: field '{key}' is missing")
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(f"{self.path}: field '{key}' must be {kind.__name__}, got {type(value).__name__}")
        return value

    def optional(self, key: str, kind: type) -> Any:
        """The field, or None when it is absent or null."""
        return None if self.data.get(key) is None else self.get(key, kind)

    def bounded(self, key: str, low: int, high: int) -> int:
        value = self.get(key, int)
        if not low <= value <= high:
            raise BundleError(f"{self.path}: field '{key}' must be in [{low}, {high}], got {value}")
        return value

    def name(self, key: str) -> str:
        """A tensor or file name: a non-empty string of at most MAX_NAME characters."""
        value = self.get(key, str)
        if not 0 < len(value) <= MAX_NAME:
            raise BundleError(f"{self.path}: field '{key}' must be a name of 1 to {MAX_NAME} characters")
        return value

    def child(self, key: str) -> "_Reader":
        return _Reader(self.get(key, dict), f"{self.path}.{key}")

    def items(self, key: str, limit: int = MAX_ENTRIES) -> list["_Reader"]:
        values = self.get(key, list)
        if len(values) > limit:
            raise BundleError(f"{self.path}: field '{key}' has {len(values)} entries, more than {limit}")
        return [_Reader(v, f"{self.path}.{key}[{i}]") for i, v in enumerate(values)]


SHA256 = re.compile(r"[0-9a-f]{64}")


def _graphs(r: _Reader) -> dict[str, GraphSpec]:
    graphs = r.child("graphs")
    if len(graphs.data) > MAX_ENTRIES:
        raise BundleError(f"manifest.json: at most {MAX_ENTRIES} graphs, got {len(graphs.data)}")
    return {key: _graph(graphs.child(key)) for key in graphs.data}


def _graph(r: _Reader) -> GraphSpec:
    def tensors(key: str) -> tuple[TensorSpec, ...]:
        out = []
        for t in r.items(key):
            dtype = t.get("dtype", str)
            _check_choice(f"{t.path}.dtype", dtype, DTYPES)
            out.append(TensorSpec(t.name("name"), dtype, _shape(t)))
        return tuple(out)

    sha = r.get("sha256", str)
    if not SHA256.fullmatch(sha):
        raise BundleError(f"{r.path}: sha256 must be 64 lowercase hex digits, got {sha[:80]!r}")
    return GraphSpec(r.name("file"), sha, tensors("inputs"), tensors("outputs"))


def _shape(r: _Reader) -> tuple:
    shape = r.get("shape", list)
    ok = len(shape) <= MAX_RANK and all(
        (isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 2**31) or (isinstance(d, str) and
                                                                                  0 < len(d) <= MAX_NAME)
        for d in shape)
    if not ok:
        raise BundleError(f"{r.path}: shape must list at most {MAX_RANK} sizes (integers) or axis names, "
                          f"got {shape[:MAX_RANK + 1]!r}")
    return tuple(shape)


def _state(r: _Reader) -> StateSpec:
    spec = StateSpec(r.name("name"), r.bounded("layer", 0, MAX_LAYERS - 1), r.get("kind", str),
                     r.bounded("size", 1, MAX_SIZE), r.name("output"), r.get("init", str),
                     r.name("encoder_output") if r.data.get("encoder_output") is not None else None)
    _check_choice(f"{r.path}.kind", spec.kind, ("h", "c", "attentional"))
    _check_choice(f"{r.path}.init", spec.init, ("encoder", "zeros"))
    if spec.init == "encoder" and not spec.encoder_output:
        raise BundleError(f"{r.path}: init 'encoder' needs 'encoder_output'")
    return spec


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.inf


def _constant(r: _Reader) -> ConstantSpec:
    kind = r.get("kind", str)
    _check_choice(f"{r.path}.kind", kind, ("memory", "keys", "mask"))
    size = None if kind == "mask" else r.bounded("size", 1, MAX_SIZE)
    if kind == "mask" and r.data.get("size") is not None:
        raise BundleError(f"{r.path}: a mask has no size (it is (batch, time)); set size to null")
    fed = r.data.get("decoder_input", True)
    if not isinstance(fed, bool) or (not fed and kind != "mask"):
        raise BundleError(f"{r.path}.decoder_input: true or false, and false only for the mask (every step takes "
                          f"the memory and keys), got {fed!r}")
    return ConstantSpec(r.name("name"), kind, r.name("encoder_output"), size, fed)


def _units(r: _Reader, key: str) -> tuple[int, ...]:
    units = r.get(key, list)
    if len(units) > MAX_LAYERS or not all(isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= MAX_SIZE
                                          for u in units):
        raise BundleError(f"{r.path}: {key} must list at most {MAX_LAYERS} integers in [1, {MAX_SIZE}], "
                          f"got {units[:MAX_LAYERS + 1]!r}")
    return tuple(units)


def _side(r: _Reader) -> Side:
    kind = r.get("kind", str)
    if kind == "tokens":
        return TokenSpec(Vocabulary.from_dict(r.get("vocabulary", dict)))
    if kind == "features":
        return FeatureSpec(r.bounded("features", 1, MAX_SIZE), tuple(r.get("mean", list)), tuple(r.get("std", list)))
    raise BundleError(f"{r.path}: kind must be 'tokens' or 'features', got {kind!r}")


def _io(r: _Reader) -> IONames:
    unknown = sorted(set(r.data) - {"source", "source_length", "step_input", "step_output", "padding", "attention"})
    if unknown:
        raise BundleError(f"{r.path}: unknown field(s) {unknown}")
    return IONames(source=r.name("source"), step_input=r.name("step_input"), step_output=r.name("step_output"),
                   source_length=r.name("source_length") if r.data.get("source_length") is not None else None,
                   padding=r.optional("padding", str),
                   attention=r.name("attention") if r.data.get("attention") is not None else None)


def _modes(r: _Reader) -> dict[str, dict[str, str]]:
    modes = r.child("modes")
    if len(modes.data) > MAX_ENTRIES:
        raise BundleError(f"{modes.path}: at most {MAX_ENTRIES} modes")
    out = {}
    for mode in modes.data:
        graphs = modes.child(mode)
        if set(graphs.data) != {"encoder", "decoder"}:
            raise BundleError(f"manifest.json: decode.modes.{mode} must name an 'encoder' and a 'decoder' graph")
        out[mode] = {role: graphs.name(role) for role in ("encoder", "decoder")}
    return out


def strategies_for(modes) -> tuple[str, ...]:
    """The decode strategies a bundle with these modes can run: every one with the step graph, greedy alone
    without it."""
    return STEP_STRATEGIES if STEP_MODE in modes else ("greedy",)


def _strategies(r: _Reader) -> tuple[str, ...] | None:
    """decode.strategies (bundles written before it existed have the step graph: every strategy)."""
    if r.data.get("strategies") is None:
        return None
    names = r.data["strategies"]
    if not isinstance(names, list) or len(names) > len(STEP_STRATEGIES) or any(n not in STEP_STRATEGIES
                                                                             for n in names):
        raise BundleError(f"manifest.json: decode.strategies must be a list drawn from {list(STEP_STRATEGIES)}, "
                          f"got {str(names)[:80]}")
    return tuple(names)


def _records(r: _Reader) -> dict[str, Any]:
    """What the manifest records about the bundle's origin: task, parity, versions, data."""
    return {"task": r.optional("task", str), "parity": r.optional("parity", dict) or {},
            "versions": r.optional("versions", dict) or {}, "data": r.optional("data", dict)}


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise BundleError(f"manifest.json: {name} must be one of {list(choices)}, got {value!r}")


def _by_name(specs: tuple[TensorSpec, ...], name: str, where: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise BundleError(f"{where}: no tensor named {name!r} (have {[s.name for s in specs]})")
