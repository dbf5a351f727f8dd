"""`score --engine ray` and scale.score_dataset on a real local Ray (2 CPUs, started here): the same rows
as the local engine, a worker killed mid-job retried by Ray, a user's own Dataset scored in place."""

import json

import pytest
import ray

from seq2seq_edge.runtime import DecodeOptions, load
from seq2seq_edge.scale import score_dataset, score_file
from seq2seq_edge.scale.ray_engine import DIE_ONCE


TEXTS = ["3 mei 1961", "July 14, 2023", "", "x\u2603", "1 gennaio 2000", "Sunday, 31 December 2049"] * 30


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray with 2 CPUs whose workers die once: the first actor to score a batch exits."""
    marker = tmp_path_factory.mktemp("ray") / "died"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {DIE_ONCE: str(marker)}})
    yield marker
    ray.shutdown()


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_killed_worker_is_retried_and_every_row_comes_back_once(local_ray, dates_bundle, tmp_path):
    assert not local_ray.exists()  # no actor has died yet: the one that dies, dies in this job
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    summary = score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "ray.jsonl", engine="ray", workers=2,
                         batch_size=16, mode="fused")
    assert local_ray.exists()  # an actor died mid-job
    score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "local.jsonl", workers=2, batch_size=16, mode="fused")
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    rows = _rows(tmp_path / "ray.jsonl")
    assert [r["id"] for r in rows] == list(range(len(TEXTS))) and summary.errors == 60
    assert rows[2]["error"] == "empty source" and rows[0]["output"] == "1961-05-03"


def test_beam_search_on_ray_matches_the_local_engine(local_ray, dates_bundle, tmp_path):
    (tmp_path / "in.csv").write_text("source\n" + "".join(f"\"{t}\"\n" for t in TEXTS[:12]), encoding="utf-8")
    options = DecodeOptions("beam", beam_width=3)
    score_file(dates_bundle, tmp_path / "in.csv", tmp_path / "ray.jsonl", engine="ray", workers=2, options=options)
    score_file(dates_bundle, tmp_path / "in.csv", tmp_path / "local.jsonl", options=options)
    ray_rows, local_rows = _rows(tmp_path / "ray.jsonl"), _rows(tmp_path / "local.jsonl")
    assert [r["output"] for r in ray_rows] == [r["output"] for r in local_rows]
    assert [r["log_prob"] for r in ray_rows] == pytest.approx([r["log_prob"] for r in local_rows])


def test_score_dataset_keeps_the_users_columns(local_ray, dates_bundle):
    ds = ray.data.from_items([{"key": f"k{i}", "date": t} for i, t in enumerate(TEXTS[:6])])
    rows = score_dataset(ds, dates_bundle, column="date", mode="fused", concurrency=2).take_all()
    rows.sort(key=lambda r: r["key"])
    want = load(dates_bundle).generate_text([TEXTS[i] for i in (0, 1, 4, 5)], mode="fused")
    assert [r["output"] for r in rows if r["error"] is None] == want
    assert [r["key"] for r in rows] == [f"k{i}" for i in range(6)] and rows[2]["error"] == "empty source"


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_the_default_int8_mode_writes_on_ray_what_local_workers_write(local_ray, dates_bundle, tmp_path):
    """fused-int8 (the bundle's default) on 300 rows, golden dates among random strings of the bundle's own
    symbols: Ray with 2 actors in batches of 16 writes the bytes that one local worker writes in one batch
    (int8 scales are fixed at export, so no row's answer depends on the rows batched with it)."""
    import numpy as np

    model = load(dates_bundle)
    assert model.manifest.default_mode == "fused-int8"
    rng = np.random.default_rng(5)
    symbols = [s for s in model.source_vocab.tokens if len(s) == 1 and s.isprintable() and not s.isspace()]
    texts = TEXTS[:2] + ["".join(rng.choice(symbols, rng.integers(1, 25))) for _ in range(298)]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "ray.jsonl", engine="ray", workers=2, batch_size=16)
    score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "local.jsonl", workers=1, batch_size=300)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert [r["output"] for r in _rows(tmp_path / "ray.jsonl")[:2]] == ["1961-05-03", "2023-07-14"]


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_a_worker_that_fails_is_one_line_from_the_cli(bundle_copy, tmp_path):
    """Issue 31, item 1: a worker's failure printed 75 lines of Ray's logging and stack. A bundle whose step
    graph fails while decoding is now the runtime's own one-line error, and nothing is written."""
    import subprocess
    import sys

    from test_hostile_bundles import _step_logits_widened

    _step_logits_widened(bundle_copy)
    (tmp_path / "in.txt").write_text("3 mei 1961\n1 May 2000\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "seq2seq_edge", "score", str(bundle_copy), "--input", "in.txt",
                             "--output", "out.jsonl", "--engine", "ray", "--workers", "1", "--strategy", "beam"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == ("error: decoder_step.onnx: the graph's 'logits' came back with shape (8, 16), not (8, 15) "
                             "(a row per input, a value per target token); the bundle is corrupt or was altered: "
                             "export it again\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "in.txt"]
