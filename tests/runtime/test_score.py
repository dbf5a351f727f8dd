"""`seq2seq-edge score` / scale.score_file with the local engine, on the committed dates bundle (no
TensorFlow): every row once, in order, bad rows marked, worker counts and strategies, safe writes."""

import json

import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import DecodeOptions, InputError, load
from seq2seq_edge.scale import score_file
from seq2seq_edge.runtime.fsutil import OutputExistsError

TEXTS = ["3 mei 1961", "July 14, 2023", "1 gennaio 2000", "Sunday, 31 December 2049", "14. Juli 2023"]


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def text_input(tmp_path):
    lines = TEXTS[:2] + [""] + ["3 mei 1961 \u2603"] + TEXTS[2:] * 20  # a blank line, an unknown symbol
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def test_every_row_once_in_order_with_bad_rows_marked(dates, dates_bundle, text_input, tmp_path):
    path, lines = text_input
    summary = score_file(dates_bundle, path, tmp_path / "out.jsonl", batch_size=7)
    rows = _rows(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == list(range(len(lines)))
    assert summary.rows == len(lines) and summary.errors == 2
    good = [i for i, t in enumerate(lines) if i not in (2, 3)]
    want = dates.generate_text([lines[i] for i in good])
    assert [rows[i]["output"] for i in good] == want
    assert all(rows[i]["error"] is None and rows[i]["log_prob"] is None for i in good)  # greedy: no score
    assert rows[2] == {"id": 2, "source": "", "output": None, "log_prob": None, "error": "empty source"}
    assert rows[3]["output"] is None and rows[3]["error"].startswith("'\u2603' at position 11 of ")
    assert str(summary).startswith(f"scored {len(lines)} rows (2 with an error) in ")


def test_two_workers_write_what_one_writes(dates_bundle, text_input, tmp_path):
    path, _ = text_input
    score_file(dates_bundle, path, tmp_path / "one.jsonl", batch_size=16, workers=1, mode="fused")
    score_file(dates_bundle, path, tmp_path / "two.jsonl", batch_size=16, workers=2, mode="fused")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_beam_search_gives_log_probabilities(dates, dates_bundle, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("date,other\n" + "".join(f"\"{t}\",x\n" for t in TEXTS), encoding="utf-8")
    options = DecodeOptions("beam", beam_width=3)
    score_file(dates_bundle, path, tmp_path / "out.jsonl", column="date", options=options)
    rows = _rows(tmp_path / "out.jsonl")
    want = dates.decode_text(TEXTS, options)
    assert [(r["source"], r["output"]) for r in rows] == [(t, w[0][0]) for t, w in zip(TEXTS, want)]
    assert [r["log_prob"] for r in rows] == pytest.approx([w[0][1] for w in want])


def test_json_lines_with_a_broken_line(dates_bundle, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"source": "3 mei 1961"}\n{broken\n{"text": "x"}\n{"source": "1 May 2000"}\n', encoding="utf-8")
    score_file(dates_bundle, path, tmp_path / "out.jsonl")
    rows = _rows(tmp_path / "out.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, None, "2000-05-01"]
    assert rows[1]["error"].startswith("line 2 is not JSON") and rows[1]["source"] is None
    assert rows[2]["error"] == "line 3 has no field 'source'"


def test_outputs_are_never_lost_or_left_half_written(dates_bundle, text_input, tmp_path, monkeypatch):
    path, _ = text_input
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(OutputExistsError, match="already exists; choose another path or pass --force"):
        score_file(dates_bundle, path, out)
    import seq2seq_edge.scale.scorer as scorer

    calls = []
    real = scorer.Scorer.__call__

    def fail_second(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job stopped half way
        return real(self, batch)

    monkeypatch.setattr(scorer.Scorer, "__call__", fail_second)
    with pytest.raises(KeyboardInterrupt):
        score_file(dates_bundle, path, out, batch_size=4, force=True)
    assert out.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(input="in.tsv"), r"the input format is chosen by its extension, one of \['.csv', '.jsonl', '.npy', "
                           r"'.parquet', '.txt'\]; got '.tsv'"),
    (dict(output="out.csv"), r"the output format is chosen by its extension, one of \['.jsonl', '.parquet'\]"),
    (dict(input="missing.txt"), r"missing.txt: no such file"),
    (dict(workers=0), r"workers must be a positive integer, got 0"),
    (dict(mode="turbo"), r"mode must be one of \['step', 'fused', 'fused-int8'\] for this bundle, got 'turbo'"),
    (dict(input="in.csv", column="date"), r"no column 'date' \(columns: \['source'\]\); pick one with --column"),
])
def test_refusals(dates_bundle, tmp_path, kwargs, message):
    (tmp_path / "in.txt").write_text("3 mei 1961\n")
    (tmp_path / "in.tsv").write_text("3 mei 1961\n")
    (tmp_path / "in.csv").write_text("source\n3 mei 1961\n")
    args = {"input": "in.txt", "output": "out.jsonl", **kwargs}
    with pytest.raises(InputError, match=message):
        score_file(dates_bundle, tmp_path / args.pop("input"), tmp_path / args.pop("output"), **args)
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.csv").exists()


def test_cli(dates_bundle, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("3 mei 1961\n\nJuly 14, 2023\n")
    assert main(["score", str(dates_bundle), "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "out.jsonl"), "--workers", "2", "--strategy", "beam", "--beam-width", "2"]) == 0
    assert capsys.readouterr().out.startswith("scored 3 rows (1 with an error) in ")
    assert [r["output"] for r in _rows(tmp_path / "out.jsonl")] == ["1961-05-03", None, "2023-07-14"]
    written = (tmp_path / "out.jsonl").read_bytes()
    bundle = {f.name: f.read_bytes() for f in dates_bundle.iterdir()}
    assert main(["score", str(dates_bundle), "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "out.jsonl")]) == 1
    assert "already exists; choose another path or pass --force" in capsys.readouterr().err
    assert (tmp_path / "out.jsonl").read_bytes() == written  # the refused run kept the first one's output
    assert {f.name: f.read_bytes() for f in dates_bundle.iterdir()} == bundle  # and the bundle is untouched


def test_autoencoder_windows_from_npy(ae_bundle, tmp_path):
    """Autoencoder bundles: each window's score and flag, as AutoencoderModel.score/detect give them; a
    window with NaN gets an error."""
    import numpy as np

    model = load(ae_bundle)
    shape = (model.window, model.manifest.source.features)
    windows = np.random.default_rng(0).normal(size=(9,) + shape).astype(np.float32)
    windows[4, 3, 0] = np.nan
    np.save(tmp_path / "w.npy", windows)
    summary = score_file(ae_bundle, tmp_path / "w.npy", tmp_path / "out.jsonl", batch_size=4, workers=2)
    rows = _rows(tmp_path / "out.jsonl")
    good = [i for i in range(9) if i != 4]
    assert [r["id"] for r in rows] == list(range(9)) and summary.errors == 1
    assert rows[4] == {"id": 4, "score": None, "anomalous": None, "error": "the window holds NaN or infinite values"}
    assert [rows[i]["score"] for i in good] == pytest.approx(model.score(windows[good]).tolist(), rel=1e-5)
    assert [rows[i]["anomalous"] for i in good] == model.detect(windows[good]).tolist()
    with pytest.raises(InputError, match=r"an autoencoder bundle: it scores windows, with no decode mode"):
        score_file(ae_bundle, tmp_path / "w.npy", tmp_path / "x.jsonl", mode="fused")


def test_hostile_rows_are_error_rows_not_a_stopped_job(dates_bundle, tmp_path):
    """A lone surrogate, nesting past Python's stack, a 5,000-digit number, a number for a source: each is
    one row with an error; the other rows are decoded, and the output stays valid UTF-8 JSON."""
    lines = ['{"source": "3 mei 1961"}', '{"source": "\\ud800"}', '{"source": ' + "[" * 100000 + "]" * 100000 + "}",
             '{"source": ' + "9" * 5000 + "}", '{"source": 42}', '{"source": "1 May 2000"}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = score_file(dates_bundle, tmp_path / "in.jsonl", tmp_path / "out.jsonl")
    rows = _rows(tmp_path / "out.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, None, None, None, "2000-05-01"] and summary.errors == 4
    assert rows[1]["error"] == "not valid Unicode (a lone surrogate); it cannot be decoded or written back"
    assert rows[1]["source"] is None
    assert rows[2]["error"] == "line 3 is not readable JSON (RecursionError)"
    assert rows[3]["error"] == "line 4 is not readable JSON (ValueError)"
    assert rows[4] == {"id": 4, "source": None, "output": None, "log_prob": None, "error": "not a text: int"}


def test_a_byte_order_mark_and_a_lone_carriage_return_are_not_rows(dates_bundle, tmp_path):
    (tmp_path / "in.csv").write_bytes("\ufeffsource\n3 mei 1961\n".encode("utf-8"))
    (tmp_path / "in.txt").write_bytes("\ufeff3 mei 1961\nJuly 14,\r 2023\n1 May 2000\n".encode("utf-8"))
    score_file(dates_bundle, tmp_path / "in.csv", tmp_path / "csv.jsonl")
    score_file(dates_bundle, tmp_path / "in.txt", tmp_path / "txt.jsonl")
    assert [r["output"] for r in _rows(tmp_path / "csv.jsonl")] == ["1961-05-03"]
    rows = _rows(tmp_path / "txt.jsonl")
    assert [r["id"] for r in rows] == [0, 1, 2] and rows[0]["source"] == "3 mei 1961"
    assert rows[1]["source"] == "July 14,\r 2023" and rows[2]["output"] == "2000-05-01"
