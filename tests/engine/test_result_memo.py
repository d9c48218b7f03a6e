"""Rules read by a few fields have their results memoised by those fields' values: a memoised answer
must be the answer, for every kind of value, absent and null included."""

from __future__ import annotations

from rsigma.engine import Engine
from rsigma.engine.engine import MAX_KEY_TEXT

NEGATION_ONLY = """
title: unusual image
logsource: {product: test}
detection:
  filter_system:
    Image|startswith: 'C:\\\\Windows\\\\'
  filter_null:
    Image: null
  condition: not 1 of filter_*
---
title: flag one
logsource: {product: test}
detection:
  selection:
    Flag: 1
  condition: selection
---
title: same as parent
logsource: {product: test}
detection:
  selection:
    Image|fieldref: ParentImage
  condition: selection
"""


def _titles(engine: Engine, event: dict) -> list[str]:
    return [d.rule_title for d in engine.evaluate(event)]


def test_memoised_results_equal_fresh_ones_for_every_kind_of_value() -> None:
    events = [
        {"Image": "C:\\Windows\\cmd.exe"},
        {"Image": "C:\\Temp\\x.exe"},
        {"Image": None},
        {},
        {"Flag": 1},
        {"Flag": True},
        {"Flag": "1"},
        {"Flag": 1.0},
        {"Image": "C:\\Temp\\x.exe", "ParentImage": "C:\\Temp\\x.exe"},
        {"Image": "C:\\Temp\\x.exe", "ParentImage": "C:\\Temp\\y.exe"},
        {"Image": "C:\\Temp\\" + "x" * MAX_KEY_TEXT},
        {"Image": ["C:\\Temp\\x.exe"]},
    ]
    warm = Engine.from_yaml(NEGATION_ONLY)
    for _ in range(3):
        for event in events:
            assert _titles(warm, event) == _titles(Engine.from_yaml(NEGATION_ONLY), event), event


def test_true_is_not_taken_for_one() -> None:
    engine = Engine.from_yaml(NEGATION_ONLY)
    assert "flag one" in _titles(engine, {"Flag": 1})
    assert "flag one" not in _titles(engine, {"Flag": True})
    assert "flag one" in _titles(engine, {"Flag": 1})


def test_a_memoised_match_carries_the_selections_and_fields_a_fresh_one_has() -> None:
    """The explanation is memoised with the result; each detection still gets lists of its own."""
    warm = Engine.from_yaml(NEGATION_ONLY)
    event = {"Image": "C:\\Temp\\x.exe", "ParentImage": "C:\\Temp\\x.exe", "Flag": 1}
    fresh = [d.to_dict() for d in Engine.from_yaml(NEGATION_ONLY).evaluate(event)]
    for detection in warm.evaluate(event):
        detection.matched_selections.append("tampered")
        detection.matched_fields.clear()
    again = [d.to_dict() for d in warm.evaluate(dict(event))]
    assert again == fresh
    flag = next(d for d in again if d["rule_title"] == "flag one")
    assert flag["matched_selections"] == ["selection"]
    assert flag["matched_fields"] == [{"field": "Flag", "value": 1}]
