"""An event that kills the matcher evaluating it is dead-lettered; it cannot crash-loop the pool.

The matchers here are real processes built from real rules, with one change: their engine kills the
process (SIGKILL, as a segfault in a C extension or the OOM killer would) on any event with a
`poison` field. Nothing in rsigma knows about that field.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from rsigma.correlation.engine import CorrelationConfig
from rsigma.evaluator import Evaluator
from rsigma.loading import EvaluatorSpec
from rsigma.payloads import PayloadOptions, result_lines
from workers.pool import POISON_DEATHS, MatcherPool

RULE = """
title: Whoami
id: 2f2b1c86-0000-4000-8000-000000000001
logsource: {category: process_creation, product: windows}
detection:
    selection: {CommandLine|contains: whoami}
    condition: selection
level: medium
"""


class _CrashingEngine:
    """The real engine, except that it kills its own process on a `poison` event."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def evaluate(self, event: dict[str, Any]) -> Any:
        if "poison" in event:
            os.kill(os.getpid(), signal.SIGKILL)
        return self._engine.evaluate(event)


@dataclass(frozen=True)
class PoisonedSpec:
    """Picklable (spawned matchers build their own evaluator from it)."""

    spec: EvaluatorSpec

    def __call__(self) -> Evaluator:
        evaluator = self.spec()
        evaluator.engine = _CrashingEngine(evaluator.engine)  # type: ignore[assignment]
        return evaluator


@contextlib.contextmanager
def started_pool(
    tmp_path: Path, workers: int
) -> Iterator[tuple[MatcherPool, EvaluatorSpec, asyncio.AbstractEventLoop]]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    spec = EvaluatorSpec((rules,), CorrelationConfig(timestamp_fallback="skip"))
    loop = asyncio.new_event_loop()
    supervisor = spec().summary()
    matchers = MatcherPool(
        PoisonedSpec(spec),
        workers,
        supervisor,
        options=PayloadOptions(max_event_bytes=1 << 20),
    )
    loop.run_until_complete(matchers.start())
    try:
        yield matchers, spec, loop
    finally:
        loop.run_until_complete(matchers.stop())
        loop.close()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[MatcherPool, EvaluatorSpec, asyncio.AbstractEventLoop]]:
    with started_pool(tmp_path, 2) as started:
        yield started


def run(loop: asyncio.AbstractEventLoop, work: Any) -> Any:
    """Without the poison limit a poison batch is re-sent forever: fail instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(work, 60))


def event(i: int, *, poison: bool = False) -> bytes:
    body: dict[str, Any] = {"CommandLine": f"cmd /c whoami #{i}" if i % 2 else f"notepad #{i}"}
    if poison:
        body["poison"] = True
    return orjson.dumps(body)


def expected(spec: EvaluatorSpec, payloads: list[bytes]) -> list[Any]:
    """What one process that never crashes would answer, with None for a poison event."""
    reference = spec()
    out: list[Any] = []
    for payload in payloads:
        decoded = orjson.loads(payload)
        lines = [] if "poison" in decoded else result_lines(reference.process(decoded), False)[0]
        out.append(lines or None)
    return out


def test_poison_events_are_dead_lettered_and_the_rest_of_the_batch_is_evaluated(pool):
    matchers, spec, loop = pool
    batch = [event(i, poison=i in (3, 10)) for i in range(16)]
    result = run(loop, matchers.evaluate(batch))

    for position in (3, 10):
        reason = result.outcomes[position]
        assert isinstance(reason, str), reason
        assert f"died {POISON_DEATHS} times evaluating this event" in reason and "-9" in reason
    want = expected(spec, batch)
    for position, outcome in enumerate(result.outcomes):
        if position not in (3, 10):
            assert (outcome[0] if outcome else None) == want[position], position
    assert result.evaluated == 14

    status = matchers.status()
    assert sum(w["poisoned_events"] for w in status) == 2
    # one death puts the batch under care; then POISON_DEATHS on each poison event
    assert sum(w["restarts"] for w in status) == 1 + 2 * POISON_DEATHS


def test_batches_in_flight_with_a_poison_batch_all_come_back_right(pool):
    matchers, spec, loop = pool
    batches = [[event(100 * b + i, poison=(b, i) == (2, 5)) for i in range(40)] for b in range(6)]

    async def submit_all() -> list[Any]:
        return await asyncio.gather(*(matchers.evaluate(batch) for batch in batches))

    results = run(loop, submit_all())
    for b, (batch, result) in enumerate(zip(batches, results, strict=True)):
        want = expected(spec, batch)
        for i, outcome in enumerate(result.outcomes):
            if (b, i) == (2, 5):
                assert isinstance(outcome, str) and "died" in outcome
            else:
                assert (outcome[0] if outcome else None) == want[i], (b, i)
    assert sum(w["poisoned_events"] for w in matchers.status()) == 1

    after = [event(i) for i in range(20)]
    restarts = sum(w["restarts"] for w in matchers.status())
    result = run(loop, matchers.evaluate(after))
    assert [o[0] if o else None for o in result.outcomes] == expected(spec, after)
    assert sum(w["restarts"] for w in matchers.status()) == restarts  # the pool is healthy again


def test_a_matcher_killed_from_outside_dead_letters_nothing(pool):
    """One death is never blamed on an event: the batch is only re-sent carefully."""
    matchers, spec, loop = pool
    batch = [event(i) for i in range(2000)]

    async def kill_while_busy() -> Any:
        task = asyncio.ensure_future(matchers.evaluate(batch))
        while not any(w.inflight for w in matchers.workers):
            await asyncio.sleep(0)
        busy = next(w for w in matchers.workers if w.inflight)
        os.kill(busy.process.pid, signal.SIGKILL)
        return await task

    result = run(loop, kill_while_busy())
    assert [o[0] if o else None for o in result.outcomes] == expected(spec, batch)
    assert sum(w["restarts"] for w in matchers.status()) == 1
    assert sum(w["poisoned_events"] for w in matchers.status()) == 0


def test_a_matcher_killed_again_while_it_restarts_recovers(tmp_path):
    """The second death lands before the restarted matcher said READY, with a batch sent during
    the first restart waiting: the second restart takes over, and both batches come back right."""
    first_batch = [event(i) for i in range(2000)]
    second_batch = [event(i) for i in range(2000, 2100)]

    async def kill_twice(matchers: MatcherPool) -> list[Any]:
        (worker,) = matchers.workers
        first = asyncio.ensure_future(matchers.evaluate(first_batch))
        while not worker.inflight:
            await asyncio.sleep(0)
        killed = worker.process.pid
        os.kill(killed, signal.SIGKILL)
        while worker.process.pid == killed:
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(matchers.evaluate(second_batch))  # waits for the restart
        await asyncio.sleep(0.01)
        assert worker.ready is not None and not worker.ready.done()
        os.kill(worker.process.pid, signal.SIGKILL)
        return [await first, await second]

    with started_pool(tmp_path, 1) as (matchers, spec, loop):
        results = run(loop, kill_twice(matchers))
        for batch, result in zip((first_batch, second_batch), results, strict=True):
            assert [o[0] if o else None for o in result.outcomes] == expected(spec, batch)
        assert matchers.status()[0]["restarts"] == 2
