"""TensorFlow's "Neural machine translation with attention" tutorial
(tensorflow.org/text/tutorials/nmt_with_attention), written for Keras 3 as its code reads, without the
TextVectorization: the model takes integer ids (0 is padding, 1 [UNK], 2 [START], 3 [END], as the
tutorial's vectorizer makes them).

Encoder, CrossAttention, Decoder and Translator keep the tutorial's layers, masks and greedy translate
loop (argmax, done flags, tokens after the end replaced by 0). The bench runs it at the tutorial's size
(units 256, a 5,000-word vocabulary), seeded and untrained, exported through ``glue`` (the README's lines
for export_functions); tests/nmt_tutorial.py trains a tiny one.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

__all__ = ["Encoder", "CrossAttention", "Decoder", "Translator", "START", "END", "glue", "make_translator",
           "word_tokens", "translate_rows", "TranslateReference", "litert", "step_macs"]

START, END = 2, 3  # the vectorizer's ids of [START] and [END]


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
    def __init__(self, units, vocab_size=5000):
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


def glue(translator):
    """The few lines a user writes for export_functions: encode returns the context, step runs one
    decoder call on its own decoder object."""
    def encode(source):
        return {"context": translator.encoder(source)}

    def step(token, states, constants):
        logits, state = translator.decoder(constants["context"], token[:, None], state=states["state"],
                                           return_state=True)
        return logits[:, 0], {"state": state}

    return encode, step


def word_tokens(vocab_size: int) -> tuple[str, ...]:
    """The vectorizer's vocabulary: '[PAD]', '[UNK]', '[START]', '[END]', then words."""
    return ("[PAD]", "[UNK]", "[START]", "[END]") + tuple(f"w{i}" for i in range(4, vocab_size))


def make_translator(units: int = 256, vocab_size: int = 5000, seed: int = 0) -> Translator:
    """A seeded, untrained Translator at the tutorial's size. Its output weights are scaled by 8, so that
    its choices are decisive (no near-ties between logits that float rounding could flip)."""
    keras.utils.set_random_seed(seed)
    translator = Translator(units, vocab_size=vocab_size)
    ids = np.full((1, 2), 4, np.int32)
    translator((ids, ids[:, :1]))  # builds the weights
    kernel, bias = translator.decoder.output_layer.get_weights()
    translator.decoder.output_layer.set_weights([kernel * 8, bias])
    return translator


def translate_rows(translator, ids: np.ndarray, max_length: int) -> list[np.ndarray]:
    """The tutorial's own translate loop on a batch of ids, each row cut at its end. The loop writes 0 in
    place of [END] and after it (``done`` rows produce 0-padding), and also when a row's argmax is [PAD],
    which does not end it; so a row ends where its trailing 0s begin (a row that runs to ``max_length``
    and emits [PAD] last is misread as ended there)."""
    tokens = translator.translate(ids, max_length=max_length)
    rows = []
    for row in tokens:
        nonzero = np.flatnonzero(row)
        rows.append(row[: nonzero[-1] + 1] if len(nonzero) else row[:0])
    return rows


class TranslateReference:
    """The tutorial's own loop behind the bench's reference call (generate_ids)."""

    def __init__(self, translator) -> None:
        self.translator = translator

    def generate_ids(self, ids, start_id: int = START, end_id: int = END, max_steps: int = 40) -> list:
        if (start_id, end_id) != (START, END):
            raise ValueError(f"the tutorial's decoder starts at id {START} and ends at {END}")
        return translate_rows(self.translator, np.asarray(ids, np.int32), max_steps)

    def __call__(self, ids, lengths=None) -> list:
        return self.generate_ids(ids)


def litert(translator, batch: int, time: int, start_id: int, end_id: int, max_steps: int, threads: int):
    """The same two functions as the export (``glue``), frozen at a fixed batch and source length, converted
    with TFLiteConverter and run by LiteRT interpreters in a greedy loop."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from ..runtime.strategies import greedy_tokens

    units = translator.decoder.units
    encode, step = glue(translator)
    enc = tf.function(lambda source: encode(source)["context"]).get_concrete_function(
        tf.TensorSpec((batch, time), tf.int32, name="source"))
    dec = tf.function(lambda token, state, context: step(token[:, 0], {"state": state}, {"context": context})
                      ).get_concrete_function(tf.TensorSpec((batch, 1), tf.int32, name="token"),
                                              tf.TensorSpec((batch, units), tf.float32, name="state"),
                                              tf.TensorSpec((batch, time, units), tf.float32, name="context"))
    run_enc, run_dec = (_interpreter(convert_variables_to_constants_v2(f), threads) for f in (enc, dec))

    def decode(ids, lengths=None):
        context = run_enc(source=np.asarray(ids, np.int32))[0]

        def one_step(tokens, state):
            logits, new = run_dec(token=tokens[:, None].astype(np.int32), state=state["state"], context=context)
            return logits, {"state": new}

        return greedy_tokens(one_step, {"state": np.zeros((batch, units), np.float32)},
                             np.full(batch, start_id, np.int32), end_id, max_steps)
    return decode


def _interpreter(frozen, threads: int):
    """A LiteRT interpreter of a frozen concrete function, called with named inputs; outputs in order."""
    import logging

    from ai_edge_litert.interpreter import Interpreter

    from .engines import _output_order

    logging.getLogger("absl").setLevel(logging.ERROR)  # the converter's deprecation advice
    interp = Interpreter(model_content=tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert(),
                         num_threads=threads)
    interp.allocate_tensors()
    inputs = {d["name"].split(":")[0]: d["index"] for d in interp.get_input_details()}
    outputs = sorted(interp.get_output_details(), key=lambda d: _output_order(d["name"]))

    def run(**feeds):
        for name, value in feeds.items():
            interp.set_tensor(inputs[name], value)
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in outputs]
    return run


def step_macs(translator, source_length: int) -> int:
    """Multiply-accumulates of one decoder step for one sequence: the GRU, the attention's query and output
    projections, its key and value projections of every source position (the tutorial's decoder recomputes
    them each step), the scores and context, and the output layer."""
    decoder = translator.decoder
    macs = sum(w.size for w in decoder.rnn.get_weights()[:2]) + decoder.output_layer.get_weights()[0].size
    query, key, value, out = [w for w in decoder.attention.mha.get_weights() if w.ndim == 3]  # kernels
    return macs + query.size + out.size + source_length * (key.size + value.size + 2 * decoder.units)
