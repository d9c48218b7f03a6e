"""Event inclusion (`events`, `event_refs`) and `max_group_entries` (docs/correlation.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from rsigma.correlation.engine import CorrelationConfig, CorrelationResult
from rsigma.correlation.evidence import pack_body, unpack_body
from rsigma.correlation.sharding import ShardedCorrelation
from rsigma.errors import SigmaRuleError
from rsigma.evaluator import Evaluator
from rsigma.rules import parse_rules_text

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EPOCH0 = int(T0.timestamp())


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


RULE = """
title: Failed login
id: r-fail
name: failed_login
logsource: {product: test}
detection:
    sel: {kind: fail}
    condition: sel
"""
CORR = """
title: Many failures
id: c-many
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 60s
    condition: {gte: 2}
"""


def load(corr: str = CORR, extra: str = "", **config: Any) -> Evaluator:
    return Evaluator.from_yaml(RULE + "---" + corr + extra, CorrelationConfig(**config))


def fail(t: float, n: int, user: str = "alice", **fields: Any) -> dict[str, Any]:
    return {"kind": "fail", "User": user, "@timestamp": at(t), "EventRecordID": n, **fields}


def results(ev: Evaluator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r.to_dict() for e in events for r in ev.process(e) if isinstance(r, CorrelationResult)]


def numbers(result: dict[str, Any]) -> list[int]:
    """The EventRecordID of each event a result carries (bodies or refs)."""
    if "events" in result:
        return [e["EventRecordID"] for e in result["events"]]
    return [int(r["id"]) for r in result["event_refs"]]


def test_mode_none_adds_nothing():
    out = results(load(), [fail(0, 1), fail(1, 2)])
    assert out and all("events" not in r and "event_refs" not in r for r in out)


def test_full_mode_carries_the_window_events_in_time_order():
    events = [fail(0, 1), fail(1, 2, Host="h1"), fail(2, 3)]
    out = results(load(event_mode="full"), events)
    assert [r["aggregated_value"] for r in out] == [2.0, 3.0]
    assert out[0]["events"] == events[:2]
    assert out[1]["events"] == events
    assert list(out[1])[-1] == "events"  # after timespan_secs, as RSigma orders the keys


def test_refs_mode_gives_epoch_seconds_and_the_first_id_key():
    events = [
        {"kind": "fail", "User": "alice", "@timestamp": at(0), "_id": "doc-7", "event_id": "x"},
        {"kind": "fail", "User": "alice", "@timestamp": at(1.5)},  # no id key: no "id"
        {"kind": "fail", "User": "alice", "@timestamp": at(2), "event.id": 42},
    ]
    out = results(load(event_mode="refs"), events)
    assert out[-1]["event_refs"] == [
        {"timestamp": EPOCH0, "id": "doc-7"},
        {"timestamp": EPOCH0 + 1.5},
        {"timestamp": EPOCH0 + 2, "id": "42"},
    ]
    assert "events" not in out[-1]


def test_cap_keeps_the_most_recent_events():
    events = [fail(t, t) for t in range(6)]
    out = results(load(event_mode="full", max_correlation_events=3), events)
    assert numbers(out[-1]) == [3, 4, 5]
    assert out[-1]["aggregated_value"] == 6.0  # the count is not capped, only the evidence


def test_late_event_takes_its_place_in_time_order():
    events = [fail(0, 0), fail(10, 10), fail(5, 5)]
    out = results(load(event_mode="refs"), events)
    assert numbers(out[-1]) == [0, 5, 10]


def test_events_leave_with_the_window():
    events = [fail(0, 0), fail(30, 30), fail(61, 61)]  # t=0 is out of the 60 s window at t=61
    out = results(load(event_mode="full"), events)
    assert [numbers(r) for r in out] == [[0, 30], [30, 61]]


def test_reset_clears_the_kept_events():
    events = [fail(t, t) for t in range(5)]
    out = results(load(event_mode="refs", action="reset"), events)
    assert [numbers(r) for r in out] == [[0, 1], [2, 3]]


def test_groups_keep_their_own_events():
    events = [fail(0, 0), fail(1, 1, user="bob"), fail(2, 2), fail(3, 3, user="bob")]
    out = results(load(event_mode="refs"), events)
    assert [(r["group_key"], numbers(r)) for r in out] == [
        ([["User", "alice"]], [0, 2]),
        ([["User", "bob"]], [1, 3]),
    ]


def test_an_event_matching_two_referenced_rules_is_kept_once():
    second = """
