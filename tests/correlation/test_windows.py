"""Window boundaries, thresholds, grouping, aggregation and event time (docs/correlation.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from rsigma.correlation.engine import CorrelationConfig, CorrelationResult
from rsigma.engine import Detection
from rsigma.evaluator import Evaluator

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EPOCH0 = T0.timestamp()


def at(seconds: float) -> str:
    """ISO 8601 time `seconds` after T0 (microseconds kept)."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def base(name: str, value: str | None = None) -> dict[str, Any]:
    """A detection rule named `name` that matches events whose `kind` is `value` (default: the name)."""
    return {
        "title": f"rule {name}",
        "id": f"id-{name}",
        "name": name,
        "logsource": {"product": "test"},
        "detection": {"selection": {"kind": value or name}, "condition": "selection"},
    }


def corr(ctype: str, rules: list[str], condition: dict[str, Any] | None = None, **body: Any) -> dict:
    correlation: dict[str, Any] = {"type": ctype, "rules": rules, "timespan": "60s"}
    correlation.update({k.replace("_", "-"): v for k, v in body.items()})
    if condition is not None:
        correlation["condition"] = condition
    return {"title": "C", "id": "corr-c", "correlation": correlation}


def evaluator(*docs: dict[str, Any], config: CorrelationConfig | None = None) -> Evaluator:
    text = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    return Evaluator.from_yaml(text, config)


def ev_of(kind: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"kind": kind, **fields}
    if t is not None:
        event["@timestamp"] = at(t)
    return event


def fired(ev: Evaluator, events: list[dict[str, Any]]) -> list[CorrelationResult]:
    return [r for e in events for r in ev.process(e) if isinstance(r, CorrelationResult)]


def values(ev: Evaluator, events: list[dict[str, Any]]) -> list[float]:
    return [r.aggregated_value for r in fired(ev, events)]


def per_event(ev: Evaluator, events: list[dict[str, Any]]) -> Iterator[list[float]]:
    for e in events:
        yield [r.aggregated_value for r in ev.process(e) if isinstance(r, CorrelationResult)]


# ---- window edges, per type -------------------------------------------------------------------

# (correlation, first event, second event): the condition holds only when both hits share a window.
EDGE_CASES = [
    pytest.param(corr("event_count", ["a"], {"gte": 2}), {"kind": "a"}, {"kind": "a"}, id="event_count"),
    pytest.param(
        corr("value_count", ["a"], {"field": "User", "gte": 2}),
        {"kind": "a", "User": "u1"},
        {"kind": "a", "User": "u2"},
        id="value_count",
    ),
    pytest.param(corr("temporal", ["a", "b"]), {"kind": "a"}, {"kind": "b"}, id="temporal"),
    pytest.param(corr("temporal_ordered", ["a", "b"]), {"kind": "a"}, {"kind": "b"}, id="temporal_ordered"),
    pytest.param(
        corr("value_sum", ["a"], {"field": "n", "gte": 2}),
        {"kind": "a", "n": 1},
        {"kind": "a", "n": 1},
        id="value_sum",
    ),
    pytest.param(
        corr("value_avg", ["a"], {"field": "n", "eq": 5}),
        {"kind": "a", "n": 4},
        {"kind": "a", "n": 6},
        id="value_avg",
    ),
    pytest.param(
        corr("value_percentile", ["a"], {"field": "n", "eq": 5, "percentile": 50}),
        {"kind": "a", "n": 4},
        {"kind": "a", "n": 6},
        id="value_percentile",
    ),
    pytest.param(
        corr("value_median", ["a"], {"field": "n", "eq": 5}),
        {"kind": "a", "n": 4},
        {"kind": "a", "n": 6},
        id="value_median",
    ),
]


@pytest.mark.parametrize(("correlation", "first", "second"), EDGE_CASES)
@pytest.mark.parametrize(
    ("gap", "shared"), [(0, True), (59.5, True), (60, True), (60.001, False), (61, False)]
)
def test_window_edges_are_inclusive(correlation, first, second, gap, shared):
    """timespan 60s: hits at t=0 and t=60 share a window; t=0 and t=61 (or 60.001) do not."""
    ev = evaluator(base("a"), base("b"), correlation)
    assert fired(ev, [{**first, "@timestamp": at(0)}]) == []
    results = fired(ev, [{**second, "@timestamp": at(gap)}])
    assert len(results) == (1 if shared else 0)


