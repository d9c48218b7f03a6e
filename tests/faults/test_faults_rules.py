"""Hostile rules: catastrophic-backtracking regexes on 1 MB fields, and a directory of broken rules."""

from __future__ import annotations

from harness import hostile_rules


def test_hostile_regexes_stay_linear_and_broken_rules_are_named(tmp_path, assert_passed):
    result = hostile_rules(tmp_path, field_bytes=1_000_000)
    timings = result.details["seconds_by_field_bytes"]
    assert timings[1_000_000] < 5  # five catastrophic patterns on a 1 MB field (RE2: linear)
    assert result.details["broken_files"] == 8
    assert_passed(result)
