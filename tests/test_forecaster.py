"""A time-series forecaster built as users write it (issue 29 item 5): the encoder reads 24 steps of 3 features,
the decoder predicts feature 0 for 12 steps, fed its own prediction, and the user's loop starts from the last
observed value of feature 0 (x[:, -1, [0]]). Exported with first_input={"source_features": [0]}, the manifest
records that rule and every runtime starts there with no argument.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from seq2seq_edge.export import ExportError  # noqa: E402
from seq2seq_edge.export.byo import export_keras  # noqa: E402
from seq2seq_edge.runtime import BundleError, load  # noqa: E402

WINDOW, FEATURES, HORIZON, UNITS = 24, 3, 12, 8


@pytest.fixture(scope="module")
def forecaster():
    """(encoder, decoder, the user's own forecast loop), as a forecasting tutorial writes them (untrained)."""
    import keras

    keras.utils.set_random_seed(0)
    enc_in = keras.Input((WINDOW, FEATURES))
    _, h, c = keras.layers.LSTM(UNITS, return_state=True)(enc_in)
    encoder = keras.Model(enc_in, [h, c])
    dec_in, h_in, c_in = keras.Input((1, 1)), keras.Input((UNITS,)), keras.Input((UNITS,))
    seq, h2, c2 = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True)(dec_in, initial_state=[h_in, c_in])
    y = keras.layers.Dense(1)(seq)
    decoder = keras.Model([dec_in, h_in, c_in], [y, h2, c2])

    def forecast(x: np.ndarray) -> np.ndarray:
        """The user's loop: start from the last observed target value, feed each prediction back."""
        h, c = (np.asarray(v) for v in encoder(x))
        y, out = x[:, -1:, [0]], []
        for _ in range(HORIZON):
            y, h, c = (np.asarray(v) for v in decoder([y, h, c]))
            out.append(y[:, 0, :])
        return np.stack(out, axis=1)  # (batch, HORIZON, 1)

    return encoder, decoder, forecast


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(8, WINDOW, FEATURES)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]).astype(np.float32)


@pytest.fixture(scope="module")
def bundle(forecaster, windows, tmp_path_factory):
    encoder, decoder, _ = forecaster
    out = tmp_path_factory.mktemp("forecaster") / "bundle"
    export_keras(encoder, decoder, out, max_steps=HORIZON, first_input={"source_features": [0]},
                 parity_sources=windows)
    return out


def test_the_manifest_records_the_rule(bundle):
    decode = json.loads((bundle / "manifest.json").read_text())["decode"]
    assert decode["first_input"] == {"rule": "source_step", "step": -1, "features": [0]}


def test_generate_with_no_argument_is_the_users_loop(bundle, forecaster, windows):
    model, want = load(bundle), forecaster[2](windows)
    assert model.manifest.default_mode == "fused"
    np.testing.assert_allclose(np.stack(model.generate(windows)), want, atol=1e-4)
    for mode in ("step", "fused"):
        np.testing.assert_allclose(np.stack(model.generate(windows, mode=mode)), want, atol=1e-4, err_msg=mode)
    streamed = np.stack(list(model.stream(windows)), axis=1)
    np.testing.assert_allclose(streamed, want, atol=1e-4)
    # int8 is within its quantisation error of the user's loop, and export measured it from the same start
    int8 = np.max(np.abs(np.stack(model.generate(windows, mode="fused-int8")) - want))
    recorded = model.manifest.parity["modes"]
    assert int8 < 0.05 and abs(int8 - recorded["fused-int8"]["max_abs_decode"]) < 1e-5
    assert recorded["step"]["max_abs_decode"] < 1e-4


def test_an_explicit_first_input_still_overrides(bundle, forecaster, windows):
    model = load(bundle)
    zeros = np.stack(model.generate(windows, first_input=np.zeros((len(windows), 1), np.float32), mode="step"))
    assert np.max(np.abs(zeros - forecaster[2](windows))) > 1e-2  # the start matters for this model
    same = np.stack(model.generate(windows, first_input=windows[:, -1, [0]], mode="step"))
    np.testing.assert_allclose(same, np.stack(model.generate(windows, mode="step")), atol=1e-6)


def test_the_cli_starts_from_the_rule(bundle, forecaster, windows, tmp_path):
    np.save(tmp_path / "x.npy", windows)
    result = subprocess.run([sys.executable, "-m", "seq2seq_edge", "run", str(bundle), "--input",
                             str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), forecaster[2](windows), atol=1e-4)


def test_zeros_export_is_a_zero_started_forecast(forecaster, windows, tmp_path):
    """first_input='zeros' is what it says: the bundle (and its parity) start from 0.0, not from the user's loop's
    last observed value, so it decodes unlike that loop; the rule is the way to export this model."""
    encoder, decoder, forecast = forecaster
    export_keras(encoder, decoder, tmp_path / "z", max_steps=HORIZON, first_input="zeros", parity_sources=windows)
    model = load(tmp_path / "z")
    assert model.manifest.first_input == "zeros"
    got = np.stack(model.generate(windows, mode="step"))
    assert np.max(np.abs(got - forecast(windows))) > 1e-2
    started = np.stack(model.generate(windows, first_input=windows[:, -1, [0]], mode="step"))
    np.testing.assert_allclose(started, forecast(windows), atol=1e-4)