def test_window_slides_with_the_newest_hit():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 3}))
    # 0, 40, 80: never three within 60 s; at 100 the window [40, 100] holds 40, 80, 100; at 170 only 170.
    assert list(per_event(ev, [ev_of("a", t) for t in (0, 40, 80, 100, 170)])) == [[], [], [], [3.0], []]


# ---- thresholds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "counts"),
    [
        ({"gt": 2}, [3, 4, 5, 6]),
        ({"gte": 2}, [2, 3, 4, 5, 6]),
        ({"lt": 3}, [1, 2]),
        ({"lte": 3}, [1, 2, 3]),
        ({"eq": 3}, [3]),
        ({"neq": 3}, [1, 2, 4, 5, 6]),
        ({"gt": 2, "lte": 4}, [3, 4]),
        ({"gte": 2, "lt": 4}, [2, 3]),
        ({"gt": 2.5}, [3, 4, 5, 6]),
        ({"lte": 2.5}, [1, 2]),
        ({"gt": 4, "lt": 3}, []),
    ],
    ids=str,
)
def test_event_count_thresholds_are_checked_at_every_hit(condition, counts):
    ev = evaluator(base("a"), corr("event_count", ["a"], condition))
    assert values(ev, [ev_of("a", t) for t in range(6)]) == counts


@pytest.mark.parametrize(
    ("condition", "averages"),
    [
        ({"gt": 1.5}, [11 / 6]),
        ({"gte": 1.5}, [1.5, 11 / 6]),
        ({"lt": 1.25}, [1.0]),
        ({"gt": 1.25, "lte": 1.5}, [1.5]),
        ({"eq": 1.5}, [1.5]),
        ({"neq": 1.5}, [1.0, 11 / 6]),
    ],
    ids=str,
)
def test_value_avg_float_thresholds(condition, averages):
    """Float thresholds (the specification allows them for value_avg; sigma-engine.md §3.1 [RS!])."""
    ev = evaluator(base("a"), corr("value_avg", ["a"], {"field": "n", **condition}))
    got = values(ev, [ev_of("a", 0, n=1.0), ev_of("a", 1, n=2.0), ev_of("a", 2, n=2.5)])
    assert got == pytest.approx(averages)


# ---- late and out-of-order events -------------------------------------------------------------


def test_out_of_order_event_within_the_window_is_counted():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 3}))
    # 40 is exactly 100 - 60: still in the window. At 101 the window is [41, 101]: 50, 100, 101.
    assert list(per_event(ev, [ev_of("a", t) for t in (100, 50, 40, 101)])) == [[], [], [3.0], [3.0]]
    assert ev.correlation.late == 0


def test_too_late_event_is_dropped_and_counted():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 3}))
    # 39 is older than 100 - 60: it can never share a window with 100.
    assert list(per_event(ev, [ev_of("a", t) for t in (100, 39, 101)])) == [[], [], []]
    assert ev.correlation.late == 1
    assert values(ev, [ev_of("a", 102)]) == [3.0]


def test_a_late_event_of_one_group_does_not_affect_another():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}, group_by=["User"]))
    events = [ev_of("a", 1000, User="u1"), ev_of("a", 10, User="u2"), ev_of("a", 11, User="u2")]
    assert [r.group_key for r in fired(ev, events)] == [[("User", "u2")]]
    assert ev.correlation.late == 0


def test_out_of_order_hits_feed_value_aggregates_in_time_order():
    ev = evaluator(base("a"), corr("value_sum", ["a"], {"field": "n", "gte": 0}))
    events = [ev_of("a", 100, n=1), ev_of("a", 50, n=10), ev_of("a", 30, n=100), ev_of("a", 105, n=1000)]
    # at 105 the window is [45, 105]: 50 and 100 and 105 stay; 30 was already too late at arrival.
    assert values(ev, events) == [1.0, 11.0, 1011.0]
    assert ev.correlation.late == 1


# ---- grouping ---------------------------------------------------------------------------------


