"""The detection engine: compiled rules plus the candidate index; pure and synchronous.

`Engine.evaluate(event)` takes a decoded JSON object and returns the detections in rule load order.
It knows nothing of files, streams or processes; `engine eval` and the daemon both drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rsigma.engine.compiler import (
    CompiledRule,
    compile_filter,
    compile_rule,
    detection_fields,
    surely_compiles,
)
from rsigma.engine.event import EventView
from rsigma.engine.index import MEMO_MAX_TEXT, CandidateIndex, Witness, forget_older_half, rule_witness
from rsigma.engine.match_detail import check_level
from rsigma.engine.matchers import Predicate
from rsigma.engine.regex import BUDGET, BacktrackingBudgetExceeded
from rsigma.errors import SigmaError
from rsigma.fields import MISSING
from rsigma.gc_pause import gc_paused
from rsigma.routing.router import LogsourceRouter, Placement, compatible
from rsigma.rules.loader import RuleSet, parse_rules_text
from rsigma.rules.model import SigmaFilter, SigmaRule
from rsigma.rules.values import Placeholder, SigmaString

log = logging.getLogger(__name__)

#: Distinct event logsources whose rule subsets keep a compiled index (the least recent is dropped).
MAX_ROUTED_INDEXES = 256


class Detection:
    """One rule matching one event; `to_dict()` is the output line's shape and key order."""

    __slots__ = ("index", "rule", "matched_selections", "matched_fields", "event")

    def __init__(
        self,
        index: int,
        rule: SigmaRule,
        matched_selections: list[str],
        matched_fields: list[Any],
        event: dict[str, Any] | None = None,
    ) -> None:
        self.index = index  # the rule's position in load order
        self.rule = rule
        self.matched_selections = matched_selections
        # (field, value) pairs, or the entries of `--match-detail summary|full` (dicts)
        self.matched_fields = matched_fields
        self.event = event

    @property
    def rule_title(self) -> str:
        return self.rule.title

    @property
    def rule_id(self) -> str | None:
        return self.rule.id

    @property
    def level(self) -> str | None:
        return self.rule.level

    @property
    def tags(self) -> list[str]:
        return list(self.rule.tags)

    def to_dict(self, include_event: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_title": self.rule.title,
            "rule_id": self.rule.id,
            "level": self.rule.level,
            "tags": list(self.rule.tags),
            "matched_selections": self.matched_selections,
            "matched_fields": [
                m if isinstance(m, dict) else {"field": m[0], "value": m[1]} for m in self.matched_fields
            ],
        }
        if include_event and self.event is not None:
            out["event"] = self.event
        return out

    def __repr__(self) -> str:
        return f"Detection({self.rule.title!r}, {self.matched_selections!r})"


def filter_applies(flt: SigmaFilter, rule: SigmaRule) -> bool:
    """Targets by id or name (every rule when none is given) with a compatible logsource."""
    if (
        flt.rules is not None
        and rule.id not in flt.rules
        and (rule.name is None or rule.name not in flt.rules)
    ):
        return False
    fls, rls = flt.logsource, rule.logsource
    return all(
        want is None or want == have
        for want, have in (
            (fls.category, rls.category),
            (fls.product, rls.product),
            (fls.service, rls.service),
        )
    )


def unresolved_placeholders(rule: SigmaRule) -> list[str]:
    """Warnings for `expand` placeholders no pipeline resolved: such a value matches nothing."""
    out = []
    for name, group in rule.detections.items():
        for item in group.leaves():
            if "expand" not in item.modifiers:
                continue  # only `expand` makes placeholders
            names = {
                p.name
                for v in item.values
                if isinstance(v, SigmaString)
                for p in v.parts
                if isinstance(p, Placeholder)
            }
            if names:
                key = "|".join([item.field or "", *item.modifiers])
                out.append(
                    f"{rule.location} (rule {rule.title!r}): {name}.{key}: placeholder"
                    f" {', '.join('%' + n + '%' for n in sorted(names))} has no value"
                    " (define it in a pipeline's vars); until then that value matches nothing"
                )
    return out


#: Fields a rule may read to have its results memoised, and the memo's size.
MAX_DECIDING_FIELDS = 3
MAX_RESULTS = 16384
#: Longest text value that goes into a memo key: the index's bound (long values rarely repeat).
MAX_KEY_TEXT = MEMO_MAX_TEXT


