"""Built-in task `dates`: human-readable dates in several languages -> ISO 8601.

"vendredi 14 juillet 2023", "July 14, 2023", "14. Juli 2023" -> "2023-07-14".
Strings come from babel's CLDR data (pinned in pyproject.toml: its strings
change between releases). Formats whose meaning is ambiguous are left out:
only formats with a written month name and a four-digit year are used, so no
two-digit years and no numeric day/month orders that depend on the locale.
Splits are made by calendar day, so no test date appears in training.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from functools import lru_cache

from .base import TokenSplits, split_sizes

__all__ = ["make", "LOCALES", "FIRST_DAY", "LAST_DAY"]

LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_PT", "sv_SE")
FORMATS = ("full", "long", "medium")
SKELETONS = ("yMMMd", "yMMMMd", "yMMMEd", "yMMMMEEEEd")
FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
_PROBES = (dt.date(2023, 7, 4), dt.date(1999, 12, 25))


def render(day: dt.date, locale: str, style: str) -> str:
    """One date in one locale and style ('full', 'long', 'medium' or a CLDR skeleton)."""
    from babel.dates import format_date, format_skeleton

    if style in FORMATS:
        return format_date(day, style, locale=locale)
    return format_skeleton(style, day, locale=locale)


def _unambiguous(locale: str, style: str) -> bool:
    """True when every probe renders with exactly two numbers: the day and a 4-digit year."""
    for day in _PROBES:
        numbers = re.findall(r"\d+", render(day, locale, style))
        if sorted(numbers, key=len) != [str(day.day), str(day.year)]:
            return False
    return True


@lru_cache(maxsize=None)
def styles() -> tuple[tuple[str, str], ...]:
    """All (locale, style) pairs used by the task, ambiguous ones removed."""
    return tuple((loc, s) for loc in LOCALES for s in FORMATS + SKELETONS if _unambiguous(loc, s))


def _variant(text: str, rng: random.Random) -> str:
    """Light augmentation: people type lowercase and drop commas."""
    roll = rng.random()
    if roll < 0.15:
        return text.lower()
    if roll < 0.25:
        return text.replace(",", "")
    return text


def _pairs(days: list[dt.date], count: int, rng: random.Random) -> list[tuple[str, str]]:
    combos = styles()
    out = []
    for _ in range(count):
        day = rng.choice(days)
        locale, style = rng.choice(combos)
        out.append((_variant(render(day, locale, style), rng), day.isoformat()))
    return out


def make(samples: int, seed: int, validation_split: float, test_split: float) -> TokenSplits:
    """Generate the task's splits; the same arguments always give the same data."""
    rng = random.Random(seed)
    days = [FIRST_DAY + dt.timedelta(d) for d in range((LAST_DAY - FIRST_DAY).days + 1)]
    rng.shuffle(days)
    n_train, n_val, n_test = split_sizes(samples, validation_split, test_split)
    cut_val = int(len(days) * (1 - validation_split - test_split))
    cut_test = int(len(days) * (1 - test_split))
    return TokenSplits(train=_pairs(days[:cut_val], n_train, rng),
                       validation=_pairs(days[cut_val:cut_test], n_val, rng),
                       test=_pairs(days[cut_test:], n_test, rng))
