"""How a brought encoder's outputs start a brought decoder's states (state_map, zero_states), and the checks
that the two models are the functional inference models export_keras takes (see byo.py)."""

from __future__ import annotations

from typing import Sequence

from .convert import ExportError

__all__ = ["encoder_feeds", "memory_output", "check_models"]

RECIPE = "https://keras.io/examples/nlp/lstm_seq2seq/ (its 'Run inference (sampling)' part)"
EXPECTED = {"encoder_model": "source -> states: Model(encoder_inputs, encoder_states)",
            "decoder_model": "[step input] + states -> [output] + states: "
                             "Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states)"}


def check_models(**models) -> None:
    """Each of ``models`` (by argument name) is a functional keras.Model of the kind export_keras takes."""
    for arg, model in models.items():
        inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
        if not inputs or not outputs:
            raise ExportError(f"{arg}: {type(model).__name__} is not a functional keras.Model (it has no .inputs and "
                              ".outputs graph: a subclassed Model or Layer). Export subclassed models with "
                              "seq2seq_edge.export.functions.export_functions(encode, step, ...), which traces your "
                              "own encode and step functions")
        if len(inputs) == 2 and len(outputs) == 1:
            raise ExportError(f"{arg}: {model.name!r} takes 2 inputs and returns 1 output, like the training model "
                              "Model([encoder_inputs, decoder_inputs], decoder_outputs); export_keras takes the two "
                              f"inference models built from its layers: encoder_model: {EXPECTED['encoder_model']}; "
                              f"decoder_model: {EXPECTED['decoder_model']}. See {RECIPE}")
        if arg == "encoder_model" and len(inputs) != 1:
            raise ExportError(f"encoder_model: {model.name!r} takes {len(inputs)} inputs; it takes one, the source "
                              f"({EXPECTED['encoder_model']})")


def memory_output(encoder_model) -> int | None:
    """The index of the encoder's sequence output (batch, time, units), for attention; None without one."""
    seqs = [i for i, t in enumerate(encoder_model.outputs) if len(t.shape) == 3]
    if len(seqs) > 1:
        raise ExportError(f"encoder_model returns {len(seqs)} sequences (batch, time, units); an attention encoder "
                          "returns one (the memory the decoder attends over) besides its final states")
    return seqs[0] if seqs else None


def encoder_feeds(encoder_model, contract, state_map=None,
                  zero_states: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Which of our state names each encoder state output feeds, in the encoder's output order (the
    sequence output of an attention encoder is left out); one output may feed several states.

    ``state_map``: a list (per encoder state output, a decoder state input name or a list of them) or a dict
    {encoder output index or name: decoder input name or list of names}. ``zero_states``: decoder state
    inputs that start at zero. Every decoder state is either fed or declared zero: an undeclared one is refused.
    """
    skip = memory_output(encoder_model)
    index = [i for i in range(len(encoder_model.outputs)) if i != skip]
    outputs = [encoder_model.outputs[i] for i in index]
    by_input_name = {s.input_name: s for s in contract.slots}
    zero = _names(zero_states or [], by_input_name, "zero_states")
    if state_map is None:
        open_slots = [s for s in contract.slots if s.input_name not in zero]
        if len(outputs) > len(open_slots):
            raise ExportError(f"encoder_model returns {len(outputs)} state tensors but decoder_model takes only "
                              f"{len(open_slots)} state inputs{' besides zero_states' if zero else ''}")
        if len(outputs) < len(open_slots):
            _refuse_uncovered(outputs, index, [(s,) for s in open_slots[:len(outputs)]], open_slots[len(outputs):])
        groups = [(slot,) for slot in open_slots]  # equal counts: in order, as the layers stack
    else:
        groups = _mapped(state_map, encoder_model, index, by_input_name)
        fed = [s.input_name for g in groups for s in g]
        both = sorted(set(fed) & zero)
        if both:
            raise ExportError(f"{both} are both in state_map and in zero_states; each decoder state starts one way")
        uncovered = [s for s in contract.slots if s.input_name not in fed and s.input_name not in zero]
        if uncovered:
            _refuse_uncovered(outputs, index, groups, uncovered)
    for tensor, group in zip(outputs, groups):
        for slot in group:
            if tensor.shape[-1] != slot.size or len(tensor.shape) != 2:
                raise ExportError(f"encoder output {tensor.name!r} has shape {tuple(tensor.shape)} but feeds decoder "
                                  f"state input {slot.input_name!r} of size {slot.size}")
    return [tuple(slot.name for slot in group) for group in groups]


def _names(names, by_input_name: dict, what: str) -> set[str]:
    """``names`` (decoder state input names) checked against the decoder's state inputs."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in by_input_name]
    if unknown:
        raise ExportError(f"{what}: {unknown} are not decoder state inputs; they are {sorted(by_input_name)}")
    return set(names)


def _mapped(state_map, encoder_model, index: list[int], by_input_name: dict) -> list[tuple]:
    """state_map (list or dict form) as one tuple of slots per encoder state output."""
    if isinstance(state_map, dict):
        names = {t.name: i for i, t in enumerate(encoder_model.outputs)}
        per_output: dict[int, object] = {}
        for key, value in state_map.items():
            i = names.get(key, key if isinstance(key, int) else None)
            if i not in index:
                raise ExportError(f"state_map: {key!r} is not one of encoder_model's state outputs; give their "
                                  f"index ({index}) or name ({[encoder_model.outputs[j].name for j in index]})")
            per_output[i] = value
        unused = [i for i in index if i not in per_output]
        if unused:
            raise ExportError(f"state_map: encoder outputs {unused} feed no decoder state; map every encoder "
                              "output (or return only the states the decoder uses)")
        entries = [per_output[i] for i in index]
    else:
        entries = list(state_map)
        if len(entries) != len(index):
            raise ExportError(f"state_map names {len(entries)} decoder inputs for {len(index)} encoder outputs")
    named = [[entry] if isinstance(entry, str) else list(entry) for entry in entries]
    seen = [n for names in named for n in names]
    unknown = [n for n in seen if n not in by_input_name]
    if unknown:
        raise ExportError(f"state_map: {unknown} are not decoder state inputs; they are {sorted(by_input_name)}")
    groups = [tuple(by_input_name[n] for n in names) for names in named]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise ExportError(f"state_map: {twice} are fed by more than one encoder output")
    return groups


def _refuse_uncovered(outputs, index: list[int], fed: list, uncovered: list) -> None:
    """Refuse a wiring that leaves decoder states without a source, showing both ways to declare them."""
    suggestion = {i: [s.input_name for s in group] for i, group in zip(index, fed)}
    for slot in uncovered:  # suggest the encoder output that feeds a state of the same kind and size
        i = next((i for i, g in zip(index, fed) if g[0].kind == slot.kind and g[0].size == slot.size), None)
        if i is not None:
            suggestion[i].append(slot.input_name)
    shown = "{" + ", ".join(f"{i}: {names}" for i, names in suggestion.items()) + "}"
    names = [s.input_name for s in uncovered]
    raise ExportError(f"decoder_model state inputs {names} get no encoder output (encoder_model returns "
                      f"{len(outputs)} state tensors) and nothing says they start at zero. Say how your decode loop "
                      f"starts them: state_map={shown} feeds one encoder output (by index or name) to several "
                      f"decoder states, or zero_states={names} starts them at zero")
