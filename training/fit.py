"""Train a built-in task into a run directory (model.keras, config.json, vocabulary.json, history.json)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..runtime.inputs import normalise
from .config import AutoencoderConfig, ConfigError, ModelConfig, RunConfig, Sides, TrainConfig
from .data import bucketed_batches, build_vocabularies, dealt_batches, feature_arrays, feature_stats, token_arrays
from .distribute import Distribution, fit_multi_worker
from ..runtime.fsutil import OutputExistsError, atomic_directory, check_output_path
from .recipes import QUALITY_FILE, match_recipe
from .rundir import CONFIG_FILE, HISTORY_FILE, MODEL_FILE, RunDir
from .tasks import FAMILIES, AnomalySplits, FeatureSplits, TokenSplits, make_splits

__all__ = ["train", "mean_predictor_loss", "token_loss", "sequence_accuracy"]


@dataclass
class _Plan:
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


def train(task: str, out: str | Path, model: ModelConfig | AutoencoderConfig = ModelConfig(),
          train: TrainConfig = TrainConfig(), *, force: bool = False, verbose: int | None = None,
          distribute: Distribution | str | None = None) -> RunDir | None:
    """Generate the task's data, fit the model, and write a run directory.

    A ModelConfig trains a state-passing encoder-decoder with teacher forcing; an
    AutoencoderConfig trains a RepeatVector autoencoder (its anomaly threshold is
    chosen at export). ``out`` must not exist unless ``force``; it
    appears only when training succeeds. ``verbose``: Keras progress (1 = bar,
    2 = a line per epoch, 0 = silent); by default a bar on a terminal, else a line per epoch.

    ``distribute``: ``mirrored`` or ``multi-worker``, or a Distribution (training/distribute.py):
    global batches of one process's size, each shared by the replicas. In a multi-worker run every
    worker calls ``train`` with the same arguments; the chief writes ``out`` and returns its
    RunDir, the other workers write nothing and return None.
    """
    dist = Distribution(distribute) if isinstance(distribute, str) else distribute
    family = "autoencoder" if isinstance(model, AutoencoderConfig) else "seq2seq"
    if task in FAMILIES and family not in FAMILIES[task]:
        raise ConfigError(f"task {task!r} trains {' or '.join(FAMILIES[task])} models, not {family}")
    chief = dist is None or dist.is_chief()
    multi = dist is not None and dist.strategy == "multi-worker"
    if multi and train.lr_schedule == "budget":
        raise ConfigError("lr_schedule='budget' follows one process's clock and the workers' clocks differ: "
                          "a multi-worker run uses lr_schedule='plateau' (the default)")
    if dist is not None and train.ema:
        raise ConfigError(f"ema averages the weights in one process; a {dist.strategy} run trains without it "
                          "(ema=0, the default)")
    if chief and not multi:
        check_output_path(Path(out), force, directory=True)
    strategy = dist.make_strategy() if dist else None  # before TensorFlow runs anything else
    if multi:
        _check_output_together(strategy, Path(out), force, chief)
    import keras

    place = atomic_directory(out, force) if chief else _scratch()
    with place as tmp, (strategy.scope() if strategy else contextlib.nullcontext()):
        splits = make_splits(task, train)
        keras.utils.set_random_seed(train.seed)
        feed = _feeder(strategy, multi)
        with _dtype_policy(train.precision):  # layers take the policy in force when they are built
            plan = (_autoencoder_plan(splits, model, train, feed) if family == "autoencoder"
                    else _seq2seq_plan(splits, model, train, feed))
        tokens = plan.vocabularies is not None
        if train.select_by == "sequence_accuracy" and not tokens:
            raise ConfigError("select_by='sequence_accuracy' scores token targets; this task's targets are "
                              "real-valued: select by loss (--select-by loss, the default)")
        metrics = [keras.metrics.MeanMetricWrapper(sequence_accuracy, name="sequence_accuracy")] if tokens else None
        averaged = {"use_ema": True, "ema_momentum": train.ema} if train.ema else {}
        plan.net.compile(optimizer=keras.optimizers.Adam(train.learning_rate, clipnorm=1.0, **averaged),
                         loss=plan.loss, metrics=metrics)
        if multi:
            fit_multi_worker(plan.net, strategy)
        workers = strategy if multi else None
        callbacks = [_TimeBudget(train.max_minutes, workers)] if train.max_minutes else []
        if train.lr_schedule == "budget":
            callbacks.append(_BudgetSchedule(train.learning_rate, train.max_minutes))
        if train.ema:  # before the callbacks that judge and keep epochs: they see the averaged weights
            callbacks.append(_AveragedWeights())
        patient = []
        watch = {"monitor": f"val_{train.select_by}", "mode": "min" if train.select_by == "loss" else "max"}
        if train.lr_patience and train.lr_schedule == "plateau":
            patient.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=train.lr_patience,
                                                             min_lr=train.learning_rate * BUDGET_FLOOR, **watch))
        if train.patience:
            patient.append(keras.callbacks.EarlyStopping(patience=train.patience, restore_best_weights=True,
                                                         **watch))
        if patient and plan.baseline is not None:
            callbacks.append(_PastBaseline(plan.baseline, patient))
        else:
            callbacks.extend(patient)
        started = time.perf_counter()
        # Datasets batch and shuffle themselves; arrays are batched and shuffled by fit.
        batching = {"shuffle": False} if plan.y is None else {"batch_size": train.batch_size}
        shown = ((1 if sys.stdout.isatty() else 2) if verbose is None else verbose) if chief else 0
        history = plan.net.fit(plan.x, plan.y, validation_data=plan.val, epochs=train.epochs, callbacks=callbacks,
                               verbose=shown, **batching)
        seconds = time.perf_counter() - started
        net = plan.net if train.precision == "float32" else _float32_copy(plan)
        net.save(tmp / MODEL_FILE)  # every worker saves (the chief's copy is the run's), as tf.distribute asks
        if not chief:
            return None
        RunConfig(task, model, train, plan.sides, plan.normalisation).save(tmp / CONFIG_FILE)
        if plan.vocabularies:
            RunDir(tmp).save_vocabularies(*plan.vocabularies)
        record = {"seconds": round(seconds, 2), "epochs_run": len(history.history["loss"]),
                  **({"distribute": dist.describe(strategy)} if dist else {}),
                  **({"mean_predictor_val_loss": plan.baseline} if plan.baseline is not None else {}),
                  **{k: [float(v) for v in vals] for k, vals in history.history.items()}}
        (tmp / HISTORY_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        recipe = match_recipe(task, model, train)
        if recipe is not None:  # a documented recipe: its floors travel with the run (evaluate --check)
            (tmp / QUALITY_FILE).write_text(json.dumps(recipe.record(), indent=1) + "\n", encoding="utf-8")
    return RunDir(Path(out))


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` while models are built, then restored."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _float32_copy(plan: _Plan):
    """The trained mixed-precision net as a float32 model (same layers, same weights): what is saved, exported
    and run. Its variables were float32 all along; only the layers' compute dtype changes."""
    with _dtype_policy("float32"):
        net = plan.build()
    net.set_weights(plan.net.get_weights())
    return net


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """Where a worker other than the chief saves its copy of the model (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="seq2seq-edge-worker-") as tmp:
        yield Path(tmp)


def _feeder(strategy, multi_worker: bool) -> Callable | None:
    """For a distributed run: ``make(replicas, mine) -> tf.data.Dataset`` -> what the replicas read. None for
    one process.

    Mirrored: the global batches of one process, each split among the local replicas by tf.distribute.
    Multi-worker: one input pipeline per worker that reads only the rows of its own replicas ``mine``.
    """
    if strategy is None:
        return None

    def feed(make: Callable):
        if not multi_worker:
            return strategy.experimental_distribute_dataset(make(strategy.num_replicas_in_sync, None))

        def pipeline(context):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local
            return make(context.num_replicas_in_sync, tuple(range(first, first + local)))

        return strategy.distribute_datasets_from_function(pipeline)

    return feed


def _TimeBudget(minutes: float, workers=None):
    """Stop before starting an epoch that would end past ``minutes`` of training (whole epochs only).

    Across workers the clocks differ, so all stop when any one would (a worker that stopped alone
    would leave the others waiting for it)."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            self.started = self.last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            now = time.perf_counter()
            late = now - self.started + (now - self.last) > minutes * 60
            if workers is not None:  # a multi-worker strategy
                late = _any_worker(workers, late)
            if late:
                self.model.stop_training = True
            self.last = now

    return TimeBudget()


