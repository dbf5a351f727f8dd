"""`seq2seq-edge run` (numpy + onnxruntime only): flags built from DecodeOptions, errors as one line."""

import os
import subprocess
import sys
from dataclasses import fields

import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.runtime import DecodeOptions


def test_every_decode_option_is_a_flag(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for f in fields(DecodeOptions):
        assert f"--{f.name.replace('_', '-')}" in text and f.metadata["help"] in text


@pytest.mark.parametrize("flags, message", [
    (["--threads", "0"], "error: threads must be a positive integer or None (onnxruntime's default), got 0"),
    (["--top-k", "abc"], "error: --top-k: 'abc' is not a valid int"),
    (["--strategy", "nucleus"], "error: strategy must be one of greedy, sample, beam, got 'nucleus'"),
    (["--strategy", "beam", "--beam-width", "2", "--n-best", "3"],
     "error: n_best must be an integer >= 1 and <= 2, got 3"),
    (["--mode", "turbo"], "error: mode must be one of ['step', 'fused', 'fused-int8'] for this bundle, got 'turbo'"),
    # issue 31: these were an OverflowError, a ValueError and a TypeError with their tracebacks
    (["--strategy", "beam", "--length-penalty", "1e300"],
     "error: length_penalty must be a number >= 0 and <= 10.0, got 1e+300"),
    (["--strategy", "beam", "--beam-width", str(2 ** 63)],
     f"error: beam_width must be an integer >= 1 and <= 256, got {2 ** 63}"),
    (["--threads", str(2 ** 31 - 1)],
     f"error: threads must be at most {4 * (os.cpu_count() or 1)} (4 per core of this machine), got {2 ** 31 - 1}"),
])
def test_bad_flags_give_one_line_and_exit_1(dates_bundle, flags, message):
    result = subprocess.run([sys.executable, "-m", "seq2seq_edge", "run", str(dates_bundle), *flags, "1 May 2000"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == message + "\n"  # one line, no traceback


def test_flags_reach_the_decoder(dates_bundle, capsys):
    assert main(["run", str(dates_bundle), "--strategy", "beam", "--beam-width", "3", "--n-best", "2",
                 "--length-penalty", "0", "1 May 2000"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[0] for line in lines][0] == "2000-05-01" and len(lines) == 2
    assert all(float(line[1]) == float(line[2]) for line in lines)  # length_penalty 0: score == log_prob
