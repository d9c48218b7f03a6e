"""Chaining, references by id or name, `generate`, and reference errors (docs/correlation.md).

Also the RSigma correlation bugs of sigma-engine.md §3.5 that concern references and chaining
(items 2 to 6): each has a test here showing this engine does it right.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from rsigma.correlation.engine import CorrelationConfig, CorrelationResult
from rsigma.engine import Detection
from rsigma.errors import SigmaError
from rsigma.evaluator import Evaluator

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def rule(title: str, kind: str, *, rule_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"title": title}
    if rule_id is not None:
        doc["id"] = rule_id
    if name is not None:
        doc["name"] = name
    doc |= {"logsource": {"product": "test"}, "detection": {"sel": {"kind": kind}, "condition": "sel"}}
    return doc


def corr(
    title: str,
    ctype: str,
    rules: list[str],
    condition: dict[str, Any] | None = None,
    *,
    group_by: list[str] | None = None,
    timespan: str = "10m",
    **meta: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": ctype, "rules": rules, "timespan": timespan}
    if group_by is not None:
        body["group-by"] = group_by
    if condition is not None:
        body["condition"] = condition
    extra = {k: v for k, v in meta.items() if k != "inner"}
    body |= meta.get("inner", {})
    return {"title": title, **extra, "correlation": body}


def load(*docs: dict[str, Any], config: CorrelationConfig | None = None) -> Evaluator:
    return Evaluator.from_yaml("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs), config)


def event(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, "@timestamp": at(t), **fields}


def titles(ev: Evaluator, events: list[dict[str, Any]]) -> list[str]:
    return [r.rule_title for e in events for r in ev.process(e)]


def outputs(ev: Evaluator, events: list[dict[str, Any]]) -> list[tuple[str, str, float | None]]:
    """(kind, title, aggregated value) per output, in output order."""
    out = []
    for e in events:
        for r in ev.process(e):
            if isinstance(r, CorrelationResult):
                out.append(("correlation", r.rule_title, r.aggregated_value))
            else:
                assert isinstance(r, Detection)
                out.append(("detection", r.rule_title, None))
    return out


FAIL = rule("Failed login", "fail", rule_id="11111111-0000-4000-8000-000000000001", name="failed_login")
OK = rule("Successful login", "ok", rule_id="11111111-0000-4000-8000-000000000002", name="successful_login")
MANY = corr(
    "Many failures",
    "event_count",
    ["failed_login"],
    {"gte": 3},
    group_by=["User"],
    id="22222222-0000-4000-8000-000000000001",
    name="many_failures",
)
THEN_OK = corr(
    "Failures then success",
    "temporal_ordered",
    ["many_failures", "successful_login"],
    group_by=["User"],
    id="22222222-0000-4000-8000-000000000002",
    level="high",
)


def brute_force(user: str = "alice", start: float = 0) -> list[dict[str, Any]]:
    return [event("fail", start + i, User=user) for i in range(4)] + [event("ok", start + 10, User=user)]


# ---- chaining ---------------------------------------------------------------------------------


def test_chained_temporal_ordered_result_is_emitted():
    """sigma-engine.md §3.5 item 4: a parent completed by a child's firing is output."""
    ev = load(FAIL, OK, MANY, THEN_OK)
    results = [r for e in brute_force() for r in ev.process(e)]
    assert [r.to_dict() for r in results] == [
        {
            "rule_title": "Failures then success",
            "rule_id": "22222222-0000-4000-8000-000000000002",
            "level": "high",
            "tags": [],
            "correlation_type": "temporal_ordered",
            "group_key": [["User", "alice"]],
            "aggregated_value": 2.0,
            "timespan_secs": 600,
        }
    ]


def test_chained_parent_completed_by_the_child_firing_is_emitted():
    """The last hit the parent needs is the child's firing itself (not a detection)."""
    ev = load(
        OK,
        FAIL,
        MANY,
        corr(
            "Success then failures",
            "temporal_ordered",
            ["successful_login", "many_failures"],
            group_by=["User"],
        ),
    )
    events = [event("ok", 0, User="bob")] + [event("fail", 1 + i, User="bob") for i in range(3)]
    assert outputs(ev, events) == [("correlation", "Success then failures", 2.0)]