# The budget schedule's last learning rate, as a share of the first (ReduceLROnPlateau's min_lr too).
BUDGET_FLOOR = 1 / 64


def _BudgetSchedule(rate: float, minutes: float, clock: Callable[[], float] = time.perf_counter):
    """Before each batch, set the learning rate to ``rate`` times the share of ``minutes`` still to run
    (at least BUDGET_FLOOR of it): a linear decay over the training time budget ("budgeted training",
    Li et al., ICLR 2020), so a run that the budget stops ends on small steps."""
    import keras

    class BudgetSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            self.started = clock()

        def on_train_batch_begin(self, batch, logs=None) -> None:
            left = 1.0 - (clock() - self.started) / (minutes * 60)
            self.model.optimizer.learning_rate = rate * max(BUDGET_FLOOR, left)

        def on_epoch_end(self, epoch, logs=None) -> None:
            if logs is not None:  # the history keeps each epoch's last rate
                logs["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))

    return BudgetSchedule()


def _AveragedWeights():
    """Keras's SwapEMAWeights (the averaged weights in the model for validation and at each epoch's end, the
    raw ones while training), and at the end of training the last epoch's averaged weights: Keras writes
    its average slots into the model after the last epoch, and after an epoch that the time budget or
    early stopping ended those slots hold the raw weights, swapped out. Early stopping, after this in the
    callbacks, then restores its best epoch's (averaged) weights."""
    import keras

    class AveragedWeights(keras.callbacks.SwapEMAWeights):
        def __init__(self) -> None:
            super().__init__(swap_on_epoch=True)
            self.last = None

        def on_epoch_end(self, epoch, logs=None) -> None:
            super().on_epoch_end(epoch, logs)
            self.last = [np.array(v) for v in self.model.trainable_variables]

        def on_train_end(self, logs=None) -> None:
            if self.last is not None:
                for variable, value in zip(self.model.trainable_variables, self.last):
                    variable.assign(value)

    return AveragedWeights()


def _check_output_together(strategy, out: Path, force: bool, chief: bool) -> None:
    """The chief's output check, agreed by every worker: had the chief stopped alone (an existing output),
    the other workers would wait for it forever. Every worker calls this once, right after joining."""
    problem = None
    if chief:
        try:
            check_output_path(out, force, directory=True)
        except OutputExistsError as exc:
            problem = exc
    if _any_worker(strategy, problem is not None):
        raise problem or ConfigError("the chief (worker 0) refused to start training (see its error); nothing "
                                     "was trained")


def _any_worker(strategy, flag: bool) -> bool:
    """Whether ``flag`` holds on any worker (every worker must call this at the same point)."""
    import tensorflow as tf

    votes = strategy.run(tf.function(lambda: tf.constant(1.0 if flag else 0.0)))
    return float(strategy.reduce("SUM", votes, axis=None)) > 0


# The learning-rate halving and early stopping start counting once the validation loss is below this
# fraction of the mean predictor's.
BASELINE_MARGIN = 0.9


def _PastBaseline(baseline: float, callbacks: list):
    """Run ``callbacks`` (learning-rate halving, early stopping) only once the model beats the mean predictor.

    A real-valued model starts on a plateau where it predicts the training mean. On
    windows whose variance sits in a few sharp peaks at random positions (an ECG:
    R-peaks hold three quarters of the energy in 3% of the samples) the gradient
    there is weak, and leaving the plateau takes many epochs of full-size steps.
    Counting those epochs as "no improvement" halves the learning rate and stops
    training on the plateau, with a model that outputs the mean and detects nothing.
    So the patience of both starts when the validation loss first falls below
    BASELINE_MARGIN times the mean predictor's; until then neither acts.
    """
    import keras

    class PastBaseline(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.passed_at: int | None = None

        def set_model(self, model) -> None:
            super().set_model(model)
            for c in callbacks:
                c.set_model(model)

        def set_params(self, params) -> None:
            super().set_params(params)
            for c in callbacks:
                c.set_params(params)

        def on_train_begin(self, logs=None) -> None:
            for c in callbacks:
                c.on_train_begin(logs)

        def on_epoch_end(self, epoch, logs=None) -> None:
            if self.passed_at is None and (logs or {}).get("val_loss", baseline) < BASELINE_MARGIN * baseline:
                self.passed_at = epoch
            if self.passed_at is not None:
                for c in callbacks:
                    c.on_epoch_end(epoch, logs)

        def on_train_end(self, logs=None) -> None:
            for c in callbacks:
                c.on_train_end(logs)

    return PastBaseline()


def _seq2seq_plan(splits: TokenSplits | FeatureSplits, cfg: ModelConfig, train: TrainConfig,
                  feed: Callable | None = None) -> _Plan:
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
        return _Plan(net, loss, read(lambda r, m: bucketed_batches(fit, train.batch_size, train.seed, r, m)), None,
                     read(lambda r, m: bucketed_batches(val, train.batch_size, train.seed, r, m)), sides, stats,
                     vocabs, build=build)
    inputs = lambda a: {"source": a.source, "target_input": a.target_input}  # noqa: E731
    if feed:
        return _Plan(net, loss, *_dealt(feed, inputs(fit), fit.target, inputs(val), val.target, train), sides,
                     stats, vocabs, baseline, build)
    return _Plan(net, loss, inputs(fit), fit.target, (inputs(val), val.target), sides, stats, vocabs, baseline,
                 build)


def _dealt(feed: Callable, x, y, val_x, val_y, train: TrainConfig) -> tuple:
    """x, y and validation data of a distributed run on fixed-shape arrays (Keras batches them in one process)."""
    return (feed(lambda r, m: dealt_batches(x, y, train.batch_size, train.seed, r, m)), None,
            feed(lambda r, m: dealt_batches(val_x, val_y, train.batch_size, train.seed, r, m)))


def _autoencoder_plan(splits: AnomalySplits | FeatureSplits, cfg: AutoencoderConfig, train: TrainConfig,
                      feed: Callable | None = None) -> _Plan:
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
    return _Plan(build(), "mse", *data, sides, {"source": stats, "target": stats},
                 baseline=mean_predictor_loss(fit, val), build=build)


def token_loss(smoothing: float = 0.0):
    """Cross-entropy over target ids from logits, padding (id 0) ignored; the mean over real tokens.

    With ``smoothing`` e the target is (1 - e) one-hot + e uniform over the vocabulary
    (label smoothing): the model is not pushed to unbounded confidence on one spelling.
    """
    import keras
    from keras import ops

    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    def smoothed_token_loss(y_true, y_pred):  # y_true (batch, steps) ids; y_pred (batch, steps, vocab) logits
        log_p = ops.log_softmax(y_pred, axis=-1)
        ids = ops.cast(y_true, "int32")
        nll = -ops.squeeze(ops.take_along_axis(log_p, ops.expand_dims(ids, -1), axis=-1), -1)
        loss = (1.0 - smoothing) * nll - smoothing * ops.mean(log_p, axis=-1)
        real = ops.cast(ops.not_equal(ids, 0), loss.dtype)
        # Keras averages over every position; scale so that this is the mean over real tokens.
        return loss * real * ops.cast(ops.size(real), loss.dtype) / ops.maximum(ops.sum(real), 1.0)

    return smoothed_token_loss


def sequence_accuracy(y_true, y_pred):
    """Per row, 1.0 when every real target position's argmax is the target id (padding, id 0, ignored), else 0.0:
    under teacher forcing, exactly the rows that greedy decoding reproduces. (batch, steps), (batch, steps, vocab)."""
    from keras import ops

    ids = ops.cast(y_true, "int32")
    right = ops.logical_or(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), ids), ops.equal(ids, 0))
    return ops.cast(ops.all(right, axis=-1), "float32")


def mean_predictor_loss(train: np.ndarray, held_out: np.ndarray) -> float:
    """MSE on ``held_out`` of predicting, at every step, the mean of ``train`` at that step (batch, time, f)."""
    return float(np.mean((held_out - train.mean(axis=0)) ** 2))
