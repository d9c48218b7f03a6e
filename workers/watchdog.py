"""The pool's watchdog: a matcher that holds work and makes no progress on it is killed.

Results go out in submission order, so one matcher that stops answering (SIGSTOPped, stuck in a C
call, starved) holds up every batch behind its own, then the input (back-pressure), then the source's
acknowledgements. Progress is any frame from the matcher (an answer, a careful batch's `Evaluating`)
or a pulse, a counter in its outbound ring it bumps before each event of a batch: a long batch on a big
rule set is progress, a silent matcher is not. Past its timeout the matcher is SIGKILLed (which ends
a stopped process too), and the pool's restart path takes over: same index, its work sent again, and
an event it hangs on every time dead-lettered like one that kills it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from workers.pool import _Worker

log = logging.getLogger("rsigma.daemon")

#: Seconds a matcher with work may go without progress before it is killed (`--matcher-timeout`).
#: Half of JetStream's default ack wait: a hung matcher is replaced, and its work done, before the
#: events it holds are redelivered.
DEFAULT_MATCHER_TIMEOUT_S: Final = 15.0
#: A matcher with work and no progress for this long (or its timeout, if shorter) takes no new work,
#: as far as readiness is concerned, and is killed at once at shutdown instead of being waited for.
STALLED_S: Final = 2.0


class Watchdog:
    def __init__(self, workers: list[_Worker], timeout: float) -> None:
        self.workers = workers
        self.timeout = timeout
        self.stalled_after = min(STALLED_S, timeout)  # see STALLED_S

    async def run(self) -> None:
        """Check every matcher a few times per timeout (at most every second)."""
        tick = max(0.05, min(1.0, self.timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for worker in self.workers:
                stalled = worker.stalled_s(now)
                if not stalled:
                    continue
                oldest = next(iter(worker.inflight.values()))
                limit = oldest.patience or self.timeout
                if stalled >= limit:
                    self.kill(worker, stalled, limit)

    def kill(self, worker: _Worker, stalled: float, limit: float) -> None:
        worker.timeouts += 1
        worker.hung_s = round(stalled, 3)
        log.warning(
            "matcher made no progress within its timeout; killing it",
            extra={
                "matcher": worker.index,
                "pid": worker.process.pid,
                "stalled_seconds": round(stalled, 3),
                "matcher_timeout": limit,
                "requests_in_flight": len(worker.inflight),
            },
        )
        worker.process.kill()  # its sentinel then restarts it

    def available(self) -> int:
        """Matchers that can take work now: running, not restarting, and not stalled."""
        now = time.monotonic()
        return sum(
            1
            for w in self.workers
            if w.working and w.process.is_alive() and w.stalled_s(now) < self.stalled_after
        )

    def kill_stalled(self) -> None:
        """At shutdown: kill the matchers making no progress, rather than wait for them to stop."""
        now = time.monotonic()
        for worker in self.workers:
            alive = worker.process is not None and worker.process.is_alive()
            if alive and worker.stalled_s(now) >= self.stalled_after:
                log.warning(
                    "matcher makes no progress; killing it instead of waiting for it to stop",
                    extra={"matcher": worker.index, "pid": worker.process.pid},
                )
                worker.process.kill()
