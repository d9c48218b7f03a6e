"""Fault-injection scenarios (short versions; `benchmarks/faults.py` runs the long ones).

Each test runs one scenario from `harness.py` in its own temporary directory (its own nats-server(s)
and daemon(s)) and asserts on the counts it returns: expected detections lost, duplicated at the
output, recovery time, and the scenario's named checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Result  # noqa: E402


def assert_passed(result: Result) -> None:
    """Every named check of the scenario, each with what it measured."""
    print(result)  # shown with -s or on failure
    assert not result.failures(), "\n".join([str(result), *result.failures()])


@pytest.fixture(name="assert_passed")
def assert_passed_fixture():  # type: ignore[no-untyped-def]
    return assert_passed
