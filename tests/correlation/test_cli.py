"""`rsigma engine eval` with correlation rules: output shape and the correlation flags, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    "rule_title",
    "rule_id",
    "level",
    "tags",
    "correlation_type",
    "group_key",
    "aggregated_value",
    "timespan_secs",
]
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

RULES = """
title: Failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Brute force
id: 0e95725d-7320-415d-80f7-004da920fc11
level: high
tags:
    - attack.credential_access
    - attack.t1110
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


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def rsigma(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rsigma", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=120,
    )


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "mr_brute_force.yml"
    path.write_text(textwrap.dedent(RULES).lstrip(), encoding="utf-8")
    return path


def events_file(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def failed(t: float, user: str = "alice", **extra: Any) -> dict[str, Any]:
    return {"EventID": 4625, "User": user, "@timestamp": at(t), **extra}


def eval_lines(rules: Path, events: Path, *flags: str) -> list[dict[str, Any]]:
    proc = rsigma("engine", "eval", "-r", rules, "--events", events, *flags)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_correlation_line_has_the_exact_keys_in_order(rules, tmp_path):
    events = events_file(tmp_path, [failed(0), failed(10, "bob"), failed(20), failed(30)])
    proc = rsigma("engine", "eval", "-r", rules, "--events", events)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1  # the failed_login detections are not output (generate is false)
    obj = json.loads(lines[0])
    assert list(obj) == KEYS
    assert obj == {
        "rule_title": "Brute force",
        "rule_id": "0e95725d-7320-415d-80f7-004da920fc11",
        "level": "high",
        "tags": ["attack.credential_access", "attack.t1110"],
        "correlation_type": "event_count",
        "group_key": [["User", "alice"]],
        "aggregated_value": 3.0,
        "timespan_secs": 600,
    }
    assert isinstance(obj["aggregated_value"], float)
    assert lines[0] == json.dumps(obj, separators=(",", ":"))


def test_correlation_and_detection_lines_in_one_run(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(
        textwrap.dedent(RULES).lstrip().replace("level: high\n", "level: high\ngenerate: true\n"),
        encoding="utf-8",
    )
    events = events_file(tmp_path, [failed(0), failed(1), failed(2)])
    lines = eval_lines(rules, events)
    assert [o["rule_title"] for o in lines] == ["Failed login", "Failed login", "Failed login", "Brute force"]
    assert "correlation_type" not in lines[0]
    assert list(lines[-1]) == KEYS


SIX = [failed(1.5 * i) for i in range(6)]  # 0, 1.5, 3, 4.5, 6, 7.5


@pytest.mark.parametrize(
    ("flags", "counts"),
    [
        pytest.param([], [3.0, 4.0, 5.0, 6.0], id="default-alert"),
        pytest.param(["--action", "alert"], [3.0, 4.0, 5.0, 6.0], id="alert"),
        pytest.param(["--suppress", "5m"], [3.0], id="suppress-5m"),
        pytest.param(["--suppress", "2s"], [3.0, 5.0], id="suppress-2s"),  # shown at 3 and 6
        pytest.param(["--action", "reset"], [3.0, 3.0], id="reset"),
        pytest.param(["--suppress", "5m", "--action", "reset"], [3.0], id="suppress-and-reset"),
    ],
)
def test_suppress_and_action_flags(rules, tmp_path, flags, counts):
    lines = eval_lines(rules, events_file(tmp_path, SIX), *flags)
    assert [o["aggregated_value"] for o in lines] == counts


def test_timestamp_field_flag(rules, tmp_path):
    # Every event has the same @timestamp; `ts` spreads them 400 s apart (more than 10m for the 1st and 3rd).
    events = events_file(tmp_path, [failed(0, ts=int(T0.timestamp()) + 400 * i) for i in range(3)])
    assert [o["aggregated_value"] for o in eval_lines(rules, events)] == [3.0]
    assert eval_lines(rules, events, "--timestamp-field", "ts") == []


def test_timestamp_field_flag_is_tried_before_the_defaults(rules, tmp_path):
    base = int(T0.timestamp() * 1000)
    events = [failed(0, ts=base), failed(0), failed(0, ts=base + 1000)]  # ms epoch; the 2nd falls back
    lines = eval_lines(rules, events_file(tmp_path, events), "--timestamp-field", "ts")
    assert [o["aggregated_value"] for o in lines] == [3.0]


def test_timestamp_field_flag_repeatable_in_order(rules, tmp_path):
    t = int(T0.timestamp())
    events = [
        {"EventID": 4625, "User": "alice", "first": t, "second": t + 5},
        {"EventID": 4625, "User": "alice", "second": t + 10},
        {"EventID": 4625, "User": "alice", "first": t + 700, "second": t + 20},
    ]
    path = events_file(tmp_path, events)
    # first, then second: t, t+10, t+700: the 3rd is more than 10m after the 1st.
    assert eval_lines(rules, path, "--timestamp-field", "first", "--timestamp-field", "second") == []
    # second, then first: t+5, t+10, t+20.
    lines = eval_lines(rules, path, "--timestamp-field", "second", "--timestamp-field", "first")
    assert [o["aggregated_value"] for o in lines] == [3.0]


def test_late_hits_are_reported_on_stderr(rules, tmp_path):
    events = events_file(tmp_path, [failed(1000), failed(0), failed(1), failed(1001), failed(1002)])
    proc = rsigma("engine", "eval", "-r", rules, "--events", events)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["aggregated_value"] for line in proc.stdout.splitlines()] == [3.0]
    assert "2 late" in proc.stderr


def test_timestamp_fallback_skip_flag(rules, tmp_path):
    events = events_file(tmp_path, [{"EventID": 4625, "User": "alice"}] * 5)
    assert len(eval_lines(rules, events)) == 3  # wallclock: all at about now
    assert eval_lines(rules, events, "--timestamp-fallback", "skip") == []


def test_max_state_entries_flag_reports_evictions(rules, tmp_path):
    users = ["u1", "u2", "u3", "u1", "u2", "u3", "u1", "u2", "u3"]
    events = events_file(tmp_path, [failed(i, u) for i, u in enumerate(users)])
    assert [o["group_key"] for o in eval_lines(rules, events)] == [
        [["User", "u1"]],
        [["User", "u2"]],
        [["User", "u3"]],
    ]
    proc = rsigma("engine", "eval", "-r", rules, "--events", events, "--max-state-entries", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # each user is evicted before its next failure
    assert "evicted" in proc.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--action", "explode"],
        ["--timestamp-fallback", "never"],
        ["--suppress", "soon"],
        ["--max-state-entries", "0"],
    ],
    ids=str,
)
def test_bad_correlation_flags_are_usage_errors(rules, tmp_path, flags):
    proc = rsigma("engine", "eval", "-r", rules, "--events", events_file(tmp_path, SIX), *flags)
    assert proc.returncode == 2
    assert proc.stdout == ""


