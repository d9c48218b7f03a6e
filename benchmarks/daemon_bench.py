"""Daemon benchmark: `engine daemon` stdin -> file sink against `engine eval` on the same events.

Why: the daemon adds queues, ack tokens, per-sink workers and a dead-letter path around the engine;
this measures what that costs. Both commands run as real subprocesses on the same NDJSON file. Each
is also run on an empty input, and that startup time (loading and compiling the rules) is
subtracted, so events/s compares the streaming paths alone. Each figure is the best of --repeat runs.
Target: the daemon at >= 80% of eval.

    python benchmarks/daemon_bench.py [--rules PATH] [--events N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import events as sysmon
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from tests.support import DaemonProcess  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_RULES = HERE.parents[1] / "shared/corpus/sigmahq/rules"
TARGET_RATIO = 0.8


def timed(command: list[str], stdin: Path, repeat: int) -> float:
    """Best wall time of `repeat` runs (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(repeat):
        with stdin.open("rb") as f:
            t0 = time.perf_counter()
            subprocess.run(command, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - t0)
    return best


def timed_daemon(args: list[str], stdin: Path, repeat: int, work: Path) -> float:
    """The same for `engine daemon` run to the end of its input (the shared daemon helper: killed, with
    anything it started, if the run fails or is interrupted)."""
    best = float("inf")
    for _ in range(repeat):
        with DaemonProcess(args, home=work, stdin=stdin, stdout="devnull") as daemon:
            t0 = time.perf_counter()
            daemon.start(wait=False)
            code = daemon.wait_exit(timeout=3600)
            elapsed = time.perf_counter() - t0
            if code != 0:
                raise SystemExit(f"engine daemon exited with {code}:\n{daemon.stderr()[-3000:]}")
        best = min(best, elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best time counts")
    args = parser.parse_args(argv)
    rules = (args.rules if args.rules.exists() else HERE.parent / "examples/rules").resolve()
    rsigma = [sys.executable, "-m", "rsigma", "engine"]
    with tempfile.TemporaryDirectory(prefix="rsigma-daemon-bench-") as tmp:
        events = Path(tmp) / "events.ndjson"
        empty = Path(tmp) / "empty.ndjson"
        empty.write_bytes(b"")
        with events.open("wb") as f:
            for event in sysmon.generate(args.events, 1, 0.002):
                f.write(orjson.dumps(event) + b"\n")
        out = Path(tmp) / "out.ndjson"
        daemon = ["-r", str(rules), "--output", f"file://{out}", "--batch-size", "64"]
        evaluate = [*rsigma, "eval", "-r", str(rules)]
        eval_s = timed(evaluate, events, args.repeat) - timed(evaluate, empty, args.repeat)
        work = Path(tmp) / "daemon"
        daemon_s = timed_daemon(daemon, events, args.repeat, work) - timed_daemon(
            daemon, empty, args.repeat, work
        )
    eval_rate, daemon_rate = args.events / eval_s, args.events / daemon_s
    ratio = daemon_rate / eval_rate
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print("rsigma daemon benchmark (stdin -> file sink, startup subtracted)")
    print(f"  rules             {rules}")
    print(f"  events            {args.events:,}")
    print(f"  engine eval       {eval_rate:10,.0f} events/s")
    print(f"  engine daemon     {daemon_rate:10,.0f} events/s")
    print(f"  ratio             {ratio:.2f}   target >= {TARGET_RATIO}   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
