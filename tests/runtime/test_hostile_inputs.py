"""Careless and hostile inputs to the runtime and to `seq2seq-edge run`: each a clear error, nothing lost."""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from seq2seq_edge.runtime import DecodeOptions, InputError, UnknownTokenError, load


def run_cli(*args, stdin: bytes = b""):
    return subprocess.run([sys.executable, "-m", "seq2seq_edge", "run", *map(str, args)], input=stdin,
                          capture_output=True)


def test_a_float64_value_beyond_float32_is_refused(sine, golden, tmp_path, sine_bundle):
    x = np.asarray(golden["sine"]["inputs"], np.float64)
    x[1, 3, 0] = 1e39
    with pytest.raises(InputError, match=r"^source: value 1e\+39 at index \(1, 3, 0\) does not fit in float32 "
                                         r"\(largest 3.403e\+38\); rescale the data"):
        sine.generate(x)
    np.save(tmp_path / "x.npy", x)
    result = run_cli(sine_bundle, "--input", tmp_path / "x.npy")
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode() == ("error: source: value 1e+39 at index (1, 3, 0) does not fit in float32 (largest "
                                      "3.403e+38); rescale the data\n")  # one line, no warning


def test_values_that_overflow_once_normalised_are_refused(sine_bundle, golden, copy_bundle):
    import json

    copy = copy_bundle(sine_bundle)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["source"]["std"] = [1e-38, 1e-38]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"^source: at index \(0, 0, 0\), the value normalised with the bundle's mean "
                                         r"and std overflows float32"):
        load(copy).generate(np.asarray(golden["sine"]["inputs"], np.float32) * 100)


def test_the_singleton_time_axis_of_a_keras_decoder_input_is_accepted(sine, golden):
    x = np.asarray(golden["sine"]["inputs"], np.float32)
    first = x[:, -1, :]  # (batch, features)
    np.testing.assert_array_equal(sine.generate(x, 5, first_input=first[:, None, :]),
                                  sine.generate(x, 5, first_input=first))
    state = sine.encode(x)
    a, _ = sine.step(first[:, None, :], state)
    b, _ = sine.step(first, state)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match=r"^first_input: expected shape \(batch, features\) or \(batch, 1, features\), "
                                         r"got \(3, 2, 2\)"):
        sine.generate(x, 5, first_input=x[:, :2, :])


def test_unknown_token_message_stays_short(dates):
    text = "1 May 2000 " * 100_000 + "☃"
    with pytest.raises(UnknownTokenError) as info:
        dates.generate_text([text])
    message = str(info.value)
    assert len(message) < 600
    assert message.startswith("'☃' at position 1100000 of ...'ay 2000 1 May 2000 1 May 2000 ☃' (a text of 1100001 "
                              "characters) is not in the model's vocabulary")


def test_a_tiny_temperature_is_greedy_not_nan(dates):
    texts = ["14 juillet 2023", "3 mei 1961"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings either
        cold = dates.generate_text(texts, options=DecodeOptions("sample", temperature=1e-308, seed=0))
    assert cold == dates.generate_text(texts, mode="step") == ["2023-07-14", "1961-05-03"]


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": float("inf")}, r"temperature must be a number > 0, got inf"),
    ({"temperature": float("nan")}, r"temperature must be a number > 0, got nan"),
    ({"top_k": np.int64(0)}, r"top_k must be an integer >= 1, got 0"),
    ({"top_k": 2.0}, r"top_k must be an integer >= 1, got 2.0"),
    ({"beam_width": np.bool_(True)}, r"beam_width must be an integer >= 1 and <= 256, got True"),
])
def test_bad_option_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        DecodeOptions(**kwargs)


def test_numpy_numbers_are_options_too(dates):
    options = DecodeOptions("sample", top_k=np.int64(1), top_p=np.float32(0.5), seed=np.int32(3),
                            temperature=np.float64(2.0))
    assert type(options.top_k) is int and type(options.top_p) is float and type(options.seed) is int
    assert dates.generate_text(["3 mei 1961"], options=options) == ["1961-05-03"]  # top_k=1: greedy


def test_stream_checks_its_arguments_when_called(dates):
    with pytest.raises(InputError, match=r"^max_steps must be an integer in \[1, 19\]"):
        dates.stream(np.array([[5, 6]]), max_steps=0)
    with pytest.raises(InputError, match=r"^source: ids must lie in"):
        dates.stream(np.array([[5, 10_000]]))
    with pytest.raises(InputError, match=r"^first_input applies to feature bundles only"):
        dates.stream(np.array([[5, 6]]), first_input=np.zeros((1, 2), np.float32))