def test_unknown_reference_is_a_rule_error(tmp_path):
    rules = tmp_path / "broken.yml"
    rules.write_text(
        textwrap.dedent(RULES).lstrip().replace("- failed_login", "- no_such_rule"), encoding="utf-8"
    )
    proc = rsigma("engine", "eval", "-r", rules, "--events", events_file(tmp_path, SIX))
    assert proc.returncode != 0
    assert "no_such_rule" in proc.stderr
    assert "Brute force" in proc.stderr


# ---- event inclusion and group caps ------------------------------------------------------------

NUMBERED = [failed(i, EventRecordID=i) for i in range(5)]


def test_correlation_event_mode_full_adds_the_event_bodies(rules, tmp_path):
    lines = eval_lines(rules, events_file(tmp_path, NUMBERED), "--correlation-event-mode", "full")
    assert [list(o) for o in lines] == [[*KEYS, "events"]] * 3
    assert lines[0]["events"] == NUMBERED[:3]
    assert lines[-1]["events"] == NUMBERED


def test_correlation_event_mode_refs_adds_time_and_id(rules, tmp_path):
    lines = eval_lines(rules, events_file(tmp_path, NUMBERED), "--correlation-event-mode", "refs")
    assert [list(o) for o in lines] == [[*KEYS, "event_refs"]] * 3
    epoch = int(T0.timestamp())
    assert lines[0]["event_refs"] == [{"timestamp": epoch + i, "id": str(i)} for i in range(3)]


