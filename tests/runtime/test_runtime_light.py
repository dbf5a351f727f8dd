"""The runtime must stay light: numpy + onnxruntime only; scoring (scale/) loads no training code either."""

import subprocess
import sys

HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY="), result.stdout
    return [m for m in last[len("HEAVY="):].split(",") if m]


def test_runtime_import_pulls_in_no_training_stack():
    assert _imported_after("import seq2seq_edge.runtime") == []


def test_loading_and_decoding_pulls_in_no_training_stack(dates_bundle):
    statement = (f"from seq2seq_edge.runtime import load; "
                 f"load({str(dates_bundle)!r}).generate_text(['1 May 2000'])")
    assert _imported_after(statement) == []


def test_cli_run_pulls_in_no_training_stack(dates_bundle):
    statement = f"from seq2seq_edge.cli import main; main(['run', {str(dates_bundle)!r}, '1 May 2000'])"
    assert _imported_after(statement) == []


def test_scale_import_pulls_in_no_training_code():
    """A scoring process loads neither TensorFlow nor any seq2seq_edge.training module (the atomic writes and
    the metrics it shares with training and export live in runtime/)."""
    code = ("import sys, seq2seq_edge.scale; "
            "print('TRAINING=' + ','.join(m for m in sys.modules if m.startswith('seq2seq_edge.training')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "TRAINING=", result.stdout
    assert _imported_after("import seq2seq_edge.scale") == []
