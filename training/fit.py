"""Train a built-in task into a run directory (model.keras, config.json, vocabulary.json, history.json).

The pieces live beside this module: plans.py builds the network and its data, callbacks.py the Keras
callbacks, losses.py the losses and metrics, distribute.py what a tf.distribute run needs, recipes.py
the documented configuration each task trains by default.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

from ..runtime.fsutil import atomic_directory, check_output_path
from .callbacks import training_callbacks
from .config import AutoencoderConfig, ConfigError, ModelConfig, RunConfig, TrainConfig
from .distribute import Distribution, check_output_together, fit_multi_worker, make_feeder, worker_scratch
from .losses import mean_predictor_loss, sequence_accuracy, token_loss
from .plans import Plan, autoencoder_plan, dtype_policy, float32_copy, seq2seq_plan
from .recipes import QUALITY_FILE, match_recipe, recipe_for
from .rundir import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, RunDir
from .tasks import FAMILIES, make_splits

# The losses are imported from here by older code; their home is training/losses.py.
__all__ = ["train", "mean_predictor_loss", "token_loss", "sequence_accuracy"]


def train(task: str, out: str | Path, model: ModelConfig | AutoencoderConfig | None = None,
          train: TrainConfig | None = None, *, force: bool = False, verbose: int | None = None,
          distribute: Distribution | str | None = None) -> RunDir | None:
    """Generate the task's data, fit the model, and write a run directory.

    A ModelConfig trains a state-passing encoder-decoder with teacher forcing; an
    AutoencoderConfig trains a RepeatVector autoencoder (its anomaly threshold is
    chosen at export). ``model`` or ``train`` left out: the task's documented recipe's
    (training/recipes.py ``recipe_for``), what `seq2seq-edge train TASK` trains. ``out`` must not
    exist unless ``force``; it appears only when training succeeds. ``verbose``: Keras progress
    (1 = bar, 2 = a line per epoch, 0 = silent); by default a bar on a terminal, else a line per epoch.

    ``distribute``: ``mirrored`` or ``multi-worker``, or a Distribution (training/distribute.py):
    global batches of one process's size, each shared by the replicas. In a multi-worker run every
    worker calls ``train`` with the same arguments; the chief writes ``out`` and returns its
    RunDir, the other workers write nothing and return None.
    """
    model, train = _recipe_defaults(task, model, train)
    dist = Distribution(distribute) if isinstance(distribute, str) else distribute
    family = _check_request(task, model, train, dist)
    chief = dist is None or dist.is_chief()
    multi = dist is not None and dist.strategy == "multi-worker"
    if chief and not multi:
        check_output_path(Path(out), force, directory=True)
    strategy = dist.make_strategy() if dist else None  # before TensorFlow runs anything else
    if multi:
        check_output_together(strategy, Path(out), force, chief)
    import keras

    place = atomic_directory(out, force) if chief else worker_scratch()
    with place as tmp, (strategy.scope() if strategy else contextlib.nullcontext()):
        splits = make_splits(task, train)
        keras.utils.set_random_seed(train.seed)
        feed = make_feeder(strategy, multi)
        with dtype_policy(train.precision):  # layers take the policy in force when they are built
            plan = (autoencoder_plan(splits, model, train, feed) if family == "autoencoder"
                    else seq2seq_plan(splits, model, train, feed))
        _compile(plan, train)
        if multi:
            fit_multi_worker(plan.net, strategy)
        shown = ((1 if sys.stdout.isatty() else 2) if verbose is None else verbose) if chief else 0
        history, seconds = _fit(plan, train, strategy if multi else None, shown)
        net = plan.net if train.precision == "float32" else float32_copy(plan)
        net.save(tmp / MODEL_FILE)  # every worker saves (the chief's copy is the run's), as tf.distribute asks
        if not chief:
            return None
        ran = {"distribute": dist.describe(strategy)} if dist else {}
        _write_run(tmp, RunConfig(task, model, train, plan.sides, plan.normalisation), plan, history, seconds, ran)
    return RunDir(Path(out))


def _recipe_defaults(task: str, model, train) -> tuple:
    """``model`` and ``train``, each the task's recipe's where left out (the dataclass defaults for a task
    without one; an unknown task is refused when its data is made)."""
    if model is not None and train is not None:
        return model, train
    recipe = recipe_for(task)
    recipe_model, recipe_train = recipe.configs() if recipe else (ModelConfig(), TrainConfig())
    return (recipe_model if model is None else model), (recipe_train if train is None else train)


def _check_request(task: str, model, train: TrainConfig, dist: Distribution | None) -> str:
    """The model family (``seq2seq`` or ``autoencoder``), once the task and the distribution allow the
    configuration."""
    family = "autoencoder" if isinstance(model, AutoencoderConfig) else "seq2seq"
    if task in FAMILIES and family not in FAMILIES[task]:
        raise ConfigError(f"task {task!r} trains {' or '.join(FAMILIES[task])} models, not {family}")
    if dist is not None and dist.strategy == "multi-worker" and train.lr_schedule == "budget":
        raise ConfigError("lr_schedule='budget' follows one process's clock and the workers' clocks differ: "
                          "a multi-worker run uses lr_schedule='plateau' (the default)")
    if dist is not None and train.ema:
        raise ConfigError(f"ema averages the weights in one process; a {dist.strategy} run trains without it "
                          "(ema=0, the default)")
    return family


def _compile(plan: Plan, train: TrainConfig) -> None:
    """Adam (clipped, with the weight average if ``ema``), the plan's loss, and sequence accuracy for tokens."""
    import keras

    tokens = plan.vocabularies is not None
    if train.select_by == "sequence_accuracy" and not tokens:
        raise ConfigError("select_by='sequence_accuracy' scores token targets; this task's targets are "
                          "real-valued: select by loss (--select-by loss, the default)")
    metrics = [keras.metrics.MeanMetricWrapper(sequence_accuracy, name="sequence_accuracy")] if tokens else None
    averaged = {"use_ema": True, "ema_momentum": train.ema} if train.ema else {}
    plan.net.compile(optimizer=keras.optimizers.Adam(train.learning_rate, clipnorm=1.0, **averaged),
                     loss=plan.loss, metrics=metrics)


