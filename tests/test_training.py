"""Training writes a complete run directory; the same seed gives the same data."""

import json
import re

import numpy as np
import pytest

from seq2seq_edge.runtime.fsutil import OutputExistsError
from seq2seq_edge.training import ModelConfig, RunDir, TrainConfig, train
from seq2seq_edge.training.inference import KerasSeq2Seq


def test_run_directory_contents(trained_dates):
    assert sorted(p.name for p in trained_dates.iterdir()) == [
        "config.json", "history.json", "model.keras", "vocabulary.json"]
    run = RunDir(trained_dates)
    config = run.config
    assert config.task == "dates" and config.model == ModelConfig(units=16, embedding_dim=8)
    assert config.train.seed == 3 and config.sides.target_kind == "tokens"
    source, target = run.vocabularies()
    assert config.sides.source_size == len(source) and config.sides.target_size == len(target)
    assert set("0123456789-") <= set(target.tokens)
    history = json.loads((trained_dates / "history.json").read_text())
    assert history["epochs_run"] == 1 and len(history["loss"]) == 1 and history["seconds"] > 0


def test_keras_model_ignores_padding(trained_dates):
    run = RunDir(trained_dates)
    keras_ref = KerasSeq2Seq.from_run(run.load_model(), run.config)
    source, _ = run.vocabularies()
    ids, _ = source.encode_batch(["1 May 2000", "Sunday, 31 December 2049"])
    alone, _ = source.encode_batch(["1 May 2000"])
    np.testing.assert_allclose(keras_ref.encode(alone)["c0"][0], keras_ref.encode(ids)["c0"][0], atol=1e-5)