title: Failed login on h1
id: r-h1
logsource: {product: test}
detection:
    sel: {kind: fail, Host: h1}
    condition: sel
"""
    corr = CORR.replace("rules: [failed_login]", "rules: [failed_login, r-h1]")
    ev = load(corr, "---" + second, event_mode="refs")
    out = results(ev, [fail(0, 0, Host="h1"), fail(1, 1, Host="h1")])
    assert [numbers(r) for r in out] == [[0, 1]]


# ---- max_group_entries -------------------------------------------------------------------------


def test_max_group_entries_drops_the_oldest_entries_and_counts_them():
    ev = load(max_group_entries=3)
    out = results(ev, [fail(t, t) for t in range(6)])
    assert [r["aggregated_value"] for r in out] == [2.0, 3.0, 3.0, 3.0, 3.0]
    assert ev.correlation.trimmed == 3


def test_max_group_entries_takes_the_kept_events_with_the_entries():
    ev = load(max_group_entries=2, event_mode="refs")
    out = results(ev, [fail(t, t) for t in range(4)])
    assert [numbers(r) for r in out] == [[0, 1], [1, 2], [2, 3]]


def test_max_group_entries_applies_per_group():
    ev = load(max_group_entries=2)
    out = results(ev, [fail(0, 0), fail(1, 1, user="bob"), fail(2, 2), fail(3, 3), fail(4, 4, user="bob")])
    assert [(r["group_key"][0][1], r["aggregated_value"]) for r in out] == [
        ("alice", 2.0),
        ("alice", 2.0),
        ("bob", 2.0),
    ]
    assert ev.correlation.trimmed == 1


def test_max_group_entries_and_the_window_both_bound_a_group():
    ev = load(max_group_entries=5)
    out = results(ev, [fail(0, 0), fail(1, 1), fail(70, 70), fail(71, 71)])
    assert [r["aggregated_value"] for r in out] == [2.0, 2.0]  # the window drops 0 and 1, not the cap
    assert ev.correlation.trimmed == 0


# ---- custom attributes -------------------------------------------------------------------------


def test_attributes_override_the_flags_per_correlation():
    other = """
title: Many failures, evidence
id: c-evidence
rsigma.correlation_event_mode: full
rsigma.max_correlation_events: "2"
rsigma.max_group_entries: 4
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 60s
    condition: {gte: 2}
"""
    ev = load(CORR, "---" + other, event_mode="refs", max_correlation_events=10)
    out = results(ev, [fail(t, t) for t in range(6)])
    by_title: dict[str, list[dict[str, Any]]] = {}
    for r in out:
        by_title.setdefault(r["rule_title"], []).append(r)
    plain, evidence = by_title["Many failures"], by_title["Many failures, evidence"]
    assert numbers(plain[-1]) == [0, 1, 2, 3, 4, 5] and "event_refs" in plain[-1]
    assert numbers(evidence[-1]) == [4, 5] and "events" in evidence[-1]
    assert evidence[-1]["aggregated_value"] == 4.0  # rsigma.max_group_entries
    assert plain[-1]["aggregated_value"] == 6.0


def test_attributes_under_custom_attributes_as_rsigma_writes_them():
    attributes = """
custom_attributes:
    rsigma.correlation_event_mode: refs
    rsigma.max_correlation_events: '2'"""
    corr = attributes + CORR
    out = results(load(corr), [fail(t, t) for t in range(4)])
    assert numbers(out[-1]) == [2, 3] and "event_refs" in out[-1]


def test_attribute_none_turns_inclusion_off_for_one_correlation():
    corr = "\nrsigma.correlation_event_mode: none" + CORR
    out = results(load(corr, event_mode="full"), [fail(0, 0), fail(1, 1)])
    assert "events" not in out[0]


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("rsigma.correlation_event_mode", "everything"),
        ("rsigma.max_correlation_events", "0"),
        ("rsigma.max_correlation_events", "ten"),
        ("rsigma.max_group_entries", -1),
        ("rsigma.max_group_entries", True),
    ],
)
def test_bad_attribute_is_a_load_error_naming_rule_and_attribute(attribute, value):
    corr = f"\n{attribute}: {value!r}" + CORR if isinstance(value, str) else f"\n{attribute}: {value}" + CORR
    ruleset = parse_rules_text(RULE + "---" + corr)
    ev = Evaluator(ruleset)
    assert [c.title for c in ev.correlation.correlations] == []
    (error,) = ev.correlation.errors
    assert attribute in str(error) and "Many failures" in str(error)
    with pytest.raises(SigmaRuleError, match=attribute):
        Evaluator(ruleset, strict=True)


# ---- chains ------------------------------------------------------------------------------------

CHAIN = """
title: Failure bursts
id: c-bursts
rsigma.correlation_event_mode: full
generate: true
correlation:
    type: event_count
    rules: [c-many]
    group-by: [User]
    timespan: 60s
    condition: {gte: 2}
