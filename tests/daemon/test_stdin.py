"""stdin input: results on stdout and file sinks (fan-out), --include-event, EOF, dead-letter entries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

DLQ_KEYS = ["original_event", "error", "timestamp"]
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)")
MARKER = re.compile(r"(?s)(.*?)\.*\[(-?\d+) more bytes\]")


def engine_eval(rules: Path, events: bytes, tmp_path: Path, *extra: str) -> list[dict]:
    source = tmp_path / "eval-input.ndjson"
    source.write_bytes(events)
    done = subprocess.run(
        [sys.executable, "-m", "rsigma", "engine", "eval", "-r", str(rules), "--events", str(source), *extra],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def mixed_events(ev, count: int) -> bytes:
    """whoami, quiet and failed logons interleaved; three users reach the correlation threshold."""
    events = []
    for i in range(count):
        if i % 3 == 0:
            events.append(ev.whoami(i))
        elif i % 3 == 1:
            events.append(ev.quiet(i))
        else:
            events.append(ev.failed(f"user{i % 4}", (i // 3) % 60))
    return ev.ndjson(*events)


def check_dlq_entry(entry: dict) -> None:
    assert list(entry) == DLQ_KEYS, entry
    assert isinstance(entry["original_event"], str)
    assert isinstance(entry["error"], str) and entry["error"]
    assert RFC3339_UTC.fullmatch(entry["timestamp"]), entry["timestamp"]
    when = datetime.fromisoformat(entry["timestamp"])
    assert when.utcoffset() == timedelta(0)


# ---- results --------------------------------------------------------------------------------


@pytest.mark.parametrize("stdin_kind", ["pipe", "regular-file"])
def test_stdin_to_stdout_matches_engine_eval_and_exits_0(daemon, rules_file, ev, tmp_path, stdin_kind):
    events = ev.ndjson(
        ev.whoami(1), ev.quiet(2), ev.failed("u", 0), ev.failed("u", 1), ev.whoami(3), ev.failed("u", 2)
    )
    if stdin_kind == "pipe":
        stdin: bytes | Path = events
    else:
        stdin = tmp_path / "events.ndjson"
        stdin.write_bytes(events)
    d = daemon("-r", rules_file, stdin=stdin)
    assert d.wait_exit() == 0, d.stderr()
    results = d.results()
    assert [r["rule_title"] for r in results] == ["Whoami", "Whoami", "Brute force"]
    assert results[0]["matched_fields"] == [{"field": "CommandLine", "value": "cmd /c whoami #1"}]
    assert results[2]["group_key"] == [["User", "u"]]
    assert results[2]["aggregated_value"] == 3
    assert results == engine_eval(rules_file, events, tmp_path)
    assert d.find_log("daemon stopped")["events_processed"] == 6


def test_last_line_without_newline_is_processed(daemon, rules_file, ev):
    d = daemon("-r", rules_file, stdin=ev.line(ev.quiet()) + json.dumps(ev.whoami(7)).encode())
    assert d.wait_exit() == 0, d.stderr()
    assert [r["matched_fields"][0]["value"] for r in d.results()] == ["cmd /c whoami #7"]


def test_stdin_from_dev_null_ends_cleanly_and_says_why(daemon, rules_file):
    # systemd, Kubernetes, cron and `docker run` without -i give a daemon /dev/null as stdin.
    d = daemon("-r", rules_file, stdin="devnull")
    assert d.wait_exit() == 0, d.stderr()
    assert d.results() == []
    [warning] = d.find_logs("stdin was empty: the input ended before any event.")
    assert warning["level"] == "warning"
    assert "--input http" in warning["message"]


@pytest.mark.parametrize("batch_size", ["1", "16"])
def test_fan_out_two_files_and_stdout_identical_and_ordered(daemon, rules_file, ev, tmp_path, batch_size):
    a, b = tmp_path / "a.ndjson", tmp_path / "sub" / "b.ndjson"
    b.parent.mkdir()
    events = mixed_events(ev, 600)
    d = daemon(
        "-r",
        rules_file,
        "--output",
        f"file://{a}",
        "--output",
        f"file://{b}",
        "--output",
        "stdout",
        "--batch-size",
        batch_size,
        stdin=events,
    )
    assert d.wait_exit() == 0, d.stderr()
    stdout = d.stdout_path.read_bytes()
    assert a.read_bytes() == stdout
    assert b.read_bytes() == stdout
    results = d.results()
    assert results == engine_eval(rules_file, events, tmp_path)
    seqs = [r["matched_fields"][0]["value"] for r in results if r["rule_title"] == "Whoami"]
    assert seqs == [f"cmd /c whoami #{i}" for i in range(0, 600, 3)]
    assert sum(r["rule_title"] == "Brute force" for r in results) > 0


def test_file_sink_appends_to_existing_file(daemon, rules_file, ev, tmp_path):
    out = tmp_path / "out.ndjson"
    out.write_text('{"previous": true}\n')
    d = daemon("-r", rules_file, "--output", f"file://{out}", stdin=ev.ndjson(ev.whoami(1)))
    assert d.wait_exit() == 0, d.stderr()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"previous": True}
    assert [r["rule_title"] for r in lines[1:]] == ["Whoami"]
    assert d.stdout_lines() == []


def test_include_event(daemon, rules_file, ev, tmp_path):
    events = ev.ndjson(ev.whoami(1), ev.failed("u", 0), ev.failed("u", 1), ev.failed("u", 2))
    d = daemon("-r", rules_file, "--include-event", stdin=events)
    assert d.wait_exit() == 0, d.stderr()
    results = d.results()
    assert results[0]["rule_title"] == "Whoami"
    assert results[0]["event"] == ev.whoami(1)
    assert results == engine_eval(rules_file, events, tmp_path, "--include-event")


# ---- dead-letter queue ----------------------------------------------------------------------

BIG = json.dumps({"CommandLine": "whoami " + "x" * 20_000}).encode()
HUGE = json.dumps({"CommandLine": "whoami " + "y" * 300_000}).encode()
SMALL_OVER = json.dumps({"CommandLine": "whoami " + "z" * 300}).encode()
BAD_UTF8 = b'{"CommandLine": "who\xffami"}'

DLQ_CASES = [
    pytest.param(b'{"CommandLine": "whoami"', (), "invalid JSON", id="invalid-json"),
    pytest.param(b"[1, 2]", (), "expected a JSON object, got list", id="not-an-object"),
    pytest.param(b"", (), "empty line", id="empty-line"),
    pytest.param(b"  \t  ", (), "empty line", id="whitespace-line"),
    pytest.param(BAD_UTF8, (), "invalid JSON", id="invalid-utf8"),
    pytest.param(BIG, ("--max-event-bytes", "8192"), "exceeds --max-event-bytes", id="oversize"),
    pytest.param(
        HUGE, ("--max-event-bytes", "100000"), "exceeds --max-event-bytes", id="oversize-over-many-chunks"
    ),
    pytest.param(
        SMALL_OVER, ("--max-event-bytes", "100"), "exceeds --max-event-bytes", id="oversize-short-line"
    ),
]


@pytest.mark.parametrize(("raw", "flags", "error"), DLQ_CASES)
def test_dlq_entry_per_failure_kind(daemon, rules_file, ev, tmp_path, jsonl, raw, flags, error):
    dlq = tmp_path / "dlq.ndjson"
    stdin = ev.line(ev.whoami(1)) + raw + b"\n" + ev.line(ev.whoami(2))
    d = daemon("-r", rules_file, "--dlq", f"file://{dlq}", *flags, stdin=stdin)
    assert d.wait_exit() == 0, d.stderr()
    entries = jsonl(dlq)
    assert len(entries) == 1, entries
    entry = entries[0]
    check_dlq_entry(entry)
    if error.startswith("exceeds"):
        assert error in entry["error"], entry["error"]
        line = raw.decode()
        original = entry["original_event"]
        marker = MARKER.fullmatch(original)
        assert marker is not None, f"no '[N more bytes]' marker: {original[-80:]!r}"
        kept, more = marker[1], int(marker[2])
        assert more > 0, f"marker counts {more} more bytes"
        assert line.startswith(kept), "the kept part must be the start of the line"
        assert len(kept.encode()) + more == len(raw), (len(kept), more, len(raw))
        assert len(original) < len(line), "an oversize line is truncated in the DLQ"
    else:
        assert entry["error"].startswith(error), entry["error"]
        assert entry["original_event"] == raw.decode("utf-8", "replace")
    # The daemon kept going: the events on both sides of the bad line produced detections.
    values = [r["matched_fields"][0]["value"] for r in d.results()]
    assert values == ["cmd /c whoami #1", "cmd /c whoami #2"]


def test_line_of_exactly_max_event_bytes_is_accepted(daemon, rules_file, ev, tmp_path, jsonl):
    line = json.dumps(ev.whoami(5)).encode()
    dlq = tmp_path / "dlq.ndjson"
    d = daemon(
        "-r", rules_file, "--dlq", f"file://{dlq}", "--max-event-bytes", str(len(line)), stdin=line + b"\n"
    )
    assert d.wait_exit() == 0, d.stderr()
    assert [r["rule_title"] for r in d.results()] == ["Whoami"]
    assert jsonl(dlq) == []


def test_bad_lines_do_not_stop_the_daemon(daemon, rules_file, ev, tmp_path, jsonl, wait_until):
    dlq = tmp_path / "dlq.ndjson"
    # --input-format json: a string or a number is a line auto would read as plain text
    d = daemon(
        "-r", rules_file, "--dlq", f"file://{dlq}", "--max-event-bytes", "4096", "--input-format", "json"
    )
    bad = [b"not json", b"[]", b"", b"   ", BAD_UTF8, b'"a string"', b"{" * 5000, b"42"]
    d.send(b"".join(line + b"\n" for line in bad))
    entries = wait_until(lambda: len(jsonl(dlq)) == len(bad) and jsonl(dlq), f"{len(bad)} DLQ entries")
    for entry in entries:
        check_dlq_entry(entry)
    assert d.alive()
    assert d.get("/healthz").status == 200
    assert d.results() == []
    d.send(ev.line(ev.whoami(9)))
    wait_until(lambda: d.results(), "a detection after the bad lines")
    assert d.results()[0]["matched_fields"][0]["value"] == "cmd /c whoami #9"
    d.close_stdin()
    assert d.wait_exit() == 0, d.stderr()


def test_dlq_to_stdout(daemon, rules_file, ev, tmp_path, jsonl):
    out = tmp_path / "out.ndjson"
    d = daemon(
        "-r",
        rules_file,
        "--output",
        f"file://{out}",
        "--dlq",
        "stdout",
        stdin=b'{"nope\n' + ev.line(ev.whoami(1)),
    )
    assert d.wait_exit() == 0, d.stderr()
    entries = d.results()
    assert len(entries) == 1
    check_dlq_entry(entries[0])
    assert entries[0]["original_event"] == '{"nope'
    assert [r["rule_title"] for r in jsonl(out)] == ["Whoami"]
