"""A matcher process: compiles the rules itself, evaluates batches of raw events, owns a correlation shard.

It is synchronous and single-threaded: it blocks on its inbox, answers each frame on its outbox, and
exits on `Stop` or when the supervisor is gone. Detection work comes to any matcher; correlation hits
come only to the matcher that owns their (correlation, group key) (see `rsigma/correlation/sharding.py`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any

from rsigma.correlation.engine import Hit
from rsigma.correlation.sharding import decode_hits, encode_hits
from rsigma.engine.regex import backtracking_timeouts
from rsigma.evaluator import Evaluator
from rsigma.logs import setup_logging
from rsigma.payloads import PayloadOptions, evaluate_payloads, result_lines
from workers import protocol, zygote
from workers.protocol import (
    Answer,
    Applied,
    Discard,
    Evaluating,
    Events,
    Export,
    FromMatcher,
    Hits,
    Import,
    Ready,
    Reload,
    Reloaded,
    Results,
    State,
    Stop,
    Swap,
    Swapped,
    ToMatcher,
)
from workers.ring import Channel, ChannelHandle

log = logging.getLogger("rsigma.worker")

#: How often a matcher with nothing to do checks that its supervisor is still alive.
PARENT_CHECK_S = 1.0
#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class MatcherSpec:
    """Everything a matcher process needs; pickled to it when the forkserver forks it."""

    index: int
    build_evaluator: Callable[[], Evaluator]
    inbox: ChannelHandle
    outbox: ChannelHandle
    options: PayloadOptions
    log_format: str = "json"
    log_level: str = "info"
    fingerprint: str = ""  # of the running rules: the forkserver's compiled ones are taken if they match


class Matcher:
    """The matcher's state and its answer to each frame (separate from the process loop, for tests)."""

    def __init__(
        self,
        spec: MatcherSpec,
        evaluator: Evaluator,
        say: Callable[[FromMatcher], None] | None = None,
        pulse: Callable[[int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.evaluator = evaluator
        self.pending: Evaluator | None = None  # built by `Reload`, run from `Swap` on
        self.say = say  # writes a frame at once (progress of a careful batch)
        self.pulse = pulse  # told each position: shows the supervisor it is working through a batch

    def handle(self, frame: ToMatcher) -> FromMatcher | None:
        match frame:
            case Events():
                return self.evaluate(frame.batch_id, frame.payloads, frame.skip)
            case Hits():
                return self.apply(frame.round_id, frame.hits)
            case Export():
                return State(frame.request_id, self.evaluator.correlation.export_state())
            case Import():
                self.evaluator.correlation.import_state(frame.snapshot)
                return None
            case Reload():
                return self.reload(frame.request_id)
            case Swap():
                assert self.pending is not None, "Swap without a Reload"
                self.pending.correlation.carry_over(self.evaluator.correlation)
                self.evaluator, self.pending = self.pending, None
                return Swapped(frame.request_id)
            case Discard():
                self.pending = None
                return None
        raise ValueError(f"unexpected frame {type(frame).__name__}")

    def evaluate(
        self, batch_id: int, payloads: list[bytes], careful: dict[int, str] | None = None
    ) -> Results:
        """Detections of every event, and the level-1 correlation hits they make (for the supervisor
        to route to their owners). `careful` (after this batch killed a matcher) names each event
        before it is evaluated, and maps the positions to leave out to their dead-letter reasons."""
        started = time.perf_counter()
        hits: list[Hit] = []
        origins: list[int] = []
        announce = None
        if careful is not None and self.say is not None:
            say = self.say

            def announce(position: int) -> None:
                say(Evaluating(batch_id, position))

        else:
            announce = self.pulse  # a careful batch's `Evaluating` is progress enough

        answers, evaluated = evaluate_payloads(
            self.evaluator,
            payloads,
            self.spec.options,
            hits=hits,
            origins=origins,
            skip=careful,
            announce=announce,
        )
        return Results(
            batch_id=batch_id,
            answers=[
                Answer(position, reason=outcome) if isinstance(outcome, str) else Answer(position, *outcome)
                for position, outcome in answers
                if outcome is not None
            ],
            hits=encode_hits(hits) if hits else b"",
            evaluated=evaluated,
            busy_s=time.perf_counter() - started,
            windows=len(self.evaluator.correlation.state),
            regex_timeouts=backtracking_timeouts(),
            origins=origins,
        )

    def apply(self, request_id: int, encoded: bytes) -> Applied:
        """Apply hits this matcher owns; results go back by the event (batch position) they belong to."""
        results, parents = self.evaluator.correlation.apply(decode_hits(encoded))
        by_position: dict[int, tuple[list[bytes], list[Any]]] = {}
        include = self.spec.options.include_event
        for result in results:
            lines, keys = result_lines([result], include)
            entry = by_position.setdefault(result.position, ([], []))
            entry[0].extend(lines)
            entry[1].extend(keys)
        answers = [Answer(position, lines, keys) for position, (lines, keys) in by_position.items()]
        parent_hits = encode_hits(parents) if parents else b""
        return Applied(
            round_id=request_id,
            answers=answers,
            parent_hits=parent_hits,
            windows=len(self.evaluator.correlation.state),
            evictions=self.evaluator.correlation.evicted,
            trimmed=self.evaluator.correlation.trimmed,
        )

    def reload(self, request_id: int) -> Reloaded:
        """Build the new rules beside the running ones; they run only once every matcher has them."""
        try:
            self.pending = self.spec.build_evaluator()
        except Exception as e:  # the supervisor logs it and keeps every matcher on the old rules
            self.pending = None
            return Reloaded(request_id, error=str(e), rules=0, correlations=0, fingerprint="")
        rules, correlations, fingerprint = self.describe(self.pending)
        return Reloaded(
            request_id, error=None, rules=rules, correlations=correlations, fingerprint=fingerprint
        )

    def describe(self, evaluator: Evaluator | None = None) -> tuple[int, int, str]:
        """Rules, correlations and the fingerprint of the running (or the given) evaluator."""
        e = evaluator or self.evaluator
        return len(e.engine.rules), len(e.correlation.correlations), e.fingerprint()


def die_with_parent() -> None:
    """Be SIGKILLed when the supervisor dies, even while stopped or stuck in a batch (the idle check
    of `PARENT_CHECK_S` cannot see that), so a matcher never outlives its supervisor. Linux only.

    Its parent process is the forkserver, which exits as soon as the supervisor dies, provided no
    matcher holds the write end of the pipe that tells it so: a forked child inherits it, and a stopped
    matcher holding it would keep the forkserver, and so itself, alive."""
    server = forkserver._forkserver  # the process's forkserver state, inherited from the forkserver
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("matcher cannot ask to die with its supervisor", extra={"errno": ctypes.get_errno()})
    parent = multiprocessing.parent_process()  # the supervisor, watched through a pipe
    if parent is not None and not parent.is_alive():  # it died before the prctl
        raise SystemExit(0)


def run(spec: MatcherSpec) -> None:
    """The process entry point (forked by the forkserver for the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    setup_logging(spec.log_format, spec.log_level)
    die_with_parent()
    inbox = Channel.open(spec.inbox)
    outbox = Channel.open(spec.outbox)
    try:
        try:
            evaluator = zygote.take(spec.build_evaluator, spec.fingerprint) or spec.build_evaluator()
        except Exception as e:  # rules that compiled in the supervisor broke on disk since, say
            log.error("matcher could not compile the rules", extra={"matcher": spec.index, "error": str(e)})
            raise SystemExit(1) from e
        matcher = Matcher(
            spec, evaluator, lambda frame: outbox.send_wait([protocol.encode(frame)]), outbox.ring.pulse
        )
        rules, correlations, fingerprint = matcher.describe()
        ready = Ready(pid=os.getpid(), rules=rules, correlations=correlations, fingerprint=fingerprint)
        outbox.send_wait([protocol.encode(ready)])
        parent = multiprocessing.parent_process()
        while True:
            data = inbox.recv_wait(PARENT_CHECK_S)
            if data is None:
                if parent is not None and not parent.is_alive():
                    return
                continue
            frame = protocol.decode_to_matcher(data)
            if isinstance(frame, Stop):
                return
            answer = matcher.handle(frame)
            if answer is not None:
                outbox.send_wait([protocol.encode(answer)])
    finally:
        inbox.close()
        outbox.close()
