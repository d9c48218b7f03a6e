"""Comparing two engines' matches event by event, as `rsigma-bench --dump` writes them: one list of
matched rule ids (the title where a rule has no id) per event line (benchmarks/vs_rsigma.py and
tests/corpus/test_vs_rsigma.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import zip_longest


@dataclass
class Difference:
    """An event the two engines disagree on: rule ids (or titles) only one of them matched."""

    line: int
    ours_only: list[str]
    rsigma_only: list[str]


def compare_dumps(ours: list[list[str]], rsigma: list[list[str]]) -> list[Difference]:
    """Every line (from 1) whose matched rules differ, counting each rule as often as it matched (a
    rule id loaded twice matches twice); a line missing from one dump counts as matching nothing there."""
    out = []
    for line, (mine, theirs) in enumerate(zip_longest(ours, rsigma, fillvalue=[]), 1):
        a, b = Counter(mine), Counter(theirs)
        if a != b:
            out.append(Difference(line, sorted((a - b).elements()), sorted((b - a).elements())))
    return out
