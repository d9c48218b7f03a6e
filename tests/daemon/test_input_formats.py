"""--input-format through the real CLI: the events each format makes reach the rules (and, with
--include-event, the results) alike on both backends; json and cef lines that are not theirs, and auto's
lines that start as JSON but are not a JSON object, go to the DLQ; auto is the default; bad
--input-format/--syslog-tz/--syslog-strip-bom values exit as RSigma's; stdin:// and stdout://."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

SUDO = """
title: Sudo Usage
id: 00000000-0000-0000-0000-000000000099
level: low
logsource:
    product: linux
detection:
    keywords:
        - sudo
    condition: keywords
"""

FIELDS = """
title: Field match
id: 00000000-0000-0000-0000-000000000042
level: high
logsource:
    product: any
detection:
    syslog:
        hostname: web01
        appname: sudo
    logfmt:
        level: error
        msg|contains: disk full
    cef:
        deviceVendor: Security
        src: 10.0.0.1
    condition: 1 of them
"""

SYSLOG_LINE = "<38>Apr 25 14:30:00 web01 sudo: admin : TTY=pts/0 ; COMMAND=/bin/bash"
YEAR = datetime.now(UTC).year


@pytest.fixture
def format_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text("---\n".join(textwrap.dedent(t).lstrip() for t in (SUDO, FIELDS)))
    return path


def test_syslog_keyword_rule_output_is_rsigmas(daemon, format_rules):
    """RSigma's `daemon_syslog_input_format` snapshot, byte for byte (the field rule also fires)."""
    d = daemon("-r", format_rules, "--input-format", "syslog", stdin=SYSLOG_LINE.encode() + b"\n")
    assert d.wait_exit() == 0, d.stderr()
    assert d.stdout_lines()[0] == (
        '{"rule_title":"Sudo Usage","rule_id":"00000000-0000-0000-0000-000000000099","level":"low",'
        '"tags":[],"matched_selections":["keywords"],"matched_fields":[]}'
    )
    assert [r["rule_title"] for r in d.results()] == ["Sudo Usage", "Field match"]


@pytest.mark.parametrize(
    ("flags", "line", "event"),
    [
        pytest.param(
            ("--input-format", "syslog", "--syslog-tz", "+05:30"),
            SYSLOG_LINE,
            {
                "timestamp": f"{YEAR}-04-25T14:30:00+05:30",
                "hostname": "web01",
                "appname": "sudo",
                "facility": "LOG_AUTH",
                "severity": "SEV_INFO",
                "_raw": "admin : TTY=pts/0 ; COMMAND=/bin/bash",
            },
            id="syslog",
        ),
        pytest.param(
            ("--input-format", "auto", "--syslog-strip-bom", "false"),
            "<38>1 2024-01-15T10:30:00Z web01 sudo 42 - - \ufeffsudo -i",
            {
                "timestamp": "2024-01-15T10:30:00+00:00",
                "hostname": "web01",
                "appname": "sudo",
                "procid": "42",
                "facility": "LOG_AUTH",
                "severity": "SEV_INFO",
                "_raw": "\ufeffsudo -i",
            },
            id="auto-syslog",
        ),
        pytest.param(
            ("--input-format", "logfmt"),
            'level=error msg="disk full on /dev/sda1" host=web01',
            {"level": "error", "msg": "disk full on /dev/sda1", "host": "web01"},
            id="logfmt",
        ),
        pytest.param(
            ("--input-format", "cef"),
            "CEF:0|Security|IDS|1.0|100|Attack|9|src=10.0.0.1 msg=port scan\\=yes",
            {
                "cef_version": "0",
                "deviceVendor": "Security",
                "deviceProduct": "IDS",
                "deviceVersion": "1.0",
                "signatureId": "100",
                "name": "Attack",
                "severity": "9",
                "src": "10.0.0.1",
                "msg": "port scan=yes",
            },
            id="cef",
        ),
        pytest.param(
            ("--input-format", "plain"),
            "sudo: 3 incorrect password attempts",
            {"_raw": "sudo: 3 incorrect password attempts"},
            id="plain",
        ),
    ],
)
def test_each_format_shapes_the_event_rules_see(daemon, format_rules, flags, line, event):
    d = daemon("-r", format_rules, "--include-event", *flags, stdin=line.encode() + b"\n")
    assert d.wait_exit() == 0, d.stderr()
    results = d.results()
    assert results, d.stderr()
    assert all(r["event"] == event for r in results)


