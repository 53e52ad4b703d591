"""'Did you mean ...?' for a refused name: the choice it nearly is, in case, separators or spelling.

Pure (difflib only), so the core may use it too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ("closest", "did_you_mean")

# Below this difflib ratio two spellings are different words, not a typo of one another.
_CUTOFF = 0.75
_SEPARATORS = str.maketrans("", "", "_- ")


def _fold(word: str) -> str:
    return word.translate(_SEPARATORS).lower()


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely stands for, or None when none is near.

    A choice equal to ``word`` but for case and ``_``/``-``/space (``aggregate_id`` for
    ``aggregateId``, ``europe/berlin``) wins; otherwise the closest spelling by difflib's ratio,
    compared without case.
    """
    if not isinstance(word, str) or not word or len(word) > 200:
        return None
    options = list(choices)
    folded = _fold(word)
    for choice in options:
        if _fold(choice) == folded:
            return choice
    by_lower: dict[str, str] = {}
    for choice in options:
        by_lower.setdefault(choice.lower(), choice)
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=_CUTOFF)
    return by_lower[matches[0]] if matches else None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``" (did you mean 'X'?)"`` for the closest choice, or ``""`` when none is near."""
    match = closest(word, choices)
    return "" if match is None else f" (did you mean {match!r}?)"
