"""`--match-detail summary|full`: what a detection says about each item that made it match.

RSigma's levels and names: `off` keeps the plain `{"field", "value"}` entries; `summary` adds the
selection, the matcher kind and its case sensitivity to each entry, and reports what `off` leaves out:
keyword matches (`"field": "keyword"`, one entry per matching event value), absence matches
(`Field: null`, `"value": null`), `exists` and `neq` items (`"negated": true`); `full` adds the
pattern. It runs only for rules that matched, after the boolean path, so `off` costs nothing and
the others cost only per detection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from rsigma.engine.event import EventView
from rsigma.engine.matchers import Predicate
from rsigma.fields import MISSING
from rsigma.rules.model import DetectionItem
from rsigma.rules.values import STAR, SigmaCIDR, SigmaFieldRef, SigmaRegex, SigmaString

LEVELS: Final = ("off", "summary", "full")
#: Longer patterns (a windash or base64offset expansion joins many) are cut, as RSigma cuts them.
MAX_PATTERN_CHARS: Final = 256
#: Keyword entries per item at most: a keyword can match every value of a large event.
MAX_KEYWORD_MATCHES: Final = 16

_COMPARISONS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def check_level(level: str) -> str:
    """The level, or ValueError with the accepted ones."""
    if level not in LEVELS:
        raise ValueError(f"invalid match-detail level {level!r} (expected off, summary or full)")
    return level


def describe(item: DetectionItem) -> tuple[str, str | None, bool | None]:
    """The item's matcher kind (RSigma's names), its pattern and whether it is case-sensitive
    (None where case does not apply). Several values make a `one_of` of their patterns."""
    op = item.op
    if op == "exists":
        return "exists", str(bool(item.values[0])).lower(), None
    if op in _COMPARISONS:
        return "numeric", _joined(f"{_COMPARISONS[op]} {v}" for v in item.values), None
    if item.time_part is not None:
        return "timestamp", _joined(f"{item.time_part} {v}" for v in item.values), None
    kinds: list[str] = []
    patterns: list[str] = []
    case: bool | None = None
    for value in item.values:
        kind, pattern, case_sensitive = _describe_value(value, item.cased)
        kinds.append(kind)
        if pattern is not None:
            patterns.append(pattern)
        case = case_sensitive if case is None else case
    if len(kinds) == 1:
        return kinds[0], _cut(patterns[0]) if patterns else None, case
    return "one_of", _joined(patterns), case


def _describe_value(value: Any, cased: bool) -> tuple[str, str | None, bool | None]:
    if isinstance(value, SigmaRegex):
        return "regex", value.pattern, None  # flags may be inline, as `(?i)`: not reported, as in RSigma
    if isinstance(value, SigmaCIDR):
        return "cidr", str(value.network), None
    if isinstance(value, SigmaFieldRef):
        return "fieldref", value.field, cased
    if isinstance(value, SigmaString):
        return _describe_string(value, cased)
    if value is None:
        return "null", None, None
    if isinstance(value, bool):
        return "bool", str(value).lower(), None
    return "numeric", f"= {value}", None


def _describe_string(value: SigmaString, cased: bool) -> tuple[str, str, bool]:
    if value.has_placeholders:
        return "expand", str(value), cased
    parts = value.parts
    lead = value.starts_with_star()
    trail = value.ends_with_star() and len(parts) > 1
    inner = SigmaString(parts[1 if lead else 0 : len(parts) - 1 if trail else len(parts)], value.binary)
    if inner.has_wildcards or parts == (STAR,):
        return "regex", str(value), cased
    kind = "contains" if lead and trail else "endswith" if lead else "startswith" if trail else "exact"
    return kind, inner.plain(), cased


def _joined(patterns: Iterator[str] | list[str]) -> str:
    return _cut(", ".join(patterns))


def _cut(pattern: str) -> str:
    return pattern if len(pattern) <= MAX_PATTERN_CHARS else pattern[: MAX_PATTERN_CHARS - 3] + "..."


def item_entries(
    item: DetectionItem, pred: Predicate, selection: str, view: EventView, level: str
) -> list[dict[str, Any]]:
    """The entries a matching item adds to `matched_fields` at `summary` or `full`."""
    kind, pattern, case_sensitive = describe(item)
    head: dict[str, Any] = {"selection": selection, "matcher": kind}
    if level == "full" and pattern is not None:
        head["pattern"] = pattern
    if case_sensitive is not None:
        head["case_sensitive"] = case_sensitive
    if item.negated:
        head["negated"] = True
    if item.field is None:
        return [
            {"field": "keyword", "value": text, **head | {"matcher": "keyword"}}
            for text in _matching_leaves(pred, view)
        ]
    value = view.get(item.field)
    return [{"field": item.field, "value": None if value is MISSING else value, **head}]


def _matching_leaves(pred: Predicate, view: EventView) -> list[str]:
    """The event values a keyword item matches on its own (at most MAX_KEYWORD_MATCHES)."""
    out: list[str] = []
    for text in view.raw_leaves():
        if pred(EventView({"keyword": text})):
            out.append(text)
            if len(out) == MAX_KEYWORD_MATCHES:
                break
    return out
