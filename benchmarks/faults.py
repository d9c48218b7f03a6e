"""Fault injection, the long versions: prove that nothing is lost.

Each scenario publishes uniquely numbered events whose detections are known, injects one fault and
counts what came out: expected detections lost (neither delivered nor dead-lettered), detections
delivered more than once at the output, and the time from the fault (or its end) to the next
detection. The scenarios live in tests/support/faults.py; tests/faults/ runs short versions of the
same functions in `make test`, which do not fail on the timed checks (recovery within N s, < 1 s per
pattern): this script's verdict does. See docs/reliability.md.

    python benchmarks/faults.py                              # every scenario but the soak
    python benchmarks/faults.py --scenario kill-daemon --events 100000
    python benchmarks/faults.py --scenario soak --minutes 30 [--workers 2]
    python benchmarks/faults.py --scenario all --minutes 5   # everything, with a 5-minute soak

It prints one summary table (scenario, events, lost, duplicated, recovery s, verdict), then what
each scenario measured, and exits 1 if any scenario failed a check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support import faults as harness  # noqa: E402  (the scenarios, shared with tests/faults)

Runner = Callable[[Path, argparse.Namespace], harness.Result]


def _events(args: argparse.Namespace, default: int) -> int:
    return args.events if args.events is not None else default


SCENARIOS: dict[str, Runner] = {
    "kill-daemon": lambda w, a: harness.kill_daemon(w, events=_events(a, 100_000), kills=5, seed=a.seed),
    "kill-daemon-pool": lambda w, a: harness.kill_daemon(
        w, events=_events(a, 100_000), workers=a.workers or 2, kills=5, seed=a.seed
    ),
    "kill-matcher": lambda w, a: harness.kill_matcher(w, events=_events(a, 100_000), kills=4, seed=a.seed),
    "hang-matcher": lambda w, a: harness.hang_matcher(
        w, events=_events(a, 100_000), timeout=None, seed=a.seed
    ),
    "nats-restart": lambda w, a: harness.nats_restart(
        w, events=_events(a, 100_000), workers=a.workers, down_s=a.down, seed=a.seed
    ),
    "sink-file": lambda w, a: harness.sink_file(w, events=_events(a, 40_000), outage_s=a.outage, seed=a.seed),
    "sink-stream-deleted": lambda w, a: harness.sink_stream_deleted(
        w, events=_events(a, 40_000), outage_s=a.outage, seed=a.seed
    ),
    "sink-nats-down": lambda w, a: harness.sink_nats_down(
        w, events=_events(a, 60_000), outage_s=max(a.outage, 15.0), seed=a.seed
    ),
    "malformed": lambda w, a: harness.malformed(w, hostile=_events(a, 10_000), via="nats", workers=a.workers),
    "malformed-stdin-pool": lambda w, a: harness.malformed(
        w, hostile=_events(a, 10_000), via="stdin", workers=a.workers or 2
    ),
    "hostile-rules": lambda w, a: harness.hostile_rules(w, field_bytes=1_000_000),
    "soak": lambda w, a: harness.soak(w, seconds=a.minutes * 60, workers=a.workers, load=a.load),
}
DEFAULT = [name for name in SCENARIOS if name != "soak"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, "all"],
        help="repeatable; default: every scenario but the soak; 'all' includes the soak",
    )
    parser.add_argument("--events", type=int, help="events (hostile payloads for malformed*) per scenario")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak duration (default 30)")
    parser.add_argument("--load", type=float, default=0.7, help="soak rate as a share of capacity (0.7)")
    parser.add_argument(
        "--workers", type=int, default=0, help="matchers (serve --workers N) where it applies"
    )
    parser.add_argument("--outage", type=float, default=8.0, help="seconds a sink stays broken (default 8)")
    parser.add_argument("--down", type=float, default=1.0, help="seconds the nats-server stays down (1)")
    parser.add_argument("--seed", type=int, default=1, help="where the faults land (random points)")
    parser.add_argument("--keep", type=Path, help="keep each scenario's directory (logs, stores) under this")
    parser.add_argument("--json", type=Path, help="also write every result, with its details, to this file")
    args = parser.parse_args()
    chosen = args.scenario or DEFAULT
    names = list(SCENARIOS) if "all" in chosen else list(dict.fromkeys(chosen))

    results: list[harness.Result] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            if args.keep:
                work = args.keep / name
                work.mkdir(parents=True, exist_ok=False)
                result = SCENARIOS[name](work, args)
            else:
                with tempfile.TemporaryDirectory(prefix=f"rsigma-faults-{name}-") as d:
                    result = SCENARIOS[name](Path(d), args)
        except Exception as e:  # a scenario that cannot finish is a failure, not a crash of the report
            traceback.print_exc()
            result = harness.Result(name, args.events or 0)
            result.check("scenario finished", False, f"{type(e).__name__}: {e}")
            result.seconds = time.monotonic() - started
        print(f"  {result.verdict} in {result.seconds:.0f} s", file=sys.stderr, flush=True)
        results.append(result)

    print(table(results))
    for r in results:
        print(f"\n{r.scenario} ({r.seconds:.0f} s)")
        for note in r.notes:
            print(f"  {note}")
        for failure in r.failures():
            print(f"  FAILED {failure}")
    if args.json:
        args.json.write_text(json.dumps([_as_dict(r) for r in results], indent=2, default=str))
    return 0 if all(r.ok for r in results) else 1


def table(results: list[harness.Result]) -> str:
    header = ("scenario", "events", "lost", "duplicated", "recovery s", "verdict")
    rows = [
        (
            r.scenario,
            f"{r.events:,}",
            f"{r.lost:,}",
            f"{r.duplicated:,}",
            "-" if r.recovery_s is None else f"{r.recovery_s:.2f}",
            r.verdict,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _as_dict(r: harness.Result) -> dict[str, Any]:
    return {
        "scenario": r.scenario,
        "events": r.events,
        "lost": r.lost,
        "duplicated": r.duplicated,
        "recovery_s": r.recovery_s,
        "verdict": r.verdict,
        "seconds": r.seconds,
        "notes": r.notes,
        "checks": {
            name: {"ok": ok, "detail": detail, "timed": name in r.timed}
            for name, (ok, detail) in r.checks.items()
        },
        "details": r.details,
    }


if __name__ == "__main__":
    sys.exit(main())
