"""The model shapes users bring, built as the widely copied examples build them (small, seeded)."""

from __future__ import annotations

import numpy as np

PAIRS = [("Go.", "Va !"), ("Hi.", "Salut !"), ("Run!", "Cours !"), ("Wow!", "Ça alors !"), ("Fire!", "Au feu !"),
         ("Help!", "À l'aide !"), ("Stop!", "Arrête-toi !"), ("Wait!", "Attends !"), ("I see.", "Je comprends."),
         ("Hello!", "Bonjour !")]


def keras_io_char_seq2seq(latent_dim: int = 16, epochs: int = 3, seed: int = 0):
    """The keras-io character-level seq2seq example: one-hot inputs, "\\t" start, "\\n" end.

    Returns (encoder_model, decoder_model, input_tokens, target_tokens, decode_sequence) where
    decode_sequence(text) is the example's own greedy decoding loop (predict() per step).
    """
    import keras

    keras.utils.set_random_seed(seed)
    inputs = [a for a, _ in PAIRS]
    targets = ["\t" + b + "\n" for _, b in PAIRS]
    input_tokens = sorted({c for t in inputs for c in t})
    target_tokens = sorted({c for t in targets for c in t})
    n_in, n_out = len(input_tokens), len(target_tokens)
    max_in, max_out = max(map(len, inputs)), max(map(len, targets))
    enc_x = np.zeros((len(PAIRS), max_in, n_in), "float32")
    dec_x = np.zeros((len(PAIRS), max_out, n_out), "float32")
    dec_y = np.zeros((len(PAIRS), max_out, n_out), "float32")
    for i, (a, b) in enumerate(zip(inputs, targets)):
        for t, ch in enumerate(a):
            enc_x[i, t, input_tokens.index(ch)] = 1.0
        enc_x[i, len(a):, input_tokens.index(" ")] = 1.0
        for t, ch in enumerate(b):
            dec_x[i, t, target_tokens.index(ch)] = 1.0
            if t > 0:
                dec_y[i, t - 1, target_tokens.index(ch)] = 1.0

    encoder_inputs = keras.Input(shape=(None, n_in))
    encoder = keras.layers.LSTM(latent_dim, return_state=True)
    _, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    decoder_inputs = keras.Input(shape=(None, n_out))
    decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = keras.layers.Dense(n_out, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    model.fit([enc_x, dec_x], dec_y, batch_size=4, epochs=epochs, verbose=0)

    encoder_model = keras.Model(encoder_inputs, encoder_states)
    decoder_state_input_h = keras.Input(shape=(latent_dim,))
    decoder_state_input_c = keras.Input(shape=(latent_dim,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_outputs, state_h, state_c = decoder_lstm(decoder_inputs, initial_state=decoder_states_inputs)
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = keras.Model([decoder_inputs] + decoder_states_inputs, [decoder_outputs, state_h, state_c])

    def decode_sequence(text: str, max_steps: int = max_out) -> str:
        x = np.zeros((1, len(text), n_in), "float32")
        for t, ch in enumerate(text):
            x[0, t, input_tokens.index(ch)] = 1.0
        states = encoder_model.predict(x, verbose=0)
        target = np.zeros((1, 1, n_out), "float32")
        target[0, 0, target_tokens.index("\t")] = 1.0
        out = ""
        for _ in range(max_steps):
            probs, h, c = decoder_model.predict([target] + list(states), verbose=0)
            ch = target_tokens[int(np.argmax(probs[0, -1, :]))]
            if ch == "\n":
                break
            out += ch
            target = np.zeros((1, 1, n_out), "float32")
            target[0, 0, target_tokens.index(ch)] = 1.0
            states = [h, c]
        return out

    return encoder_model, decoder_model, input_tokens, target_tokens, decode_sequence, max_out


def sine_four_layer_decoder(units: int = 8, horizon: int = 150, seed: int = 0):
    """The widely copied continuous example: the decoder's first layer starts from the encoder's final
    (h, c), its other three layers from zeros; each prediction is fed back in.

    Returns (encoder_model, decoder_model); encoder returns 2 states, decoder takes 8.
    """
    import keras

    keras.utils.set_random_seed(seed)
    features = 1
    enc_in = keras.Input((None, features))
    _, h, c = keras.layers.LSTM(units, return_state=True)(enc_in)
    encoder_model = keras.Model(enc_in, [h, c])
    dec_in = keras.Input((None, features))
    layers = [keras.layers.LSTM(units, return_sequences=True, return_state=True) for _ in range(4)]
    dense = keras.layers.Dense(features)
    state_inputs, state_outputs, y = [], [], dec_in
    for layer in layers:
        h_in, c_in = keras.Input((units,)), keras.Input((units,))
        y, h_out, c_out = layer(y, initial_state=[h_in, c_in])
        state_inputs += [h_in, c_in]
        state_outputs += [h_out, c_out]
    decoder_model = keras.Model([dec_in] + state_inputs, [dense(y)] + state_outputs)
    return encoder_model, decoder_model


def sequential_autoencoder(window: int = 20, features: int = 2, seed: int = 0):
    """A keras.Sequential RepeatVector autoencoder (32 -> 16 -> repeat -> 16 -> 32, relu)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((window, features)),
        layers.LSTM(32, activation="relu", return_sequences=True),
        layers.LSTM(16, activation="relu"),
        layers.RepeatVector(window),
        layers.LSTM(16, activation="relu", return_sequences=True),
        layers.LSTM(32, activation="relu", return_sequences=True),
        layers.TimeDistributed(layers.Dense(features)),
    ])


def attention_seq2seq(kind: str = "luong", cell: str = "lstm", mask: bool = True, weights: bool = True,
                      units: int = 16, epochs: int = 20, seed: int = 0):
    """An encoder-decoder with attention as users write it (the TensorFlow NMT tutorial's shape).

    The encoder model returns its sequence output and final states; the step decoder model takes the
    step token id, its states, that sequence and (``mask``) a bool source mask (batch, time), and returns
    softmax probabilities, its next states and (``weights``) the attention weights. ``kind``:
    'luong' (keras.layers.Attention), 'bahdanau' (AdditiveAttention), 'mha' (MultiHeadAttention, 2
    heads) or 'dense' (written out with Dense, Dot and a masked Softmax). Trained briefly on PAIRS
    (characters; sources padded with id 0 "<pad>", masked when ``mask``).

    Returns (encoder_model, decoder_model, source_tokens, target_tokens).
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    source_tokens = ["<pad>"] + sorted({c for a, _ in PAIRS for c in a})
    target_tokens = sorted({c for _, b in PAIRS for c in "\t" + b + "\n"})
    rnn = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    n_states = 2 if cell == "lstm" else 1

    src_embed = layers.Embedding(len(source_tokens), 8)
    encoder_rnn = rnn(units, return_sequences=True, return_state=True)
    tgt_embed = layers.Embedding(len(target_tokens), 8)
    decoder_rnn = rnn(units, return_sequences=True, return_state=True)
    head = layers.Dense(len(target_tokens), activation="softmax")
    if kind == "luong":
        attention = layers.Attention()
    elif kind == "bahdanau":
        attention = layers.AdditiveAttention()
    elif kind == "mha":
        attention = layers.MultiHeadAttention(num_heads=2, key_dim=units // 2)
    else:
        key_dense, dot, softmax, mix = layers.Dense(units, use_bias=False), layers.Dot(axes=2), layers.Softmax(), \
            layers.Dot(axes=(2, 1))

    def attend(query, memory, source_mask):
        if kind in ("luong", "bahdanau"):
            return attention([query, memory], mask=[None, source_mask], return_attention_scores=True)
        if kind == "mha":
            m = None if source_mask is None else layers.Reshape((1, -1))(source_mask)  # (batch, 1, time)
            return attention(query, memory, attention_mask=m, return_attention_scores=True)
        scores = dot([query, key_dense(memory)])  # (batch, steps, time)
        m = None if source_mask is None else layers.Reshape((1, -1))(source_mask)
        w = softmax(scores, mask=m)
        return mix([w, memory]), w

    def decode(y, states, memory, source_mask):
        out, *next_states = decoder_rnn(y, initial_state=states)
        context, w = attend(out, memory, source_mask)
        return head(layers.Concatenate()([context, out])), next_states, w

    # Teacher-forced training model.
    src = keras.Input((None,), dtype="int32")
    tgt = keras.Input((None,), dtype="int32")
    src_mask = keras.Input((None,), dtype="bool") if mask else None
    memory, *states = encoder_rnn(src_embed(src))
    probs, _, _ = decode(tgt_embed(tgt), states, memory, src_mask)
    model = keras.Model([src, tgt] + ([src_mask] if mask else []), probs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    longest = max(len(a) for a, _ in PAIRS)
    x = np.array([[source_tokens.index(c) for c in a] + [0] * (longest - len(a)) for a, _ in PAIRS], np.int32)
    targets = ["\t" + b + "\n" for _, b in PAIRS]
    width = max(map(len, targets))
    ids = np.array([[target_tokens.index(c) for c in t] + [0] * (width - len(t)) for t in targets], np.int32)
    feed = [x, ids[:, :-1]] + ([x != 0] if mask else [])
    model.fit(feed, ids[:, 1:], batch_size=5, epochs=epochs, verbose=0)

    encoder_model = keras.Model(src, [memory] + states)
    step = keras.Input((1,), dtype="int32")
    state_inputs = [keras.Input((units,)) for _ in range(n_states)]
    memory_input = keras.Input((None, units))
    mask_input = keras.Input((None,), dtype="bool") if mask else None
    probs, next_states, w = decode(tgt_embed(step), state_inputs, memory_input, mask_input)
    decoder_model = keras.Model([step] + state_inputs + [memory_input] + ([mask_input] if mask else []),
                                [probs] + next_states + ([w] if weights else []))
    return encoder_model, decoder_model, source_tokens, target_tokens
