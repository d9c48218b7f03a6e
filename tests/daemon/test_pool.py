"""The matcher pool (`--workers N`): same results as one process, crash recovery, re-sharded state,
drain, per-worker metrics and status, hot reload, and `serve --help`."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import smaps_kb

# Each test here chooses its --workers itself: the pool is the subject (no [workers0]/[workers2] runs).
pytestmark = pytest.mark.single_backend

ROOT = Path(__file__).resolve().parents[2]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def failed_at(user: str, seconds: int) -> dict[str, Any]:
    """A failed logon `seconds` after BASE (Events.failed only spans one hour)."""
    stamp = (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"EventID": 4625, "User": user, "@timestamp": stamp}


def canonical(results: list[Any]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in results)


def titled(results: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
    return [r for r in results if r["rule_title"] == title]


def fired_users(results: list[dict[str, Any]]) -> set[str]:
    return {r["group_key"][0][1] for r in titled(results, "Brute force")}


def whoami_seqs(results: list[dict[str, Any]]) -> list[int]:
    """The `seq` of every Whoami detection (the matched CommandLine is `cmd /c whoami #<seq>`)."""
    seqs = []
    for r in titled(results, "Whoami"):
        (field,) = [f for f in r["matched_fields"] if f["field"] == "CommandLine"]
        seqs.append(int(field["value"].rsplit("#", 1)[1]))
    return sorted(seqs)


def mixed_stream(ev: Any, n: int = 3000) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """Whoami detections, quiet events and failed logons, in time order (2 s apart).

    user<k> has k failed logons close together (k >= 3 fires Brute force); "slow" has 3 spread over
    more than the 1 h window (never fires). Returns the events, the users that fire and those that don't.
    """
    failed: dict[int, str] = {}
    for k in range(1, 9):
        for j in range(k):
            failed[100 + 300 * k + 7 * j] = f"user{k}"
    for position in (50, 1950, n - 1):  # 0 s, ~63 min, ~100 min: never 3 within an hour
        failed[position] = "slow"
    events = []
    for i in range(n):
        if i in failed:
            events.append(failed_at(failed[i], 2 * i))
        elif i % 3 == 0:
            events.append(ev.whoami(i))
        else:
            events.append(ev.quiet(i))
    firing = {f"user{k}" for k in range(3, 9)}
    quiet = {f"user{k}" for k in range(1, 3)} | {"slow"}
    return events, firing, quiet


def test_pool_results_equal_single_process(daemon, ev, rules_dir):
    events, firing, quiet = mixed_stream(ev)
    stream = ev.ndjson(*events)
    runs = {}
    for workers in ("2", "0"):
        d = daemon("-r", rules_dir, "--workers", workers, stdin=stream)
        assert d.wait_exit(30) == 0, d.stderr()
        runs[workers] = d.results()
        assert (d.find_log("matcher pool started") is not None) == (workers != "0")
    pooled, single = runs["2"], runs["0"]
    whoamis = sum(1 for e in events if "whoami" in e.get("CommandLine", ""))
    assert len(whoami_seqs(single)) == whoamis
    assert fired_users(single) == firing and not fired_users(single) & quiet
    assert canonical(pooled) == canonical(single)


def test_killed_matcher_is_restarted_and_nothing_is_lost(daemon, ev, rules_dir, wait_until):
    first = [ev.whoami(i) if i % 2 == 0 else ev.quiet(i) for i in range(4000)]
    rest = [ev.whoami(i) if i % 2 == 0 else ev.quiet(i) for i in range(4000, 8000)]
    rest += [failed_at("late", 10), failed_at("late", 20), failed_at("late", 30)]
    d = daemon("-r", rules_dir, "--workers", "2")
    workers = d.get("/api/v1/status").json()["workers"]
    victim = workers[0]["pid"]
    d.send(ev.ndjson(*first))
    wait_until(lambda: (d.metric("rsigma_events_processed_total") or 0) > 0, "some events processed")
    # Stopped first, so it surely holds a batch when it dies (the next batch goes to the first idle
    # matcher, and the batches behind it wait for its answer): that batch must be sent again.
    os.kill(victim, signal.SIGSTOP)
    try:
        d.send(ev.ndjson(*rest))
        wait_until(lambda: d.get("/api/v1/status").json()["workers"][0]["in_flight"] > 0, "a batch held by 0")
    finally:
        os.kill(victim, signal.SIGKILL)  # never leave a stopped process behind

    def restarted() -> dict[str, Any] | None:
        return next((r for r in d.logs() if r.get("message", "").startswith("matcher restarted")), None)

    record = wait_until(restarted, "the 'matcher restarted' log record", 15)
    assert record["level"] == "warning"
    assert record["matcher"] == 0
    assert record["restart_seconds"] >= 0  # reported; how long it took is benchmarks/faults.py's figure
    died = d.find_log("matcher died; restarting it")
    assert died is not None and died["matcher"] == 0 and died["exit_code"] == -signal.SIGKILL
    assert died["batches_in_flight"] >= 1
    assert d.metric("rsigma_worker_restarts_total", worker="0") == 1
    assert d.metric("rsigma_worker_restarts_total", worker="1") == 0
    status = wait_until(
        lambda: (s := d.get("/api/v1/status").json()["workers"]) and all(w["alive"] for w in s) and s,
        "both matchers alive again",
    )
    assert status[0]["restarts"] == 1 and status[0]["pid"] != victim
    d.close_stdin()
    assert d.wait_exit(30) == 0, d.stderr()
    results = d.results()
    expected = sorted(e["seq"] for e in first + rest if "whoami" in e.get("CommandLine", ""))
    assert whoami_seqs(results) == expected, "every Whoami detection, once"
    assert fired_users(results) == {"late"}
    assert d.find_log("daemon stopped")["events_processed"] == len(first) + len(rest)


def test_a_restarted_matcher_runs_the_loaded_rules_whatever_the_files_say(daemon, ev, rules_file, wait_until):
    """Its rules file broke on disk (no reload yet) and then it died: the restarted matcher is forked
    with the rules compiled when the pool started (`workers/zygote.py`), so detection goes on."""
    d = daemon("-r", rules_file, "--workers", "1")
    victim = d.get("/api/v1/status").json()["workers"][0]["pid"]
    d.send(ev.ndjson(ev.whoami(1)))
    wait_until(lambda: len(d.results()) == 1, "the first detection")
    rules_file.write_text("title: [unclosed\n")
    os.kill(victim, signal.SIGKILL)
    d.send(ev.ndjson(ev.whoami(2)))
    wait_until(lambda: len(d.results()) == 2, "a detection by the restarted matcher", timeout=30)
    assert d.get("/api/v1/status").json()["workers"][0]["restarts"] == 1
    d.close_stdin()
    assert d.wait_exit() == 0, d.stderr()


def test_a_matcher_that_cannot_start_again_stops_the_daemon(daemon, ev, rules_dir, netcat_rule, wait_until):
    """After a reload a restarted matcher compiles the rules from the files. One broke on disk (no
    reload yet) and then the matcher died: every restart dies before it is ready. After 3 the daemon
    exits 1 instead of holding events forever, and says why."""
    d = daemon("-r", rules_dir, "--workers", "1")
    (rules_dir / "netcat.yml").write_text(netcat_rule)
    assert d.post("/api/v1/reload", timeout=60).status == 200
    victim = d.get("/api/v1/status").json()["workers"][0]["pid"]
    d.send(ev.ndjson(ev.whoami(1)))
    wait_until(lambda: len(d.results()) == 1, "the first detection")
    (rules_dir / "whoami.yml").write_text("title: [unclosed\n")
    os.kill(victim, signal.SIGKILL)
    assert d.wait_exit(60) == 1, d.stderr()
    gave_up = d.find_log("the matcher pool gave up")
    assert gave_up is not None and gave_up["level"] == "critical"
    assert "matcher 0 died 3 times in a row before it was ready" in gave_up["error"]
    stopped = next(r for r in d.logs() if r.get("message", "").startswith("daemon stopped after a failure"))
    assert stopped["events_processed"] == 1
    assert "whoami.yml" in d.stderr()  # each failed start names the broken file


def test_a_matcher_restarted_onto_changed_rules_is_refused(daemon, ev, rules_dir, netcat_rule):
    """After a reload, a rule file was added and not reloaded: a restarted matcher would run other
    rules than the supervisor routes hits for. It is refused like a failed start, and after 3 the
    daemon exits 1."""
    d = daemon("-r", rules_dir, "--workers", "1")
    (rules_dir / "netcat.yml").write_text(netcat_rule)
    assert d.post("/api/v1/reload", timeout=60).status == 200
    victim = d.get("/api/v1/status").json()["workers"][0]["pid"]
    (rules_dir / "netcat2.yml").write_text(netcat_rule.replace("title: Netcat", "title: Netcat again"))
    os.kill(victim, signal.SIGKILL)
    assert d.wait_exit(60) == 1, d.stderr()
    refused = [r for r in d.logs() if r.get("message", "").startswith("matcher compiled other rules")]
    assert len(refused) == 3 and refused[0]["rules"] == 4
    assert "died 3 times in a row before it was ready" in d.find_log("the matcher pool gave up")["error"]


def copy_db(db: Path, to: Path) -> Path:
    to.mkdir()
    for f in db.parent.glob(db.name + "*"):  # the database and any -wal/-shm companions
        shutil.copy2(f, to / f.name)
    return to / db.name


def test_state_is_resharded_for_another_worker_count(daemon, ev, rules_dir, tmp_path):
    """Windows saved by N matchers are found by their owners under M matchers (and by one process).

    Many users, so that their windows are spread over every shard whatever N is."""
    us, vs = [f"u{k}" for k in range(12)], [f"v{k}" for k in range(12)]
    db = tmp_path / "a" / "state.db"
    db.parent.mkdir()

    def run(workers: str, path: Path, *events: dict[str, Any]) -> set[str]:
        d = daemon("-r", rules_dir, "--state-db", path, "--workers", workers, stdin=ev.ndjson(*events))
        assert d.wait_exit(30) == 0, d.stderr()
        return fired_users(d.results())

    def twice(users: list[str]) -> list[dict[str, Any]]:
        return [failed_at(u, 60 * m) for m in (0, 1) for u in users]

    # --workers 2: two failed logons each for eve and the u* users: nothing fires yet.
    assert run("2", db, *twice(["eve", *us]), ev.whoami(1)) == set()
    # --workers 3: their third fires from the state the 2 matchers saved; the v* users start windows,
    # so the snapshot this run writes holds windows made by 3 matchers.
    assert run("3", db, *[failed_at(u, 120) for u in ["eve", *us]], *twice(vs)) == {"eve", *us}
    # From the 3-matcher snapshot, with 1 matcher and with none (x has no window: the control).
    one_db, zero_db = copy_db(db, tmp_path / "one"), copy_db(db, tmp_path / "zero")
    third = [failed_at(v, 180) for v in [*vs, "x"]]
    assert run("1", one_db, *third) == set(vs)
    assert run("0", zero_db, *third) == set(vs)


def test_sigterm_drains_the_pool(daemon, ev, rules_dir):
    d = daemon("-r", rules_dir, "--input", "http", "--workers", "2")
    events = [ev.whoami(i) if i % 2 == 0 else ev.quiet(i) for i in range(3000)]
    for start in range(0, len(events), 500):
        d.post_events(*events[start : start + 500])
    d.signal(signal.SIGTERM)
    assert d.wait_exit(30) == 0, d.stderr()
    assert whoami_seqs(d.results()) == list(range(0, 3000, 2))
    stopped = d.find_log("daemon stopped")
    assert stopped is not None and stopped["events_processed"] == len(events)
    assert d.find_log("events not acknowledged at shutdown") is None


def test_per_worker_metrics_and_status(daemon, ev, rules_dir):
    d = daemon("-r", rules_dir, "--workers", "2")
    n = 6000
    malformed = b"".join(b"{not json %d\n" % i for i in range(40))  # dead-lettered: not evaluated
    d.send(ev.ndjson(*[ev.whoami(i) if i % 5 == 0 else ev.quiet(i) for i in range(n)]) + malformed)
    d.wait_processed(n, timeout=20)
    d.wait_metric("rsigma_dlq_events_total", 40)
    per_worker = [d.metric("rsigma_worker_events_total", worker=str(i)) for i in range(2)]
    assert all(v is not None and v > 0 for v in per_worker), per_worker
    assert sum(per_worker) == n == d.metric("rsigma_events_processed_total")
    assert all(d.metric("rsigma_worker_busy_seconds_total", worker=str(i)) > 0 for i in range(2))
    assert [d.metric("rsigma_worker_queue_depth", worker=str(i)) for i in range(2)] == [0, 0]
    assert [d.metric("rsigma_worker_restarts_total", worker=str(i)) for i in range(2)] == [0, 0]
    status = d.get("/api/v1/status").json()
    workers = status["workers"]
    assert [w["index"] for w in workers] == [0, 1]
    assert all(w["alive"] and w["restarts"] == 0 and w["in_flight"] == 0 for w in workers)
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and d.pid not in pids
    for pid in pids:
        os.kill(pid, 0)  # a live process
    assert [w["events"] for w in workers] == per_worker
    assert status["events_processed"] == n
    # Correlation windows live in the matchers: the supervisor reports theirs.
    users = [f"user{i}" for i in range(7)]
    d.send(ev.ndjson(*[ev.failed(user, 0) for user in users]))
    d.wait_processed(n + len(users), timeout=20)
    assert d.get("/api/v1/status").json()["correlation_state_entries"] == len(users)
    assert d.metric("rsigma_correlation_state_entries") == len(users)
    assert d.metric("rsigma_event_processing_seconds_count") > 0


def test_hot_reload_reaches_the_matchers(daemon, ev, rules_dir, netcat_rule, wait_until):
    d = daemon("-r", rules_dir, "--workers", "2")
    d.send(ev.ndjson(ev.netcat(0), ev.whoami(1), failed_at("eve", 0), failed_at("eve", 60)))
    d.wait_processed(4)
    assert [r["rule_title"] for r in d.results()] == ["Whoami"]
    (rules_dir / "netcat.yml").write_text(netcat_rule)
    response = d.post("/api/v1/reload")
    assert response.status == 200, response.body
    assert response.json()["detection_rules"] == 3
    events = [ev.netcat(i) if i % 2 else ev.quiet(i) for i in range(2, 4002)]
    d.send(ev.ndjson(*events, failed_at("eve", 120)))
    d.wait_processed(4 + len(events) + 1, timeout=20)
    results = d.results()
    assert len(titled(results, "Netcat")) == len(events) // 2
    assert fired_users(results) == {"eve"}, "the windows survive the reload"
    workers = d.get("/api/v1/status").json()["workers"]
    assert all(w["events"] > 0 for w in workers), workers
    d.close_stdin()
    assert d.wait_exit() == 0, d.stderr()


def big_rule_set(directory: Path, rules: int = 400, needles: int = 40) -> Path:
    """Rules whose compiled form takes tens of MB (long `contains` lists of random words), each with a
    regex, so that it compiles at load (a rule that cannot fail waits for its first use)."""
    directory.mkdir()
    rng = random.Random(15)
    for i in range(rules):
        words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=24)) for _ in range(needles)]
        listed = "".join(f"\n            - {w}" for w in words)
        (directory / f"r{i}.yml").write_text(
            f"title: Big {i}\nlogsource: {{category: process_creation, product: windows}}\n"
            f"detection:\n    selection:\n        CommandLine|contains:{listed}\n"
            f"        Image|re: '\\\\r{i}\\.exe$'\n    condition: selection\n"
        )
    return directory


def test_the_supervisor_does_not_hold_the_compiled_rules(daemon, tmp_path):
    """The matchers evaluate with the rules compiled once in the forkserver, whose pages they share;
    the supervisor keeps what it shows of the rules, so a large rule set costs it nothing (issue 15).
    A matcher's RSS counts the shared pages in full (the rules compiled, plus its interpreter), its
    USS only its own."""
    # without the rule cache, a rule with a regex is compiled at load (from it, on first use)
    d = daemon("-r", big_rule_set(tmp_path / "big"), "--input", "http", "--workers", "1", "--no-rule-cache")
    supervisor = smaps_kb(d.pid)["Uss"]
    (matcher,) = [smaps_kb(pid) for pid in d.matcher_pids()]
    assert supervisor < matcher["Rss"], (supervisor, matcher)  # in kB; it held the rules too: ~1.3x
    assert matcher["Uss"] < matcher["Rss"] / 2, matcher  # it shares them (it compiled its own: ~0.8x)
    listed = d.get("/api/v1/rules").json()
    assert listed["detection_rules"] == 400
    assert {"title": "Big 7", "id": None, "level": None} in listed["rules"]
    d.post_events({"CommandLine": "notepad.exe"})
    d.wait_processed(1)
    assert d.post("/api/v1/reload", timeout=60).json() == {"status": "reloaded", "detection_rules": 400}
    assert smaps_kb(d.pid)["Uss"] < matcher["Rss"], "a reload loads the rules outside the supervisor too"


def test_serve_help_mentions_workers():
    result = subprocess.run(
        [sys.executable, "-m", "rsigma", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "--workers" in result.stdout
    assert any("--workers" in line and "Matcher processes" in line for line in result.stdout.splitlines())
