"""The correlation engine: feeds detections into per-group windows and emits correlation results.

Pure and synchronous like the detection engine: `process(event, detections)` returns the
correlation results of that event. References (`rules:`) resolve to detection rules or other
correlations by id **or** name, once, at load time. Correlations run children first, so a
correlation that fires feeds the correlations that reference it within the same event (chaining),
and every firing of a correlation that is output is emitted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from rsigma.correlation.model import NUMERIC_TYPES, TEMPORAL_TYPES, CorrelationRule
from rsigma.correlation.snapshot import decode_snapshot, encode_snapshot
from rsigma.correlation.state import GroupState
from rsigma.correlation.timestamps import DEFAULT_TIMESTAMP_FIELDS, event_time
from rsigma.errors import SigmaError, SigmaRuleError
from rsigma.fields import MISSING, resolve, text_of
from rsigma.rules.model import SigmaRule

DEFAULT_MAX_STATE_ENTRIES: Final = 100_000


@dataclass(frozen=True, slots=True)
class CorrelationConfig:
    """Engine-wide options (`--timestamp-field`, `--timestamp-fallback`, `--suppress`, ...)."""

    timestamp_fields: tuple[str, ...] = DEFAULT_TIMESTAMP_FIELDS
    timestamp_fallback: str = "wallclock"  # or "skip": no correlation for events without a time
    suppress: float | None = None  # seconds without a repeat alert for the same group
    action: str = "alert"  # or "reset": clear the group's window after it fires
    max_state_entries: int = DEFAULT_MAX_STATE_ENTRIES
    clock: Callable[[], float] = field(default=time.time, compare=False)


class CorrelationResult:
    """One correlation firing for one group; `to_dict()` is the output line's shape."""

    __slots__ = ("rule", "group_key", "aggregated_value", "timestamp")

    def __init__(
        self, rule: CorrelationRule, group_key: list[tuple[str, Any]], value: float, timestamp: float
    ) -> None:
        self.rule = rule
        self.group_key = group_key
        self.aggregated_value = value
        self.timestamp = timestamp

    @property
    def rule_title(self) -> str:
        return self.rule.title

    def to_dict(self, include_event: bool = False) -> dict[str, Any]:
        return {
            "rule_title": self.rule.title,
            "rule_id": self.rule.id,
            "level": self.rule.level,
            "tags": list(self.rule.tags),
            "correlation_type": self.rule.type,
            "group_key": [[f, v] for f, v in self.group_key],
            "aggregated_value": self.aggregated_value,
            "timespan_secs": self.rule.timespan,
        }

    def __repr__(self) -> str:
        return f"CorrelationResult({self.rule.title!r}, {self.group_key!r}, {self.aggregated_value!r})"


@dataclass(slots=True)
class _Source:
    """What a reference resolved to: a detection rule (by load index) or a correlation."""

    kind: str  # "rule" or "correlation"
    index: int
    names: tuple[str, ...]  # the id and name it can be called by (for aliases)


@dataclass(slots=True)
class _Hit:
    source: _Source
    event: dict[str, Any]
    ts: float
    group_values: dict[str, Any] | None = None  # when the source is a correlation: its group key


