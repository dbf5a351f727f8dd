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
