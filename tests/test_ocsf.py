"""The OCSF Detection Finding mapping of native results (rsigma/ocsf.py), as RSigma maps them."""

from __future__ import annotations

import json

import pytest

from rsigma import __version__
from rsigma.ocsf import attacks, detection_finding
from rsigma.output_format import line_format
from tests.support.ocsf import detection_finding_problems

DETECTION = {
    "rule_title": "Suspicious PowerShell",
    "rule_id": "rule-1",
    "level": "high",
    "tags": ["attack.t1059.001", "attack.execution", "cve.2023.1"],
    "matched_selections": ["selection"],
    "matched_fields": [{"field": "CommandLine", "value": "powershell -enc ZQBjAGgAbwA="}],
    "event": {"CommandLine": "powershell -enc ZQBjAGgAbwA=", "User": "alice"},
}
CORRELATION = {
    "rule_title": "SSH brute force",
    "rule_id": None,
    "level": "critical",
    "tags": ["attack.credential_access"],
    "correlation_type": "event_count",
    "group_key": [["SourceIP", "203.0.113.4"]],
    "aggregated_value": 73.0,
    "timespan_secs": 300,
}


def fixed(result):
    uids = iter(["finding-uid", "metadata-uid"])
    return detection_finding(result, now_ms=lambda: 1767225600000, new_uid=lambda: next(uids))


def test_a_detection_maps_as_rsigma_maps_it():
    assert fixed(DETECTION) == {
        "action_id": 0,
        "action": "Unknown",
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": 4,
        "severity": "High",
        "status_id": 1,
        "status": "New",
        "time": 1767225600000,
        "timezone_offset": 0,
        "message": "Suspicious PowerShell",
        "metadata": {
            "product": {"name": "rsigma", "vendor_name": "rsigma", "version": __version__},
            "version": "1.1.0",
            "uid": "metadata-uid",
        },
        "finding_info": {
            "title": "Suspicious PowerShell",
            "uid": "finding-uid",
            "analytic": {"name": "Suspicious PowerShell", "type": "Rule", "type_id": 1, "uid": "rule-1"},
            "attacks": [
                {"sub_technique": {"uid": "T1059.001"}},
                {"tactic": {"name": "Execution", "uid": "TA0002"}},
            ],
        },
        "evidences": [
            {
                "data": {
                    "event": {"CommandLine": "powershell -enc ZQBjAGgAbwA=", "User": "alice"},
                    "matched_fields": {"CommandLine": "powershell -enc ZQBjAGgAbwA="},
                }
            }
        ],
        "unmapped": {
            "tags": ["attack.t1059.001", "attack.execution", "cve.2023.1"],
            "matched_selections": ["selection"],
            "matched_fields": [{"field": "CommandLine", "value": "powershell -enc ZQBjAGgAbwA="}],
        },
    }


def test_a_correlation_keeps_its_native_keys_under_unmapped_and_has_no_evidences():
    finding = fixed(CORRELATION)
    assert finding["severity_id"] == 5 and finding["severity"] == "Critical"
    assert finding["finding_info"]["analytic"] == {"name": "SSH brute force", "type": "Rule", "type_id": 1}
    assert finding["finding_info"]["attacks"] == [{"tactic": {"name": "Credential Access", "uid": "TA0006"}}]
    assert "evidences" not in finding
    assert finding["unmapped"] == {
        "tags": ["attack.credential_access"],
        "correlation_type": "event_count",
        "group_key": [["SourceIP", "203.0.113.4"]],
        "aggregated_value": 73.0,
        "timespan_secs": 300,
    }


@pytest.mark.parametrize(
    ("level", "severity_id", "severity"),
    [
        ("informational", 1, "Informational"),
        ("low", 2, "Low"),
        ("medium", 3, "Medium"),
        ("high", 4, "High"),
        ("critical", 5, "Critical"),
        (None, 0, "Unknown"),
    ],
)
def test_the_level_gives_the_severity(level, severity_id, severity):
    finding = detection_finding({**DETECTION, "level": level})
    assert (finding["severity_id"], finding["severity"]) == (severity_id, severity)
    assert detection_finding_problems(finding) == []


def test_each_finding_has_its_own_uids_and_the_time_it_was_made():
    one, two = detection_finding(DETECTION), detection_finding(DETECTION)
    assert one["finding_info"]["uid"] != two["finding_info"]["uid"]
    assert one["metadata"]["uid"] != two["metadata"]["uid"]
    assert one["time"] > 1_700_000_000_000  # unix milliseconds


def test_attack_tags_skip_groups_malformed_and_duplicates():
    assert attacks(
        ["attack.t1059", "attack.T1059", "attack.privilege_escalation", "attack.privilege-escalation"]
    ) == [
        {"technique": {"uid": "T1059"}},
        {"tactic": {"name": "Privilege Escalation", "uid": "TA0004"}},
    ]
    for tag in ("cve.2023.1", "attack.g0016", "attack.t105", "attack.t1059.1", "attack.", "attack.stealth"):
        assert attacks([tag]) == []


def test_the_check_finds_what_a_finding_lacks():
    finding = fixed(DETECTION)
    assert detection_finding_problems(finding) == []
    del finding["metadata"]["version"]
    finding["type_uid"] = 200402
    del finding["finding_info"]["uid"]
    assert detection_finding_problems(finding) == [
        "type_uid 200402 is not class_uid * 100 + activity_id",
        "missing metadata.version",
        "missing finding_info.uid",
    ]
    assert detection_finding_problems({"class_uid": 2004}) == [
        f"missing {key}"
        for key in (
            "activity_id",
            "category_uid",
            "finding_info",
            "metadata",
            "severity_id",
            "time",
            "type_uid",
        )
    ]


@pytest.mark.parametrize("pretty", [False, True])
def test_a_sink_writes_results_deeper_than_orjson_writes(pretty):
    """An event kept by --include-event may nest past orjson's 254 levels; the finding is still written."""
    event: dict = {"CommandLine": "x"}
    for _ in range(300):
        event = {"a": event}
    line = json.dumps({**DETECTION, "event": event}).encode() + b"\n"
    written = line_format("ocsf", pretty)(line)
    assert written.endswith(b"\n") and (b"\n  " in written) == pretty
    assert json.loads(written)["evidences"][0]["data"]["event"] == event


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("events", [{"EventID": 4625, "User": "alice"}, {"EventID": 4625, "User": "alice", "id": "e2"}]),
        ("event_refs", [{"timestamp": 1767225600}, {"timestamp": 1767225601, "id": "e2"}]),
    ],
)
def test_a_correlations_kept_events_are_its_evidence(key, kept):
    """--correlation-event-mode full|refs: the events go to `evidences[].data`, as RSigma maps them."""
    finding = fixed({**CORRELATION, key: kept})
    assert finding["evidences"] == [{"data": {key: kept}}]
    assert key not in finding["unmapped"]
    assert detection_finding_problems(finding) == []
