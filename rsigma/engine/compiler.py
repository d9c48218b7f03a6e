"""Compile rules: conditions become closures over compiled selections, walked once at load time.

Two evaluation paths share the compiled selections: `matches(view)` is the short-circuit boolean
every candidate runs; `explain(view)` runs only for rules that matched and reports which
selections and fields made them match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rsigma.engine.event import EventView
from rsigma.engine.match_detail import item_entries
from rsigma.engine.matchers import Predicate, all_of, any_of, compile_item
from rsigma.errors import SigmaConditionError, SigmaError
from rsigma.fields import MISSING
from rsigma.rules.condition import (
    CondAnd,
    CondNode,
    CondNot,
    CondOr,
    CondRef,
    CondSelector,
    check_references,
    selector_names,
)
from rsigma.rules.model import DetectionGroup, DetectionItem, SigmaFilter, SigmaRule
from rsigma.rules.values import SigmaFieldRef, SigmaString


@dataclass(slots=True)
class CompiledGroup:
    """A map (AND) or list of maps (OR) with the predicate of each entry, kept for `explain`."""

    any_of: bool
    children: list[tuple[DetectionItem | CompiledGroup, Predicate]]
    matches: Predicate


@dataclass(slots=True)
class CompiledSelection:
    name: str
    group: CompiledGroup

    @property
    def matches(self) -> Predicate:
        return self.group.matches


class CompiledRule:
    """A rule ready to evaluate; `index` is its position in load order (the output order).

    A rule restored from the rule cache, or one that cannot fail to compile (`surely_compiles`), is
    made `lazy`: it compiles its selections on first use. Most rules are never a candidate of most
    events (39 of SigmaHQ's 1,183 process-creation rules on 10,000 Sysmon events), so a load, and a
    matcher process, pays only for the rules its events reach.
    """

    __slots__ = ("index", "rule", "filters", "selections", "matches")

    def __init__(
        self,
        index: int,
        rule: SigmaRule,
        selections: dict[str, CompiledSelection],
        matches: Predicate,
        filters: list[Predicate],
    ) -> None:
        self.index = index
        self.rule = rule
        self.selections = selections
        self.matches = matches
        self.filters = filters

    @classmethod
    def lazy(cls, index: int, rule: SigmaRule, filters: list[Predicate]) -> CompiledRule:
        """A rule known to compile, compiled when `matches` or `selections` is first read."""
        compiled = cls.__new__(cls)
        compiled.index = index
        compiled.rule = rule
        compiled.filters = filters
        return compiled

    def __getattr__(self, name: str) -> Any:
        # Only reached for an unset slot: a lazy rule's `matches` or `selections`.
        if name not in ("matches", "selections"):
            raise AttributeError(name)
        self.selections, self.matches = _compile_selections(self.rule, self.filters)
        return getattr(self, name)

    @property
    def conditions(self) -> tuple[CondNode, ...]:
        return self.rule.conditions

    def explain(self, view: EventView, detail: str = "off") -> tuple[list[str], list[Any]]:
        """Selections that made the first true condition true, and the fields they matched: (field,
        value) pairs, or with `detail` summary or full the entries `rsigma.engine.match_detail` makes."""
        for cond in self.conditions:
            names: list[str] = []
            if _walk(cond, self.selections, view, names, positive=True):
                if detail == "off":
                    return names, _matched_fields(self.selections, names, view)
                entries: list[dict[str, Any]] = []
                for name in names:
                    _group_entries(self.selections[name].group, name, view, detail, entries)
                return names, entries
        return [], []


def compile_group(group: DetectionGroup) -> CompiledGroup:
    """AND of a map's entries, OR of a list's."""
    children: list[tuple[DetectionItem | CompiledGroup, Predicate]] = []
    for i in group.items:
        if isinstance(i, DetectionItem):
            children.append((i, compile_item(i)))
        else:
            sub = compile_group(i)
            children.append((sub, sub.matches))
    preds = [pred for _, pred in children]
    return CompiledGroup(group.any_of, children, any_of(preds) if group.any_of else all_of(preds))


def _at_least(n: int, preds: Sequence[Predicate]) -> Predicate:
    ps = tuple(preds)
    return lambda view: sum(1 for p in ps if p(view)) >= n


def compile_condition(node: CondNode, selections: dict[str, Predicate]) -> Predicate:
    match node:
        case CondRef(name):
            return selections[name]
        case CondNot(item):
            inner = compile_condition(item, selections)
            return lambda view: not inner(view)
        case CondAnd(items):
            return all_of([compile_condition(i, selections) for i in items])
        case CondOr(items):
            return any_of([compile_condition(i, selections) for i in items])
        case CondSelector(quantifier, _):
            preds = [selections[n] for n in selector_names(node, selections)]
            if quantifier == "all":
                return all_of(preds)
            if quantifier == "any":
                return any_of(preds)
            assert isinstance(quantifier, int)
            return _at_least(quantifier, preds)
    raise TypeError(f"unknown condition node {node!r}")


def _walk(
    node: CondNode, sels: dict[str, CompiledSelection], view: EventView, out: list[str], positive: bool
) -> bool:
    """Evaluate like the compiled condition, recording selections that count towards a match."""
    match node:
        case CondRef(name):
            hit = sels[name].matches(view)
            if hit and positive and name not in out:
                out.append(name)
            return hit
        case CondNot(item):
            return not _walk(item, sels, view, out, not positive)
        case CondAnd(items):
            mark = len(out)
            for i in items:
                if not _walk(i, sels, view, out, positive):
                    del out[mark:]
                    return False
            return True
        case CondOr(items):
            return any(_walk(i, sels, view, out, positive) for i in items)
        case CondSelector(quantifier, _):
            names = selector_names(node, sels)
            mark = len(out)
            hits = sum(1 for n in names if _walk(CondRef(n), sels, view, out, positive))
            need = len(names) if quantifier == "all" else 1 if quantifier == "any" else int(quantifier)
            if hits < need:
                del out[mark:]
                return False
            return True
    raise TypeError(f"unknown condition node {node!r}")


def _matched_fields(
    sels: dict[str, CompiledSelection], names: list[str], view: EventView
) -> list[tuple[str, Any]]:
    out: dict[str, Any] = {}
    for name in names:
        _group_fields(sels[name].group, view, out)
    return list(out.items())


def _group_fields(group: CompiledGroup, view: EventView, out: dict[str, Any]) -> None:
    """Fields with a positive match: every entry of a map, the first matching entry of a list."""
    for node, pred in group.children:
        if isinstance(node, CompiledGroup):
            if pred(view):
                _group_fields(node, view, out)
                if group.any_of:
                    return
            continue
        field = node.field
        if field is None or field in out or node.negated or node.op == "exists" or not pred(view):
            continue
        value = view.get(field)
        if value is not MISSING and value is not None:
            out[field] = value
        if group.any_of:
            return


def _group_entries(
    group: CompiledGroup, selection: str, view: EventView, detail: str, out: list[dict[str, Any]]
) -> None:
    """Like `_group_fields`, for every kind of item (keywords, absence, `exists`, `neq` included)."""
    for node, pred in group.children:
        if not pred(view):
            continue
        if isinstance(node, CompiledGroup):
            _group_entries(node, selection, view, detail, out)
        else:
            out.extend(item_entries(node, pred, selection, view, detail))
        if group.any_of:
            return


def compile_filter(flt: SigmaFilter) -> Predicate:
    try:
        sels = {name: compile_group(g).matches for name, g in flt.detections.items()}
        return compile_condition(flt.condition, sels)
    except SigmaError as e:
        raise e.located(flt.location, flt.title) from None


_PLAIN_SCALARS = (int, float, bool)


def surely_compiles(rule: SigmaRule) -> bool:
    """Whether compiling `rule` cannot fail, so that it may wait for its first use: its values are
    strings, numbers, booleans and nulls compared for equality (a regex, CIDR, comparison, field
    reference or date part compiles at once, so that a bad one is reported at load), and its
    conditions name selections it has (the parser checks that; a rule built in code may not)."""
    for group in rule.detections.values():
        for item in group.leaves():
            if item.op != "eq" or item.time_part is not None:
                return False
            for v in item.values:
                if type(v) is not SigmaString and (
                    item.field is None or not (v is None or type(v) in _PLAIN_SCALARS)
                ):
                    return False
    names = list(rule.detections)
    try:
        for condition in rule.conditions:
            check_references(condition, names, "")
    except SigmaConditionError:
        return False
    return True


def compile_rule(index: int, rule: SigmaRule, filters: list[Predicate] | None = None) -> CompiledRule:
    """Compile a parsed rule; errors (bad regex, unresolved placeholder) carry the rule's location."""
    filters = filters or []
    selections, matches = _compile_selections(rule, filters)
    return CompiledRule(index, rule, selections, matches, filters)


def _compile_selections(
    rule: SigmaRule, filters: list[Predicate]
) -> tuple[dict[str, CompiledSelection], Predicate]:
    try:
        selections = {name: CompiledSelection(name, compile_group(g)) for name, g in rule.detections.items()}
        preds = {name: s.matches for name, s in selections.items()}
        matches = any_of([compile_condition(c, preds) for c in rule.conditions])
    except SigmaError as e:
        raise e.located(rule.location, rule.title) from None
    if filters:
        matches = all_of([matches, *filters])
    return selections, matches


def detection_fields(detections: dict[str, DetectionGroup]) -> set[str] | None:
    """The event fields a rule's detections read (fieldref targets included); None if they read the
    whole event (keywords), so that no set of field values decides the rule."""
    out: set[str] = set()
    for group in detections.values():
        for item in group.leaves():
            if item.field is None:
                return None
            out.add(item.field)
            out.update(v.field for v in item.values if isinstance(v, SigmaFieldRef))
    return out
