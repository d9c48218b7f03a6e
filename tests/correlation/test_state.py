"""Suppression, `--action reset`, bounded state and snapshots (docs/correlation.md)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from rsigma.correlation.engine import CorrelationConfig, CorrelationResult
from rsigma.correlation.snapshot import SnapshotError
from rsigma.evaluator import Evaluator

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
EPOCH0 = T0.timestamp()


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


RULES = """
title: Failed login
id: 11111111-0000-4000-8000-000000000001
name: failed_login
logsource: {product: test}
detection:
    sel: {kind: fail}
    condition: sel
---
title: Many failures
id: 22222222-0000-4000-8000-000000000001
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 1h
    condition: {gte: 3}
"""


def load(text: str = RULES, **config: Any) -> Evaluator:
    return Evaluator.from_yaml(text, CorrelationConfig(**config))


def fail(t: float, user: str = "alice") -> dict[str, Any]:
    return {"kind": "fail", "User": user, "@timestamp": at(t)}


def run(ev: Evaluator, events: list[dict[str, Any]]) -> list[tuple[int, str, float]]:
    """(event number from 1, group value, aggregated value) per correlation result."""
    out = []
    for i, e in enumerate(events, 1):
        for r in ev.process(e):
            assert isinstance(r, CorrelationResult)
            out.append((i, r.group_key[0][1], r.aggregated_value))
    return out


# ---- suppress and action ----------------------------------------------------------------------

SIX = [fail(t) for t in range(6)]


def test_default_alert_fires_at_every_qualifying_hit():
    assert run(load(), SIX) == [(3, "alice", 3.0), (4, "alice", 4.0), (5, "alice", 5.0), (6, "alice", 6.0)]


def test_suppress_mutes_repeats_for_the_group():
    assert run(load(suppress=300), SIX) == [(3, "alice", 3.0)]


def test_action_reset_starts_the_count_over():
    assert run(load(action="reset"), SIX) == [(3, "alice", 3.0), (6, "alice", 3.0)]


def test_suppress_and_reset_together():
    """A suppressed firing still resets the window: fires at 3 (shown), 6 (muted), 9 (muted), then 3 more."""
    ev = load(suppress=300, action="reset")
    events = [fail(t) for t in range(9)] + [fail(400 + t) for t in range(3)]
    assert run(ev, events) == [(3, "alice", 3.0), (12, "alice", 3.0)]


def test_suppress_is_per_group():
    ev = load(suppress=300)
    events = [fail(t, "alice") for t in range(4)] + [fail(10 + t, "bob") for t in range(4)]
    assert run(ev, events) == [(3, "alice", 3.0), (7, "bob", 3.0)]


@pytest.mark.parametrize(("later", "fires"), [(200, False), (301, False), (303, True), (3700, False)])
def test_suppress_expires_after_the_duration(later, fires):
    ev = load(suppress=300)
    assert run(ev, [fail(0), fail(1), fail(2)]) == [(3, "alice", 3.0)]
    # The alert was at t=2: 301 is 299 s later (muted), 303 is 301 s later (shown).
    # At 3700 the earlier hits have left the one-hour window: a count of 1 does not qualify.
    got = run(ev, [fail(later)])
    assert got == ([(1, "alice", 4.0)] if fires else [])


def test_suppress_counts_from_the_last_shown_alert():
    ev = load(suppress=300)
    events = [fail(0), fail(1), fail(2), fail(200), fail(303), fail(400), fail(604)]
    # shown at 2; 200 muted (198 s later); 303 shown (301 s after 2); 400 muted (97 s after 303); 604 shown.
    assert [i for i, _, _ in run(ev, events)] == [3, 5, 7]


# ---- bounded state ----------------------------------------------------------------------------

PAIRS = RULES.replace("{gte: 3}", "{gte: 2}")


def test_max_state_entries_evicts_the_least_recently_updated_group():
    ev = load(PAIRS, max_state_entries=2)
    assert run(ev, [fail(0, "u1"), fail(1, "u2"), fail(2, "u3")]) == []
    assert ev.correlation.evicted == 1
    # u1 was evicted: it starts over (a count of 1, no firing), and this evicts u2.
    assert run(ev, [fail(3, "u1")]) == []
    assert ev.correlation.evicted == 2
    # u3 and u1 are live.
    assert run(ev, [fail(4, "u3"), fail(5, "u1")]) == [(1, "u3", 2.0), (2, "u1", 2.0)]
    assert ev.correlation.evicted == 2


def test_max_state_entries_recently_updated_group_survives():
    ev = load(PAIRS, max_state_entries=2)
    assert run(ev, [fail(0, "u1"), fail(1, "u2"), fail(2, "u1")]) == [(3, "u1", 2.0)]
    assert run(ev, [fail(3, "u3")]) == []  # evicts u2, not u1
    assert ev.correlation.evicted == 1
    assert run(ev, [fail(4, "u1")]) == [(1, "u1", 3.0)]
    assert run(ev, [fail(5, "u2")]) == []  # u2 starts over
    assert ev.correlation.evicted == 2


def test_dropping_a_spent_window_is_not_an_eviction():
    """At the cap the least recently updated window still goes, but one whose hits have all left its
    timespan (as of the new hit) loses nothing: it is not counted."""
    ev = load(PAIRS, max_state_entries=2)
    run(ev, [fail(0, "u1"), fail(1, "u2")])
    assert run(ev, [fail(3601, "u3")]) == []  # u1's hit (t=0) is out of the hour: dropped, not counted
    assert ev.correlation.evicted == 0
    assert run(ev, [fail(3601, "u4")]) == []  # u2's hit (t=1) is still inside it: an eviction
    assert ev.correlation.evicted == 1
    assert len(ev.correlation.state) == 2


def test_a_window_whose_suppression_still_runs_is_not_spent():
    ev = load(PAIRS, max_state_entries=1, suppress=7200)
    assert run(ev, [fail(0, "u1"), fail(1, "u1")]) == [(2, "u1", 2.0)]
    run(ev, [fail(4000, "u2")])  # u1's hits are out of the hour, but a repeat alert would be muted
    assert ev.correlation.evicted == 1


def test_a_reload_carries_the_eviction_count_over():
    old = load(PAIRS, max_state_entries=1)
    run(old, [fail(0, "u1"), fail(1, "u2")])
    new = load(PAIRS, max_state_entries=1)
    new.correlation.carry_over(old.correlation)
    assert new.correlation.evicted == 1
    assert run(new, [fail(2, "u2")]) == [(1, "u2", 2.0)]  # and the windows


def test_no_eviction_below_the_cap():
    ev = load(PAIRS, max_state_entries=3)
    run(ev, [fail(i, f"u{i % 3}") for i in range(30)])
    assert ev.correlation.evicted == 0
    assert ev.correlation.late == 0


# ---- snapshots --------------------------------------------------------------------------------


def test_snapshot_round_trip_keeps_windows_and_last_alert():
    first = load(suppress=300)
    assert run(first, [fail(0), fail(1), fail(2), fail(3, "bob"), fail(4, "bob")]) == [(3, "alice", 3.0)]
    data = first.correlation.export_state()
    assert isinstance(data, bytes)
    second = load(suppress=300)
    assert second.correlation.import_state(data) == 2
    # bob completes his three; alice's repeat is still muted by the restored last alert.
    assert run(second, [fail(5, "bob"), fail(6)]) == [(1, "bob", 3.0)]
    # 303 is 301 s after the alert at 2: shown, with alice's five hits (0, 1, 2, 6, 303).
    assert run(second, [fail(303)]) == [(1, "alice", 5.0)]


def test_snapshot_round_trip_with_fractional_values_is_exact():
    """docs/correlation.md: export, import and continue gives *exactly* the uninterrupted results."""
    text = (
        RULES.replace("type: event_count", "type: value_sum")
        .replace("condition: {gte: 3}", "condition: {field: n, gte: 0}")
        .replace("timespan: 1h", "timespan: 60s")
    )
    events = [{**fail(t), "n": n} for t, n in ((0, 0.1), (30, 0.2), (61, 0.7), (62, 0.0))]
    uninterrupted = load(text)
    whole = [r.aggregated_value for e in events for r in uninterrupted.process(e)]
    first = load(text)
    got = [r.aggregated_value for e in events[:3] for r in first.process(e)]
    second = load(text)
    second.correlation.import_state(first.correlation.export_state())
    got += [r.aggregated_value for r in second.process(events[3])]
    assert got == whole


def test_snapshot_after_reset_keeps_the_newest_time():
    """After `--action reset` the window is empty but a hit older than newest - timespan is still late."""
    first = load(action="reset")
    assert run(first, [fail(5000), fail(5001), fail(5002)]) == [(3, "alice", 3.0)]
    second = load(action="reset")
    second.correlation.import_state(first.correlation.export_state())
    assert run(second, [fail(1000), fail(5003), fail(5004)]) == []
    assert second.correlation.late == 1


def test_snapshot_of_an_empty_engine_imports_nothing():
    data = load().correlation.export_state()
    ev = load()
    assert ev.correlation.import_state(data) == 0
    assert run(ev, SIX[:3]) == [(3, "alice", 3.0)]


def test_snapshot_survives_reordering_of_the_rules():
    text = RULES + "---\n" + RULES.split("---\n")[1].replace("Many failures", "Other").replace("2222", "3333")
    first = load(text)
    run(first, [fail(0), fail(1)])
    data = first.correlation.export_state()
    docs = text.split("---\n")
    reordered = "---\n".join([docs[2], docs[1], docs[0]])
    second = load(reordered)
    assert second.correlation.import_state(data) == 2
    assert sorted(r.rule_title for r in second.process(fail(2))) == ["Many failures", "Other"]


def test_snapshot_windows_of_unknown_correlations_are_dropped():
    extra = RULES.split("---\n")[1].replace("Many failures", "Gone").replace("2222", "4444")
    first = load(RULES + "---\n" + extra)
    run(first, [fail(0), fail(1, "bob")])
    data = first.correlation.export_state()
    second = load()
    assert second.correlation.import_state(data) == 2  # "Many failures" for alice and bob; "Gone" dropped
    assert [r.rule_title for r in second.process(fail(2)) + second.process(fail(3))] == ["Many failures"]


def test_snapshot_keyed_by_name_or_title_without_id():
    text = RULES.replace("id: 22222222-0000-4000-8000-000000000001\n", "")
    first = load(text)
    run(first, [fail(0), fail(1)])
    second = load(text)
    assert second.correlation.import_state(first.correlation.export_state()) == 1
    assert run(second, [fail(2)]) == [(1, "alice", 3.0)]


def snapshot(version: Any, entries: list[Any], fmt: str = "rsigma-correlation-state") -> bytes:
    return msgspec.msgpack.encode({"format": fmt, "version": version, "entries": entries})


VALID_ENTRY = [
    "22222222-0000-4000-8000-000000000001",
    ["alice"],
    [EPOCH0, EPOCH0 + 1],
    [None, None],
    EPOCH0 + 1,
    None,
]


def test_snapshot_crafted_in_the_current_format_is_read():
    """The test's hand-made encoding is the real one (so the refusals below are about the version only)."""
    ev = load()
    assert ev.correlation.import_state(snapshot(2, [[*VALID_ENTRY, []]])) == 1
    assert run(ev, [fail(2)]) == [(1, "alice", 3.0)]


