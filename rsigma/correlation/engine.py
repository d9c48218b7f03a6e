"""The correlation engine: feeds detections into per-group windows and emits correlation results.

Pure and synchronous like the detection engine: `process(event, detections)` returns the
correlation results of that event. References (`rules:`) resolve to detection rules or other
correlations by id **or** name, once, at load time (`rsigma.correlation.plan`). Correlations run
children first, so a correlation that fires feeds the correlations that reference it within the same
event (chaining), and every firing of a correlation that is output is emitted.

`process()` is the composition of two reusable steps, which a sharded deployment runs apart
(`rsigma.correlation.sharding`): `hits(event, detections)` turns one event's detections into
*hits* (one per correlation fed by a matched rule, with its group key already computed), and
`apply(hits)` pushes hits into the windows and returns the results to output plus the hits that
the firings feed to parent correlations. A hit is a plain tuple (see `Hit`), so it can travel
between processes.

With event inclusion (`--correlation-event-mode full|refs`, `rsigma.correlation_event_mode`), a hit
also carries its event's evidence (`rsigma.correlation.evidence`) when its correlation, or one above
it, keeps events; the window keeps the evidence of its most recent events and a result lists them.
A chained correlation keeps, per firing of the correlation below, the evidence of the event that made
it fire.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

import orjson

from rsigma.correlation.evidence import (
    DEFAULT_MAX_CORRELATION_EVENTS,
    FULL,
    NONE,
    Evidence,
    epoch_seconds,
    evidence_of,
    mode_of,
    unpack_body,
)
from rsigma.correlation.plan import COUNT, DISTINCT, TEMPORAL, build_plan
from rsigma.correlation.snapshot import decode_snapshot, encode_snapshot
from rsigma.correlation.state import GroupState
from rsigma.correlation.timestamps import DEFAULT_TIMESTAMP_FIELDS, event_time
from rsigma.errors import SigmaError
from rsigma.fields import MISSING, resolve, text_of
from rsigma.rules.correlation import NUMERIC_TYPES, CorrelationRule
from rsigma.rules.model import SigmaRule

DEFAULT_MAX_STATE_ENTRIES: Final = 100_000

#: One correlation input, a plain tuple so it can be sent between processes (msgpack):
#: `(correlation index, group, value, ts, position, order, context, evidence)`.
#:
#: - correlation index: into `CorrelationEngine.correlations` (only meaningful between engines built
#:   from the same rules; `correlation_key()` gives the stable key used for routing and snapshots);
#: - group: the group-by values (texts or None), already computed;
#: - value: what the window stores: None (event_count), the position in `rules:` (temporal types),
#:   the distinct text or tuple of texts (value_count), the number (value_sum, avg, percentile,
#:   median). Hits whose value field is missing or not a number are not made at all;
#: - ts: the event time; position: the event's position in its batch (0 for `process()`);
#: - order: a tuple of ints giving the hit's place among the hits of the same event and correlation
#:   in a single-process run, so results can be put back in exactly that order;
#: - context: the raw event values (field path -> value, missing fields left out) that parent
#:   correlations will need if this hit makes its correlation fire (their group-by fields not in
#:   this correlation's group key, and their value fields), or None when nothing above needs any;
#: - evidence: the event's `(id, body)` when this correlation or one above keeps events (the body
#:   only for `full`), else None.
Hit = tuple[int, tuple[Any, ...], Any, float, int, tuple[int, ...], dict[str, Any] | None, Evidence | None]

_RULE_ORDERS: Final = tuple((0, i) for i in range(64))
_NO_CONTEXT: Final[dict[str, Any]] = {}
_by_correlation_and_position = itemgetter(0, 4)


def group_of(hit: Hit) -> tuple[Any, ...]:
    """The hit's group key (group-by values in `group-by` order)."""
    return hit[1]


