"""The shared helpers keep their promises: teardown leaves no process behind, waits fail clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.support import DaemonProcess, WaitTimeout, parse_metrics, wait_until
from tests.support.processes import MARK_VARIABLE, marked_processes, pid_alive

RULE = """\
title: Whoami
logsource: {product: test}
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
"""


def test_close_kills_the_daemon_and_every_process_carrying_its_marker(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    with DaemonProcess(["-r", rules], home=tmp_path, workers=2) as d:
        d.start()
        matchers = d.matcher_pids()
        assert len(matchers) == 2
        assert set(matchers) <= set(marked_processes(d.mark))
        # A marked process that does not die with the daemon (matchers do: their parent-death
        # signal), as a process left by an earlier run of the test might.
        orphan = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"],
            env={**os.environ, MARK_VARIABLE: d.mark},
            start_new_session=True,
        )
        wait_until(lambda: orphan.pid in marked_processes(d.mark), "the orphan carries the marker")
    assert orphan.wait(10) == -signal.SIGKILL  # close() found it by its marker
    assert not any(pid_alive(pid) for pid in matchers)
    assert marked_processes(d.mark) == []


def test_a_restart_keeps_the_flags_and_the_logs_of_every_run(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    with DaemonProcess(["-r", rules, "--input", "http"], home=tmp_path) as d:
        first = d.start().base
        d.post_events({"CommandLine": "whoami"})
        d.wait_processed(1)
        assert d.terminate() == 0
        d.start()
        assert d.generation == 2 and d.base != first
        assert d.find_log("daemon stopped") is None  # this run's log
        assert len([r for r in d.logs(all_generations=True) if r.get("message") == "daemon started"]) == 2


def test_wait_until_returns_the_value_and_fails_clearly():
    assert wait_until(lambda: 42, "a value") == 42
    with pytest.raises(WaitTimeout, match="timed out after 0.05 s waiting for never") as info:
        wait_until(lambda: False, "never", 0.05)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, TimeoutError)
    with pytest.raises(KeyError):  # a predicate's error is not a "not yet"...
        wait_until(lambda: {}["x"], "a key", 0.05)
    with pytest.raises(WaitTimeout, match="last error: KeyError"):  # ...unless asked
        wait_until(lambda: {}["x"], "a key", 0.05, retry_on=(KeyError,))


def test_parse_metrics_keys_samples_by_name_and_labels():
    text = '# TYPE x_total counter\nx_total{worker="0"} 3.0\nx_total{worker="1"} 4.0\n'
    samples = parse_metrics(text)
    assert samples[("x_total", frozenset({("worker", "1")}))] == 4.0
