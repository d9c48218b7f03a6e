"""Our engine against RSigma's, side by side on this machine: speed, load time, memory and matches.

Why: the engine aims at RSigma's events per second per core, its load time and its memory (issue 15),
and only a run on the same machine, rules and events, in the same hour, says where it stands. RSigma
is `../shared/tools/rsigma-bench` (its README says what it measures); ours is `engine_passes.py`,
which measures our engine the same way. For each rule set (SigmaHQ `rules/` and
`rules/windows/process_creation`) and each stream (`events.py`'s Sysmon stream and its
process-creation events alone), the two run alternately, a fresh process per round, each round
timing load+compile, a first pass and the best of `--passes` passes (JSON decoding included), with
the peak RSS of the process (from `os.wait4`, the same for both). Ours loads cold (no rule cache) and,
in a third process per round, warm: from a rule cache an untimed run filled (`--rule-cache`), as a
daemon restart, a reload or a matcher of the pool loads. The first round's `--dump` files are compared
event by event (the warm run's too).

It is a report, not a gate: it exits 0 whatever the figures (and when ../shared is absent).

    python benchmarks/vs_rsigma.py [--events N] [--rounds N] [--passes N] [--seed S]
                                   [--attack-ratio R] [--show-diffs N] [--json]
                                   [--rules-root DIR] [--rsigma-bench PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import events as sysmon
from engine_bench import write_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support.match_dumps import compare_dumps  # noqa: E402

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
RSIGMA_BENCH = SHARED / "tools" / "rsigma-bench" / "rsigma-bench"
SIGMAHQ_RULES = SHARED / "corpus" / "sigmahq" / "rules"
RULE_SETS = ("rules/", "rules/windows/process_creation")
STREAMS = {"sysmon": sysmon.generate, "process_creation": sysmon.process_creation}
ENGINES = ("rsigma", "ours")

# The targets, as ratios ours / RSigma of the median figures.
TARGET_EPS_RATIO = 1.0
TARGET_LOAD_RATIO = 1.2
TARGET_WARM_LOAD_RATIO = 0.5
TARGET_RSS_RATIO = 1.0


@dataclass
class Run:
    """One process of one engine: its load, its passes and its peak memory."""

    rules_loaded: int
    load_s: float
    first_s: float
    best_s: float
    events: int
    matches: int
    peak_rss_mb: float


def parse_keys(text: str) -> dict[str, str]:
    """The `key: value` lines both drivers print."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key.strip()] = value.strip()
    return out


def run_child(cmd: list[str]) -> tuple[dict[str, str], float]:
    """Run one driver; its printed figures and its peak RSS in MB (ru_maxrss from `os.wait4`)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            why = err.read().decode(errors="replace")
            raise SystemExit(f"error: {' '.join(cmd)} exited with {proc.returncode}:\n{why}")
    return parse_keys(out), usage.ru_maxrss / 1024


def measure(
    engine: str,
    bench: Path,
    rules: Path,
    events: Path,
    passes: int,
    dump: Path | None,
    rule_cache: Path | None = None,
) -> Run:
    """One round of one engine in a fresh process (ours through `rule_cache` when given: a warm load)."""
    cmd = [str(bench)] if engine == "rsigma" else [sys.executable, str(HERE / "engine_passes.py")]
    cmd += ["--rules", str(rules), "--events", str(events), "--repeat", str(passes)]
    if dump is not None:
        cmd += ["--dump", str(dump)]
    if rule_cache is not None:
        cmd += ["--rule-cache", str(rule_cache)]
    keys, rss = run_child(cmd)
    if rule_cache is not None and keys.get("rule_cache") != "hit":
        raise SystemExit(f"error: the warm run did not load from {rule_cache}: {keys.get('rule_cache')}")
    first = float(keys["eval_seconds"])
    return Run(
        rules_loaded=int(keys["rules_loaded"]),
        load_s=float(keys["load_compile_seconds"]),
        first_s=first,
        best_s=float(keys.get("eval_seconds_best", first)),
        events=int(keys["events"].split()[0]),
        matches=int(keys["total_matches"]),
        peak_rss_mb=rss,
    )


def figures(runs: list[Run]) -> dict[str, dict[str, float]]:
    """Best and median of each figure over the rounds (best: least time or memory, most events/s)."""
    n = runs[0].events
    series = {
        "load_compile_s": ([r.load_s for r in runs], min),
        "first_pass_events_per_s": ([n / r.first_s for r in runs], max),
        "best_pass_events_per_s": ([n / r.best_s for r in runs], max),
        "peak_rss_mb": ([r.peak_rss_mb for r in runs], min),
    }
    return {k: {"best": pick(v), "median": statistics.median(v)} for k, (v, pick) in series.items()}


def verdicts(
    ours: dict[str, dict[str, float]], warm: dict[str, dict[str, float]], rsigma: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The ratios ours / RSigma of the medians, and the issue's targets on them."""
    ratio = {k: ours[k]["median"] / rsigma[k]["median"] for k in ours}
    ratio["warm_load_s"] = warm["load_compile_s"]["median"] / rsigma["load_compile_s"]["median"]
    return {
        "ratios": ratio,
        "targets": {
            "first_pass_events_per_s": ratio["first_pass_events_per_s"] >= TARGET_EPS_RATIO,
            "best_pass_events_per_s": ratio["best_pass_events_per_s"] >= TARGET_EPS_RATIO,
            "load_compile_s": ratio["load_compile_s"] <= TARGET_LOAD_RATIO,
            "warm_load_s": ratio["warm_load_s"] <= TARGET_WARM_LOAD_RATIO,
            "peak_rss_mb": ratio["peak_rss_mb"] <= TARGET_RSS_RATIO,
        },
    }


