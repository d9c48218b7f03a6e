"""The rule model: what a Sigma document says, parsed and validated, before it is compiled.

Frozen and slotted: pipelines (processing transformations) build new objects instead of mutating,
so a rule never needs a deep copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rsigma.errors import Location
from rsigma.pickling import pickled_by_fields
from rsigma.rules.condition import CondNode
from rsigma.rules.values import Value

#: Operators an item can have; "eq" is the default (string, number, boolean or null comparison).
OPERATORS = frozenset({"eq", "re", "cidr", "gt", "gte", "lt", "lte", "exists", "fieldref"})


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class DetectionItem:
    """One `field|modifiers: values` entry, or a keyword list when `field` is None.

    `values` are OR'ed, or AND'ed when `match_all`; `negated` (the `neq` modifier) requires the
    field to be present and the item not to match; `time_part` (minute..year) makes the operator
    compare that part of a date in the field.
    """

    field: str | None
    values: tuple[Value, ...]
    op: str = "eq"
    modifiers: tuple[str, ...] = ()
    match_all: bool = False
    negated: bool = False
    cased: bool = False
    time_part: str | None = None
    processed_by: frozenset[str] = frozenset()  # ids of the pipeline items that changed it

    @property
    def is_keyword(self) -> bool:
        return self.field is None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class DetectionGroup:
    """A map (AND of its entries) or a list of maps (OR) under a search identifier."""

    items: tuple[DetectionItem | DetectionGroup, ...]
    any_of: bool = False

    def leaves(self) -> Iterator[DetectionItem]:
        """Every item of the group and its nested groups, in order."""
        for item in self.items:
            if isinstance(item, DetectionGroup):
                yield from item.leaves()
            else:
                yield item


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class LogSource:
    category: str | None = None
    product: str | None = None
    service: str | None = None
    definition: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaRule:
    """A detection rule. `custom` holds every top-level attribute the specification does not define."""

    title: str
    detections: dict[str, DetectionGroup]
    conditions: tuple[CondNode, ...]
    logsource: LogSource
    id: str | None = None
    name: str | None = None
    status: str | None = None
    level: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    custom: dict[str, Any] = field(default_factory=dict)
    location: Location = field(default_factory=Location)
    processed_by: frozenset[str] = frozenset()  # ids of the pipeline items applied to it


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SigmaFilter:
    """A filter (meta rule): its condition is AND-ed onto every rule it targets."""

    title: str
    detections: dict[str, DetectionGroup]
    condition: CondNode
    logsource: LogSource
    rules: tuple[str, ...] | None  # None: every rule
    id: str | None = None
    name: str | None = None
    location: Location = field(default_factory=Location)
