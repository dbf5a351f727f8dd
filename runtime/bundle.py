"""Open a bundle directory: read the manifest, verify every file, start the sessions.

Each check names what is wrong and how to fix it; nothing is trusted that the
manifest does not state (tensor names, shapes and sizes are compared with the
graphs themselves).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from .contract import LOOP_INPUT, LOOP_OUTPUTS, LOOP_STEPS
from .errors import BundleError, InputError
from .manifest import AutoencoderManifest, FeatureSpec, GraphSpec, Manifest, TensorSpec, TokenSpec, parse_manifest
from .onnx_scan import check_no_external_data
from .schema import limits, read_json, show

__all__ = ["Bundle", "open_bundle", "read_manifest", "sha256_bytes"]

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = limits()["max_bytes"]
ORT_DTYPES = {"tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(float)": "float32"}


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest and one onnxruntime session per graph."""

    path: Path
    manifest: Manifest | AutoencoderManifest
    sessions: dict[str, ort.InferenceSession]
    # Graphs that quantise by the batch's range (a DynamicQuantize* op: int8 made before static scales), so
    # that a row's answer depends on the rows run with it; read from the graphs, not taken from the manifest.
    batch_dependent: frozenset[str] = frozenset()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of a byte string (the hash the manifest stores for each graph)."""
    return hashlib.sha256(data).hexdigest()


def open_bundle(path: str | Path, threads: int | None = None) -> Bundle:
    """Read and verify the bundle at ``path``; raise BundleError (with a ``code`` and, where a manifest field
    is at fault, its ``field``) if anything disagrees. Graphs are checked in the order of their names."""
    path = Path(path)
    manifest = read_manifest(path)
    options = _session_options(threads)
    dependent: set[str] = set()
    opened = {key: _session(path, key, manifest.graphs[key], options, dependent) for key in sorted(manifest.graphs)}
    sessions = {key: opened[key] for key in manifest.graphs}
    if isinstance(manifest, AutoencoderManifest):
        _check_autoencoder(manifest)
    else:
        _check_contract(manifest)
    return Bundle(path, manifest, sessions, frozenset(dependent))


def read_manifest(path: Path) -> Manifest | AutoencoderManifest:
    """Parse ``path/manifest.json``."""
    if not path.is_dir():
        raise BundleError(f"no bundle at {str(path)!r}: expected a directory holding {MANIFEST} "
                          "(write one with `seq2seq-edge export RUN_DIR --out BUNDLE`)", code="no_bundle")
    file = path / MANIFEST
    if os.path.lexists(file):
        _check_plain_file(file, MANIFEST, None)
    if not file.is_file():
        raise BundleError(f"{str(path)!r} has no {MANIFEST}; it is not a seq2seq-edge bundle, or it is "
                          "incomplete: export it again", code="no_manifest")
    size = file.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{file}: {size} bytes, more than a manifest may hold ({MAX_MANIFEST_BYTES}); "
                          "it is not a seq2seq-edge manifest", code="too_big")
    return parse_manifest(read_json(file.read_bytes(), str(file)))


def max_threads() -> int:
    """The most onnxruntime threads a session may ask for: 4 per core of this machine (200 threads took 31 s
    for one date here; 100,000 crashed the process)."""
    return 4 * (os.cpu_count() or 1)


def _session_options(threads: int | None) -> ort.SessionOptions:
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise InputError(f"threads must be a positive integer or None (onnxruntime's default), got {threads!r}")
    if threads is not None and threads > max_threads():
        raise InputError(f"threads must be at most {max_threads()} (4 per core of this machine), got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Fatal only: a failing run raises an exception that says what failed (callers and the CLI report it);
    # onnxruntime's own log line would print it a second time, unasked, on the application's stderr.
    options.log_severity_level = 4
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


# Op types whose quantisation scales come from the batch at run time (onnxruntime's dynamic quantisation).
BATCH_SCALED_OPS = (b"DynamicQuantizeLinear", b"DynamicQuantizeLSTM", b"DynamicQuantizeMatMul")


def _session(root: Path, key: str, spec: GraphSpec, options: ort.SessionOptions,
             batch_dependent: set[str] | None = None) -> ort.InferenceSession:
    where = f"graphs.{key}"
    if Path(spec.file).name != spec.file:
        raise BundleError(f"manifest.json: graph file {show(spec.file)} must be a plain file name inside the bundle",
                          code="graph_path", field=f"{where}.file")
    file = root / spec.file
    if os.path.lexists(file):  # a link or a FIFO is refused as such, not as missing
        _check_plain_file(file, spec.file, f"{where}.file")
    if not _is_file(file):
        raise BundleError(f"{root / _short(spec.file)} is missing; the bundle is incomplete: copy the whole directory "
                          "or export again",
                          code="graph_missing", field=f"{where}.file")
    data, actual = _read_hashed(file, spec.file, f"{where}.file")
    if actual != spec.sha256:
        raise BundleError(f"{spec.file}: sha256 {actual[:16]}... does not match the manifest's "
                          f"{spec.sha256[:16]}...; the file was changed or corrupted after export: export again",
                          code="hash_mismatch", field=f"{where}.sha256")
    check_no_external_data(data, spec.file, f"{where}.file")  # before onnxruntime sees it: it would resolve the paths
    if batch_dependent is not None and any(op in data for op in BATCH_SCALED_OPS):
        batch_dependent.add(key)
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private types
        raise BundleError(f"{spec.file}: onnxruntime cannot load it ({exc}); export the bundle again",
                          code="onnxruntime", field=f"{where}.file") from exc
    _check_interface(key, spec, session)
    return session


# The largest graph a bundle may hold: protobuf cannot serialise a model over 2 GiB, and a bundle has no
# external data. Checked before a byte is read (a sparse 1.5 GB file was read whole before its hash was).
MAX_GRAPH_BYTES = 2 ** 31
_CHUNK = 1 << 20


def _check_plain_file(file: Path, name: str, field: str | None) -> None:
    """Refuse a symbolic link or any file that is not a regular one (a FIFO, a device): a bundle is a directory
    of plain files, and a link could make the runtime read, and hash into its messages, a file outside it."""
    import stat

    mode = os.lstat(file).st_mode
    if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
        raise BundleError(f"{_short(name)} in the bundle is {kind}; a bundle holds its files as plain files "
                          "(copy it with `cp -rL`, or export it again)", code="not_a_file", field=field)


def _short(name: str) -> str:
    """A file name for a message: at most 80 characters."""
    return name if len(name) <= 80 else name[:77] + "..."


def _read_hashed(file: Path, name: str, field: str) -> tuple[bytes, str]:
    """The file's bytes and their sha256, read in chunks after its size was checked against MAX_GRAPH_BYTES."""
    size = file.stat().st_size
    if size > MAX_GRAPH_BYTES:
        raise BundleError(f"{_short(name)}: {size} bytes, more than a graph may hold ({MAX_GRAPH_BYTES}); "
                          "the bundle is corrupt or hostile: export it again", code="too_big", field=field)
    digest, data = hashlib.sha256(), bytearray()
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            data += chunk
            if len(data) > MAX_GRAPH_BYTES:  # grown since its size was read
                raise BundleError(f"{_short(name)}: more than {MAX_GRAPH_BYTES} bytes; the bundle is corrupt or "
                                  "hostile: export it again", code="too_big", field=field)
    return bytes(data), digest.hexdigest()


