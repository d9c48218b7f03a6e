"""The candidate index: it may only skip rules that cannot match, whatever the order of events.

The index memoises what each field value holds, guards conjunctions too large to multiply out with
"g" atoms, and pickles for the rule cache. Each of these is checked against the engine's answer.
"""

from __future__ import annotations

import json
import pickle
import random

from rsigma.engine import Engine
from rsigma.engine.event import EventView
from rsigma.engine.index import MEMO_MAX_ENTRIES, CandidateIndex

TOOLS = [f"\\tool{i}.exe" for i in range(10)]
FLAGS = [f" -flag{i} " for i in range(10)]

# 10 x 10 conjunctions is more than the index multiplies out: the second selection becomes a guard.
WIDE_AND = f"""
title: wide and
logsource: {{product: test}}
detection:
  tools:
    Image|endswith: {TOOLS!r}
  flags:
    CommandLine|contains: {FLAGS!r}
  condition: tools and flags
"""


def _event(image: str, cmd: str) -> dict[str, str]:
    return {"Image": image, "CommandLine": cmd}


def test_a_guarded_conjunction_matches_exactly_when_both_sides_hold() -> None:
    engine = Engine.from_yaml(WIDE_AND)
    assert len(engine.evaluate(_event("C:\\x\\tool3.exe", "run -flag7 now"))) == 1
    assert engine.evaluate(_event("C:\\x\\tool3.exe", "run -other now")) == []
    assert engine.evaluate(_event("C:\\x\\other.exe", "run -flag7 now")) == []


def test_the_guard_keeps_a_rule_from_being_evaluated_when_its_other_side_is_absent() -> None:
    engine = Engine.from_yaml(WIDE_AND)
    assert engine.index.candidates(EventView(_event("C:\\x\\tool3.exe", "run -other now"))) == set()
    assert engine.index.candidates(EventView(_event("C:\\x\\tool3.exe", "run -flag7 now"))) == {0}


def test_memoised_values_give_the_same_answers_as_fresh_ones() -> None:
    """A value seen before (memo hit) and the same value in a fresh engine agree, across many events."""
    rng = random.Random(5)
    images = [f"C:\\x\\tool{i}.exe" for i in range(12)]
    cmds = [f"run{f} x" for f in [*FLAGS, " -none "]]
    events = [_event(rng.choice(images), rng.choice(cmds)) for _ in range(300)]
    warm = Engine.from_yaml(WIDE_AND)
    for event in events:
        fresh = Engine.from_yaml(WIDE_AND)
        assert [d.rule_title for d in warm.evaluate(event)] == [d.rule_title for d in fresh.evaluate(event)]


def test_the_memo_is_bounded() -> None:
    engine = Engine.from_yaml(WIDE_AND)
    for i in range(2 * MEMO_MAX_ENTRIES + 7):
        engine.evaluate(_event(f"C:\\x{i}\\tool1.exe", "a -flag1 b"))
    memos = [fi.memo for fis in engine.index.by_key.values() for fi in fis]
    assert memos and all(len(m) <= MEMO_MAX_ENTRIES for m in memos)


def test_an_unpickled_index_finds_the_same_candidates() -> None:
    engine = Engine.from_yaml(WIDE_AND)
    engine.evaluate(_event("C:\\x\\tool3.exe", "run -flag7 now"))  # fills memos and builds finders
    copy = pickle.loads(pickle.dumps(engine.index))
    assert all(not fi.memo for fis in copy.by_key.values() for fi in fis)
    for image in ("C:\\x\\tool3.exe", "C:\\x\\other.exe"):
        for cmd in ("run -flag7 now", "run -other now"):
            view = _event(image, cmd)
            assert copy.candidates(EventView(view)) == engine.index.candidates(EventView(view))


KEYWORDS = """
title: keyword pair
logsource: {product: test}
detection:
  keywords:
    '|all':
      - 'mimikatz'
      - 'sekurlsa'
  condition: keywords
"""


def test_keywords_match_the_same_way_on_first_second_and_later_sightings_of_a_value() -> None:
    """A value met once is searched with the event's other new values, then memoised when met again."""
    engine = Engine.from_yaml(KEYWORDS)
    for _ in range(4):
        assert len(engine.evaluate({"a": "run mimikatz", "b": "sekurlsa::logonpasswords"})) == 1
        assert engine.evaluate({"a": "run mimikatz", "b": "nothing"}) == []
    for i in range(4):  # new values every time: found in the joined text of the new values
        assert len(engine.evaluate({"a": f"mimikatz {i}", "b": f"{i} sekurlsa"})) == 1


