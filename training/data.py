"""Turn task splits into model arrays: vocabularies, padded ids, teacher-forcing inputs, normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.inputs import normalise
from ..runtime.vocab import Vocabulary
from .tasks import FeatureSplits, TokenSplits

__all__ = ["Arrays", "build_vocabularies", "token_arrays", "feature_stats", "feature_arrays", "bucketed_batches",
           "dealt_batches"]


@dataclass(frozen=True)
class Arrays:
    """Model inputs and targets for one split."""

    source: np.ndarray        # (n, time) int32 ids, or (n, window, features) float32
    target_input: np.ndarray  # (n, steps) int32 ids starting with <s>, or (n, horizon, features)
    target: np.ndarray        # (n, steps) int32 ids ending with </s> (0 = padding), or (n, horizon, features)


def build_vocabularies(splits: TokenSplits) -> tuple[Vocabulary, Vocabulary]:
    """Source and target vocabularies from the training split only."""
    source = Vocabulary.build((s for s, _ in splits.train), separator=splits.source_separator,
                              reverse=splits.reverse_source)
    target = Vocabulary.build((t for _, t in splits.train), separator=splits.target_separator,
                              with_start_end=True)
    return source, target


def token_arrays(pairs: list[tuple[str, str]], source: Vocabulary, target: Vocabulary) -> Arrays:
    """Right-padded arrays for teacher forcing; padding id 0 is masked in the encoder and the loss."""
    src, _ = source.encode_batch([s for s, _ in pairs])  # (n, time)
    rows = [target.encode(t) for _, t in pairs]
    steps = max(len(r) for r in rows) + 1
    target_input = np.full((len(rows), steps), target.pad_id, np.int32)  # (n, steps)
    target_out = np.full((len(rows), steps), target.pad_id, np.int32)   # (n, steps)
    for i, row in enumerate(rows):
        target_input[i, : len(row) + 1] = [target.start_id] + row
        target_out[i, : len(row) + 1] = row + [target.end_id]
    return Arrays(src, target_input, target_out)


def feature_stats(splits: FeatureSplits) -> dict:
    """Per-feature mean and std of the training split, for source and target."""
    def stats(x: np.ndarray) -> dict:
        flat = x.reshape(-1, x.shape[-1])  # (n * time, features)
        return {"mean": flat.mean(axis=0).tolist(), "std": np.maximum(flat.std(axis=0), 1e-6).tolist()}

    return {"source": stats(splits.train[0]), "target": stats(splits.train[1])}


def feature_arrays(split: tuple[np.ndarray, np.ndarray], stats: dict) -> Arrays:
    """Normalised arrays; the decoder's first input is the window's last row (as in generation)."""
    def norm(x: np.ndarray, side: str) -> np.ndarray:
        return normalise(x, stats[side]["mean"], stats[side]["std"])

    source, target = split
    last = norm(source[:, -1:, :], "target")  # (n, 1, features)
    target_n = norm(target, "target")
    return Arrays(norm(source, "source"), np.concatenate([last, target_n[:, :-1]], axis=1), target_n)


def bucketed_batches(arrays: Arrays, batch_size: int, seed: int, replicas: int = 1, mine: tuple | None = None):
    """A tf.data.Dataset of token batches padded per batch, not to the longest example.

    Examples are sorted by source length (with a little seeded noise) and cut
    into batches, so a batch holds similar lengths; the batch order is shuffled
    every epoch. Padding everything to the longest word would spend most of the
    compute on padding. The time axes are declared dynamic (None), so every
    batch may have its own length.

    Distributed training (training/distribute.py) leaves out a batch that would
    leave a replica without rows. Mirrored, tf.distribute cuts each batch into
    consecutive parts, one per replica; with ``mine`` (multi-worker) each batch
    is dealt into ``replicas`` parts (rows k, k + replicas, ... for replica k),
    this worker's pipeline reading only the parts of its replicas ``mine``, each
    padded to its own longest row, in the seeded order that every worker repeats.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    source_len = (arrays.source != 0).sum(axis=1)  # (n,)
    target_len = (arrays.target != 0).sum(axis=1)  # (n,) including </s>
    order = np.argsort(source_len + rng.random(len(source_len)), kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [b for b in batches if _shared(len(b), replicas, mine)]

    def generate():
        for b in rng.permutation(len(batches)):
            for rows in _parts(batches[b], replicas, mine):
                s, t = source_len[rows].max(), target_len[rows].max()
                yield ({"source": arrays.source[rows, :s], "target_input": arrays.target_input[rows, :t]},
                       arrays.target[rows, :t])

    ids = tf.TensorSpec((None, None), tf.int32)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=({"source": ids, "target_input": ids}, ids))
    return _finish(dataset, len(batches), mine)


def dealt_batches(x: dict | np.ndarray, y: np.ndarray, batch_size: int, seed: int, replicas: int,
                  mine: tuple | None):
    """Fixed-shape arrays (real-valued sequences, autoencoder windows) as distributed training reads
    them: a seeded shuffle every epoch, the same on every worker, cut into global batches of
    ``batch_size``, left out or dealt to ``replicas`` as in ``bucketed_batches``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = len(y)
    # A batch's size depends on its place only, so the batches kept are the same every epoch.
    starts = [i for i in range(0, n, batch_size) if _shared(min(batch_size, n - i), replicas, mine)]
    take = (lambda a, rows: {k: v[rows] for k, v in a.items()}) if isinstance(x, dict) else \
        (lambda a, rows: a[rows])

    def generate():
        order = rng.permutation(n)
        for i in starts:
            for rows in _parts(order[i:i + batch_size], replicas, mine):
                yield take(x, rows), y[rows]

    spec = lambda a: tf.TensorSpec((None,) + a.shape[1:], tf.as_dtype(a.dtype))  # noqa: E731
    signature = ({k: spec(v) for k, v in x.items()} if isinstance(x, dict) else spec(x), spec(y))
    return _finish(tf.data.Dataset.from_generator(generate, output_signature=signature), len(starts), mine)


def _shared(rows: int, replicas: int, mine: tuple | None) -> bool:
    """Whether a global batch of ``rows`` gives every replica at least one row: dealt (``mine``: row k to
    replica k mod R), or cut by tf.distribute into consecutive parts of ceil(rows / R) (the mirrored strategy)."""
    if mine is not None or replicas == 1:
        return rows >= replicas
    return (replicas - 1) * -(-rows // replicas) < rows


def _parts(rows: np.ndarray, replicas: int, mine: tuple | None) -> list[np.ndarray]:
    """A global batch's rows as this pipeline reads them: whole, or the parts of its replicas ``mine``."""
    return [rows] if mine is None else [rows[k::replicas] for k in mine]


def _finish(dataset, steps: int, mine: tuple | None):
    """Prefetched, not sharded again by tf.distribute, and of known length where that length is
    the steps of an epoch (tf.distribute counts a pipeline's elements, one per replica it feeds)."""
    import tensorflow as tf

    if mine is None or len(mine) == 1:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    options = tf.data.Options()  # already sharded: tf.distribute must not shard it again
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(2)
