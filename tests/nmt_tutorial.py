"""TensorFlow's "Neural machine translation with attention" tutorial
(tensorflow.org/text/tutorials/nmt_with_attention), written for Keras 3 as its code reads, without the
TextVectorization: the model takes integer ids (0 is padding, as the tutorial's vectorizer makes it).

Encoder, CrossAttention, Decoder and Translator keep the tutorial's layers, masks and greedy translate
loop (argmax, done flags, tokens after the end replaced by 0). ``train_reverse`` fits a tiny one (units 16)
for 3 epochs on a toy task, reversing a string of letters, so that its outputs are not trivial.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]") + tuple("abcdefgh")  # the vectorizer's ids ("" is [PAD] here)
START, END = TOKENS.index("[START]"), TOKENS.index("[END]")
LETTERS = np.arange(4, len(TOKENS))


class Encoder(keras.layers.Layer):
    def __init__(self, vocab_size, units):
        super().__init__()
        self.vocab_size, self.units = vocab_size, units
        # The embedding layer converts tokens to vectors
        self.embedding = keras.layers.Embedding(vocab_size, units, mask_zero=True)
        # The RNN layer processes those vectors sequentially.
        self.rnn = keras.layers.Bidirectional(
            merge_mode="sum", layer=keras.layers.GRU(units, return_sequences=True,
                                                     recurrent_initializer="glorot_uniform"))

    def call(self, x):
        x = self.embedding(x)  # (batch, s, units)
        x = self.rnn(x)        # (batch, s, units)
        return x


class CrossAttention(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__()
        self.mha = keras.layers.MultiHeadAttention(key_dim=units, num_heads=1, **kwargs)
        self.layernorm = keras.layers.LayerNormalization()
        self.add = keras.layers.Add()

    def call(self, x, context):
        attn_output, attn_scores = self.mha(query=x, value=context, return_attention_scores=True)
        # Cache the attention scores for plotting later.
        attn_scores = tf.reduce_mean(attn_scores, axis=1)
        self.last_attention_weights = attn_scores
        x = self.add([x, attn_output])
        x = self.layernorm(x)
        return x


class Decoder(keras.layers.Layer):
    def __init__(self, vocab_size, units, start_token=START, end_token=END):
        super().__init__()
        self.vocab_size, self.start_token, self.end_token = vocab_size, start_token, end_token
        self.units = units
        # 1. The embedding layer converts token IDs to vectors
        self.embedding = keras.layers.Embedding(vocab_size, units, mask_zero=True)
        # 2. The RNN keeps track of what's been generated so far.
        self.rnn = keras.layers.GRU(units, return_sequences=True, return_state=True,
                                    recurrent_initializer="glorot_uniform")
        # 3. The RNN output will be the query for the attention layer.
        self.attention = CrossAttention(units)
        # 4. This fully connected layer produces the logits for each output token.
        self.output_layer = keras.layers.Dense(vocab_size)

    def call(self, context, x, state=None, return_state=False):
        x = self.embedding(x)
        x, state = self.rnn(x, initial_state=state)
        x = self.attention(x, context)
        self.last_attention_weights = self.attention.last_attention_weights
        logits = self.output_layer(x)
        if return_state:
            return logits, state
        return logits

    def get_initial_state(self, context):
        batch_size = tf.shape(context)[0]
        start_tokens = tf.fill([batch_size, 1], self.start_token)
        done = tf.zeros([batch_size, 1], dtype=tf.bool)
        return start_tokens, done, self.rnn.get_initial_state(batch_size)[0]  # the GRU starts from zeros

    def get_next_token(self, context, next_token, done, state, temperature=0.0):
        logits, state = self(context, next_token, state=state, return_state=True)
        if temperature == 0.0:
            next_token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        else:
            logits = logits[:, -1, :] / temperature
            next_token = tf.random.categorical(logits, num_samples=1, dtype=tf.int32)
        # If a sequence produces an `end_token`, set it `done`
        done = done | (next_token == self.end_token)
        # Once a sequence is done it only produces 0-padding.
        next_token = tf.where(done, tf.constant(0, dtype=tf.int32), next_token)
        return next_token, done, state


class Translator(keras.Model):
    def __init__(self, units, vocab_size=len(TOKENS)):
        super().__init__()
        self.encoder = Encoder(vocab_size, units)
        self.decoder = Decoder(vocab_size, units)

    def call(self, inputs):
        context, x = inputs
        context = self.encoder(context)
        logits = self.decoder(context, x)
        try:  # Delete the keras mask, so keras doesn't scale the loss+accuracy.
            del logits._keras_mask
        except AttributeError:
            pass
        return logits

    def translate(self, ids, *, max_length=50, temperature=0.0):
        """The tutorial's loop on ids (batch, time), 0-padded: the tokens (batch, steps), 0 after [END]."""
        context = self.encoder(tf.constant(ids, tf.int32))
        tokens = []
        attention_weights = []
        next_token, done, state = self.decoder.get_initial_state(context)
        for _ in range(max_length):
            # Get the next token.
            next_token, done, state = self.decoder.get_next_token(context, next_token, done, state, temperature)
            # Collect the generated tokens
            tokens.append(next_token)
            attention_weights.append(self.decoder.last_attention_weights)
            if tf.executing_eagerly() and tf.reduce_all(done):
                break
        tokens = tf.concat(tokens, axis=-1)  # t*[(batch 1)] -> (batch, t)
        self.last_attention_weights = tf.concat(attention_weights, axis=1)  # t*[(batch 1 s)] -> (batch, t s)
        return tokens.numpy()


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
    model = Translator(units)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=masked_loss)
    _, src, tin, tout = reverse_data(samples, seed=0)
    model.fit((src, tin), tout, epochs=epochs, batch_size=64, verbose=0)
    return model
