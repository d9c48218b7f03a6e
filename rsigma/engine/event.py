"""Field access on a decoded JSON event, with per-event caches shared by the index and every rule.

Field names are case-sensitive. A flat key (`"a.b"`) wins over nesting; otherwise a dotted name walks
nested objects, following every element of the arrays it meets. Text forms (lower-cased for the
default case-insensitive matching) are computed once per event and field, however many rules ask.
"""

from __future__ import annotations

from typing import Any, Final

from rsigma.engine.folding import fold
from rsigma.fields import MAX_DEPTH, MISSING, resolve, text_of

#: Joins event values for keyword search; a keyword that contains it is searched value by value.
KEYWORD_SEPARATOR: Final = "\x00"


def _texts(value: Any, out: list[str], depth: int = 0) -> None:
    if isinstance(value, list):
        if depth < MAX_DEPTH:
            for v in value:
                _texts(v, out, depth + 1)
        return
    t = text_of(value)
    if t is not None:
        out.append(t)


def _leaves(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for v in value.values() if isinstance(value, dict) else value:
        if type(v) is str:
            out.append(v)
        elif type(v) is int:
            out.append(str(v))
        elif isinstance(v, dict | list):
            _leaves(v, out, depth + 1)
        else:
            t = text_of(v)
            if t is not None:
                out.append(t)


class EventView:
    """One event being evaluated, with lazily filled caches."""

    __slots__ = ("data", "_values", "_texts", "lowered", "_raw_leaves", "_leaves", "_keyword_text")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._values: dict[str, Any] = {}
        self._texts: dict[str, tuple[str, ...]] = {}
        #: Lower-cased texts by field; hot paths read it directly and call `lower()` on a miss.
        self.lowered: dict[str, tuple[str, ...]] = {}
        self._raw_leaves: tuple[str, ...] | None = None
        self._leaves: tuple[str, ...] | None = None
        self._keyword_text: str | None = None

    def get(self, field: str) -> Any:
        if "." not in field:
            return self.data.get(field, MISSING)
        try:
            return self._values[field]
        except KeyError:
            v = self._values[field] = resolve(self.data, field)
            return v

    def texts(self, field: str) -> tuple[str, ...]:
        """Text forms of the field's scalar values (list elements flattened), original case."""
        cached = self._texts.get(field)
        if cached is not None:
            return cached
        value = self.get(field)
        if isinstance(value, str):
            result: tuple[str, ...] = (value,)
        else:
            out: list[str] = []
            if value is not MISSING:
                _texts(value, out)
            result = tuple(out)
        self._texts[field] = result
        return result

    def lower(self, field: str) -> tuple[str, ...]:
        """Lower-cased text forms of the field, for case-insensitive matching."""
        result = self.lowered.get(field)
        if result is None:
            texts = self.texts(field)
            result = self.lowered[field] = (
                (fold(texts[0]),) if len(texts) == 1 else tuple(fold(t) for t in texts)
            )
        return result

    def raw_leaves(self) -> tuple[str, ...]:
        """Text of every scalar in the event (keys excluded, any depth), for keyword search."""
        if self._raw_leaves is None:
            out: list[str] = []
            _leaves(self.data, out, 0)
            self._raw_leaves = tuple(out)
        return self._raw_leaves

    def leaves(self) -> tuple[str, ...]:
        """Lower-cased `raw_leaves`, for the default case-insensitive keyword search."""
        if self._leaves is None:
            self._leaves = tuple(fold(t) for t in self.raw_leaves())
        return self._leaves

    def keyword_text(self) -> str:
        """All lower-cased leaves joined by KEYWORD_SEPARATOR: one substring search finds a keyword.

        No needle contains the separator, so no match can span two values.
        """
        if self._keyword_text is None:
            self._keyword_text = fold(KEYWORD_SEPARATOR.join(self.raw_leaves()))
        return self._keyword_text
