"""The command line: `rsigma engine eval`, `rsigma rule validate` and the help screens."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import (
    BROKEN,
    EVIL_EVENT,
    NOMETA,
    QUIET_EVENT,
    WHOAMI,
    WHOAMI_EVENT,
    lines,
    rsigma,
    write,
)

KEYS = ["rule_title", "rule_id", "level", "tags", "matched_selections", "matched_fields"]


def mentions(text: str, number: int) -> bool:
    return re.search(rf"(?<![\d.]){number}(?![\d])", text) is not None


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    write(tmp_path / "rules" / "whoami.yml", WHOAMI)
    write(tmp_path / "rules" / "nested" / "evil.yml", NOMETA)
    return tmp_path / "rules"


@pytest.fixture
def whoami_rule(tmp_path: Path) -> Path:
    return write(tmp_path / "whoami.yml", WHOAMI)


def test_eval_single_event_prints_one_compact_json_line(whoami_rule):
    proc = rsigma("engine", "eval", "-r", whoami_rule, "-e", json.dumps(WHOAMI_EVENT))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) == 1
    obj = json.loads(out[0])
    assert list(obj) == KEYS
    assert out[0] == json.dumps(obj, separators=(",", ":"))
    assert obj["rule_title"] == "Whoami Execution"
    assert obj["rule_id"] == "11111111-2222-4333-8444-555555555555"
    assert obj["level"] == "high"
    assert obj["tags"] == ["attack.discovery"]
    assert obj["matched_selections"] == ["selection"]
    assert {"field": "Image", "value": WHOAMI_EVENT["Image"]} in obj["matched_fields"]


def test_eval_missing_metadata_is_null_and_empty_tags(tmp_path):
    rule = write(tmp_path / "evil.yml", NOMETA)
    proc = rsigma("engine", "eval", "-r", rule, "-e", json.dumps(EVIL_EVENT))
    assert proc.returncode == 0, proc.stderr
    (obj,) = lines(proc.stdout)
    assert list(obj) == KEYS
    assert obj["rule_id"] is None
    assert obj["level"] is None
    assert obj["tags"] == []
    assert '"rule_id":null' in proc.stdout
    assert '"tags":[]' in proc.stdout


def test_eval_no_match_prints_nothing(rules):
    proc = rsigma("engine", "eval", "-r", rules, "-e", json.dumps(QUIET_EVENT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_eval_directory_one_line_per_detection(rules):
    event = {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami evil"}
    proc = rsigma("engine", "eval", "-r", rules, "-e", json.dumps(event))
    assert proc.returncode == 0, proc.stderr
    assert sorted(o["rule_title"] for o in lines(proc.stdout)) == ["Evil CommandLine", "Whoami Execution"]


def test_eval_include_event_appends_the_event(whoami_rule):
    proc = rsigma("engine", "eval", "-r", whoami_rule, "-e", json.dumps(WHOAMI_EVENT), "--include-event")
    assert proc.returncode == 0, proc.stderr
    (obj,) = lines(proc.stdout)
    assert list(obj) == [*KEYS, "event"]
    assert obj["event"] == WHOAMI_EVENT


def test_eval_include_event_writes_deeply_nested_events(whoami_rule):
    """orjson writes 254 levels at most; deeper matching events are still written, not a crash."""
    deep: dict = dict(WHOAMI_EVENT)
    for _ in range(400):
        deep = {**WHOAMI_EVENT, "inner": deep}
    proc = rsigma("engine", "eval", "-r", whoami_rule, "--include-event", stdin=json.dumps(deep) + "\n")
    assert proc.returncode == 0, proc.stderr
    (obj,) = lines(proc.stdout)
    assert obj["event"] == deep


def test_eval_without_include_event_has_no_event_key(whoami_rule):
    proc = rsigma("engine", "eval", "-r", whoami_rule, "-e", json.dumps(WHOAMI_EVENT))
    (obj,) = lines(proc.stdout)
    assert "event" not in obj


def ndjson(*events: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_eval_events_file(rules, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text(ndjson(WHOAMI_EVENT, QUIET_EVENT, EVIL_EVENT), encoding="utf-8")
    proc = rsigma("engine", "eval", "-r", rules, "--events", events)
    assert proc.returncode == 0, proc.stderr
    assert [o["rule_title"] for o in lines(proc.stdout)] == ["Whoami Execution", "Evil CommandLine"]


def test_eval_event_at_file_reads_the_file_as_rsigma_does(rules, tmp_path):
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(e) for e in (WHOAMI_EVENT, EVIL_EVENT, QUIET_EVENT)) + "\n")
    proc = rsigma("engine", "eval", "-r", rules, "-e", f"@{events}")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert "Processed 3 events, 2 detection matches" in proc.stderr


def test_eval_event_at_a_missing_file_is_a_usage_error(rules, tmp_path):
    proc = rsigma("engine", "eval", "-r", rules, "-e", f"@{tmp_path}/none.ndjson")
    assert proc.returncode == 2
    assert "Event file not found" in proc.stderr


def test_eval_pretty_indents_each_result(whoami_rule):
    proc = rsigma("engine", "eval", "-r", whoami_rule, "-e", json.dumps(WHOAMI_EVENT), "--pretty")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{\n  "rule_title": "Whoami Execution"')
    assert json.loads(proc.stdout)["matched_fields"][0] == {"field": "Image", "value": WHOAMI_EVENT["Image"]}


@pytest.mark.parametrize(("event", "code"), [(WHOAMI_EVENT, 1), (QUIET_EVENT, 0)])
def test_eval_fail_on_detection_exits_1_only_when_something_fired(whoami_rule, event, code):
    proc = rsigma("engine", "eval", "-r", whoami_rule, "-e", json.dumps(event), "--fail-on-detection")
    assert proc.returncode == code, proc.stderr


def test_eval_reads_ndjson_from_stdin(rules):
    proc = rsigma(
        "engine", "eval", "-r", rules, stdin=ndjson(EVIL_EVENT, QUIET_EVENT, WHOAMI_EVENT, EVIL_EVENT)
    )
    assert proc.returncode == 0, proc.stderr
    titles = [o["rule_title"] for o in lines(proc.stdout)]
    assert titles == ["Evil CommandLine", "Whoami Execution", "Evil CommandLine"]


def stream_with_bad_lines() -> tuple[str, int]:
    """30 lines; lines 17, 23 and 24 are not JSON objects. Returns the text and the number of detections."""
    out, hits = [], 0
    for number in range(1, 31):
        if number == 17:
            out.append("this is not json")
        elif number == 23:
            out.append("[1, 2]")
        elif number == 24:
            out.append('"just a string"')
        elif number % 4 == 0:
            out.append(json.dumps(WHOAMI_EVENT))
            hits += 1
        else:
            out.append(json.dumps(QUIET_EVENT))
    return "\n".join(out) + "\n", hits


def check_bad_lines_report(proc: subprocess.CompletedProcess[str], hits: int, tmp_path: Path) -> None:
    assert proc.returncode == 0, proc.stderr
    assert [o["rule_title"] for o in lines(proc.stdout)] == ["Whoami Execution"] * hits
    stderr = proc.stderr.replace(str(tmp_path), "<tmp>")
    assert mentions(stderr, 17), stderr
    assert mentions(stderr, 23), stderr
    assert mentions(stderr, 24), stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert mentions(last, 3), stderr


def test_eval_stdin_bad_lines_are_reported_and_skipped(whoami_rule, tmp_path):
    text, hits = stream_with_bad_lines()
    proc = rsigma("engine", "eval", "-r", whoami_rule, stdin=text)
    check_bad_lines_report(proc, hits, tmp_path)


def test_eval_events_file_bad_lines_are_reported_and_skipped(whoami_rule, tmp_path):
    text, hits = stream_with_bad_lines()
    events = tmp_path / "events.ndjson"
    events.write_text(text, encoding="utf-8")
    proc = rsigma("engine", "eval", "-r", whoami_rule, "--events", events)
    check_bad_lines_report(proc, hits, tmp_path)


def test_eval_directory_with_broken_file_warns_and_keeps_good_rules(rules):
    write(rules / "zz_broken.yml", BROKEN)
    proc = rsigma("engine", "eval", "-r", rules, "-e", json.dumps(WHOAMI_EVENT))
    assert proc.returncode == 0, proc.stderr
    assert "zz_broken.yml" in proc.stderr
    assert [o["rule_title"] for o in lines(proc.stdout)] == ["Whoami Execution"]


def test_eval_single_broken_rule_file_exits_2(tmp_path):
    rule = write(tmp_path / "broken.yml", BROKEN)
    proc = rsigma("engine", "eval", "-r", rule, "-e", json.dumps(EVIL_EVENT))
    assert proc.returncode == 2
    assert proc.stdout.strip() == ""
    assert proc.stderr.strip()


def test_rule_validate_all_good(rules):
    proc = rsigma("rule", "validate", rules)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mentions((proc.stdout + proc.stderr).replace(str(rules), "<rules>"), 2)


def test_rule_validate_reports_each_failure(rules):
    write(rules / "third.yml", NOMETA.replace("Evil CommandLine", "Third Rule"))
    write(rules / "bad" / "broken_one.yml", BROKEN)
    write(rules / "broken_two.yml", "title: [unclosed\n")
    proc = rsigma("rule", "validate", rules)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "broken_one.yml" in output
    assert "bogusmod" in output
    assert "broken_two.yml" in output
    assert mentions(output.replace(str(rules), "<rules>"), 3), output


@pytest.mark.parametrize(
    "args", [["--help"], ["engine", "--help"], ["rule", "--help"], ["engine", "eval", "--help"]]
)
def test_help_exits_zero(args):
    proc = rsigma(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_a_kubernetes_configmap_mount_loads_each_rule_once(tmp_path):
    # A ConfigMap volume: the files in ..<timestamp>/, `..data` pointing there, and a symlink per file.
    mount = tmp_path / "rules"
    data = mount / "..2026_12_02_08_00_00.123456789"
    data.mkdir(parents=True)
    (data / "whoami.yml").write_text(WHOAMI)
    (mount / "..data").symlink_to(data.name)
    (mount / "whoami.yml").symlink_to("..data/whoami.yml")

    done = rsigma("engine", "eval", "-r", mount, "-e", json.dumps(WHOAMI_EVENT))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["rule_title"] for line in done.stdout.splitlines()] == ["Whoami Execution"]
    assert "loaded 1 rules" in done.stderr
    assert "used again" not in done.stderr


def test_a_rule_id_used_twice_is_reported(tmp_path):
    (tmp_path / "a.yml").write_text(WHOAMI)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "b.yml").write_text(WHOAMI)

    done = rsigma("engine", "eval", "-r", tmp_path, "-e", json.dumps(WHOAMI_EVENT))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2  # both copies run: the warning says why
    [warning] = [line for line in done.stderr.splitlines() if "used again" in line]
    assert warning.startswith("warning: rule id 11111111-2222-4333-8444-555555555555 is used again at ")
    assert str(tmp_path / "copy" / "b.yml") in warning and str(tmp_path / "a.yml") in warning

    validated = rsigma("rule", "validate", tmp_path)
    assert "used again" in validated.stdout