def test_a_keyword_never_spans_two_values() -> None:
    engine = Engine.from_yaml(KEYWORDS.replace("'sekurlsa'", "'katzsek'"))
    for _ in range(3):
        assert engine.evaluate({"a": "mimi", "b": "katz", "c": "sek"}) == []
        assert engine.evaluate({"a": "mimikatz", "b": "x katzsek"}) != []


SAME_FIELD = """
title: same field
logsource: {product: test}
detection:
  selection:
    Image|contains: '\\\\temp\\\\'
    Image|endswith: '\\\\evil.exe'
    User|contains: 'admin'
  condition: selection
"""


def test_a_conjunction_on_one_field_is_decided_by_that_field_alone() -> None:
    engine = Engine.from_yaml(SAME_FIELD)
    image_hit = "C:\\Temp\\evil.exe"
    for _ in range(3):  # memoised after the first event
        assert len(engine.evaluate({"Image": image_hit, "User": "CORP\\admin"})) == 1
        assert engine.evaluate({"Image": image_hit, "User": "CORP\\bob"}) == []
        assert engine.evaluate({"Image": "C:\\Temp\\good.exe", "User": "CORP\\admin"}) == []
        assert engine.evaluate({"Image": "C:\\x\\evil.exe", "User": "CORP\\admin"}) == []
    assert engine.index.candidates(EventView({"Image": "C:\\x\\evil.exe", "User": "CORP\\admin"})) == set()


def _holds(atom: tuple[str, str, str], event: dict[str, str]) -> bool:
    kind, field, needle = atom
    if kind == "g":
        return any(_holds(tuple(member), event) for member in json.loads(needle))
    text = event.get(field)
    if text is None:
        return False
    return text == needle if kind == "x" else needle in text


def test_candidates_are_exactly_the_rules_whose_witness_holds_across_fields_and_groups() -> None:
    """Conjunctions resolved per field (memoised per value) and completed per event, with groups
    wholly in one field, spanning fields and reaching absent fields: none lost, none extra."""
    rng = random.Random(23)
    fields = ["A", "B", "C"]
    alphabet = "abc"

    def atom() -> tuple[str, str, str]:
        field = rng.choice(fields)
        if rng.random() < 0.3:
            return ("x", field, "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3))))
        return ("s", field, "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 2))))

    def group() -> tuple[str, str, str]:
        members = {atom() for _ in range(rng.randint(1, 3))}
        return ("g", "", json.dumps(sorted(members)))

    witnesses = []
    for _ in range(60):
        conjunctions = []
        for _ in range(rng.randint(1, 3)):
            conj = {atom() for _ in range(rng.randint(1, 3))}
            conj |= {group() for _ in range(rng.choice([0, 0, 1, 2]))}
            conjunctions.append(frozenset(conj))
        witnesses.append(conjunctions)
    index = CandidateIndex.build(enumerate(witnesses))
    for _ in range(400):
        event = {f: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for f in fields}
        for f in fields:
            if rng.random() < 0.2:
                del event[f]
        expected = {n for n, w in enumerate(witnesses) if any(all(_holds(a, event) for a in c) for c in w)}
        assert index.candidates(EventView(dict(event))) == expected, event


COMMON_AND_RARE = """
title: common and rare
logsource: {product: test}
detection:
  selection:
    CommandLine|contains|all: ['-', 'mimikatz']
  condition: selection
---
title: only common
logsource: {product: test}
detection:
  selection:
    CommandLine|contains|all: ['-', '/']
  condition: selection
"""


def test_a_common_atom_is_left_out_beside_a_rare_one_and_matching_stays_exact() -> None:
    """'-' is in nearly every command line: the index need not find it when 'mimikatz' anchors the
    rule, but the rule is still evaluated in full; a conjunction of common atoms keeps them."""
    engine = Engine.from_yaml(COMMON_AND_RARE)
    (command_line,) = engine.index.by_key["CommandLine"]
    assert command_line.find is not None and set(command_line.find.needles) == {"mimikatz", "-", "/"}
    rare_only = EventView({"CommandLine": "mimikatz coffee"})
    assert engine.index.candidates(rare_only) == {0}, "the rule is a candidate without its '-'"
    assert engine.evaluate({"CommandLine": "mimikatz coffee"}) == []
    assert [d.rule_title for d in engine.evaluate({"CommandLine": "mimikatz -x"})] == ["common and rare"]
    assert engine.index.candidates(EventView({"CommandLine": "a - b"})) == set()
    assert [d.rule_title for d in engine.evaluate({"CommandLine": "a - b /c"})] == ["only common"]
