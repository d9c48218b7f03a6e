"""The `rsigma` command line run as a user runs it, and the rules and events the CLI tests share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WHOAMI = r"""
title: Whoami Execution
id: 11111111-2222-4333-8444-555555555555
level: high
tags:
    - attack.discovery
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"""

NOMETA = """
title: Evil CommandLine
logsource:
    product: windows
detection:
    selection:
        CommandLine|contains: evil
    condition: selection
"""

BROKEN = """
title: Broken Rule
logsource:
    product: windows
detection:
    selection:
        CommandLine|bogusmod: evil
    condition: selection
"""

WHOAMI_EVENT = {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"}
EVIL_EVENT = {"Image": "C:\\x\\cmd.exe", "CommandLine": "cmd /c evil"}
QUIET_EVENT = {"Image": "C:\\x\\notepad.exe", "CommandLine": "notepad"}


def rsigma(
    *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`env` adds to (or overrides) this process's environment; this tree's rsigma runs from any `cwd`."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "rsigma", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        timeout=120,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