def test_existing_run_dir_refused_before_training(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(OutputExistsError, match=r"run already exists; choose another path or pass --force"):
        train("dates", tmp_path / "run", ModelConfig(units=4), TrainConfig(samples=100, epochs=1), verbose=0)


def test_output_path_that_is_a_file_refused(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(OutputExistsError, match=r"run exists and is a file; choose another output path"):
        train("dates", tmp_path / "run", ModelConfig(units=4), TrainConfig(samples=100, epochs=1), force=True,
              verbose=0)


def test_label_smoothing_loss_is_the_mean_over_real_tokens():
    """(1 - e) cross-entropy + e times the mean negative log-probability over the vocabulary, averaged over
    non-padding tokens only (id 0); e = 0 is Keras's own sparse cross-entropy with ignore_class=0."""
    from keras.src.losses.losses import LossFunctionWrapper

    from seq2seq_edge.training.losses import token_loss
    from seq2seq_edge.training.config import ConfigError

    y = np.array([[3, 1, 0, 0], [2, 2, 2, 0]])
    logits = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = y != 0
    nll = -np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    assert float(token_loss(0.0)(y, logits)) == pytest.approx(nll[real].mean(), rel=1e-5)
    smoothed = (0.9 * nll - 0.1 * log_p.mean(-1))[real].mean()
    assert float(LossFunctionWrapper(token_loss(0.1))(y, logits)) == pytest.approx(smoothed, rel=1e-5)
    with pytest.raises(ConfigError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        TrainConfig(label_smoothing=1.0)


def test_input_feeding_is_a_flag(tmp_path):
    from seq2seq_edge.cli.parser import build_parser, pick

    args = build_parser().parse_args(["train", "dates", "--out", str(tmp_path / "r"), "--attention", "luong",
                                 "--input-feeding", "--label-smoothing", "0.1"])
    model, config = pick(ModelConfig, args), pick(TrainConfig, args)
    assert (model.attention, model.input_feeding, config.label_smoothing) == ("luong", True, 0.1)


def _train_output(tmp_path, terminal: bool) -> str:
    """What `seq2seq-edge train` prints for two tiny epochs, to a pseudo-terminal or to a pipe."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "seq2seq_edge", "train", "dates", "--out", str(tmp_path / f"run{terminal}"),
               "--samples", "200", "--epochs", "2", "--units", "4", "--embedding-dim", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if not terminal:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=True).stdout
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        if not select.select([leader], [], [], 1.0)[0]:
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    if proc.poll() is None:
        proc.kill()
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_progress_is_a_bar_per_epoch_on_a_terminal_and_lines_in_a_pipe(tmp_path):
    piped = _train_output(tmp_path, terminal=False)
    lines = [line for line in piped.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    epoch_lines = [line for line in lines if " - loss: " in line]
    assert len(epoch_lines) == 2 and all("━" not in line and "\r" not in line for line in epoch_lines)
    shown = _train_output(tmp_path, terminal=True)
    assert shown.count("Epoch 1/2") == 1 and shown.count("Epoch 2/2") == 1
    assert "━━━━" in shown  # Keras's bar, redrawn in place as each epoch goes


@pytest.mark.parametrize("task, model", [  # .ci/run trains all three (the first took 19 s of the default run)
    pytest.param("dates", ModelConfig(units=16, embedding_dim=8, attention="luong", input_feeding=True),
                 marks=pytest.mark.slow),
    pytest.param("dates", ModelConfig(units=16, embedding_dim=8, layers=2, bidirectional=True, attention="bahdanau"),
                 marks=pytest.mark.slow),
    pytest.param("ecg", None, marks=pytest.mark.slow),
])
def test_mixed_bfloat16_trains_in_bfloat16_and_saves_float32(tmp_path, monkeypatch, task, model):
    """--precision mixed_bfloat16 fits a net whose layers compute in bfloat16 (the output layer in float32),
    saves a float32 model that exports with parity, and leaves Keras's global policy as it found it."""
    import keras

    from seq2seq_edge.export import export_run
    from seq2seq_edge.training.config import AutoencoderConfig
    from seq2seq_edge.training.attention import Attend  # noqa: F401  (registers the layers for load_model)

    model = model or AutoencoderConfig(cell="gru", units=(8,))
    fitted, trained, fit = [], [], keras.Model.fit

    def spy(net, *args, **kwargs):  # the policies of the net that train() fits, and its weights after fitting
        fitted.append({layer.name: layer.dtype_policy.name for layer in net.layers})
        result = fit(net, *args, **kwargs)
        trained.append(net.get_weights())
        return result

    monkeypatch.setattr(keras.Model, "fit", spy)
    losses = {}
    for precision in ("float32", "mixed_bfloat16"):
        config = TrainConfig(samples=600, epochs=2, batch_size=32, seed=5, precision=precision)
        run = train(task, tmp_path / precision, model, config, verbose=0)
        losses[precision] = json.loads((run.path / "history.json").read_text())["loss"]
        assert keras.config.dtype_policy().name == "float32"
    assert json.loads((run.path / "config.json").read_text())["train"]["precision"] == "mixed_bfloat16"
    assert set(fitted[0].values()) == {"float32"}
    assert fitted[1].pop("output") == "float32" and set(fitted[1].values()) == {"mixed_bfloat16"}
    assert np.allclose(losses["float32"], losses["mixed_bfloat16"], rtol=0.1)  # the same training, rounded
    saved = keras.saving.load_model(run.path / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert len(saved.get_weights()) == len(trained[1])  # the float32 copy holds the trained weights, in order
    for copy, weights in zip(saved.get_weights(), trained[1]):
        np.testing.assert_array_equal(copy, weights)
    export_run(run.path, tmp_path / "bundle", parity_samples=32)  # raises unless the graphs match Keras


def test_budget_schedule_falls_linearly_over_the_time_budget():
    """lr_schedule='budget': before each batch the rate is the first rate times the share of the budget left,
    never under 1/64 of it (a fake clock: 0, 30, 60 and 90 seconds of a one-minute budget)."""
    import keras

    from seq2seq_edge.training.callbacks import BudgetSchedule

    now = [0.0]
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    net.compile(optimizer=keras.optimizers.Adam(0.004), loss="mse")
    schedule = BudgetSchedule(0.004, 1.0, clock=lambda: now[0])
    schedule.set_model(net)
    schedule.on_train_begin()
    rates = []
    for now[0] in (0.0, 30.0, 60.0, 90.0):
        schedule.on_train_batch_begin(0)
        rates.append(float(np.asarray(net.optimizer.learning_rate)))
    np.testing.assert_allclose(rates, [0.004, 0.002, 0.004 / 64, 0.004 / 64], rtol=1e-6)
    logs = {}
    schedule.on_epoch_end(0, logs)
    assert logs == {"learning_rate": pytest.approx(0.004 / 64)}


def test_budget_schedule_in_training(tmp_path, monkeypatch):
    """A run with lr_schedule='budget' halves nothing on a plateau (no ReduceLROnPlateau), records a rate
    that falls every epoch, and the configuration refuses the schedule without a time budget."""
    import keras

    from seq2seq_edge.training.config import ConfigError

    built = []
    original = keras.callbacks.ReduceLROnPlateau
    monkeypatch.setattr(keras.callbacks, "ReduceLROnPlateau", lambda *a, **k: built.append(k) or original(*a, **k))
    config = TrainConfig(samples=1000, epochs=3, batch_size=32, seed=2, lr_schedule="budget", max_minutes=5.0,
                         learning_rate=0.004)
    run = train("dates", tmp_path / "run", ModelConfig(units=8, embedding_dim=4), config, verbose=0)
    history = json.loads((run.path / "history.json").read_text())
    rates, seconds = history["learning_rate"], history["seconds"]
    assert not built and len(rates) == 3
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert 0.004 * (1 - seconds / 300) - 1e-6 <= rates[-1] < 0.004
    assert json.loads((run.path / "config.json").read_text())["train"]["lr_schedule"] == "budget"
    with pytest.raises(ConfigError, match=r"^lr_schedule='budget' falls over the training time budget: set "
                                          r"max_minutes too \(--max-minutes\)$"):
        TrainConfig(lr_schedule="budget")
    with pytest.raises(ConfigError, match=r"^lr_schedule must be one of plateau, budget, got 'cosine'$"):
        TrainConfig(lr_schedule="cosine", max_minutes=1)
    from seq2seq_edge.training.distribute import Distribution

    workers = Distribution("multi-worker", workers=("127.0.0.1:1", "127.0.0.1:2"), worker_index=0)
    with pytest.raises(ConfigError, match=r"^lr_schedule='budget' follows one process's clock and the workers' "
                                          r"clocks differ: a multi-worker run uses lr_schedule='plateau'"):
        train("dates", tmp_path / "multi", ModelConfig(units=8), config, distribute=workers, verbose=0)
    assert not (tmp_path / "multi").exists()


def test_sequence_accuracy_counts_rows_whose_every_real_token_is_the_argmax():
    from seq2seq_edge.training.losses import sequence_accuracy

    y_true = np.array([[2, 3, 1, 0], [2, 3, 1, 0], [4, 1, 0, 0]])  # 0 = padding
    logits = np.full((3, 4, 5), -1.0, np.float32)
    for row, picks in enumerate([[2, 3, 1, 4], [2, 4, 1, 0], [4, 1, 3, 3]]):  # padding positions may be anything
        logits[row, np.arange(4), picks] = 1.0
    np.testing.assert_array_equal(np.asarray(sequence_accuracy(y_true, logits)), [1.0, 0.0, 1.0])


@pytest.mark.slow  # CI runs it; the default run stays under 5 minutes
def test_select_by_sequence_accuracy_is_the_greedy_exact_match(tmp_path, monkeypatch):
    """The validation sequence accuracy of the kept epoch is the share of validation pairs that greedy
    decoding of the saved model reproduces; the callbacks watch it (a real-valued task refuses it)."""
    from seq2seq_edge.training.config import ConfigError
    from seq2seq_edge.training.data import token_arrays
    from seq2seq_edge.training.tasks import make_splits

    import keras

    watched = []
    for name in ("EarlyStopping", "ReduceLROnPlateau"):
        original = getattr(keras.callbacks, name)
        monkeypatch.setattr(keras.callbacks, name, lambda *a, _cls=original, **k: watched.append(
            (_cls.__name__, k.get("monitor"), k.get("mode"))) or _cls(*a, **k))
    config = TrainConfig(samples=8000, epochs=6, batch_size=32, seed=4, patience=2, select_by="sequence_accuracy")
    run = train("dates", tmp_path / "run", ModelConfig(units=64, embedding_dim=16), config, verbose=0)
    assert sorted(watched) == [("EarlyStopping", "val_sequence_accuracy", "max"),
                               ("ReduceLROnPlateau", "val_sequence_accuracy", "max")]
    history = json.loads((run.path / "history.json").read_text())
    best = max(history["val_sequence_accuracy"])
    assert 0.0 < best < 1.0 and len(history["sequence_accuracy"]) == history["epochs_run"]
    source, target = run.vocabularies()
    val = token_arrays(make_splits("dates", config).validation, source, target)
    keras_ref = KerasSeq2Seq.from_run(run.load_model(), run.config)
    decoded = keras_ref.generate_ids(val.source, target.start_id, target.end_id, val.target.shape[1])
    wanted = [row[row != 0] for row in val.target]  # ids ending with </s>
    exact = np.mean([len(d) + 1 == len(w) and np.array_equal(d, w[:-1]) for d, w in zip(decoded, wanted)])
    assert abs(exact - best) <= 1 / len(wanted) + 1e-9  # at most one near-tie apart
    with pytest.raises(ConfigError, match=r"select_by='sequence_accuracy' scores token targets; this task's "
                                          r"targets are real-valued: select by loss \(--select-by loss, the default\)"):
        train("sine", tmp_path / "sine", ModelConfig(units=4), TrainConfig(samples=100, epochs=1,
                                                                           select_by="sequence_accuracy"), verbose=0)
    assert not (tmp_path / "sine").exists()


def test_averaged_weights_are_validated_kept_and_saved_when_the_budget_stops_early():
    """ema: validation scores the averaged weights, and those are the model's weights at the end even when
    training stops before its last epoch (Keras alone would leave the raw weights there)."""
    import keras

    from seq2seq_edge.training.callbacks import AveragedWeights

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = x @ rng.normal(size=(4, 1)).astype(np.float32) + 0.1 * rng.normal(size=(256, 1)).astype(np.float32)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    net.compile(optimizer=keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9), loss="mse")
    seen = {}

    class Record(keras.callbacks.Callback):  # after AveragedWeights, as the epoch-judging callbacks are
        def on_epoch_end(self, epoch, logs=None):
            seen["averaged"] = [np.array(v) for v in self.model.trainable_variables]
            seen["raw"] = [np.array(v) for v in self.model.optimizer._model_variables_moving_average]  # swapped
            if epoch == 1:
                self.model.stop_training = True  # as the time budget does

    history = net.fit(x, y, batch_size=16, epochs=5, validation_data=(x[:64], y[:64]), verbose=0,
                      callbacks=[AveragedWeights(), Record()])
    assert len(history.history["loss"]) == 2
    final = [np.array(v) for v in net.trainable_variables]
    for got, averaged in zip(final, seen["averaged"]):
        np.testing.assert_array_equal(got, averaged)
    assert max(np.abs(a - r).max() for a, r in zip(seen["averaged"], seen["raw"])) > 1e-3
    assert history.history["val_loss"][-1] == pytest.approx(net.evaluate(x[:64], y[:64], verbose=0), rel=1e-5)


def test_ema_in_training_and_its_refusals(tmp_path, monkeypatch):
    """A run that its time budget stops after the first of three epochs saves that epoch's averaged weights."""
    import seq2seq_edge.training.callbacks as callbacks_module
    from seq2seq_edge.training.config import ConfigError

    made = []
    original = callbacks_module.AveragedWeights
    monkeypatch.setattr(callbacks_module, "AveragedWeights", lambda: made.append(original()) or made[-1])
    config = TrainConfig(samples=1000, epochs=3, batch_size=32, seed=2, ema=0.99, patience=0, max_minutes=0.001)
    run = train("dates", tmp_path / "run", ModelConfig(units=8, embedding_dim=4), config, verbose=0)
    assert json.loads((run.path / "history.json").read_text())["epochs_run"] == 1
    saved = RunDir(run.path).load_model()
    assert len(made) == 1 and len(made[0].last) == len(saved.trainable_weights)
    for weights, averaged in zip(saved.trainable_weights, made[0].last):
        np.testing.assert_array_equal(np.asarray(weights), averaged)
    assert json.loads((run.path / "config.json").read_text())["train"]["ema"] == 0.99
    assert RunDir(run.path).config.train.ema == 0.99
    for bad in (1.0, -0.5, True, "0.9"):
        with pytest.raises(ConfigError, match="^" + re.escape(f"ema must be 0 (off) or a momentum in (0, 1) such "
                                                              f"as 0.999, got {bad!r}") + "$"):
            TrainConfig(ema=bad)
    with pytest.raises(ConfigError, match=r"^ema averages the weights in one process; a mirrored run trains "
                                          r"without it \(ema=0, the default\)$"):
        train("dates", tmp_path / "mirrored", ModelConfig(units=8), config, distribute="mirrored", verbose=0)
    assert not (tmp_path / "mirrored").exists()
