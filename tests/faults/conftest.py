"""Fault-injection scenarios (short versions; `benchmarks/faults.py` runs the long ones).

Each test runs one scenario from tests/support/faults.py in its own temporary directory (its own
nats-server(s) and daemon(s), all stopped before it returns) and asserts on the counts it returns:
expected detections lost, duplicated at the output, that recovery happened, and the scenario's named
checks. The timed checks (recovery within N s, < 1 s per pattern) are printed, not asserted: they are
the benchmark's verdict.
"""

from __future__ import annotations

import pytest

from tests.support.faults import Result


def assert_passed(result: Result) -> None:
    """Every named check of the scenario but the timed ones, each with what it measured."""
    print(result)  # shown with -s or on failure
    failures = result.failures(timed=False)
    assert not failures, "\n".join([str(result), *failures])


@pytest.fixture(name="assert_passed")
def assert_passed_fixture():  # type: ignore[no-untyped-def]
    return assert_passed