@dataclass(frozen=True, slots=True)
class CorrelationConfig:
    """Engine-wide options (`--timestamp-field`, `--timestamp-fallback`, `--suppress`, ...)."""

    timestamp_fields: tuple[str, ...] = DEFAULT_TIMESTAMP_FIELDS
    timestamp_fallback: str = "wallclock"  # or "skip": no correlation for events without a time
    suppress: float | None = None  # seconds without a repeat alert for the same group
    action: str = "alert"  # or "reset": clear the group's window after it fires
    max_state_entries: int = DEFAULT_MAX_STATE_ENTRIES
    event_mode: str = "none"  # or "full", "refs": what a correlation result includes of its events
    max_correlation_events: int = DEFAULT_MAX_CORRELATION_EVENTS  # per group, with event_mode
    max_group_entries: int | None = None  # entries per group window (None: unbounded)
    clock: Callable[[], float] = field(default=time.time, compare=False)


class CorrelationResult:
    """One correlation firing for one group; `to_dict()` is the output line's shape."""

    __slots__ = ("rule", "group_key", "aggregated_value", "timestamp", "position", "order", "evidence")

    def __init__(
        self,
        rule: CorrelationRule,
        group_key: list[tuple[str, Any]],
        value: float,
        timestamp: float,
        position: int = 0,
        order: tuple[Any, ...] = (),
        evidence: tuple[int, list[tuple[float, Any]]] | None = None,
    ) -> None:
        self.rule = rule
        self.group_key = group_key
        self.aggregated_value = value
        self.timestamp = timestamp
        #: The position in its batch of the event that produced it (see `CorrelationEngine.apply`).
        self.position = position
        #: `(correlation index, hit order)`: sorting one event's results by it gives `process()` order.
        self.order = order
        #: `(mode, [(time, evidence), ...])`: the events the window kept, oldest first (event inclusion).
        self.evidence = evidence

    @property
    def rule_title(self) -> str:
        return self.rule.title

    def to_dict(self, include_event: bool = False) -> dict[str, Any]:
        d = {
            "rule_title": self.rule.title,
            "rule_id": self.rule.id,
            "level": self.rule.level,
            "tags": list(self.rule.tags),
            "correlation_type": self.rule.type,
            "group_key": [[f, v] for f, v in self.group_key],
            "aggregated_value": self.aggregated_value,
            "timespan_secs": self.rule.timespan,
        }
        if self.evidence is not None:
            mode, kept = self.evidence
            if mode == FULL:
                d["events"] = [unpack_body(body) for _, body in kept]
            else:
                d["event_refs"] = [_ref(ts, id_) for ts, id_ in kept]
        return d

    def __repr__(self) -> str:
        return f"CorrelationResult({self.rule.title!r}, {self.group_key!r}, {self.aggregated_value!r})"