"""


def test_chained_correlation_keeps_the_events_that_made_the_lower_one_fire():
    """The lower correlation keeps nothing itself, but its hits carry the bodies the upper one keeps."""
    ev = load(CORR, "---" + CHAIN)
    out = results(ev, [fail(t, t) for t in range(4)])
    bursts = [r for r in out if r["rule_title"] == "Failure bursts"]
    assert [numbers(r) for r in bursts] == [[1, 2], [1, 2, 3]]  # "Many failures" fired at 1, 2 and 3
    many = [r for r in out if r["rule_title"] == "Many failures"]
    assert len(many) == 3 and all("events" not in r for r in many)


# ---- state -------------------------------------------------------------------------------------


def test_snapshot_round_trip_keeps_the_events():
    first = load(event_mode="full", max_correlation_events=3)
    results(first, [fail(t, t) for t in range(4)])
    second = load(event_mode="full", max_correlation_events=3)
    assert second.correlation.import_state(first.correlation.export_state()) == 1
    assert numbers(results(second, [fail(4, 4)])[0]) == [2, 3, 4]


def test_snapshot_import_with_another_mode_or_cap():
    first = load(event_mode="full")
    results(first, [fail(t, t) for t in range(4)])
    data = first.correlation.export_state()
    refs = load(event_mode="refs")
    refs.correlation.import_state(data)
    assert numbers(results(refs, [fail(4, 4)])[0]) == [4]  # bodies are no refs: the window starts without
    smaller = load(event_mode="full", max_correlation_events=2)
    smaller.correlation.import_state(data)
    assert numbers(results(smaller, [fail(4, 4)])[0]) == [3, 4]


def test_snapshot_of_version_1_imports_without_events():
    entry = ["c-many", ["alice"], [EPOCH0, EPOCH0 + 1], [None, None], EPOCH0 + 1, None]
    data = msgspec.msgpack.encode({"format": "rsigma-correlation-state", "version": 1, "entries": [entry]})
    ev = load(event_mode="full")
    assert ev.correlation.import_state(data) == 1
    (result,) = results(ev, [fail(2, 2)])
    assert result["aggregated_value"] == 3.0 and numbers(result) == [2]


def test_reload_carries_the_events_over():
    old = load(event_mode="refs")
    results(old, [fail(0, 0), fail(1, 1)])
    new = load(event_mode="refs")
    new.correlation.carry_over(old.correlation)
    assert numbers(results(new, [fail(2, 2)])[0]) == [0, 1, 2]


def test_sharded_engines_give_one_engines_evidence():
    """Hits made by one engine carry their event to the engine owning the group."""
    ruleset = parse_rules_text(RULE + "---" + CORR + "---" + CHAIN)
    config = CorrelationConfig(event_mode="refs")
    one = Evaluator(ruleset, config, strict=True)
    many = [Evaluator(ruleset, config, strict=True) for _ in range(3)]
    sharded = ShardedCorrelation([e.correlation for e in many])
    events = [fail(t, t, user=u) for t, u in enumerate(["alice", "bob", "carol"] * 4)]
    expected = results(one, events)
    items = [(e, [d.index for d in one.engine.evaluate(e)]) for e in events]
    got = [r.to_dict() for rs in sharded.process_batch(items) for r in rs]
    assert got == expected
    assert any("events" in r for r in got) and any("event_refs" in r for r in got)


def test_body_is_deflated_only_when_smaller():
    small = {"a": 1}
    large = {"CommandLine": "powershell.exe -enc " + "A" * 400}
    assert pack_body(small) == b'{"a":1}'
    assert len(pack_body(large)) < len(msgspec.json.encode(large))
    assert unpack_body(pack_body(small)) == small and unpack_body(pack_body(large)) == large
