"""A matcher that stops answering (SIGSTOP: a real process that is alive and silent), a SIGTERM while
one does, the rings a killed pool leaves in /dev/shm, and what the host allows a pool."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import processes
from tests.support.daemon import DaemonProcess
from workers.host import default_workers
from workers.pool import RING_BYTES

pytestmark = pytest.mark.single_backend  # the pool is the subject: each test gives its --workers

SHM = Path("/dev/shm")


def whoami_seqs(results: list[dict[str, Any]]) -> list[int]:
    seqs = []
    for r in results:
        (field,) = [f for f in r["matched_fields"] if f["field"] == "CommandLine"]
        seqs.append(int(field["value"].rsplit("#", 1)[1]))
    return sorted(seqs)


def stop_holding(d: DaemonProcess, index: int, send: Any, wait_until: Any) -> int:
    """SIGSTOP matcher `index`, then `send()` events until it holds a batch; its pid."""
    victim = d.status()["workers"][index]["pid"]
    os.kill(victim, signal.SIGSTOP)
    send()
    wait_until(lambda: d.status()["workers"][index]["in_flight"] > 0, f"a batch held by matcher {index}")
    return int(victim)


def test_a_hung_matcher_is_killed_and_restarted_and_nothing_is_lost(daemon, ev, rules_dir, wait_until):
    """Case: one matcher of two SIGSTOPped. Output froze for good (results go out in order), nothing
    said why. Now the watchdog kills it after --matcher-timeout, it is restarted, its batch re-sent."""
    d = daemon("-r", rules_dir, "--workers", "2", "--matcher-timeout", "2")
    first = [ev.whoami(i) if i % 2 == 0 else ev.quiet(i) for i in range(2000)]
    rest = [ev.whoami(i) if i % 2 == 0 else ev.quiet(i) for i in range(2000, 8000)]
    d.send(ev.ndjson(*first))
    d.wait_processed(len(first))
    stopped_at = time.monotonic()
    victim = stop_holding(d, 0, lambda: d.send(ev.ndjson(*rest)), wait_until)
    try:
        stalled = wait_until(
            lambda: (w := d.status()["workers"][0])["stalled_seconds"] >= 1 and w, "matcher 0 seen stalled"
        )
        assert stalled["pid"] == victim and stalled["seconds_since_answer"] >= 1
        killed = wait_until(
            lambda: d.find_log("matcher made no progress within its timeout; killing it"), "the kill", 30
        )
        d.wait_processed(len(first) + len(rest), timeout=60)
        stall_s = time.monotonic() - stopped_at
    finally:
        if processes.pid_alive(victim):
            os.kill(victim, signal.SIGKILL)
    print(f"SIGSTOP to every result delivered: {stall_s:.2f} s with --matcher-timeout 2")
    assert killed["level"] == "warning"
    assert killed["matcher"] == 0 and killed["pid"] == victim and killed["stalled_seconds"] >= 2
    assert not processes.pid_alive(victim), "SIGKILL ends a stopped process"
    assert d.find_logs("matcher restarted;")
    assert d.metric("rsigma_worker_timeouts_total", worker="0") == 1
    assert d.metric("rsigma_worker_timeouts_total", worker="1") == 0
    assert d.metric("rsigma_worker_poison_events_total", worker="0") == 0, "one timeout blames no event"
    workers = d.status()["workers"]
    assert workers[0]["timeouts"] == 1 and workers[0]["restarts"] == 1 and workers[0]["pid"] != victim
    assert all(w["alive"] and w["stalled_seconds"] == 0 for w in workers)
    expected = [e["seq"] for e in first + rest if "whoami" in e["CommandLine"]]
    assert whoami_seqs(d.results()) == expected, "every detection exactly once: 0 lost, 0 duplicated"


def test_readyz_is_503_while_no_matcher_can_take_work(daemon, ev, rules_dir, wait_until):
    d = daemon("-r", rules_dir, "--workers", "1")
    assert d.get("/readyz").json() == {"status": "ready", "rules_loaded": True}
    victim = stop_holding(d, 0, lambda: d.send(ev.ndjson(*[ev.whoami(i) for i in range(600)])), wait_until)
    try:
        wait_until(lambda: d.get("/readyz").status == 503, "/readyz 503 while the only matcher is stalled")
        body = d.get("/readyz").json()
        assert body == {
            "status": "not_ready",
            "rules_loaded": True,
            "matchers_available": 0,
            "reason": "no matcher can take work: each is restarting or stalled",
        }
        assert d.status()["workers"][0]["stalled_seconds"] >= 2
    finally:
        os.kill(victim, signal.SIGCONT)
    d.wait_processed(600)
    assert d.get("/readyz").status == 200
    assert d.find_log("matcher made no progress within its timeout; killing it") is None  # 15 s default


def saved_snapshot(db: Path) -> bytes | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT snapshot FROM rsigma_correlation_state").fetchone()
    return row[0] if row else None


def test_sigterm_with_a_hung_matcher_exits_without_saving_a_partial_snapshot(
    daemon, ev, rules_dir, tmp_path, wait_until
):
    """Case: SIGTERM waited forever for the hung matcher's state. Now the drain, the state export and
    the stop are each bounded; the saved snapshot is the last complete one; no matcher survives."""
    db = tmp_path / "state.db"
    d = daemon(
        "-r", rules_dir, "--workers", "2", "--drain-timeout", "1", "--state-db", db,
        "--state-save-interval", "0.5",
    )  # fmt: skip
    d.send(ev.ndjson(ev.failed("eve", 0), ev.failed("eve", 1)))
    d.wait_processed(2)
    wait_until(lambda: saved_snapshot(db), "a periodic state save")
    pids = d.matcher_pids()
    rings = processes.shm_segments([d.pid, *pids])
    assert len(rings) == 4
    victim = stop_holding(d, 0, lambda: d.send(ev.ndjson(*[ev.whoami(i) for i in range(3000)])), wait_until)
    try:
        time.sleep(1.0)  # an export that was under way when it stopped has finished by now, or never will
        before = saved_snapshot(db)
        signalled = time.monotonic()
        d.signal(signal.SIGTERM)
        code = d.wait_exit(60)
        exit_s = time.monotonic() - signalled
    finally:
        if processes.pid_alive(victim):
            os.kill(victim, signal.SIGKILL)
    print(f"SIGTERM to exit with matcher 0 stopped and --drain-timeout 1: {exit_s:.2f} s")
    assert code == 0, d.stderr()
    assert exit_s < 20
    skipped = d.find_log(
        "correlation state not saved at shutdown: the evaluation backend did not export it in time;"
        " the last saved snapshot is kept"
    )
    assert skipped is not None and skipped["level"] == "warning" and skipped["matchers_not_answering"] == [0]
    assert saved_snapshot(db) == before
    wait_until(lambda: not any(processes.pid_alive(p) for p in pids), "no matcher left", 10)
    wait_until(lambda: not any((SHM / r).exists() for r in rings), "the rings removed", 10)
    # The snapshot kept is whole: eve's two failed logons are in it, and a third fires.
    again = daemon("-r", rules_dir, "--workers", "2", "--state-db", db, stdin=ev.ndjson(ev.failed("eve", 2)))
    assert again.wait_exit(60) == 0, again.stderr()
    assert [r["rule_title"] for r in again.results()] == ["Brute force"]


def test_rings_of_a_killed_pool_are_removed(daemon, ev, rules_dir, wait_until):
    """Case: a pool SIGKILLed with a stopped matcher left its rings in /dev/shm for good. Now the
    matcher dies with its supervisor (so the resource tracker removes them); and if the tracker died
    too, the next pool to start removes them, but never those of a pool that is running."""
    live = daemon("-r", rules_dir, "--workers", "1")
    live_rings = processes.shm_segments([live.pid, *live.matcher_pids()])

    d = daemon("-r", rules_dir, "--workers", "1")
    (matcher,) = d.matcher_pids()
    rings = processes.shm_segments([d.pid, matcher])
    os.kill(matcher, signal.SIGSTOP)
    killed_at = time.monotonic()
    d.kill()
    wait_until(lambda: not processes.pid_alive(matcher), "the stopped matcher to die with its supervisor", 10)
    died_s = time.monotonic() - killed_at
    wait_until(lambda: not any((SHM / r).exists() for r in rings), "the tracker to remove the rings", 15)
    gone_s = time.monotonic() - killed_at
    print(f"supervisor SIGKILLed: the stopped matcher gone after {died_s:.2f} s, its rings {gone_s:.2f} s")

    d = daemon("-r", rules_dir, "--workers", "1")
    rings = processes.shm_segments([d.pid, *d.matcher_pids()])
    helpers = [p for p in d.tree_pids() if p != d.pid]  # the matcher and multiprocessing's resource tracker
    for pid in helpers:
        os.kill(pid, signal.SIGSTOP)
    for pid in [d.pid, *helpers]:
        os.kill(pid, signal.SIGKILL)  # all at once, as the OOM killer or `kill -9 -PGID` would
    d.kill()
    wait_until(lambda: not any(processes.pid_alive(p) for p in helpers), "every process gone", 10)
    assert all((SHM / r).exists() for r in rings), "left behind"

    nxt = daemon("-r", rules_dir, "--workers", "1")
    assert not any((SHM / r).exists() for r in rings)
    # Any pool starting on this machine sweeps such rings: in a parallel test run another test's pool
    # may have been first, and then this one found nothing left to remove.
    removed = nxt.find_log("removed shared-memory rings left by matcher pools that are gone")
    assert removed is None or removed["rings"] >= 2
    assert all((SHM / r).exists() for r in live_rings), "a running pool's rings are never touched"
    live.send(ev.ndjson(ev.whoami(1)))
    live.wait_processed(1)
    assert len(live.results()) == 1


def test_a_dev_shm_too_small_for_the_rings_exits_3_naming_shm_size(run_daemon, rules_dir):
    stat = os.statvfs(SHM)
    workers = stat.f_bavail * stat.f_frsize // (2 * RING_BYTES) + 1
    result = run_daemon("-r", rules_dir, "--workers", str(workers))
    assert result.returncode == 3, result.stderr
    assert "/dev/shm has" in result.stderr and "shm_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_defaults_to_the_usable_cpus_but_one(daemons, rules_dir):
    """Not os.cpu_count(): the CPUs this process may run on (a cgroup quota may lower it further)."""
    d = daemons.start("-r", rules_dir, command="serve", workers=None)
    assert len(d.status()["workers"]) == default_workers()
    assert 1 <= default_workers() <= max(1, len(os.sched_getaffinity(0)) - 1)
