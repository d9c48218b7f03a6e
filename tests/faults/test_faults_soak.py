"""A one-minute soak at 70% of the measured capacity: 0 lost, memory and backlog flat.

The 30-minute version: `python benchmarks/faults.py --scenario soak --minutes 30`.
"""

from __future__ import annotations

import pytest
from harness import soak


@pytest.mark.slow
def test_a_minute_at_70_percent_of_capacity(tmp_path, assert_passed):
    result = soak(tmp_path, seconds=60, load=0.7)
    assert result.lost == 0
    assert result.duplicated == 0
    assert len(result.details["samples"]) >= 25
    assert_passed(result)
