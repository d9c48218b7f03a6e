"""A throwaway JetStream server per test, and the daemon fixtures of the NATS tests (tests.support)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import DaemonProcess, Daemons, NatsServer
from tests.support.nats_client import WHOAMI_RULE


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path) as server:
        yield server


@pytest.fixture
def nats_with(tmp_path: Path) -> Iterator[Callable[[str], NatsServer]]:
    """nats_with(config) -> a started JetStream server with that configuration file text."""
    started: list[NatsServer] = []

    def start_server(config: str) -> NatsServer:
        server = NatsServer(tmp_path / f"server{len(started)}", config=config)
        started.append(server)
        return server.start()

    try:
        yield start_server
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Daemons running the Whoami rule (`-r rules.yml` comes first), killed with their children at
    teardown; files and working directory in tmp_path."""
    rules = tmp_path / "rules.yml"
    rules.write_text(WHOAMI_RULE)
    with Daemons(tmp_path, base_args=["-r", rules]) as started:
        yield started


@pytest.fixture
def daemon(daemons: Daemons) -> Callable[..., DaemonProcess]:
    """daemon(*args) -> a started DaemonProcess (returns at its 'daemon started' line)."""
    return daemons.start


@pytest.fixture
def run_daemon(daemons: Daemons) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_daemon(*args, stdin=b"") -> CompletedProcess: a daemon run to its exit."""
    return daemons.run