def test_lines_not_of_their_format_go_to_the_dlq(daemon, format_rules, tmp_path, jsonl):
    dlq = tmp_path / "dlq.ndjson"
    cef = "CEF:0|Security|IDS|1.0|100|Attack|9|src=10.0.0.1"
    d = daemon(
        "-r", format_rules, "--input-format", "cef", "--dlq", f"file://{dlq}",
        stdin=f"not cef at all\nCEF:0|Security|IDS\n{cef}\n".encode(),
    )  # fmt: skip
    assert d.wait_exit() == 0, d.stderr()
    assert [r["rule_title"] for r in d.results()] == ["Field match"]
    assert [(e["original_event"], e["error"]) for e in jsonl(dlq)] == [
        ("not cef at all", "invalid CEF: input does not contain a CEF header"),
        ("CEF:0|Security|IDS", "invalid CEF: CEF header requires 7 pipe-delimited fields"),
    ]

    auto_dlq = tmp_path / "auto-dlq.ndjson"
    d = daemon(
        "-r", format_rules, "--input-format", "auto", "--dlq", f"file://{auto_dlq}",
        stdin=b'{"broken json\nplain sudo line\n[1, 2]\n',
    )  # fmt: skip
    assert d.wait_exit() == 0, d.stderr()
    # Unlike RSigma's auto, a truncated JSON event is not evaluated as plain text, where no field rule
    # could match it: it is dead-lettered as --input-format json would.
    assert [r["rule_title"] for r in d.results()] == ["Sudo Usage"]
    assert [(e["original_event"], e["error"].split(":")[0]) for e in jsonl(auto_dlq)] == [
        ('{"broken json', "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
    ]


def test_auto_is_the_default_and_json_dead_letters_other_lines(daemon, format_rules, tmp_path, jsonl):
    dlq = tmp_path / "dlq.ndjson"
    stdin = f'{SYSLOG_LINE}\n{{"hostname": "web01", "appname": "sudo"}}\n'.encode()
    d = daemon("-r", format_rules, "--dlq", f"file://{dlq}", stdin=stdin)
    assert d.wait_exit() == 0, d.stderr()
    assert sorted(r["rule_title"] for r in d.results()) == [
        "Field match",
        "Field match",
        "Sudo Usage",
        "Sudo Usage",
    ]
    assert jsonl(dlq) == []

    json_dlq = tmp_path / "json-dlq.ndjson"
    d = daemon("-r", format_rules, "--input-format", "json", "--dlq", f"file://{json_dlq}", stdin=stdin)
    assert d.wait_exit() == 0, d.stderr()
    assert sorted(r["rule_title"] for r in d.results()) == ["Field match", "Sudo Usage"]
    assert [e["error"].split(":")[0] for e in jsonl(json_dlq)] == ["invalid JSON"]


def test_stdin_and_stdout_url_spellings(daemon, format_rules, tmp_path):
    d = daemon(
        "-r", format_rules, "--input", "stdin://", "--output", "stdout://", "--dlq", "stdout://",
        stdin=b'{"hostname": "web01", "appname": "sudo"}\n{"nope\n',
    )  # fmt: skip
    assert d.wait_exit() == 0, d.stderr()
    results = d.results()
    # results and dead letters share stdout, each in its own order
    assert sorted(r.get("rule_title") or r["original_event"] for r in results) == [
        "Field match",
        "Sudo Usage",
        '{"nope',
    ]


@pytest.mark.single_backend
@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (("--input-format", "xml"), 3, "Unknown input format: 'xml'\nSupported formats: auto, json, syslog"),
        (("--syslog-tz", "+5"), 3, "Invalid timezone offset: '+5'"),
        (("--syslog-strip-bom", "maybe"), 2, "--syslog-strip-bom 'maybe': expected true or false"),
    ],
)
def test_bad_format_flags_exit_as_rsigma(run_daemon, format_rules, flags, code, message):
    # RSigma's text, as --log-format text prints it (with JSON logs it is a critical record's message,
    # tests/cli/test_cli_conventions.py)
    done = run_daemon("-r", format_rules, *flags, "--log-format", "text")
    assert done.returncode == code, done.stderr
    assert message in done.stderr


def engine_eval(
    *args: str | Path, stdin: bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "rsigma", "engine", "eval", *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.single_backend
def test_engine_eval_takes_the_format_flags(format_rules):
    done = engine_eval(
        "-r", format_rules, "--input-format", "syslog", "--syslog-tz", "Z", "--include-event",
        stdin=SYSLOG_LINE.encode() + b"\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["rule_title"] for r in results] == ["Sudo Usage", "Field match"]
    assert results[0]["event"]["timestamp"] == f"{YEAR}-04-25T14:30:00+00:00"
    done = engine_eval("-r", format_rules, "--input-format", "cef", stdin=b"not cef\n")
    assert b"line 1: invalid CEF: input does not contain a CEF header" in done.stderr
    done = engine_eval("-r", format_rules, "--syslog-tz", "nowhere", stdin=b"")
    assert (done.returncode, done.stderr.decode().splitlines()[0]) == (
        3,
        "error: Invalid timezone offset: 'nowhere' (expected ±HH:MM, UTC or Z)",
    )


@pytest.mark.single_backend
def test_format_flags_from_their_variables(format_rules):
    env = {"RSIGMA_INPUT_FORMAT": "syslog", "RSIGMA_SYSLOG_TZ": "-02:00", "RSIGMA_SYSLOG_STRIP_BOM": "false"}
    line = "<38>Apr 25 14:30:00 web01 sudo: \ufeffadmin"
    done = engine_eval("-r", format_rules, "--include-event", stdin=line.encode() + b"\n", env=env)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.splitlines()[0])["event"]
    assert (event["timestamp"], event["_raw"]) == (f"{YEAR}-04-25T14:30:00-02:00", "\ufeffadmin")
