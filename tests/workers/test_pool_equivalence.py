"""The pool's promise: for any event stream, N matcher processes emit what one process emits.

Real matcher processes (spawned, over shared-memory rings) are kept for the whole module, next to a
reference evaluator built from the same rules; both see every example's stream in the same order,
so their correlation windows stay equal across examples. Batches are submitted several at a time,
as the daemon does, to exercise the ordering of correlation rounds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsigma.correlation.engine import CorrelationConfig
from rsigma.loading import EvaluatorSpec
from rsigma.payloads import PayloadOptions, result_lines
from tests.support.sharding import RULES, build, event_specs, random_specs
from workers.pool import MatcherPool

CONFIGS = {
    "alert": CorrelationConfig(timestamp_fallback="skip"),
    # Event inclusion too: the kept events travel from the matcher evaluating them to the group's owner.
    "suppress-reset-full": CorrelationConfig(
        suppress=30.0,
        action="reset",
        timestamp_fallback="skip",
        event_mode="full",
        max_correlation_events=3,
        max_group_entries=6,
    ),
}


class Harness:
    def __init__(self, rules: Path, config: CorrelationConfig, workers: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.config = config
        spec = EvaluatorSpec((rules,), config)
        self.reference = spec()
        supervisor = spec().summary()  # what the daemon keeps: correlation levels and keys for routing
        self.pool = MatcherPool(
            spec,
            workers,
            supervisor,
            options=PayloadOptions(max_event_bytes=1 << 20),
        )
        self.loop.run_until_complete(self.pool.start())

    def pool_lines(self, payloads: list[bytes], batches: list[int]) -> list[Counter[bytes]]:
        async def run() -> list[Counter[bytes]]:
            chunks, start, b = [], 0, 0
            while start < len(payloads):
                size = batches[b % len(batches)]
                chunks.append(payloads[start : start + size])
                start, b = start + size, b + 1
            tasks = [asyncio.ensure_future(self.pool.evaluate(chunk)) for chunk in chunks]
            per_event: list[Counter[bytes]] = []
            for task in tasks:
                outcomes = (await task).outcomes
                for outcome in outcomes:
                    assert not isinstance(outcome, str), outcome
                    per_event.append(Counter(outcome[0]) if outcome else Counter())
            return per_event

        return self.loop.run_until_complete(run())

    def reference_lines(self, events: list[dict]) -> list[Counter[bytes]]:  # type: ignore[type-arg]
        return [Counter(result_lines(self.reference.process(e), False)[0]) for e in events]

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.stop())
        self.loop.close()


@pytest.fixture(
    scope="module", params=[("alert", 2), ("suppress-reset-full", 3)], ids=lambda p: f"{p[0]}-n{p[1]}"
)
def harness(request, tmp_path_factory) -> Iterator[Harness]:  # type: ignore[no-untyped-def]
    rules = tmp_path_factory.mktemp("rules") / "rules.yml"
    rules.write_text(RULES)
    config, workers = request.param
    h = Harness(rules, CONFIGS[config], workers)
    try:
        yield h
    finally:
        h.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    specs=st.lists(event_specs, min_size=1, max_size=80),
    batches=st.lists(st.integers(1, 30), min_size=1, max_size=6),
)
def test_the_pool_emits_what_one_process_emits(harness, specs, batches):
    events = build(specs)
    got = harness.pool_lines([orjson.dumps(e) for e in events], batches)
    expected = harness.reference_lines(events)
    assert got == expected  # per event, the same multiset of result lines


def test_the_stream_fires_correlations_through_the_pool(harness):
    """The property is not vacuous: this rule set fires correlations (chains included) in the pool."""
    events = build(random_specs(random.Random(11), 400))
    got = harness.pool_lines([orjson.dumps(e) for e in events], [37])
    assert got == harness.reference_lines(events)
    types = Counter(orjson.loads(line).get("correlation_type") for per in got for line in per)
    assert sum(n for t, n in types.items() if t is not None) > 10, types
    if harness.config.event_mode == "full":
        assert any("events" in orjson.loads(line) for per in got for line in per)
