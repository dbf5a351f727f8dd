"""The benchmark runs every engine on the same weights and checks their tokens; evaluate scores every mode."""

import pytest

from seq2seq_edge.bench import bench
from seq2seq_edge.export.evaluate import evaluate_bundle
from seq2seq_edge.runtime.metrics import token_agreement
from seq2seq_edge.runtime import load
from seq2seq_edge.training import TrainConfig
from seq2seq_edge.training.tasks import make_splits

ENGINES = ["keras predict() per step", "keras direct calls", "litert", "tf2onnx graphs, python loop",
           "seq2seq-edge step", "seq2seq-edge fused", "seq2seq-edge fused-int8"]


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_bench_table(trained_dates, monkeypatch):
    import seq2seq_edge.bench.run as bench_run

    timed, time_engine = [], bench_run._time  # what each engine decoded, in the order of the rows
    monkeypatch.setattr(bench_run, "_time", lambda *args: timed.append(time_engine(*args)) or timed[-1])
    lines = []
    rows = bench([str(trained_dates)], [1, 4], budget_s=0.05, print_fn=lines.append)
    assert [(r.batch, r.engine) for r in rows] == [(b, e) for b in (1, 4) for e in ENGINES]
    for r, (_, _, outputs) in zip(rows, timed, strict=True):
        # whole batches, at least one; each row counts its tokens and the step that produced the end token
        assert len(outputs) >= r.batch and len(outputs) % r.batch == 0
        assert r.tokens == sum(len(row) + 1 for row in outputs) and r.us_per_token > 0
        if "int8" not in r.engine:
            assert r.identical, r  # every exact engine decodes exactly what Keras decodes
    for batch in (1, 4):  # each ratio is the row's time over our fastest exact mode's, at the same batch
        group = [r for r in rows if r.batch == batch]
        ours = min(r.us_per_token for r in group if r.engine in ("seq2seq-edge step", "seq2seq-edge fused"))
        litert = next(r.us_per_token for r in group if r.engine == "litert")
        floors = {r.us_per_token / r.vs_floor for r in group}
        assert len({round(f, 9) for f in floors}) == 1  # one floor per model and batch
        for r in group:
            assert r.ratio == pytest.approx(r.us_per_token / ours)
            assert r.vs_litert == pytest.approx(r.us_per_token / litert)
    text = "\n".join(lines)
    assert "| engine" in text and "identical to Keras" in text and "| x LiteRT | x floor |" in text
    for r in rows:  # the printed table shows every measured row
        assert (f"| {r.engine:30} | {r.us_per_token:9.1f} | {1e6 / r.us_per_token:9.0f} | {r.ratio:7.2f} | "
                f"{r.vs_litert:8.2f} | {r.vs_floor:7.2f} |") in text
    assert "runtime peak memory" in text and "floor per token at batch 1" in text and "bundle" in text
    assert "size of each mode alone (export --modes MODE; its encoder and decoder graphs): step " in text


@pytest.mark.slow  # builds and trains the keras-io LSTM 256 (minutes); test_bench_table covers the bench
def test_bench_row_for_the_keras_io_example():
    """The keras-io example's own one-hot/softmax models, brought with export_keras: every mode built from
    them, and every exact engine gives the Keras models' tokens."""
    lines = []
    rows = bench(["keras-io-lstm-256"], [1], budget_s=0.02, print_fn=lines.append)
    assert [r.engine for r in rows] == ENGINES
    assert all(r.identical for r in rows if "int8" not in r.engine)
    assert "keras-io-lstm-256, batch 1" in "\n".join(lines)


@pytest.mark.slow  # exports the tutorial at its own size (256 units, 5,000 words: a minute or more)
def test_bench_row_for_the_nmt_tutorial():
    """TensorFlow's NMT tutorial, exported with export_functions: its own translate loop, LiteRT of the same
    two functions, the plain tf2onnx loop and every mode; the exact ones give the tutorial's tokens."""
    lines = []
    rows = bench(["tf-nmt-tutorial-256"], [1], budget_s=0.02, print_fn=lines.append)
    assert [r.engine for r in rows] == ["keras: tutorial's translate", "litert", "tf2onnx graphs, python loop",
                                        "seq2seq-edge step", "seq2seq-edge fused", "seq2seq-edge fused-int8"]
    assert all(r.identical and r.differing[1] >= 1 for r in rows if "int8" not in r.engine), rows
    assert "tf-nmt-tutorial-256, batch 1" in "\n".join(lines)


def test_evaluate_reports_every_mode(exported_dates):
    result = evaluate_bundle(exported_dates.path)
    assert result["task"] == "dates" and result["samples"] == 75
    assert result["default_mode"] in ("fused", "fused-int8")
    modes = result["modes"]
    assert set(modes) == {"step", "fused", "fused-int8"}
    # Recomputed here from the test split the manifest's data record describes.
    model = load(exported_dates.path)
    record = model.manifest.data
    test = make_splits("dates", TrainConfig(samples=record["samples"], seed=record["seed"])).test
    sources, targets = [s for s, _ in test], [t for _, t in test]
    ids, lengths = model.source_vocab.encode_batch(sources)
    default = model.generate(ids, lengths=lengths, mode=result["default_mode"])
    for mode in model.modes:
        texts = model.generate_text(sources, mode=mode)
        assert modes[mode]["exact_match"] == sum(p == t for p, t in zip(texts, targets)) / len(targets)
        agreement = token_agreement(default, model.generate(ids, lengths=lengths, mode=mode))["token_agreement"]
        assert modes[mode]["token_agreement_with_default"] == pytest.approx(agreement)
    assert result["exact_match"] == modes[result["default_mode"]]["exact_match"]
