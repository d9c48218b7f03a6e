"""Sink failures: retries with backoff, then dead-letter entries; a stuck sink; file URL handling."""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import signal
import termios
import threading
import time
import uuid
from pathlib import Path

import pytest

TWO_MATCH_RULES = """\
title: Whoami
id: 11111111-1111-4111-8111-111111111111
level: high
logsource:
    product: test
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
---
title: Cmd shell
id: 66666666-6666-4666-8666-666666666666
level: low
logsource:
    product: test
detection:
    selection:
        CommandLine|startswith: 'cmd /c'
    condition: selection
"""


@pytest.fixture
def two_rules(tmp_path) -> Path:
    path = tmp_path / "two.yml"
    path.write_text(TWO_MATCH_RULES)
    return path


def test_unwritable_file_sink_retries_then_dead_letters(daemon, two_rules, ev, tmp_path, jsonl, wait_until):
    sinks = tmp_path / "x"
    sinks.mkdir()
    bad, good, dlq = sinks / "out", sinks / "good.ndjson", tmp_path / "dlq.ndjson"
    d = daemon(
        "-r",
        two_rules,
        "--input",
        "http",
        "--output",
        f"file://{bad}",
        "--output",
        f"file://{good}",
        "--dlq",
        f"file://{dlq}",
        "--sink-retry-max",
        "1",
        "--sink-backoff-base-ms",
        "10",
    )
    if bad.exists():
        bad.unlink()
    bad.mkdir()  # the sink's path is now a directory: every write fails

    d.post_events(ev.whoami(1), ev.quiet(2), {"CommandLine": "cmd /c dir"})
    entries = wait_until(lambda: len(jsonl(dlq)) >= 2 and jsonl(dlq), "2 DLQ entries")
    d.wait_processed(3)
    delivered = wait_until(lambda: len(jsonl(good)) >= 3 and jsonl(good), "3 results in the good sink")
    assert [r["rule_title"] for r in delivered] == ["Whoami", "Cmd shell", "Cmd shell"]

    assert len(entries) == 2
    for entry in entries:
        assert list(entry) == ["original_event", "error", "timestamp"]
        assert entry["error"].startswith("sink delivery failure"), entry["error"]
    # original_event is the JSON array of that event's results, as the working sink got them.
    assert json.loads(entries[0]["original_event"]) == delivered[:2]
    assert json.loads(entries[1]["original_event"]) == delivered[2:]

    retries = d.metric("rsigma_sink_retries_total", sink="file")
    assert retries is not None and retries > 0
    assert d.metric("rsigma_sink_delivery_failures_total", sink="file") == 2
    assert d.metric("rsigma_dlq_events_total") == 2
    assert any(r.get("level") == "warning" and "sink" in r["message"] for r in d.logs())

    # The path is usable again: the sink recovers and nothing more is dead-lettered.
    bad.rmdir()
    d.post_events(ev.whoami(3))
    wait_until(lambda: jsonl(bad), "the recovered sink's output")
    assert [r["matched_fields"][0]["value"] for r in jsonl(bad)] == ["cmd /c whoami #3", "cmd /c whoami #3"]
    assert len(jsonl(dlq)) == 2
    assert d.alive()


@pytest.mark.parametrize("retry_max", [0, 1, 3])
def test_retry_count_follows_sink_retry_max(daemon, two_rules, ev, tmp_path, jsonl, retry_max):
    bad, dlq = tmp_path / "out", tmp_path / "dlq.ndjson"
    d = daemon(
        "-r",
        two_rules,
        "--input",
        "http",
        "--output",
        f"file://{bad}",
        "--dlq",
        f"file://{dlq}",
        "--sink-retry-max",
        str(retry_max),
        "--sink-backoff-base-ms",
        "10",
    )
    bad.unlink()  # created at startup
    bad.mkdir()  # the sink's path is now a directory: every write fails
    d.post_events(ev.whoami(1))
    d.wait_metric("rsigma_dlq_events_total", 1)
    assert d.metric("rsigma_sink_delivery_failures_total", sink="file") == 1
    assert (d.metric("rsigma_sink_retries_total", sink="file") or 0) == retry_max
    attempts = [r for r in d.logs() if r.get("message") == "sink write failed"]
    assert len(attempts) == retry_max + 1


