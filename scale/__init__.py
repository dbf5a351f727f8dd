"""Score many inputs with one bundle: a file in, a file out, on this machine's cores (the local engine).

`seq2seq-edge score BUNDLE --input PATH --output PATH` reads sources (a text file, one per line, or CSV /
JSON Lines with a column), decodes them in batches on N worker processes that each load the bundle once
with one onnxruntime thread, and writes one row per input row (JSON Lines): its ``id`` (the input row
number), the ``source``, the ``output`` and the ``log_prob`` where the strategy gives one; a bad row (an
empty source, an unknown symbol) gets an ``error`` instead of stopping the job. Rows go to ``OUTPUT.partial``
as they are scored; a stopped or killed job continues with ``--resume``. Needs the runtime only.
"""

from __future__ import annotations

from .files import read_sources, INPUT_KINDS, OUTPUT_KINDS
from .local import ScoreInterrupted, ScoreSummary, score_file
from .scorer import Scorer

__all__ = ["score_file", "score_dataset", "ScoreSummary", "ScoreInterrupted", "Scorer", "read_sources", "INPUT_KINDS", "OUTPUT_KINDS"]


def score_dataset(dataset, bundle, **kwargs):
    """Score a Ray Dataset (see scale.ray_engine.score_dataset; Ray is imported only when this is called)."""
    from .ray_engine import score_dataset as run

    return run(dataset, bundle, **kwargs)