class CorrelationEngine:
    """Windows of every (correlation, group), bounded by `max_state_entries` (least recently updated
    dropped first; `evicted` counts the drops that lost hits still inside their window)."""

    def __init__(
        self,
        correlations: Sequence[CorrelationRule],
        rules: Sequence[SigmaRule],
        config: CorrelationConfig | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self.config = config or CorrelationConfig()
        self.state: dict[tuple[int, tuple[Any, ...]], GroupState] = {}
        self.evicted = 0
        self.late = 0
        plan = build_plan(correlations, rules, strict)
        #: The correlations kept (see `errors` for the others), children first: hits index into it.
        self.correlations: list[CorrelationRule] = plan.correlations
        self.errors: list[SigmaError] = plan.errors
        #: Detection rules whose own detections are not output (referenced, and no `generate: true`).
        self.silent_rules = plan.silent_rules
        #: Per correlation, its stable key (id, else name, else title): routing and snapshots use it.
        self.keys: list[str] = [c.key for c in self.correlations]
        #: Per correlation, 1 + the longest chain of correlations below it (1: fed by rules only).
        #: A correlation only receives hits from lower levels, so applying the hits of a batch level by
        #: level sees every hit of a correlation at once (what `rsigma.correlation.sharding` does).
        self.levels: list[int] = plan.levels
        self._keys = {c.key: i for i, c in enumerate(self.correlations)}
        self._output = plan.output
        self._feeds = plan.feeds
        self._parent_feeds = plan.parent_feeds
        # Per correlation: what its windows keep of their events, and how many at most.
        mode = mode_of(self.config.event_mode)
        self._keeps: list[int] = [mode if o.mode is None else o.mode for o in plan.overrides]
        self._cap: list[int] = [o.max_events or self.config.max_correlation_events for o in plan.overrides]
        self._max_entries: list[int | None] = [
            o.max_group_entries or self.config.max_group_entries for o in plan.overrides
        ]
        #: Window entries dropped at --max-group-entries (`rsigma.max_group_entries`) so far.
        self.trimmed = 0
        # Per correlation, the evidence its hits carry: the most any correlation at or above it keeps.
        carry = list(self._keeps)
        for ci in reversed(range(len(carry))):
            for parent, *_ in self._parent_feeds.get(ci, ()):
                carry[ci] = max(carry[ci], carry[parent])
        self._carry: list[int] | None = carry if any(carry) else None

    # ---- per event -------------------------------------------------------------------------

    def process(self, event: dict[str, Any], rule_indexes: Sequence[int]) -> list[CorrelationResult]:
        """Feed the detection rules that matched `event`; return the correlation results to output.

        `hits()` then `apply()` with the parent hits applied in the same call, children first.
        """
        hits = self.hits(event, rule_indexes)
        if not hits:
            return []
        out: list[CorrelationResult] = []
        parents: list[Hit] = []
        if len(hits) == 1:
            self._update(hits[0][0], hits, out, parents)
            if not parents:
                return out
            hits = parents
            parents = []
        pending: dict[int, list[Hit]] = {}
        for hit in hits:
            same = pending.get(hit[0])
            if same is None:
                pending[hit[0]] = [hit]
            else:
                same.append(hit)
        if not self._parent_feeds:  # no chaining: nothing is added on the way
            for ci in sorted(pending):
                self._update(ci, pending[ci], out, parents)
            return out
        for ci in range(min(pending), len(self.correlations)):  # children before parents
            same = pending.get(ci)
            if same is None:
                continue
            self._update(ci, same, out, parents)
            if parents:
                for hit in parents:
                    pending.setdefault(hit[0], []).append(hit)
                parents = []
        return out

    def hits(self, event: dict[str, Any], rule_indexes: Sequence[int], position: int = 0) -> list[Hit]:
        """The level-1 hits of an event: one per (correlation, referencing rule) that a matched rule feeds.

        Pure (the windows are not touched). The event time is resolved as `process()` does: an event
        without one gives no hits with `--timestamp-fallback skip`, the current time otherwise.
        `position` is the event's place in its batch; results and parent hits carry it along.
        """
        feeds = self._feeds
        if not feeds:
            return []
        for ri in rule_indexes:
            if ri in feeds:
                break
        else:
            return []
        ts = self._time(event)
        if ts is None:
            return []
        return self._rule_hits(event, rule_indexes, ts, position)

    def apply(self, hits: Sequence[Hit]) -> tuple[list[CorrelationResult], list[Hit]]:
        """Push hits into the windows; return the results to output and the hits for parent correlations.

        Hits are applied by correlation index ascending (children first) and, within a correlation,
        by event position (a stable sort: the given order is kept otherwise); the hits of one
        (correlation, position) are one window update, as in `process()`, so one call must not mix
        hits of different batches. The parent hits are returned, not applied, even when their
        correlation is in `hits`: routing them is the caller's job. Results carry `position` (the
        originating event) and `order` (their `process()` order).
        """
        out: list[CorrelationResult] = []
        parents: list[Hit] = []
        if not hits:
            return out, parents
        ordered = sorted(hits, key=_by_correlation_and_position)
        start = 0
        n = len(ordered)
        while start < n:
            ci, position = ordered[start][0], ordered[start][4]
            end = start + 1
            while end < n and ordered[end][0] == ci and ordered[end][4] == position:
                end += 1
            self._update(ci, ordered[start:end], out, parents)
            start = end
        return out, parents

    def correlation_key(self, hit: Hit | int) -> str:
        """The stable key (id, else name, else title) of a hit's correlation, or of an index."""
        return self.keys[hit if isinstance(hit, int) else hit[0]]

    def _time(self, event: dict[str, Any]) -> float | None:
        ts = event_time(event, self.config.timestamp_fields)
        if ts is None and self.config.timestamp_fallback != "skip":
            ts = self.config.clock()
        return ts

    def _rule_hits(
        self, event: dict[str, Any], rule_indexes: Sequence[int], ts: float, position: int
    ) -> list[Hit]:
        feeds = self._feeds
        carry = self._carry
        evidence: Evidence | None = None  # made once per event, when a correlation keeps events
        hits: list[Hit] = []
        for ri in rule_indexes:
            plans = feeds.get(ri)
            if plans is None:
                continue
            for ci, paths, mode, fields, rule_position, needs in plans:
                if len(paths) == 1:
                    group: tuple[Any, ...] = (_group_text(resolve(event, paths[0])),)
                else:
                    group = tuple([_group_text(resolve(event, f)) for f in paths])
                if mode == COUNT:
                    value = None
                elif mode == TEMPORAL:
                    value = rule_position
                else:
                    value = _value(mode, [resolve(event, f) for f in fields])
                    if value is None:
                        continue  # no value to aggregate: the hit would change nothing
                context = None
                if needs:
                    context = {}
                    for f in needs:
                        raw = resolve(event, f)
                        if raw is not MISSING:
                            context[f] = raw
                carried = None
                if carry is not None and carry[ci]:
                    if evidence is None or (carry[ci] == FULL and evidence[1] is None):
                        evidence = evidence_of(event, carry[ci])
                    carried = evidence if carry[ci] == FULL else (evidence[0], None)
                i = len(hits)
                hits.append(
                    (ci, group, value, ts, position, _RULE_ORDERS[i] if i < 64 else (0, i), context, carried)
                )
        return hits

    def _update(self, ci: int, hits: Sequence[Hit], out: list[CorrelationResult], parents: list[Hit]) -> None:
        """Push the hits of one (correlation, event) into their groups' windows; then, per firing
        group, append the result to `out` unless it is silent or suppressed, and its parent hits
        to `parents`.

        A suppressed firing is not output but still feeds parent correlations and `--action reset`.
        """
        corr = self.correlations[ci]
        kind = corr.type
        timespan = corr.timespan
        max_entries = self._max_entries[ci]
        # group -> (window, order of its first hit, that hit's context and evidence)
        touched: dict[
            tuple[Any, ...], tuple[GroupState, tuple[int, ...], dict[str, Any] | None, Evidence | None]
        ] = {}
        seen: set[tuple[Any, ...]] | None = set() if kind == "event_count" else None
        for hit in hits:
            group = hit[1]
            if seen is not None:
                if group in seen:  # an event counts once, however many referenced rules it matched
                    first = touched.get(group)
                    if first is not None and hit[5] < first[1]:
                        touched[group] = (first[0], hit[5], hit[6], hit[7])
                    continue
                seen.add(group)
            state = self._state(ci, kind, group, hit[3])
            if state.add(hit[3], hit[2], timespan):
                if max_entries is not None and len(state) > max_entries:
                    self.trimmed += state.trim(max_entries)
                first = touched.get(group)
                if first is None or hit[5] < first[1]:
                    touched[group] = (state, hit[5], hit[6], hit[7])
            else:
                self.late += 1
        if not touched:
            return
        ts, position = hits[0][3], hits[0][4]
        output = self._output[ci]
        plans = self._parent_feeds.get(ci)
        suppress = self.config.suppress
        reset = self.config.action == "reset"
        keeps = self._keeps[ci]
        cap = self._cap[ci]
        for group, (state, order, context, evidence) in touched.items():
            if keeps and evidence is not None:
                state.keep(ts, evidence[1] if keeps == FULL else evidence[0], cap)
            aggregate = _aggregate(corr, state)
            if aggregate is None or not corr.threshold.holds(aggregate):
                continue
            suppressed = (
                suppress is not None and state.last_alert is not None and ts - state.last_alert < suppress
            )
            if not suppressed:
                state.last_alert = ts
            emit = output and not suppressed
            kept = (keeps, list(state.kept)) if emit and state.kept is not None else None
            if reset:
                state.clear()
            if emit:
                group_key = list(zip(corr.group_by, group, strict=True))
                out.append(CorrelationResult(corr, group_key, aggregate, ts, position, (ci, order), kept))
            if plans:
                parents += _parent_hits(ci, plans, group, order, context, ts, position, evidence, self._carry)

    def _state(self, ci: int, kind: str, group: tuple[Any, ...], now: float | None = None) -> GroupState:
        """The group's window, created if new; it becomes the most recently updated.

        At `max_state_entries`, a new window first drops the least recently updated one (arrival
        order of updates, so the policy is deterministic and the same in every engine). The drop
        counts in `evicted` unless that window is spent as of `now` (the time of the hit being
        added): nothing in it can count any more and its suppression has run out, so nothing is lost.
        """
        key = (ci, group)
        state = self.state.pop(key, None)
        if state is None:
            state = GroupState(kind, self._keeps[ci] != NONE)
            while len(self.state) >= self.config.max_state_entries:
                oldest = next(iter(self.state))
                if not self._spent(oldest[0], self.state.pop(oldest), now):
                    self.evicted += 1
        self.state[key] = state  # most recent last
        return state

    def _spent(self, ci: int, state: GroupState, now: float | None) -> bool:
        if now is None:
            return False
        if state.times and now - state.newest <= self.correlations[ci].timespan:
            return False
        suppress = self.config.suppress
        return suppress is None or state.last_alert is None or now - state.last_alert >= suppress

    # ---- state -----------------------------------------------------------------------------

    def export_state(self, owned: Callable[[str, list[Any]], bool] | None = None) -> bytes:
        """A versioned, compact snapshot of every live window (of those `owned(key, group)` accepts)."""
        if owned is None:
            return self.export_parts(lambda key, group: 0, (0,))[0]
        return self.export_parts(lambda key, group: 0 if owned(key, group) else None, (0,))[0]

    def export_parts(
        self, part: Callable[[str, list[Any]], int | None], parts: Iterable[int]
    ) -> dict[int, bytes]:
        """A snapshot for each of `parts` of the windows `part(key, group)` puts in it, in one pass over
        the windows: a cluster member snapshots its changed partitions together, rather than reading
        every window once per partition."""
        wanted: dict[int, list[tuple[str, list[Any], GroupState]]] = {p: [] for p in parts}
        for (ci, group), state in self.state.items():
            key, values = self.correlations[ci].key, list(group)
            which = part(key, values)
            if which is not None and (entries := wanted.get(which)) is not None:
                entries.append((key, values, state))
        return {p: encode_snapshot(entries) for p, entries in wanted.items()}

    def discard(self, which: Callable[[str, list[Any]], bool]) -> int:
        """Drop the windows `which(key, group)` accepts (a cluster partition that moved to another
        node, which has them now); returns how many."""
        keys = self.keys
        gone = [window for window in self.state if which(keys[window[0]], list(window[1]))]
        for window in gone:
            del self.state[window]
        return len(gone)

    def carry_over(self, previous: CorrelationEngine) -> None:
        """Take over a running engine's windows and counts (a reload: the new rules go on from there)."""
        self.import_state(previous.export_state())
        self.evicted += previous.evicted
        self.late += previous.late
        self.trimmed += previous.trimmed

    def import_state(self, data: bytes, owned: Callable[[str, list[Any]], bool] | None = None) -> int:
        """Load a snapshot; windows of correlations that no longer exist are dropped, and with `owned`,
        those it refuses (`owned(key, group)`: e.g. another shard's). Returns kept entries.

        A window's kept events come back if its correlation still keeps that kind (bodies for `full`,
        ids for `refs`), the most recent up to its cap; a window whose mode changed starts without.
        """
        kept = 0
        for key, group, times, values, newest, last_alert, evidence in decode_snapshot(data):
            ci = self._keys.get(key)
            if ci is None:
                continue
            corr = self.correlations[ci]
            if len(group) != len(corr.group_by):
                continue
            if owned is not None and not owned(key, group):
                continue
            state = self._state(ci, corr.type, tuple(group))
            state.times = list(times)
            state.values = [tuple(v) if isinstance(v, list) else v for v in values]
            state.newest = newest
            state.last_alert = last_alert
            state.rebuild()
            if state.kept is not None:
                full = self._keeps[ci] == FULL
                state.kept[:] = [item for item in evidence if isinstance(item[1], bytes) == full][
                    -self._cap[ci] :
                ]
            max_entries = self._max_entries[ci]
            if max_entries is not None:
                self.trimmed += state.trim(max_entries)
            kept += 1
        return kept


def _parent_hits(
    ci: int,
    plans: list[tuple[Any, ...]],
    group: tuple[Any, ...],
    order: tuple[int, ...],
    context: dict[str, Any] | None,
    ts: float,
    position: int,
    evidence: Evidence | None,
    carry: list[int] | None,
) -> list[Hit]:
    """The hits a firing of correlation `ci` for `group` feeds to the correlations that reference it.

    Their group-by fields come from `group` where this correlation groups by them, else from the
    event (the context); their value fields from the event; their evidence is the firing event's,
    as much of it as each parent carries. Their order sorts after every rule hit of the event, by
    child correlation, then by the firing's own order (`process()` order).
    """
    src = context if context is not None else _NO_CONTEXT
    hits: list[Hit] = []
    for j, (parent, paths, mode, fields, rule_position, needs) in enumerate(plans):
        if mode == COUNT:
            value = None
        elif mode == TEMPORAL:
            value = rule_position
        else:
            value = _value(mode, [src.get(f, MISSING) for f in fields])
            if value is None:
                continue
        parent_group = tuple(
            [group[p] if type(p) is int else _group_text(src.get(p, MISSING)) for p in paths]
        )
        parent_context = {f: src[f] for f in needs if f in src} if needs else None
        carried = None
        if carry is not None and carry[parent] and evidence is not None:
            carried = evidence if carry[parent] == FULL else (evidence[0], None)
        hits.append((parent, parent_group, value, ts, position, (ci + 1, *order, j), parent_context, carried))
    return hits


def _ref(ts: float, id_: str | None) -> dict[str, Any]:
    """One `event_refs` item: the event's time in epoch seconds, and its id when it has one."""
    ref: dict[str, Any] = {"timestamp": epoch_seconds(ts)}
    if id_ is not None:
        ref["id"] = id_
    return ref


def _value(mode: int, values: list[Any]) -> Any:
    """The value a hit stores from the raw field values: distinct text(s) or a number; None: skip."""
    if mode == DISTINCT:
        texts = [_group_text(v) for v in values]
        for t in texts:
            if t is None:
                return None
        return texts[0] if len(texts) == 1 else tuple(texts)
    return _number(values[0])


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