def test_without_dlq_a_failing_sink_holds_the_results_until_written(
    daemon, two_rules, ev, tmp_path, jsonl, wait_until
):
    """HTTP cannot redeliver, and there is no DLQ: the results are retried until the sink takes
    them, never acknowledged before, written once, in order; the other sink goes on meanwhile."""
    bad = tmp_path / "out"
    d = daemon(
        "-r",
        two_rules,
        "--input",
        "http",
        "--output",
        f"file://{bad}",
        "--output",
        "stdout",
        "--sink-retry-max",
        "0",
        "--sink-backoff-base-ms",
        "10",
        "--sink-backoff-max-ms",
        "200",
    )
    bad.unlink()  # created at startup
    bad.mkdir()  # the sink's path is now a directory: every write fails
    d.post_events(ev.whoami(1))
    d.wait_metric("rsigma_sink_delivery_failures_total", 1, sink="file")
    d.post_events(ev.whoami(2))
    wait_until(lambda: len(d.results()) == 4, "the stdout sink's results of both events")
    wait_until(lambda: d.find_logs("sink write failed; holding the results"), "the holding warning")
    time.sleep(1)  # several more failed attempts
    assert d.status()["events_in_flight"] == 2  # neither event acknowledged
    assert (d.metric("rsigma_sink_retries_total", sink="file") or 0) >= 3
    assert d.metric("rsigma_dlq_events_total") == 0

    bad.rmdir()  # space again
    wait_until(lambda: len(jsonl(bad)) == 4, "the held results written")
    wait_until(lambda: d.status()["events_in_flight"] == 0, "both events acknowledged")
    assert [r["matched_fields"][0]["value"] for r in jsonl(bad)] == ["cmd /c whoami #1"] * 2 + [
        "cmd /c whoami #2"
    ] * 2
    assert d.metric("rsigma_dlq_events_total") == 0
    assert len(d.find_logs("sink write failed; holding the results")) <= 2  # rate-limited


def test_a_dlq_on_a_full_disk_holds_the_entries_and_the_input_waits(
    daemon, ev, rules_dir, tmp_path, jsonl, wait_until
):
    """HTTP cannot redeliver: a DLQ write that keeps failing (ENOSPC) is retried until it succeeds.
    Meanwhile the DLQ's queue fills and the input waits (back-pressure); once the disk
    takes writes again every entry is written once, every event acknowledged, none lost."""
    out, dlq = tmp_path / "out.ndjson", tmp_path / "dlq.ndjson"
    d = daemon(
        "-r",
        rules_dir,
        "--input",
        "http",
        "--output",
        f"file://{out}",
        "--dlq",
        f"file://{dlq}",
        "--buffer-size",
        "1",
        "--sink-backoff-base-ms",
        "10",
        "--sink-backoff-max-ms",
        "200",
    )
    dlq.unlink()
    dlq.symlink_to("/dev/full")  # every write fails with ENOSPC
    body = b"".join(b'{"not json %d\n' % n for n in range(6)) + ev.line(ev.whoami(1))
    answers: list[int] = []
    post = threading.Thread(target=lambda: answers.append(d.post("/api/v1/events", body, timeout=60).status))
    post.start()
    d.wait_metric("rsigma_dlq_write_failures_total", 1)
    time.sleep(1)  # more failed writes
    assert d.metric("rsigma_back_pressure_events_total") > 0
    assert not jsonl(out)  # the event after the bad lines waits its turn

    dlq.unlink()  # space again
    post.join(30)
    assert answers == [200]
    wait_until(lambda: jsonl(out), "the whoami result")
    wait_until(lambda: d.status()["events_in_flight"] == 0, "every event acknowledged")
    entries = jsonl(dlq)
    assert [e["original_event"] for e in entries] == [f'{{"not json {n}' for n in range(6)]
    assert all(e["error"].startswith("invalid JSON") for e in entries)
    assert len(d.find_logs("DLQ write failed; holding the event")) >= 1
    assert d.metric("rsigma_dlq_write_failures_total") == 1  # only the first entry waited past its retries


