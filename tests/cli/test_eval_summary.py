"""`rsigma engine eval`'s last words: the summary line, progress on a terminal, and `--strict`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import QUIET_EVENT, ROOT, WHOAMI, WHOAMI_EVENT, lines, rsigma, write

BRUTE_FORCE = """
title: Failed login
name: failed_login
logsource:
    product: windows
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Brute force
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 3
"""

SUMMARY = re.compile(
    r"Processed (?P<events>\d+) events, (?P<detections>\d+) detection matches,"
    r" (?P<correlations>\d+) correlation matches, (?P<bad>\d+) bad lines"
    r" in (?P<seconds>\d+\.\d\d) s \((?P<rate>\d+) events/s\)\.$"
)


def failed_login(second: int) -> dict:
    return {"EventID": 4625, "User": "alice", "@timestamp": f"2026-12-02T10:00:{second:02d}Z"}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    write(tmp_path / "rules" / "whoami.yml", WHOAMI)
    write(tmp_path / "rules" / "brute_force.yml", BRUTE_FORCE)
    return tmp_path / "rules"


def mixed_stream() -> str:
    """4 whoami detections, 1 brute-force correlation (from 3 failed logins), 2 quiet events, 2 bad
    lines and a blank one: 9 events in all."""
    events = [WHOAMI_EVENT, failed_login(1), QUIET_EVENT, WHOAMI_EVENT, failed_login(2)]
    events += [WHOAMI_EVENT, failed_login(3), QUIET_EVENT, WHOAMI_EVENT]
    text = [json.dumps(e) for e in events]
    text[2:2] = ['{"not json']
    text[6:6] = ["", "[1, 2]"]
    return "\n".join(text) + "\n"


def summary(stderr: str) -> dict[str, str]:
    last = stderr.rstrip("\n").splitlines()[-1]
    found = SUMMARY.search(last)
    assert found, f"no summary at the end of stderr:\n{stderr}"
    return found.groupdict()


def check_counts(proc: subprocess.CompletedProcess[str]) -> None:
    counts = summary(proc.stderr)
    assert {k: int(counts[k]) for k in ("events", "detections", "correlations", "bad")} == {
        "events": 9,
        "detections": 4,
        "correlations": 1,
        "bad": 2,
    }
    assert float(counts["seconds"]) < 60
    titles = [o["rule_title"] for o in lines(proc.stdout)]
    assert sorted(titles) == ["Brute force"] + ["Whoami Execution"] * 4


def test_a_file_ends_with_a_summary_line_on_a_pipe(rules, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text(mixed_stream(), encoding="utf-8")
    proc = rsigma("engine", "eval", "-r", rules, "--events", events)
    assert proc.returncode == 0, proc.stderr
    check_counts(proc)


def test_stdin_ends_with_a_summary_line(rules):
    proc = rsigma("engine", "eval", "-r", rules, stdin=mixed_stream())
    assert proc.returncode == 0, proc.stderr
    check_counts(proc)


def test_a_single_event_gets_a_summary_too(rules):
    proc = rsigma("engine", "eval", "-r", rules, "-e", json.dumps(WHOAMI_EVENT))
    assert proc.returncode == 0, proc.stderr
    assert summary(proc.stderr)["events"] == "1"
    assert summary(proc.stderr)["detections"] == "1"


def test_strict_exits_1_for_bad_lines_after_evaluating_every_line(rules):
    proc = rsigma("engine", "eval", "-r", rules, "--strict", stdin=mixed_stream())
    assert proc.returncode == 1, proc.stderr
    check_counts(proc)  # every good line still evaluated and written


def test_strict_exits_0_when_every_line_is_good(rules):
    good = "".join(json.dumps(e) + "\n" for e in (WHOAMI_EVENT, QUIET_EVENT))
    proc = rsigma("engine", "eval", "-r", rules, "--strict", stdin=good)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc.stderr)["bad"] == "0"


def eval_on_a_terminal(*args: str | Path) -> tuple[int, str]:
    """Run eval with its stderr on a pseudo-terminal; its exit code and everything it wrote there."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rsigma", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        cwd=ROOT,
    )
    os.close(terminal)
    written = b""
    try:
        while chunk := os.read(controller, 4096):
            written += chunk
    except OSError:  # EIO: every copy of the terminal's other end is closed
        pass
    finally:
        os.close(controller)
    return proc.wait(timeout=120), written.decode()


def test_progress_on_a_terminal_reaches_100_percent(rules, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text(mixed_stream() * 50, encoding="utf-8")
    code, written = eval_on_a_terminal("engine", "eval", "-r", rules, "--events", events)
    assert code == 0, written
    updates = re.findall(r"\r\s*(\d+)% ", written)
    assert updates and updates[-1] == "100", written
    final = written.replace("\r\n", "\n").rstrip("\n").split("\n")[-1]
    assert SUMMARY.search(final), written
    assert summary(written.replace("\r\n", "\n"))["events"] == str(9 * 50)
    # each bad line's message erases whatever progress line it lands on
    assert len(re.findall(r"\r\x1b\[Kline \d+: ", written)) == 2 * 50


def test_an_event_argument_that_is_not_a_json_object_is_a_usage_error(rules):
    proc = rsigma("engine", "eval", "-r", rules, "-e", "not json")
    assert proc.returncode == 2
    assert "--event: invalid JSON" in proc.stderr
    assert summary(proc.stderr)["bad"] == "1"
