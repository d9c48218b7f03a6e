"""`engine daemon --input nats://...`: consume, evaluate, publish, and ack only when done."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
from test_nats_sink import RULE, stored, stream_messages

WHOAMI = {"Image": "C:\\Windows\\System32\\whoami.exe"}


def publish(url: str, subject: str, payloads: list[bytes], **options: Any) -> None:
    """`options`: for `nats.connect` (credentials, TLS) when the server wants them."""

    async def go() -> None:
        nc = await nats.connect(url, **options)
        try:
            js = nc.jetstream()
            for p in payloads:
                await js.publish(subject, p)
        finally:
            await nc.close()

    asyncio.run(go())


def consumer_pending(url: str, stream: str, consumer: str) -> tuple[int, int]:
    """(messages not yet delivered, delivered but not acknowledged)."""

    async def go() -> tuple[int, int]:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info(stream, consumer)
            return info.num_pending, info.num_ack_pending
        finally:
            await nc.close()

    return asyncio.run(go())


def start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    command = [sys.executable, "-m", "rsigma", "engine", "daemon", "-r", str(rules)]
    command += ["--api-addr", "127.0.0.1:0", "--reload-poll", "0", *args]
    with (tmp_path / "daemon.log").open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 30
    while "daemon started" not in (tmp_path / "daemon.log").read_text():
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        assert time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.05)
    return proc


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_consumes_publishes_and_acks(nats_server, tmp_path):
    url = nats_server.url
    proc = start(
        tmp_path, "--input", f"{url}/events.>", "--output", f"{url}/detections", "--dlq", f"{url}/dlq"
    )
    try:
        payloads = [json.dumps(WHOAMI).encode(), b'{"Image": "notepad.exe"}', b"not json", b""]
        publish(url, "events.win", payloads)
        wait_for(
            lambda: consumer_pending(url, "rsigma-events", "rsigma-daemon-events") == (0, 0), "all acked"
        )
        detections = [json.loads(m)["rule_title"] for m in stream_messages(url, "rsigma-detections")]
        entries = [json.loads(m) for m in stream_messages(url, "rsigma-dlq")]
        assert detections == ["Whoami"]
        assert sorted(e["error"].split(":")[0] for e in entries) == ["empty line", "invalid JSON"]
        for entry in entries:  # the DLQ entry shape on a NATS DLQ, from a NATS input
            assert set(entry) == {"original_event", "error", "timestamp", "delivery_count"}
            assert entry["delivery_count"] == 1
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["timestamp"])
        assert sorted(e["original_event"] for e in entries) == ["", "not json"]
        # de-duplication keys: a copy published again after a reconnect is dropped by the stream
        ids = sorted(headers["Nats-Msg-Id"] for _, headers in stored(url, "rsigma-dlq"))
        assert ids == ["rsigma-events:3:dlq", "rsigma-events:4:dlq"]
        assert [h["Nats-Msg-Id"] for _, h in stored(url, "rsigma-detections")] == ["rsigma-events:1:0"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_a_consumer_group_names_the_durable_consumer(nats_server, tmp_path):
    url = nats_server.url
    proc = start(
        tmp_path, "--input", f"{url}/events.>", "--output", f"{url}/detections", "--consumer-group", "g1"
    )
    try:
        publish(url, "events.win", [json.dumps(WHOAMI).encode()])
        wait_for(lambda: consumer_pending(url, "rsigma-events", "g1") == (0, 0), "acked through g1")
        assert [json.loads(m)["rule_title"] for m in stream_messages(url, "rsigma-detections")] == ["Whoami"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
