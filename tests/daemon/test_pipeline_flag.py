"""--pipeline on the daemon: a builtin pipeline by name rewrites the rules both backends evaluate."""

from __future__ import annotations

import json
from pathlib import Path

SHADOW = r"""
title: Shadow copy deletion
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\vssadmin.exe'
        CommandLine|contains|all: [delete, shadows]
    condition: selection
"""


def test_fibratus_windows_pipeline_matches_fibratus_process_creations(daemon, tmp_path: Path):
    rule = tmp_path / "shadow.yml"
    rule.write_text(SHADOW.lstrip())
    created = {
        "evt": {"name": "CreateProcess"},
        "ps": {"exe": "C:\\Windows\\System32\\vssadmin.exe", "cmdline": "vssadmin delete shadows /all"},
    }
    sysmon = {"Image": created["ps"]["exe"], "CommandLine": created["ps"]["cmdline"]}  # Sigma's names
    events = [created, {**created, "evt": {"name": "TerminateProcess"}}, sysmon]
    stdin = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    d = daemon("-r", rule, "--pipeline", "fibratus_windows", "--include-event", stdin=stdin)
    assert d.wait_exit() == 0, d.stderr()
    assert [r["event"]["evt"]["name"] for r in d.results()] == ["CreateProcess"]
