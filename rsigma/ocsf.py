"""OCSF Detection Finding (class 2004) from a native result, for sinks given `?format=ocsf`.

The mapping follows RSigma's (`rsigma-runtime/src/ocsf`): everything with a faithful OCSF home moves
there (rule title and id to `finding_info.analytic`, the level to `severity_id`, ATT&CK tags to
`finding_info.attacks`, the event and matched fields to `evidences[].data`), and the rest of the
native result rides under `unmapped` with its native key, so a consumer reading OCSF loses nothing.
A finding is built from the native result's dict, so every backend's lines map alike at the sink.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from rsigma import __version__

CLASS_UID: Final = 2004  # Detection Finding
CATEGORY_UID: Final = 2  # Findings
ACTIVITY_CREATE: Final = 1  # every result is a new finding
STATUS_NEW: Final = 1
#: The OCSF schema version the findings follow (RSigma's pin).
OCSF_VERSION: Final = "1.1.0"

SEVERITY_IDS: Final = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
SEVERITY_NAMES: Final = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}

#: ATT&CK enterprise tactics by their Sigma tag spelling: (name, TA id).
TACTICS: Final = {
    "reconnaissance": ("Reconnaissance", "TA0043"),
    "resource_development": ("Resource Development", "TA0042"),
    "initial_access": ("Initial Access", "TA0001"),
    "execution": ("Execution", "TA0002"),
    "persistence": ("Persistence", "TA0003"),
    "privilege_escalation": ("Privilege Escalation", "TA0004"),
    "defense_evasion": ("Defense Evasion", "TA0005"),
    "credential_access": ("Credential Access", "TA0006"),
    "discovery": ("Discovery", "TA0007"),
    "lateral_movement": ("Lateral Movement", "TA0008"),
    "collection": ("Collection", "TA0009"),
    "command_and_control": ("Command and Control", "TA0011"),
    "exfiltration": ("Exfiltration", "TA0010"),
    "impact": ("Impact", "TA0040"),
}


def _technique(short: str) -> tuple[str, str] | None:
    """`t1059` / `t1059.001` to (OCSF member, ATT&CK id); anything else (a group, `g0016`) is None."""
    if not short.startswith("t"):
        return None
    technique, _, sub = short[1:].partition(".")
    if len(technique) != 4 or not technique.isdigit():
        return None
    if not sub:
        return "technique", f"T{technique}"
    if len(sub) == 3 and sub.isdigit():
        return "sub_technique", f"T{technique}.{sub}"
    return None


def attacks(tags: list[str]) -> list[dict[str, Any]]:
    """`finding_info.attacks` from a rule's `attack.*` tags, in tag order, without duplicates: a
    technique tag cannot say which tactic it served, so techniques and tactics stay separate."""
    out: list[dict[str, Any]] = []
    for tag in tags:
        lower = tag.lower()
        if not lower.startswith("attack."):
            continue
        short = lower[len("attack.") :]
        entry: dict[str, Any]
        if (technique := _technique(short)) is not None:
            entry = {technique[0]: {"uid": technique[1]}}
        elif (tactic := TACTICS.get(short.replace("-", "_"))) is not None:
            entry = {"tactic": {"name": tactic[0], "uid": tactic[1]}}
        else:
            continue
        if entry not in out:
            out.append(entry)
    return out


def _evidences(result: dict[str, Any]) -> list[dict[str, Any]] | None:
    """One evidence holding what the result kept: the event and the matched field values
    (detections), or the correlated events (correlations), if any."""
    data: dict[str, Any] = {}
    if "event" in result:
        data["event"] = result["event"]
    if result.get("matched_fields"):
        data["matched_fields"] = {m["field"]: m["value"] for m in result["matched_fields"]}
    for key in ("events", "event_refs"):
        if key in result:
            data[key] = result[key]
    return [{"data": data}] if data else None


def detection_finding(
    result: dict[str, Any],
    *,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    new_uid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> dict[str, Any]:
    """The Detection Finding for one native result (a detection or a correlation). `time` is when the
    finding is made (a result carries no event time; `--include-event` puts the event in
    `evidences`); `finding_info.uid` is minted per finding, the rule's id is `analytic.uid`."""
    title = result["rule_title"]
    severity_id = SEVERITY_IDS.get(result.get("level") or "", 0)
    analytic: dict[str, Any] = {"name": title, "type": "Rule", "type_id": 1}
    if result.get("rule_id") is not None:
        analytic["uid"] = result["rule_id"]
    info: dict[str, Any] = {"title": title, "uid": new_uid(), "analytic": analytic}
    tags = result.get("tags") or []
    if found := attacks(tags):
        info["attacks"] = found
    unmapped: dict[str, Any] = {}
    if tags:
        unmapped["tags"] = tags
    if "correlation_type" in result:
        for key in ("correlation_type", "group_key", "aggregated_value", "timespan_secs"):
            unmapped[key] = result[key]
    else:
        unmapped["matched_selections"] = result.get("matched_selections", [])
        unmapped["matched_fields"] = result.get("matched_fields", [])
    finding: dict[str, Any] = {
        # rsigma takes no control action; Detection Finding carries action_id, so it says Unknown.
        "action_id": 0,
        "action": "Unknown",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": SEVERITY_NAMES[severity_id],
        "status_id": STATUS_NEW,
        "status": "New",
        "time": now_ms(),
        "timezone_offset": 0,
        "message": title,
        "metadata": {
            "product": {"name": "rsigma", "vendor_name": "rsigma", "version": __version__},
            "version": OCSF_VERSION,
            "uid": new_uid(),
        },
        "finding_info": info,
    }
    if (evidences := _evidences(result)) is not None:
        finding["evidences"] = evidences
    finding["unmapped"] = unmapped
    return finding
