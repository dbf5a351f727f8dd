"""Built-in task data and configuration validation (no TensorFlow needed, but the task data packages)."""

import re

import numpy as np
import pytest

from seq2seq_edge.training import ConfigError, ModelConfig, TrainConfig
from seq2seq_edge.training.tasks import dates, make_splits, sine


def test_dates_are_deterministic_and_split_by_day():
    a, b = dates.make(600, 5, 0.1, 0.1), dates.make(600, 5, 0.1, 0.1)
    assert a == b
    assert dates.make(600, 6, 0.1, 0.1).train != a.train
    days = [{t for _, t in split} for split in (a.train, a.validation, a.test)]
    assert not (days[0] & days[1]) and not (days[0] & days[2]) and not (days[1] & days[2])
    assert (len(a.train), len(a.validation), len(a.test)) == (480, 60, 60)


def test_dates_are_unambiguous():
    """Only written month names and 4-digit years: every source has exactly the day and the year as numbers."""
    splits = dates.make(2000, 0, 0.05, 0.05)
    for source, target in splits.train:
        year, _, day = target.split("-")
        assert sorted(re.findall(r"\d+", source), key=len) == [str(int(day)), year], source
    locales = {loc for loc, _ in dates.styles()}
    assert {"en_US", "fr_FR", "de_DE"} <= locales


def test_dates_cover_several_languages():
    sources = " ".join(s for s, _ in dates.make(3000, 0, 0.05, 0.05).train).lower()
    for word in ("juillet", "july", "juli", "julio", "luglio"):
        assert word in sources


def test_sine_is_deterministic():
    a, b = sine.make(100, 1, 0.1, 0.1), sine.make(100, 1, 0.1, 0.1)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    assert a.train[0].shape == (80, sine.WINDOW, sine.FEATURES)
    assert a.test[1].shape == (10, sine.HORIZON, sine.FEATURES)
    assert np.abs(a.train[0]).max() <= 1.5


def test_unknown_task():
    with pytest.raises(ConfigError, match=r"unknown task 'poetry'; built-in tasks: dates, ecg, g2p, kdd135, sine"):
        make_splits("poetry", TrainConfig())


@pytest.mark.parametrize("make, match", [
    (lambda: ModelConfig(cell="rnn"), r"cell must be one of lstm, gru, got 'rnn'"),
    (lambda: ModelConfig(activation="sigmoid"), r"activation must be one of tanh, relu, got 'sigmoid'"),
    (lambda: ModelConfig(units=0), r"units must be a positive integer, got 0"),
    (lambda: ModelConfig(layers=5), r"layers must be between 1 and 4, got 5"),
    (lambda: ModelConfig(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    (lambda: ModelConfig(cell="gru", bidirectional=True),
     r"bidirectional encoders are built with LSTM cells only, got cell='gru'"),
    (lambda: ModelConfig(bidirectional="yes"), r"bidirectional must be true or false, got 'yes'"),
    (lambda: ModelConfig(units=15, bidirectional=True), r"units must be even, got 15"),
    (lambda: TrainConfig(lr_patience=-2), r"lr_patience must be an integer >= 0 \(0 keeps the learning rate"),
    (lambda: TrainConfig(epochs=0), r"epochs must be a positive integer, got 0"),
    (lambda: TrainConfig(learning_rate=2.0), r"learning_rate must be in \(0, 1\), got 2.0"),
    (lambda: TrainConfig(validation_split=0.7), r"validation_split must be in \(0, 0.5\), got 0.7"),
    (lambda: TrainConfig(patience=-1), r"patience must be an integer >= 0"),
    (lambda: TrainConfig(precision="float16"), r"precision must be one of float32, mixed_bfloat16, got 'float16'"),
    (lambda: TrainConfig(samples=10), r"samples=10 is too few for the validation and test splits"),
])
def test_config_validation(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