def test_chained_event_count_counts_child_firings():
    child = corr("child", "event_count", ["failed_login"], {"gte": 2}, name="child")
    parent = corr("parent", "event_count", ["child"], {"gte": 2})
    ev = load(FAIL, child, parent)
    # The child fires at events 2, 3, 4; the parent at the child's 2nd and 3rd firings.
    per_event = [[r.aggregated_value for r in ev.process(event("fail", i))] for i in range(4)]
    assert per_event == [[], [], [2.0], [3.0]]


def test_chained_parent_groups_by_the_child_group_key():
    child = corr("child", "event_count", ["failed_login"], {"gte": 1}, group_by=["User"], name="child")
    parent = corr("parent", "value_count", ["child"], {"field": "Host", "gte": 2}, group_by=["User"])
    ev = load(FAIL, child, parent)
    hosts = [("u1", "h1"), ("u2", "h2"), ("u1", "h1"), ("u2", "h2"), ("u1", "h3")]
    events = [event("fail", i, User=user, Host=host) for i, (user, host) in enumerate(hosts)]
    assert [(r.group_key, r.aggregated_value) for e in events for r in ev.process(e)] == [
        ([("User", "u1")], 2.0)
    ]


def test_chained_parent_alias_keyed_by_the_child_name():
    child = corr("child", "event_count", ["failed_login"], {"gte": 2}, group_by=["TargetUser"], name="child")
    aliases = {"account": {"child": "TargetUser", "successful_login": "User"}}
    parent = corr(
        "parent",
        "temporal_ordered",
        ["child", "successful_login"],
        group_by=["account"],
        inner={"aliases": aliases},
    )
    ev = load(FAIL, OK, child, parent)
    events = [event("fail", i, TargetUser="carol", User="admin") for i in range(2)]
    assert titles(ev, [*events, event("ok", 5, User="admin")]) == []
    (hit,) = ev.process(event("ok", 6, User="carol", TargetUser="nobody"))
    assert hit.group_key == [("account", "carol")]


def test_chained_parent_reads_the_child_group_key_even_when_no_event_field_has_that_name():
    """The child groups by the alias `account` (TargetUserName in failed logins); the parent groups by
    `account` too: for the child's firings it comes from the child's group key, not from the event."""
    child = corr(
        "child",
        "event_count",
        ["failed_login"],
        {"gte": 2},
        group_by=["account"],
        name="child",
        inner={"aliases": {"account": {"failed_login": "TargetUserName"}}},
    )
    parent = corr(
        "parent",
        "temporal_ordered",
        ["child", "successful_login"],
        group_by=["account"],
        inner={"aliases": {"account": {"successful_login": "User"}}},
    )
    ev = load(FAIL, OK, child, parent)
    events = [event("fail", i, TargetUserName="dave") for i in range(2)] + [event("ok", 3, User="dave")]
    (hit,) = [r for e in events for r in ev.process(e)]
    assert hit.group_key == [("account", "dave")]


def test_chained_parent_reads_other_group_fields_from_the_event_that_made_the_child_fire():
    """The specification's note: the child groups by ComputerName, the parent uses its own group-by User."""
    child = corr(
        "child", "event_count", ["failed_login"], {"gte": 2}, group_by=["ComputerName"], name="child"
    )
    parent = corr("parent", "temporal_ordered", ["child", "successful_login"], group_by=["User"])
    ev = load(FAIL, OK, child, parent)
    events = [
        event("fail", 0, ComputerName="pc1", User="x"),
        event("fail", 1, ComputerName="pc1", User="bob"),
    ]
    events += [event("ok", 2, ComputerName="pc9", User="x"), event("ok", 3, ComputerName="pc9", User="bob")]
    (hit,) = [r for e in events for r in ev.process(e)]
    assert hit.group_key == [("User", "bob")]


