"""Engine benchmark: rule load+compile time, evaluation throughput and peak memory.

Why: the engine has explicit performance targets (load+compile of the SigmaHQ corpus within 1.5 s,
at least 10,000 events/s on one core, peak RSS within 300 MB), and they regress silently unless
something measures them the same way every time. This script is that measurement: it generates a
deterministic Sysmon-shaped stream (``benchmarks/events.py``), loads and compiles the rules, runs
every event through ``Engine.evaluate`` and prints a short report with PASS/FAIL per target.

It is a report, not a gate: it exits 0 whatever the numbers are (``make bench`` runs it).

    python benchmarks/engine_bench.py [--rules PATH] [--events N] [--seed S] [--attack-ratio R]
                                      [--with-attacks] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import events as sysmon
import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_RULES = Path(__file__).resolve().parents[2] / "shared/corpus/sigmahq/rules"
FALLBACK_RULES = REPO / "examples/rules"

TARGET_LOAD_S = 1.5
TARGET_EPS = 10_000.0
TARGET_RSS_MB = 300.0
ATTACK_STREAM_RATIO = 0.01


def _import_engine() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Return (load_rules, Engine); falls back to the repo checkout when rsigma is not installed."""
    try:
        from rsigma.engine import Engine
        from rsigma.rules import load_rules
    except ImportError:
        sys.path.insert(0, str(REPO))
        from rsigma.engine import Engine
        from rsigma.rules import load_rules
    return load_rules, Engine


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def write_stream(events: Iterable[dict[str, Any]], path: Path) -> int:
    """Write a generated stream as NDJSON (untimed); return its size in bytes."""
    with path.open("wb") as f:
        for e in events:
            f.write(orjson.dumps(e))
            f.write(b"\n")
    return path.stat().st_size


def run_stream(engine: Any, path: Path, profile: bool) -> tuple[float, int, int, Counter[str], str | None]:
    """Read, decode and evaluate every event once; return (s, events, matches, per rule, profile text).

    Events stream from an NDJSON file and are decoded inside the timed loop, as `engine eval` and
    the daemon do: JSON decoding counts in the throughput and the stream never sits in memory, so
    peak RSS is the engine's.

    Per-rule counting happens only for events that matched, so it costs next to nothing on a
    mostly benign stream while still letting the report name the noisiest rules.
    """
    evaluate = engine.evaluate
    loads = orjson.loads
    per_rule: Counter[str] = Counter()
    n = 0
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    events = 0
    with path.open("rb") as f:
        t0 = time.perf_counter()
        for raw in f:
            events += 1
            dets = evaluate(loads(raw))
            if dets:
                n += len(dets)
                per_rule.update(d.rule_title for d in dets)
        elapsed = time.perf_counter() - t0
    report = None
    if profiler is not None:
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("cumulative").print_stats(25)
        report = buf.getvalue()
    return elapsed, events, n, per_rule, report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _stream_result(
    label: str, ratio: float, events: int, seconds: float, matches: int, per_rule: Counter[str]
) -> dict[str, Any]:
    return {
        "stream": label,
        "attack_ratio": ratio,
        "events": events,
        "eval_s": round(seconds, 4),
        "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
        "matches": matches,
        "matches_per_event": round(matches / events, 5) if events else 0.0,
        "top_rules": per_rule.most_common(10),
    }