ROWS = (
    ("load_compile_s", "load+compile s", "{:.3f}", f"<= {TARGET_LOAD_RATIO}x"),
    ("warm_load_s", "warm load s (cached)", "{:.3f}", f"<= {TARGET_WARM_LOAD_RATIO}x"),
    ("first_pass_events_per_s", "first-pass events/s", "{:,.0f}", f">= {TARGET_EPS_RATIO}x"),
    ("best_pass_events_per_s", "best-pass events/s", "{:,.0f}", f">= {TARGET_EPS_RATIO}x"),
    ("peak_rss_mb", "peak RSS MB", "{:.1f}", f"<= {TARGET_RSS_RATIO}x"),
)


def print_table(result: dict[str, Any], show_diffs: int, stream_file: Path) -> None:
    runs = result["runs"]
    print(f"\n{result['rules']} x {result['stream']} ({runs['rsigma'][0]['events']:,} events): "
          f"RSigma {runs['rsigma'][0]['rules_loaded']:,} rules, ours {runs['ours'][0]['rules_loaded']:,}, "
          f"{len(runs['ours'])} rounds")  # fmt: skip
    print(f"  {'':22}{'RSigma best / median':>24}{'ours best / median':>24}{'ours/RSigma':>13}  target")
    for key, label, fmt, target in ROWS:
        # The warm load is ours from the rule cache, against RSigma's (only) load.
        sides = (
            [("rsigma", "load_compile_s"), ("warm", "load_compile_s")]
            if key == "warm_load_s"
            else [(e, key) for e in ENGINES]
        )
        cells = [
            f"{fmt.format(result[e][k]['best'])} / {fmt.format(result[e][k]['median'])}" for e, k in sides
        ]
        ok = "PASS" if result["targets"][key] else "FAIL"
        ratio = result["ratios"][key]
        print(f"  {label:22}{cells[0]:>24}{cells[1]:>24}{ratio:>12.2f}x  {target:9} {ok}")
    if result["warm_differences"]:
        print(f"  matches: ours warm differs from ours cold on {len(result['warm_differences']):,} events")
    diffs = result["differences"]
    pairs = runs["rsigma"][0]["matches"]
    if not diffs:
        print(f"  matches: identical on every event ({pairs:,} (event, rule) pairs)")
        return
    ours = runs["ours"][0]["matches"]
    print(f"  matches: {len(diffs):,} events differ (RSigma {pairs:,} (event, rule) pairs, ours {ours:,})")
    lines = stream_file.read_text(encoding="utf-8").splitlines()
    for d in diffs[:show_diffs]:
        print(f"    line {d['line']}: ours only {d['ours_only']}, RSigma only {d['rsigma_only']}")
        print(f"      {lines[d['line'] - 1][:300]}")


