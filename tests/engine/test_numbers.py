"""Numbers written as strings: one strict grammar, the same in the matchers and the candidate index.

A rule number (`EventID: 4624`) matches an event string only when the whole string is a number:
optional sign, ASCII digits, optional fraction and exponent. Whitespace, `_`, non-ASCII digits, hex
and `inf`/`nan` are text, not numbers (docs/engine.md, "Where we differ"). Each case is checked on a
rule of the number alone and on a rule of the number plus a string item, which the index anchors on
the string: the answer must not depend on which item the index picked.
"""

from __future__ import annotations

import pytest

from rsigma.engine import Engine
from rsigma.engine.event import EventView

RULES = """
title: number alone
logsource: {product: test}
detection:
  selection:
    EventID: 4624
  condition: selection
---
title: number and string
logsource: {product: test}
detection:
  selection:
    EventID: 4624
    Channel: 'Microsoft-Windows-Security-Auditing'
  condition: selection
---
title: string only
logsource: {product: test}
detection:
  selection:
    Channel: 'Microsoft-Windows-Security-Auditing'
  condition: selection
"""

BOTH = ["number alone", "number and string", "string only"]
NEITHER = ["string only"]

NUMBERS_IN_STRINGS = [
    pytest.param(4624, BOTH, id="json-int"),
    pytest.param(4624.0, BOTH, id="json-float"),
    pytest.param("4624", BOTH, id="string"),
    pytest.param("4624.0", BOTH, id="fraction"),
    pytest.param("4624.", BOTH, id="trailing-dot"),
    pytest.param("+4624", BOTH, id="plus-sign"),
    pytest.param("04624", BOTH, id="leading-zero"),
    pytest.param("4.624e3", BOTH, id="exponent"),
    pytest.param("4624E0", BOTH, id="upper-exponent"),
    pytest.param("4624 ", NEITHER, id="trailing-space"),
    pytest.param(" 4624", NEITHER, id="leading-space"),
    pytest.param("4624\n", NEITHER, id="trailing-newline"),
    pytest.param("\t4624", NEITHER, id="leading-tab"),
    pytest.param("4_624", NEITHER, id="underscore"),
    pytest.param("\uff14\uff16\uff12\uff14", NEITHER, id="full-width-digits"),
    pytest.param("\u0664\u0666\u0662\u0664", NEITHER, id="arabic-indic-digits"),
    pytest.param("0x1210", NEITHER, id="hex"),
    pytest.param("-4624", NEITHER, id="other-sign"),
    pytest.param("4625", NEITHER, id="other-number"),
    pytest.param(True, NEITHER, id="boolean"),
]


def all_rules_exactly(engine: Engine, event: dict) -> list[str]:
    """Every rule evaluated, no index: what the index must never change."""
    view = EventView(event)
    return [r.rule.title for r in engine.rules if r.matches(view)]


@pytest.mark.parametrize(("value", "expected"), NUMBERS_IN_STRINGS)
def test_rule_number_against_event_values(value, expected):
    engine = Engine.from_yaml(RULES)
    event = {"EventID": value, "Channel": "Microsoft-Windows-Security-Auditing"}
    assert [d.rule_title for d in engine.evaluate(event)] == expected
    assert all_rules_exactly(engine, event) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", True),
        ("1.50", True),
        (".15e1", True),
        ("+1.5", True),
        ("1.5 ", False),
        ("1_5", False),
        ("1,5", False),
    ],
)
def test_fractional_rule_number(matches, value, expected):
    assert matches({"F": 1.5}, {"F": value}) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6", True),
        ("06", True),
        ("6.", True),
        ("1e400", True),  # too large for a float: infinity, which is greater
        ("6 ", False),
        (" 6", False),
        ("\uff16", False),
        ("inf", False),
        ("Infinity", False),
        ("nan", False),
        ("0x10", False),
    ],
)
def test_comparison_reads_strings_with_the_same_grammar(matches, value, expected):
    assert matches({"F|gt": 5}, {"F": value}) is expected


def test_a_string_rule_value_and_a_number_share_one_index_slot():
    """`'04624'` as text and 4624 as a number: the event `"04624"` is both, and both rules see it."""
    engine = Engine.from_yaml(
        """
title: text
logsource: {product: test}
detection:
  selection:
    EventID: '04624'
  condition: selection
---
title: number
logsource: {product: test}
detection:
  selection:
    EventID: 4624
  condition: selection
"""
    )
    assert [d.rule_title for d in engine.evaluate({"EventID": "04624"})] == ["text", "number"]
    assert [d.rule_title for d in engine.evaluate({"EventID": "4624"})] == ["number"]
