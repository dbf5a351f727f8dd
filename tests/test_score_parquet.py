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