def test_snapshot_of_version_1_without_kept_events_still_reads():
    """Snapshots written before event inclusion (6-item entries) import as windows without evidence."""
    ev = load()
    assert ev.correlation.import_state(snapshot(1, [VALID_ENTRY])) == 1
    assert run(ev, [fail(2)]) == [(1, "alice", 3.0)]


@pytest.mark.parametrize("version", [99, 0, 3, "1", None])
def test_snapshot_of_another_version_is_refused(version):
    ev = load()
    with pytest.raises(SnapshotError) as info:
        ev.correlation.import_state(snapshot(version, [VALID_ENTRY]))
    assert str(version) in str(info.value)
    assert "1" in str(info.value)
    # Nothing was half-read: the window is empty.
    assert run(ev, [fail(2)]) == []


def test_snapshot_of_version_99_names_both_versions():
    with pytest.raises(SnapshotError, match=r"99") as info:
        load().correlation.import_state(snapshot(99, []))
    assert "version 1" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not msgpack at all", id="text"),
        pytest.param(b"\xc1", id="invalid-byte"),
        pytest.param(msgspec.msgpack.encode([1, 2, 3]), id="a-list"),
        pytest.param(msgspec.msgpack.encode({"version": 1, "entries": []}), id="no-format-marker"),
        pytest.param(snapshot(1, [], fmt="something-else"), id="other-format"),
        pytest.param(msgspec.json.encode({"format": "rsigma-correlation-state", "version": 1}), id="json"),
    ],
)
def test_garbage_is_refused(data):
    with pytest.raises(SnapshotError):
        load().correlation.import_state(data)