def _fit(plan: Plan, train: TrainConfig, workers, verbose: int) -> tuple:
    """Keras's fit with the run's callbacks; (its history, seconds of fitting)."""
    callbacks = training_callbacks(train, plan.baseline, workers)
    started = time.perf_counter()
    # Datasets batch and shuffle themselves; arrays are batched and shuffled by fit.
    batching = {"shuffle": False} if plan.y is None else {"batch_size": train.batch_size}
    history = plan.net.fit(plan.x, plan.y, validation_data=plan.val, epochs=train.epochs, callbacks=callbacks,
                           verbose=verbose, **batching)
    return history, time.perf_counter() - started


def _write_run(tmp: Path, config: RunConfig, plan: Plan, history, seconds: float, ran: dict) -> None:
    """config.json, vocabulary.json (tokens), history.json and, for a documented recipe, quality.json."""
    config.save(tmp / CONFIG_FILE)
    if plan.vocabularies:
        RunDir(tmp).save_vocabularies(*plan.vocabularies)
    record = {"seconds": round(seconds, 2), "epochs_run": len(history.history["loss"]), **ran,
              **({"mean_predictor_val_loss": plan.baseline} if plan.baseline is not None else {}),
              **{k: [float(v) for v in vals] for k, vals in history.history.items()}}
    (tmp / HISTORY_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    recipe = match_recipe(config.task, config.model, config.train)
    if recipe is not None and recipe.floors:  # a documented recipe: its floors travel with the run (evaluate --check)
        (tmp / QUALITY_FILE).write_text(json.dumps(recipe.record(), indent=1) + "\n", encoding="utf-8")