def test_three_level_chain_emits_the_top():
    level1 = corr("level1", "event_count", ["failed_login"], {"gte": 2}, group_by=["User"], name="level1")
    level2 = corr("level2", "event_count", ["level1"], {"gte": 2}, group_by=["User"], name="level2")
    level3 = corr("level3", "event_count", ["level2"], {"gte": 2}, group_by=["User"])
    ev = load(FAIL, level3, level2, level1)  # parents before children in the file
    # level1 fires at events 2, 3, 4, 5; level2 at 3, 4, 5; level3 at 4, 5.
    per_event = [[r.rule_title for r in ev.process(event("fail", i, User="u"))] for i in range(5)]
    assert per_event == [[], [], [], ["level3"], ["level3"]]


def test_chained_value_sum_reads_the_value_from_the_event():
    """sigma-engine.md §3.5 item 6: a chained value_* correlation aggregates (it is not a no-op)."""
    child = corr("child", "event_count", ["failed_login"], {"gte": 1}, group_by=["User"], name="child")
    parent = corr("parent", "value_sum", ["child"], {"field": "bytes", "gt": 100}, group_by=["User"])
    ev = load(FAIL, child, parent)
    events = [event("fail", 0, User="u", bytes=60), event("fail", 1, User="v", bytes=60)]
    events += [event("fail", 2, User="u", bytes="45")]
    assert outputs(ev, events) == [("correlation", "parent", 105.0)]


def test_chained_value_avg_and_median():
    child = corr("child", "event_count", ["failed_login"], {"gte": 1}, name="child")
    avg = corr("avg", "value_avg", ["child"], {"field": "n", "gte": 0})
    median = corr("median", "value_median", ["child"], {"field": "n", "gte": 0})
    ev = load(FAIL, child, avg, median)
    events = [event("fail", i, n=v) for i, v in enumerate([1, 2, 9])]
    assert outputs(ev, events)[-2:] == [("correlation", "avg", 4.0), ("correlation", "median", 2.0)]


def test_chained_correlations_honour_suppression():
    """sigma-engine.md §3.5 item 6: chained correlations also go through suppression."""
    child = corr("child", "event_count", ["failed_login"], {"gte": 1}, name="child")
    parent = corr("parent", "event_count", ["child"], {"gte": 1})
    ev = load(FAIL, child, parent, config=CorrelationConfig(suppress=300))
    assert titles(ev, [event("fail", i) for i in range(5)]) == ["parent"]
    assert titles(ev, [event("fail", 301)]) == ["parent"]


def test_chained_correlations_honour_action_reset():
    """sigma-engine.md §3.5 item 6: chained correlations also go through `--action reset`."""
    child = corr("child", "event_count", ["failed_login"], {"gte": 2}, name="child")
    parent = corr("parent", "event_count", ["child"], {"gte": 2})
    events = [event("fail", i) for i in range(8)]
    # reset: the child fires at events 2, 4, 6, 8; the parent at its 2nd and 4th hits (events 4 and 8).
    ev = load(FAIL, child, parent, config=CorrelationConfig(action="reset"))
    assert [(i, r.aggregated_value) for i, e in enumerate(events, 1) for r in ev.process(e)] == [
        (4, 2.0),
        (8, 2.0),
    ]
    # alert: the child fires at events 2..8; the parent from its 2nd hit on.
    ev = load(FAIL, child, parent)
    assert [i for i, e in enumerate(events, 1) for _ in ev.process(e)] == [3, 4, 5, 6, 7, 8]


# ---- references: id or name -------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["11111111-0000-4000-8000-000000000001", "failed_login"], ids=["id", "name"])
def test_reference_by_id_or_by_name(ref):
    ev = load(FAIL, corr("count", "event_count", [ref], {"gte": 2}))
    assert titles(ev, [event("fail", 0), event("fail", 1)]) == ["count"]


@pytest.mark.parametrize(
    "refs",
    [
        ["failed_login", "successful_login"],
        ["11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002"],
        ["failed_login", "11111111-0000-4000-8000-000000000002"],
    ],
    ids=["names", "ids", "mixed"],
)
@pytest.mark.parametrize("ctype", ["temporal", "temporal_ordered"])
def test_temporal_references_by_name_to_rules_with_ids(refs, ctype):
    """sigma-engine.md §3.5 item 2: temporal hits count whether the rule is named by id or by name."""
    ev = load(FAIL, OK, corr("both", ctype, refs, group_by=["User"]))
    assert titles(ev, [event("fail", 0, User="u")]) == []
    assert titles(ev, [event("ok", 1, User="u")]) == ["both"]


