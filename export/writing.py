"""Writing a bundle's parts: graphs with their manifest descriptions, the manifest itself, and the
result and error types every export path shares (our runs, autoencoders, users' own models)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..runtime.bundle import sha256_bytes
from ..runtime.contract import ATTENTION, SOURCE, SOURCE_LENGTH, SOURCE_MASK
from ..runtime.loader import load
from ..runtime.manifest import GraphSpec
from .convert import ExportError, add_sequence_lengths, interface, keras_to_onnx, mask_from_lengths, name_axes

__all__ = ["ExportResult", "ParityError", "write_graph", "write_manifest", "write_seq2seq_graphs",
           "write_verified", "write_fused_modes", "graph_metadata", "contract_sha256", "stamp_metadata",
           "check_modes", "mode_sizes", "ENCODER_FILE", "DECODER_FILE", "MANIFEST_FILE", "ALL_MODES"]

ENCODER_FILE, DECODER_FILE, MANIFEST_FILE = "encoder.onnx", "decoder_step.onnx", "manifest.json"
ALL_MODES = ("step", "fused", "fused-int8")


class ParityError(ExportError):
    """The exported graphs disagree with Keras beyond tolerance; nothing was written. ``report``: what was
    measured."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle went and the parity measured on the way."""

    path: Path
    parity: Any  # ParityReport, or AutoencoderParity for autoencoders
    notes: tuple[str, ...] = ()  # what the export chose not to build, and why
    # Bytes of each decode mode's graphs (its encoder and decoder), for every mode built, kept or not.
    mode_sizes: dict = field(default_factory=dict)
    kept_modes: tuple[str, ...] = ()

    def sizes_summary(self) -> str:
        """'step 5.1 MB, fused 5.3 MB, fused-int8 1.4 MB' (modes left out say so)."""
        return ", ".join(f"{mode} {size / 1e6:.1f} MB" + ("" if mode in self.kept_modes else " (left out)")
                         for mode, size in self.mode_sizes.items())


def write_graph(proto, folder: Path, file: str) -> GraphSpec:
    """Serialise one ONNX model into the bundle folder and describe it for the manifest."""
    data = proto.SerializeToString()
    (folder / file).write_bytes(data)
    inputs, outputs = interface(proto)
    return GraphSpec(file, sha256_bytes(data), inputs, outputs)


def write_seq2seq_graphs(encoder, decoder, folder: Path, opset: int, *,
                         lstm_layers_with_lengths: int | None = None) -> dict[str, GraphSpec]:
    """Convert our-named Keras encoder and decoder_step models and write them into ``folder``.

    ``lstm_layers_with_lengths``: add the ``source_length`` input to that many LSTM ops.
    """
    dec = keras_to_onnx(decoder, opset)
    name_axes(dec, {v.name: _axes(v) for v in list(dec.graph.input) + list(dec.graph.output)})
    graphs = {"decoder_step": write_graph(dec, folder, DECODER_FILE)}
    if encoder is None:  # the caller builds the encoder itself
        return graphs
    enc = keras_to_onnx(encoder, opset)
    if lstm_layers_with_lengths:
        add_sequence_lengths(enc, SOURCE_LENGTH, expected_lstms=lstm_layers_with_lengths)
        if SOURCE_MASK in {o.name for o in enc.graph.output}:
            mask_from_lengths(enc, SOURCE_LENGTH, SOURCE_MASK, SOURCE)
    source_rank = len(encoder.inputs[0].shape)
    batch_only = {o.name: _axes(o) for o in enc.graph.output}
    name_axes(enc, {SOURCE: ("batch", "time") + (None,) * (source_rank - 2), **batch_only})
    graphs["encoder"] = write_graph(enc, folder, ENCODER_FILE)
    return graphs


def _axes(value) -> tuple:
    """Our axis names for a step-interface tensor: (batch, size); an attention decoder's source mask and
    weights (batch, time); its memory and keys (batch, time, size)."""
    rank = len(value.type.tensor_type.shape.dim)
    if rank == 3:
        return ("batch", "time", None)
    return ("batch", "time") if value.name in (SOURCE_MASK, ATTENTION) else ("batch", None)


def write_fused_modes(spec, names: list[list[str]], end_id: int | None, graphs: dict[str, GraphSpec], folder: Path,
                      opset: int) -> dict:
    """Add decode_loop.onnx (fp32), decode_loop_int8.onnx and encoder_int8.onnx to ``folder`` (whose
    encoder.onnx is written) from ``spec`` (fused_weights.DecoderWeights; ``names[k]``: layer k's state names);
    returns the decode modes for the manifest."""
    import onnx

    from .fused_loop import build_decode_loop
    from .quantize import quantize_loop, quantize_model

    loop = build_decode_loop(spec, names, end_id, max(opset, 18))
    graphs["decode_loop"] = write_graph(loop, folder, "decode_loop.onnx")
    graphs["decode_loop_int8"] = write_graph(quantize_loop(loop), folder, "decode_loop_int8.onnx")
    encoder = onnx.load(str(folder / ENCODER_FILE))
    graphs["encoder_int8"] = write_graph(quantize_model(encoder), folder, "encoder_int8.onnx")
    return {"step": {"encoder": "encoder", "decoder": "decoder_step"},
            "fused": {"encoder": "encoder", "decoder": "decode_loop"},
            "fused-int8": {"encoder": "encoder_int8", "decoder": "decode_loop_int8"}}


