"""`Type=notify`: the daemon tells systemd it is ready, alive and stopping, over a real datagram socket."""

from __future__ import annotations

import time

from rsigma.daemon.systemd import Notifier
from tests.support.systemd import NotifySocket


def test_ready_watchdog_and_stopping(daemon, rules_dir):
    with NotifySocket() as notify:
        d = daemon("-r", rules_dir, "--input", "http", env=notify.env(watchdog_usec=400_000), wait=False)
        ready = notify.wait_for("READY=1")
        d.wait_started()
        assert d.get("/readyz").status == 200  # ready was set before READY=1 went out
        notify.wait_for("WATCHDOG=1", count=notify.lines().count("WATCHDOG=1") + 3)  # every 0.2 s
        assert "STOPPING=1" not in notify.lines()
        started = time.monotonic()
        assert d.terminate() == 0
        stopping = notify.wait_for("STOPPING=1")
        print(f"exit 0 {time.monotonic() - started:.2f} s after SIGTERM")
        lines = notify.lines()
        assert ready < stopping
        assert lines[ready + 1] == "STATUS=running"
        assert lines.count("READY=1") == 1 and lines.count("STOPPING=1") == 1
        assert any(line.startswith("STATUS=") for line in lines[:ready]), lines[:ready]  # startup steps


def test_without_watchdog_usec_no_watchdog_messages(daemon, rules_dir):
    with NotifySocket() as notify:
        d = daemon("-r", rules_dir, "--input", "http", env=notify.env())
        notify.wait_for("READY=1")
        time.sleep(0.5)
        assert d.terminate() == 0
        notify.wait_for("STOPPING=1")
        assert "WATCHDOG=1" not in notify.lines()


def test_notifier_reads_systemds_variables():
    assert not Notifier({}).enabled
    assert Notifier({"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_s == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_s is None  # not ours
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None
