"""seq2seq_edge.runtime: load a bundle and decode with numpy + onnxruntime only.

>>> from seq2seq_edge.runtime import load
>>> model = load("bundle")
>>> model.generate_text(["14 juillet 2023"])
['2023-07-14']

This package never imports tensorflow, keras, tf2onnx or onnx.

Stable API
----------
The names below are covered by compatibility: their arguments and result types change only with a new
major version. Each call returns one type whatever the bundle, and a batch of no rows (``[]`` or an
array whose first axis is 0) returns an empty result of that type without running a graph.

``load(path, threads=None)``
    A ``Seq2SeqModel``, or an ``AutoencoderModel`` for ``family: autoencoder`` bundles.

``Seq2SeqModel``
    - ``encode(source, lengths=None) -> dict[str, np.ndarray]``: the decoder's state, float32
      (batch, size) per state tensor (attention bundles add their constants, (batch, time[, size])).
    - ``step(step_input, state) -> tuple[np.ndarray, dict[str, np.ndarray]]``: float32 logits
      (batch, vocab) or normalised features (batch, features), and the next state.
    - ``generate(source, max_steps=None, *, lengths, first_input, mode, options) -> list[np.ndarray]``:
      one array per row: int32 ids (length,) for token targets, float32 (steps, features) in the
      data's units for real-valued targets (``np.stack`` makes the (batch, steps, features) array).
    - ``generate_text(texts, max_steps=None, *, mode, options) -> list[str]``.
    - ``decode(source, options=None, *, lengths, max_steps, return_attention) -> list[list[Hypothesis]]``:
      per row, 1 hypothesis (greedy, sample) or the beam's ``n_best``, best first.
    - ``decode_text(texts, options=None, max_steps=None) -> list[list[TextHypothesis]]``.
    - ``stream(source, max_steps=None, *, lengths, first_input, options) -> Iterator[np.ndarray]``:
      per step, int32 ids (batch,) (-1 once a row has ended) or float32 (batch, features).
    - ``check_decoding(mode=None, options=None) -> None``; properties ``modes``, ``max_steps``,
      ``source_vocab``, ``target_vocab``, ``manifest``.

``AutoencoderModel``
    ``reconstruct(x)`` float32 (batch, window, features); ``embed(x)`` float32 (batch, latent);
    ``score(x, per_step=False)`` float32 (batch,) or (batch, window); ``detect(x, threshold=None,
    per_step=False)`` bool (batch,) or (batch, window); properties ``window``, ``threshold``,
    ``step_threshold``, ``manifest``.

``DecodeOptions`` (frozen, validated when built), ``Hypothesis`` (frozen: ``tokens`` int32, ``log_prob``,
``score``, ``ended``, ``attention``), ``TextHypothesis`` (named tuple: ``text``, ``log_prob``, ``score``),
``Vocabulary``, and the errors ``Seq2SeqEdgeError`` > ``BundleError``, ``InputError`` > ``UnknownTokenError``.
"""

from .autoencoder import AutoencoderModel
from .errors import BundleError, InputError, Seq2SeqEdgeError, UnknownTokenError
from .loader import load
from .manifest import AutoencoderManifest, Manifest
from .model import Seq2SeqModel
from .strategies import DecodeOptions, Hypothesis, TextHypothesis
from .vocab import Vocabulary

__all__ = ["load", "Seq2SeqModel", "AutoencoderModel", "DecodeOptions", "Hypothesis", "TextHypothesis", "Manifest",
           "AutoencoderManifest", "Vocabulary", "Seq2SeqEdgeError", "BundleError", "InputError", "UnknownTokenError"]