def write_manifest(folder: Path, data: dict) -> None:
    """Write manifest.json (UTF-8, readable)."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def check_modes(modes) -> tuple[str, ...] | None:
    """The ``modes`` argument of the export functions: None (every mode built), or mode names (a list, or
    one comma-separated string as the command line gives it)."""
    if modes is None:
        return None
    names = [m.strip() for m in modes.split(",")] if isinstance(modes, str) else list(modes)
    names = list(dict.fromkeys(n for n in names if n))
    unknown = [n for n in names if n not in ALL_MODES]
    if not names or unknown:
        raise ExportError(f"modes must name one or more of {list(ALL_MODES)} (comma-separated on the command line), "
                          f"got {modes!r}")
    return tuple(names)


def write_verified(folder: Path, manifest: Callable[[Any], dict], measure: Callable[[Any], Any],
                   keep_modes: tuple[str, ...] | None = None,
                   calibrate: Callable[[Any], Any] | None = None) -> tuple[Any, dict]:
    """Write the manifest, measure parity on the bundle as the runtime loads it, and record the result.

    ``manifest(report)`` builds the manifest dict (``report`` is None before parity is known);
    ``measure(model)`` returns a report with ``ok`` and ``summary()``. Raises ParityError, leaving
    the caller to discard ``folder``, when the graphs disagree with Keras. ``keep_modes``: after the
    check (which runs every mode, the step graph included), only these modes' graphs stay.
    ``calibrate(model)``: decodes the calibration inputs (the parity sources) greedily in ``model``'s
    'fused' mode; before parity is measured, the int8 graphs' activation scales are fixed from what that
    decode fed the fp32 graphs (static_int8_graphs), so that no int8 answer depends on the batch. A bundle
    with an int8 mode needs it. Returns (report, bytes per built mode).
    """
    write_manifest(folder, manifest(None))
    int8 = static_int8_graphs(folder, calibrate)
    report = measure(load(folder))
    if not report.ok:
        raise ParityError(f"parity check failed, nothing written: {report.summary()}", report)
    data = manifest(report)
    if int8 is not None:
        data["decode"]["int8"] = int8
    stamp_metadata(folder, data)  # before the sizes are measured, and before any graph is dropped
    sizes = mode_sizes(folder, data)
    if keep_modes is not None and "decode" in data:
        _keep_modes(folder, data, keep_modes, report)
        if INT8_MODE not in data["decode"]["modes"]:
            data["decode"].pop("int8", None)
    write_manifest(folder, data)
    load(folder)  # the final bundle must load and verify as written
    return report, sizes


INT8_MODE = "fused-int8"


class _Recorder:
    """An onnxruntime session that keeps a copy of every feed it runs."""

    def __init__(self, session) -> None:
        self.session, self.feeds = session, []

    def run(self, names, feed, *args, **kwargs):
        self.feeds.append(dict(feed))
        return self.session.run(names, feed, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


def static_int8_graphs(folder: Path, calibrate: Callable[[Any], Any] | None) -> dict | None:
    """Give the int8 graphs of the bundle in ``folder`` (manifest written) static activation scales: decode with
    ``calibrate`` in the fp32 'fused' mode, recording what its encoder and loop are fed, measure on those feeds
    the range of every value the int8 twins quantise, and rewrite them (static_int8.make_static) and their
    hashes in the manifest. Returns the manifest's ``decode.int8`` record, or None without an int8 mode."""
    import onnx

    from .static_int8 import MARGIN, METHOD, calibrate as ranges_of, dynamic_ops, make_static

    data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    modes = data.get("decode", {}).get("modes", {})
    if INT8_MODE not in modes:
        return None
    if calibrate is None or "fused" not in modes:
        raise ExportError("an int8 mode needs calibration inputs and the fp32 'fused' mode beside it (export bug)")
    model = load(folder)
    fp32, int8 = modes["fused"], modes[INT8_MODE]
    recorders = {role: _Recorder(model.bundle.sessions[key]) for role, key in fp32.items()}
    for role, key in fp32.items():
        model.bundle.sessions[key] = recorders[role]
    calibrate(model)
    values = 0
    for role, key in int8.items():
        if not recorders[role].feeds:
            raise ExportError(f"int8 calibration: the fp32 {role} was never run (export bug)")
        graph = data["graphs"][key]
        proto = onnx.load(str(folder / graph["file"]))
        ranges = ranges_of(proto, recorders[role].feeds)
        static = make_static(proto, ranges)
        left = dynamic_ops(static)
        if left:
            raise ExportError(f"int8 graph {key} keeps ops whose scales depend on the batch ({left}) (export bug)")
        blob = static.SerializeToString()
        (folder / graph["file"]).write_bytes(blob)
        graph["sha256"] = sha256_bytes(blob)
        values += len(ranges)
    write_manifest(folder, data)
    rows = sum(len(next(iter(f.values()))) for f in recorders["encoder"].feeds)
    return {"method": METHOD, "weights": "int8, per tensor, symmetric",
            "activations": f"uint8, one fixed scale per tensor: the range of {values} values over a greedy fp32 "
                           f"decode of {rows} parity sources at export, widened by {MARGIN:.0%} on each side",
            "batch_independent": True}


