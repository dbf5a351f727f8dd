"""Train a built-in task into a run directory (model.keras, config.json, vocabulary.json, history.json)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from seq2seq_edge.fsutil import atomic_directory

from .config import ModelConfig, RunConfig, Sides, TrainConfig
from .data import build_vocabularies, feature_arrays, feature_stats, token_arrays
from .models import build_training_model
from .rundir import HISTORY_FILE, MODEL_FILE, CONFIG_FILE, RunDir
from .tasks import TokenSplits, make_splits

__all__ = ["train"]


def train(task: str, out: str | Path, model: ModelConfig = ModelConfig(), train: TrainConfig = TrainConfig(),
          *, force: bool = False, verbose: int | None = None) -> RunDir:
    """Generate the task's data, fit the model with teacher forcing, and write a run directory.

    ``out`` must not exist unless ``force``; it appears only when training succeeds.
    ``verbose``: Keras progress (1 = bar, 2 = a line per epoch, 0 = silent); by default
    a bar on a terminal and a line per epoch otherwise.
    """
    import keras

    with atomic_directory(out, force) as tmp:
        splits = make_splits(task, train)
        keras.utils.set_random_seed(train.seed)
        if isinstance(splits, TokenSplits):
            source_vocab, target_vocab = build_vocabularies(splits)
            arrays = [token_arrays(s, source_vocab, target_vocab) for s in (splits.train, splits.validation)]
            longest = arrays[0].target.shape[1]  # target steps including </s>
            sides = Sides("tokens", len(source_vocab), "tokens", len(target_vocab), math.ceil(longest * 1.5) + 2)
            stats = None
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
        else:
            stats = feature_stats(splits)
            arrays = [feature_arrays(s, stats) for s in (splits.train, splits.validation)]
            src, tgt = arrays[0].source, arrays[0].target
            sides = Sides("features", src.shape[-1], "features", tgt.shape[-1], tgt.shape[1])
            loss = "mse"
        net = build_training_model(model, sides)
        net.compile(optimizer=keras.optimizers.Adam(train.learning_rate, clipnorm=1.0), loss=loss)
        callbacks = []
        if train.patience:
            callbacks.append(keras.callbacks.EarlyStopping(patience=train.patience, restore_best_weights=True))
        fit_arrays, val_arrays = arrays
        started = time.perf_counter()
        history = net.fit(
            {"source": fit_arrays.source, "target_input": fit_arrays.target_input}, fit_arrays.target,
            validation_data=({"source": val_arrays.source, "target_input": val_arrays.target_input},
                             val_arrays.target),
            epochs=train.epochs, batch_size=train.batch_size, callbacks=callbacks,
            verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose)
        seconds = time.perf_counter() - started
        net.save(tmp / MODEL_FILE)
        RunConfig(task, model, train, sides, stats).save(tmp / CONFIG_FILE)
        if isinstance(splits, TokenSplits):
            RunDir(tmp).save_vocabularies(source_vocab, target_vocab)
        record = {"seconds": round(seconds, 2), "epochs_run": len(history.history["loss"]),
                  **{k: [float(v) for v in vals] for k, vals in history.history.items()}}
        (tmp / HISTORY_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return RunDir(Path(out))