def test_group_by_several_fields_is_an_and():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}, group_by=["Host", "User"]))
    events = [
        ev_of("a", 0, Host="h1", User="u1"),
        ev_of("a", 1, Host="h1", User="u2"),
        ev_of("a", 2, Host="h2", User="u1"),
    ]
    assert fired(ev, events) == []
    (hit,) = fired(ev, [ev_of("a", 3, Host="h1", User="u1")])
    assert hit.group_key == [("Host", "h1"), ("User", "u1")]
    assert hit.to_dict()["group_key"] == [["Host", "h1"], ["User", "u1"]]


def test_group_by_missing_field_is_one_shared_null_group():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 3}, group_by=["Host", "User"]))
    events = [ev_of("a", 0, Host="h1"), ev_of("a", 1, Host="h1", User=None), ev_of("a", 2, Host="h2")]
    assert fired(ev, events) == []
    (hit,) = fired(ev, [ev_of("a", 3, Host="h1")])
    assert hit.to_dict()["group_key"] == [["Host", "h1"], ["User", None]]
    assert hit.aggregated_value == 3.0


def test_group_values_compare_as_text_case_sensitively():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}, group_by=["EventID"]))
    (hit,) = fired(ev, [ev_of("a", 0, EventID=4624), ev_of("a", 1, EventID="4624")])
    assert hit.to_dict()["group_key"] == [["EventID", "4624"]]
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}, group_by=["User"]))
    assert fired(ev, [ev_of("a", 0, User="Alice"), ev_of("a", 1, User="alice")]) == []


def test_no_group_by_is_one_group():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 3}))
    events = [ev_of("a", 0, User="u1", Host="h1"), ev_of("a", 1, User="u2"), ev_of("a", 2, Host="h3")]
    (hit,) = fired(ev, events)
    assert hit.group_key == []
    assert hit.to_dict()["group_key"] == []


def test_event_matching_two_referenced_rules_counts_once():
    ev = evaluator(
        base("a"),
        {**base("b"), "detection": {"selection": {"User": "u1"}, "condition": "selection"}},
        corr("event_count", ["a", "b"], {"gte": 0}),
    )
    assert values(ev, [ev_of("a", 0, User="u1"), ev_of("a", 1), ev_of("x", 2, User="u1")]) == [1.0, 2.0, 3.0]


# ---- value_count ------------------------------------------------------------------------------


def test_value_count_ignores_events_without_the_field():
    ev = evaluator(base("a"), corr("value_count", ["a"], {"field": "User", "gte": 0}))
    events = [ev_of("a", 0, User="u1"), ev_of("a", 1), ev_of("a", 2), ev_of("a", 3, User="u2")]
    results = values(ev, events)
    assert results[-1] == 2.0  # a missing User would be a third distinct value
    assert max(results) == 2.0


def test_value_count_of_several_fields_counts_combinations():
    ev = evaluator(base("a"), corr("value_count", ["a"], {"field": ["User", "Host"], "gte": 0}))
    events = [
        ev_of("a", 0, User="u1", Host="h1"),
        ev_of("a", 1, User="u1", Host="h2"),
        ev_of("a", 2, User="u2", Host="h1"),
        ev_of("a", 3, User="u1", Host="h1"),
    ]
    assert values(ev, events)[-1] == 3.0


def test_value_count_distinct_values_leave_with_the_window():
    ev = evaluator(base("a"), corr("value_count", ["a"], {"field": "User", "gte": 3}))
    events = [ev_of("a", 0, User="u1"), ev_of("a", 30, User="u2"), ev_of("a", 61, User="u3")]
    assert fired(ev, events) == []
    assert values(ev, [ev_of("a", 62, User="u1")]) == [3.0]


# ---- numeric values ---------------------------------------------------------------------------


def test_value_sum_reads_numbers_and_numeric_strings():
    ev = evaluator(base("a"), corr("value_sum", ["a"], {"field": "n", "gte": 0}))
    events = [ev_of("a", 0, n=100), ev_of("a", 1, n="50"), ev_of("a", 2, n="25.5"), ev_of("a", 3, n="-4")]
    assert values(ev, events) == [100.0, 150.0, 175.5, 171.5]


@pytest.mark.parametrize("bad", ["abc", "", True, None, [1, 2], {"x": 1}, "1e999", "nan"], ids=repr)
def test_value_sum_skips_non_numeric_values(bad):
    ev = evaluator(base("a"), corr("value_sum", ["a"], {"field": "n", "gte": 0}))
    results = values(ev, [ev_of("a", 0, n=10), ev_of("a", 1, n=bad), ev_of("a", 2), ev_of("a", 3, n=5.5)])
    assert results[0] == 10.0
    assert results[-1] == 15.5
    assert set(results) <= {10.0, 15.5}