class CorrelationEngine:
    """Windows of every (correlation, group), bounded by `max_state_entries` (least recent evicted)."""

    def __init__(
        self,
        correlations: Sequence[CorrelationRule],
        rules: Sequence[SigmaRule],
        config: CorrelationConfig | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self.config = config or CorrelationConfig()
        self.errors: list[SigmaError] = []
        self.correlations: list[CorrelationRule] = []
        self.state: dict[tuple[int, tuple[Any, ...]], GroupState] = {}
        self.evicted = 0
        self.late = 0
        self._resolve(list(correlations), list(rules), strict)

    # ---- load time -------------------------------------------------------------------------

    def _resolve(self, correlations: list[CorrelationRule], rules: list[SigmaRule], strict: bool) -> None:
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
                    self._fail(
                        SigmaRuleError(
                            f"correlation.rules: {ref!r} is not the id or name of any loaded rule"
                        ),
                        corr,
                        strict,
                    )
                    broken.add(i)
                    break
                resolved += [_Source(kind, j, names_of[(kind, j)]) for kind, j in targets]
            sources.append(resolved)
        order = self._topological(correlations, sources, broken, strict)
        # Re-index the correlations that survived, children first.
        new_index = {old: new for new, old in enumerate(order)}
        self.correlations = [correlations[i] for i in order]
        self._sources: list[list[_Source]] = []
        for old in order:
            fixed = []
            for s in sources[old]:
                if s.kind == "correlation":
                    if s.index not in new_index:
                        continue
                    s = _Source(s.kind, new_index[s.index], s.names)
                fixed.append(s)
            self._sources.append(fixed)
        # Which detection rules feed which correlations, and which outputs `generate` keeps.
        self._feeds: dict[int, list[int]] = {}
        self._parents: dict[int, list[int]] = {}
        referenced_rules: dict[int, bool] = {}
        referenced_corrs: dict[int, bool] = {}
        for ci, srcs in enumerate(self._sources):
            gen = self.correlations[ci].generate
            for s in srcs:
                if s.kind == "rule":
                    self._feeds.setdefault(s.index, []).append(ci)
                    referenced_rules[s.index] = referenced_rules.get(s.index, False) or gen
                else:
                    self._parents.setdefault(s.index, []).append(ci)
                    referenced_corrs[s.index] = referenced_corrs.get(s.index, False) or gen
        #: Detection rules whose own detections are not output (referenced, and no `generate: true`).
        self.silent_rules = frozenset(i for i, gen in referenced_rules.items() if not gen)
        self._silent_corrs = frozenset(i for i, gen in referenced_corrs.items() if not gen)
        self._keys = {c.key: i for i, c in enumerate(self.correlations)}
        self._source_of = {(ci, s.kind, s.index): s for ci, srcs in enumerate(self._sources) for s in srcs}

    def _topological(
        self,
        correlations: list[CorrelationRule],
        sources: list[list[_Source]],
        broken: set[int],
        strict: bool,
    ) -> list[int]:
        order: list[int] = []
        mark: dict[int, int] = {}  # 1 visiting, 2 done

        def visit(i: int, path: list[int]) -> bool:
            if mark.get(i) == 2:
                return i not in broken
            if mark.get(i) == 1:
                cycle = " -> ".join(correlations[j].title for j in [*path[path.index(i) :], i])
                self._fail(
                    SigmaRuleError(f"correlation.rules form a cycle: {cycle}"), correlations[i], strict
                )
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

    def _fail(self, error: SigmaError, corr: CorrelationRule, strict: bool) -> None:
        located = error.located(corr.location, corr.title)
        if strict:
            raise located
        self.errors.append(located)

    # ---- per event -------------------------------------------------------------------------

    def process(self, event: dict[str, Any], rule_indexes: Sequence[int]) -> list[CorrelationResult]:
        """Feed the detection rules that matched `event`; return the correlation results to output."""
        if not self._feeds or not any(i in self._feeds for i in rule_indexes):
            return []
        ts = event_time(event, self.config.timestamp_fields)
        if ts is None:
            if self.config.timestamp_fallback == "skip":
                return []
            ts = self.config.clock()
        pending: dict[int, list[_Hit]] = {}
        for ri in rule_indexes:
            for ci in self._feeds.get(ri, ()):
                pending.setdefault(ci, []).append(_Hit(self._source(ci, "rule", ri), event, ts))
        out: list[CorrelationResult] = []
        for ci in range(min(pending), len(self.correlations)):  # children before parents
            hits = pending.get(ci)
            if not hits:
                continue
            for result, suppressed in self._update(ci, hits, ts):
                if ci not in self._silent_corrs and not suppressed:
                    out.append(result)
                values = dict(result.group_key)
                for parent in self._parents.get(ci, ()):
                    source = self._source(parent, "correlation", ci)
                    pending.setdefault(parent, []).append(_Hit(source, event, ts, values))
        return out

    def _update(self, ci: int, hits: list[_Hit], ts: float) -> list[tuple[CorrelationResult, bool]]:
        """Push the hits into their groups' windows; return each firing and whether it is suppressed.

        A suppressed firing is not output but still feeds parent correlations and `--action reset`.
        """
        corr = self.correlations[ci]
        temporal = corr.type in TEMPORAL_TYPES
        touched: dict[tuple[Any, ...], GroupState] = {}
        seen_groups: set[tuple[Any, ...]] = set()
        for hit in hits:
            group = tuple(self._group_value(corr, field, hit) for field in corr.group_by)
            value: Any
            if temporal:
                value = self._rule_position(corr, hit.source)
            elif corr.type == "event_count":
                if group in seen_groups:
                    continue  # an event counts once, however many referenced rules it matched
                seen_groups.add(group)
                value = None
            else:
                value = self._field_value(corr, hit)
                if value is None:
                    continue
            state = self._state(ci, corr.type, group)
            if state.add(hit.ts, value, corr.timespan):
                touched[group] = state
            else:
                self.late += 1
        results = []
        for group, state in touched.items():
            aggregate = _aggregate(corr, state)
            if aggregate is None or not corr.threshold.holds(aggregate):
                continue
            result = CorrelationResult(corr, list(zip(corr.group_by, group, strict=True)), aggregate, ts)
            suppress = self.config.suppress
            suppressed = (
                suppress is not None and state.last_alert is not None and ts - state.last_alert < suppress
            )
            if not suppressed:
                state.last_alert = ts
            if self.config.action == "reset":
                state.clear()
            results.append((result, suppressed))
        return results

    def _source(self, ci: int, kind: str, index: int) -> _Source:
        return self._source_of[(ci, kind, index)]

    def _rule_position(self, corr: CorrelationRule, source: _Source) -> int:
        """The position in `rules:` that the source answers to (its id or its name)."""
        for pos, ref in enumerate(corr.rules):
            if ref in source.names:
                return pos
        return 0

    def _group_value(self, corr: CorrelationRule, name: str, hit: _Hit) -> Any:
        field = name
        alias = corr.aliases.get(name)
        if alias is not None:
            field = next((alias[n] for n in hit.source.names if n in alias), name)
        if hit.group_values is not None and field in hit.group_values:
            return hit.group_values[field]
        return _group_text(resolve(hit.event, field))

    def _field_value(self, corr: CorrelationRule, hit: _Hit) -> Any:
        values = [resolve(hit.event, f) for f in corr.fields]
        if corr.type == "value_count":
            texts = [_group_text(v) for v in values]
            if any(t is None for t in texts):
                return None
            return texts[0] if len(texts) == 1 else tuple(texts)
        number = _number(values[0])
        return number

    def _state(self, ci: int, kind: str, group: tuple[Any, ...]) -> GroupState:
        key = (ci, group)
        state = self.state.pop(key, None)
        if state is None:
            state = GroupState(kind)
            while len(self.state) >= self.config.max_state_entries:
                del self.state[next(iter(self.state))]  # least recently updated
                self.evicted += 1
        self.state[key] = state  # most recent last
        return state

    # ---- state -----------------------------------------------------------------------------

    def export_state(self) -> bytes:
        """A versioned, compact snapshot of every live window."""
        return encode_snapshot(
            (self.correlations[ci].key, list(group), state) for (ci, group), state in self.state.items()
        )

    def import_state(self, data: bytes) -> int:
        """Load a snapshot; windows of correlations that no longer exist are dropped. Returns kept entries."""
        kept = 0
        for key, group, times, values, newest, last_alert in decode_snapshot(data):  # validated whole
            ci = self._keys.get(key)
            if ci is None:
                continue
            corr = self.correlations[ci]
            if len(group) != len(corr.group_by):
                continue
            state = self._state(ci, corr.type, tuple(group))
            state.times = list(times)
            state.values = [tuple(v) if isinstance(v, list) else v for v in values]
            state.newest = newest
            state.last_alert = last_alert
            state.rebuild()
            kept += 1
        return kept


def _names(*names: str | None) -> tuple[str, ...]:
    return tuple(str(n) for n in names if n is not None)


def _group_text(value: Any) -> Any:
    """Group-by and distinct values compare as text; lists and objects as canonical JSON."""
    if value is MISSING or value is None:
        return None
    text = text_of(value)
    if text is not None:
        return text
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _aggregate(corr: CorrelationRule, state: GroupState) -> float | None:
    kind = corr.type
    if kind == "event_count":
        return float(len(state))
    if kind == "value_count":
        assert state.counts is not None
        return float(len(state.counts))
    if kind == "temporal":
        assert state.counts is not None
        return float(len(state.counts))
    if kind == "temporal_ordered":
        return float(_ordered_prefix(state, len(corr.rules)))
    if kind not in NUMERIC_TYPES or not state.values:
        return None
    if kind == "value_sum":
        return math.fsum(state.values)  # exact, so independent of arrival order and snapshots
    if kind == "value_avg":
        return math.fsum(state.values) / len(state.values)
    assert state.ordered is not None
    p = 50.0 if kind == "value_median" else corr.percentile
    return _percentile(state.ordered, p)


def _ordered_prefix(state: GroupState, n_rules: int) -> int:
    """How many of the rules, in list order, matched at non-decreasing times within the window."""
    need = 0
    for _, pos in sorted(zip(state.times, state.values, strict=True)):
        if pos == need:
            need += 1
            if need == n_rules:
                break
    return need


def _percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (rank = p/100 * (n - 1))."""
    rank = p / 100.0 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
