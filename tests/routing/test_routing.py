"""Logsource routing: events are placed by the routing map, and only compatible rules are evaluated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rsigma.engine import Engine
from rsigma.errors import SigmaError
from rsigma.routing import compatible, load_router, load_routers
from rsigma.rules import LogSource, parse_rules_text

RULES = """
title: Whoami process
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
---
title: Zeek negation only
logsource: {product: zeek, service: rdp}
detection:
    sel:
        id.orig_h|cidr: 10.0.0.0/8
    condition: not sel
---
title: Security logon
logsource: {product: windows, service: security}
detection:
    sel:
        EventID: 4624
    condition: sel
---
title: Registry umbrella
logsource: {product: windows, category: registry_event}
detection:
    sel:
        TargetObject|contains: '\\Run\\'
    condition: sel
---
title: Linux anything
logsource: {product: linux}
detection:
    sel:
        - whoami
    condition: sel
"""
SYSMON = "Microsoft-Windows-Sysmon/Operational"


@pytest.fixture
def engines() -> tuple[Engine, Engine]:
    ruleset = parse_rules_text(RULES)
    return Engine(ruleset, strict=True), Engine(ruleset, strict=True, router=load_routers(None))


def titles(engine: Engine, event: dict) -> list[str]:
    return [d.rule_title for d in engine.evaluate(event)]


def test_without_routing_a_negation_only_zeek_rule_fires_on_windows_events(engines):
    plain, routed = engines
    event = {"Channel": SYSMON, "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe"}
    assert titles(plain, event) == ["Whoami process", "Zeek negation only", "Linux anything"]
    assert titles(routed, event) == ["Whoami process"]


def test_service_conflicts_exclude_and_missing_dimensions_do_not(engines):
    _, routed = engines
    sysmon_logon = {"Channel": SYSMON, "EventID": 1, "Image": "x", "EventID2": 4624}
    assert titles(routed, sysmon_logon) == []
    security = {"Channel": "Security", "EventID": 4624}
    assert titles(routed, security) == ["Security logon"]


def test_umbrella_categories(engines):
    _, routed = engines
    event = {"Channel": SYSMON, "EventID": 13, "TargetObject": "HKLM\\Software\\Run\\x"}
    assert titles(routed, event) == ["Registry umbrella"]


def test_unplaced_events_see_every_rule_and_are_counted(engines):
    _, routed = engines
    event = {"message": "whoami", "Image": "C:\\whoami.exe"}
    assert titles(routed, event) == ["Whoami process", "Zeek negation only", "Linux anything"]
    assert routed.unplaced == 1


def test_event_fields_can_carry_the_logsource(tmp_path):
    path = tmp_path / "map.yml"
    path.write_text("fields: {product: [product, os.type]}\nroutes: []\n")
    engine = Engine(parse_rules_text(RULES), strict=True, router=load_router(path))
    assert titles(engine, {"product": "linux", "message": "whoami"}) == ["Linux anything"]
    assert titles(engine, {"os": {"type": "Linux"}, "message": "whoami"}) == ["Linux anything"]


def test_compatible_is_conflict_based():
    placement = (("category", frozenset({"process_creation"})), ("product", frozenset({"windows"})))
    assert compatible(LogSource(product="windows"), placement)
    assert compatible(LogSource(product="Windows", category="process_creation"), placement)
    assert compatible(LogSource(service="sysmon"), placement)
    assert not compatible(LogSource(product="linux"), placement)
    assert not compatible(LogSource(category="file_event"), placement)


def test_custom_map_and_errors(tmp_path):
    good = tmp_path / "map.yml"
    good.write_text(
        "routes:\n  - match: {source: [auditd, AUDIT]}\n    logsource: {product: linux, service: auditd}\n"
    )
    router = load_router(good)
    assert router.place({"source": "audit"}) == (
        ("product", frozenset({"linux"})),
        ("service", frozenset({"auditd"})),
    )
    assert router.place({"source": "other"}) is None
    bad = tmp_path / "bad.yml"
    bad.write_text("routes:\n  - match: {a: 1}\n    logsource: {vendor: x}\n")
    with pytest.raises(SigmaError, match="bad.yml"):
        load_router(bad)


def test_cli_logsource_routing(tmp_path: Path):
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    events = tmp_path / "events.ndjson"
    events.write_text(
        json.dumps({"Channel": SYSMON, "EventID": 1, "Image": "C:\\whoami.exe"})
        + "\n"
        + json.dumps({"x": 1})
        + "\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rsigma",
            "engine",
            "eval",
            "-r",
            rules,
            "--events",
            events,
            "--logsource-routing",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = [json.loads(line)["rule_title"] for line in proc.stdout.splitlines()]
    assert out == ["Whoami process", "Zeek negation only"]
    assert "1 event(s) matched no route" in proc.stderr
