"""`score` with Parquet in and out (pyarrow, the [scale] extra): the same rows as JSON Lines."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from seq2seq_edge.scale import score_file

TEXTS = ["3 mei 1961", "", "July 14, 2023", "x\u2603", "1 gennaio 2000"]


def test_parquet_in_and_out_match_json_lines(dates_bundle, tmp_path):
    pq.write_table(pa.table({"id_in_my_lake": list(range(5)), "date": TEXTS}), tmp_path / "in.parquet")
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    summary = score_file(dates_bundle, tmp_path / "in.parquet", tmp_path / "out.parquet", column="date",
                         mode="fused")
    score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "out.jsonl", mode="fused")
    got = pq.read_table(tmp_path / "out.parquet").to_pylist()
    want = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == want and summary.rows == 5 and summary.errors == 2
    assert pq.read_schema(tmp_path / "out.parquet").names == ["id", "source", "output", "log_prob", "error"]


def test_autoencoder_windows_from_a_parquet_list_column(ae_bundle, tmp_path):
    import numpy as np

    from seq2seq_edge.runtime import load

    model = load(ae_bundle)
    shape = (model.window, model.manifest.source.features)
    windows = np.random.default_rng(1).normal(size=(4,) + shape).astype(np.float32)
    column = [w.tolist() for w in windows] + [windows[0][:-1].tolist()]  # the last one is a step short
    pq.write_table(pa.table({"window": column}), tmp_path / "w.parquet")
    score_file(ae_bundle, tmp_path / "w.parquet", tmp_path / "out.parquet", column="window")
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["score"] for r in rows[:4]] == [float(v) for v in model.score(windows)]
    assert rows[4]["error"] == f"a window has shape {shape} (window, features); this one {(shape[0] - 1, shape[1])}"
    assert pq.read_schema(tmp_path / "out.parquet").names == ["id", "score", "anomalous", "error"]