def _decided_by(rule: SigmaRule, filters: list[SigmaFilter]) -> tuple[str, ...] | None:
    """The few fields whose values alone decide the rule with its filters, or None.

    Rules such as "Image ends with one of 40 names, and not one of 30 folders" read one or two fields
    whose values repeat from event to event, so their result is memoised by those values; rules with
    no witness (negation-only) run on every event and gain the most."""
    fields = detection_fields(rule.detections)
    for flt in filters:
        more = detection_fields(flt.detections)
        if fields is None or more is None:
            return None
        fields |= more
    if fields is None or not fields or len(fields) > MAX_DECIDING_FIELDS:
        return None
    return tuple(sorted(fields))


def _with_filters(
    rule: SigmaRule, filters: list[tuple[SigmaFilter, Predicate]]
) -> tuple[list[Predicate], tuple[str, ...] | None]:
    """The compiled filters that apply to `rule`, and the fields that decide it with them."""
    applied = _applied(rule, filters)
    return [pred for _, pred in applied], _decided_by(rule, [flt for flt, _ in applied])


def _applied(
    rule: SigmaRule, filters: list[tuple[SigmaFilter, Predicate]]
) -> list[tuple[SigmaFilter, Predicate]]:
    return [(flt, pred) for flt, pred in filters if filter_applies(flt, rule)]


def _result_key(index: int, fields: tuple[str, ...], view: EventView) -> tuple[Any, ...] | None:
    """(rule, the fields' values) when every value is a short text, an int, null or absent."""
    key: list[Any] = [index]
    for name in fields:
        value = view.get(name)
        kind = type(value)
        if kind is str:
            if len(value) > MAX_KEY_TEXT:
                return None
        elif kind is not int and value is not None and value is not MISSING:
            return None  # bool (True == 1), float, lists and objects: not memoised
        key.append(value)
    return tuple(key)


@dataclass(slots=True)
class EngineImage:
    """An engine without its closures, for the rule cache: the rule set it was built from, which rules
    and filters compiled (positions in the rule set), what failed and why, each rule's witness (for
    the per-logsource indexes routing builds), the fields deciding each rule (`_decided_by`) and the
    candidate index."""

    ruleset: RuleSet
    compiled: list[int]
    filters: list[int]
    errors: list[SigmaError]
    warnings: list[str]
    witnesses: list[Witness | None]
    deciding: list[tuple[str, ...] | None]
    index: CandidateIndex


