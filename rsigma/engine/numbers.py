"""The one grammar for numbers written as text, shared by the matchers and the candidate index.

A rule number (`EventID: 4624`, `Size|gt: 5`) compares with event numbers and with event strings
that are numbers. Which strings are numbers must be decided in one place: when the index and the
matchers read them differently, whether a rule fires depends on which item the index picked.

The grammar is RSigma's (Rust's `f64` syntax) without its words: an optional sign, ASCII digits with
an optional fraction, an optional exponent (`4624`, `+4624`, `04624`, `4624.0`, `4624.`, `.5`,
`4.624e3`). Nothing around it: no whitespace (`"4624 "`, `"4624\\n"`), no `_` separators, no
non-ASCII digits (full-width `４６２４`), no hexadecimal, and no `inf`, `infinity` or `nan`, which
are words in a log, not measurements.
"""

from __future__ import annotations

import re
from typing import Any, Final

_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NUMERIC_START: Final = frozenset("0123456789+-.")


def parse_number(text: str) -> float | None:
    """The value of a numeric text, or None when the text is not a number in the grammar above."""
    if _NUMBER.fullmatch(text) is None:
        return None
    return float(text)


def number_of(value: Any) -> float | None:
    """The number an event scalar compares as: JSON numbers, and strings in the grammar; never booleans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_number(value)
    return None


def canonical_number(value: float) -> str:
    """The one text the index files a number under: `4624`, `1.5`, `1e+20` as `100000000000000000000`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def canonical_key(text: str) -> str | None:
    """The canonical form of a numeric text written otherwise (`4624.0`, `04624`, `+4624`), else None.

    Texts already canonical (`4624`) and texts that are not numbers give None, cheaply for the usual
    non-numeric field value.
    """
    if text[:1] not in _NUMERIC_START:
        return None
    if text.isascii() and text.isdigit() and (text[0] != "0" or len(text) == 1):
        return None
    number = parse_number(text)
    if number is None:
        return None
    key = canonical_number(number)
    return None if key == text else key
