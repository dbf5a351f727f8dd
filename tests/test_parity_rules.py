"""The rules export decides by, on synthetic reports: when parity is ok, and which mode is the default."""

import numpy as np
import pytest

from seq2seq_edge.export.parity import (DECODE_TOLERANCE, STEP_TOLERANCE, ParityReport, default_mode, int8_verdict,
                                        near_ties)

MODES = {"step": {}, "fused": {}, "fused-int8": {}}


def tokens_report(step=True, fused=True, int8=True, step_error=1e-6, int8_agreement=None, int8_exact=0.75,
                  reference=None) -> ParityReport:
    """``int8``: identical to Keras; else one sequence differs, with ``int8_agreement`` of its tokens (default
    0.99: too few for the int8 rule)."""
    modes = {mode: {"tokens_identical": same, "sequences_differing": 0 if same else 1, "near_ties": 0,
                    "token_agreement": 1.0 if same else 0.99}
             for mode, same in (("step", step), ("fused", fused), ("fused-int8", int8))}
    if int8_agreement is not None:
        modes["fused-int8"]["token_agreement"] = int8_agreement
    if reference is not None:
        modes["fused-int8"]["exact_match"] = int8_exact
    return ParityReport(8, 5, 1e-6, step_error, 1e-6, STEP_TOLERANCE, tokens_identical=step,
                        sequences_differing=0 if step else 1, modes=modes, data="held-out samples",
                        reference=reference or {})


def features_report(step=1e-5, fused=1e-5, int8=0.5) -> ParityReport:
    modes = {"step": {"max_abs_decode": step}, "fused": {"max_abs_decode": fused},
             "fused-int8": {"max_abs_decode": int8}}
    return ParityReport(8, 20, 1e-6, 1e-6, 1e-6, STEP_TOLERANCE, decode_tolerance=DECODE_TOLERANCE,
                        max_abs_decode=step, modes=modes)


def test_token_reports():
    assert tokens_report().ok
    assert tokens_report(int8=False).ok  # int8 modes are measured, not gated
    assert not tokens_report(step=False).ok
    assert not tokens_report(fused=False).ok
    assert not tokens_report(step_error=STEP_TOLERANCE * 1.01).ok
    assert tokens_report(step_error=STEP_TOLERANCE).ok


def test_feature_reports():
    assert features_report().ok
    assert not features_report(step=DECODE_TOLERANCE * 1.01).ok
    assert not features_report(fused=DECODE_TOLERANCE * 1.01).ok
    assert features_report(step=DECODE_TOLERANCE, fused=DECODE_TOLERANCE).ok


@pytest.mark.parametrize("report, modes, want", [
    (tokens_report(), MODES, "fused-int8"),
    (tokens_report(int8=False), MODES, "fused"),
    (tokens_report(), {"step": {}}, "step"),
    (tokens_report(fused=False, int8=False), MODES, "step"),
    # The int8 rule: >= 99.9% of tokens agree with fp32 and the sequence metrics are unchanged
    (tokens_report(int8=False, int8_agreement=0.999), MODES, "fused-int8"),
    (tokens_report(int8=False, int8_agreement=0.9989), MODES, "fused"),
    (tokens_report(int8=False, int8_agreement=0.9995, reference={"exact_match": 0.75}), MODES, "fused-int8"),
    (tokens_report(int8=False, int8_agreement=0.9995, reference={"exact_match": 0.875}), MODES, "fused"),
    (features_report(int8=DECODE_TOLERANCE), MODES, "fused-int8"),
    (features_report(), MODES, "fused"),
])
def test_default_mode_is_the_fastest_exact_one(report, modes, want):
    assert default_mode(report, modes) == want


def test_int8_verdict_says_why_and_is_recorded():
    low = tokens_report(int8=False, int8_agreement=0.998)
    assert int8_verdict(low)["why"] == "99.80% of its tokens agree with fp32, under 99.9%"
    changed = tokens_report(int8=False, int8_agreement=1.0, int8_exact=0.5, reference={"exact_match": 0.75})
    verdict = int8_verdict(changed)
    assert not verdict["eligible"] and verdict["why"] == "exact_match 0.75 with fp32 but 0.5 with int8"
    assert verdict["metrics"] == {"exact_match": {"fp32": 0.75, "int8": 0.5}}
    assert changed.to_dict()["int8_default"] == verdict  # what the manifest's parity record holds
    assert "; int8 may not be the default (exact_match 0.75 with fp32 but 0.5 with int8)" in changed.summary()
    kept = tokens_report(int8=False, int8_agreement=0.9995, reference={"exact_match": 0.75})
    assert int8_verdict(kept)["why"] == "99.95% of its tokens agree with fp32, exact_match unchanged"
    assert int8_verdict(features_report()) is None  # real-valued: the decode tolerance decides