def test_truncated_snapshot_is_refused():
    first = load()
    run(first, [fail(0), fail(1), fail(2, "bob")])
    data = first.correlation.export_state()
    ev = load()
    with pytest.raises(SnapshotError):
        ev.correlation.import_state(data[: len(data) // 2])
    assert run(ev, [fail(3)]) == []


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([[1, 2]], id="short-entry"),
        pytest.param(["not an entry"], id="string-entry"),
        pytest.param([VALID_ENTRY, [None]], id="valid-then-broken"),
        pytest.param([[*VALID_ENTRY, []]], id="version-2-entry-in-version-1"),
    ],
)
def test_snapshot_with_malformed_entries_is_refused_whole(entries):
    """Right marker and version, broken entries: refused as a SnapshotError, and nothing half-read."""
    ev = load()
    with pytest.raises(SnapshotError):
        ev.correlation.import_state(snapshot(1, entries))
    assert run(ev, [fail(2)]) == []


# ---- property: export, import, continue == uninterrupted -------------------------------------

PROPERTY_RULES = """
title: Login failure
id: r-fail
name: login_fail
logsource: {product: test}
detection: {sel: {action: fail}, condition: sel}
---
title: Login success
name: login_ok
logsource: {product: test}
detection: {sel: {action: ok}, condition: sel}
---
title: File transfer
id: r-xfer
name: transfer
logsource: {product: test}
detection: {sel: {action: xfer}, condition: sel}
---
title: Recon command
id: r-recon
logsource: {product: test}
detection: {sel: {action: recon}, condition: sel}
---
title: Repeated failures
id: c-count
name: repeated_failures
generate: true
correlation:
    type: event_count
    rules: [login_fail]
    group-by: [User]
    timespan: 60s
    condition: {gte: 3}
---
title: Users per host
name: users_per_host
correlation:
    type: value_count
    rules: [login_fail, login_ok]
    group-by: [Host]
    timespan: 120s
    condition: {field: User, gte: 2}
---
title: Recon and transfer
id: c-temporal
correlation:
    type: temporal
    rules: [r-recon, transfer]
    group-by: [Host]
    timespan: 90s
---
title: Failures then success
id: c-ordered
correlation:
    type: temporal_ordered
    rules: [repeated_failures, login_ok]
    group-by: [User]
    timespan: 120s
---
title: Bytes out
id: c-sum
correlation:
    type: value_sum
    rules: [transfer]
    group-by: [User]
    timespan: 90s
    condition: {field: bytes, gt: 1500}
---
title: Average transfer
id: c-avg
correlation:
    type: value_avg
    rules: [r-xfer]
    group-by: [Host]
    timespan: 60s
    condition: {field: bytes, gte: 400, lt: 800}
---
title: Transfer median
id: c-pct
correlation:
    type: value_percentile
    rules: [transfer]
    timespan: 100s
    condition: {field: bytes, percentile: 75, gt: 600}
---
title: Hosts with many users, repeatedly
id: c-chain
generate: true
correlation:
    type: event_count
    rules: [users_per_host]
    group-by: [Host]
    timespan: 300s
    condition: {gte: 2}
"""

