"""Hostile rules: catastrophic-backtracking regexes on 1 MB fields, and a directory of broken rules.

How long the patterns take (< 1 s each, linear growth) is measured once and printed; benchmarks/faults.py
takes the best of three runs and holds it to its limits."""

from __future__ import annotations

from tests.support.faults import hostile_rules


def test_hostile_regexes_run_or_are_cut_off_and_broken_rules_are_named(tmp_path, assert_passed):
    result = hostile_rules(tmp_path, field_bytes=1_000_000, runs=1)  # the benchmark takes the best of 3
    assert set(result.details["seconds_by_field_bytes"]) == {10_000, 100_000, 1_000_000}
    assert result.details["broken_files"] == 8
    assert_passed(result)