@pytest.mark.parametrize(("ctype", "expected"), [("value_sum", 3.0), ("value_avg", 1.0)])
def test_value_sum_and_avg_are_exact_after_a_large_value_leaves_the_window(ctype, expected):
    """The aggregate is the sum (mean) of the values in the window: at t=61 the window holds 1, 1, 1."""
    ev = evaluator(base("a"), corr(ctype, ["a"], {"field": "n", "gte": 0}))
    events = [ev_of("a", 0, n=1e16), ev_of("a", 1, n=1), ev_of("a", 2, n=1), ev_of("a", 61, n=1)]
    assert values(ev, events)[-1] == expected


def test_value_avg_skips_non_numeric_values():
    ev = evaluator(base("a"), corr("value_avg", ["a"], {"field": "n", "gte": 0}))
    results = values(ev, [ev_of("a", 0, n=10), ev_of("a", 1, n="ten"), ev_of("a", 2), ev_of("a", 3, n=20)])
    assert results[-1] == 15.0


def test_value_field_only_non_numeric_never_fires_even_with_lt():
    """No numeric value in the window: nothing to compare, even with a condition that 0 would satisfy."""
    for ctype in ("value_avg", "value_percentile", "value_median"):
        ev = evaluator(base("a"), corr(ctype, ["a"], {"field": "n", "lt": 100}))
        assert fired(ev, [ev_of("a", t, n="x") for t in range(3)]) == [], ctype


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [(50, 3.0), (25, 2.0), (90, 4.6), (0, 1.0), (100, 5.0), (10, 1.4), (62.5, 3.5)],
)
def test_value_percentile_linear_interpolation(percentile, expected):
    ev = evaluator(
        base("a"), corr("value_percentile", ["a"], {"field": "n", "gte": 0, "percentile": percentile})
    )
    # values 1..5, arriving in scrambled order
    results = values(ev, [ev_of("a", i, n=v) for i, v in enumerate([4, 1, 5, 3, 2])])
    assert results[-1] == pytest.approx(expected)


def test_value_percentile_default_is_the_median():
    ev = evaluator(base("a"), corr("value_percentile", ["a"], {"field": "n", "gte": 0}))
    assert values(ev, [ev_of("a", i, n=v) for i, v in enumerate([10, 40, 20, 30])])[-1] == 25.0


@pytest.mark.parametrize(
    ("series", "median"), [([7], 7.0), ([3, 1], 2.0), ([5, 1, 3], 3.0), ([4, 1, 3, 2], 2.5)]
)
def test_value_median(series, median):
    ev = evaluator(base("a"), corr("value_median", ["a"], {"field": "n", "gte": 0}))
    assert values(ev, [ev_of("a", i, n=v) for i, v in enumerate(series)])[-1] == median


def test_value_median_forgets_values_that_leave_the_window():
    ev = evaluator(base("a"), corr("value_median", ["a"], {"field": "n", "gte": 0}))
    events = [ev_of("a", 0, n=1000), ev_of("a", 10, n=1), ev_of("a", 20, n=2), ev_of("a", 61, n=3)]
    assert values(ev, events) == [1000.0, 500.5, 2.0, 2.0]


# ---- temporal and temporal_ordered -------------------------------------------------------------


def test_temporal_ordered_wrong_order_does_not_fire():
    ev = evaluator(base("a"), base("b"), base("c"), corr("temporal_ordered", ["a", "b", "c"]))
    assert fired(ev, [ev_of("a", 0), ev_of("c", 1), ev_of("b", 2)]) == []
    assert fired(ev, [ev_of("b", 3), ev_of("a", 4)]) == []
    # a (0 or 4) -> b (2 or 3) -> c (now): an ordered choice exists.
    (hit,) = fired(ev, [ev_of("c", 5)])
    assert hit.aggregated_value == 3.0


def test_temporal_ordered_uses_event_time_not_arrival_order():
    ev = evaluator(base("a"), base("b"), corr("temporal_ordered", ["a", "b"]))
    # b arrives first but happened after a.
    (hit,) = fired(ev, [ev_of("b", 10), ev_of("a", 5)])
    assert hit.aggregated_value == 2.0
    ev = evaluator(base("a"), base("b"), corr("temporal_ordered", ["a", "b"]))
    # a arrives first but happened after b.
    assert fired(ev, [ev_of("a", 10), ev_of("b", 5)]) == []


