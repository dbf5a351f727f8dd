"""Export a run directory to a bundle: encoder.onnx, decoder_step.onnx, the fused decode graphs, manifest.json.

The bundle is built in a temporary directory, loaded back with the runtime and
checked for parity against Keras; only then does it move to its destination.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq_edge.fsutil import atomic_directory
from seq2seq_edge.runtime.bundle import sha256_bytes
from seq2seq_edge.runtime.manifest import FeatureSpec, GraphSpec
from seq2seq_edge.runtime.loader import load
from seq2seq_edge.training.inference import KerasSeq2Seq
from seq2seq_edge.training.models import build_decoder_step, build_encoder, state_kinds
from seq2seq_edge.training.rundir import RunDir
from seq2seq_edge.training.tasks import make_splits

from .convert import OPSET, ExportError, add_sequence_lengths, interface, keras_to_onnx, name_axes
from .manifest_builder import build_manifest, data_record
from .parity import ParityReport, feature_parity, token_parity

__all__ = ["export_run", "ExportResult", "ParityError"]

ENCODER_FILE, DECODER_FILE, MANIFEST_FILE = "encoder.onnx", "decoder_step.onnx", "manifest.json"


class ParityError(ExportError):
    """The exported graphs disagree with Keras beyond tolerance; nothing was written."""


@dataclass(frozen=True)
class ExportResult:
    """Where the bundle went and the parity measured on the way."""

    path: Path
    parity: Any  # ParityReport, or AutoencoderParity for autoencoders


def export_run(run_dir: str | Path, out: str | Path, *, force: bool = False, parity_samples: int = 256,
               opset: int = OPSET, parity_inputs: list[str] | None = None) -> ExportResult:
    """Export a run directory written by ``train`` to a verified bundle at ``out``.

    Parity is checked on the task's held-out split, or on ``parity_inputs`` (texts) when given.
    """
    run = RunDir(Path(run_dir))
    config = run.config
    if config.family == "autoencoder":
        return _export_autoencoder_run(run, out, force, parity_samples, opset)
    vocabs = run.vocabularies() if config.sides.target_kind == "tokens" else None
    model = run.load_model()
    with atomic_directory(out, force) as tmp:
        graphs = _write_graphs(model, config, tmp, opset)
        modes = _write_fused(model, config, vocabs, graphs, tmp, opset)
        write_manifest(tmp, build_manifest(config, graphs, vocabs, {}, opset, modes).to_dict())
        report = _parity(KerasSeq2Seq.from_run(model, config), load(tmp), config, parity_samples, parity_inputs)
        if not report.ok:
            raise ParityError(f"parity check failed, nothing written: {report.summary()}")
        default = _default_mode(report, modes)
        write_manifest(tmp, build_manifest(config, graphs, vocabs, report.to_dict(), opset, modes, default).to_dict())
        load(tmp)  # the final bundle must load and verify as written
    return ExportResult(Path(out), report)


SPEED_ORDER = ("fused-int8", "fused", "step")  # fastest first, as `seq2seq-edge bench` measures


def _default_mode(report: ParityReport, modes: dict) -> str:
    """The fastest mode whose held-out decode matched Keras exactly (int8 only when it did)."""
    exact = set(report.exact_modes()) & set(modes)
    return next(mode for mode in SPEED_ORDER if mode in exact)


def _export_autoencoder_run(run: RunDir, out, force: bool, samples: int, opset: int) -> "ExportResult":
    from .autoencoder import find_encoder_half, write_autoencoder_bundle

    config, model = run.config, run.load_model()
    splits = make_splits(config.task, config.train)
    held_out = splits.test if isinstance(splits.test, np.ndarray) else splits.test[0]  # raw windows
    stats = config.normalisation["source"]
    source = FeatureSpec(config.sides.source_size, tuple(stats["mean"]), tuple(stats["std"]))
    return write_autoencoder_bundle(model, find_encoder_half(model), out, source=source, anomaly=config.anomaly,
                                    task=config.task, held_out=held_out[:samples], force=force, opset=opset,
                                    data=data_record(config))


def _write_graphs(model, config, folder: Path, opset: int) -> dict[str, GraphSpec]:
    """LSTM models: both graphs by tf2onnx, the encoder's LSTM ops fed per-row lengths. GRU models:
    tf2onnx would turn the encoder into a slow Loop that cannot take lengths, so the encoder is
    built on ONNX's native GRU op from the weights; the decoder step still comes from tf2onnx."""
    from .fused import RecurrentWeights, build_gru_encoder

    cfg, sides = config.model, config.sides
    tokens = sides.source_kind == "tokens"
    decoder = build_decoder_step(model, cfg, sides)
    if cfg.cell == "lstm":
        return write_seq2seq_graphs(build_encoder(model, cfg, sides, masked=not tokens), decoder, folder, opset,
                                    lstm_layers_with_lengths=cfg.layers if tokens else None)
    graphs = write_seq2seq_graphs(None, decoder, folder, opset)
    embedding = model.get_layer("source_embedding").get_weights()[0] if tokens else None
    layers = tuple(RecurrentWeights.from_layer(model.get_layer(f"encoder_rnn_{k}")) for k in range(cfg.layers))
    encoder = build_gru_encoder(embedding, layers, None if tokens else sides.source_size, max(opset, 18))
    graphs["encoder"] = write_graph(encoder, folder, ENCODER_FILE)
    return graphs


