"""Small, exact metric helpers shared by the evaluation modes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from memcli.store import names


def ratio(part: float, whole: float) -> float:
    """part / whole, 0.0 when whole is 0."""
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class PRF:
    correct: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return ratio(self.correct, self.predicted)

    @property
    def recall(self) -> float:
        return ratio(self.correct, self.gold)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return ratio(2 * p * r, p + r)


def max_matching(
    n_left: int, n_right: int, fits: Callable[[int, int], bool]
) -> list[tuple[int, int]]:
    """A maximum one-to-one matching between left and right items (augmenting paths;
    the sets here are a handful of triples)."""
    edges = [[j for j in range(n_right) if fits(i, j)] for i in range(n_left)]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(n_left):
        augment(i, set())
    return sorted((i, j) for j, i in owner.items())


def _pattern(key: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(key) + r"(?!\w)")


def contains_any(text: str, surfaces: Iterable[str]) -> str | None:
    """The first of `surfaces` that `text` contains as whole words, compared by matching
    key (case- and space-insensitive); None if none does."""
    hay = names.key(text)
    for surface in surfaces:
        key = names.key(surface)
        if key and _pattern(key).search(hay):
            return surface
    return None


def perplexity(logprobs: Sequence[float] | float, count: int | None = None) -> float:
    """exp(-mean log-probability): of a list, or of a sum over `count` tokens.
    NaN when there are no tokens."""
    if count is None:
        assert not isinstance(logprobs, (int, float))
        total, count = float(sum(logprobs)), len(logprobs)
    else:
        total = float(logprobs)  # type: ignore[arg-type]
    if not count:
        return math.nan
    return math.exp(-total / count)
