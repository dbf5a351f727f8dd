"""``load``: open a bundle of either family and return its model object."""

from __future__ import annotations

from pathlib import Path

from .autoencoder import AutoencoderModel
from .bundle import open_bundle
from .manifest import AutoencoderManifest
from .model import Seq2SeqModel

__all__ = ["load"]


def load(path: str | Path, threads: int | None = None) -> Seq2SeqModel | AutoencoderModel:
    """Open and verify the bundle at ``path``; ``threads`` sets onnxruntime's intra-op threads.

    Returns a Seq2SeqModel (encode / step / generate / generate_text) or, for
    ``family: autoencoder`` bundles, an AutoencoderModel (reconstruct / embed / score / detect).
    """
    bundle = open_bundle(path, threads=threads)
    if isinstance(bundle.manifest, AutoencoderManifest):
        return AutoencoderModel(bundle)
    return Seq2SeqModel(bundle)