def test_correlation_event_mode_none_is_the_default(rules, tmp_path):
    events = events_file(tmp_path, NUMBERED)
    assert eval_lines(rules, events, "--correlation-event-mode", "none") == eval_lines(rules, events)
    assert all(list(o) == KEYS for o in eval_lines(rules, events))


def test_max_correlation_events_keeps_the_most_recent(rules, tmp_path):
    flags = ("--correlation-event-mode", "refs", "--max-correlation-events", "2")
    lines = eval_lines(rules, events_file(tmp_path, NUMBERED), *flags)
    assert [[r["id"] for r in o["event_refs"]] for o in lines] == [["1", "2"], ["2", "3"], ["3", "4"]]


def test_max_group_entries_caps_the_window_and_is_reported(rules, tmp_path):
    proc = rsigma(
        "engine", "eval", "-r", rules, "--events", events_file(tmp_path, NUMBERED), "--max-group-entries", "3"
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["aggregated_value"] for line in proc.stdout.splitlines()] == [3.0, 3.0, 3.0]
    assert "2 entries over --max-group-entries dropped" in proc.stderr


def test_correlation_event_mode_attribute_overrides_the_flag(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        textwrap.dedent(RULES)
        .lstrip()
        .replace("level: high\n", "level: high\nrsigma.correlation_event_mode: refs\n"),
        encoding="utf-8",
    )
    lines = eval_lines(path, events_file(tmp_path, NUMBERED), "--correlation-event-mode", "full")
    assert "event_refs" in lines[0] and "events" not in lines[0]


def test_bad_correlation_event_mode_attribute_is_a_rule_error(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        textwrap.dedent(RULES)
        .lstrip()
        .replace("level: high\n", "level: high\nrsigma.max_group_entries: lots\n"),
        encoding="utf-8",
    )
    proc = rsigma("engine", "eval", "-r", path, "--events", events_file(tmp_path, NUMBERED))
    assert proc.returncode == 2
    assert "rsigma.max_group_entries" in proc.stderr and "Brute force" in proc.stderr


def test_unknown_correlation_event_mode_exits_3(rules, tmp_path):
    proc = rsigma(
        "engine",
        "eval",
        "-r",
        rules,
        "--events",
        events_file(tmp_path, SIX),
        "--correlation-event-mode",
        "all",
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "--correlation-event-mode" in proc.stderr and "'all'" in proc.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--max-correlation-events", "0"],
        ["--max-correlation-events", "-1"],
        ["--max-group-entries", "0"],
        ["--max-group-entries", "many"],
    ],
    ids=str,
)
def test_bad_event_caps_are_usage_errors(rules, tmp_path, flags):
    proc = rsigma("engine", "eval", "-r", rules, "--events", events_file(tmp_path, SIX), *flags)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert flags[0] in proc.stderr


def test_correlation_event_mode_from_its_environment_variable(rules, tmp_path):
    events = events_file(tmp_path, NUMBERED)
    proc = subprocess.run(
        [sys.executable, "-m", "rsigma", "engine", "eval", "-r", str(rules), "--events", str(events)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "RSIGMA_CORRELATION_EVENT_MODE": "refs"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "event_refs" in json.loads(proc.stdout.splitlines()[0])


def test_full_mode_keeps_events_deeper_than_orjson_writes(rules, tmp_path):
    """orjson writes 254 levels at most: a deeper event is still kept and written, not a crash; one too
    deep to write at all is a bad line (dead-lettered in the daemon), and the rest go on."""

    def nested(levels: int) -> str:
        return '{"in":' * levels + '{"leaf":true}' + "}" * levels

    def line(t: float, levels: int) -> str:
        return json.dumps(failed(t))[:-1] + f', "nest": {nested(levels)}}}\n'

    path = tmp_path / "deep.ndjson"
    path.write_text(
        line(0, 400) + line(1, 1010) + json.dumps(failed(2)) + "\n" + json.dumps(failed(3)) + "\n"
    )
    proc = rsigma("engine", "eval", "-r", rules, "--events", path, "--correlation-event-mode", "full")
    assert proc.returncode == 0, proc.stderr
    (obj,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["@timestamp"] for e in obj["events"]] == [at(0), at(2), at(3)]
    assert json.dumps(obj["events"][0]["nest"], separators=(",", ":")) == nested(400)
    assert "line 2: event nested too deeply to write its results" in proc.stderr
