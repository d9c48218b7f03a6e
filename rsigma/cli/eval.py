"""`rsigma engine eval`: evaluate NDJSON events from an argument, a file or stdin."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import orjson

from rsigma.daemon.evaluate import TOO_DEEP_TO_WRITE, result_lines
from rsigma.evaluator import Evaluator

PROGRESS_INTERVAL_S = 1.0


def run_eval(
    evaluator: Evaluator,
    *,
    event: str | None,
    events_file: Path | None,
    include_event: bool,
) -> int:
    """Write one JSON line per result; bad lines are reported with their number and skipped."""
    out = sys.stdout.buffer
    with ExitStack() as stack:
        source: Iterable[bytes]
        total_bytes = 0
        if event is not None:
            source = [event.encode("utf-8")]
        elif events_file is not None:
            source = stack.enter_context(events_file.open("rb"))
            total_bytes = events_file.stat().st_size
        else:
            source = sys.stdin.buffer
        progress = total_bytes > 0 and sys.stderr.isatty()
        bad = events = results = read = 0
        last_report = time.monotonic()
        for lineno, raw in enumerate(source, start=1):
            read += len(raw)
            if not raw.strip():
                continue
            try:
                decoded = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                bad += 1
                print(f"line {lineno}: not valid JSON: {e}", file=sys.stderr)
                continue
            if not isinstance(decoded, dict):
                bad += 1
                print(f"line {lineno}: expected a JSON object, got {type(decoded).__name__}", file=sys.stderr)
                continue
            events += 1
            found = evaluator.process(decoded)
            if found:
                try:
                    lines, _ = result_lines(found, include_event)
                except RecursionError:  # an event too deep for its results to be written
                    bad += 1
                    print(f"line {lineno}: {TOO_DEEP_TO_WRITE}", file=sys.stderr)
                else:
                    results += len(lines)
                    out.write(b"".join(lines))
            if progress and time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
                last_report = time.monotonic()
                print(
                    f"\r{read * 100 // total_bytes:3d}% {events} events, {results} results",
                    end="",
                    file=sys.stderr,
                )
    out.flush()
    if progress:
        print(file=sys.stderr)
    engine = evaluator.engine
    if engine.router is not None and engine.unplaced:
        print(
            f"logsource routing: {engine.unplaced} event(s) matched no route; evaluated against all rules",
            file=sys.stderr,
        )
    correlation = evaluator.correlation
    if correlation.late or correlation.evicted:
        print(
            f"correlation: {correlation.late} late hit(s) dropped, {correlation.evicted} window(s) evicted",
            file=sys.stderr,
        )
    if bad:
        print(f"{bad} line(s) skipped: not a JSON object", file=sys.stderr)
    return 0
