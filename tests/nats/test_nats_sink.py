"""`engine daemon --output nats://...` and `--dlq nats://...` against a real JetStream server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
from server import NatsServer

RULE = r"""
title: Whoami
id: 0b5a7c1e-2f0c-4c6e-9f1e-2d3c4b5a6978
level: low
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
"""


def run_daemon(tmp_path: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    command = [sys.executable, "-m", "rsigma", "engine", "daemon", "-r", str(rules)]
    command += ["--api-addr", "127.0.0.1:0", "--reload-poll", "0", *args]
    return subprocess.run(command, input=stdin.decode(), capture_output=True, text=True, timeout=60)


def stream_messages(url: str, stream: str, **options: Any) -> list[bytes]:
    """`options`: for `nats.connect` (credentials, TLS) when the server wants them."""
    return [data for data, _ in stored(url, stream, **options)]


def stored(url: str, stream: str, **options: Any) -> list[tuple[bytes, dict[str, str]]]:
    """Every message of the stream with its headers."""

    async def fetch() -> list[tuple[bytes, dict[str, str]]]:
        nc = await nats.connect(url, **options)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            messages = [await js.get_msg(stream, seq) for seq in range(1, info.state.last_seq + 1)]
            return [(m.data or b"", dict(m.headers or {})) for m in messages]
        finally:
            await nc.close()

    return asyncio.run(fetch())


def test_results_and_dead_letters_are_published(nats_server, tmp_path):
    events = [{"Image": "C:\\Windows\\System32\\whoami.exe"}, {"Image": "C:\\x\\notepad.exe"}]
    stdin = "".join(json.dumps(e) + "\n" for e in events).encode() + b"not json\n"
    done = run_daemon(
        tmp_path,
        "--output", f"{nats_server.url}/detections",
        "--dlq", f"{nats_server.url}/rsigma.dlq",
        stdin=stdin,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    detections = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-detections")]
    assert [d["rule_title"] for d in detections] == ["Whoami"]
    dead = [json.loads(m) for m in stream_messages(nats_server.url, "rsigma-rsigma-dlq")]
    assert [(d["original_event"], d["error"].split(":")[0]) for d in dead] == [("not json", "invalid JSON")]


def test_wildcard_output_subject_exits_3(nats_server, tmp_path):
    done = run_daemon(tmp_path, "--output", f"{nats_server.url}/detections.>")
    assert done.returncode == 3
    assert "concrete subject" in done.stderr


def test_server_without_jetstream_exits_3(tmp_path):
    server = NatsServer(tmp_path / "core", jetstream=False)
    (tmp_path / "core").mkdir()
    server.start()
    try:
        done = run_daemon(tmp_path, "--output", f"{server.url}/detections")
    finally:
        server.stop()
    assert done.returncode == 3
    assert "JetStream" in done.stderr


def test_unreachable_server_exits_3(tmp_path):
    from server import free_port

    done = run_daemon(tmp_path, "--output", f"nats://127.0.0.1:{free_port()}/detections")
    assert done.returncode == 3
    assert "cannot connect" in done.stderr


def test_another_stream_covering_the_subject_exits_3_and_is_named(nats_server, tmp_path):
    async def make_stream() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(name="EVENTS", subjects=["alerts.>"])
        finally:
            await nc.close()

    asyncio.run(make_stream())
    done = run_daemon(tmp_path, "--output", f"{nats_server.url}/alerts.sigma")
    assert done.returncode == 3
    assert "'EVENTS'" in done.stderr
