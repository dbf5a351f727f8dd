"""The benchmark runs every engine on the same weights and checks their tokens; evaluate scores every mode."""

from seq2seq_edge.cli.bench import bench
from seq2seq_edge.cli.evaluate import evaluate_bundle

ENGINES = ["keras predict() per step", "keras direct calls", "litert", "tf2onnx graphs, python loop",
           "seq2seq-edge step", "seq2seq-edge fused", "seq2seq-edge fused-int8"]


def test_bench_table(trained_dates):
    lines = []
    rows = bench([str(trained_dates)], [1, 4], budget_s=0.05, print_fn=lines.append)
    assert [(r.batch, r.engine) for r in rows] == [(b, e) for b in (1, 4) for e in ENGINES]
    for r in rows:
        assert r.us_per_token > 0 and r.tokens > 0
        if "int8" not in r.engine:
            assert r.identical, r  # every exact engine decodes exactly what Keras decodes
    exact_ours = [r for r in rows if r.engine in ("seq2seq-edge step", "seq2seq-edge fused")]
    assert min(r.ratio for r in exact_ours if r.batch == 1) == 1.0
    text = "\n".join(lines)
    assert "| engine" in text and "identical to Keras" in text
    assert "runtime peak memory" in text and "floor per token at batch 1" in text and "bundle" in text


def test_evaluate_reports_every_mode(exported_dates):
    result = evaluate_bundle(exported_dates.path)
    assert result["task"] == "dates" and result["samples"] == 75
    assert result["default_mode"] in ("fused", "fused-int8")
    modes = result["modes"]
    assert set(modes) == {"step", "fused", "fused-int8"}
    assert modes["step"]["exact_match"] == modes["fused"]["exact_match"] == result["exact_match"]
    assert modes[result["default_mode"]]["token_agreement_with_default"] == 1.0
    assert 0.0 <= modes["fused-int8"]["token_agreement_with_default"] <= 1.0
