"""Case-insensitive matching folds case the way RE2's `(?i)` does, for every kind of value.

One rule for plain values, wildcards, keywords, `re|i` and the candidate index: Unicode simple case
folding (the long s `ſ` is an `s`, the micro sign `µ` a `μ`, the final sigma `ς` a `σ`, the Kelvin
sign `K` a `k`). Before, a `(?i)` regex's literal prefilter lower-cased both sides with `str.lower()`
and rejected events RE2 would have matched, on real SigmaHQ rules.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import pytest
import re2

from rsigma.engine import Engine
from rsigma.engine.event import EventView
from rsigma.engine.folding import EXTRA_FOLDS, fold
from rsigma.rules import load_rules


@cache
def re2_orbits() -> list[set[str]]:
    """RE2's case-folding orbits with more than one member, found by asking RE2 itself."""
    cased = "".join(
        c
        for c in map(chr, range(sys.maxunicode + 1))
        if not 0xD800 <= ord(c) <= 0xDFFF and (c.lower() != c or c.upper() != c or c.casefold() != c)
    )
    seen: set[str] = set()
    orbits = []
    for c in cased:
        if c in seen:
            continue
        orbit = set(re2.compile("(?i)" + re2.escape(c)).findall(cased)) | {c}
        seen |= orbit
        if len(orbit) > 1:
            orbits.append(orbit)
    return orbits


def test_the_fold_table_is_rebuilt_from_re2():
    expected: dict[str, str] = {}
    for orbit in re2_orbits():
        capitals = sorted(x for x in orbit if x.isupper())
        rep = capitals[0].lower() if capitals else min(x.lower() for x in orbit)
        expected.update({x.lower(): rep for x in orbit if x.lower() != rep})
    assert expected == EXTRA_FOLDS


def test_every_re2_orbit_folds_to_one_text():
    for orbit in re2_orbits():
        assert len({fold(x) for x in orbit}) == 1, sorted(orbit)


# (rule text, event text that RE2's (?i) matches)
FOLD_PAIRS = [
    pytest.param("system32", "\u017fy\u017ftem32", id="long-s"),
    pytest.param("kelvin", "\u212aelvin", id="kelvin-sign"),
    pytest.param("\u00e5ngstr\u00f6m", "\u212bNGSTR\u00d6M", id="angstrom-sign"),
    pytest.param("\u03bcs", "\u00b5s", id="micro-sign"),
    pytest.param("\u03c3\u03b1\u03c3x", "\u03a3\u0391\u03c2X", id="final-sigma"),
    pytest.param("\u03b8\u03b5", "\u03d1\u03f5", id="greek-symbol-forms"),
]

KINDS = [
    pytest.param(lambda v: {"F": v}, lambda e: e, id="plain"),
    pytest.param(lambda v: {"F|contains": v[1:-1]}, lambda e: e, id="contains"),
    pytest.param(lambda v: {"F|startswith": v[:-1]}, lambda e: e, id="startswith"),
    pytest.param(lambda v: {"F|endswith": v[1:]}, lambda e: e, id="endswith"),
    pytest.param(lambda v: {"F": v[0] + "*" + v[-1]}, lambda e: e, id="star-glob"),
    pytest.param(lambda v: {"F": "?" + v[1:]}, lambda e: e, id="qmark-glob"),
    pytest.param(lambda v: {"F|re|i": v}, lambda e: e, id="re-i"),
    pytest.param(lambda v: {"F|re": "(?i)" + v}, lambda e: e, id="re-inline-i"),
    pytest.param(lambda v: {"F|re": "(?i)^" + v + "$"}, lambda e: e, id="re-anchored"),
    pytest.param(lambda v: [v], lambda e: "x " + e + " y", id="keyword"),
]


@pytest.mark.parametrize(("selection", "event_of"), KINDS)
@pytest.mark.parametrize(("rule_text", "event_text"), FOLD_PAIRS)
def test_all_kinds_of_value_fold_alike(make_rule, selection, event_of, rule_text, event_text):
    assert re2.search("(?i)" + re2.escape(rule_text), event_text)
    engine = Engine.from_yaml(make_rule({"selection": selection(rule_text), "condition": "selection"}))
    event = {"F": event_of(event_text)}
    assert len(engine.evaluate(event)) == 1
    assert engine.rules[0].matches(EventView(event))


@pytest.mark.parametrize(("rule_text", "event_text"), FOLD_PAIRS)
def test_cased_does_not_fold(make_rule, rule_text, event_text):
    engine = Engine.from_yaml(make_rule({"selection": {"F|cased": rule_text}, "condition": "selection"}))
    assert engine.evaluate({"F": event_text}) == []


def test_dotted_capital_i_is_not_an_i(matches):
    """RE2 does not fold U+0130 with `i` (that is Turkish full folding), and neither does the engine."""
    assert not re2.search("(?i)in", "\u0130n")
    assert not matches({"F": "in"}, {"F": "\u0130n"})


# Real SigmaHQ rules whose `(?i)` regex has an `s` in its required literal; each event is one the rule
# matches, written with the long s `ſ` in the regex's field. RE2 matches it; the prefilter rejected it.
AFFECTED_RULES = [
    pytest.param(
        "windows/process_creation/proc_creation_win_susp_copy_system_dir.yml",
        {
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": 'cmd /c copy "C:\\Window\u017f\\System32\\x"',
        },
        id="Suspicious Copy From or To System Directory",
    ),
    pytest.param(
        "windows/process_creation/proc_creation_win_hktl_wsass.yml",
        {"Image": "C:\\x\\a.exe", "CommandLine": "a.exe C:\\x\\werfault\u017fecure.exe 1234"},
        id="HackTool - WSASS Execution",
    ),
    pytest.param(
        "windows/process_creation/proc_creation_win_hktl_invoke_obfuscation_via_stdin.yml",
        {"CommandLine": 'cmd /c \u017fet a=1&&\u017fet b=invoke&&x"'},
        id="Invoke-Obfuscation Via Stdin",
    ),
    pytest.param(
        "web/proxy_generic/proxy_susp_ipfs_cred_harvest.yml",
        {"cs-uri": "https://ipf\u017f.io/ipfs/page.html#user@example.com"},
        id="Suspicious Network Communication With IPFS",
    ),
]


@pytest.mark.parametrize(("path", "event"), AFFECTED_RULES)
def test_sigmahq_regex_rules_match_what_re2_matches(shared: Path, path: str, event: dict[str, str]):
    rule_file = shared / "corpus" / "sigmahq" / "rules" / path
    if not rule_file.is_file():
        pytest.skip(f"SigmaHQ corpus not present at {rule_file}")
    engine = Engine(load_rules(rule_file))
    assert [d.rule_title for d in engine.evaluate(event)] == [engine.rules[0].rule.title]
