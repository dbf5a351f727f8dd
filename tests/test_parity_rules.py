"""The rules export decides by, on synthetic reports: when parity is ok, and which mode is the default."""

import pytest

from seq2seq_edge.export.parity import DECODE_TOLERANCE, STEP_TOLERANCE, ParityReport, default_mode

MODES = {"step": {}, "fused": {}, "fused-int8": {}}


def tokens_report(step=True, fused=True, int8=True, step_error=1e-6) -> ParityReport:
    modes = {"step": {"tokens_identical": step}, "fused": {"tokens_identical": fused},
             "fused-int8": {"tokens_identical": int8}}
    return ParityReport(8, 5, 1e-6, step_error, 1e-6, STEP_TOLERANCE, tokens_identical=step,
                        sequences_differing=0 if step else 1, modes=modes)


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
    (features_report(int8=DECODE_TOLERANCE), MODES, "fused-int8"),
    (features_report(), MODES, "fused"),
])
def test_default_mode_is_the_fastest_exact_one(report, modes, want):
    assert default_mode(report, modes) == want


def test_summary_names_every_number():
    text = tokens_report(int8=False).summary()
    assert text.startswith("8 held-out samples, 5 steps: encoder state 1.00e-06")
    assert "greedy tokens identical: True" in text and "fused-int8: tokens_identical False" in text
    assert "whole decode 1.00e-05 (tolerance 0.001)" in features_report().summary()
