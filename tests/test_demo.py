"""`make demo` (examples/demo.py): the detections and the brute-force correlation come out, and nothing the
demo started outlives it, whether it finishes or is interrupted.

Every process the demo starts (nats-server, the daemon, its matchers, multiprocessing's helpers) inherits
its environment, so a marker variable set for the demo finds them all in /proc afterwards, including
any that a dead parent left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import WaitTimeout, wait_until
from tests.support.processes import kill_marked, marked_processes

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.py"
MARKER = "RSIGMA_DEMO_TEST_MARK"

DETECTIONS = {
    "Hidden PowerShell Window Running An Encoded Command",
    "CertUtil Fetching A Remote File",
    "Rundll32 Loading A DLL From A User-Writable Folder",
    "Proxy-Execution Binary Connecting To A Public Address",
    "Run Key Pointing To A Program In A User-Writable Folder",
    "Scheduled Task Created To Run Every Few Minutes From A User-Writable Path",
    "Whoami Listing Privileges Or Group Memberships",
    "Local Or Domain Account Created With Net.exe",
    "Mimikatz Module Commands In Any Windows Event",
    "LSASS Memory Dumped With ProcDump Or Comsvcs MiniDump",
    "Volume Shadow Copies Deleted From The Command Line",
}
CORRELATION = "Network Logon Brute Force Followed By A Successful Logon"

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def wait_gone(mark: str, timeout: float = 10.0) -> list[int]:
    """The processes still carrying the marker after `timeout` (the demo's children exit as it stops)."""
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: not marked_processes(mark, MARKER), "the demo's processes to exit", timeout)
    return marked_processes(mark, MARKER)


@pytest.fixture
def mark() -> Iterator[str]:
    """A marker for one demo run; whatever carries it is killed at teardown, whatever the test found."""
    value = uuid.uuid4().hex
    yield value
    kill_marked(value, MARKER)


def demo_env(mark: str) -> dict[str, str]:
    return {**os.environ, MARKER: mark, "PYTHONUNBUFFERED": "1"}


def temp_dir(output: str) -> Path:
    match = re.search(r"store in (\S+)/nats", output)
    assert match, output
    return Path(match.group(1))


def test_demo_shows_detections_and_the_correlation_and_leaves_nothing_running(mark):
    done = subprocess.run(
        [sys.executable, str(DEMO)], env=demo_env(mark), capture_output=True, text=True, timeout=120
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for title in DETECTIONS | {CORRELATION}:
        assert title in out, f"{title!r} missing from:\n{out}"
    assert "12 detections and 1 correlation result(s) on stdout; 13 messages in rsigma-detections" in out
    assert "temporal_ordered correlation, TargetUserName=svc_backup, IpAddress=10.20.7.45" in out
    assert '"correlation_type":"temporal_ordered"' in out
    # the status summary, the workers and the metrics
    assert "42 events processed, 12 detections, 1 correlation results, 0 in flight" in out
    assert "input: stream rsigma-events, consumer rsigma-daemon-events, connected" in out
    assert len(re.findall(r"matcher \d: pid \d+, alive", out)) == 2
    assert "rsigma_events_processed_total 42.0" in out
    assert "stopped the daemon (SIGTERM; it drained and saved its state, exit code 0)" in out
    assert "stopped the nats-server" in out
    assert wait_gone(mark) == [], "processes the demo started are still running"
    assert not temp_dir(out).exists()


def test_an_interrupted_demo_stops_what_it_started(tmp_path, mark):
    out_file = tmp_path / "demo.out"
    with out_file.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, str(DEMO)], env=demo_env(mark), stdout=out, stderr=subprocess.DEVNULL
        )
    try:
        # Interrupt while the daemon starts: the broker runs and the daemon's process exists.
        def starting() -> bool:
            assert demo.poll() is None, out_file.read_text()
            return "[2/5]" in out_file.read_text()

        wait_until(starting, "the demo to start the daemon", 60)
        wait_until(
            lambda: len(marked_processes(mark, MARKER)) >= 3,
            "the demo, nats-server and the daemon (they carry the marker)",
        )
        demo.send_signal(signal.SIGINT)  # as Ctrl-C would, to the demo alone
        assert demo.wait(timeout=60) == 130, out_file.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(30)
    output = out_file.read_text()
    assert "interrupted; stopping what the demo started" in output
    assert "stopped the nats-server" in output
    assert wait_gone(mark) == [], f"left running after the interrupt:\n{output}"
    assert not temp_dir(output).exists()