@pytest.mark.parametrize("arrival", ["ab", "ba"])
def test_temporal_ordered_ties_fire(arrival):
    ev = evaluator(base("a"), base("b"), corr("temporal_ordered", ["a", "b"]))
    (hit,) = fired(ev, [ev_of(kind, 7) for kind in arrival])
    assert hit.aggregated_value == 2.0


def test_temporal_ordered_one_event_matching_both_rules_is_a_tie():
    ev = evaluator(
        base("a"),
        {**base("b"), "detection": {"selection": {"User": "u1"}, "condition": "selection"}},
        corr("temporal_ordered", ["a", "b"]),
    )
    (hit,) = fired(ev, [ev_of("a", 0, User="u1")])
    assert hit.aggregated_value == 2.0


def test_temporal_ordered_condition_counts_the_ordered_prefix():
    ev = evaluator(base("a"), base("b"), base("c"), corr("temporal_ordered", ["a", "b", "c"], {"gte": 2}))
    assert fired(ev, [ev_of("b", 0), ev_of("c", 1)]) == []  # no a first: prefix 0
    assert values(ev, [ev_of("a", 2), ev_of("b", 3)]) == [2.0]


def test_temporal_counts_distinct_rules_with_a_condition():
    ev = evaluator(base("a"), base("b"), base("c"), corr("temporal", ["a", "b", "c"], {"gte": 2}))
    assert values(ev, [ev_of("a", 0), ev_of("a", 1), ev_of("c", 2), ev_of("b", 3)]) == [2.0, 3.0]


def test_temporal_rule_hits_leave_with_the_window():
    ev = evaluator(base("a"), base("b"), corr("temporal", ["a", "b"]))
    assert fired(ev, [ev_of("a", 0), ev_of("b", 61)]) == []
    assert values(ev, [ev_of("a", 62)]) == [2.0]


# ---- event time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        pytest.param(EPOCH0, EPOCH0 + 60, True, id="epoch-seconds-60"),
        pytest.param(EPOCH0, EPOCH0 + 61, False, id="epoch-seconds-61"),
        pytest.param(int(EPOCH0), int(EPOCH0) + 61, False, id="epoch-int-seconds-61"),
        pytest.param(int(EPOCH0 * 1000), int(EPOCH0 * 1000) + 60000, True, id="epoch-ms-60"),
        pytest.param(int(EPOCH0 * 1000), int(EPOCH0 * 1000) + 61000, False, id="epoch-ms-61"),
        pytest.param(int(EPOCH0 * 1000), int(EPOCH0 * 1000) + 60001, False, id="epoch-ms-60.001"),
        pytest.param(int(EPOCH0), int(EPOCH0 * 1000) + 30000, True, id="seconds-then-ms"),
        pytest.param(int(EPOCH0), at(60), True, id="epoch-then-iso"),
        pytest.param("2026-11-28T10:00:00", "2026-11-28T11:01:00+01:00", True, id="naive-iso-is-utc"),
        pytest.param("2026-11-28T10:00:00", "2026-11-28T11:01:01+01:00", False, id="naive-iso-is-utc-61"),
        pytest.param(at(0), at(60.5), False, id="sub-second-kept"),
        pytest.param(at(0.5), at(60.5), True, id="sub-second-60"),
    ],
)
def test_timestamp_formats(first, second, shared):
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}))
    results = fired(ev, [{"kind": "a", "@timestamp": first}, {"kind": "a", "@timestamp": second}])
    assert len(results) == (1 if shared else 0)


def test_sub_second_precision_in_a_one_second_window():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}, timespan="1s"))
    assert fired(ev, [ev_of("a", 0.2), ev_of("a", 1.3)]) == []  # whole seconds would put them together
    assert len(fired(ev, [ev_of("a", 2.3)])) == 1


