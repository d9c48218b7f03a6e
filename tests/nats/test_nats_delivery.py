"""At-least-once from a JetStream input: redelivery, the last delivery, replay, state position, groups."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from tests.support import DaemonProcess, wait_until
from tests.support.nats_client import (
    WHOAMI,
    ack_floor,
    add_stream,
    consumer_pending,
    delete_stream,
    publish,
    publish_many,
)

STREAM = "rsigma-events"
CONSUMER = "rsigma-daemon-events"


def numbered(first: int, last: int) -> list[bytes]:
    """Events that each fire the Whoami rule once, told apart by `n`."""
    return [json.dumps({**WHOAMI, "n": n}).encode() for n in range(first, last + 1)]


def detected(path: Path) -> list[int]:
    """The `n` of every detection written to a file output (with --include-event), in order; a last
    line the daemon is still writing (no newline yet) is left for the next look."""
    if not path.exists():
        return []
    *complete, _partial = path.read_text().split("\n")
    return [json.loads(line)["event"]["n"] for line in complete]


def stop(d: DaemonProcess) -> None:
    """SIGTERM: the daemon drains and exits 0."""
    assert d.terminate() == 0, d.stderr()


def all_acked(url: str, consumer: str = CONSUMER):  # type: ignore[no-untyped-def]
    return lambda: consumer_pending(url, STREAM, consumer) == (0, 0)


def output_numbers(url: str, stream: str) -> list[int]:
    """The `n` of every detection stored in a NATS output stream, read through one ephemeral consumer."""

    async def go() -> list[int]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            total = (await js.stream_info(stream)).state.messages
            config = ConsumerConfig(ack_policy=AckPolicy.NONE)  # read-only: no ack-pending limit
            sub = await js.pull_subscribe("detections", stream=stream, config=config)
            numbers: list[int] = []
            while len(numbers) < total:
                for msg in await sub.fetch(min(1000, total - len(numbers)), timeout=5):
                    numbers.append(json.loads(msg.data)["event"]["n"])
            return numbers
        finally:
            await nc.close()

    return asyncio.run(go())


def create_input_stream(url: str) -> None:
    """The stream the daemon would create for `events.>`, made first so events can wait in it."""
    add_stream(url, STREAM, ["events.>"])


def kill_with_results_unacked(d: DaemonProcess, out: Path, url: str) -> None:
    """SIGKILL once the file holds the results of an event JetStream has not seen acked: the first
    one past the ack floor (events n are stream sequences n, and each is detected). It is
    redelivered, so its results are written and published again, and the NATS output must drop
    the copies. The daemon is stopped while this is checked, and let run on when it does not hold."""
    deadline = time.monotonic() + 30
    while True:
        d.signal(signal.SIGSTOP)
        time.sleep(0.2)  # acks it sent before stopping reach the server
        if ack_floor(url, STREAM, CONSUMER) + 1 in set(detected(out)):
            break
        d.signal(signal.SIGCONT)
        assert time.monotonic() < deadline, "never caught results written and not acknowledged"
        time.sleep(0.005)
    d.kill()  # SIGKILL, stopped as it is


def test_a_killed_daemon_loses_nothing_and_publishes_no_duplicate(nats_server, daemon, tmp_path):
    url = nats_server.url
    out = tmp_path / "out.ndjson"
    args = ("--input", f"{url}/events.>", "--output", f"file://{out}", "--include-event")
    args += ("--output", f"{url}/detections", "--nats-ack-wait", "1", "--batch-size", "64")
    create_input_stream(url)
    publish_many(url, "events.win", STREAM, numbered(1, 20_000))
    d = daemon(*args)
    wait_until(lambda: len(detected(out)) >= 200, "the first detections")
    kill_with_results_unacked(d, out, url)
    seen_before_kill = len(detected(out))
    not_delivered, not_acked = consumer_pending(url, STREAM, CONSUMER)
    assert not_delivered + not_acked > 0, "the kill came after the whole stream was done"
    d.start()  # the same flags again
    try:
        wait_until(all_acked(url), "every message acked after the restart", timeout=60)
        assert set(detected(out)) == set(range(1, 20_001))
        # The file got the redelivered events' detections twice; the NATS output dropped the copies
        # by their Nats-Msg-Id.
        assert len(detected(out)) > 20_000
        assert sorted(output_numbers(url, "rsigma-detections")) == list(range(1, 20_001))
        assert len(detected(out)) >= seen_before_kill
    finally:
        stop(d)


def test_the_last_delivery_goes_to_the_dlq_with_its_count(nats_server, daemon, tmp_path):
    url = nats_server.url
    dlq = tmp_path / "dlq.ndjson"
    d = daemon(
        "--input", f"{url}/events.>",
        "--output", f"{url}/detections",
        "--dlq", f"file://{dlq}",
        "--nats-max-deliver", "2",
        "--sink-retry-max", "0",
    )  # fmt: skip
    try:
        delete_stream(url, "rsigma-detections")  # every publish of a detection now fails
        publish(url, "events.win", numbered(1, 1) + [b'{"Image": "notepad.exe"}'])
        wait_until(all_acked(url), "both messages acked", timeout=20)
        entries = [json.loads(line) for line in dlq.read_text().splitlines()]
        assert len(entries) == 1, entries  # the first failure was handed back, not dead-lettered
        assert entries[0]["delivery_count"] == 2
        assert entries[0]["error"].startswith("sink delivery failure: nats:")
        assert json.loads(entries[0]["original_event"])[0]["rule_title"] == "Whoami"
    finally:
        stop(d)


def full_disk(*paths: Path) -> None:
    """Every later write to these paths fails with ENOSPC: each becomes a link to /dev/full (a file
    sink reopens a path that no longer names its file)."""
    for path in paths:
        path.unlink(missing_ok=True)
        path.symlink_to("/dev/full")


@pytest.mark.parametrize("with_dlq", [True, False], ids=["dlq", "no-dlq"])
def test_the_last_delivery_is_held_until_written_on_a_full_disk(nats_server, daemon, tmp_path, with_dlq):
    """Output (and DLQ) fail with ENOSPC on the last delivery JetStream makes: nothing would bring
    the event back, so it is held, unacknowledged, until the disk takes it; then written once, acked.
    Meanwhile JetStream keeps it pending (in-progress acks) well past its ack wait."""
    url = nats_server.url
    out, dlq = tmp_path / "out.ndjson", tmp_path / "dlq.ndjson"
    args = ["--input", f"{url}/events.>", "--output", f"file://{out}", "--include-event"]
    args += ["--nats-max-deliver", "2", "--nats-ack-wait", "2", "--sink-retry-max", "0"]
    args += ["--sink-backoff-base-ms", "10", "--sink-backoff-max-ms", "200"]
    if with_dlq:
        args += ["--dlq", f"file://{dlq}"]
    d = daemon(*args)
    try:
        full_disk(out, dlq)
        publish(url, "events.win", numbered(1, 1))
        # Both deliveries failed at the output; with a DLQ, its write ran out of retries too.
        d.wait_metric("rsigma_sink_delivery_failures_total", 2, timeout=30, sink="file")
        if with_dlq:
            d.wait_metric("rsigma_dlq_write_failures_total", 1, timeout=30)
        assert d.metric("rsigma_nats_naks_total") == 1  # the first delivery was handed back
        time.sleep(4)  # twice the ack wait, more failed writes; JetStream gets no ack meanwhile
        assert consumer_pending(url, STREAM, CONSUMER) == (0, 1)  # delivered, not acknowledged
        assert d.status()["events_in_flight"] == 1

        for path in (out, dlq):
            path.unlink()  # space again
        recovered = time.monotonic()
        wait_until(all_acked(url), "the event acknowledged once written", timeout=30)
        print(f"acknowledged {time.monotonic() - recovered:.2f} s after the disk took writes again")
        holding = (
            "DLQ write failed; holding the event" if with_dlq else "sink write failed; holding the results"
        )
        assert d.find_logs(holding)
        if with_dlq:
            [entry] = [json.loads(line) for line in dlq.read_text().splitlines()]
            assert entry["delivery_count"] == 2
            assert entry["error"].startswith("sink delivery failure: file:")
            assert [r["event"]["n"] for r in json.loads(entry["original_event"])] == [1]
            assert d.metric("rsigma_dlq_write_failures_total") == 1
        else:
            assert detected(out) == [1]
            assert not dlq.exists()
        assert d.status()["events_in_flight"] == 0
    finally:
        stop(d)


def test_an_unusable_message_the_dlq_cannot_take_is_handed_back_then_held(nats_server, daemon, tmp_path):
    """Not JSON, and the DLQ's disk is full: JetStream can still redeliver it, so after the DLQ's
    retries it is handed back (a nak); its last delivery is held until the entry is written."""
    url = nats_server.url
    dlq = tmp_path / "dlq.ndjson"
    d = daemon(
        "--input", f"{url}/events.>", "--output", "stdout", "--dlq", f"file://{dlq}",
        "--nats-max-deliver", "2", "--nats-ack-wait", "2",
        "--sink-backoff-base-ms", "10", "--sink-backoff-max-ms", "200",
    )  # fmt: skip
    try:
        full_disk(dlq)
        publish(url, "events.win", [b"{not json"])
        d.wait_metric("rsigma_nats_naks_total", 1, timeout=30)
        d.wait_metric("rsigma_nats_redelivered_messages_total", 1, timeout=30)
        time.sleep(3)  # the last delivery, held past the ack wait
        assert consumer_pending(url, STREAM, CONSUMER) == (0, 1)
        dlq.unlink()  # space again
        wait_until(all_acked(url), "the message acknowledged once its entry is written", timeout=30)
        [entry] = [json.loads(line) for line in dlq.read_text().splitlines()]
        assert (entry["original_event"], entry["delivery_count"]) == ("{not json", 2)
        assert entry["error"].startswith("invalid JSON")
    finally:
        stop(d)


def test_replay_moves_an_existing_consumer(nats_server, daemon, tmp_path):
    url = nats_server.url
    out = tmp_path / "out.ndjson"
    args = ("--input", f"{url}/events.>", "--output", f"file://{out}", "--include-event")
    create_input_stream(url)
    publish(url, "events.win", numbered(1, 5))
    d = daemon(*args)
    wait_until(all_acked(url), "first pass acked")
    stop(d)
    assert detected(out) == [1, 2, 3, 4, 5]

    d = daemon(*args, "--replay-from-sequence", "4")
    wait_until(lambda: len(detected(out)) == 7, "replay from sequence 4")
    stop(d)
    assert detected(out)[5:] == [4, 5]
    assert "NATS consumer recreated to replay" in d.stderr()

    d = daemon(*args, "--replay-from-latest")
    wait_until(lambda: len(detected(out)) == 8, "replay from the latest message")
    stop(d)
    assert detected(out)[7:] == [5]

    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    publish(url, "events.win", numbered(6, 7))
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + f".{int(cut % 1 * 1e6):06d}Z"
    d = daemon(*args, "--replay-from-time", moment)
    wait_until(lambda: len(detected(out)) == 10, "replay from a time")
    stop(d)
    assert detected(out)[8:] == [6, 7]

    d = daemon(*args)  # no flag: resumes where the last run acked, nothing new
    publish(url, "events.win", numbered(8, 8))
    wait_until(lambda: len(detected(out)) == 11, "resume")
    stop(d)
    assert detected(out)[10:] == [8]


def test_the_state_db_keeps_the_contiguous_ack_floor(nats_server, daemon, tmp_path):
    url = nats_server.url
    db = tmp_path / "state.db"
    create_input_stream(url)
    before = time.time_ns()
    publish(url, "events.win", numbered(1, 40))
    after = time.time_ns()
    d = daemon("--input", f"{url}/events.>", "--output", "stdout", "--state-db", db)
    wait_until(all_acked(url), "all acked")
    stop(d)
    with sqlite3.connect(db) as conn:
        sequence, timestamp_ns = conn.execute(
            "SELECT source_sequence, source_timestamp_ns FROM rsigma_correlation_state"
        ).fetchone()
    assert sequence == 40  # a detection-only rule set still records its position
    assert before <= timestamp_ns <= after


def test_state_is_cleared_when_replaying_from_before_the_saved_position(nats_server, daemon, tmp_path):
    url = nats_server.url
    db = tmp_path / "state.db"
    args = ("--input", f"{url}/events.>", "--output", "stdout", "--state-db", str(db))
    create_input_stream(url)
    publish(url, "events.win", numbered(1, 3))
    d = daemon(*args)
    wait_until(all_acked(url), "all acked")
    stop(d)
    d = daemon(*args, "--replay-from-sequence", "2")
    wait_until(all_acked(url), "the replay acked")  # its state then reflects up to sequence 3
    stop(d)
    assert "saved correlation state not restored" in d.stderr()
    d = daemon(*args, "--replay-from-sequence", "9")
    stop(d)
    assert "correlation state restored" in d.stderr()


def test_a_consumer_group_splits_the_stream(nats_server, daemon, tmp_path):
    url = nats_server.url
    outs = [tmp_path / "a.ndjson", tmp_path / "b.ndjson"]
    members = []
    for out in outs:
        members.append(
            daemon(
                "--input",
                f"{url}/events.>",
                "--output",
                f"file://{out}",
                "--include-event",
                "--consumer-group",
                "detectors",
            )  # fmt: skip
        )
    try:
        publish(url, "events.win", numbered(1, 400))
        wait_until(lambda: sum(len(detected(o)) for o in outs) == 400, "every event detected once")
        wait_until(all_acked(url, "detectors"), "all acked")
        a, b = (detected(o) for o in outs)
        assert sorted(a + b) == list(range(1, 401))  # no event twice, none lost
        assert a and b  # both members got a share
    finally:
        for member in members:
            stop(member)


def test_a_broker_outage_is_reported_and_survived(nats_server, daemon, tmp_path):
    url = nats_server.url
    out = tmp_path / "out.ndjson"
    d = daemon("--input", f"{url}/events.>", "--output", f"file://{out}", "--include-event")
    try:
        publish(url, "events.win", numbered(1, 1))
        wait_until(lambda: detected(out) == [1], "the first detection")
        nats_server.stop()
        wait_until(
            lambda: d.status()["nats"]["input"]["state"] == "disconnected", "status to show the outage"
        )
        assert d.get("/healthz").status == 200
        assert d.get("/readyz").status == 200
        nats_server.start()
        publish(url, "events.win", numbered(2, 2))
        wait_until(lambda: detected(out) == [1, 2], "a detection after the server came back")
        status = d.status()["nats"]["input"]
        assert status["state"] == "connected"
        assert status["reconnects"] >= 1
        assert d.metric("rsigma_nats_reconnects_total", role="input") == 1
        assert d.metric("rsigma_nats_connected", role="input") == 1
        log = d.stderr()
        assert "NATS disconnected; reconnecting" in log
        assert "NATS reconnected" in log
    finally:
        stop(d)


def test_oversized_and_empty_messages_are_dead_lettered_and_acked(nats_server, daemon, tmp_path):
    url = nats_server.url
    dlq = tmp_path / "dlq.ndjson"
    d = daemon(
        "--input", f"{url}/events.>",
        "--dlq", f"file://{dlq}",
        "--max-event-bytes", "8192",
    )  # fmt: skip
    try:
        big = json.dumps({**WHOAMI, "padding": "x" * 20_000}).encode()
        publish(url, "events.win", [big, b"   ", b"{\xff\xfe}"])
        wait_until(all_acked(url), "every message acked")
        entries = [json.loads(line) for line in dlq.read_text().splitlines()]
        errors = sorted(e["error"] for e in entries)
        assert errors[0] == "empty line"
        assert errors[1] == f"event of {len(big)} bytes exceeds --max-event-bytes 8192"
        assert errors[2].startswith("invalid JSON")
        oversized = next(e for e in entries if "exceeds" in e["error"])
        assert oversized["original_event"].endswith(f"...[{len(big) - 4096} more bytes]")
        assert len(oversized["original_event"]) < 4200
    finally:
        stop(d)


def test_replay_flags_exclude_each_other_and_need_rfc3339(run_daemon):
    for extra, expected in [
        (["--replay-from-sequence", "5", "--replay-from-latest"], "cannot be used together"),
        (["--replay-from-time", "2026-05-15T10:00:00Z", "--replay-from-sequence", "5"], "cannot be used"),
        (["--replay-from-time", "yesterday"], "expected RFC 3339"),
        (["--replay-from-time", "2026-05-15T10:00:00"], "needs a UTC offset or Z"),
    ]:
        done = run_daemon("--input", "stdin", *extra)
        assert done.returncode == 2, (extra, done.stderr)
        said = " ".join(re.sub("[│╭╮╰╯─]", " ", done.stderr).split())  # typer draws a wrapped box
        assert expected in said, (extra, said)
