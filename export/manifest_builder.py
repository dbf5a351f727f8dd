"""Assemble the manifest of a bundle exported from one of our run directories."""

from __future__ import annotations

import importlib.metadata as md

from ..runtime.contract import (ATTENTION, ATTENTIONAL, CONSTANT_KINDS, SOURCE_LENGTH, STEP_OUTPUTS, state_names,
                                state_output)
from ..runtime.manifest import ConstantSpec, FeatureSpec, GraphSpec, IONames, Manifest, StateSpec, TokenSpec
from ..runtime.vocab import Vocabulary
from ..training.config import RunConfig

__all__ = ["build_manifest", "versions", "data_record"]


def versions(opset: int) -> dict[str, str | int]:
    """Versions of everything that shaped the graphs."""
    out: dict[str, str | int] = {"onnx_opset": opset}
    for dist in ("seq2seq-edge", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def data_record(config: RunConfig, quality: dict | None = None) -> dict | None:
    """How the run's task data was made: enough for `evaluate` to rebuild the test split; with the
    documented recipe's floors (the run's quality.json) for `evaluate --check`."""
    from ..training.tasks import TASKS

    if config.task not in TASKS:
        return None
    t = config.train
    record = {"task": config.task, "samples": t.samples, "seed": t.seed, "validation_split": t.validation_split,
              "test_split": t.test_split}
    return {**record, "quality": quality} if quality else record


def build_manifest(config: RunConfig, graphs: dict[str, GraphSpec], vocabs: tuple[Vocabulary, Vocabulary] | None,
                   parity: dict, opset: int, modes: dict | None = None, default_mode: str = "step",
                   quality: dict | None = None) -> Manifest:
    """The manifest for a run: state contract h{k}/c{k} -> h{k}_out/c{k}_out, sides, decode limits."""
    units = config.model.units
    state = tuple(StateSpec(name=name, layer=k, kind=kind, size=units, output=state_output(name), init="encoder",
                            encoder_output=name) for k, kind, name in state_names(config.model.cell, config.model.layers))
    if config.model.input_feeding:  # the previous step's attentional vector, zeros before the first step
        state += (StateSpec(name=ATTENTIONAL, layer=config.model.layers - 1, kind="attentional", size=units,
                            output=state_output(ATTENTIONAL), init="zeros"),)
    sides = config.sides
    if sides.target_kind == "tokens":
        source, target = (TokenSpec(v) for v in vocabs)
        first_input = "start_token"
    else:
        stats = config.normalisation
        source, target = (FeatureSpec(size, tuple(stats[side]["mean"]), tuple(stats[side]["std"]))
                          for side, size in (("source", sides.source_size), ("target", sides.target_size)))
        first_input = "last_source_step"
    # Our encoders take per-row lengths (the native LSTM / GRU op's sequence_lens); see export/api.py.
    padding = "lengths" if sides.source_kind == "tokens" else None
    attention = config.model.attention
    io = IONames(source_length=SOURCE_LENGTH if padding == "lengths" else None, padding=padding,
                 step_output=STEP_OUTPUTS[sides.target_kind], attention=ATTENTION if attention else None)
    constants = tuple(ConstantSpec(name, kind, name, None if kind == "mask" else units)
                      for kind, name in CONSTANT_KINDS.items()) if attention else ()
    layers = (units,) * config.model.layers
    return Manifest(family="seq2seq", cell=config.model.cell, encoder_units=layers, decoder_units=layers,
                    graphs=graphs, state=state, source=source, target=target, io=io,
                    max_steps=sides.max_steps, first_input=first_input, task=config.task, parity=parity,
                    versions=versions(opset), data=data_record(config, quality),
                    modes=modes or {"step": {"encoder": "encoder", "decoder": "decoder_step"}},
                    default_mode=default_mode, constants=constants)
