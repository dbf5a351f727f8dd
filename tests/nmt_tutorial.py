"""TensorFlow's "Neural machine translation with attention" tutorial
(tensorflow.org/text/tutorials/nmt_with_attention), written for Keras 3 as its code reads, without the
TextVectorization: the model takes integer ids (0 is padding, as the tutorial's vectorizer makes it).

Encoder, CrossAttention, Decoder and Translator (seq2seq_edge/bench/nmt.py, which the bench runs at the
tutorial's size) keep the tutorial's layers, masks and greedy translate loop (argmax, done flags, tokens
after the end replaced by 0). ``train_reverse`` fits a tiny one (units 16)
for 3 epochs on a toy task, reversing a string of letters, so that its outputs are not trivial.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

from seq2seq_edge.bench.nmt import CrossAttention, Decoder, Encoder, Translator  # noqa: F401 (the tutorial's classes)

TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]") + tuple("abcdefgh")  # the vectorizer's ids ("" is [PAD] here)
START, END = TOKENS.index("[START]"), TOKENS.index("[END]")
LETTERS = np.arange(4, len(TOKENS))


def masked_loss(y_true, y_pred):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    loss = loss_fn(y_true, y_pred)
    mask = tf.cast(y_true != 0, loss.dtype)
    loss *= mask
    return tf.reduce_sum(loss) / tf.reduce_sum(mask)


def reverse_data(n: int, seed: int, lengths=(2, 6)):
    """Rows of 2..6 letters (0-padded) and their reversal as target input/output (0-padded)."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(LETTERS, size=rng.integers(lengths[0], lengths[1] + 1)) for _ in range(n)]
    width = lengths[1]
    src, tin, tout = (np.zeros((n, width + (k > 0)), np.int32) for k in range(3))
    for i, r in enumerate(rows):
        src[i, : len(r)] = r
        tin[i, : len(r) + 1] = np.concatenate([[START], r[::-1]])
        tout[i, : len(r) + 1] = np.concatenate([r[::-1], [END]])
    return rows, src, tin, tout


def train_reverse(units: int = 16, epochs: int = 3, samples: int = 1024) -> Translator:
    """A tiny Translator fitted for ``epochs`` on the reversal task (seeded)."""
    keras.utils.set_random_seed(0)
    model = Translator(units, vocab_size=len(TOKENS))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=masked_loss)
    _, src, tin, tout = reverse_data(samples, seed=0)
    model.fit((src, tin), tout, epochs=epochs, batch_size=64, verbose=0)
    return model
