"""Output sinks that fail mid-stream: no message is acked before its results are delivered or
dead-lettered, nothing is dropped silently, and the DLQ holds exactly the results that failed."""

from __future__ import annotations

from tests.support.faults import sink_file, sink_nats_down, sink_stream_deleted


def test_a_file_output_that_stops_taking_writes(tmp_path, assert_passed):
    result = sink_file(tmp_path, events=16_000, rate=2_000, outage_s=4.0, seed=14)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.details["torn"] == 0  # a write cut short by the full disk leaves no partial line
    assert result.details["dead_lettered"] > 0  # the first failures ran out of deliveries
    assert result.recovery_s is not None  # a delivery after the fault ended
    assert_passed(result)


def test_the_output_stream_deleted(tmp_path, assert_passed):
    result = sink_stream_deleted(tmp_path, events=16_000, rate=2_000, outage_s=4.0, seed=15)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.details["dead_lettered"] > 0
    assert result.recovery_s is not None  # a delivery after the fault ended
    assert_passed(result)


def test_the_nats_output_unreachable(tmp_path, assert_passed):
    result = sink_nats_down(tmp_path, events=16_000, rate=2_000, outage_s=4.0, seed=16)
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.details["dead_and_delivered"] == 0
    assert result.recovery_s is not None  # a delivery after the fault ended
    assert_passed(result)
