"""Load time of the correlation engine: correlation rules compiled into what it runs per event.

`build_plan()` resolves each correlation's `rules:` (ids or names of detection rules or of other
correlations), drops those that reference nothing loaded or sit on a reference cycle (an error each),
orders the rest children first, and works out, once, everything the per-event path
(`rsigma.correlation.engine`) would otherwise recompute: which detection rules feed which
correlations, what each hit is made of (`Feed`), which outputs are silent (`generate`), the level
of each correlation for sharded runs, and each one's event-inclusion attributes (`rsigma.*`, checked
here so a bad value drops its correlation like any other rule error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rsigma.correlation.evidence import Overrides, overrides
from rsigma.errors import SigmaError, SigmaRuleError
from rsigma.rules.correlation import NUMERIC_TYPES, TEMPORAL_TYPES, CorrelationRule
from rsigma.rules.model import SigmaRule

#: How a hit's value is made from the event (per correlation type): none (event_count), the
#: position in `rules:` (temporal types), the distinct text(s) (value_count), a number (the others).
COUNT, TEMPORAL, DISTINCT, NUMBER = 0, 1, 2, 3

#: How one source feeds one correlation: `(correlation index, group paths, value mode, value fields,
#: position in rules:, context fields)`. The group paths are the fields each group-by name reads for
#: this source (through the aliases); in a parent feed (`Plan.parent_feeds`), a path that the child
#: correlation groups by is instead the int index of that field in the child's group key. The context
#: fields are what the hit must carry for the correlations above its own (`rsigma.correlation.engine.Hit`).
Feed = tuple[int, tuple[Any, ...], int, tuple[str, ...], int, tuple[str, ...]]

#: Records (or, with `strict`, raises) the error that drops a correlation.
_Fail = Callable[[SigmaError, CorrelationRule], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """The compiled correlations; every index below is into `correlations` (children first)."""

    correlations: list[CorrelationRule]
    #: The correlations dropped, located (empty with `strict`, which raises the first instead).
    errors: list[SigmaError]
    #: Per detection rule (load index), the feeds of the hits it makes when it matches.
    feeds: dict[int, list[Feed]]
    #: Per correlation, the feeds of the hits its firings make for the correlations that reference it.
    parent_feeds: dict[int, list[Feed]]
    #: Detection rules whose own detections are not output (referenced, and no `generate: true`).
    silent_rules: frozenset[int]
    #: Per correlation, whether its results are output (no: referenced, and no `generate: true`).
    output: list[bool]
    #: Per correlation, 1 + the longest chain of correlations below it (1: fed by rules only).
    levels: list[int]
    #: Per correlation, what its custom attributes set for event inclusion and group sizes.
    overrides: list[Overrides]


@dataclass(slots=True)
class _Source:
    """What a reference resolved to: a detection rule (by load index) or a correlation."""

    kind: str  # "rule" or "correlation"
    index: int
    names: tuple[str, ...]  # the id and name it can be called by (for aliases)


def build_plan(correlations: Sequence[CorrelationRule], rules: Sequence[SigmaRule], strict: bool) -> Plan:
    """Compile `correlations` over `rules` (in load order); with `strict`, the first error is raised."""
    errors: list[SigmaError] = []

    def fail(error: SigmaError, corr: CorrelationRule) -> None:
        located = error.located(corr.location, corr.title)
        if strict:
            raise located
        errors.append(located)

    sources, broken = _resolve(correlations, rules, fail)
    settings: dict[int, Overrides] = {}
    for i, corr in enumerate(correlations):
        if i in broken:
            continue
        try:
            settings[i] = overrides(corr)
        except SigmaRuleError as e:
            fail(e, corr)
            broken.add(i)
    order = _topological(correlations, sources, broken, fail)
    ordered = [correlations[i] for i in order]
    kept = _reindex(sources, order)
    # Which detection rules feed which correlations, and which outputs `generate` keeps.
    feeds: dict[int, list[int]] = {}
    parents: dict[int, list[int]] = {}
    referenced_rules: dict[int, bool] = {}
    referenced_corrs: dict[int, bool] = {}
    for ci, srcs in enumerate(kept):
        gen = ordered[ci].generate
        for s in srcs:
            if s.kind == "rule":
                feeds.setdefault(s.index, []).append(ci)
                referenced_rules[s.index] = referenced_rules.get(s.index, False) or gen
            else:
                parents.setdefault(s.index, []).append(ci)
                referenced_corrs[s.index] = referenced_corrs.get(s.index, False) or gen
    silent_corrs = frozenset(i for i, gen in referenced_corrs.items() if not gen)
    source_of = {(ci, s.kind, s.index): s for ci, srcs in enumerate(kept) for s in srcs}
    levels: list[int] = []
    for srcs in kept:
        below = [levels[s.index] for s in srcs if s.kind == "correlation"]
        levels.append(1 + max(below, default=0))
    # The event fields a hit of each correlation must carry for the correlations above it: their
    # group-by fields that are not in its group key, and their value fields (parents come later).
    needs: list[tuple[str, ...]] = [()] * len(ordered)
    for ci in reversed(range(len(ordered))):
        fields: set[str] = set()
        for parent in parents.get(ci, ()):
            own = set(ordered[ci].group_by)
            paths = _group_paths(ordered[parent], source_of[(parent, "correlation", ci)])
            fields |= {f for f in paths if f not in own}
            fields |= set(_value_fields(ordered[parent])) | set(needs[parent])
        needs[ci] = tuple(sorted(fields))
    # Per correlation, the feeds of each parent, the group paths being an index into this
    # correlation's group key where the parent reads a field this one groups by.
    parent_feeds: dict[int, list[Feed]] = {}
    for ci, ps in parents.items():
        own_index = {name: i for i, name in enumerate(ordered[ci].group_by)}  # last one wins
        plans = []
        for parent in ps:
            parent_ci, paths, *rest = _feed(
                ordered, parent, source_of[(parent, "correlation", ci)], needs[parent]
            )
            plans.append((parent_ci, tuple(own_index.get(f, f) for f in paths), *rest))
        parent_feeds[ci] = plans
    return Plan(
        correlations=ordered,
        errors=errors,
        feeds={
            ri: [_feed(ordered, ci, source_of[(ci, "rule", ri)], needs[ci]) for ci in cis]
            for ri, cis in feeds.items()
        },
        parent_feeds=parent_feeds,
        silent_rules=frozenset(i for i, gen in referenced_rules.items() if not gen),
        output=[ci not in silent_corrs for ci in range(len(ordered))],
        levels=levels,
        overrides=[settings[i] for i in order],
    )


def _resolve(
    correlations: Sequence[CorrelationRule], rules: Sequence[SigmaRule], fail: _Fail
) -> tuple[list[list[_Source]], set[int]]:
    """Per correlation, the sources its references name; and the correlations with an unknown one."""
    by_ref: dict[str, list[tuple[str, int]]] = {}
    for i, rule in enumerate(rules):
        for ref in {rule.id, rule.name} - {None}:
            by_ref.setdefault(str(ref), []).append(("rule", i))
    for i, corr in enumerate(correlations):
        for ref in {corr.id, corr.name} - {None}:
            by_ref.setdefault(str(ref), []).append(("correlation", i))
    names_of = {("rule", i): _names(r.id, r.name) for i, r in enumerate(rules)}
    names_of |= {("correlation", i): _names(c.id, c.name) for i, c in enumerate(correlations)}
    sources: list[list[_Source]] = []
    broken: set[int] = set()
    for i, corr in enumerate(correlations):
        resolved: list[_Source] = []
        for ref in corr.rules:
            targets = by_ref.get(ref)
            if not targets:
                error = SigmaRuleError(f"correlation.rules: {ref!r} is not the id or name of any loaded rule")
                fail(error, corr)
                broken.add(i)
                break
            resolved += [_Source(kind, j, names_of[(kind, j)]) for kind, j in targets]
        sources.append(resolved)
    return sources, broken


def _topological(
    correlations: Sequence[CorrelationRule], sources: list[list[_Source]], broken: set[int], fail: _Fail
) -> list[int]:
    """The correlations to keep, children first: not broken, on no cycle, referencing none that is."""
    order: list[int] = []
    mark: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(i: int, path: list[int]) -> bool:
        if mark.get(i) == 2:
            return i not in broken
        if mark.get(i) == 1:
            cycle = " -> ".join(correlations[j].title for j in [*path[path.index(i) :], i])
            fail(SigmaRuleError(f"correlation.rules form a cycle: {cycle}"), correlations[i])
            broken.add(i)
            return False
        mark[i] = 1
        ok = i not in broken
        for s in sources[i]:
            if s.kind == "correlation" and not visit(s.index, [*path, i]):
                ok = False
        mark[i] = 2
        if ok:
            order.append(i)
        else:
            broken.add(i)
        return ok

    for i in range(len(correlations)):
        visit(i, [])
    return order


def _reindex(sources: list[list[_Source]], order: list[int]) -> list[list[_Source]]:
    """The sources of the correlations kept, in `order`, their correlation indexes renumbered to match."""
    new_index = {old: new for new, old in enumerate(order)}
    kept: list[list[_Source]] = []
    for old in order:
        fixed = []
        for s in sources[old]:
            if s.kind == "correlation":
                if s.index not in new_index:
                    continue
                s = _Source(s.kind, new_index[s.index], s.names)
            fixed.append(s)
        kept.append(fixed)
    return kept


def _group_paths(corr: CorrelationRule, source: _Source) -> tuple[str, ...]:
    """The field each group-by name reads for hits from `source` (through the aliases)."""
    paths = []
    for name in corr.group_by:
        field = name
        alias = corr.aliases.get(name)
        if alias is not None:
            field = next((alias[n] for n in source.names if n in alias), name)
        paths.append(field)
    return tuple(paths)


def _value_fields(corr: CorrelationRule) -> tuple[str, ...]:
    return corr.fields if corr.type == "value_count" or corr.type in NUMERIC_TYPES else ()


def _feed(correlations: list[CorrelationRule], ci: int, source: _Source, needs: tuple[str, ...]) -> Feed:
    corr = correlations[ci]
    if corr.type == "event_count":
        mode = COUNT
    elif corr.type in TEMPORAL_TYPES:
        mode = TEMPORAL
    else:
        mode = DISTINCT if corr.type == "value_count" else NUMBER
    # The position in `rules:` that the source answers to (its id or its name).
    position = next((pos for pos, ref in enumerate(corr.rules) if ref in source.names), 0)
    return (ci, _group_paths(corr, source), mode, _value_fields(corr), position, needs)


def _names(*names: str | None) -> tuple[str, ...]:
    return tuple(str(n) for n in names if n is not None)
