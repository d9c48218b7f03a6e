"""Fixtures of the cluster tests: a throwaway JetStream server per test (tests.support.NatsServer) and
daemons started through the CLI on the cluster rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Daemons, NatsServer
from tests.support.cluster import PROPERTY_RULES, RULES


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as s:
        yield s


def daemons_on(tmp_path: Path, rules_text: str) -> Iterator[Daemons]:
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_text)
    with Daemons(tmp_path, base_args=["-r", rules]) as started:
        yield started


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    yield from daemons_on(tmp_path, RULES)


@pytest.fixture
def property_daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Daemons on the property tests' rules: four correlation types over three detections."""
    yield from daemons_on(tmp_path, PROPERTY_RULES)
