"""Export a run directory to a bundle: encoder.onnx, decoder_step.onnx, manifest.json.

The bundle is built in a temporary directory, loaded back with the runtime and
checked for parity against Keras; only then does it move to its destination.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from seq2seq_edge.fsutil import atomic_directory
from seq2seq_edge.runtime.bundle import sha256_bytes
from seq2seq_edge.runtime.manifest import GraphSpec
from seq2seq_edge.runtime.model import load
from seq2seq_edge.training.inference import KerasSeq2Seq
from seq2seq_edge.training.models import build_decoder_step, build_encoder
from seq2seq_edge.training.rundir import RunDir
from seq2seq_edge.training.tasks import make_splits

from .convert import OPSET, ExportError, add_sequence_lengths, interface, keras_to_onnx, name_axes
from .manifest_builder import build_manifest, source_padding
from .parity import ParityReport, feature_parity, token_parity

__all__ = ["export_run", "ExportResult", "ParityError"]

ENCODER_FILE, DECODER_FILE, MANIFEST_FILE = "encoder.onnx", "decoder_step.onnx", "manifest.json"


class ParityError(ExportError):
    """The exported graphs disagree with Keras beyond tolerance; nothing was written."""


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle went and the parity measured on the way."""

    path: Path
    parity: ParityReport


def export_run(run_dir: str | Path, out: str | Path, *, force: bool = False, parity_samples: int = 256,
               opset: int = OPSET) -> ExportResult:
    """Export a run directory written by ``train`` to a verified bundle at ``out``."""
    run = RunDir(Path(run_dir))
    config = run.config
    vocabs = run.vocabularies() if config.sides.target_kind == "tokens" else None
    model = run.load_model()
    with atomic_directory(out, force) as tmp:
        graphs = _write_graphs(model, config, tmp, opset)
        _write_manifest(tmp, build_manifest(config, graphs, vocabs, {}, opset).to_dict())
        report = _parity(KerasSeq2Seq(model, config), load(tmp), config, parity_samples)
        if not report.ok:
            raise ParityError(f"parity check failed, nothing written: {report.summary()}")
        _write_manifest(tmp, build_manifest(config, graphs, vocabs, report.to_dict(), opset).to_dict())
        load(tmp)  # the final bundle must load and verify as written
    return ExportResult(Path(out), report)


def _write_graphs(model, config, folder: Path, opset: int) -> dict[str, GraphSpec]:
    cfg, sides = config.model, config.sides
    tokens_in = sides.source_kind == "tokens"
    lengths = tokens_in and source_padding(config) == "lengths"
    encoder = keras_to_onnx(build_encoder(model, cfg, sides, masked=not lengths), opset)
    if lengths:
        add_sequence_lengths(encoder, "source_length", expected_lstms=cfg.layers)
    batch_only = {o.name: ("batch", None) for o in encoder.graph.output}
    name_axes(encoder, {"source": ("batch", "time") if tokens_in else ("batch", "time", None), **batch_only})
    decoder = keras_to_onnx(build_decoder_step(model, cfg, sides), opset)
    name_axes(decoder, {v.name: ("batch", None) for v in list(decoder.graph.input) + list(decoder.graph.output)})
    graphs = {}
    for key, file, proto in (("encoder", ENCODER_FILE, encoder), ("decoder_step", DECODER_FILE, decoder)):
        data = proto.SerializeToString()
        (folder / file).write_bytes(data)
        inputs, outputs = interface(proto)
        graphs[key] = GraphSpec(file, sha256_bytes(data), inputs, outputs)
    return graphs


def _write_manifest(folder: Path, data: dict) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def _parity(keras_ref: KerasSeq2Seq, runtime, config, samples: int) -> ParityReport:
    held_out = make_splits(config.task, config.train).test
    if config.sides.target_kind == "tokens":
        return token_parity(keras_ref, runtime, [s for s, _ in held_out[:samples]])
    source, _ = held_out
    return feature_parity(keras_ref, runtime, source[:samples])
