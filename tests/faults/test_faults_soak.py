"""A soak at 70% of the measured capacity: 0 lost, private memory flat. Whether it kept up (the backlog
flat and below 2 s of input, drained within 10 s) is printed, not asserted: it depends on what else
runs on the machine; `benchmarks/faults.py --scenario soak` holds it to those limits.

`make test` leaves it out (it is marked slow); `make soak`, which CI runs after `make test`, sets
RSIGMA_SOAK_SECONDS=300; plain `pytest` runs it for 30 s after the capacity measurement's warm-up.
The 30-minute version: `python benchmarks/faults.py --scenario soak --minutes 30`.
"""

from __future__ import annotations

import os

import pytest

from tests.support.faults import soak

SECONDS = float(os.environ.get("RSIGMA_SOAK_SECONDS", "30"))


@pytest.mark.slow
def test_a_soak_at_70_percent_of_capacity(tmp_path, assert_passed):
    result = soak(tmp_path, seconds=SECONDS, load=0.7)
    assert result.lost == 0
    assert result.duplicated == 0
    assert len(result.details["samples"]) >= SECONDS / 2.4  # one every 2 s
    assert_passed(result)
