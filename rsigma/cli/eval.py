"""`rsigma engine eval`: evaluate NDJSON events from an argument, a file or stdin."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from rsigma.evaluator import Evaluator
from rsigma.exit_codes import EXIT_FAILURE, EXIT_RULE_ERROR
from rsigma.formats import InputFormat
from rsigma.formats.extract import Extraction
from rsigma.output_format import LineFormat, line_format
from rsigma.payloads import PayloadOptions, evaluate_payloads

PROGRESS_INTERVAL_S = 1.0
CLEAR_LINE = "\r\x1b[K"


def summary_line(events: int, detections: int, correlations: int, bad: int, seconds: float) -> str:
    """The last line eval writes: RSigma's `Processed N events, ...` wording with this engine's
    extra counts, and no thousands separators, so a script reading RSigma's line reads this one."""
    rate = events / seconds if seconds > 0 else 0.0
    return (
        f"Processed {events} events, {detections} detection matches, {correlations} correlation matches,"
        f" {bad} bad lines in {seconds:.2f} s ({rate:.0f} events/s)."
    )


def _indented(lines: list[bytes], indent: LineFormat) -> list[bytes]:
    """`--pretty`: each result indented; one too deeply nested to re-encode stays compact, and says so."""
    out = []
    for line in lines:
        try:
            out.append(indent(line))
        except OSError as e:
            print(f"--pretty: {e}; written compact", file=sys.stderr)
            out.append(line)
    return out


def run_eval(
    evaluator: Evaluator,
    *,
    event: str | None,
    events_file: Path | None,
    include_event: bool,
    input_format: InputFormat,
    extraction: Extraction | None = None,
    strict: bool = False,
    pretty: bool = False,
    fail_on_detection: bool = False,
) -> int:
    """Write one JSON line per result (indented with `pretty`); bad lines are reported with their
    number and skipped (with `strict`, the exit code says there were some once every line is done). A
    bad `--event` is a usage error: it is a JSON object (as in RSigma) unless a format other than
    `auto` is named. `fail_on_detection` exits 1 when anything matched, for CI jobs."""
    out = sys.stdout.buffer
    if event is not None and input_format.name == "auto":
        input_format = replace(input_format, name="json")
    options = PayloadOptions(sys.maxsize, include_event, input_format, extraction)
    indent = line_format(None, True) if pretty else None
    started = time.monotonic()
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
        bad = events = detections = correlations = read = 0
        last_report = started
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
                    where = "--event" if event is not None else f"line {lineno}"
                    # On a terminal, the message takes the progress line's place (erased to its end).
                    print(f"{CLEAR_LINE if progress else ''}{where}: {outcome}", file=sys.stderr)
                elif outcome is not None:
                    lines, keys = outcome
                    found = sum(1 for key in keys if key[2] is not None)
                    correlations += found
                    detections += len(lines) - found
                    out.write(b"".join(_indented(lines, indent) if indent else lines))
            if progress and time.monotonic() - last_report >= PROGRESS_INTERVAL_S:
                last_report = time.monotonic()
                percent = min(read * 100 // total_bytes, 99)
                print(
                    f"\r{percent:3d}% {events} events, {detections + correlations} results",
                    end="",
                    file=sys.stderr,
                )
    out.flush()
    seconds = time.monotonic() - started
    if progress:
        # The file is read to its end: the last update says so, whenever the one before it was.
        print(f"\r100% {events} events, {detections + correlations} results", file=sys.stderr)
    engine = evaluator.engine
    if engine.router is not None and engine.unplaced:
        print(
            f"logsource routing: {engine.unplaced} event(s) matched no route; evaluated against all rules",
            file=sys.stderr,
        )
    correlation = evaluator.correlation
    if correlation.late or correlation.evicted or correlation.trimmed:
        trimmed = (
            f", {correlation.trimmed} entries over --max-group-entries dropped" if correlation.trimmed else ""
        )
        print(
            f"correlation: {correlation.late} late hit(s) dropped, {correlation.evicted} window(s) evicted"
            + trimmed,
            file=sys.stderr,
        )
    print(summary_line(events, detections, correlations, bad, seconds), file=sys.stderr)
    if event is not None and bad:
        return EXIT_RULE_ERROR  # the argument itself is unusable: a usage error, as RSigma's exit 2
    if strict and bad or fail_on_detection and detections + correlations:
        return EXIT_FAILURE
    return 0