# What every graph's metadata_props carry from the manifest, so that Netron and other ONNX tools show what a
# graph is without the manifest. The manifest holds each graph's sha256, so a graph cannot hold the manifest's;
# it holds the sha256 of the manifest's contract (CONTRACT_KEYS, canonical JSON) instead.
METADATA_PREFIX = "seq2seq_edge."
CONTRACT_KEYS = ("format", "family", "io", "state", "constants", "source", "target", "window")


def contract_sha256(data: dict) -> str:
    """sha256 of the manifest's contract: the keys in CONTRACT_KEYS that it has, as sorted, compact JSON."""
    contract = {k: data[k] for k in CONTRACT_KEYS if k in data}
    return hashlib.sha256(json.dumps(contract, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def graph_metadata(data: dict, role: str) -> dict[str, str]:
    """The metadata_props of graph ``role`` in the bundle whose manifest is ``data``."""
    graph = data["graphs"][role]
    props = {"format": data["format"], "role": role, "family": data["family"],
             "inputs": ",".join(t["name"] for t in graph["inputs"]),
             "outputs": ",".join(t["name"] for t in graph["outputs"]),
             "contract_sha256": contract_sha256(data)}
    if data.get("task"):
        props["task"] = str(data["task"])
    if data.get("model"):
        props["model"] = json.dumps(data["model"], separators=(",", ":"))
    if data.get("state"):
        props["state"] = json.dumps([{"name": s["name"], "kind": s["kind"], "size": s["size"], "layer": s["layer"]}
                                     for s in data["state"]], separators=(",", ":"))
    if data.get("constants"):
        props["constants"] = json.dumps([{"name": c["name"], "kind": c["kind"], "size": c["size"]}
                                         for c in data["constants"]], separators=(",", ":"))
    return {METADATA_PREFIX + k: v for k, v in props.items()}


def stamp_metadata(folder: Path, data: dict) -> None:
    """Write graph_metadata into every graph of the bundle (and a one-line doc_string), updating the
    manifest's sha256 of each (``data`` is edited in place). Metadata changes no computation."""
    import onnx

    for role, graph in data["graphs"].items():
        path = folder / graph["file"]
        proto = onnx.load_model(str(path), load_external_data=False)
        props = graph_metadata(data, role)
        kept = [p for p in proto.metadata_props if not p.key.startswith(METADATA_PREFIX)]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        for key, value in props.items():
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = (f"seq2seq-edge {data['family']} bundle, graph '{role}': "
                            f"({props[METADATA_PREFIX + 'inputs']}) -> ({props[METADATA_PREFIX + 'outputs']}); "
                            "driven as manifest.json beside it describes")
        blob = proto.SerializeToString()
        path.write_bytes(blob)
        graph["sha256"] = sha256_bytes(blob)


def mode_sizes(folder: Path, data: dict) -> dict[str, int]:
    """Bytes of each decode mode's graphs (its encoder and decoder) in the bundle ``folder`` whose
    manifest is ``data``: what that mode alone would take."""
    modes = data.get("decode", {}).get("modes", {})
    return {mode: sum((folder / data["graphs"][g]["file"]).stat().st_size for g in set(graphs.values()))
            for mode, graphs in modes.items()}


def _keep_modes(folder: Path, data: dict, keep: tuple[str, ...], report) -> None:
    """Drop the graphs of the modes not kept (``data`` is edited in place); the default is the fastest kept
    mode that passed its rule."""
    from ..runtime.manifest import strategies_for
    from .parity import default_mode, int8_verdict

    built = data["decode"]["modes"]
    missing = [m for m in keep if m not in built]
    if missing:
        raise ExportError(f"mode(s) {missing} were not built for this model (it has {list(built)})")
    modes = {m: g for m, g in built.items() if m in keep}
    used = {g for graphs in modes.values() for g in graphs.values()}
    for name in [g for g in data["graphs"] if g not in used]:
        (folder / data["graphs"].pop(name)["file"]).unlink()
    default = default_mode(report, modes)
    if default not in modes:  # only int8 kept, and it failed its rule: no mode may be the default
        verdict = int8_verdict(report)
        raise ExportError(f"modes {list(keep)}: the int8 mode did not pass its rule to be a default "
                          f"({verdict['why'] if verdict else 'its decode differed from Keras'}); keep an fp32 mode "
                          "beside it, e.g. modes=['fused', 'fused-int8'] (--modes fused,fused-int8)")
    data["decode"].update(modes=modes, default_mode=default,
                          strategies=list(strategies_for(modes)))
