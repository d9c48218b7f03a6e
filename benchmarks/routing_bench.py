"""Logsource routing benchmark: one mixed stream (Windows, Linux, CloudTrail), with and without routing.

Why: without routing every rule is a candidate for every event, so rules written for other products
cost time and, worse, fire (negation-only rules match any event that lacks their fields). With
`--logsource-routing` each event is placed in a logsource and only the compatible rules are
indexed for it. Both runs read the same NDJSON file in one process; the report gives events/s,
matches, and the ratio.

    python benchmarks/routing_bench.py [--rules PATH] [--events N] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import mixed_events
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rsigma.engine import Engine  # noqa: E402
from rsigma.routing import load_routers  # noqa: E402
from rsigma.rules import load_rules  # noqa: E402

DEFAULT_RULES = HERE.parents[1] / "shared/corpus/sigmahq/rules"


def run(engine: Engine, path: Path) -> tuple[float, int, int]:
    """Seconds, events and matches for one pass over the file (JSON decode included)."""
    loads = orjson.loads
    evaluate = engine.evaluate
    events = matches = 0
    gc.collect()
    with path.open("rb") as f:
        t0 = time.perf_counter()
        for raw in f:
            events += 1
            matches += len(evaluate(loads(raw)))
        return time.perf_counter() - t0, events, matches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.rules.exists():
        print(
            f"note: {args.rules} not found; the routing benchmark needs the SigmaHQ corpus", file=sys.stderr
        )
        return 0

    ruleset = load_rules(args.rules)
    plain = Engine(ruleset)
    routed = Engine(ruleset, router=load_routers(None))
    with tempfile.TemporaryDirectory(prefix="rsigma-routing-") as tmp:
        path = Path(tmp) / "mixed.ndjson"
        with path.open("wb") as f:
            for event in mixed_events.generate(args.events, args.seed):
                f.write(orjson.dumps(event) + b"\n")
        routed_warm = run(routed, path)  # first pass builds the per-logsource indexes
        plain_s, n, plain_matches = run(plain, path)
        routed_s, _, routed_matches = run(routed, path)

    print("rsigma logsource routing benchmark (mixed stream: 70% Windows, 20% Linux, 10% CloudTrail)")
    print(f"  rules             {len(plain.rules):,}")
    print(f"  events            {n:,}")
    print(f"  without routing   {n / plain_s:10,.0f} events/s   {plain_matches:,} matches")
    print(f"  with routing      {n / routed_s:10,.0f} events/s   {routed_matches:,} matches")
    print(f"  speed-up          {plain_s / routed_s:.2f}x")
    indexes = routed.routed_indexes
    print(f"  first routed pass {n / routed_warm[0]:10,.0f} events/s (builds {indexes} logsource indexes)")
    print(f"  unplaced events   {routed.unplaced // 2:,} per pass (evaluated against every rule)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
