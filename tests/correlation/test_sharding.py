"""Sharded correlation (rsigma.correlation.sharding): n engines give exactly one engine's results."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsigma.correlation.engine import CorrelationConfig, CorrelationEngine, CorrelationResult, group_of
from rsigma.correlation.sharding import (
    ShardedCorrelation,
    decode_hits,
    encode_hits,
    merge_snapshots,
    next_round,
    owned_by,
    route,
    shard_of,
    split_snapshot,
)
from rsigma.correlation.snapshot import decode_snapshot
from rsigma.evaluator import Evaluator
from rsigma.rules import parse_rules_text
from tests.support.sharding import CLOCK, EPOCH0, RULES, EventSpec, at, build, event_specs, random_specs

RULESET = parse_rules_text(RULES)
assert not RULESET.errors
DETECTOR = Evaluator(RULESET, strict=True)  # detections only (stateless)
RULE_OBJECTS = [r.rule for r in DETECTOR.engine.rules]

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "suppress": {"suppress": 45.0},
    "reset": {"action": "reset"},
    "suppress-reset": {"suppress": 30.0, "action": "reset"},
    "skip": {"timestamp_fallback": "skip"},
    "full": {"event_mode": "full", "max_correlation_events": 3},
    "refs-reset": {"event_mode": "refs", "action": "reset"},
    "group-entries": {"max_group_entries": 4, "event_mode": "refs"},
}


def engine(config: str) -> CorrelationEngine:
    settings_ = CorrelationConfig(clock=lambda: CLOCK, **CONFIGS[config])
    return CorrelationEngine(RULESET.correlations, RULE_OBJECTS, settings_, strict=True)


def detect(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int]]]:
    return [(e, [d.index for d in DETECTOR.engine.evaluate(e)]) for e in events]


Row = tuple[str, tuple[tuple[str, Any], ...], float, str]


def row(r: CorrelationResult) -> Row:
    d = r.to_dict()
    return (r.rule_title, tuple(r.group_key), r.aggregated_value, repr(d.get("events", d.get("event_refs"))))


def single_run(eng: CorrelationEngine, items: list[tuple[dict[str, Any], list[int]]]) -> list[list[Row]]:
    return [[row(r) for r in eng.process(e, dets)] for e, dets in items]


def sharded_run(
    sharded: ShardedCorrelation, items: list[tuple[dict[str, Any], list[int]]], batches: Sequence[int]
) -> list[list[Row]]:
    out: list[list[Row]] = []
    start = 0
    b = 0
    while start < len(items):
        size = batches[b % len(batches)]
        b += 1
        for results in sharded.process_batch(items[start : start + size]):
            out.append([row(r) for r in results])
        start += size
    return out


def windows(snapshot: bytes) -> list[tuple[Any, ...]]:
    """Snapshot entries as a sorted list (the windows as a multiset, whatever the order of entries)."""
    return sorted(
        (
            (key, tuple(group), tuple(times), tuple(values), newest, last_alert, tuple(kept))
            for key, group, times, values, newest, last_alert, kept in decode_snapshot(snapshot)
        ),
        key=repr,
    )


# ---- the property ---------------------------------------------------------------------------------


def check_equal(specs: Sequence[EventSpec], config: str, n: int, batches: Sequence[int]) -> list[list[Row]]:
    items = detect(build(specs))
    single = engine(config)
    expected = single_run(single, items)
    sharded = ShardedCorrelation([engine(config) for _ in range(n)])
    got = sharded_run(sharded, items, batches)
    # Per event: the same results in the same order (so also the same multiset overall).
    assert got == expected
    assert Counter(r for rs in got for r in rs) == Counter(r for rs in expected for r in rs)
    # The windows too (silent correlations included), and the late hits.
    assert windows(sharded.export_state()) == windows(single.export_state())
    assert sharded.late == single.late
    return expected


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(event_specs, min_size=1, max_size=90),
    config=st.sampled_from(list(CONFIGS)),
    n=st.integers(1, 4),
    batches=st.lists(st.integers(1, 25), min_size=1, max_size=8),
)
def test_property_sharded_equals_one_engine(specs, config, n, batches):
    check_equal(specs, config, n, batches)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_seeded_streams_fire_every_type_and_chain_level(config):
    """The same equality on longer streams, and proof the streams exercise what the rules cover."""
    titles: Counter[str] = Counter()
    for seed in range(12):
        rng = random.Random(seed)
        specs = random_specs(rng, 250)
        batches = [rng.randint(1, 64) for _ in range(5)]
        expected = check_equal(specs, config, rng.randint(2, 4), batches)
        titles.update(title for rs in expected for title, *_ in rs)
    corr_titles = {c.title: c.type for c in RULESET.correlations}
    fired = {corr_titles[t] for t in titles}
    assert fired == {
        "event_count", "value_count", "temporal", "temporal_ordered",
        "value_sum", "value_avg", "value_percentile", "value_median",
    }  # fmt: skip
    # Every output correlation fired, the level-3 chain and the mixed-level ones included.
    silent = {"Repeated failures", "Users per host", "Bytes out"}  # referenced without generate
    assert set(titles) == set(corr_titles) - silent
    assert sum(titles.values()) > 300


def test_mixed_levels_within_one_batch_keep_single_process_order():
    """A temporal_ordered correlation fed by a rule (level 0) and a correlation (level 1) in one batch.

    Three failures fire "Repeated failures" at the third (t=2); the success comes at t=3. One engine
    fires "Failures then success" at the success. Applying hits by generation (the rule hit of the
    success in round 1, the chained hit in round 2) would fire it at the third failure instead.
    """
    events = [
        {"action": "fail", "User": "dave", "Host": "h2", "@timestamp": at(0)},
        {"action": "fail", "User": "dave", "Host": "h2", "@timestamp": at(1)},
        {"action": "fail", "User": "dave", "Host": "h2", "@timestamp": at(2)},
        {"action": "ok", "User": "dave", "Host": "h2", "@timestamp": at(3)},
    ]
    items = detect(events)
    expected = single_run(engine("default"), items)
    assert [r for r in expected[3] if r[0] == "Failures then success"] == [
        ("Failures then success", (("User", "dave"),), 2.0, "None")
    ]
    for n in (1, 2, 3):
        sharded = ShardedCorrelation([engine("default") for _ in range(n)])
        assert sharded_run(sharded, items, [4]) == expected
        assert sharded.rounds == 2  # levels 1 and 2


# ---- the pieces ---------------------------------------------------------------------------------


def test_process_is_hits_then_apply():
    items = detect(build(random_specs(random.Random(7), 150)))
    one, two = engine("default"), engine("default")
    for position, (event, dets) in enumerate(items):
        expected = [row(r) for r in one.process(event, dets)]
        got, pending = two.apply(two.hits(event, dets, position))
        while pending:  # single engine: apply the parent hits, lowest level first
            ready, pending = next_round(pending, two.levels)
            more, parents = two.apply(ready)
            got += more
            pending += parents
        assert all(r.position == position for r in got)
        assert [row(r) for r in sorted(got, key=lambda r: r.order)] == expected


def test_hits_carry_the_group_key_and_only_the_context_parents_need():
    eng = engine("default")
    dets = detect([{"action": "fail", "User": "eve", "Host": "h1", "Site": "s2", "bytes": 9, "x": 1}])[0][1]
    hits = eng.hits(
        {"action": "fail", "User": "eve", "Host": "h1", "Site": "s2", "bytes": 9, "x": 1}, dets, 5
    )
    by_title = {eng.correlations[h[0]].title: h for h in hits}
    assert group_of(by_title["Repeated failures"]) == ("eve",)
    assert eng.correlation_key(by_title["Repeated failures"]) == "c-count"
    assert group_of(by_title["Median per account"]) == ("eve",)  # through the alias
    assert all(h[4] == 5 for h in hits)
    # Parents of "Repeated failures" read Host (c-mixed) and bytes (c-sum-chain) from the event.
    assert by_title["Repeated failures"][6] == {"Host": "h1", "bytes": 9}
    # Parents of "Users per host" (and theirs) need Site and User; no parent needs anything of c-alias.
    assert by_title["Users per host"][6] == {"Site": "s2", "User": "eve"}
    assert by_title["Account failed then moved"][6] is None
    # An event matching two referenced rules gives two hits (counted once by event_count).
    assert sum(eng.correlations[h[0]].title == "Repeated failures" for h in hits) == 2


def test_hits_resolve_time_like_process():
    no_time = {"action": "fail", "User": "eve"}
    dets = detect([no_time])[0][1]
    assert engine("skip").hits(no_time, dets) == []
    assert {h[3] for h in engine("default").hits(no_time, dets)} == {CLOCK}
    assert engine("default").hits(no_time, []) == []


def test_hits_survive_the_wire():
    items = detect(build(random_specs(random.Random(3), 200)))
    eng = engine("default")
    hits = [h for p, (e, d) in enumerate(items) for h in eng.hits(e, d, p)]
    assert decode_hits(encode_hits(hits)) == hits
    a, b = engine("default"), engine("default")
    results_a, parents_a = a.apply(hits)
    results_b, parents_b = b.apply(decode_hits(encode_hits(hits)))
    assert [row(r) for r in results_b] == [row(r) for r in results_a]
    assert decode_hits(encode_hits(parents_b)) == parents_a
    assert results_a and parents_a


def test_route_sends_each_window_to_its_owner():
    items = detect(build(random_specs(random.Random(5), 200)))
    eng = engine("default")
    hits = [h for p, (e, d) in enumerate(items) for h in eng.hits(e, d, p)]
    parts = route(hits, eng.keys, 3)
    assert sorted(map(repr, sum(parts, []))) == sorted(map(repr, hits))
    for owner, part in enumerate(parts):
        assert all(shard_of(eng.keys[h[0]], h[1], 3) == owner for h in part)
        positions = [h[4] for h in part]
        assert positions == sorted(positions)  # order kept
    assert route(hits, eng.keys, 1) == [hits]


def test_shard_of_is_stable():
    # Fixed values: the owner of a window must not change between processes, runs or versions.
    assert shard_of("c-count", ["alice"], 4) == 1
    assert shard_of("c-count", ("alice",), 4) == 1  # a tuple is the same group
    assert shard_of("c-count", ["bob"], 4) == 0
    assert shard_of("c-temporal", ["h1", None], 7) == 1
    assert shard_of("c-avg", ["h2", "s1"], 5) == 4
    assert shard_of("Transfer percentile", [], 3) == 1
    assert shard_of("anything", ["x"], 1) == 0


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_shard_of_spreads_keys_evenly(n):
    counts = Counter(shard_of("c-count", [f"user{i}"], n) for i in range(20_000))
    assert set(counts) == set(range(n))
    expected = 20_000 / n
    assert all(abs(c - expected) < 0.06 * expected for c in counts.values()), counts


# ---- snapshots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", ["default", "suppress-reset"])
def test_split_snapshot_then_sharded_continues_like_one_engine(config):
    rng = random.Random(11)
    items = detect(build(random_specs(rng, 400)))
    first, rest = items[:200], items[200:]
    single = engine(config)
    single_run(single, first)
    data = single.export_state()
    expected = single_run(single, rest)

    parts = split_snapshot(data, 3)
    engines = [engine(config) for _ in range(3)]
    kept = [e.import_state(part) for e, part in zip(engines, parts, strict=True)]
    assert sum(kept) == len(decode_snapshot(data)) > 20
    assert all(kept)
    got = sharded_run(ShardedCorrelation(engines), rest, [17, 5, 40])
    assert got == expected

    # The same through the owned filter: every engine reads the whole snapshot, keeps its own.
    filtered = ShardedCorrelation([engine(config) for _ in range(3)])
    assert filtered.import_state(data) == len(decode_snapshot(data))
    assert sharded_run(filtered, rest, [9]) == expected


def test_reshard_three_to_two_through_a_merged_snapshot():
    rng = random.Random(12)
    items = detect(build(random_specs(rng, 450)))
    single = engine("suppress")
    expected = single_run(single, items)

    three = ShardedCorrelation([engine("suppress") for _ in range(3)])
    got = sharded_run(three, items[:150], [10])
    merged = three.export_state()
    two = ShardedCorrelation([engine("suppress") for _ in range(2)])
    two.import_state(merged)
    got += sharded_run(two, items[150:300], [33])
    one = engine("suppress")
    one.import_state(two.export_state())
    got += single_run(one, items[300:])
    assert got == expected


def test_merge_of_split_round_trips_the_entries():
    single = engine("default")
    single_run(single, detect(build(random_specs(random.Random(13), 300))))
    data = single.export_state()
    for n in (1, 2, 3, 5):
        parts = split_snapshot(data, n)
        assert len(parts) == n
        for shard, part in enumerate(parts):
            assert all(shard_of(k, g, n) == shard for k, g, *_ in decode_snapshot(part))
            assert windows(part) == windows(single.export_state(owned_by(shard, n)))
        assert windows(merge_snapshots(parts)) == windows(data)
    # One part: the entries and their (least recently updated first) order are unchanged.
    assert decode_snapshot(merge_snapshots(split_snapshot(data, 1))) == decode_snapshot(data)


def test_export_parts_gives_each_part_what_export_state_gives_it_in_one_pass():
    """A cluster member snapshots its changed partitions with one `export_parts`: each part, and the
    order of its windows, as `export_state` filtered to that part; parts not asked for are left out,
    and an asked part with no window is an empty snapshot."""
    single = engine("default")
    single_run(single, detect(build(random_specs(random.Random(13), 300))))
    n = 5
    asked = [0, 2, 3]
    parts = single.export_parts(lambda key, group: shard_of(key, group, n), asked)
    assert sorted(parts) == asked
    for shard in asked:
        assert decode_snapshot(parts[shard]) == decode_snapshot(single.export_state(owned_by(shard, n)))
    assert decode_snapshot(engine("default").export_parts(lambda key, group: 0, [4])[4]) == []


def test_merge_keeps_the_newer_copy_of_a_duplicated_window():
    older, newer = engine("default"), engine("default")
    single_run(older, detect([{"action": "fail", "User": "zed", "@timestamp": at(0)}]))
    single_run(newer, detect([{"action": "fail", "User": "zed", "@timestamp": at(9)}]))
    for order in ([older, newer], [newer, older]):
        merged = decode_snapshot(merge_snapshots(e.export_state() for e in order))
        assert {newest for _, _, _, _, newest, _, _ in merged} == {EPOCH0 + 9}
        assert len(merged) == len(decode_snapshot(newer.export_state()))


def test_engines_from_other_rules_are_refused():
    other = CorrelationEngine(RULESET.correlations[:3], RULE_OBJECTS, CorrelationConfig())
    with pytest.raises(ValueError, match="same rules"):
        ShardedCorrelation([engine("default"), other])
    with pytest.raises(ValueError):
        ShardedCorrelation([])
