"""A NATS server that is not there yet at startup: the daemon waits for it (--nats-connect-timeout).

While it waits, `/healthz` answers 200, `/readyz` 503 with the reason, each failed attempt is a
warning naming the URL, and systemd hears the reason as STATUS=. Once the server is up the daemon
starts and consumes everything that was published. Settings no retry can cure still exit 3 at once.
"""

from __future__ import annotations

import json
import time

from tests.support import NatsServer, free_port, wait_until
from tests.support.nats_client import WHOAMI, add_stream, consumer_pending, publish, stream_messages
from tests.support.systemd import NotifySocket

EVENTS = 50


def test_waits_for_a_server_that_starts_later_and_loses_nothing(daemons, tmp_path):
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    with NotifySocket() as notify:
        d = daemons.start(
            "--input", f"{url}/events.>", "--output", f"{url}/detections", "--dlq", f"{url}/dlq",
            env=notify.env(), wait=False,
        )  # fmt: skip
        d.wait_api()
        wait_until(lambda: len(d.find_logs("NATS server not reachable")) >= 3, "three failed attempts")
        waits = d.find_logs("NATS server not reachable")
        assert [w["attempt"] for w in waits[:3]] == [1, 2, 3]
        assert [w["retry_in_s"] for w in waits[:3]] == [0.5, 1.0, 2.0]  # the pause doubles
        assert all(w["level"] == "warning" and w["url"] == f"{url}/events.>" for w in waits)
        assert all(url in w["error"] for w in waits)
        assert d.get("/healthz").status == 200
        readyz = d.get("/readyz")
        assert readyz.status == 503
        assert "waiting for the NATS server" in readyz.json()["reason"] and url in readyz.json()["reason"]
        assert d.metric("rsigma_nats_connected", role="input") == 0
        assert any(line.startswith("STATUS=waiting for the NATS server") for line in notify.lines())
        assert "READY=1" not in notify.lines()
        assert d.alive()

        with NatsServer(tmp_path / "nats", port=port) as server:
            server_up = time.monotonic()
            add_stream(server.url, "rsigma-events", ["events.>"])  # as the daemon would create it
            publish(server.url, "events.win", [json.dumps(WHOAMI).encode()] * EVENTS)
            notify.wait_for("READY=1")
            assert d.get("/readyz").status == 200
            print(f"ready {time.monotonic() - server_up:.1f} s after the server started")
            d.wait_started()
            wait_until(
                lambda: consumer_pending(server.url, "rsigma-events", "rsigma-daemon-events") == (0, 0),
                "every event acked",
            )
            detections = stream_messages(server.url, "rsigma-detections")
            assert len(detections) == EVENTS  # 0 lost
            print(f"{len(detections)} of {EVENTS} events detected and acked")
            assert d.find_log("NATS server reached")["attempts"] > 3
            assert d.terminate() == 0, d.stderr()


def test_connect_timeout_exits_3_naming_the_url(daemons):
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = daemons.run("--input", f"{url}/events.>", "--nats-connect-timeout", "2")
    elapsed = time.monotonic() - started
    print(f"exit {done.returncode} after {elapsed:.1f} s")
    assert done.returncode == 3, done.stderr
    assert f"--input {url}/events.>: cannot connect to {url}" in done.stderr
    assert "--nats-connect-timeout 2 s" in done.stderr
    assert 2 <= elapsed < 30


def test_connect_timeout_0_makes_one_attempt(daemons):
    url = f"nats://127.0.0.1:{free_port()}"
    done = daemons.run("--output", f"{url}/detections", "--nats-connect-timeout", "0")
    assert done.returncode == 3, done.stderr
    assert "cannot connect" in done.stderr and "(1 attempt)" in done.stderr
    assert "not reachable; trying again" not in done.stderr


def test_sigterm_while_waiting_exits_0_promptly(daemons):
    d = daemons.start("--output", f"nats://127.0.0.1:{free_port()}/detections", wait=False)
    d.wait_api()
    wait_until(lambda: d.find_logs("NATS server not reachable"), "a failed attempt")
    started = time.monotonic()
    assert d.terminate() == 0, d.stderr()
    print(f"exit 0 {time.monotonic() - started:.2f} s after SIGTERM")
    assert time.monotonic() - started < 10
    assert d.find_log("stopped before startup finished: no event was read") is not None


def test_refused_credentials_still_exit_3_at_once(daemons, nats_with):
    server = nats_with('authorization { token: "right-token" }')
    started = time.monotonic()
    done = daemons.run("--output", f"{server.url}/detections", "--nats-token", "wrong-token")
    elapsed = time.monotonic() - started
    print(f"exit {done.returncode} after {elapsed:.1f} s")
    assert done.returncode == 3, done.stderr
    assert "authentication failed" in done.stderr
    assert "trying again" not in done.stderr


def test_a_denied_stream_permission_exits_3_at_once(daemons, nats_with):
    server = nats_with(
        'authorization { users: [ { user: "u", password: "p",'
        ' permissions: { publish: { deny: ["$JS.API.STREAM.>"] } } } ] }'
    )
    started = time.monotonic()
    done = daemons.run("--output", f"{server.url}/detections", "--nats-user", "u", "--nats-password", "p")
    elapsed = time.monotonic() - started
    print(f"exit {done.returncode} after {elapsed:.1f} s")
    assert done.returncode == 3, done.stderr
    assert f"--output {server.url}/detections: the server denied a JetStream request" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_output_is_waited_for_and_named(daemons, nats_server):
    """The input's server is up, the output's is not: /readyz names the output being waited for."""
    output = f"nats://127.0.0.1:{free_port()}/detections"
    d = daemons.start("--input", f"{nats_server.url}/events.>", "--output", output, wait=False)
    d.wait_api()
    wait_until(lambda: d.find_logs("NATS server not reachable"), "a failed attempt")
    assert all(w["flag"] == "--output" and w["url"] == output for w in d.find_logs("NATS server not"))
    reason = d.get("/readyz").json()["reason"]
    assert f"--output {output}: cannot connect" in reason, reason
    assert d.metric("rsigma_nats_connected", role="input") == 1
    assert d.terminate() == 0, d.stderr()
