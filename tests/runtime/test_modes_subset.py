"""Bundles exported with some decode modes only (`export --modes`): what they run, what they refuse, and
manifests that lie about it. Built here from the committed dates bundle by dropping graphs, as export does."""

import json
from pathlib import Path

import numpy as np
import pytest

from seq2seq_edge.runtime import BundleError, DecodeOptions, InputError, load

from test_hostile_manifests import _edit

TEXTS = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000"]


def _keep(bundle: Path, modes: list[str], default: str, strategies=None) -> Path:
    """Keep ``modes`` in the manifest and delete every graph file no kept mode uses."""
    file = bundle / "manifest.json"
    data = json.loads(file.read_text())
    data["decode"]["modes"] = {m: g for m, g in data["decode"]["modes"].items() if m in modes}
    used = {g for pair in data["decode"]["modes"].values() for g in pair.values()}
    for name in [g for g in data["graphs"] if g not in used]:
        (bundle / data["graphs"].pop(name)["file"]).unlink()
    data["decode"]["default_mode"] = default
    if strategies is not None:
        data["decode"]["strategies"] = strategies
    file.write_text(json.dumps(data))
    return bundle


@pytest.fixture
def int8_only(bundle_copy) -> Path:
    return _keep(bundle_copy, ["fused-int8"], "fused-int8", ["greedy"])


def test_a_bundle_without_the_step_graph_decodes_greedily(int8_only, dates_bundle):
    assert sorted(p.name for p in int8_only.iterdir()) == ["decode_loop_int8.onnx", "encoder_int8.onnx",
                                                           "manifest.json"]
    model, full = load(int8_only), load(dates_bundle)
    assert model.modes == ("fused-int8",) and model.manifest.strategies == ("greedy",)
    assert model.generate_text(TEXTS) == full.generate_text(TEXTS, mode="fused-int8")
    ids, lengths = model.source_vocab.encode_batch(TEXTS)
    for got, want in zip(model.generate(ids, lengths=lengths), full.generate(ids, lengths=lengths,
                                                                               mode="fused-int8")):
        np.testing.assert_array_equal(got, want)
    # encode() still works (the default mode's encoder): its state is the int8 encoder's
    state = model.encode(ids, lengths)
    np.testing.assert_array_equal(state["h0"], full._encode(ids, lengths, "fused-int8")["h0"])


NEEDS_STEP = ("needs the step graph (decoder_step.onnx), and this bundle was exported without it (modes "
              "['fused-int8']: greedy decoding only, with generate or generate_text); export it again with 'step' "
              "among its modes")


@pytest.mark.parametrize("call, what", [
    (lambda m: m.step([1], m.encode(*m.source_vocab.encode_batch(["3 mei"]))), "step()"),
    (lambda m: m.decode_text(["3 mei"]), "decode() (scores, sampling and beam search)"),
    (lambda m: m.generate_text(["3 mei"], options=DecodeOptions("beam", beam_width=3)), "the 'beam' strategy"),
    (lambda m: m.generate_text(["3 mei"], options=DecodeOptions("sample", seed=1)), "the 'sample' strategy"),
    (lambda m: m.stream(m.source_vocab.encode_batch(["3 mei"])[0]), "stream()"),
])
def test_what_needs_the_step_graph_says_so(int8_only, call, what):
    with pytest.raises(InputError) as err:
        call(load(int8_only))
    assert str(err.value) == f"{what} {NEEDS_STEP}"


def test_step_and_fused_without_int8(bundle_copy):
    model = load(_keep(bundle_copy, ["step", "fused"], "fused"))
    assert model.modes == ("step", "fused") and model.manifest.strategies == ("greedy", "sample", "beam")
    assert model.decode_text(["3 mei 1961"], DecodeOptions("beam", beam_width=3))[0][0][0] == "1961-05-03"


@pytest.mark.parametrize("modes, default, strategies, code, field, match", [
    (["fused-int8"], "fused-int8", ["greedy", "beam"], "strategies", "decode.strategies",
     r"decode.strategies \['greedy', 'beam'\] do not match the graphs: without the step graph the bundle runs "
     r"\['greedy'\]"),
    (["step", "fused"], "fused", ["greedy"], "strategies", "decode.strategies",
     r"decode.strategies \['greedy'\] do not match the graphs: with the step graph the bundle runs "
     r"\['greedy', 'sample', 'beam'\]"),
    (["fused-int8"], "fused-int8", ["greedy", "teleport"], "enum", "decode.strategies[1]",
     r"decode.strategies\[1\] must be one of \['greedy', 'sample', 'beam'\], got 'teleport'"),
    (["fused-int8"], "fused-int8", "greedy", "type", "decode.strategies",
     r"decode.strategies must be a list or null, got string 'greedy'"),
    (["fused-int8"], "step", None, "default_mode", "decode.default_mode",
     r"decode.default_mode must be one of \['fused-int8'\], got 'step'"),
    ([], "step", None, "too_few", "decode.modes",
     r"decode.modes needs at least 1 entry, got 0; a bundle needs at least one decode mode"),
])
def test_manifests_that_misstate_the_modes_are_refused(bundle_copy, modes, default, strategies, code, field, match):
    with pytest.raises(BundleError, match=match) as info:
        load(_keep(bundle_copy, modes, default, strategies))
    assert (info.value.code, info.value.field) == (code, field)


def test_a_loop_mode_may_not_run_the_step_graph(bundle_copy):
    step_graph = {"encoder": "encoder", "decoder": "decoder_step"}
    with pytest.raises(BundleError, match=r"decode.modes.fused.decoder names 'decoder_step': only decode mode 'step' "
                                          r"may run graph 'decoder_step'") as info:
        load(_edit(bundle_copy, lambda data: data["decode"]["modes"].update(fused=step_graph)))
    assert (info.value.code, info.value.field) == ("mode_graph", "decode.modes.fused.decoder")


def test_a_step_mode_without_its_graph_is_refused(bundle_copy):
    with pytest.raises(BundleError, match=r"decode.modes.step.decoder names graph 'decoder_step', which is not "
                                          r"in") as info:
        load(_edit(bundle_copy, lambda data: data["graphs"].pop("decoder_step")))
    assert (info.value.code, info.value.field) == ("mode_graph", "decode.modes.step.decoder")


def test_a_trimmed_bundle_still_checks_its_loop_against_the_state(int8_only):
    """Without decoder_step, the loop graph carries the state contract: a manifest that leaves a state out
    is refused by the loop's check (nothing else reads c0 here)."""
    def drop_c0(data):
        data["state"] = [s for s in data["state"] if s["name"] != "c0"]

    with pytest.raises(BundleError, match=r"^decode_loop_int8.onnx \(mode 'fused-int8'\): inputs \['c0', "):
        load(_edit(int8_only, drop_c0))


def test_a_manifest_from_before_strategies_were_recorded_runs_every_strategy(bundle_copy):
    model = load(_edit(bundle_copy, lambda data: data["decode"].pop("strategies")))
    assert model.manifest.strategies == ("greedy", "sample", "beam")
