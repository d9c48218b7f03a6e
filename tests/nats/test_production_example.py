"""The "Example: production NATS deployment" of RSigma's NATS streaming guide
(../shared/reference/nats-streaming.txt), run as written against a local JetStream server.

Only what names the site is swapped for local equivalents: the paths under /etc/rsigma, /var/log/rsigma
and /var/lib/rsigma move into the test's directory, nats://nats.internal:4222 becomes a local
nats-server that offers only TLS and authenticates users with operator-signed JWTs (so NATS_CREDS
names a real .creds file), and the API port is a free one. The server's certificate comes from a
throwaway CA the daemon trusts as a system CA (SSL_CERT_FILE), since the example gives no
--nats-tls-ca. The pipeline is the ecs_windows builtin's YAML copied to ecs.yml.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from rsigma.pipelines.pipeline import BUILTIN_DIR
from tests.support import DaemonProcess, free_port, read_json_lines, wait_until
from tests.support.nats_auth import Operator, make_pki, tls_client
from tests.support.nats_client import consumer_pending, publish, stream_messages

EXAMPLE = r"""
RSIGMA_CONSUMER_GROUP=detection-workers \
NATS_CREDS=/etc/rsigma/nats.creds \
rsigma engine daemon \
    --rules /etc/rsigma/rules/ \
    --pipeline /etc/rsigma/pipelines/ecs.yml \
    --input nats://nats.internal:4222/events.> \
    --output nats://nats.internal:4222/detections \
    --output file:///var/log/rsigma/detections.ndjson \
    --dlq nats://nats.internal:4222/dlq.rsigma \
    --state-db /var/lib/rsigma/state.db \
    --state-save-interval 30 \
    --buffer-size 50000 \
    --batch-size 64 \
    --drain-timeout 30 \
    --nats-require-tls \
    --api-addr 0.0.0.0:9090
"""

RULE = """\
title: Whoami
id: 9f1d6c2e-3b4a-4c5d-8e6f-7a8b9c0d1e2f
level: high
logsource: {product: windows, category: process_creation}
detection:
    selection:
        CommandLine|contains: whoami
    condition: selection
"""


def localized(example: str, root: Path, url: str, api_port: int) -> tuple[dict[str, str], list[str]]:
    """The example's environment variables and the daemon's arguments, with the site swapped out."""
    text = example.replace("\\\n", " ")  # the shell joins continued lines
    for site, local in (
        ("/etc/rsigma", f"{root}/etc/rsigma"),
        ("/var/log/rsigma", f"{root}/var/log/rsigma"),
        ("/var/lib/rsigma", f"{root}/var/lib/rsigma"),
        ("nats://nats.internal:4222", url),
        ("0.0.0.0:9090", f"0.0.0.0:{api_port}"),
    ):
        text = text.replace(site, local)
    words = shlex.split(text)
    env = dict(w.split("=", 1) for w in words[: words.index("rsigma")])
    assert words[words.index("rsigma") : words.index("rsigma") + 3] == ["rsigma", "engine", "daemon"]
    return env, words[words.index("rsigma") + 3 :]


@pytest.fixture(autouse=True)
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon inherits the environment: only the example's variables may reach it."""
    for name in (
        "NATS_CREDS",
        "NATS_TOKEN",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_NKEY",
        "RSIGMA_CONSUMER_GROUP",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_production_example_runs_as_written(tmp_path, nats_with):
    root = tmp_path / "site"
    for directory in ("etc/rsigma/rules", "etc/rsigma/pipelines", "var/log/rsigma", "var/lib/rsigma"):
        (root / directory).mkdir(parents=True)
    (root / "etc/rsigma/rules/whoami.yml").write_text(RULE)
    shutil.copy(BUILTIN_DIR / "ecs_windows.yml", root / "etc/rsigma/pipelines/ecs.yml")
    operator = Operator.create()
    creds, seed = operator.creds(root / "etc/rsigma/nats.creds")
    pki = make_pki(tmp_path / "pki")
    server = nats_with(pki.server_tls(verify=False) + operator.config)
    env, args = localized(EXAMPLE, root, server.url, free_port())
    assert env == {"RSIGMA_CONSUMER_GROUP": "detection-workers", "NATS_CREDS": str(creds)}
    client = {"tls": tls_client(pki), "user_credentials": str(creds)}

    daemon = DaemonProcess(
        args,
        home=tmp_path / "daemon",
        stdin="devnull",
        env={**env, "SSL_CERT_FILE": str(pki.ca)},  # the local CA, as the system's
        api_addr=None,
        reload_poll=None,
    )
    with daemon:
        daemon.start()
        assert daemon.api.startswith("0.0.0.0:")  # the API on every interface, as the example asks
        publish(
            server.url,
            "events.a",
            [json.dumps({"process": {"command_line": "cmd /c whoami"}}).encode()],
            **client,
        )
        publish(server.url, "events.b", [b'{"process": {"command_line": "whoami /all"}}'], **client)
        publish(
            server.url,
            "events.b",
            [b'{"process": {"command_line": "notepad"}}', b'{"truncated": "ev'],
            **client,
        )

        def detections() -> list[dict]:
            return [json.loads(m) for m in stream_messages(server.url, "rsigma-detections", **client)]

        published = wait_until(lambda: len(detections()) == 2 and detections(), "2 detections on detections")
        out = root / "var/log/rsigma/detections.ndjson"
        logged = wait_until(lambda: len(read_json_lines(out)) == 2 and read_json_lines(out), "2 in the file")
        for results in (published, logged):
            assert sorted(r["matched_fields"][0]["value"] for r in results) == [
                "cmd /c whoami",
                "whoami /all",
            ]
            assert {r["rule_title"] for r in results} == {"Whoami"}
        dead = wait_until(
            lambda: [json.loads(m) for m in stream_messages(server.url, "rsigma-dlq-rsigma", **client)],
            "the invalid event on the DLQ stream",
        )
        assert [(d["original_event"], d["error"].split(":")[0]) for d in dead] == [
            ('{"truncated": "ev', "invalid JSON")
        ]
        # RSIGMA_CONSUMER_GROUP names the durable consumer, which has acknowledged all four events
        wait_until(
            lambda: consumer_pending(server.url, "rsigma-events", "detection-workers", **client) == (0, 0),
            "every event acknowledged by the detection-workers consumer",
        )
        status = daemon.get("/api/v1/status").json()
        assert seed not in json.dumps(status) and seed not in daemon.stderr()

        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.stderr()
    assert (root / "var/lib/rsigma/state.db").stat().st_size > 0
