"""Case-insensitive text: one folding for plain values, wildcards, keywords, `(?i)` regexes and the index.

`(?i)` regexes run on RE2, which compares characters by Unicode simple case folding: the long s `ſ`
matches `s`, the micro sign `µ` matches `μ`, the final sigma `ς` matches `σ`. Python's `str.lower()`
leaves those lower-case variants as they are, so a test on lower-cased texts would miss what RE2
matches (and the regex prefilter and the candidate index, which look for a regex's literal in the
lower-cased text, would reject events RE2 accepts). `fold` is `str.lower()` plus the few mappings
that make every RE2 case-folding orbit one character: the same rule for every kind of value.
"""

from __future__ import annotations

import re
from typing import Final

#: Lower-case characters RE2 folds together with another lower-case character, mapped to the one
#: `str.lower()` gives for the orbit's first capital, or to the orbit's lowest code point when it has
#: no capital (tests/engine/test_folding.py rebuilds the table from RE2).
EXTRA_FOLDS: Final = {
    "\u017f": "s",  # ſ long s
    "\u00b5": "\u03bc",  # µ micro sign -> μ
    "\u0345": "\u03b9",  # combining ypogegrammeni -> ι
    "\u1fbe": "\u03b9",  # prosgegrammeni -> ι
    "\u1fd3": "\u0390",  # ΐ (two code points with one folding)
    "\u1fe3": "\u03b0",  # ΰ
    "\u03d0": "\u03b2",  # ϐ -> β
    "\u03f5": "\u03b5",  # ϵ -> ε
    "\u03d1": "\u03b8",  # ϑ -> θ
    "\u03f0": "\u03ba",  # ϰ -> κ
    "\u03d6": "\u03c0",  # ϖ -> π
    "\u03f1": "\u03c1",  # ϱ -> ρ
    "\u03c2": "\u03c3",  # ς final sigma -> σ
    "\u03d5": "\u03c6",  # ϕ -> φ
    "\u1c80": "\u0432",  # Cyrillic small rounded ve -> в
    "\u1c81": "\u0434",  # long-legged de -> д
    "\u1c82": "\u043e",  # narrow o -> о
    "\u1c83": "\u0441",  # wide es -> с
    "\u1c84": "\u0442",  # tall te -> т
    "\u1c85": "\u0442",  # three-legged te -> т
    "\u1c86": "\u044a",  # tall hard sign -> ъ
    "\u1c87": "\u0463",  # tall yat -> ѣ
    "\u1c88": "\ua64b",  # unblended uk -> ꙋ
    "\u1e9b": "\u1e61",  # ẛ long s with dot above -> ṡ
    "\ufb06": "\ufb05",  # ﬆ st ligature -> ﬅ (no capital: the lower code point)
}
_TABLE: Final = str.maketrans(EXTRA_FOLDS)
#: Finds a character to map in one C pass; `str.translate` looks up every character of the text.
_EXTRA: Final = re.compile("[" + "".join(EXTRA_FOLDS) + "]")


def fold(text: str) -> str:
    """The case-folded form every case-insensitive comparison uses, on both the rule and the event side."""
    low = text.lower()
    if low.isascii() or _EXTRA.search(low) is None:
        return low
    return low.translate(_TABLE)
