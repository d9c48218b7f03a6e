"""`engine daemon --output nats://...` and `--dlq nats://...` against a real JetStream server."""

from __future__ import annotations

import asyncio
import json

import nats

from tests.support import NatsServer, free_port
from tests.support.nats_client import stream_messages
from tests.support.ocsf import detection_finding_problems


def test_results_and_dead_letters_are_published(nats_server, run_daemon):
    events = [{"Image": "C:\\Windows\\System32\\whoami.exe"}, {"Image": "C:\\x\\notepad.exe"}]
    stdin = "".join(json.dumps(e) + "\n" for e in events).encode() + b"{not json\n"
    done = run_daemon(
        "--output", f"{nats_server.url}/detections",
        "--dlq", f"{nats_server.url}/rsigma.dlq",
        stdin=stdin,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    detections = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-detections")]
    assert [d["rule_title"] for d in detections] == ["Whoami"]
    dead = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-rsigma-dlq")]
    assert [(d["original_event"], d["error"].split(":")[0]) for d in dead] == [("{not json", "invalid JSON")]


def test_ocsf_output_publishes_detection_findings_and_dead_letters_stay_native(nats_server, run_daemon):
    stdin = json.dumps({"Image": "C:\\Windows\\System32\\whoami.exe"}).encode() + b"\n"
    done = run_daemon(
        "--output", f"{nats_server.url}/findings?format=ocsf",
        "--output", f"{nats_server.url}/detections",
        "--dlq", f"{nats_server.url}/rsigma.dlq",
        stdin=stdin + b"{not json\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    findings = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-findings")]
    assert [f["finding_info"]["title"] for f in findings] == ["Whoami"]
    assert detection_finding_problems(findings[0]) == []
    detections = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-detections")]
    assert [d["rule_title"] for d in detections] == ["Whoami"]
    dead = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-rsigma-dlq")]
    assert [d["original_event"] for d in dead] == ["{not json"]


def test_wildcard_output_subject_exits_3(nats_server, run_daemon):
    done = run_daemon("--output", f"{nats_server.url}/detections.>")
    assert done.returncode == 3
    assert "concrete subject" in done.stderr


def test_server_without_jetstream_exits_3(tmp_path, run_daemon):
    with NatsServer(tmp_path / "core", jetstream=False) as server:
        done = run_daemon("--output", f"{server.url}/detections")
    assert done.returncode == 3
    assert "JetStream" in done.stderr


def test_unreachable_server_exits_3_with_a_zero_connect_timeout(run_daemon):
    done = run_daemon("--output", f"nats://127.0.0.1:{free_port()}/detections", "--nats-connect-timeout", "0")
    assert done.returncode == 3
    assert "cannot connect" in done.stderr


def test_another_stream_covering_the_subject_exits_3_and_is_named(nats_server, run_daemon):
    async def make_stream() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(name="EVENTS", subjects=["alerts.>"])
        finally:
            await nc.close()

    asyncio.run(make_stream())
    done = run_daemon("--output", f"{nats_server.url}/alerts.sigma")
    assert done.returncode == 3
    assert "'EVENTS'" in done.stderr