def test_windows_line_endings_on_stdin(dates_bundle):
    result = run_cli(dates_bundle, stdin=b"14 July 2023\r\n3 mei 1961\r\n\r\n")
    assert result.returncode == 0 and result.stdout == b"2023-07-14\n1961-05-03\n"


def test_invalid_utf8_on_stdin(dates_bundle):
    result = run_cli(dates_bundle, stdin=b"1 May 2000\n\xff\xfe\n")
    assert result.returncode == 1 and result.stderr == (b"error: stdin line 2 is not valid UTF-8 (invalid start byte "
                                                        b"at byte 0); convert the input to UTF-8\n")


def test_a_closed_pipe_ends_quietly(dates_bundle):
    import threading

    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge", "run", str(dates_bundle)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def feed():
        try:
            proc.stdin.write(b"1 May 2000\n" * 20_000)
            proc.stdin.close()
        except BrokenPipeError:  # the child may be gone before all of it is written
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    assert proc.stdout.readline() == b"2000-05-01\n"
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=60) == 141 and proc.stderr.read() == b""
    writer.join(timeout=60)


def test_stdin_is_read_block_by_block(monkeypatch):
    import seq2seq_edge.cli.run as cli

    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\r\n\nb\nc\n")))
    assert list(cli._stdin_blocks(2)) == [["a", "b"], ["c"]]


def test_an_npy_header_that_lies_about_its_size(sine_bundle, tmp_path):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000, 100_000, 2)})
    (tmp_path / "huge.npy").write_bytes(buffer.getvalue())  # 128 bytes claiming 80 GB
    result = run_cli(sine_bundle, "--input", tmp_path / "huge.npy")
    assert result.returncode == 1
    assert result.stderr.decode() == (f"error: {tmp_path / 'huge.npy'}: its header describes 80000000000 bytes of "
                                      "float32 data (100000, 100000, 2), but the file holds 0; the file is truncated "
                                      "or corrupt\n")


def test_an_output_path_under_a_regular_file(sine_bundle, golden, tmp_path):
    np.save(tmp_path / "x.npy", np.asarray(golden["sine"]["inputs"], np.float32))
    (tmp_path / "afile").write_text("mine")
    result = run_cli(sine_bundle, "--input", tmp_path / "x.npy", "--output", tmp_path / "afile" / "out.npy")
    assert result.returncode == 1
    assert result.stderr.decode() == (f"error: {tmp_path / 'afile' / 'out.npy'}: {tmp_path / 'afile'} is a file, not "
                                      "a directory; choose another output path\n")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_source_longer_than_the_cap_is_refused_with_the_cap(dates, sine, dates_bundle):
    """Issue 31, item 6: a row of a million characters took 1.2 GB; a source now has at most MAX_SOURCE_STEPS
    tokens or time steps, and the message names the row and the cap."""
    from seq2seq_edge.runtime.inputs import MAX_SOURCE_STEPS

    assert MAX_SOURCE_STEPS == 4096
    cap = "a source has at most 4096 (MAX_SOURCE_STEPS): split it into shorter sources"
    with pytest.raises(InputError, match=r"^item 1 has 4097 tokens; " + re.escape(cap) + "$"):
        dates.generate_text(["3 mei 1961", "1" * 4097])
    with pytest.raises(InputError, match=r"^item 0 has 1000000 tokens; "):
        dates.decode_text(["1" * 1_000_000], DecodeOptions(strategy="beam"))
    assert dates.generate_text(["1 " * 2048]) == dates.generate_text(["1 " * 2048])  # 4096 tokens still decode
    with pytest.raises(InputError, match=r"^source: each row has 4097 steps; " + re.escape(cap)):
        dates.generate(np.ones((2, 4097), np.int32))
    with pytest.raises(InputError, match=r"^source: each row has 5000 steps; " + re.escape(cap)):
        sine.generate(np.zeros((1, 5000, 2), np.float32))
    result = run_cli(dates_bundle, stdin=b"3 mei 1961\n" + b"1" * 10_000 + b"\n")
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert result.stderr.decode() == f"error: item 1 has 10000 tokens; {cap}\n"
