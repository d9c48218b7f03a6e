"""--jq on a NATS input: a message holding several records is acknowledged once, after the
detections of all its records are published."""

from __future__ import annotations

import json

from tests.support import wait_until
from tests.support.nats_client import WHOAMI, ack_floor, consumer_pending, publish, stored


def test_a_multi_record_message_is_acked_once_with_all_its_detections(nats_server, daemon):
    url = nats_server.url
    d = daemon("--input", f"{url}/events.>", "--output", f"{url}/detections", "--jq", ".Records[]")
    try:
        records = [WHOAMI, {"Image": "notepad.exe"}, {**WHOAMI, "User": "bob"}]
        publish(url, "events.cloud", [json.dumps({"Records": records}).encode()])
        wait_until(lambda: ack_floor(url, "rsigma-events", "rsigma-daemon-events") == 1, "message acked")
        assert consumer_pending(url, "rsigma-events", "rsigma-daemon-events") == (0, 0)
        published = stored(url, "rsigma-detections")
        # both detections are of stream message 1, acked after they were published; its records counted
        assert [headers["Nats-Msg-Id"] for _, headers in published] == [
            "rsigma-events:1:0",
            "rsigma-events:1:1",
        ]
        assert [json.loads(body)["rule_title"] for body, _ in published] == ["Whoami", "Whoami"]
        assert d.metric("rsigma_events_processed_total") == 3
    finally:
        assert d.terminate() == 0, d.stderr()
