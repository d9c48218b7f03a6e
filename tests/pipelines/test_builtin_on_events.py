"""The builtin pipelines on events in their schemas: Sysmon records, Elastic Common Schema documents and
Fibratus events."""

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

#: A Fibratus CreateProcess event, with Fibratus's filter field names (evt.name, ps.cmdline, ...).
FIBRATUS_EVENT = {
    "evt": {"name": "CreateProcess", "category": "process"},
    "ps": {
        "exe": "C:\\Windows\\System32\\vssadmin.exe",
        "cmdline": "vssadmin.exe delete shadows /all /quiet",
        "pe": {"file": {"name": "VSSADMIN.EXE"}},
        "parent": {"exe": "C:\\Windows\\System32\\cmd.exe"},
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


def test_fibratus_windows_pipeline_matches_fibratus_events_of_the_category_only():
    e = engine("fibratus_windows")
    assert [d.rule_title for d in e.evaluate(FIBRATUS_EVENT)] == ["Shadow copy deletion"]
    flat = {
        "evt.name": "CreateProcess",
        "ps.exe": "C:\\Windows\\System32\\vssadmin.exe",
        "ps.cmdline": "vssadmin.exe delete shadows /all /quiet",
    }
    assert [d.rule_title for d in e.evaluate(flat)] == ["Shadow copy deletion"]  # flat dotted keys too
    # the same process seen in another event (its termination) is not a process creation
    assert e.evaluate({**FIBRATUS_EVENT, "evt": {"name": "TerminateProcess"}}) == []
    assert e.evaluate({k: v for k, v in FIBRATUS_EVENT.items() if k != "evt"}) == []
    assert e.evaluate({**SYSMON_EVENT, "EventID": 1}) == []  # Sigma's field names are gone


def test_fibratus_windows_file_event_is_a_created_file_not_an_opened_one():
    rule = r"""
title: Script dropped in Startup
logsource: {product: windows, category: file_event}
detection:
    selection:
        TargetFilename|contains: '\Start Menu\Programs\Startup\'
        Image|endswith: '\wscript.exe'
    condition: selection
"""
    ruleset = apply_pipelines(parse_rules_text(rule), [load_pipeline("fibratus_windows")])
    e = Engine(ruleset, strict=True)
    created = {
        "evt": {"name": "CreateFile"},
        "file": {
            "path": "C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\x.vbs",
            "operation": "CREATE",
        },
        "ps": {"exe": "C:\\Windows\\System32\\wscript.exe"},
    }
    assert len(e.evaluate(created)) == 1
    assert e.evaluate({**created, "file": {**created["file"], "operation": "OPEN"}}) == []
    assert e.evaluate({**created, "evt": {"name": "DeleteFile"}}) == []


@pytest.mark.corpus
def test_fibratus_windows_on_sigmahq_process_creation(shared: Path):
    rule = (
        shared
        / "corpus/sigmahq/rules/windows/process_creation/proc_creation_win_susp_shadow_copies_deletion.yml"
    )
    if not rule.is_file():
        pytest.skip(f"{rule} not present")
    from rsigma.rules import load_rules

    e = Engine(apply_pipelines(load_rules(rule), [load_pipeline("fibratus_windows")]), strict=True)
    assert len(e.evaluate(FIBRATUS_EVENT)) == 1
    assert e.evaluate({**FIBRATUS_EVENT, "evt": {"name": "OpenProcess"}}) == []
