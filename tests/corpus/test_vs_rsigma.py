"""Our engine's matches are RSigma's, event by event, on the two streams `benchmarks/vs_rsigma.py`
measures: `benchmarks/events.py`'s Sysmon stream and its process-creation events alone.

Each side is the benchmark's own driver run as a process: `../shared/tools/rsigma-bench --dump` and
`benchmarks/engine_passes.py --dump`, on SigmaHQ `rules/` (which holds `rules/windows/process_creation`,
the benchmark's other rule set). Skipped when ../shared is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.match_dumps import Difference, compare_dumps

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
EVENTS = 2_000
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(cmd: list[str]) -> bytes:
    return subprocess.run(cmd, check=True, capture_output=True, timeout=120, env=ENV).stdout


def test_matches_are_rsigmas_event_by_event_on_both_streams(shared: Path, tmp_path: Path) -> None:
    rules = shared / "corpus" / "sigmahq" / "rules"
    bench = shared / "tools" / "rsigma-bench" / "rsigma-bench"
    if not rules.is_dir() or not bench.is_file():
        pytest.skip(f"needs the SigmaHQ corpus ({rules}) and rsigma-bench ({bench})")
    # one file, the Sysmon stream then the process-creation one, so each engine loads SigmaHQ once
    generate = [sys.executable, str(BENCHMARKS / "events.py"), str(EVENTS), "--attack-ratio", "0"]
    events = tmp_path / "events.ndjson"
    events.write_bytes(run(generate) + run([*generate, "--process-creation"]))
    common = ["--rules", str(rules), "--events", str(events), "--dump"]
    run([sys.executable, str(BENCHMARKS / "engine_passes.py"), *common, str(tmp_path / "ours.json")])
    run([str(bench), *common, str(tmp_path / "rsigma.json")])
    ours = json.loads((tmp_path / "ours.json").read_bytes())
    theirs = json.loads((tmp_path / "rsigma.json").read_bytes())

    assert len(ours) == len(theirs) == 2 * EVENTS
    # a stream nothing matches would agree vacuously
    assert sum(map(len, theirs[:EVENTS])) > 0 and sum(map(len, theirs[EVENTS:])) > 0
    assert compare_dumps(ours, theirs) == []

    # and a single match taken away is found, on its line
    line = next(i for i, ids in enumerate(theirs) if ids)
    altered = [list(ids) for ids in theirs]
    dropped = altered[line].pop()
    assert compare_dumps(ours, altered) == [Difference(line + 1, [dropped], [])]


def test_compare_dumps_names_each_differing_line() -> None:
    ours = [["a"], ["a", "b"], [], ["c", "c"]]
    assert compare_dumps(ours, ours) == []
    assert compare_dumps(ours, [["a"], ["b", "d"], [], ["c"]]) == [
        Difference(2, ["a"], ["d"]),
        Difference(4, ["c"], []),
    ]
    assert compare_dumps([["b", "a"]], [["a", "b"]]) == []  # order within a line does not matter
    assert compare_dumps([[]], [[], ["x"]]) == [Difference(2, [], ["x"])]  # a missing line matched nothing


def test_script_without_rsigma_bench_skips_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "rsigma-bench"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "vs_rsigma.py"), "--rsigma-bench", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"skipped: {missing} not found; vs_rsigma.py needs ../shared")