def test_rule_without_id_feeds_a_correlation_by_name():
    """sigma-engine.md §3.5 item 3: detection rules without an `id` feed correlations through their name."""
    no_id = rule("No id", "x", name="no_id_rule")
    ev = load(no_id, corr("count", "event_count", ["no_id_rule"], {"gte": 2}))
    assert titles(ev, [event("x", 0), event("x", 1)]) == ["count"]


def test_rules_without_id_feed_a_temporal_correlation():
    ev = load(
        rule("A", "a", name="rule_a"),
        rule("B", "b", name="rule_b"),
        corr("a and b", "temporal", ["rule_a", "rule_b"]),
    )
    assert titles(ev, [event("a", 0), event("b", 1)]) == ["a and b"]


def test_chaining_to_a_child_named_by_name_that_has_a_different_id():
    """sigma-engine.md §3.5 item 5: the parent names the child by `name`; the child has another `id`."""
    ev = load(FAIL, OK, MANY, THEN_OK)
    assert MANY["id"] != MANY["name"] and THEN_OK["correlation"]["rules"][0] == MANY["name"]
    assert titles(ev, brute_force()) == ["Failures then success"]


def test_chaining_to_a_child_without_id():
    """sigma-engine.md §3.5 item 5: a child without an id still chains (by its name)."""
    child = corr(
        "child", "event_count", ["failed_login"], {"gte": 3}, group_by=["User"], name="many_failures"
    )
    ev = load(FAIL, OK, child, THEN_OK)
    assert titles(ev, brute_force()) == ["Failures then success"]


def test_chaining_to_a_child_by_its_id():
    parent = corr("parent", "temporal_ordered", [MANY["id"], OK["id"]], group_by=["User"])
    ev = load(FAIL, OK, MANY, parent)
    assert titles(ev, brute_force()) == ["parent"]


def test_aliases_keyed_by_rule_id_or_name():
    a = rule("A", "a", rule_id="id-a", name="name_a")
    b = rule("B", "b", rule_id="id-b", name="name_b")
    aliases = {"who": {"id-a": "src_user", "name_b": "dst_user"}}
    ev = load(a, b, corr("who", "temporal", ["name_a", "id-b"], group_by=["who"], inner={"aliases": aliases}))
    events = [event("a", 0, src_user="x", dst_user="y"), event("b", 1, src_user="y", dst_user="x")]
    (hit,) = [r for e in events for r in ev.process(e)]
    assert hit.group_key == [("who", "x")]


# ---- generate ---------------------------------------------------------------------------------


def test_default_generate_false_outputs_only_the_outermost_correlation():
    ev = load(FAIL, OK, MANY, THEN_OK)
    assert outputs(ev, brute_force()) == [("correlation", "Failures then success", 2.0)]


def test_generate_true_outputs_the_referenced_rule_and_the_intermediate_correlation():
    """Generate on the outer correlation: its references (successful_login, many_failures) are output;
    failed_login is referenced only by many_failures (generate false), so it stays silent."""
    ev = load(FAIL, OK, MANY, {**THEN_OK, "generate": True})
    assert outputs(ev, brute_force()) == [
        ("correlation", "Many failures", 3.0),
        ("correlation", "Many failures", 4.0),
        ("detection", "Successful login", None),
        ("correlation", "Failures then success", 2.0),
    ]


def test_generate_true_everywhere_outputs_every_rule():
    ev = load(FAIL, OK, {**MANY, "generate": True}, {**THEN_OK, "generate": True})
    assert outputs(ev, brute_force()) == [
        ("detection", "Failed login", None),
        ("detection", "Failed login", None),
        ("detection", "Failed login", None),
        ("correlation", "Many failures", 3.0),
        ("detection", "Failed login", None),
        ("correlation", "Many failures", 4.0),
        ("detection", "Successful login", None),
        ("correlation", "Failures then success", 2.0),
    ]