def _is_file(path: Path) -> bool:
    """Path.is_file, False too where the name is one the file system cannot hold (longer than NAME_MAX bytes)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _check_interface(key: str, spec: GraphSpec, session: ort.InferenceSession) -> None:
    """The graph's own names, dtypes and shapes must be the manifest's (codes graph_io, graph_dtype, graph_shape)."""
    for kind, declared, actual in (("input", spec.inputs, session.get_inputs()),
                                   ("output", spec.outputs, session.get_outputs())):
        found = {a.name: a for a in actual}
        if set(found) != {t.name for t in declared}:
            raise BundleError(f"{spec.file}: graph {kind}s {show(sorted(found), 160)} do not match the manifest's "
                              f"{show(sorted(t.name for t in declared), 160)}; the manifest belongs to another bundle",
                              code="graph_io", field=f"graphs.{key}.{kind}s")
        for i, t in enumerate(declared):
            _check_tensor(spec.file, t, found[t.name], f"graphs.{key}.{kind}s[{i}]")


def _check_tensor(file: str, declared: TensorSpec, actual, field: str) -> None:
    dtype = ORT_DTYPES.get(actual.type, actual.type)
    if dtype != declared.dtype:
        raise BundleError(f"{file}: tensor {show(declared.name)} is {dtype} in the graph but {declared.dtype} "
                          "in the manifest", code="graph_dtype", field=f"{field}.dtype")
    shape = list(actual.shape)
    same = len(shape) == len(declared.shape) and all(
        (isinstance(d, int) and d == a) or (isinstance(d, str) and not isinstance(a, int))
        for d, a in zip(declared.shape, shape))
    if not same:
        raise BundleError(f"{file}: tensor {show(declared.name)} has shape {shape} in the graph but "
                          f"{list(declared.shape)} in the manifest", code="graph_shape", field=f"{field}.shape")


# The contract between the graphs, the state and the sides: each tensor the runtime feeds or reads is found by
# name in a graph's declared inputs or outputs, as (spec, its field path), and held to the dtype and shape the
# contract needs. Any disagreement is code "contract", the field the declared tensor's.

def _find(m: Manifest | AutoencoderManifest, key: str, kind: str, name: str) -> tuple[TensorSpec, str]:
    graph = m.graphs[key]
    specs = graph.inputs if kind == "inputs" else graph.outputs
    for i, spec in enumerate(specs):
        if spec.name == name:
            return spec, f"graphs.{key}.{kind}[{i}]"
    raise BundleError(f"{graph.file} {kind}: no tensor named {show(name)} (have {show([s.name for s in specs], 160)})",
                      code="contract", field=f"graphs.{key}.{kind}")


def _names(m: Manifest, key: str, kind: str) -> set[str]:
    return {t.name for t in (m.graphs[key].inputs if kind == "inputs" else m.graphs[key].outputs)}


def _mask_shape(c) -> tuple:
    return ("batch", "time") if c.kind == "mask" else ("batch", "time", c.size)


def _check_contract(m: Manifest) -> None:
    """Sizes, names and dtypes must agree between encoder, decoder and the declared sides. A bundle
    exported without the step mode has no decoder_step: its loops carry the contract (_check_loop)."""
    enc = m.step_encoder
    if m.has_step:
        _check_step_graph(m, "decoder_step")
    for c in m.constants:
        _expect(_find(m, enc, "outputs", c.encoder_output), _mask_shape(c),
                f"constant {show(c.name)} (encoder output {show(c.encoder_output)})", "float32")
    for s in m.state:
        if s.init == "encoder":
            _expect(_find(m, enc, "outputs", s.encoder_output), ("batch", s.size),
                    f"state {show(s.name)} (encoder output {show(s.encoder_output)})", "float32")
    src = _find(m, enc, "inputs", m.io.source)
    if isinstance(m.source, FeatureSpec):
        _expect(src, ("batch", "time", m.source.features), "source", "float32")
        fed = {m.io.source}
    else:
        _expect(src, ("batch", "time"), "source", "int32")
        if m.io.source_length is not None:
            _expect(_find(m, enc, "inputs", m.io.source_length), ("batch",), "source_length", "int32")
        fed = {m.io.source, m.io.source_length} - {None}
    if _names(m, enc, "inputs") != fed:
        raise BundleError(f"{m.graphs[enc].file}: inputs {show(sorted(_names(m, enc, 'inputs')), 160)} do not match "
                          f"io.padding {show(m.io.padding)}, which feeds {show(sorted(fed), 160)}; the manifest "
                          "belongs to another bundle",
                          code="contract", field=f"graphs.{enc}.inputs")
    for mode in sorted(m.modes):
        graphs = m.modes[mode]
        if graphs["decoder"] != "decoder_step":
            _check_loop(m, graphs["decoder"], mode)
        other, first = m.graphs[graphs["encoder"]], m.graphs[enc]
        if (other.inputs, other.outputs) != (first.inputs, first.outputs):
            raise BundleError(f"{other.file} (mode {show(mode)}): its inputs and outputs differ from {first.file}'s",
                              code="contract", field=f"decode.modes.{mode}.encoder")


def _check_step_graph(m: Manifest, dec: str) -> None:
    """decoder_step: step_input, the states and constants in; step_output, the next states (and the
    attention weights) out."""
    state_inputs, constants = {s.name for s in m.state}, {c.name for c in m.constants}
    extra = _names(m, dec, "inputs") - state_inputs - constants - {m.io.step_input}
    if extra:
        raise BundleError(f"decoder_step has inputs {show(sorted(extra), 160)} that are neither step_input, a state "
                          "nor a constant", code="contract", field=f"graphs.{dec}.inputs")
    extra = _names(m, dec, "outputs") - {s.output for s in m.state} - {m.io.step_output, m.io.attention}
    if extra:
        raise BundleError(f"decoder_step has outputs {show(sorted(extra), 160)} that are neither step_output, a "
                          "state nor io.attention", code="contract", field=f"graphs.{dec}.outputs")
    for i, c in enumerate(m.constants):
        if c.decoder_input:
            _expect(_find(m, dec, "inputs", c.name), _mask_shape(c), f"constant {show(c.name)} (decoder_step input)",
                    "float32")
        elif c.name in _names(m, dec, "inputs"):
            raise BundleError(f"constant {show(c.name)} has decoder_input false but decoder_step takes it",
                              code="contract", field=f"constants[{i}].decoder_input")
    if m.io.attention is not None:
        _expect(_find(m, dec, "outputs", m.io.attention), ("batch", "time"), "attention weights", "float32")
    for s in m.state:
        _expect(_find(m, dec, "inputs", s.name), ("batch", s.size), f"state {show(s.name)} (decoder_step input)",
                "float32")
        _expect(_find(m, dec, "outputs", s.output), ("batch", s.size),
                f"state {show(s.name)} (decoder_step output {show(s.output)})", "float32")
    out = _find(m, dec, "outputs", m.io.step_output)
    width = len(m.target.vocabulary) if isinstance(m.target, TokenSpec) else m.target.features
    _expect(out, ("batch", width), "step_output", "float32")
    step_in = _find(m, dec, "inputs", m.io.step_input)
    if isinstance(m.target, TokenSpec):
        _expect(step_in, ("batch", 1), "step_input", "int32")
    else:
        _expect(step_in, ("batch", m.target.features), "step_input", "float32")


def _check_loop(m: Manifest, key: str, mode: str) -> None:
    """A fused decode graph: states (and constants), first_input and max_steps in; tokens or predictions out.
    A loop takes every constant, the source mask too when the step graph does not (decoder_input false)."""
    names, file = _names(m, key, "inputs"), m.graphs[key].file
    want = {s.name for s in m.state} | {c.name for c in m.constants} | {LOOP_INPUT, LOOP_STEPS}
    if names != want:
        raise BundleError(f"{file} (mode {show(mode)}): inputs {show(sorted(names), 160)} should be "
                          f"{show(sorted(want), 160)}",
                          code="contract", field=f"graphs.{key}.inputs")
    for s in m.state:
        _expect(_find(m, key, "inputs", s.name), ("batch", s.size), f"state {show(s.name)} ({file})", "float32")
    for c in m.constants:
        _expect(_find(m, key, "inputs", c.name), _mask_shape(c), f"constant {show(c.name)} ({file})", "float32")
    _expect(_find(m, key, "inputs", LOOP_STEPS), (), "max_steps", "int64")
    if isinstance(m.target, TokenSpec):
        _expect(_find(m, key, "inputs", LOOP_INPUT), ("batch",), "first_input", "int32")
        _expect(_find(m, key, "outputs", LOOP_OUTPUTS["tokens"]), ("steps", "batch"), "tokens", "int32")
    else:
        _expect(_find(m, key, "inputs", LOOP_INPUT), ("batch", m.target.features), "first_input", "float32")
        _expect(_find(m, key, "outputs", LOOP_OUTPUTS["features"]), ("steps", "batch", m.target.features),
                "predictions", "float32")


def _check_autoencoder(m: AutoencoderManifest) -> None:
    """Both graphs read (batch, window, features); the autoencoder gives the same shape back."""
    shape = ("batch", m.window, m.source.features)
    for key in ("autoencoder", "encoder"):
        graph = m.graphs[key]
        if [t.name for t in graph.inputs] != [m.source_name]:
            raise BundleError(f"{graph.file}: inputs {show([t.name for t in graph.inputs], 160)} should be just "
                              f"[{show(m.source_name)}]; the manifest belongs to another bundle", code="contract",
                              field=f"graphs.{key}.inputs")
    _expect(_find(m, "autoencoder", "inputs", m.source_name), shape, "autoencoder source", "float32")
    _expect(_find(m, "autoencoder", "outputs", m.reconstruction_name), shape, "reconstruction", "float32")
    _expect(_find(m, "encoder", "inputs", m.source_name), shape, "encoder source", "float32")
    latent, field = _find(m, "encoder", "outputs", m.latent_name)
    if len(latent.shape) != 2 or latent.dtype != "float32":
        raise BundleError(f"latent: tensor {show(latent.name)} is {latent.dtype} {list(latent.shape)}, "
                          "expected float32 (batch, size)", code="contract", field=field)


def _expect(found: tuple[TensorSpec, str], shape: tuple, what: str, dtype: str) -> None:
    tensor, field = found
    if tensor.dtype != dtype:
        raise BundleError(f"{what}: tensor {show(tensor.name)} is {tensor.dtype}, expected {dtype}; encoder, decoder "
                          "and manifest disagree: export the bundle again", code="contract", field=f"{field}.dtype")
    ok = len(tensor.shape) == len(shape) and all(
        (isinstance(e, str) and isinstance(a, str)) or e == a for e, a in zip(shape, tensor.shape))
    if not ok:
        raise BundleError(f"{what}: tensor {show(tensor.name)} has shape {list(tensor.shape)}, expected "
                          f"{list(shape)}; encoder, decoder and manifest disagree: export the bundle again",
                          code="contract", field=f"{field}.shape")
