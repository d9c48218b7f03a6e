"""Condition grammar: and/or/not, parentheses, precedence, x-of selectors, them, condition lists, errors,
and the matched_selections / Detection fields."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest


def detection(ids: list[str], condition: str | list[str]) -> dict:
    """Each identifier `n` is true exactly when the event has `f_n: hit`."""
    det: dict = {name: {f"f_{name}": "hit"} for name in ids}
    det["condition"] = condition
    return det


def event(*true_ids: str) -> dict:
    return {"unrelated": "x", **{f"f_{name}": "hit" for name in true_ids}}


def truth_table(ids: list[str], cases: list[tuple[str, Callable[..., bool]]]) -> list:
    """One pytest.param per (condition, assignment of truth values to ids)."""
    params = []
    for condition, oracle in cases:
        for values in itertools.product([False, True], repeat=len(ids)):
            true_ids = tuple(n for n, v in zip(ids, values, strict=True) if v)
            label = ",".join(n for n in true_ids) or "none"
            params.append(pytest.param(condition, true_ids, oracle(*values), id=f"{condition} [{label}]"))
    return params


ABC = ["a", "b", "c"]
PRECEDENCE = [
    ("a or not b and c", lambda a, b, c: a or ((not b) and c)),
    ("a and b or c", lambda a, b, c: (a and b) or c),
    ("a or b and c", lambda a, b, c: a or (b and c)),
    ("(a or b) and c", lambda a, b, c: (a or b) and c),
    ("not a or b", lambda a, b, c: (not a) or b),
    ("not (a or b)", lambda a, b, c: not (a or b)),
    ("not a and not b", lambda a, b, c: (not a) and (not b)),
    ("a and not (b or c)", lambda a, b, c: a and not (b or c)),
    ("not not a", lambda a, b, c: a),
    ("((a))", lambda a, b, c: a),
    ("a and (b or (c and not a))", lambda a, b, c: a and (b or (c and not a))),
    ("a or b or c", lambda a, b, c: a or b or c),
    ("a and b and c", lambda a, b, c: a and b and c),
]


@pytest.mark.parametrize(("condition", "true_ids", "expected"), truth_table(ABC, PRECEDENCE))
def test_boolean_operators_and_precedence(detect, condition, true_ids, expected):
    assert bool(detect(detection(ABC, condition), event(*true_ids))) is expected


GROUPS = ["sel1", "sel2", "filter1", "filter2"]
SELECTORS = [
    ("1 of sel*", lambda s1, s2, f1, f2: s1 or s2),
    ("any of sel*", lambda s1, s2, f1, f2: s1 or s2),
    ("all of sel*", lambda s1, s2, f1, f2: s1 and s2),
    ("1 of them", lambda s1, s2, f1, f2: s1 or s2 or f1 or f2),
    ("all of them", lambda s1, s2, f1, f2: s1 and s2 and f1 and f2),
    ("sel1 and not 1 of filter*", lambda s1, s2, f1, f2: s1 and not (f1 or f2)),
    ("1 of sel* and not 1 of filter*", lambda s1, s2, f1, f2: (s1 or s2) and not (f1 or f2)),
    ("not all of filter*", lambda s1, s2, f1, f2: not (f1 and f2)),
    ("all of sel* or all of filter*", lambda s1, s2, f1, f2: (s1 and s2) or (f1 and f2)),
    ("1 of *1", lambda s1, s2, f1, f2: s1 or f1),
    ("all of *1", lambda s1, s2, f1, f2: s1 and f1),
    ("all of *l*1", lambda s1, s2, f1, f2: s1 and f1),
    ("1 of s*l*", lambda s1, s2, f1, f2: s1 or s2),
    ("all of s*l*", lambda s1, s2, f1, f2: s1 and s2),
]


@pytest.mark.parametrize(("condition", "true_ids", "expected"), truth_table(GROUPS, SELECTORS))
def test_x_of_selectors(detect, condition, true_ids, expected):
    assert bool(detect(detection(GROUPS, condition), event(*true_ids))) is expected


KEYWORD_PREFIXED = ["notable", "order", "and_filter"]


@pytest.mark.parametrize(
    ("condition", "true_ids", "expected"),
    truth_table(
        KEYWORD_PREFIXED, [("notable or order and not and_filter", lambda n, o, a: n or (o and not a))]
    ),
)
def test_identifiers_that_start_with_keywords(detect, condition, true_ids, expected):
    assert bool(detect(detection(KEYWORD_PREFIXED, condition), event(*true_ids))) is expected


@pytest.mark.parametrize(
    ("condition", "true_ids", "expected"),
    truth_table(ABC, [("LIST", lambda a, b, c: (a and b) or c)]),
)
def test_condition_list_is_ored(detect, condition, true_ids, expected):
    assert bool(detect(detection(ABC, ["a and b", "c"]), event(*true_ids))) is expected


UNDERSCORE = [
    pytest.param(["sel", "_hidden"], "1 of them", ["_hidden"], False, id="them-excludes-underscore-1-of"),
    pytest.param(["sel", "_hidden"], "1 of them", ["sel"], True, id="them-includes-normal"),
    pytest.param(["sel", "_hidden"], "all of them", ["sel"], True, id="them-excludes-underscore-all-of"),
    pytest.param(["sel", "_hidden"], "1 of *", ["_hidden"], False, id="star-excludes-underscore"),
    pytest.param(["sel", "_hidden"], "all of *", ["sel"], True, id="star-all-excludes-underscore"),
    pytest.param(["sel", "_hidden"], "1 of _*", ["_hidden"], True, id="underscore-pattern-includes"),
    pytest.param(["sel", "_hidden"], "sel and not _hidden", ["sel", "_hidden"], False, id="direct-reference"),
    pytest.param(
        ["sel_x", "_x", "other"], "1 of *_x", ["_x"], False, id="suffix-pattern-excludes-underscore"
    ),
    pytest.param(["sel_x", "_x", "other"], "1 of *_x", ["sel_x"], True, id="suffix-pattern-matches"),
    pytest.param(["sel_x", "_x", "other"], "1 of *_x", ["other"], False, id="suffix-pattern-not-other"),
    pytest.param(
        ["selection", "selection_a"], "1 of selection_*", ["selection"], False, id="pattern-full-match"
    ),
    pytest.param(
        ["selection", "selection_a"], "1 of selection_*", ["selection_a"], True, id="pattern-suffix"
    ),
    pytest.param(
        ["selection", "selection_a"], "all of sel*", ["selection", "selection_a"], True, id="prefix-both"
    ),
    pytest.param(["selection", "selection_a"], "all of sel*", ["selection_a"], False, id="prefix-needs-both"),
    pytest.param(["axxbyy", "ab", "ba"], "all of a*b*", ["axxbyy", "ab"], True, id="two-stars-all"),
    pytest.param(["axxbyy", "ab", "ba"], "all of a*b*", ["axxbyy"], False, id="two-stars-includes-ab"),
    pytest.param(["axxbyy", "ab", "ba"], "1 of a*b*", ["ba"], False, id="two-stars-excludes-ba"),
]


@pytest.mark.parametrize(("ids", "condition", "true_ids", "expected"), UNDERSCORE)
def test_them_patterns_and_underscore_identifiers(detect, ids, condition, true_ids, expected):
    assert bool(detect(detection(ids, condition), event(*true_ids))) is expected


CONDITION_ERRORS = [
    pytest.param("sel and nope", id="unknown-identifier"),
    pytest.param("nope", id="unknown-single-identifier"),
    pytest.param("sel and 1 of filter*", id="pattern-matches-nothing"),
    pytest.param("all of nothing_*", id="all-of-pattern-matches-nothing"),
    pytest.param("(sel and other", id="unclosed-parenthesis"),
    pytest.param("sel and other)", id="extra-closing-parenthesis"),
    pytest.param("((sel) or other", id="nested-unbalanced"),
    pytest.param("sel and", id="dangling-and"),
    pytest.param("or sel", id="leading-or"),
    pytest.param("sel other", id="two-identifiers-without-operator"),
    pytest.param("not", id="bare-not"),
    pytest.param("1 of", id="selector-without-pattern"),
    pytest.param("", id="empty-condition"),
    pytest.param("sel | count() > 5", id="legacy-aggregation"),
]


@pytest.mark.parametrize("condition", CONDITION_ERRORS)
def test_invalid_conditions_are_load_errors(load_error, condition):
    load_error(detection(["sel", "other"], condition))


def test_missing_condition_is_a_load_error(load_error):
    err = load_error(
        """
        title: no condition
        logsource: {product: test}
        detection:
            selection:
                F: x
        """
    )
    assert "condition" in str(err).lower()


MATCHED = [
    pytest.param(["sel1", "sel2"], "sel1 or sel2", ["sel1", "sel2"], ["sel1"], id="or-short-circuits"),
    pytest.param(["sel1", "sel2"], "sel1 or sel2", ["sel2"], ["sel2"], id="or-second"),
    pytest.param(["sel1", "sel2"], "sel1 and sel2", ["sel1", "sel2"], ["sel1", "sel2"], id="and-both"),
    pytest.param(["sel", "filter"], "sel and not filter", ["sel"], ["sel"], id="negated-false-not-listed"),
    pytest.param(["sel", "filter"], "not filter and sel", ["sel"], ["sel"], id="negation-first"),
    pytest.param(["sel1", "sel2", "sel3"], "1 of sel*", ["sel2"], ["sel2"], id="selector-one"),
    pytest.param(
        ["sel1", "sel2", "sel3"],
        "(sel1 or sel2) and sel3",
        ["sel1", "sel2", "sel3"],
        ["sel1", "sel3"],
        id="parenthesised-or-short-circuits",
    ),
]


@pytest.mark.parametrize(("ids", "condition", "true_ids", "expected"), MATCHED)
def test_matched_selections(detect, ids, condition, true_ids, expected):
    dets = detect(detection(ids, condition), event(*true_ids))
    assert len(dets) == 1
    assert list(dets[0].matched_selections) == expected


def test_matched_selections_for_all_of_lists_every_selection(detect):
    dets = detect(detection(["sel1", "sel2", "other"], "all of sel*"), event("sel1", "sel2", "other"))
    assert sorted(dets[0].matched_selections) == ["sel1", "sel2"]


def test_matched_selections_for_condition_list(detect):
    dets = detect(detection(["sel1", "sel2"], ["sel1", "sel2"]), event("sel2"))
    assert list(dets[0].matched_selections) == ["sel2"]


def test_a_rule_yields_at_most_one_detection_per_event(detect):
    dets = detect(detection(["sel1", "sel2"], ["sel1", "sel2"]), event("sel1", "sel2"))
    assert len(dets) == 1


RULE_WITH_METADATA = r"""
title: Whoami Execution
id: 11111111-2222-4333-8444-555555555555
status: test
level: high
tags:
    - attack.discovery
    - attack.t1033
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\whoami.exe'
        CommandLine|contains: '/all'
    condition: selection
