"""Hostile payloads interleaved with good events: good detections delivered, every bad payload in the
DLQ with its specific error, the process up, its memory flat."""

from __future__ import annotations

import pytest

from tests.support.faults import malformed


@pytest.mark.parametrize(
    ("via", "workers"), [("nats", 0), ("stdin", 2)], ids=["nats-single-process", "stdin-serve-workers-2"]
)
def test_malformed_input_is_dead_lettered_and_the_rest_delivered(tmp_path, assert_passed, via, workers):
    result = malformed(tmp_path, hostile=2_000, via=via, workers=workers)
    assert result.lost == 0  # every good event's detections, the odd-looking ones included
    assert result.duplicated == 0
    assert result.details["dlq_entries"] == 2_000
    assert result.details["oversized"] == 4  # 10 MB each
    assert_passed(result)