class Engine:
    """Compiled rules and their candidate index. Rules that fail to compile are kept in `errors`."""

    def __init__(
        self,
        ruleset: RuleSet | Iterable[SigmaRule],
        *,
        strict: bool = False,
        router: LogsourceRouter | None = None,
        match_detail: str = "off",
    ) -> None:
        if not isinstance(ruleset, RuleSet):
            ruleset = RuleSet(rules=list(ruleset))
        self._setup(ruleset, router, match_detail)
        with gc_paused():
            self._build(ruleset, strict)

    @classmethod
    def from_image(
        cls, image: EngineImage, *, router: LogsourceRouter | None = None, match_detail: str = "off"
    ) -> Engine:
        """The engine `image` was taken of, with the same rules, errors and warnings; its rules compile
        on first use (they compiled when the image was taken)."""
        engine = cls.__new__(cls)
        engine._setup(image.ruleset, router, match_detail)
        engine.errors = list(image.errors)
        engine.warnings = list(image.warnings)
        engine._compiled = image.compiled
        engine._filters = image.filters
        with gc_paused():
            filters = [
                (flt, compile_filter(flt)) for flt in map(image.ruleset.filters.__getitem__, image.filters)
            ]
            rules = image.ruleset.rules
            lazy = CompiledRule.lazy
            engine.rules = [
                lazy(n, rule, [pred for _, pred in _applied(rule, filters)])
                for n, rule in enumerate(map(rules.__getitem__, image.compiled))
            ]
            engine._deciding = image.deciding
            engine._witnesses = image.witnesses
            engine.index = image.index
        return engine

    def image(self) -> EngineImage:
        """What `from_image` needs to rebuild this engine without parsing or compiling again."""
        return EngineImage(
            self.ruleset,
            self._compiled,
            self._filters,
            self.errors,
            self.warnings,
            self._witnesses,
            self._deciding,
            self.index,
        )

    def _setup(self, ruleset: RuleSet, router: LogsourceRouter | None, match_detail: str) -> None:
        self.ruleset = ruleset
        self.router = router
        self.match_detail = check_level(match_detail)
        self.unplaced = 0  # events the router could not place (evaluated against every rule)
        self._routed: dict[Placement, CandidateIndex] = {}
        #: Per compiled rule, the fields whose values alone decide it (see `_decided_by`).
        self._deciding: list[tuple[str, ...] | None] = []
        #: Rule results by (rule, values of its deciding fields): False, or with `match_detail` off
        #: the explanation (selections, matched fields), else True. Bounded: drops its older half.
        self._results: dict[tuple[Any, ...], bool | tuple[list[str], list[Any]]] = {}

    def _build(self, ruleset: RuleSet, strict: bool) -> None:
        self.errors: list[SigmaError] = []
        self.warnings: list[str] = [w for rule in ruleset.rules for w in unresolved_placeholders(rule)]
        filters: list[tuple[SigmaFilter, Predicate]] = []
        self._filters: list[int] = []
        for n, flt in enumerate(ruleset.filters):
            try:
                filters.append((flt, compile_filter(flt)))
                self._filters.append(n)
            except SigmaError as e:
                self._fail(e, strict)
        self.rules: list[CompiledRule] = []
        self._compiled: list[int] = []
        lazy = CompiledRule.lazy
        for n, rule in enumerate(ruleset.rules):
            preds, deciding = _with_filters(rule, filters)
            if surely_compiles(rule):
                compiled = lazy(len(self.rules), rule, preds)
            else:
                try:
                    compiled = compile_rule(len(self.rules), rule, preds)
                except SigmaError as e:
                    self._fail(e, strict)
                    continue
            self.rules.append(compiled)
            self._compiled.append(n)
            self._deciding.append(deciding)
        self._witnesses = [rule_witness(r.rule) for r in self.rules]
        self.index = CandidateIndex.build(enumerate(self._witnesses))

    def _index_for(self, placement: Placement) -> CandidateIndex:
        """The index over the rules compatible with a logsource, built on first use and kept."""
        index = self._routed.get(placement)
        if index is None:
            if len(self._routed) >= MAX_ROUTED_INDEXES:
                del self._routed[next(iter(self._routed))]
            with gc_paused():
                index = CandidateIndex.build(
                    (r.index, self._witnesses[r.index])
                    for r in self.rules
                    if compatible(r.rule.logsource, placement)
                )
            self._routed[placement] = index
        return index

    def _fail(self, error: SigmaError, strict: bool) -> None:
        if strict:
            raise error
        self.errors.append(error)

    @classmethod
    def from_yaml(cls, text: str) -> Engine:
        """An engine from YAML text; any invalid document raises its SigmaError."""
        ruleset = parse_rules_text(text)
        if ruleset.errors:
            raise ruleset.errors[0]
        return cls(ruleset, strict=True)

    @property
    def routed_indexes(self) -> int:
        """How many per-logsource indexes routing has built so far."""
        return len(self._routed)

    def evaluate(self, event: dict[str, Any]) -> list[Detection]:
        """Detections for one event, in rule load order. Raises `BacktrackingBudgetExceeded` (naming
        the rule) for an event whose backtracking regex searches run too long."""
        if BUDGET.spent:
            BUDGET.spent = 0.0  # a new event: a fresh backtracking budget
        view = EventView(event)
        rules = self.rules
        index = self.index
        if self.router is not None:
            placement = self.router.place(event)
            if placement is None:
                self.unplaced += 1
            else:
                index = self._index_for(placement)
        out: list[Detection] = []
        deciding = self._deciding
        results = self._results
        detail = self.match_detail
        for i in sorted(index.candidates(view)):
            compiled = rules[i]
            try:
                fields = deciding[i]
                key = None if fields is None else _result_key(i, fields, view)
                if key is None:
                    matched = compiled.matches(view)
                else:
                    matched = results.get(key)
                    if matched is None:
                        matched = compiled.matches(view)
                        if matched and detail == "off":
                            # The explanation reads the same fields: memoised with the result, as
                            # rules matching most events (negation-only ones) explain each of them.
                            matched = compiled.explain(view, detail)
                        if len(results) >= MAX_RESULTS:
                            forget_older_half(results)
                        results[key] = matched
                if matched is True:
                    names, matched_fields = compiled.explain(view, detail)
                    out.append(Detection(i, compiled.rule, names, matched_fields, event))
                elif matched:
                    names, matched_fields = matched
                    out.append(Detection(i, compiled.rule, [*names], [*matched_fields], event))
            except BacktrackingBudgetExceeded as e:
                e.rule = compiled.rule.title
                raise
        return out
