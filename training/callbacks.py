"""The Keras callbacks of a training run: the time budget, the budget learning-rate schedule, weight
averaging, and early stopping and learning-rate halving that wait for the model to beat the mean predictor.

Each is built by a function that imports Keras when called, so importing this module does not.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .config import TrainConfig
from .distribute import any_worker

__all__ = ["training_callbacks", "TimeBudget", "BudgetSchedule", "AveragedWeights", "PastBaseline",
           "BUDGET_FLOOR", "BASELINE_MARGIN"]

# The budget schedule's last learning rate, as a share of the first (ReduceLROnPlateau's min_lr too).
BUDGET_FLOOR = 1 / 64

# The learning-rate halving and early stopping start counting once the validation loss is below this
# fraction of the mean predictor's.
BASELINE_MARGIN = 0.9


def training_callbacks(train: TrainConfig, baseline: float | None = None, workers=None) -> list:
    """The callbacks ``train`` asks for, in the order they must run.

    ``baseline``: the mean predictor's validation loss (real-valued targets), which the halving and early
    stopping wait for the model to beat; ``workers``: a multi-worker strategy (the time budget stops
    every worker together).
    """
    import keras

    callbacks = [TimeBudget(train.max_minutes, workers)] if train.max_minutes else []
    if train.lr_schedule == "budget":
        callbacks.append(BudgetSchedule(train.learning_rate, train.max_minutes))
    if train.ema:  # before the callbacks that judge and keep epochs: they see the averaged weights
        callbacks.append(AveragedWeights())
    patient = []
    watch = {"monitor": f"val_{train.select_by}", "mode": "min" if train.select_by == "loss" else "max"}
    if train.lr_patience and train.lr_schedule == "plateau":
        patient.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=train.lr_patience,
                                                         min_lr=train.learning_rate * BUDGET_FLOOR, **watch))
    if train.patience:
        patient.append(keras.callbacks.EarlyStopping(patience=train.patience, restore_best_weights=True, **watch))
    if patient and baseline is not None:
        callbacks.append(PastBaseline(baseline, patient))
    else:
        callbacks.extend(patient)
    return callbacks


def TimeBudget(minutes: float, workers=None):
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
                late = any_worker(workers, late)
            if late:
                self.model.stop_training = True
            self.last = now

    return TimeBudget()


def BudgetSchedule(rate: float, minutes: float, clock: Callable[[], float] = time.perf_counter):
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


def AveragedWeights():
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


def PastBaseline(baseline: float, callbacks: list):
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