@pytest.mark.parametrize(
    "name", ["@timestamp", "timestamp", "UtcTime", "TimeCreated", "EventTime", "eventTime"]
)
def test_default_timestamp_fields(name):
    clock = iter([EPOCH0 + 10_000.0] * 10)
    ev = evaluator(
        base("a"), corr("event_count", ["a"], {"gte": 2}), config=CorrelationConfig(clock=lambda: next(clock))
    )
    # 61 s apart by the field; the wall clock (constant) would put them in one window.
    assert fired(ev, [{"kind": "a", name: at(0)}, {"kind": "a", name: at(61)}]) == []
    assert len(fired(ev, [{"kind": "a", name: at(62)}])) == 1


def test_default_timestamp_field_order_and_unparseable_fields():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}))
    # @timestamp wins over timestamp; an unparseable @timestamp falls through to the next field.
    events = [
        {"kind": "a", "@timestamp": at(0), "timestamp": at(500)},
        {"kind": "a", "@timestamp": "not a time", "timestamp": at(30)},
    ]
    assert len(fired(ev, events)) == 1


def test_time_created_system_time_object():
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}))
    events = [{"kind": "a", "TimeCreated": {"SystemTime": at(t)}} for t in (0, 61)]
    assert fired(ev, events) == []


def test_custom_timestamp_field():
    config = CorrelationConfig(timestamp_fields=("ts", "@timestamp"))
    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}), config=config)
    # Same @timestamp, but `ts` (tried first) puts them 61 s apart.
    events = [
        {"kind": "a", "ts": EPOCH0, "@timestamp": at(0)},
        {"kind": "a", "ts": EPOCH0 + 61, "@timestamp": at(0)},
    ]
    assert fired(ev, events) == []
    # Without `ts`, the next field is used.
    assert len(fired(ev, [{"kind": "a", "@timestamp": at(61)}])) == 1


@pytest.mark.parametrize(("first", "second", "shared"), [(1000, 1060, True), (1000, 1061, False)])
def test_custom_timestamp_field_epoch_seconds_and_ms(first, second, shared):
    config = CorrelationConfig(timestamp_fields=("event.created",))
    for scale in (1, 1000):
        ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}), config=config)
        base_t = int(EPOCH0) * scale
        events = [
            {"kind": "a", "event": {"created": base_t + first * scale}},
            {"kind": "a", "event": {"created": base_t + second * scale}},
        ]
        assert len(fired(ev, events)) == (1 if shared else 0), scale


def test_fallback_skip_outputs_detections_but_no_correlation():
    config = CorrelationConfig(timestamp_fallback="skip")
    unreferenced = {**base("z"), "detection": {"selection": {"kind": "a"}, "condition": "selection"}}
    ev = evaluator(
        base("a"), unreferenced, {**corr("event_count", ["a"], {"gte": 2}), "generate": True}, config=config
    )
    results = [r for _ in range(3) for r in ev.process({"kind": "a"})]
    assert [r.rule_title for r in results] == ["rule a", "rule z"] * 3
    assert all(isinstance(r, Detection) for r in results)
    # Events with a time still correlate, and skipped events left nothing in the window.
    assert fired(ev, [ev_of("a", 0)]) == []
    assert len(fired(ev, [ev_of("a", 1)])) == 1


def test_fallback_wallclock_is_the_default_and_uses_the_clock():
    ticks = iter([EPOCH0, EPOCH0 + 60, EPOCH0 + 200, EPOCH0 + 261, EPOCH0 + 262])
    ev = evaluator(
        base("a"), corr("event_count", ["a"], {"gte": 2}), config=CorrelationConfig(clock=lambda: next(ticks))
    )
    assert list(per_event(ev, [{"kind": "a"}] * 2)) == [[], [2.0]]
    assert list(per_event(ev, [{"kind": "a"}] * 2)) == [[], []]  # 200 and 261: 61 s apart
    # An event with its own time ignores the clock (and does not consume a tick): 230 joins 261.
    assert list(per_event(ev, [ev_of("a", 230)])) == [[2.0]]
    # The next tick (262): window [202, 262] holds 230, 261, 262.
    assert list(per_event(ev, [{"kind": "a"}])) == [[3.0]]


def test_fallback_wallclock_clock_is_not_called_for_timed_events():
    def clock() -> float:
        raise AssertionError("the clock must not be read for events with a time")

    ev = evaluator(base("a"), corr("event_count", ["a"], {"gte": 2}), config=CorrelationConfig(clock=clock))
    assert len(fired(ev, [ev_of("a", 0), ev_of("a", 1)])) == 1