def _write_fused(model, config, vocabs, graphs: dict[str, GraphSpec], folder: Path, opset: int) -> dict:
    """Add decode_loop.onnx (fp32), decode_loop_int8.onnx and encoder_int8.onnx; returns the decode modes."""
    import onnx

    from .fused import build_decode_loop, decoder_weights, quantize_loop, quantize_model

    end_id = vocabs[1].end_id if vocabs else None
    names = [[f"{kind}{k}" for kind in state_kinds(config.model.cell)] for k in range(config.model.layers)]
    loop = build_decode_loop(decoder_weights(model, config), names, end_id, max(opset, 18))
    graphs["decode_loop"] = write_graph(loop, folder, "decode_loop.onnx")
    graphs["decode_loop_int8"] = write_graph(quantize_loop(loop), folder, "decode_loop_int8.onnx")
    encoder = onnx.load(str(folder / ENCODER_FILE))
    graphs["encoder_int8"] = write_graph(quantize_model(encoder), folder, "encoder_int8.onnx")
    return {"step": {"encoder": "encoder", "decoder": "decoder_step"},
            "fused": {"encoder": "encoder", "decoder": "decode_loop"},
            "fused-int8": {"encoder": "encoder_int8", "decoder": "decode_loop_int8"}}


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
    name_axes(dec, {v.name: ("batch", None) for v in list(dec.graph.input) + list(dec.graph.output)})
    graphs = {"decoder_step": write_graph(dec, folder, DECODER_FILE)}
    if encoder is None:  # the caller builds the encoder itself
        return graphs
    enc = keras_to_onnx(encoder, opset)
    if lstm_layers_with_lengths:
        add_sequence_lengths(enc, "source_length", expected_lstms=lstm_layers_with_lengths)
    source_rank = len(encoder.inputs[0].shape)
    batch_only = {o.name: ("batch", None) for o in enc.graph.output}
    name_axes(enc, {"source": ("batch", "time") + (None,) * (source_rank - 2), **batch_only})
    graphs["encoder"] = write_graph(enc, folder, ENCODER_FILE)
    return graphs


def write_manifest(folder: Path, data: dict) -> None:
    """Write manifest.json (UTF-8, readable)."""
    text = json.dumps(data, indent=1, ensure_ascii=False)
    (folder / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def _parity(keras_ref: KerasSeq2Seq, runtime, config, samples: int, inputs: list[str] | None) -> ParityReport:
    if inputs is not None:
        ids, lengths = runtime.source_vocab.encode_batch(inputs[:samples])
        return token_parity(keras_ref, runtime, ids, lengths)
    held_out = make_splits(config.task, config.train).test
    if config.sides.target_kind == "tokens":
        ids, lengths = runtime.source_vocab.encode_batch([s for s, _ in held_out[:samples]])
        return token_parity(keras_ref, runtime, ids, lengths)
    source, _ = held_out
    return feature_parity(keras_ref, runtime, source[:samples])
