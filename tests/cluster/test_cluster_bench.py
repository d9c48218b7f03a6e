"""`benchmarks/cluster_bench.py --quick` runs end to end (so the benchmark does not rot), and what it
prints holds together: every configuration stored the plain daemon's results, a cluster published hit
messages and measured correlation latencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cluster_bench.py"


def test_the_quick_cluster_benchmark_runs_and_reports_every_configuration():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["label"] for r in runs] == ["plain daemon", "cluster of 1", "cluster of 2"]
    plain, *clusters = runs
    assert plain["results"] > 0 and plain["hit_messages"] == 0
    for run in clusters:
        assert run["results"] == plain["results"]  # the output holds the same count, none lost or twice
        assert run["hit_messages"] > 0 and run["events_per_s"] > 0
        assert run["p50_ms"] is not None and run["p50_ms"] <= run["p99_ms"]
