"""The watchdog kills a matcher that makes no progress, and only that: a long batch is progress.

Real matcher processes built from real rules, with one change: their engine takes 4 ms over each
event with a `slow` field (a batch of them outlasts the timeout), and forever over one with a `hang`
field (as a matcher stuck in a C call would). Nothing in rsigma knows about those fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rsigma.correlation.engine import CorrelationConfig
from rsigma.evaluator import Evaluator
from rsigma.loading import EvaluatorSpec
from rsigma.payloads import PayloadOptions
from workers.pool import POISON_DEATHS, MatcherPool

RULE = """
title: Whoami
id: 2f2b1c86-0000-4000-8000-000000000002
logsource: {category: process_creation, product: windows}
detection:
    selection: {CommandLine|contains: whoami}
    condition: selection
level: medium
"""
TIMEOUT = 1.0


class _SlowEngine:
    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def evaluate(self, event: dict[str, Any]) -> Any:
        if "hang" in event:
            time.sleep(3600)
        if "slow" in event:
            time.sleep(0.004)
        return self._engine.evaluate(event)


@dataclass(frozen=True)
class SlowSpec:
    """Picklable (spawned matchers build their own evaluator from it)."""

    spec: EvaluatorSpec

    def __call__(self) -> Evaluator:
        evaluator = self.spec()
        evaluator.engine = _SlowEngine(evaluator.engine)  # type: ignore[assignment]
        return evaluator


@contextlib.contextmanager
def started_pool(tmp_path: Path) -> Iterator[tuple[MatcherPool, asyncio.AbstractEventLoop]]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    spec = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    loop = asyncio.new_event_loop()
    pool = MatcherPool(
        SlowSpec(spec),
        1,
        spec().summary(),
        options=PayloadOptions(max_event_bytes=1 << 20),
        matcher_timeout=TIMEOUT,
    )
    loop.run_until_complete(pool.start())
    try:
        yield pool, loop
    finally:
        loop.run_until_complete(pool.stop())
        loop.close()


def event(i: int, *flags: str) -> bytes:
    return orjson.dumps({"CommandLine": f"cmd /c whoami #{i}", **dict.fromkeys(flags, True)})


def test_a_batch_longer_than_the_timeout_is_not_killed_while_it_makes_progress(tmp_path):
    batch = [event(i, "slow") for i in range(800)]  # 3.2 s or more, against a 1 s timeout
    with started_pool(tmp_path) as (pool, loop):
        started = time.monotonic()
        result = loop.run_until_complete(asyncio.wait_for(pool.evaluate(batch), 60))
        took = time.monotonic() - started
        (status,) = pool.status()
    assert took > 3 * TIMEOUT
    assert status["timeouts"] == 0 and status["restarts"] == 0
    assert result.evaluated == len(batch) and all(outcome for outcome in result.outcomes)


def test_an_event_a_matcher_hangs_on_is_dead_lettered_and_the_rest_evaluated(tmp_path):
    """Each timeout is a death: once to put the batch under care, then POISON_DEATHS on the event."""
    batch = [event(i, *(["hang"] if i == 7 else [])) for i in range(20)]
    with started_pool(tmp_path) as (pool, loop):
        result = loop.run_until_complete(asyncio.wait_for(pool.evaluate(batch), 120))
        after = loop.run_until_complete(asyncio.wait_for(pool.evaluate([event(99)]), 60))
        (status,) = pool.status()
    reason = result.outcomes[7]
    assert isinstance(reason, str), reason
    assert f"died {POISON_DEATHS} times evaluating this event" in reason
    assert "killed after" in reason and "without progress" in reason
    others = [outcome for i, outcome in enumerate(result.outcomes) if i != 7]
    assert all(outcome and not isinstance(outcome, str) for outcome in others), others
    assert status["timeouts"] == 1 + POISON_DEATHS == status["restarts"]
    assert status["poisoned_events"] == 1
    assert after.evaluated == 1 and status["stalled_seconds"] == 0
