"""The builtin pipelines on events in their schemas: Sysmon records and Elastic Common Schema documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsigma.engine import Engine
from rsigma.pipelines import apply_pipelines, load_pipeline
from rsigma.rules import parse_rules_text

RULE = r"""
title: Shadow copy deletion
id: 5b8e2f5e-7c59-4b1e-9b1b-6f0a8e1c2d3f
logsource: {product: windows, category: process_creation}
detection:
    selection_img:
        - Image|endswith: '\vssadmin.exe'
        - OriginalFileName: VSSADMIN.EXE
    selection_cli:
        CommandLine|contains|all: [delete, shadows]
    condition: all of selection_*
"""
SYSMON_EVENT = {
    "EventID": 1,
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Image": "C:\\Windows\\System32\\vssadmin.exe",
    "OriginalFileName": "VSSADMIN.EXE",
    "CommandLine": "vssadmin.exe delete shadows /all /quiet",
}
ECS_EVENT = {
    "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon"},
    "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1},
    "process": {
        "executable": "C:\\Windows\\System32\\vssadmin.exe",
        "name": "vssadmin.exe",
        "command_line": "vssadmin.exe delete shadows /all /quiet",
        "pe": {"original_file_name": "VSSADMIN.EXE"},
    },
}


def engine(*pipelines: str) -> Engine:
    ruleset = apply_pipelines(parse_rules_text(RULE), [load_pipeline(p) for p in pipelines])
    assert not ruleset.errors
    return Engine(ruleset, strict=True)


def test_sysmon_pipeline_requires_the_sysmon_event_id():
    e = engine("sysmon")
    assert [d.rule_title for d in e.evaluate(SYSMON_EVENT)] == ["Shadow copy deletion"]
    assert e.evaluate({**SYSMON_EVENT, "EventID": 4688}) == []
    assert e.rules[0].rule.logsource.service == "sysmon"


def test_ecs_windows_pipeline_matches_ecs_documents():
    e = engine("ecs_windows")
    assert [d.rule_title for d in e.evaluate(ECS_EVENT)] == ["Shadow copy deletion"]
    assert e.evaluate(SYSMON_EVENT) == []  # Sigma's field names are gone
    benign = {**ECS_EVENT, "process": {**ECS_EVENT["process"], "command_line": "vssadmin list shadows"}}
    assert e.evaluate(benign) == []


@pytest.mark.corpus
def test_ecs_windows_on_sigmahq_process_creation(shared: Path):
    rule = (
        shared
        / "corpus/sigmahq/rules/windows/process_creation/proc_creation_win_susp_shadow_copies_deletion.yml"
    )
    if not rule.is_file():
        pytest.skip(f"{rule} not present")
    from rsigma.rules import load_rules

    e = Engine(apply_pipelines(load_rules(rule), [load_pipeline("ecs_windows")]), strict=True)
    assert len(e.evaluate(ECS_EVENT)) == 1
