"""Export a run directory to a bundle: encoder.onnx, decoder_step.onnx, the fused decode graphs, manifest.json.

The bundle is built in a temporary directory, loaded back with the runtime and
checked for parity against Keras; only then does it move to its destination.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runtime.contract import state_names
from ..runtime.manifest import FeatureSpec, GraphSpec
from ..runtime.fsutil import atomic_directory
from ..training.inference import KerasSeq2Seq
from ..training.models import build_decoder_step, build_encoder
from ..training.rundir import RunDir
from ..training.tasks import make_splits
from .autoencoder import DEFAULT_RULE, ThresholdRule, find_encoder_half, write_autoencoder_bundle
from .convert import OPSET, ExportError
from .manifest_builder import build_manifest, data_record
from .parity import ParityReport, default_mode, feature_parity, token_parity
from .writing import (ENCODER_FILE, ExportResult, check_modes, write_fused_modes, write_graph, write_seq2seq_graphs,
                      write_verified)

__all__ = ["export_run"]


def export_run(run_dir: str | Path, out: str | Path, *, force: bool = False, parity_samples: int = 256,
               opset: int = OPSET, parity_inputs: list[str] | None = None,
               threshold: "str | ThresholdRule" = DEFAULT_RULE, modes=None) -> ExportResult:
    """Export a run directory written by ``train`` to a verified bundle at ``out``.

    Parity is checked on the task's held-out split, or on ``parity_inputs`` (texts) when given.
    Autoencoders: ``threshold`` is the rule (``quantile:Q`` or ``sigma:K``) that sets ``detect``'s
    thresholds from the task's validation windows; the manifest records it.
    ``modes`` (e.g. ``["fused-int8"]``): write only these decode modes' graphs (every mode is built and
    checked first); without 'step' the bundle decodes greedily only. Default: every mode.
    """
    keep = check_modes(modes)
    run = RunDir(Path(run_dir))
    config = run.config
    if config.family == "autoencoder":
        if keep is not None:
            raise ExportError("modes applies to encoder-decoder bundles; an autoencoder bundle has one graph per "
                              "role and no decode modes")
        return _export_autoencoder_run(run, out, force, parity_samples, opset, threshold)
    vocabs = run.vocabularies() if config.sides.target_kind == "tokens" else None
    model = run.load_model()
    with atomic_directory(out, force) as tmp:
        graphs = _write_graphs(model, config, tmp, opset)
        modes = _write_fused(model, config, vocabs, graphs, tmp, opset)
        keras_ref = KerasSeq2Seq.from_run(model, config)

        def manifest(report: ParityReport | None) -> dict:
            if report is None:
                return build_manifest(config, graphs, vocabs, {}, opset, modes, quality=run.quality()).to_dict()
            return build_manifest(config, graphs, vocabs, report.to_dict(), opset, modes,
                                  default_mode(report, modes) if modes else "step", quality=run.quality()).to_dict()

        sources = _ParitySources(config, parity_samples, parity_inputs)
        report, sizes = write_verified(tmp, manifest, lambda runtime: _parity(keras_ref, runtime, sources(runtime)),
                                       keep, calibrate=lambda runtime: _calibrate(runtime, sources(runtime)))
    return ExportResult(Path(out), report, mode_sizes=sizes, kept_modes=keep or tuple(sizes))


def _export_autoencoder_run(run: RunDir, out, force: bool, samples: int, opset: int,
                            threshold: str | ThresholdRule) -> ExportResult:
    """The thresholds come from ``threshold`` (a rule) on the task's validation windows: held out from
    training and normal, so they score as unseen normal data does."""
    config, model = run.config, run.load_model()
    splits = make_splits(config.task, config.train)
    held_out = splits.test if isinstance(splits.test, np.ndarray) else splits.test[0]  # raw windows
    normal = splits.validation if isinstance(splits.validation, np.ndarray) else splits.validation[0]
    stats = config.normalisation["source"]
    source = FeatureSpec(config.sides.source_size, tuple(stats["mean"]), tuple(stats["std"]))
    return write_autoencoder_bundle(model, find_encoder_half(model), out, source=source, task=config.task,
                                    held_out=held_out[:samples], rule=ThresholdRule.parse(threshold),
                                    normal=normal, calibration="validation windows of the task",
                                    force=force, opset=opset, data=data_record(config, run.quality()))


def _write_graphs(model, config, folder: Path, opset: int) -> dict[str, GraphSpec]:
    """LSTM models: both graphs by tf2onnx, the encoder's LSTM ops fed per-row lengths. GRU models:
    tf2onnx would turn the encoder into a slow Loop that cannot take lengths, so the encoder is
    built on ONNX's native GRU op from the weights; the decoder step still comes from tf2onnx."""
    from .fused_weights import RecurrentWeights
    from .gru_encoder import build_gru_encoder

    cfg, sides = config.model, config.sides
    tokens = sides.source_kind == "tokens"
    decoder = build_decoder_step(model, cfg, sides)
    if cfg.cell == "lstm":
        return write_seq2seq_graphs(build_encoder(model, cfg, sides, masked=not tokens), decoder, folder, opset,
                                    lstm_layers_with_lengths=cfg.layers if tokens else None)
    graphs = write_seq2seq_graphs(None, decoder, folder, opset)
    embedding = model.get_layer("source_embedding").get_weights()[0] if tokens else None
    layers = tuple(RecurrentWeights.from_layer(model.get_layer(f"encoder_rnn_{k}")) for k in range(cfg.layers))
    keys = None
    if cfg.attention:  # the encoder also returns memory, keys and mask
        weights = model.get_layer("attention_key_dense").get_weights()
        keys = (weights[0], weights[1] if len(weights) > 1 else None)
    encoder = build_gru_encoder(embedding, layers, None if tokens else sides.source_size, max(opset, 18),
                                attention_keys=keys)
    graphs["encoder"] = write_graph(encoder, folder, ENCODER_FILE)
    return graphs


