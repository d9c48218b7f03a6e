"""Our engine measured the way `rsigma-bench` measures RSigma's, for `vs_rsigma.py`.

Why a process of its own: RSigma's driver loads, compiles and evaluates in one process per run, so its
load time and peak RSS are that process's. This script does the same for our engine and prints the same
`key: value` lines, so the two can be read and compared alike:

- load+compile: `load_rules` and `Engine` on the rule directory (detection rules, with filters applied;
  correlations are parsed but not evaluated, as `rsigma-bench` loads them), with the cyclic GC off
  and then `gc.freeze()`, as every rsigma command loads (`rsigma.loading.load_evaluator`); with
  `--rule-cache DIR`, through the rule cache as the commands load (`rsigma.loading.load_engine`: a
  hit restores the rules, a miss also stores them), and `rule_cache:` says which it was;
- the NDJSON file is read into memory before timing, blank lines dropped;
- each timed pass is `orjson.loads` plus `Engine.evaluate` per line; the first pass also records, with
  `--dump`, each line's matched rule ids (the title where a rule has none), as `rsigma-bench --dump`.

    python benchmarks/engine_passes.py --rules DIR --events FILE.ndjson [--repeat N] [--dump OUT.json]
                                       [--rule-cache DIR]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from engine_bench import _import_engine, peak_rss_mb


def read_lines(path: Path) -> list[bytes]:
    """The file's non-blank lines, read before any timing starts (as `rsigma-bench` reads them)."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def timed_pass(engine: Any, lines: list[bytes], dump: bool) -> tuple[float, int, list[list[str]] | None]:
    """One pass, JSON decoding included: (seconds, matches, per-line rule ids when `dump`).

    A line that is not JSON counts as an event with no matches, as in `rsigma-bench`."""
    evaluate = engine.evaluate
    loads = orjson.loads
    per_event: list[list[str]] | None = [] if dump else None
    matches = 0
    t0 = time.perf_counter()
    for line in lines:
        try:
            event = loads(line)
        except orjson.JSONDecodeError:
            if per_event is not None:
                per_event.append([])
            continue
        dets = evaluate(event)
        matches += len(dets)
        if per_event is not None:
            per_event.append([d.rule_id or d.rule_title for d in dets])
    return time.perf_counter() - t0, matches, per_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, required=True, help="rule directory or file")
    parser.add_argument("--events", type=Path, required=True, help="NDJSON file, one event per line")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="timed passes (default: 1)")
    parser.add_argument("--dump", type=Path, help="write each line's matched rule ids (first pass) here")
    parser.add_argument("--rule-cache", type=Path, metavar="DIR", help="load through this rule cache")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.rules.exists():
        parser.error(f"--rules {args.rules}: no such file or directory")

    load_rules, engine_cls = _import_engine()
    cached = ""
    t0 = time.perf_counter()
    gc.disable()
    if args.rule_cache is not None:
        from rsigma.loading import load_engine
        from rsigma.rule_cache import RuleCache

        cache = RuleCache(args.rule_cache, lambda problem: print(f"warning: {problem}", file=sys.stderr))
        engine, cached = load_engine([args.rules], cache=cache)
        ruleset = engine.ruleset
    else:
        ruleset = load_rules(args.rules)
        engine = engine_cls(ruleset)
    gc.freeze()
    gc.enable()
    load_s = time.perf_counter() - t0

    lines = read_lines(args.events)
    times: list[float] = []
    matches = 0
    dumped = None
    for r in range(args.repeat):
        gc.collect()
        seconds, matches, per_event = timed_pass(engine, lines, dump=args.dump is not None and r == 0)
        times.append(seconds)
        dumped = dumped if per_event is None else per_event

    print(f"rules_dir: {args.rules}")
    print(f"rules_loaded: {len(engine.rules)}")
    errors = len(ruleset.errors) + len(engine.errors)
    print(f"parsed_rules: {len(ruleset.rules)} correlations: {len(ruleset.correlations)} "
          f"filters: {len(ruleset.filters)} load_errors: {errors}")  # fmt: skip
    print(f"load_compile_seconds: {load_s:.4f}")
    if args.rule_cache is not None:
        print(
            f"rule_cache: {'hit' if cached.startswith('rule cache hit') else 'miss' if cached else 'unused'}"
        )
    print(f"events: {len(lines)}")
    print(f"eval_seconds: {times[0]:.4f}")
    if args.repeat > 1:
        print(f"eval_seconds_all: {[round(t, 4) for t in times]}")
        print(f"eval_seconds_best: {min(times):.4f}")
    print(f"events_per_sec: {len(lines) / times[0]:.1f}")
    print(f"total_matches: {matches}")
    print(f"peak_rss_mb: {peak_rss_mb():.1f}")
    if args.dump is not None:
        args.dump.write_bytes(orjson.dumps(dumped))
        print(f"dump: {args.dump}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
