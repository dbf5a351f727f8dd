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
    with pytest.raises(KeyboardInterrupt, match=r"^interrupted: 4 rows are kept in .*out.jsonl.partial; run the same "
                                                r"command with --resume \(resume=True\) to continue from there$"):
        score_file(dates_bundle, path, out, batch_size=4, force=True)
    assert out.read_text() == "keep me\n"  # the old output stays until the new one is complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl", "out.jsonl.partial",
                                                          "out.jsonl.partial.json"]
    monkeypatch.setattr(scorer.Scorer, "__call__", real)
    summary = score_file(dates_bundle, path, out, batch_size=4, force=True, resume=True)
    assert summary.resumed == 4 and summary.rows == 64 and str(summary).startswith("scored 60 rows, after 4 resumed")
    assert [r["id"] for r in _rows(out)] == list(range(64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]

    def bug(self, batch):
        raise RuntimeError("a bug")

    monkeypatch.setattr(scorer.Scorer, "__call__", bug)
    with pytest.raises(RuntimeError):  # any other failure: nothing is kept, the output stays as it was
        score_file(dates_bundle, path, out, batch_size=4, force=True)
    assert [r["id"] for r in _rows(out)] == list(range(64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


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


def test_a_bad_row_is_that_rows_error_and_the_job_goes_on(dates_bundle, tmp_path):
    """Issue 31, item 7: one invalid UTF-8 byte discarded every good result and named no line, and a line of a
    million characters took 1.2 GB. Now each is one row's error with its line, in text, JSON Lines and CSV, and
    a line over MAX_ROW_BYTES is skipped without being held."""
    from seq2seq_edge.scale.files import MAX_ROW_BYTES

    good = "3 mei 1961\n".encode()
    text = good + b"1 May \xff2000\n" + b"1" * (3 * MAX_ROW_BYTES) + b"\n" + b"1" * 5000 + b"\n" + good
    (tmp_path / "in.txt").write_bytes(text)
    rows = _scored(dates_bundle, tmp_path / "in.txt", tmp_path / "txt.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, None, None, "1961-05-03"]
    assert rows[1]["error"] == "line 2 is not valid UTF-8 (byte 0xff at byte 7 of the line); convert the file"
    assert rows[2]["error"] == "line 3 is 3,145,729 bytes long; a row has at most 1,048,576" and not rows[2]["source"]
    assert rows[3]["error"] == ("the source has 5000 tokens; a source has at most 4096 (MAX_SOURCE_STEPS): split it "
                                "into shorter sources")
    (tmp_path / "in.jsonl").write_bytes(b'{"source": "3 mei 1961"}\n{"source": "1 May \xff2000"}\n'
                                        b'{"source": "1 May 2000"}\n')
    rows = _scored(dates_bundle, tmp_path / "in.jsonl", tmp_path / "jsonl.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, "2000-05-01"]
    assert rows[1]["error"] == "line 2 is not valid UTF-8 (byte 0xff at byte 19 of the line); convert the file"
    (tmp_path / "in.csv").write_bytes(b"id,source\n1,3 mei 1961\n2,1 May \xff2000\n3,1 May 2000\n")
    rows = _scored(dates_bundle, tmp_path / "in.csv", tmp_path / "csv.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, "2000-05-01"]
    assert rows[1]["error"] == "record 2 (line 3) is not valid UTF-8; convert the file" and rows[1]["source"] is None


def _scored(bundle, path, out):
    assert main(["score", str(bundle), "--input", str(path), "--output", str(out)]) == 0
    return _rows(out)


def test_a_partial_output_is_continued_only_by_the_same_job(dates_bundle, text_input, tmp_path, capsys):
    """--resume continues only what the same bundle, input and options wrote; a partial output without
    --resume or --force is refused, --force starts over, and a line torn by a kill is cut off."""
    path, lines = text_input
    out = tmp_path / "out.jsonl"
    score_file(dates_bundle, path, out)
    whole = out.read_bytes()
    partial = tmp_path / "out.jsonl.partial"
    job = (tmp_path / "out.jsonl.partial.json")
    out.rename(partial)
    with open(partial, "r+b") as f:  # as a kill leaves it: 10 rows and half of the 11th
        kept = b"".join(f.readlines()[:10])
        f.seek(0)
        f.truncate()
        f.write(kept + b'{"id": 10, "sou')
    import seq2seq_edge.scale.local as local

    job.write_text(json.dumps(json.loads(json.dumps(
        {"columns": ["id", "source", "output", "log_prob", "error"], "format": "jsonl",
         **local._job(dates_bundle, path, "source", DecodeOptions(), None, None)}))))
    assert main(["score", str(dates_bundle), "--input", str(path), "--output", str(out)]) == 1
    assert capsys.readouterr().err == (f"error: {partial} holds the rows of an earlier run that did not finish (or "
                                       "of a job writing it now): pass --resume (resume=True) to continue it, or "
                                       "--force to start over\n")
    assert main(["score", str(dates_bundle), "--input", str(path), "--output", str(out), "--resume",
                 "--strategy", "beam"]) == 1
    assert capsys.readouterr().err.startswith(f"error: {partial} was written by another job: its options was ")
    assert main(["score", str(dates_bundle), "--input", str(path), "--output", str(out), "--resume"]) == 0
    assert capsys.readouterr().out.startswith(f"scored {len(lines) - 10} rows, after 10 resumed (2 with an error)")
    assert out.read_bytes() == whole and not partial.exists() and not job.exists()
    out.rename(partial)
    job.write_text("{}")
    assert main(["score", str(dates_bundle), "--input", str(path), "--output", str(out), "--force"]) == 0
    assert out.read_bytes() == whole and not partial.exists() and not job.exists()


def test_a_failure_after_rows_were_scored_keeps_them_for_resume(dates_bundle, text_input, tmp_path, monkeypatch,
                                                                 capsys):
    """An output created by someone else meanwhile, or a failure mid-job, no longer deletes the rows scored: they
    stay in OUT.partial and the message says how to continue. A short CSV record is that record's error."""
    import seq2seq_edge.scale.scorer as scorer

    path, lines = text_input
    out = tmp_path / "out.jsonl"
    real = scorer.Scorer.__call__
    calls = []

    def intruder(self, batch):  # another process creates the output while the job runs
        calls.append(1)
        if len(calls) == 2:
            out.write_text("someone else's\n")
        return real(self, batch)

    monkeypatch.setattr(scorer.Scorer, "__call__", intruder)
    with pytest.raises(OutputExistsError) as err:
        score_file(dates_bundle, path, out, batch_size=8)
    assert out.read_text() == "someone else's\n"
    assert err.value.__notes__ == [f"the {len(lines)} rows scored are kept in {out}.partial: run the same command "
                                   "with --resume (resume=True) to continue from there"]
    monkeypatch.setattr(scorer.Scorer, "__call__", real)
    summary = score_file(dates_bundle, path, out, batch_size=8, resume=True, force=True)
    assert summary.resumed == len(lines) and [r["id"] for r in _rows(out)] == list(range(len(lines)))

    calls.clear()

    def fail_third(self, batch):
        calls.append(1)
        if len(calls) == 3:
            raise InputError("the disk is full (simulated)")
        return real(self, batch)

    monkeypatch.setattr(scorer.Scorer, "__call__", fail_third)
    assert main(["score", str(dates_bundle), "--input", str(path), "--output", str(tmp_path / "b.jsonl"),
                 "--batch-size", "8"]) == 1
    assert capsys.readouterr().err == (f"error: the disk is full (simulated); the 16 rows scored are kept in "
                                       f"{tmp_path / 'b.jsonl'}.partial: run the same command with --resume "
                                       "(resume=True) to continue from there\n")
    (tmp_path / "in.csv").write_text("id,source\n1,3 mei 1961\n2\n3,1 May 2000\n", encoding="utf-8")
    monkeypatch.setattr(scorer.Scorer, "__call__", real)
    score_file(dates_bundle, tmp_path / "in.csv", tmp_path / "csv.jsonl")
    rows = _rows(tmp_path / "csv.jsonl")
    assert [r["output"] for r in rows] == ["1961-05-03", None, "2000-05-01"]
    assert rows[1]["error"] == "record 2 (line 3) has no field 'source'"