def test_generate_output_order_detections_then_children_then_parents():
    child = corr("child", "event_count", ["failed_login"], {"gte": 1}, name="child", generate=True)
    parent = corr("parent", "event_count", ["child"], {"gte": 1}, generate=True)
    other = rule("Other", "fail")
    ev = load(parent, child, FAIL, other)
    assert outputs(ev, [event("fail", 0)]) == [
        ("detection", "Failed login", None),
        ("detection", "Other", None),
        ("correlation", "child", 1.0),
        ("correlation", "parent", 1.0),
    ]


def test_generate_inside_the_correlation_section():
    ev = load(FAIL, corr("count", "event_count", ["failed_login"], {"gte": 2}, inner={"generate": True}))
    assert titles(ev, [event("fail", 0), event("fail", 1)]) == ["Failed login", "Failed login", "count"]


def test_top_level_generate_wins_over_the_correlation_section():
    docs = corr(
        "count", "event_count", ["failed_login"], {"gte": 2}, generate=False, inner={"generate": True}
    )
    ev = load(FAIL, docs)
    assert titles(ev, [event("fail", 0), event("fail", 1)]) == ["count"]
    docs = corr(
        "count", "event_count", ["failed_login"], {"gte": 2}, generate=True, inner={"generate": False}
    )
    ev = load(FAIL, docs)
    assert titles(ev, [event("fail", 0), event("fail", 1)]) == ["Failed login", "Failed login", "count"]


def test_generate_true_on_any_referencing_correlation_is_enough():
    silent = corr("silent", "event_count", ["failed_login"], {"gte": 99})
    loud = corr("loud", "event_count", ["failed_login"], {"gte": 99}, generate=True)
    ev = load(FAIL, silent, loud)
    assert titles(ev, [event("fail", 0)]) == ["Failed login"]


def test_rule_referenced_by_nothing_is_still_output():
    lonely = rule("Lonely", "fail")
    ev = load(FAIL, lonely, MANY)
    assert titles(ev, [event("fail", i) for i in range(3)]) == ["Lonely", "Lonely", "Lonely", "Many failures"]


def test_a_referenced_rule_is_silent_even_when_the_correlation_does_not_fire():
    ev = load(FAIL, OK, MANY, THEN_OK)
    assert titles(ev, [event("fail", 0), event("ok", 1)]) == []


# ---- load errors ------------------------------------------------------------------------------


def load_error(*docs: dict[str, Any]) -> SigmaError:
    with pytest.raises(SigmaError) as info:
        load(*docs)
    return info.value


def test_unknown_reference_is_a_load_error_naming_the_correlation():
    error = load_error(FAIL, corr("Broken correlation", "event_count", ["failed_login", "nope"], {"gte": 1}))
    assert "Broken correlation" in str(error)
    assert "nope" in str(error)


def test_reference_to_a_correlation_that_does_not_exist_is_a_load_error():
    error = load_error(FAIL, corr("Orphan parent", "event_count", ["missing_child"], {"gte": 1}))
    assert "Orphan parent" in str(error) and "missing_child" in str(error)


def test_cycle_is_a_load_error_naming_the_correlation():
    a = corr("Cycle A", "event_count", ["cycle_b"], {"gte": 1}, name="cycle_a")
    b = corr("Cycle B", "event_count", ["cycle_a"], {"gte": 1}, name="cycle_b")
    error = load_error(FAIL, a, b)
    assert "cycle" in str(error).lower()
    assert "Cycle A" in str(error) or "Cycle B" in str(error)


def test_self_reference_is_a_cycle():
    error = load_error(
        FAIL, corr("Ouroboros", "event_count", ["failed_login", "self"], {"gte": 1}, name="self")
    )
    assert "cycle" in str(error).lower() and "Ouroboros" in str(error)


def test_longer_cycle_behind_a_valid_chain_is_a_load_error():
    a = corr("Top", "event_count", ["c1"], {"gte": 1})
    c1 = corr("C1", "event_count", ["c2"], {"gte": 1}, name="c1")
    c2 = corr("C2", "event_count", ["c3", "failed_login"], {"gte": 1}, name="c2")
    c3 = corr("C3", "event_count", ["c1"], {"gte": 1}, name="c3")
    error = load_error(FAIL, a, c1, c2, c3)
    assert "cycle" in str(error).lower()
    assert any(t in str(error) for t in ("C1", "C2", "C3"))