def measure_case(
    args: argparse.Namespace, rule_set: str, rules: Path, stream: str, events: Path, tmp: Path
) -> dict[str, Any]:
    """Both engines on one rule set and stream, alternating (which goes first alternates too), and
    the first round's matches compared."""
    runs: dict[str, list[Run]] = {e: [] for e in (*ENGINES, "warm")}
    dumps = {e: tmp / f"{e}.dump.json" for e in runs}
    cache = tmp / "rule-cache"
    t0 = time.perf_counter()
    run_child([sys.executable, str(HERE / "engine_passes.py"), "--rules", str(rules), "--events", str(events),
               "--rule-cache", str(cache)])  # fmt: skip
    for r in range(args.rounds):
        for engine in (*ENGINES, "warm") if r % 2 == 0 else ("warm", *reversed(ENGINES)):
            dump = dumps[engine] if r == 0 else None
            warm = cache if engine == "warm" else None
            name = "ours" if engine == "warm" else engine
            runs[engine].append(measure(name, args.rsigma_bench, rules, events, args.passes, dump, warm))
    print(f"  measured {rule_set} x {stream} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    loaded = {e: json.loads(dumps[e].read_bytes()) for e in runs}
    diffs = compare_dumps(loaded["ours"], loaded["rsigma"])
    fig = {e: figures(runs[e]) for e in runs}
    return {
        "rules": rule_set,
        "stream": stream,
        **fig,
        **verdicts(fig["ours"], fig["warm"], fig["rsigma"]),
        "differences": [asdict(d) for d in diffs],
        "warm_differences": [asdict(d) for d in compare_dumps(loaded["warm"], loaded["ours"])],
        "runs": {e: [asdict(r) for r in runs[e]] for e in runs},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per stream (default: 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per engine and case (default: 3)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per process (default: 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attack-ratio", type=float, default=0.0, help="attack share of both streams")
    parser.add_argument("--rules-root", type=Path, default=SIGMAHQ_RULES, help="SigmaHQ's rules/ directory")
    parser.add_argument("--rsigma-bench", type=Path, default=RSIGMA_BENCH, help="the rsigma-bench binary")
    parser.add_argument("--show-diffs", type=int, default=5, metavar="N", help="differences to print")
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.passes < 1 or args.events < 1:
        parser.error("--events, --rounds and --passes must be at least 1")

    missing = [p for p in (args.rules_root, args.rsigma_bench) if not p.exists()]
    if missing:
        print(f"skipped: {', '.join(map(str, missing))} not found; vs_rsigma.py needs ../shared "
              "(the SigmaHQ corpus and tools/rsigma-bench) beside the repository")  # fmt: skip
        return 0

    load_start = os.getloadavg()
    print("rsigma (ours) against RSigma (rsigma-bench)")
    print(f"  load average at start  {' '.join(f'{x:.2f}' for x in load_start)} ({os.cpu_count()} CPUs)")
    print(f"  {args.events:,} events per stream (seed {args.seed}, attack ratio {args.attack_ratio:g}), "
          f"{args.rounds} rounds of {args.passes} passes, engines alternating")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory(prefix="vs-rsigma-") as tmp:
        files = {}
        for name, gen in STREAMS.items():
            files[name] = Path(tmp) / f"{name}.ndjson"
            write_stream(gen(args.events, args.seed, args.attack_ratio), files[name])
        for rule_set in RULE_SETS:
            rules = args.rules_root / rule_set.removeprefix("rules/")
            for stream, events in files.items():
                result = measure_case(args, rule_set, rules, stream, events, Path(tmp))
                print_table(result, args.show_diffs, events)
                results.append(result)
    load_end = os.getloadavg()
    print(f"\n  load average at end    {' '.join(f'{x:.2f}' for x in load_end)}")
    if args.json:
        print(json.dumps({"load_average": [load_start, load_end], "events": args.events,
                          "rounds": args.rounds, "passes": args.passes, "results": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
