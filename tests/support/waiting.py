"""The one polling helper of the tests, the benchmarks and the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The default deadline: a guard against a hang, never a measurement (nothing asserts how long it took).
WAIT_TIMEOUT = 30.0


class WaitTimeout(AssertionError, TimeoutError):
    """The deadline passed: an assertion failure for pytest, a TimeoutError for scripts."""


def wait_until(
    predicate: Callable[[], T],
    what: str,
    timeout: float = WAIT_TIMEOUT,
    *,
    interval: float = 0.02,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `predicate` until it returns something truthy, and return that value.

    At the deadline, raise WaitTimeout naming `what`. An exception raised by `predicate` propagates at
    once (a predicate fails the wait by raising, e.g. when the process it waits for has exited), unless
    it is one of `retry_on`: those count as "not yet" (a NATS server that is restarting) and the last
    one is named in the timeout message.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        value: Any = None
        try:
            value = predicate()
        except retry_on as e:
            last_error = e
        if value:
            return value
        if time.monotonic() > deadline:
            suffix = f" (last error: {last_error!r})" if last_error is not None else ""
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{suffix}")
        time.sleep(interval)