"""


def test_detection_carries_rule_metadata(detect):
    event_ = {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /all"}
    (d,) = detect(RULE_WITH_METADATA, event_)
    assert d.rule_title == "Whoami Execution"
    assert d.rule_id == "11111111-2222-4333-8444-555555555555"
    assert d.level == "high"
    assert list(d.tags) == ["attack.discovery", "attack.t1033"]
    assert list(d.matched_selections) == ["selection"]


def test_detection_to_dict(detect):
    event_ = {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /all"}
    (d,) = detect(RULE_WITH_METADATA, event_)
    out = d.to_dict()
    assert set(out) == {"rule_title", "rule_id", "level", "tags", "matched_selections", "matched_fields"}
    assert out["rule_title"] == "Whoami Execution"
    assert out["rule_id"] == "11111111-2222-4333-8444-555555555555"
    assert out["level"] == "high"
    assert out["tags"] == ["attack.discovery", "attack.t1033"]
    assert out["matched_selections"] == ["selection"]
    assert {"field": "CommandLine", "value": "whoami /all"} in out["matched_fields"]
    assert {"field": "Image", "value": "C:\\Windows\\System32\\whoami.exe"} in out["matched_fields"]


def test_detection_defaults_when_metadata_absent(detect):
    (d,) = detect({"selection": {"F": "x"}, "condition": "selection"}, {"F": "x"})
    assert d.rule_id is None
    assert d.level is None
    assert list(d.tags) == []
    out = d.to_dict()
    assert out["rule_id"] is None
    assert out["level"] is None
    assert out["tags"] == []
    assert {"field": "F", "value": "x"} in out["matched_fields"]
