"""What training minimises and watches: the token loss, sequence accuracy, and the mean predictor's loss."""

from __future__ import annotations

import numpy as np

__all__ = ["token_loss", "sequence_accuracy", "mean_predictor_loss"]


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
