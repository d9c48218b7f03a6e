"""Rule regexes RE2 cannot run backtrack, with one time budget per event (not per search): an event
that runs past it is dead-lettered with the rule, field and pattern named, however many values it
holds."""

from __future__ import annotations

import time

import orjson
import pytest

from rsigma.engine.regex import BACKTRACKING_BUDGET_S, BacktrackingBudgetExceeded, backtracking_timeouts
from rsigma.evaluator import Evaluator
from rsigma.payloads import PayloadOptions, evaluate_payloads

#: Lookbehind: RE2 cannot run it. On 30 `a`s and a `!` one search backtracks for over a second.
HOSTILE = r"(a|aa)+(?<=a)$"
HOSTILE_VALUE = "a" * 30 + "!"


@pytest.fixture
def evaluator(make_rule) -> Evaluator:
    rules = [
        make_rule({"selection": {"Payload|re": HOSTILE}, "condition": "selection"}, title="Lookbehind"),
        make_rule(
            {"selection": {"CommandLine|contains": "whoami"}, "condition": "selection"}, title="Whoami"
        ),
    ]
    return Evaluator.from_yaml("---\n".join(rules))


def outcomes(evaluator: Evaluator, *events: dict) -> list:
    payloads = [orjson.dumps(e) for e in events]
    answers, _ = evaluate_payloads(evaluator, payloads, PayloadOptions(max_event_bytes=1 << 20))
    by_position = dict(answers)
    return [by_position.get(i) for i in range(len(events))]


def test_the_backtracking_fallback_still_matches(evaluator):
    assert [d.rule_title for d in evaluator.process({"Payload": "aaaa"})] == ["Lookbehind"]
    assert evaluator.process({"Payload": "aaa!"}) == []


def test_a_list_of_hostile_values_costs_one_budget_and_is_dead_lettered(evaluator):
    """200 values, each a search that would backtrack for over a second: one budget in all."""
    before = backtracking_timeouts()
    started = time.process_time()  # the budget is CPU time (the wall clock varies with the load)
    [outcome] = outcomes(evaluator, {"Payload": [HOSTILE_VALUE] * 200, "CommandLine": "whoami"})
    took = time.process_time() - started
    assert took < BACKTRACKING_BUDGET_S + 0.2, f"{took:.2f} CPU s for one event"
    assert outcome == (
        f"backtracking regex budget of {BACKTRACKING_BUDGET_S:g} s per event exceeded: "
        f"rule 'Lookbehind', field 'Payload', pattern {HOSTILE!r}"
    )
    assert backtracking_timeouts() == before + 1  # once per event, not per value


def test_every_event_gets_a_fresh_budget(evaluator):
    """An event after a dead-lettered one is evaluated in full: the budget does not carry over."""
    hostile = {"Payload": [HOSTILE_VALUE] * 3}
    first, good, second = outcomes(evaluator, hostile, {"CommandLine": "whoami", "Payload": "aaaa"}, hostile)
    assert isinstance(first, str) and isinstance(second, str)
    lines, _ = good
    assert [orjson.loads(line)["rule_title"] for line in lines] == ["Lookbehind", "Whoami"]


def test_the_engine_names_the_rule(evaluator):
    with pytest.raises(BacktrackingBudgetExceeded) as info:
        evaluator.engine.evaluate({"Payload": HOSTILE_VALUE})
    assert (info.value.rule, info.value.field, info.value.pattern) == ("Lookbehind", "Payload", HOSTILE)
