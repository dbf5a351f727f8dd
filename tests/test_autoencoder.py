"""RepeatVector sequence autoencoders: train, export, reconstruct / embed / score / detect."""

import numpy as np
import pytest

from seq2seq_edge.export import ExportError, export_autoencoder, export_run
from seq2seq_edge.runtime import AutoencoderModel, InputError, load
from seq2seq_edge.training import RunDir, TrainConfig, train
from seq2seq_edge.training.config import AutoencoderConfig
from seq2seq_edge.training.tasks import ecg, make_splits

from graph_metadata import check_graph_metadata
from keras_examples import sequential_autoencoder


@pytest.fixture(scope="module", params=[("lstm", (8, 4), "relu"), ("gru", (6,), "tanh")],
                ids=["lstm-8-4-relu", "gru-6-minimal"])
def sine_ae(request, tmp_path_factory):
    cell, units, activation = request.param
    root = tmp_path_factory.mktemp("ae")
    run = train("sine", root / "run", AutoencoderConfig(cell=cell, units=units, activation=activation),
                TrainConfig(samples=300, epochs=2, batch_size=32, seed=5), verbose=0)
    return run, export_run(run.path, root / "bundle", parity_samples=16)


def test_export_parity_and_manifest(sine_ae):
    run, result = sine_ae
    assert result.parity.ok and result.parity.max_reconstruction_error <= 1e-4
    model = load(result.path)
    assert isinstance(model, AutoencoderModel)
    m = model.manifest
    cfg = run.config.model
    assert m.family == "autoencoder" and m.cell == cfg.cell and m.window == 40
    assert m.encoder_units == cfg.units and m.decoder_units == tuple(reversed(cfg.units))
    assert m.anomaly["rule"] == "quantile:0.995" and m.anomaly["calibration"] == "validation windows of the task"
    normal = make_splits("sine", run.config.train).validation[0]  # the windows export calibrated on
    steps = model.score(normal, per_step=True)
    assert m.anomaly["calibration_windows"] == len(normal)
    assert m.anomaly["threshold"] == pytest.approx(np.quantile(steps.mean(axis=1), 0.995), rel=1e-5)
    assert m.anomaly["step_threshold"] == pytest.approx(np.quantile(steps, 0.995), rel=1e-5)
    assert sorted(m.graphs) == ["autoencoder", "encoder"]
    check_graph_metadata(result.path)


def test_runtime_matches_keras(sine_ae):
    run, result = sine_ae
    model, net = load(result.path), RunDir(run.path).load_model()
    x = make_splits("sine", run.config.train).test[0][:9]
    stats = run.config.normalisation["source"]
    mean, std = np.float32(stats["mean"]), np.float32(stats["std"])
    want = np.asarray(net((x - mean) / std)) * std + mean
    np.testing.assert_allclose(model.reconstruct(x), want, atol=1e-4)
    score = np.mean(((model.reconstruct(x) - x) / std) ** 2, axis=(1, 2))
    np.testing.assert_allclose(model.score(x), score, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(model.detect(x), model.score(x) > model.threshold)
    np.testing.assert_array_equal(model.detect(x, threshold=0.0), model.score(x) > 0)


def test_embed_any_batch_size(sine_ae):
    _, result = sine_ae
    model = load(result.path)
    x = np.random.default_rng(3).normal(size=(50, 40, 2)).astype(np.float32)
    full = model.embed(x)
    assert full.shape == (50, model.manifest.encoder_units[-1])
    for size in (1, 7):
        np.testing.assert_allclose(model.embed(x[:size]), full[:size], atol=1e-5)


def test_window_and_threshold_errors(sine_ae):
    _, result = sine_ae
    model = load(result.path)
    with pytest.raises(InputError, match=r"source: the autoencoder reads windows of 40 steps, got 39"):
        model.score(np.zeros((2, 39, 2), np.float32))
    with pytest.raises(InputError, match=r"threshold must be a number >= 0, got -1"):
        model.detect(np.zeros((2, 40, 2), np.float32), threshold=-1)
    with pytest.raises(InputError, match=r"source: the model takes 2 features, got 3"):
        model.embed(np.zeros((2, 40, 3), np.float32))


def test_sequential_autoencoder_of_a_user(tmp_path):
    net = sequential_autoencoder()
    result = export_autoencoder(net, tmp_path / "b")
    assert result.parity.ok
    model = load(result.path)
    assert model.manifest.encoder_units == (32, 16) and model.manifest.decoder_units == (16, 32)
    x = np.random.default_rng(0).normal(size=(5, 20, 2)).astype(np.float32)
    np.testing.assert_allclose(model.reconstruct(x), np.asarray(net(x)), atol=1e-4)
    with pytest.raises(InputError, match=r"this bundle has no threshold: pass detect\(x, threshold=...\)"):
        model.detect(x)


def test_user_autoencoder_refusals(tmp_path):
    import keras

    no_repeat = keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(4, return_sequences=True),
                                  keras.layers.TimeDistributed(keras.layers.Dense(1))])
    with pytest.raises(ExportError, match=r"expected exactly one RepeatVector layer .* found 0; pass encoder="):
        export_autoencoder(no_repeat, tmp_path / "a")
    conv = keras.Sequential([keras.Input((5, 1)), keras.layers.Conv1D(2, 3, padding="same", name="conv"),
                             keras.layers.LSTM(4), keras.layers.RepeatVector(5),
                             keras.layers.TimeDistributed(keras.layers.Dense(1))])
    assert not (tmp_path / "a").exists()
    # Any layer tf2onnx converts is exported as built (a Conv1D before the encoder here) and checked like the rest.
    export_autoencoder(conv, tmp_path / "b")
    x = np.random.default_rng(1).normal(size=(3, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(load(tmp_path / "b").reconstruct(x), np.asarray(conv(x)), atol=1e-4)
    strings = keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(4), keras.layers.RepeatVector(5),
                                keras.layers.TimeDistributed(keras.layers.Dense(1))])
    strings.layers[0].stateful = True  # what a stateful RNN would report; refused before anything is converted
    with pytest.raises(ExportError, match=r"stateful=True is not supported \(the runtime passes state explicitly\)"):
        export_autoencoder(strings, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_ecg_data_is_the_labelled_recording():
    values, labels = ecg.load_recording()
    assert values.shape == (7500,) and int(labels.sum()) == 352
    splits = ecg.make(0, 0, 0.05, 0.05)
    assert splits.train.shape[1:] == (ecg.WINDOW, 1)
    assert not splits.train.size == 0 and splits.test_labels.sum() == 30
    assert sorted(set(splits.test_events.tolist())) == [-1, 0]


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes (the ecg_tiny fixture trains)
def test_ecg_train_export_evaluate(ecg_tiny):
    from seq2seq_edge.export.evaluate import evaluate_bundle

    _, result = ecg_tiny  # one epoch of a 4-unit GRU (conftest.py)
    assert result.parity.ok
    metrics = evaluate_bundle(result.path)
    assert metrics["task"] == "ecg" and metrics["windows"] == 102 and metrics["anomalous_windows"] == 30
    assert metrics["events"] == 1
    splits = ecg.make(0, 0, 0.05, 0.05)
    flagged = load(result.path).detect(splits.test)  # recomputed here
    assert metrics["flagged"] == flagged.sum()
    if flagged.any():
        assert metrics["precision"] == pytest.approx((flagged & splits.test_labels).sum() / flagged.sum())
    assert metrics["recall"] == pytest.approx((flagged & splits.test_labels).sum() / 30)
