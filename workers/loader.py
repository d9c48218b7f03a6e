"""Loading the rules in a throwaway process, for the supervisor of a matcher pool.

The supervisor must refuse rules that cannot be used before it starts (exit 2, as with `--workers 0`)
and check the rules of a reload before its matchers swap, but it never evaluates an event. Compiling
the rules in its own process would keep their memory for good (about 100 MB for SigmaHQ: Python
seldom gives freed memory back to the system, and freeing the compiled rules returned a fifth of it).
So a child process loads them, logs the loader's warnings as the daemon does, and sends back their
`RuleSummary`; its memory goes with it when it exits.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from typing import Any

from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.loading import RuleLoadFailed
from rsigma.logs import setup_logging


class RuleLoaderDied(RuntimeError):
    """The process loading the rules ended without an answer: killed, out of memory, or an unexpected
    error (its traceback is on stderr)."""


def load_summary(build: Callable[[], Evaluator], log_format: str, log_level: str) -> RuleSummary:
    """`build()`'s summary, built in a child process; its RuleLoadFailed is raised here, whole."""
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_load, args=(build, log_format, log_level, send), name="rsigma-rule-loader", daemon=True
    )
    child.start()
    send.close()
    try:
        outcome = receive.recv()
    except EOFError:
        child.join()
        raise RuleLoaderDied(
            f"the process loading the rules exited with code {child.exitcode} before it answered"
        ) from None
    finally:
        receive.close()
    child.join()
    if isinstance(outcome, RuleSummary):
        return outcome
    kind, problems = outcome
    raise kind(*problems)


def _load(build: Callable[[], Evaluator], log_format: str, log_level: str, send: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    setup_logging(log_format, log_level)
    outcome: Any
    try:
        outcome = build().summary()
    except RuleLoadFailed as e:  # pickled, it would lose its problems (its args hold them joined)
        outcome = (type(e), e.problems)
    send.send(outcome)
    send.close()
