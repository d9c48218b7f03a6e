"""The `--cluster` flags through the real CLI: their variables and config keys, and what they cannot
go with yet (exit 2, a usage error saying why; chained correlations exit 3 naming the correlation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.cli import rsigma, write

RULES = """
title: Failed logon
name: failed_logon
logsource: {product: test}
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Brute force
id: 33333333-3333-4333-8333-333333333333
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [User]
    timespan: 10m
    condition: {gte: 3}
"""

CHAINED = """
---
title: Repeated brute force
correlation:
    type: event_count
    rules: [33333333-3333-4333-8333-333333333333]
    group-by: [User]
    timespan: 1h
    condition: {gte: 2}
"""

NATS = "nats://127.0.0.1:1/events"  # never connected to: every case stops before


def run(home: Path, *args: str | Path, env: dict[str, str] | None = None):
    return rsigma(*args, cwd=home, env={"HOME": str(home), **(env or {})})


def said(stderr: str) -> str:
    """The usage error's text, unwrapped from its box."""
    return " ".join(stderr.replace("│", " ").split())


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--input", "stdin"], "needs a nats:// --input"),
        (["--input", NATS, "--state-db", "s.db"], "cannot be used with --state-db yet"),
        (["--input", NATS, "--cluster", "a.b"], "letters, digits, '-' and '_' only"),
    ],
)
def test_what_cluster_cannot_go_with_yet_is_a_usage_error(tmp_path, args, reason):
    rules = write(tmp_path / "rules.yml", RULES)
    done = run(tmp_path, "engine", "daemon", "-r", rules, "--cluster", "c1", *args)
    assert done.returncode == 2, done.stderr
    assert "'--cluster'" in said(done.stderr) and reason in said(done.stderr)


def test_serve_takes_cluster_with_its_default_workers(tmp_path):
    rules = write(tmp_path / "rules.yml", RULES)
    args = ("serve", "-r", rules, "--input", NATS, "--cluster", "c1", "--nats-connect-timeout", "0")
    done = run(tmp_path, *args, "--log-format", "text")
    assert done.returncode == 3, done.stderr  # accepted: it went on to connect, to no server
    assert "127.0.0.1:1" in done.stderr


def test_chained_correlations_are_refused_naming_the_correlation(tmp_path):
    rules = write(tmp_path / "rules.yml", RULES + CHAINED)
    done = run(
        tmp_path,
        *("engine", "daemon", "-r", rules, "--input", NATS, "--cluster", "c1", "--log-format", "text"),
    )
    assert done.returncode == 3, done.stderr
    assert "correlation 'Repeated brute force'" in done.stderr
    assert "chained correlations do not run across nodes yet" in done.stderr


def test_the_flags_come_from_their_variables_and_config_keys(tmp_path):
    write(tmp_path / "rsigma.yaml", "daemon:\n  cluster:\n    apply_interval: 0.5\n    heartbeat: 0.25\n")
    done = run(
        tmp_path,
        *("engine", "daemon", "--dry-run", "-r", "rules"),
        env={
            "RSIGMA_CLUSTER": "prod",
            "RSIGMA_CLUSTER_PARTITIONS": "128",
            "RSIGMA_CLUSTER_MEMBER_ID": "n-1",
            "RSIGMA_CLUSTER_REPLICAS": "3",
        },
    )
    assert done.returncode == 0, done.stderr
    cluster = yaml.safe_load(done.stdout)["daemon"]["cluster"]
    assert cluster == {
        "name": "prod",
        "partitions": 128,
        "apply_interval": 0.5,
        "heartbeat": 0.25,
        "replicas": 3,
        "snapshot_interval": 30.0,
        "member_id": "n-1",
    }
    done = run(
        tmp_path,
        *("engine", "daemon", "--dry-run", "-r", "rules", "--cluster-heartbeat", "2"),
        env={"RSIGMA_CLUSTER_HEARTBEAT": "3", "RSIGMA_DAEMON__CLUSTER__MEMBER_ID": "n-2"},
    )
    cluster = yaml.safe_load(done.stdout)["daemon"]["cluster"]
    assert (cluster["heartbeat"], cluster["member_id"]) == (2.0, "n-2")


@pytest.mark.parametrize(
    ("args", "hint", "reason"),
    [
        (["--cluster-heartbeat", "0"], "'--cluster-heartbeat'", "greater than or equal to 0.001"),
        (["--cluster-heartbeat", "soon"], "'--cluster-heartbeat'", "should be a valid number"),
        (["--cluster-member-id", "a..b"], "'--cluster-member-id'", "inner dots only"),
    ],
)
def test_a_bad_heartbeat_or_member_id_is_a_usage_error(tmp_path, args, hint, reason):
    rules = write(tmp_path / "rules.yml", RULES)
    done = run(tmp_path, "engine", "daemon", "-r", rules, "--input", NATS, "--cluster", "c1", *args)
    assert done.returncode == 2, done.stderr
    assert hint in said(done.stderr)
    assert reason in said(done.stderr)
