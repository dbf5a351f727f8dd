"""Keras builders for RepeatVector sequence autoencoders.

    source (batch, window, features)
      -> encoder_rnn_0 ... encoder_rnn_{n-1}   (the last returns one vector: the latent)
      -> repeat (RepeatVector(window))
      -> decoder_rnn_0 ... decoder_rnn_{n-1}   (widths mirrored, return_sequences=True)
      -> output (TimeDistributed(Dense(features)))
"""

from __future__ import annotations

import keras
from keras import layers

from .config import AutoencoderConfig
from .models import recurrent_layer

__all__ = ["build_autoencoder"]


def build_autoencoder(cfg: AutoencoderConfig, window: int, features: int) -> keras.Model:
    """The trainable autoencoder (fit it on x -> x with mse)."""
    source = keras.Input((window, features), name="source")
    x = source
    for k, units in enumerate(cfg.units):
        last = k == len(cfg.units) - 1
        x = recurrent_layer(cfg.cell, units, cfg.activation, f"encoder_rnn_{k}", return_sequences=not last)(x)
    x = layers.RepeatVector(window, name="repeat")(x)  # (batch, window, latent)
    for k, units in enumerate(reversed(cfg.units)):
        x = recurrent_layer(cfg.cell, units, cfg.activation, f"decoder_rnn_{k}", return_sequences=True)(x)
    output = layers.TimeDistributed(layers.Dense(features, dtype="float32"), name="output",
                                    dtype="float32")(x)  # (batch, window, features)
    return keras.Model(source, output, name="autoencoder")