CONFIGS = {
    "default": {},
    "suppress": {"suppress": 45.0},
    "reset": {"action": "reset"},
    "small-state": {"max_state_entries": 5},
}


def random_stream(rng: random.Random, n: int = 200) -> list[dict[str, Any]]:
    t = EPOCH0
    events = []
    for _ in range(n):
        t += rng.randint(0, 20)
        when = t
        if rng.random() < 0.08:  # out of order: some within the windows, some too late
            when = t - rng.randint(1, 150)
        event: dict[str, Any] = {
            "action": rng.choice(["fail", "fail", "fail", "ok", "xfer", "recon", "noise"]),
            "Host": rng.choice(["h1", "h2", "h3"]),
        }
        if rng.random() < 0.95:
            event["User"] = rng.choice(["alice", "bob", "carol", "dave"])
        if event["action"] == "xfer":
            event["bytes"] = rng.choice([rng.randint(0, 1200), str(rng.randint(0, 1200)), "n/a"])
        fmt = rng.random()
        if fmt < 0.5:
            event["@timestamp"] = datetime.fromtimestamp(when, UTC).isoformat().replace("+00:00", "Z")
        elif fmt < 0.8:
            event["timestamp"] = when
        else:
            event["@timestamp"] = int(when * 1000)
        events.append(event)
    return events


def outputs(ev: Evaluator, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r.to_dict() for e in events for r in ev.process(e)]


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_property_snapshot_mid_stream_equals_the_uninterrupted_run(config):
    settings = CONFIGS[config]
    seen_types: set[str] = set()
    total = 0
    for seed in range(50):
        rng = random.Random(seed)
        events = random_stream(rng)
        split = rng.randint(0, len(events))
        whole = Evaluator.from_yaml(PROPERTY_RULES, CorrelationConfig(**settings))
        expected = outputs(whole, events)

        first = Evaluator.from_yaml(PROPERTY_RULES, CorrelationConfig(**settings))
        got = outputs(first, events[:split])
        second = Evaluator.from_yaml(PROPERTY_RULES, CorrelationConfig(**settings))
        second.correlation.import_state(first.correlation.export_state())
        got += outputs(second, events[split:])

        assert got == expected, f"seed {seed}, split at {split}"
        seen_types |= {r["correlation_type"] for r in expected if "correlation_type" in r}
        total += sum("correlation_type" in r for r in expected)
    # The streams must exercise every correlation type, or the equality above proves little.
    assert seen_types == {
        "event_count", "value_count", "temporal", "temporal_ordered",
        "value_sum", "value_avg", "value_percentile",
    }  # fmt: skip
    assert total > 200
