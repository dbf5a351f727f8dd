"""The TF 2.x (2.0 to 2.5 era) edition of TensorFlow's "Neural machine translation with attention" tutorial,
written for Keras 3 as its code reads: subclassed Encoder, BahdanauAttention and Decoder, the
``train_step`` with GradientTape and teacher forcing, and ``evaluate``'s greedy loop.

As in the tutorial: sentences carry <start> and <end> on both sides, ids are padded with 0 at the end
('post') to the longest sentence (no mask anywhere: the GRUs and the attention read the padding), the
decoder's hidden starts as the encoder's final state and is the attention query, and the decoder's GRU
itself starts from zeros at every call (``self.gru(x)``, no initial state), as the tutorial wrote it.

The data is the reversal task of tests/nmt_tutorial.py (rows of 2 to 6 letters, reused from there).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

from nmt_tutorial import END, START, TOKENS, reverse_data

MAX_LENGTH_INP = MAX_LENGTH_TARG = 8  # <start> + up to 6 letters + <end>: the tensors' widths


class Encoder(keras.Model):
    def __init__(self, vocab_size, embedding_dim, enc_units, batch_sz):
        super().__init__()
        self.batch_sz = batch_sz
        self.enc_units = enc_units
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
        self.gru = keras.layers.GRU(self.enc_units, return_sequences=True, return_state=True,
                                    recurrent_initializer="glorot_uniform")

    def call(self, x, hidden):
        x = self.embedding(x)
        output, state = self.gru(x, initial_state=hidden)
        return output, state

    def initialize_hidden_state(self):
        return tf.zeros((self.batch_sz, self.enc_units))


class BahdanauAttention(keras.layers.Layer):
    def __init__(self, units):
        super().__init__()
        self.W1 = keras.layers.Dense(units)
        self.W2 = keras.layers.Dense(units)
        self.V = keras.layers.Dense(1)

    def call(self, query, values):
        # query hidden state shape == (batch_size, hidden size)
        # query_with_time_axis shape == (batch_size, 1, hidden size)
        # values shape == (batch_size, max_len, hidden size)
        query_with_time_axis = tf.expand_dims(query, 1)
        # score shape == (batch_size, max_length, 1)
        score = self.V(tf.nn.tanh(self.W1(query_with_time_axis) + self.W2(values)))
        # attention_weights shape == (batch_size, max_length, 1)
        attention_weights = tf.nn.softmax(score, axis=1)
        # context_vector shape after sum == (batch_size, hidden_size)
        context_vector = attention_weights * values
        context_vector = tf.reduce_sum(context_vector, axis=1)
        return context_vector, attention_weights


class Decoder(keras.Model):
    def __init__(self, vocab_size, embedding_dim, dec_units, batch_sz):
        super().__init__()
        self.batch_sz = batch_sz
        self.dec_units = dec_units
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
        self.gru = keras.layers.GRU(self.dec_units, return_sequences=True, return_state=True,
                                    recurrent_initializer="glorot_uniform")
        self.fc = keras.layers.Dense(vocab_size)
        # used for attention
        self.attention = BahdanauAttention(self.dec_units)

    def call(self, x, hidden, enc_output):
        # enc_output shape == (batch_size, max_length, hidden_size)
        context_vector, attention_weights = self.attention(hidden, enc_output)
        # x shape after passing through embedding == (batch_size, 1, embedding_dim)
        x = self.embedding(x)
        # x shape after concatenation == (batch_size, 1, embedding_dim + hidden_size)
        x = tf.concat([tf.expand_dims(context_vector, 1), x], axis=-1)
        # passing the concatenated vector to the GRU
        output, state = self.gru(x)
        # output shape == (batch_size * 1, hidden_size)
        output = tf.reshape(output, (-1, output.shape[2]))
        # output shape == (batch_size, vocab)
        x = self.fc(output)
        return x, state, attention_weights


def tensors(rows) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's input and target tensors: <start> row <end>, padded 'post' with 0 (targets reversed)."""
    inp = [[START, *r.tolist(), END] for r in rows]
    targ = [[START, *r[::-1].tolist(), END] for r in rows]
    return (keras.utils.pad_sequences(inp, maxlen=MAX_LENGTH_INP, padding="post"),
            keras.utils.pad_sequences(targ, maxlen=MAX_LENGTH_TARG, padding="post"))


def evaluate(encoder, decoder, inputs, units, *, max_length_inp=MAX_LENGTH_INP, max_length_targ=MAX_LENGTH_TARG):
    """The tutorial's ``evaluate`` on one tokenized sentence (ids with <start> and <end>): the predicted
    ids, <end> included when it was predicted. ``max_length_inp=None`` skips the padding."""
    inputs = keras.utils.pad_sequences([inputs], maxlen=max_length_inp or len(inputs), padding="post")
    inputs = tf.convert_to_tensor(inputs)
    result = []
    hidden = [tf.zeros((1, units))]
    enc_out, enc_hidden = encoder(inputs, hidden)
    dec_hidden = enc_hidden
    dec_input = tf.expand_dims([START], 0)
    for t in range(max_length_targ):
        predictions, dec_hidden, attention_weights = decoder(dec_input, dec_hidden, enc_out)
        predicted_id = int(tf.argmax(predictions[0]).numpy())
        result.append(predicted_id)
        if predicted_id == END:
            return result
        # the predicted ID is fed back into the model
        dec_input = tf.expand_dims([predicted_id], 0)
    return result


def train(units: int = 16, embedding_dim: int = 8, epochs: int = 4, samples: int = 512, batch_size: int = 64):
    """The tutorial's training (Adam, masked loss, teacher forcing) of a tiny model on the reversal task
    (seeded): returns (encoder, decoder)."""
    keras.utils.set_random_seed(0)
    encoder = Encoder(len(TOKENS), embedding_dim, units, batch_size)
    decoder = Decoder(len(TOKENS), embedding_dim, units, batch_size)
    optimizer = keras.optimizers.Adam(0.01)
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    def loss_function(real, pred):
        mask = tf.math.logical_not(tf.math.equal(real, 0))
        loss_ = loss_object(real, pred)
        mask = tf.cast(mask, dtype=loss_.dtype)
        loss_ *= mask
        return tf.reduce_mean(loss_)

    @tf.function
    def train_step(inp, targ, enc_hidden):
        loss = 0
        with tf.GradientTape() as tape:
            enc_output, enc_hidden = encoder(inp, enc_hidden)
            dec_hidden = enc_hidden
            dec_input = tf.expand_dims([START] * batch_size, 1)
            # Teacher forcing - feeding the target as the next input
            for t in range(1, targ.shape[1]):
                predictions, dec_hidden, _ = decoder(dec_input, dec_hidden, enc_output)
                loss += loss_function(targ[:, t], predictions)
                dec_input = tf.expand_dims(targ[:, t], 1)
        batch_loss = loss / int(targ.shape[1])
        variables = encoder.trainable_variables + decoder.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return batch_loss

    rows, _, _, _ = reverse_data(samples, seed=0)
    inp, targ = tensors(rows)
    for _ in range(epochs):
        enc_hidden = encoder.initialize_hidden_state()
        for b in range(samples // batch_size):  # the dataset's batches, drop_remainder=True
            part = slice(b * batch_size, (b + 1) * batch_size)
            train_step(tf.constant(inp[part]), tf.constant(targ[part]), enc_hidden)
    return encoder, decoder
