"""Correlation benchmark: window updates per second and memory per live (correlation, group) entry.

Why: correlation state is the part of the engine that grows with the traffic (one window per group),
so its cost per update and per live group bounds what a node can hold. The stream cycles through
100,000 users with an `event_count` and a `value_count` correlation (one hour windows), so 100,000
groups per correlation stay live; memory is measured with tracemalloc around the fill.

    python benchmarks/correlation_bench.py [--groups N] [--updates N] [--event-mode none|refs|full]

`--event-mode` measures the cost of event inclusion: each window then keeps its events too (up to
`--max-correlation-events`, 10), so memory per entry grows with them.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rsigma.correlation.engine import CorrelationConfig  # noqa: E402
from rsigma.evaluator import Evaluator  # noqa: E402

RULES = """
title: Failed logon
id: 00000000-0000-4000-8000-000000000001
name: failed_logon
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Many failed logons per user
id: 00000000-0000-4000-8000-000000000002
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1h
    condition: {gte: 1000000}
---
title: Many sources per user
id: 00000000-0000-4000-8000-000000000003
correlation:
    type: value_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1h
    condition: {field: IpAddress, gte: 1000000}
"""


def events(n: int, groups: int, start: float = 1_790_000_000.0) -> list[dict[str, object]]:
    return [
        {
            "EventID": 4625,
            "TargetUserName": f"user{i % groups}",
            "IpAddress": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "@timestamp": start + i * 0.001,
        }
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=300_000)
    parser.add_argument("--event-mode", choices=("none", "refs", "full"), default="none")
    args = parser.parse_args(argv)

    config = CorrelationConfig(max_state_entries=2 * args.groups + 10, event_mode=args.event_mode)
    evaluator = Evaluator.from_yaml(RULES, config)
    corr = evaluator.correlation
    fill = events(args.groups, args.groups)
    stream = events(args.updates, args.groups, start=1_790_000_000.0 + args.groups * 0.001)

    # Memory: one hit in each of `groups` groups of both correlations.
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for ev in fill:
        corr.process(ev, [0])
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    live = len(corr.state)
    per_entry = (after - before) / live

    # Throughput: correlation updates only (the detection engine is measured by engine_bench.py).
    t0 = time.perf_counter()
    for ev in stream:
        corr.process(ev, [0])
    elapsed = time.perf_counter() - t0
    updates = len(stream) * 2  # each event updates one window of each correlation

    snapshot = corr.export_state()
    print(f"rsigma correlation benchmark (--correlation-event-mode {args.event_mode})")
    print(f"  live windows      {live:,} ({args.groups:,} groups x 2 correlations)")
    print(f"  memory per entry  {per_entry:,.0f} bytes (1 hit per window, tracemalloc)")
    print(f"  events            {len(stream):,} ({updates:,} window updates)")
    rate = len(stream) / elapsed
    print(f"  throughput        {rate:,.0f} events/s, {updates / elapsed:,.0f} window updates/s")
    print(f"  hits per window   {sum(len(s) for s in corr.state.values()) / live:.1f} at the end")
    print(f"  snapshot          {len(snapshot) / 1e6:.1f} MB ({len(snapshot) / live:.0f} bytes per window)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
