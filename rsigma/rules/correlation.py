"""Correlation rules as the specification defines them, parsed and validated.

The model of a correlation document, next to the detection rule model: the loader and parser build it,
and `rsigma.correlation` (the windows and the evaluation) only reads it.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from rsigma.errors import Location, SigmaRuleError

TYPES: Final = frozenset(
    {
        "event_count", "value_count", "temporal", "temporal_ordered",
        "value_sum", "value_avg", "value_percentile", "value_median",
    }
)  # fmt: skip
#: Types that aggregate the numeric value of `condition.field`.
NUMERIC_TYPES: Final = frozenset({"value_sum", "value_avg", "value_percentile", "value_median"})
TEMPORAL_TYPES: Final = frozenset({"temporal", "temporal_ordered"})
OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "neq": operator.ne,
}
_TIMESPAN = re.compile(r"(\d+)([smhdwMy])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2629746, "y": 31556952}


def parse_timespan(text: Any) -> int:
    """`<number><s|m|h|d>` (also w, M, y as pySigma accepts) to seconds."""
    m = _TIMESPAN.fullmatch(str(text).strip())
    if m is None or int(m.group(1)) <= 0:
        raise SigmaRuleError(f"timespan must be a positive number and a unit (s, m, h, d), got {text!r}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


@dataclass(frozen=True, slots=True)
class Threshold:
    """The AND of one or more comparisons (`gt: 100, lte: 200` is a range)."""

    comparisons: tuple[tuple[str, float], ...]

    def holds(self, value: float) -> bool:
        return all(OPERATORS[op](value, bound) for op, bound in self.comparisons)

    def describe(self) -> str:
        return " and ".join(f"{op} {bound:g}" for op, bound in self.comparisons)


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    title: str
    type: str
    rules: tuple[str, ...]  # references as written: ids or names
    group_by: tuple[str, ...]
    timespan: int  # seconds
    threshold: Threshold
    fields: tuple[str, ...] = ()  # condition.field
    percentile: float = 50.0
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    generate: bool = False
    id: str | None = None
    name: str | None = None
    level: str | None = None
    tags: tuple[str, ...] = ()
    custom: dict[str, Any] = field(default_factory=dict)
    location: Location = field(default_factory=Location)

    @property
    def key(self) -> str:
        """The stable identity used in state snapshots: id, else name, else title."""
        return self.id or self.name or self.title

    @property
    def digest(self) -> str:
        """A digest of the definition (not where it was read from): a partition snapshot restores a
        correlation's windows only under the definition that built them."""
        definition = repr(replace(self, location=Location()))
        return hashlib.blake2b(definition.encode(), digest_size=8).hexdigest()


_KNOWN = frozenset(
    {
        "title", "id", "name", "status", "description", "author", "references", "date", "modified",
        "taxonomy", "correlation", "falsepositives", "level", "generate", "tags", "related", "license",
    }
)  # fmt: skip


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SigmaRuleError(f"'{what}' must be a string or a list of strings")


def _threshold(cond: dict[str, Any], ctype: str, n_rules: int) -> Threshold:
    comparisons = []
    for op, bound in cond.items():
        if op in ("field", "percentile"):
            continue
        if op not in OPERATORS:
            raise SigmaRuleError(
                f"'correlation.condition.{op}' is not a condition (expected {', '.join(OPERATORS)}, field)"
            )
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
            raise SigmaRuleError(f"'correlation.condition.{op}' must be a number, got {bound!r}")
        comparisons.append((op, float(bound)))
    if not comparisons:
        if ctype in TEMPORAL_TYPES:
            # Every referenced rule must have matched in the window (specification, pySigma).
            return Threshold((("gte", float(n_rules)),))
        raise SigmaRuleError(f"a {ctype} correlation needs a condition such as 'gte: 10'")
    return Threshold(tuple(comparisons))


def parse_correlation(doc: dict[str, Any], location: Location) -> CorrelationRule:
    """Validate a correlation document; errors say which attribute and what was expected."""
    title = doc["title"]
    body = doc.get("correlation")
    if not isinstance(body, dict):
        raise SigmaRuleError("'correlation' must be a mapping")
    ctype = body.get("type")
    if ctype not in TYPES:
        raise SigmaRuleError(f"'correlation.type' must be one of {', '.join(sorted(TYPES))}, got {ctype!r}")
    rules = _str_list(body.get("rules"), "correlation.rules")
    if not rules:
        raise SigmaRuleError("'correlation.rules' must name at least one rule (id or name)")
    group_by = _str_list(body.get("group-by"), "correlation.group-by")
    if "timespan" not in body and "timeframe" not in body:
        raise SigmaRuleError("'correlation.timespan' is missing")
    timespan = parse_timespan(body.get("timespan", body.get("timeframe")))
    cond = body.get("condition") or {}
    if not isinstance(cond, dict):
        raise SigmaRuleError("'correlation.condition' must be a mapping such as {gte: 10}")
    fields = _str_list(cond.get("field"), "correlation.condition.field")
    if ctype == "value_count" or ctype in NUMERIC_TYPES:
        if not fields:
            raise SigmaRuleError(f"a {ctype} correlation needs 'condition.field'")
        if ctype in NUMERIC_TYPES and len(fields) != 1:
            raise SigmaRuleError(f"a {ctype} correlation aggregates exactly one field")
    percentile = 50.0
    if ctype == "value_percentile":
        raw = cond.get("percentile", 50)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 100:
            raise SigmaRuleError(f"'condition.percentile' must be a number from 0 to 100, got {raw!r}")
        percentile = float(raw)
    aliases = body.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(
        isinstance(v, dict) and all(isinstance(f, str) for f in v.values()) for v in aliases.values()
    ):
        raise SigmaRuleError("'correlation.aliases' must map alias -> {rule name: field}")
    generate = doc.get("generate", body.get("generate", False))
    if not isinstance(generate, bool):
        raise SigmaRuleError(f"'generate' must be true or false, got {generate!r}")
    level = doc.get("level")
    return CorrelationRule(
        title=title,
        type=ctype,
        rules=rules,
        group_by=group_by,
        timespan=timespan,
        threshold=_threshold(cond, ctype, len(rules)),
        fields=fields,
        percentile=percentile,
        aliases={str(k): {str(r): f for r, f in v.items()} for k, v in aliases.items()},
        generate=generate,
        id=None if doc.get("id") is None else str(doc["id"]),
        name=None if doc.get("name") is None else str(doc["name"]),
        level=None if level is None else str(level),
        tags=_str_list(doc.get("tags"), "tags"),
        custom={k: v for k, v in doc.items() if k not in _KNOWN},
        location=location,
    )
