"""`seq2seq-edge score` stopped from outside (issue 31, item 7): SIGTERM, then `kill -9`, then `--resume`. A
stopped job leaves only OUTPUT.partial and its job record, its workers die with it, and --resume finishes the
job with every row once, in order, as one run would have written it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

DATES = {"3 mei 1961": "1961-05-03", "1 May 2000": "2000-05-01", "July 14, 2023": "2023-07-14",
         "5 juni 1970": "1970-06-05"}
ROWS = 200_000


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _start(bundle, folder, *extra):
    return subprocess.Popen([sys.executable, "-m", "seq2seq_edge", "score", str(bundle), "--input", "in.txt",
                             "--output", "out.jsonl", "--workers", "2", "--batch-size", "32", *extra], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop_when_writing(job, partial, sig, at_least: int) -> set[int]:
    """Wait for ``at_least`` more bytes in the partial output, note the workers, send ``sig``."""
    start = partial.stat().st_size if partial.exists() else 0
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > start + at_least):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.05)
    workers = _children(job.pid)
    job.send_signal(sig)
    return workers


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_a_stopped_or_killed_job_leaves_what_resume_finishes(dates_bundle, tmp_path):
    sources = list(DATES)
    (tmp_path / "in.txt").write_text("".join(sources[i % 4] + "\n" for i in range(ROWS)), encoding="utf-8")
    partial = tmp_path / "out.jsonl.partial"
    left = ["in.txt", "out.jsonl.partial", "out.jsonl.partial.json"]

    job = _start(dates_bundle, tmp_path)
    workers = _stop_when_writing(job, partial, signal.SIGTERM, 100_000)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 130 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: interrupted: ") and err.endswith(
        "rows are kept in out.jsonl.partial; run the same command with --resume (resume=True) to continue from there\n")
    kept = int(err.split()[2])
    assert kept == sum(1 for _ in open(partial, "rb")) and 0 < kept < ROWS
    assert len(workers) >= 2 and sorted(p.name for p in tmp_path.iterdir()) == left

    job = _start(dates_bundle, tmp_path, "--resume")
    workers = _stop_when_writing(job, partial, signal.SIGKILL, 100_000)
    job.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers), "a worker outlived its killed parent"
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no temporary file besides the partial output

    job = _start(dates_bundle, tmp_path, "--resume")
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0 and err == "", err
    assert out.startswith("scored ") and "resumed (0 with an error)" in out
    rows = [json.loads(line) for line in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert [r["id"] for r in rows] == list(range(ROWS))
    assert all(r["source"] == sources[r["id"] % 4] and r["output"] == DATES[r["source"]] for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]