def test_file_url_with_a_host_part_is_not_rerooted(daemon, rules_dir, ev, tmp_path):
    """`file://./x` is a relative path (as in RSigma) or a startup error, never /x at the filesystem root."""
    name = f"rsigma-test-{uuid.uuid4().hex}.ndjson"
    rooted = Path("/") / name
    try:
        d = daemon("-r", rules_dir, "--output", f"file://./{name}", stdin=ev.ndjson(ev.whoami(1)), wait=False)
        rc = d.wait_exit()
        assert not rooted.exists(), f"file://./{name} was written to {rooted}"
        if rc == 0:
            assert (tmp_path / name).exists(), "a relative file URL is relative to the working directory"
        else:
            assert rc == 3, d.stderr()
    finally:
        rooted.unlink(missing_ok=True)


# ---- a stuck stdout consumer ----------------------------------------------------------------


def fill_stdout(d, ev, wait_until) -> None:
    """Feed whoami events until the daemon's stdout pipe (never read) is full."""
    payload = ev.ndjson(*(ev.whoami(i) for i in range(5000)))

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            d.send(payload)

    threading.Thread(target=feed, daemon=True).start()
    fd = d.proc.stdout.fileno()
    capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)

    seen: list[int] = []

    def full() -> bool:
        """More than half the pipe is unread output and it stopped growing: the writer is blocked."""
        buf = bytearray(4)
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        seen.append(int.from_bytes(buf, "little"))
        return len(seen) > 5 and seen[-1] > capacity // 2 and len(set(seen[-5:])) == 1

    wait_until(full, "the stdout pipe to fill up")


@pytest.fixture
def stuck_daemon(daemon, rules_dir, ev, wait_until):
    d = daemon("-r", rules_dir, "--drain-timeout", "1", stdout="pipe")
    fill_stdout(d, ev, wait_until)
    return d


def test_api_answers_while_stdout_is_stuck(stuck_daemon):
    try:
        r = stuck_daemon.get("/healthz", timeout=30)  # a hang guard: a blocked loop never answers
    except TimeoutError:
        pytest.fail("GET /healthz got no answer while the stdout consumer is stuck")
    assert r.status == 200


def test_sigterm_exits_within_drain_timeout_while_stdout_is_stuck(stuck_daemon):
    stuck_daemon.signal(signal.SIGTERM)
    assert stuck_daemon.wait_exit(60) == 0  # without --drain-timeout 1 it would wait forever
    left = [r for r in stuck_daemon.logs() if r.get("unacknowledged_events")]
    assert left, "events that did not drain are reported in the log with a count"


def test_directory_removed_under_file_sink(daemon, rules_dir, ev, tmp_path, jsonl, wait_until):
    """The sink's directory disappears: deliveries are dead-lettered, the daemon keeps running."""
    sinks, dlq = tmp_path / "sinks", tmp_path / "dlq.ndjson"
    sinks.mkdir()
    d = daemon(
        "-r",
        rules_dir,
        "--input",
        "http",
        "--output",
        f"file://{sinks / 'out.ndjson'}",
        "--dlq",
        f"file://{dlq}",
        "--sink-retry-max",
        "1",
        "--sink-backoff-base-ms",
        "10",
    )
    shutil.rmtree(sinks)
    d.post_events(ev.whoami(1))
    entries = wait_until(lambda: jsonl(dlq), "a DLQ entry")
    assert entries[0]["error"].startswith("sink delivery failure")
    assert d.get("/healthz").status == 200
