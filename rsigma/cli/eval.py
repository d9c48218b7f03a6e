"""`rsigma engine eval`: evaluate NDJSON events from an argument, a file or stdin."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from rsigma.evaluator import Evaluator
from rsigma.formats import InputFormat
from rsigma.payloads import PayloadOptions, evaluate_payloads

PROGRESS_INTERVAL_S = 1.0


def run_eval(
    evaluator: Evaluator,
    *,
    event: str | None,
    events_file: Path | None,
    include_event: bool,
    input_format: InputFormat,
) -> int:
    """Write one JSON line per result; bad lines are reported with their number and skipped."""
    out = sys.stdout.buffer
    options = PayloadOptions(sys.maxsize, include_event, input_format)
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
            # One line at a time: a pipe's results appear as its lines arrive.
            answers, evaluated = evaluate_payloads(evaluator, (raw,), options)
            events += evaluated
            for _, outcome in answers:
                if isinstance(outcome, str):
                    bad += 1
                    print(f"line {lineno}: {outcome}", file=sys.stderr)
                elif outcome is not None:
                    results += len(outcome[0])
                    out.write(b"".join(outcome[0]))
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