def test_summary_names_every_number():
    text = tokens_report(int8=False).summary()
    assert text.startswith("8 held-out samples, 5 steps: encoder state 1.00e-06")
    assert "greedy tokens identical: True" in text and "fused-int8: tokens_identical False" in text
    assert "whole decode 1.00e-05 (tolerance 0.001)" in features_report().summary()


def test_step_outputs_are_compared_relative_to_their_size():
    """Log-probabilities of rare tokens reach -70: float32 rounding there is ~1e-5 absolute, not an error."""
    from seq2seq_edge.export.parity import _lockstep

    class Engine:
        def __init__(self, scale: float):
            self.scale = scale

        def step(self, x, state):
            logits = np.array([[-69.0, -0.01, -12.0]]) * self.scale
            return logits, state

    state = {"h0": np.zeros((1, 2))}
    _, out = _lockstep(Engine(1.0), Engine(1 + 2e-6), state, np.zeros(1, np.int32), 3, lambda y: y.argmax(-1))
    assert out == pytest.approx(69 * 2e-6 / 70, rel=1e-6)  # 1.4e-4 absolute, 2e-6 relative


class TiedKeras:
    """A fake Keras reference whose step after token 5 has two tokens within ``gap`` of each other."""

    def __init__(self, gap: float):
        self.gap = gap

    def encode(self, ids):
        return {"h0": np.zeros((1, 1))}

    def step(self, x, state):
        logits = np.full((1, 8), -20.0)
        if int(x[0]) == 5:
            logits[0, 2], logits[0, 3] = 0.0, -self.gap  # Keras picks 2; 3 is a near-tie
        else:
            logits[0, 5] = 0.0
        return logits, state


@pytest.mark.parametrize("gap, ties", [(1e-6, 1), (1e-2, 0)])
def test_near_ties_are_told_apart_from_real_differences(gap, ties):
    ids, lengths = np.zeros((2, 3), np.int32), np.array([3, 3])
    want, got = [[5, 2], [5, 5]], [[5, 3], [5, 5]]  # row 0 differs at its second token
    assert near_ties(TiedKeras(gap), ids, lengths, want, got, start_id=1) == ties


def test_differences_at_near_ties_do_not_fail_parity():
    modes = tokens_report(step=False, fused=False, int8=False).modes
    modes = {**modes, "step": {**modes["step"], "near_ties": 1}, "fused": {**modes["fused"], "near_ties": 1}}
    tied = ParityReport(8, 5, 1e-6, 1e-6, 1e-6, STEP_TOLERANCE, tokens_identical=False, sequences_differing=1,
                        near_ties=1, modes=modes)
    assert tied.ok and default_mode(tied, MODES) == "fused"
    assert "first differ at near-ties of Keras's top 2" in tied.summary()
    real = ParityReport(8, 5, 1e-6, 1e-6, 1e-6, STEP_TOLERANCE, tokens_identical=False, sequences_differing=2,
                        near_ties=1, modes=tied.modes)
    assert not real.ok


def test_keeping_only_an_int8_mode_that_failed_its_rule_is_refused(tmp_path):
    """--modes fused-int8 when int8 may not be the default: nothing could be, so export refuses and says how."""
    from seq2seq_edge.export.convert import ExportError
    from seq2seq_edge.export.writing import _keep_modes

    graphs = {name: {"file": f"{name}.onnx"} for name in ("encoder", "decoder_step", "encoder_int8",
                                                          "decode_loop_int8")}
    for g in graphs.values():
        (tmp_path / g["file"]).write_bytes(b"x")
    data = {"graphs": graphs, "decode": {"modes": {
        "step": {"encoder": "encoder", "decoder": "decoder_step"},
        "fused-int8": {"encoder": "encoder_int8", "decoder": "decode_loop_int8"}}}}
    failing = tokens_report(int8=False, int8_agreement=0.99)
    with pytest.raises(ExportError, match=r"modes \['fused-int8'\]: the int8 mode did not pass its rule to be a "
                                          r"default \(99.00% of its tokens agree with fp32, under 99.9%\); keep an "
                                          r"fp32 mode beside it, e.g. modes=\['fused', 'fused-int8'\]"):
        _keep_modes(tmp_path, data, ("fused-int8",), failing)
    _keep_modes(tmp_path, data, ("fused-int8",), tokens_report(int8=False, int8_agreement=0.9995))
    assert data["decode"]["default_mode"] == "fused-int8" and data["decode"]["strategies"] == ["greedy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decode_loop_int8.onnx", "encoder_int8.onnx"]


def test_percentages_round_down_so_a_miss_never_reads_as_the_bound():
    assert int8_verdict(tokens_report(int8=False, int8_agreement=0.99895))["why"] == (
        "99.89% of its tokens agree with fp32, under 99.9%")