def _write_fused(model, config, vocabs, graphs: dict[str, GraphSpec], folder: Path, opset: int) -> dict:
    """Add decode_loop.onnx (fp32), decode_loop_int8.onnx and encoder_int8.onnx; returns the decode modes."""
    from .fused_weights import decoder_weights

    end_id = vocabs[1].end_id if vocabs else None
    names = [[name for layer, _, name in state_names(config.model.cell, config.model.layers) if layer == k]
             for k in range(config.model.layers)]
    return write_fused_modes(decoder_weights(model, config), names, end_id, graphs, folder, opset)


class _ParitySources:
    """The parity inputs, made once: (x, lengths, targets, data), ids and lengths for token sources (``inputs``
    texts, else the task's held-out split), windows otherwise."""

    def __init__(self, config, samples: int, inputs: list[str] | None) -> None:
        self.config, self.samples, self.inputs, self.made = config, samples, inputs, None

    def __call__(self, runtime) -> tuple:
        if self.made is None:
            self.made = self._make(runtime)
        return self.made

    def _make(self, runtime) -> tuple:
        config, samples = self.config, self.samples
        if self.inputs is not None:
            ids, lengths = runtime.source_vocab.encode_batch(self.inputs[:samples])
            return ids, lengths, None, "texts given as parity_inputs"
        held_out = make_splits(config.task, config.train).test
        data = f"held-out samples (the {config.task} task's test split)"
        if config.sides.target_kind == "tokens":
            pairs = held_out[:samples]
            ids, lengths = runtime.source_vocab.encode_batch([s for s, _ in pairs])
            return ids, lengths, [t for _, t in pairs], data
        source, _ = held_out
        return source[:samples], None, None, data


def _calibrate(runtime, sources: tuple) -> None:
    """A greedy decode of the parity inputs in the fp32 fused mode: what the int8 scales are calibrated on."""
    x, lengths, _, _ = sources
    runtime.generate(x, lengths=lengths, mode="fused")


def _parity(keras_ref: KerasSeq2Seq, runtime, sources: tuple) -> ParityReport:
    x, lengths, targets, data = sources
    if lengths is not None:
        return token_parity(keras_ref, runtime, x, lengths, targets=targets, data=data)
    return feature_parity(keras_ref, runtime, x, data=data)