@pytest.mark.parametrize("first_input, match", [
    ({"source_features": [3]}, r"^first_input: source feature index 3 is out of range: the source has 3 features "
                               r"\(indices 0 to 2\)$"),
    ({"source_features": [0, 1]}, r"^first_input: source_features holds 2 indices but the decoder takes 1 features "
                                  r"per step: give one source index per target feature$"),
    ({"source_features": ["0"]}, r"^first_input: source_features must be a list of integer source feature indices"),
    ({"features": [0]}, r"^first_input: expected 'zeros', 'last_source_step' or \{'source_features': \[indices\]\}"),
    ("last_source_step", r"^first_input: 'last_source_step' feeds the whole last source step \(3 features\) to a "
                         r"decoder that takes 1; pass first_input=\{'source_features': \[...\]\}"),
])
def test_bad_first_inputs_are_refused_before_writing(forecaster, tmp_path, first_input, match):
    encoder, decoder, _ = forecaster
    with pytest.raises(ExportError, match=match):
        export_keras(encoder, decoder, tmp_path / "bad", max_steps=HORIZON, first_input=first_input)
    assert not (tmp_path / "bad").exists()


def _with_rule(bundle, tmp_path, features) -> object:
    out = tmp_path / "edited"
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["decode"]["first_input"] = {"rule": "source_step", "step": -1, "features": features}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.mark.parametrize("features, field, match", [
    ([3], "decode.first_input.features[0]",
     r"^manifest.json: decode.first_input.features\[0\] is 3, but the source has 3 features \(indices 0 to 2\)$"),
    ([0, 1], "decode.first_input.features",
     r"^manifest.json: decode.first_input.features holds 2 indices but the target has 1 features"),
])
def test_a_bad_rule_is_refused_at_its_field(bundle, tmp_path, features, field, match):
    with pytest.raises(BundleError, match=match) as info:
        load(_with_rule(bundle, tmp_path, features))
    assert (info.value.code, info.value.field) == ("first_input", field)


@pytest.mark.parametrize("features", [[3], [0, 1], [-1]])
def test_node_refuses_a_bad_rule_alike(bundle, tmp_path, features):
    from test_node_binding import node_outcomes, python_outcome

    edited = _with_rule(bundle, tmp_path, features)
    expected = python_outcome(lambda: load(edited))
    assert expected[0] == "BundleError" and expected[1] in ("first_input", "range"), expected
    assert node_outcomes([{"dir": str(edited)}]) == [expected]


def test_the_export_command_takes_the_rule(forecaster, windows, tmp_path, capsys):
    from seq2seq_edge.cli import main

    encoder, decoder, forecast = forecaster
    encoder.save(tmp_path / "enc.keras")
    decoder.save(tmp_path / "dec.keras")
    assert main(["export-keras", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--max-steps", str(HORIZON), "--first-input", "source:0", "--modes", "step",
                 "--out", str(tmp_path / "b")]) == 0
    model = load(tmp_path / "b")
    assert model.manifest.first_input == {"rule": "source_step", "step": -1, "features": [0]}
    np.testing.assert_allclose(np.stack(model.generate(windows)), forecast(windows), atol=1e-4)
    with pytest.raises(SystemExit):
        main(["export-keras", "--first-input", "source:x", "--out", str(tmp_path / "c")])
    assert "expected zeros, last_source_step or source:I[,J...] (source feature indices), got 'source:x'" in \
        capsys.readouterr().err


NODE_FORECAST = """
const { load } = require(process.argv[1]);
(async () => {
  const model = await load(process.argv[2]);
  const windows = JSON.parse(process.argv[3]);
  const out = {};
  for (const mode of [null, ...model.modes]) out[mode || 'default'] = await model.generateFeatures(windows, { mode });
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e.message); process.exit(1); });
"""


def test_node_starts_from_the_rule_too(bundle, forecaster, windows):
    """The Node.js runtime (and the browser demo, which uses its lib) decodes the bundle as the user's loop, with
    no first input given: within 1e-4 by default and in the float modes, int8 within its quantisation error."""
    from test_node_binding import NODE_DIR, _tool

    result = subprocess.run([_tool("node"), "-e", NODE_FORECAST, str(NODE_DIR), str(bundle),
                             json.dumps(windows.tolist())], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = {mode: np.asarray(v, np.float32) for mode, v in json.loads(result.stdout).items()}
    want, python = forecaster[2](windows), load(bundle)
    for mode in ("default", "step", "fused"):
        np.testing.assert_allclose(got[mode], want, atol=1e-4, err_msg=mode)
        np.testing.assert_allclose(got[mode], np.stack(python.generate(windows, mode=None if mode == "default"
                                                                       else mode)), atol=1e-5, err_msg=mode)
    assert np.max(np.abs(got["fused-int8"] - want)) < 0.05


def test_node_command_line_forecasts_from_the_rule(bundle, forecaster, windows):
    """`node cli.js BUNDLE` on a real-valued bundle: JSON windows in, one JSON line of forecasts out."""
    from test_node_binding import node_cli

    result = node_cli(bundle, json.dumps(windows.tolist()))
    assert result.returncode == 0 and result.stdout.count("\n") == 1, result.stderr
    np.testing.assert_allclose(np.asarray(json.loads(result.stdout), np.float32), forecaster[2](windows), atol=1e-4)
    bad = node_cli(bundle, "1 May 2000\n")
    assert bad.returncode == 1 and bad.stderr.startswith("error: stdin: this bundle forecasts real values: pass JSON "
                                                         "windows (batch, time, features)")
