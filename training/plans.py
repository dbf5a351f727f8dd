"""What a run fits: the network built for its task's data (arrays, or datasets that batch themselves), the
loss, the sides and normalisation saved with it; and the float32 copy of a mixed-precision network."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..runtime.inputs import normalise
from .config import AutoencoderConfig, ModelConfig, Sides, TrainConfig
from .data import bucketed_batches, build_vocabularies, dealt_batches, feature_arrays, feature_stats, token_arrays
from .losses import mean_predictor_loss, token_loss
from .tasks import AnomalySplits, FeatureSplits, TokenSplits

__all__ = ["Plan", "seq2seq_plan", "autoencoder_plan", "dtype_policy", "float32_copy"]


@dataclass
class Plan:
    """What to fit: the network, its data (arrays, or datasets that batch themselves), and what to save."""

    net: Any
    loss: Any
    x: Any
    y: np.ndarray | None
    val: Any
    sides: Sides
    normalisation: dict | None = None
    vocabularies: tuple | None = None
    baseline: float | None = None  # validation loss of predicting the training mean (real-valued targets)
    build: Callable[[], Any] | None = None  # builds ``net`` again (a float32 copy of a mixed-precision net)


def seq2seq_plan(splits: TokenSplits | FeatureSplits, cfg: ModelConfig, train: TrainConfig,
                 feed: Callable | None = None) -> Plan:
    """An encoder-decoder trained with teacher forcing on token or real-valued splits; ``feed``: a distributed
    run's input (training/distribute.py ``make_feeder``), None for one process."""
    from .models import build_training_model

    if isinstance(splits, TokenSplits):
        vocabs = build_vocabularies(splits)
        fit, val = (token_arrays(s, *vocabs) for s in (splits.train, splits.validation))
        longest = fit.target.shape[1]  # target steps including </s>
        sides = Sides("tokens", len(vocabs[0]), "tokens", len(vocabs[1]), math.ceil(longest * 1.5) + 2)
        loss, stats = token_loss(train.label_smoothing), None
    else:
        vocabs, stats = None, feature_stats(splits)
        fit, val = (feature_arrays(s, stats) for s in (splits.train, splits.validation))
        sides = Sides("features", fit.source.shape[-1], "features", fit.target.shape[-1], fit.target.shape[1])
        loss = "mse"
    build = lambda: build_training_model(cfg, sides)  # noqa: E731
    net = build()
    baseline = None if vocabs else mean_predictor_loss(fit.target, val.target)
    if vocabs:  # token sequences: pad per batch, batches of similar lengths
        read = feed or (lambda make: make(1, None))  # one process: the whole batches
        return Plan(net, loss, read(lambda r, m: bucketed_batches(fit, train.batch_size, train.seed, r, m)), None,
                    read(lambda r, m: bucketed_batches(val, train.batch_size, train.seed, r, m)), sides, stats,
                    vocabs, build=build)
    inputs = lambda a: {"source": a.source, "target_input": a.target_input}  # noqa: E731
    if feed:
        return Plan(net, loss, *_dealt(feed, inputs(fit), fit.target, inputs(val), val.target, train), sides,
                    stats, vocabs, baseline, build)
    return Plan(net, loss, inputs(fit), fit.target, (inputs(val), val.target), sides, stats, vocabs, baseline,
                build)


def autoencoder_plan(splits: AnomalySplits | FeatureSplits, cfg: AutoencoderConfig, train: TrainConfig,
                     feed: Callable | None = None) -> Plan:
    """A RepeatVector autoencoder of the task's (normalised) windows."""
    from .autoencoder import build_autoencoder

    train_x, val_x = ((splits.train, splits.validation) if isinstance(splits, AnomalySplits)
                      else (splits.train[0], splits.validation[0]))
    flat = train_x.reshape(-1, train_x.shape[-1])  # (n * window, features)
    stats = {"mean": flat.mean(axis=0).tolist(), "std": np.maximum(flat.std(axis=0), 1e-6).tolist()}
    fit, val = (normalise(x, stats["mean"], stats["std"]) for x in (train_x, val_x))
    window, features = fit.shape[1:]
    sides = Sides("features", features, "features", features, window)
    data = _dealt(feed, fit, fit, val, val, train) if feed else (fit, fit, (val, val))
    build = lambda: build_autoencoder(cfg, window, features)  # noqa: E731
    return Plan(build(), "mse", *data, sides, {"source": stats, "target": stats},
                baseline=mean_predictor_loss(fit, val), build=build)


def _dealt(feed: Callable, x, y, val_x, val_y, train: TrainConfig) -> tuple:
    """x, y and validation data of a distributed run on fixed-shape arrays (Keras batches them in one process)."""
    return (feed(lambda r, m: dealt_batches(x, y, train.batch_size, train.seed, r, m)), None,
            feed(lambda r, m: dealt_batches(val_x, val_y, train.batch_size, train.seed, r, m)))


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` while models are built, then restored."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_copy(plan: Plan):
    """The trained mixed-precision net as a float32 model (same layers, same weights): what is saved, exported
    and run. Its variables were float32 all along; only the layers' compute dtype changes."""
    with dtype_policy("float32"):
        net = plan.build()
    net.set_weights(plan.net.get_weights())
    return net
