"""Training past one process (issue 15): `train --distribute mirrored` over 2 logical CPU devices and
`--distribute multi-worker` with 2 worker processes on 127.0.0.1, each exported and checked against a
single-process run of the same preset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.training.config import ConfigError
from seq2seq_edge.training.distribute import Distribution

TRAIN = [sys.executable, "-m", "seq2seq_edge", "train", "dates", "--quick", "--quiet"]


def _workers(n: int = 2) -> list[str]:
    """``n`` distinct free addresses on 127.0.0.1 (the sockets held together, so no port comes back twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out}\n{err[-3000:]}"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """dates --quick trained three ways: one process, mirrored on 2 CPU devices, 2 workers."""
    root = tmp_path_factory.mktemp("distribute")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    run = lambda *args, **kw: subprocess.Popen([*TRAIN, *args], cwd=root, env=kw.get("env", env),  # noqa: E731
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _finish(run("--out", "single"), "single-process training")
    _finish(run("--out", "mirrored", "--distribute", "mirrored", "--cpu-devices", "2"), "mirrored training")
    workers = _workers()
    # Worker 0 is told the cluster by flags, worker 1 by TF_CONFIG as TensorFlow documents it.
    chief = run("--out", "multi", "--distribute", "multi-worker", "--workers", ",".join(workers),
                "--worker-index", "0")
    tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}})
    other = run("--out", "multi", "--distribute", "multi-worker", env={**env, "TF_CONFIG": tf_config})
    try:
        assert "wrote" in _finish(chief, "worker 0")
        assert _finish(other, "worker 1").strip() == \
            "done: this worker's part of the training; the chief wrote the run directory"
    finally:
        for proc in (chief, other):
            if proc.poll() is None:
                proc.kill()
    assert sorted(p.name for p in root.iterdir()) == ["mirrored", "multi", "single"]  # nothing left by worker 1
    return {name: root / name for name in ("single", "mirrored", "multi")}


@pytest.fixture(scope="module")
def accuracy(runs, tmp_path_factory) -> dict[str, float]:
    """Each run exported (parity checked at export) and scored on the held-out dates."""
    from seq2seq_edge.export.evaluate import evaluate_bundle
    from seq2seq_edge.export import export_run

    out = {}
    for name, run_dir in runs.items():
        result = export_run(run_dir, tmp_path_factory.mktemp("bundles") / name)
        assert result.parity.tokens_identical, result.parity.summary()
        out[name] = evaluate_bundle(result.path)["exact_match"]
    return out


@pytest.mark.slow  # three trainings of dates --quick (the runs fixture), minutes
def test_distributed_runs_record_how_they_ran(runs):
    history = {name: json.loads((path / "history.json").read_text()) for name, path in runs.items()}
    assert "distribute" not in history["single"]
    assert history["mirrored"]["distribute"] == {"strategy": "mirrored", "replicas": 2, "workers": 1}
    assert history["multi"]["distribute"] == {"strategy": "multi-worker", "replicas": 2, "workers": 2}


@pytest.mark.slow  # three trainings of dates --quick (the runs fixture), minutes
def test_both_strategies_take_the_same_steps(runs):
    """Each global batch is the one-process batch split in two, so mirrored and multi-worker see the same
    rows per step (dealt alike) and their losses agree closely, epoch by epoch, and track one process."""
    loss = {name: json.loads((path / "history.json").read_text())["loss"] for name, path in runs.items()}
    assert len(loss["mirrored"]) == len(loss["multi"]) == len(loss["single"]) == 3
    for a, b in zip(loss["mirrored"], loss["multi"]):
        assert a == pytest.approx(b, rel=0.05)
    assert loss["mirrored"][0] == pytest.approx(loss["single"][0], rel=0.05)


@pytest.mark.slow  # three trainings of dates --quick (the runs fixture), minutes
def test_distributed_runs_decode_as_well_as_one_process(accuracy):
    assert accuracy["single"] >= 0.95
    for name in ("mirrored", "multi"):
        assert abs(accuracy[name] - accuracy["single"]) <= 0.01, accuracy


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_an_output_the_chief_refuses_stops_every_worker(tmp_path):
    """Had the chief stopped alone, the other worker would wait for it forever: both stop, each saying why."""
    taken = tmp_path / "multi"
    taken.mkdir()  # an output that exists: the chief refuses it
    workers = _workers()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    procs = [subprocess.Popen([*TRAIN, "--out", str(taken), "--distribute", "multi-worker", "--workers",
                               ",".join(workers), "--worker-index", str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [1, 1]
    assert f"error: {taken} already exists; choose another path or pass --force" in errors[0]
    assert "error: the chief (worker 0) refused to start training (see its error); nothing was trained" in errors[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "ring"}, "distribute must be one of mirrored, multi-worker, got 'ring'"),
    ({"strategy": "multi-worker", "cpu_devices": 2}, "cpu_devices splits this machine's CPU for the mirrored"),
    ({"strategy": "mirrored", "cpu_devices": 0}, "cpu_devices must be an integer from 1 to 64, got 0"),
    ({"strategy": "mirrored", "workers": ("a:1",), "worker_index": 0}, "workers and worker_index configure multi"),
    ({"strategy": "multi-worker", "workers": ("localhost",), "worker_index": 0},
     "workers: 'localhost' is not host:port"),
    ({"strategy": "multi-worker", "workers": ("a:1", "a:1"), "worker_index": 0}, "an address is listed twice"),
    ({"strategy": "multi-worker", "workers": ("a:1", "b:2")}, "workers needs worker_index (--worker-index)"),
    ({"strategy": "multi-worker", "workers": ("a:1", "b:2"), "worker_index": 2},
     "worker_index must be from 0 to 1 for 2 workers, got 2"),
    ({"strategy": "multi-worker", "worker_index": 0}, "worker_index needs workers"),
])
def test_bad_distribution_is_refused(kwargs, message):
    with pytest.raises(ConfigError) as e:
        Distribution(**kwargs)
    assert message in str(e.value)


@pytest.mark.parametrize("tf_config, message", [
    (None, "multi-worker training needs the cluster: set TF_CONFIG"),
    ("{not json", "TF_CONFIG must be JSON with cluster"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG task {'type': 'worker', 'index': 3} is not a chief or worker of the cluster ['worker']"),
])
def test_multi_worker_needs_a_cluster(monkeypatch, tf_config, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError) as e:
        Distribution("multi-worker").is_chief()
    assert message in str(e.value)


def test_tf_config_and_workers_together_are_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(ConfigError, match="both TF_CONFIG and --workers describe the cluster"):
        Distribution("multi-worker", workers=("a:1",), worker_index=0).is_chief()


def test_chief_is_worker_zero_or_the_chief_task(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert Distribution("multi-worker", workers=("a:1", "b:2"), worker_index=0).is_chief()
    assert not Distribution("multi-worker", workers=("a:1", "b:2"), worker_index=1).is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["a:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not Distribution("multi-worker").is_chief()


def test_cpu_devices_need_a_fresh_process():
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow is running in this process
    with pytest.raises(ConfigError, match=r"^cpu_devices: TensorFlow is already initialised in this process .*; "
                                          r"split the CPU in a fresh process \(the command line does\)$"):
        Distribution("mirrored", cpu_devices=2).make_strategy()


def test_cli_flags_need_distribute(tmp_path, capsys):
    assert main(["train", "dates", "--out", str(tmp_path / "r"), "--workers", "a:1,b:2"]) == 1
    assert "error: --cpu-devices, --workers and --worker-index go with --distribute" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
