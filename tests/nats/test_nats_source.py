"""`engine daemon --input nats://...`: consume, evaluate, publish, and ack only when done."""

from __future__ import annotations

import json
import re

from tests.support import wait_until
from tests.support.nats_client import WHOAMI, consumer_pending, publish, stored, stream_messages


def test_consumes_publishes_and_acks(nats_server, daemon):
    url = nats_server.url
    d = daemon("--input", f"{url}/events.>", "--output", f"{url}/detections", "--dlq", f"{url}/dlq")
    try:
        payloads = [json.dumps(WHOAMI).encode(), b'{"Image": "notepad.exe"}', b"{not json", b""]
        publish(url, "events.win", payloads)
        wait_until(
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
        assert sorted(e["original_event"] for e in entries) == ["", "{not json"]
        # de-duplication keys: a copy published again after a reconnect is dropped by the stream
        ids = sorted(headers["Nats-Msg-Id"] for _, headers in stored(url, "rsigma-dlq"))
        assert ids == ["rsigma-events:3:dlq", "rsigma-events:4:dlq"]
        assert [h["Nats-Msg-Id"] for _, h in stored(url, "rsigma-detections")] == ["rsigma-events:1:0"]
    finally:
        assert d.terminate() == 0, d.stderr()


def test_a_consumer_group_names_the_durable_consumer(nats_server, daemon):
    url = nats_server.url
    d = daemon("--input", f"{url}/events.>", "--output", f"{url}/detections", "--consumer-group", "g1")
    try:
        publish(url, "events.win", [json.dumps(WHOAMI).encode()])
        wait_until(lambda: consumer_pending(url, "rsigma-events", "g1") == (0, 0), "acked through g1")
        assert [json.loads(m)["rule_title"] for m in stream_messages(url, "rsigma-detections")] == ["Whoami"]
    finally:
        assert d.terminate() == 0, d.stderr()
