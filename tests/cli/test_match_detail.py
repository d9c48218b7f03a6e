"""`--match-detail off|summary|full` on `engine eval`: what each detection's matched_fields say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import rsigma, write

ENCODED = r"""
title: PS Encoded
id: ps-enc
logsource:
    product: windows
    category: process_creation
detection:
    selection_img:
        Image|endswith: \powershell.exe
    selection_args:
        CommandLine|contains: -enc
    keywords:
        - FromBase64String
    condition: selection_img and selection_args and keywords
level: high
"""
ABSENT = """
title: No image
id: no-image
logsource:
    category: process_creation
detection:
    selection:
        Image: null
        EventID: [1, 4688]
        User|neq: SYSTEM
        CommandLine|re: '(?i)^whoami'
    condition: selection
level: low
"""
POWERSHELL = {
    "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "CommandLine": "powershell -nop -enc ZWNobwo= ; FromBase64String(x)",
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    write(tmp_path / "rules" / "encoded.yml", ENCODED)
    write(tmp_path / "rules" / "absent.yml", ABSENT)
    return tmp_path / "rules"


def matched_fields(rules: Path, event: dict, *flags: str) -> list[dict]:
    proc = rsigma("engine", "eval", "-r", rules, "-e", json.dumps(event), *flags)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    return json.loads(line)["matched_fields"]


def test_off_is_the_default_and_keeps_field_and_value_only(rules):
    expected = [
        {"field": "Image", "value": POWERSHELL["Image"]},
        {"field": "CommandLine", "value": POWERSHELL["CommandLine"]},
    ]
    assert matched_fields(rules, POWERSHELL) == expected
    assert matched_fields(rules, POWERSHELL, "--match-detail", "off") == expected


def test_summary_names_selection_matcher_and_case_and_reports_keyword_matches(rules):
    assert matched_fields(rules, POWERSHELL, "--match-detail", "summary") == [
        {
            "field": "Image",
            "value": POWERSHELL["Image"],
            "selection": "selection_img",
            "matcher": "endswith",
            "case_sensitive": False,
        },
        {
            "field": "CommandLine",
            "value": POWERSHELL["CommandLine"],
            "selection": "selection_args",
            "matcher": "contains",
            "case_sensitive": False,
        },
        {
            "field": "keyword",
            "value": POWERSHELL["CommandLine"],
            "selection": "keywords",
            "matcher": "keyword",
            "case_sensitive": False,
        },
    ]


def test_full_adds_the_pattern(rules):
    fields = matched_fields(rules, POWERSHELL, "--match-detail", "full")
    assert [(f["matcher"], f["pattern"]) for f in fields] == [
        ("endswith", "\\powershell.exe"),
        ("contains", "-enc"),
        ("keyword", "FromBase64String"),
    ]


def test_absence_lists_negation_and_regex_are_reported(rules):
    event = {"EventID": 4688, "User": "bob", "CommandLine": "WHOAMI /all"}
    assert matched_fields(rules, event) == [
        {"field": "EventID", "value": 4688},
        {"field": "CommandLine", "value": "WHOAMI /all"},
    ]
    assert matched_fields(rules, event, "--match-detail", "full") == [
        {"field": "Image", "value": None, "selection": "selection", "matcher": "null"},
        {
            "field": "EventID",
            "value": 4688,
            "selection": "selection",
            "matcher": "one_of",
            "pattern": "= 1, = 4688",
        },
        {
            "field": "User",
            "value": "bob",
            "selection": "selection",
            "matcher": "exact",
            "pattern": "SYSTEM",
            "case_sensitive": False,
            "negated": True,
        },
        {
            "field": "CommandLine",
            "value": "WHOAMI /all",
            "selection": "selection",
            "matcher": "regex",
            "pattern": "(?i)^whoami",
        },
    ]


def test_an_unknown_level_is_a_usage_error(rules):
    proc = rsigma("engine", "eval", "-r", rules, "-e", "{}", "--match-detail", "verbose")
    assert proc.returncode == 2
    assert "expected off, summary or full" in " ".join(proc.stderr.replace("│", " ").split())