def _print_top(title: str, top: Iterable[tuple[str, int]]) -> None:
    rows = list(top)
    print(f"\n{title}")
    if not rows:
        print("  (no matches)")
        return
    for rank, (rule, count) in enumerate(rows, 1):
        print(f"  {rank:>2}. {count:>8,}  {rule}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=None, help=f"rule directory (default: {DEFAULT_RULES})")
    parser.add_argument("--events", type=int, default=100_000, help="number of events (default: 100000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attack-ratio", type=float, default=0.0, help="attack share of the main stream")
    parser.add_argument(
        "--with-attacks", action="store_true", help=f"also measure a {ATTACK_STREAM_RATIO:.0%} attack stream"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the evaluation, print top 25")
    parser.add_argument(
        "--show-errors", type=int, default=5, metavar="N", help="print the first N load errors"
    )
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON object")
    args = parser.parse_args(argv)

    if args.rules is None:
        rules_path = DEFAULT_RULES
        if not rules_path.is_dir():
            print(f"note: {rules_path} not found, falling back to {FALLBACK_RULES}", file=sys.stderr)
            rules_path = FALLBACK_RULES
    else:
        rules_path = args.rules
        if not rules_path.exists():
            print(f"error: rules path {rules_path} does not exist", file=sys.stderr)
            return 2

    events_mod = sysmon
    load_rules, engine_cls = _import_engine()

    # 1. Load + compile, timed together, first: as a daemon starts.
    t0 = time.perf_counter()
    ruleset = load_rules(rules_path)
    engine = engine_cls(ruleset)
    load_s = time.perf_counter() - t0
    n_rules = len(engine.rules)
    errors = list(ruleset.errors) + list(engine.errors)
    rules_rss = peak_rss_mb()

    with tempfile.TemporaryDirectory(prefix="rsigma-bench-") as tmp:
        # 2. The event stream, untimed, to a file.
        stream = Path(tmp) / "events.ndjson"
        t0 = time.perf_counter()
        stream_bytes = write_stream(events_mod.generate(args.events, args.seed, args.attack_ratio), stream)
        gen_s = time.perf_counter() - t0

        # 3. Evaluation, timed.
        gc.collect()
        eval_s, n_events, matches, per_rule, prof = run_stream(engine, stream, args.profile)
        main_stream = _stream_result("main", args.attack_ratio, n_events, eval_s, matches, per_rule)

        attack_stream = None
        if args.with_attacks:
            write_stream(events_mod.generate(args.events, args.seed, ATTACK_STREAM_RATIO), stream)
            a_s, a_events, a_matches, a_rules, _ = run_stream(engine, stream, False)
            attack_stream = _stream_result("attack", ATTACK_STREAM_RATIO, a_events, a_s, a_matches, a_rules)

    rss = peak_rss_mb()
    eps = main_stream["events_per_s"] or 0.0
    targets = {
        "load_compile_s": {
            "value": round(load_s, 4),
            "limit": TARGET_LOAD_S,
            "pass": load_s <= TARGET_LOAD_S,
        },
        "events_per_s": {"value": eps, "limit": TARGET_EPS, "pass": eps >= TARGET_EPS},
        "peak_rss_mb": {"value": round(rss, 1), "limit": TARGET_RSS_MB, "pass": rss <= TARGET_RSS_MB},
    }

    timing_note = " (under cProfile: slower than real)" if args.profile else ""
    print("rsigma engine benchmark")
    print(f"  rules path        {rules_path}")
    print(f"  rules loaded      {n_rules:,}")
    print(f"  load errors       {len(errors):,}")
    print(f"  load+compile      {load_s:8.3f} s        target <= {TARGET_LOAD_S} s        "
          f"{_verdict(targets['load_compile_s']['pass'])}")  # fmt: skip
    print(f"  events            {n_events:,} (seed {args.seed}, attack ratio {args.attack_ratio:g}, "
          f"{stream_bytes / 1e6:.0f} MB NDJSON, generated in {gen_s:.2f} s)")  # fmt: skip
    print(f"  eval              {eval_s:8.3f} s (JSON decode + evaluate){timing_note}")
    print(f"  throughput        {eps:10,.0f} events/s  target >= {TARGET_EPS:,.0f}      "
          f"{_verdict(targets['events_per_s']['pass'])}")  # fmt: skip
    print(f"  matches           {matches:,} ({main_stream['matches_per_event']:.4f} per event)")
    print(f"  peak RSS          {rss:8.1f} MB       target <= {TARGET_RSS_MB:.0f} MB       "
          f"{_verdict(targets['peak_rss_mb']['pass'])}")  # fmt: skip
    print(f"    after load      {rules_rss:8.1f} MB       (rules loaded and compiled)")
    if attack_stream is not None:
        a = attack_stream
        print(f"  attack stream     {a['events']:,} events at {ATTACK_STREAM_RATIO:.0%}: "
              f"{a['eval_s']:.3f} s, {a['events_per_s'] or 0:,.0f} events/s, {a['matches']:,} matches "
              f"({a['matches_per_event']:.4f} per event)")  # fmt: skip

    if errors and args.show_errors > 0:
        print(f"\nfirst {min(args.show_errors, len(errors))} of {len(errors)} load errors")
        for err in errors[: args.show_errors]:
            text = " ".join(str(err).split())
            print(f"  - {text[:200]}")

    _print_top("top 10 rules by matches (main stream)", main_stream["top_rules"])
    if attack_stream is not None:
        _print_top(
            f"top 10 rules by matches ({ATTACK_STREAM_RATIO:.0%} attack stream)", attack_stream["top_rules"]
        )

    if prof is not None:
        print("\ncProfile of evaluation, top 25 by cumulative time")
        print(prof)

    if args.json:
        result = {
            "rules_path": str(rules_path),
            "rules_loaded": n_rules,
            "load_errors": len(errors),
            "load_compile_s": round(load_s, 4),
            "events_generation_s": round(gen_s, 3),
            "seed": args.seed,
            "profiled": args.profile,
            **{k: v for k, v in main_stream.items() if k != "stream"},
            "peak_rss_mb": round(rss, 1),
            "rules_rss_mb": round(rules_rss, 1),
            "targets": targets,
            "attack_stream": attack_stream,
        }
        print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
