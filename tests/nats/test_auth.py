"""`engine daemon` against nats-servers that demand credentials or TLS.

Each server is configured for one method (token, user and password, nkey, operator-mode JWT with a
`.creds` file, mutual TLS). With the right credentials an event published to `events.>` comes out as a
detection on `detections` (so the input and an output both authenticate); with wrong ones the daemon
exits 3 saying `authentication failed`, and the secret appears nowhere in what it prints.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import nkeys
import pytest

from tests.support import Daemons, NatsServer, free_port, wait_until
from tests.support.nats_auth import Operator, Pki, keypair, make_pki, tls_client
from tests.support.nats_client import WHOAMI, publish, stream_messages

NATS_ENV = ("NATS_CREDS", "NATS_TOKEN", "NATS_USER", "NATS_PASSWORD", "NATS_NKEY")


@pytest.fixture(autouse=True)
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon inherits the environment: none of its NATS variables may leak in from outside."""
    for name in NATS_ENV:
        monkeypatch.delenv(name, raising=False)


def secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}"


# ---- the daemon ------------------------------------------------------------------------------


def detection_arrives(daemons: Daemons, server: NatsServer, *flags: str, client: dict[str, Any]) -> str:
    """Run the daemon from `events.>` to `detections` on `server`; returns what it logged.

    `client`: `nats.connect` options for the test's own publisher and reader.
    """
    url = server.url
    d = daemons.start("--input", f"{url}/events.>", "--output", f"{url}/detections", *flags)
    try:
        publish(url, "events.win", [json.dumps(WHOAMI).encode()], **client)

        def titles() -> list[str]:
            return [json.loads(m)["rule_title"] for m in stream_messages(url, "rsigma-detections", **client)]

        wait_until(lambda: titles() == ["Whoami"], "the detection on the detections stream")
        status = d.status()
    finally:
        assert d.terminate() == 0, d.stderr()
    return d.stderr() + json.dumps(status)


def refused(daemons: Daemons, server: NatsServer, *flags: str, hidden: tuple[str, ...] = ()) -> str:
    """The daemon exits 3 at startup; returns stderr, checked to hold none of `hidden`."""
    url = server.url
    done = daemons.run("--input", f"{url}/events.>", "--output", f"{url}/detections", *flags)
    assert done.returncode == 3, done.stderr
    for value in hidden:
        assert value not in done.stderr + done.stdout
    return done.stderr


def assert_auth_failed(stderr: str, server: NatsServer) -> None:
    assert "authentication failed" in stderr, stderr
    assert server.url in stderr, stderr


# ---- token, user and password, nkey ------------------------------------------------------------


def test_token(daemons, nats_with):
    token = secret("token")
    server = nats_with(f'authorization {{ token: "{token}" }}')
    logged = detection_arrives(daemons, server, "--nats-token", token, client={"token": token})
    assert token not in logged
    stderr = refused(daemons, server, "--nats-token", "wrong-" + token, hidden=(token,))
    assert_auth_failed(stderr, server)
    assert "--nats-token" in stderr


def test_user_and_password_from_the_environment(daemons, nats_with, monkeypatch):
    password = secret("password")
    server = nats_with(f'authorization {{ users: [ {{ user: "rsigma", password: "{password}" }} ] }}')
    monkeypatch.setenv("NATS_USER", "rsigma")
    monkeypatch.setenv("NATS_PASSWORD", password)
    logged = detection_arrives(daemons, server, client={"user": "rsigma", "password": password})
    assert password not in logged  # neither in the log lines nor in /api/v1/status
    monkeypatch.setenv("NATS_PASSWORD", "wrong-" + password)
    stderr = refused(daemons, server, hidden=(password,))
    assert_auth_failed(stderr, server)


def user_nkey() -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def test_nkey(daemons, nats_with):
    key = user_nkey()
    seed = key.seed.decode()
    server = nats_with(f'authorization {{ users: [ {{ nkey: "{key.public_key.decode()}" }} ] }}')
    logged = detection_arrives(daemons, server, "--nats-nkey", seed, client={"nkeys_seed_str": seed})
    assert seed not in logged
    stranger = user_nkey().seed.decode()  # a valid seed the server does not know
    stderr = refused(daemons, server, "--nats-nkey", stranger, hidden=(stranger, seed))
    assert_auth_failed(stderr, server)


# ---- operator mode: JWTs and a .creds file -------------------------------------------------------


def test_creds_file_in_operator_mode(daemons, tmp_path, nats_with):
    operator = Operator.create()
    server = nats_with(operator.config)
    good, seed = operator.creds(tmp_path / "daemon.creds")
    logged = detection_arrives(
        daemons, server, "--nats-creds", str(good), client={"user_credentials": str(good)}
    )
    assert seed not in logged
    # A user signed by an account the server does not trust.
    bad, bad_seed = operator.creds(tmp_path / "stranger.creds", signer=keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    stderr = refused(daemons, server, "--nats-creds", str(bad), hidden=(bad_seed, seed))
    assert_auth_failed(stderr, server)
    assert "--nats-creds" in stderr


# ---- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def test_mutual_tls_with_a_token(daemons, nats_with, pki):
    """A client certificate the server verifies, plus a token: TLS combines with an auth method."""
    token = secret("token")
    server = nats_with(pki.server_tls(verify=True) + f'authorization {{ token: "{token}" }}\n')
    tls = ["--nats-tls-ca", str(pki.ca), "--nats-require-tls"]
    client_flags = ["--nats-tls-cert", str(pki.client_cert), "--nats-tls-key", str(pki.client_key)]
    logged = detection_arrives(
        daemons,
        server,
        *tls,
        *client_flags,
        "--nats-token",
        token,
        client={"tls": tls_client(pki), "token": token},
    )
    assert token not in logged
    stranger = ["--nats-tls-cert", str(pki.stranger_cert), "--nats-tls-key", str(pki.stranger_key)]
    stderr = refused(daemons, server, *tls, *stranger, "--nats-token", token, hidden=(token,))
    assert_auth_failed(stderr, server)
    assert "rejected the client certificate" in stderr
    stderr = refused(daemons, server, *tls, "--nats-token", token, hidden=(token,))  # no certificate
    assert_auth_failed(stderr, server)
    assert "wants a client certificate (--nats-tls-cert, --nats-tls-key)" in stderr


def connections(monitor: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://{monitor}/connz", timeout=5) as r:
        return json.loads(r.read())["connections"] or []


@pytest.mark.parametrize("flag", ["--nats-require-tls", "--nats-tls-ca"])
def test_tls_is_used_when_the_server_only_offers_it(daemon, nats_with, pki, flag):
    """`allow_non_tls`: TLS is optional, and nats-py alone would stay in plain text."""
    monitor = f"127.0.0.1:{free_port()}"
    server = nats_with(pki.server_tls(verify=False) + f'allow_non_tls: true\nhttp: "{monitor}"\n')
    flags = ["--nats-tls-ca", str(pki.ca)] + ([flag] if flag == "--nats-require-tls" else [])
    d = daemon("--input", f"{server.url}/events.>", "--output", f"{server.url}/detections", *flags)
    try:
        conns = connections(monitor)
        assert len(conns) == 2  # the input and the output
        assert all(c.get("tls_version") for c in conns), conns
    finally:
        assert d.terminate() == 0, d.stderr()


def test_require_tls_against_a_plain_server_exits_3(daemons, nats_server):
    token = secret("token")
    stderr = refused(daemons, nats_server, "--nats-require-tls", "--nats-token", token, hidden=(token,))
    assert "--nats-require-tls" in stderr
    assert f"{nats_server.url} does not offer TLS" in stderr


def test_tls_server_with_an_unknown_ca_exits_3(daemons, nats_with, pki):
    server = nats_with(pki.server_tls(verify=False))
    stderr = refused(daemons, server)
    assert "server certificate does not verify" in stderr
    assert "--nats-tls-ca" in stderr


# ---- files that cannot be read ------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--nats-creds", "{missing}"], "--nats-creds"),
        (["--nats-tls-cert", "{missing}", "--nats-tls-key", "{present}"], "--nats-tls-cert"),
        (["--nats-tls-cert", "{present}", "--nats-tls-key", "{missing}"], "--nats-tls-key"),
        (["--nats-tls-ca", "{missing}"], "--nats-tls-ca"),
    ],
)
def test_an_unreadable_file_exits_3_naming_flag_and_path(run_daemon, tmp_path, flags, named):
    present = tmp_path / "present.pem"
    present.write_text("x")
    missing = tmp_path / "missing.pem"
    args = [f.format(missing=missing, present=present) for f in flags]
    done = run_daemon("--output", f"nats://127.0.0.1:{free_port()}/detections", *args)
    assert done.returncode == 3, done.stderr
    assert f"{named} {missing}" in done.stderr


# ---- connect() in process ------------------------------------------------------------------------


def test_connect_fails_fast_and_cleanly_on_refused_credentials(nats_with):
    """In this process, so that pytest sees any task or transport the failed attempt leaves behind."""
    from rsigma.errors import ConfigError
    from rsigma.nats.auth import NatsAuth
    from rsigma.nats.connection import connect
    from rsigma.nats.names import parse_nats_url

    token = secret("token")
    server = nats_with(f'authorization {{ token: "{token}" }}')
    url = f"{server.url}/detections"
    target = parse_nats_url(url, "--output")

    async def scenario() -> None:
        nc = await connect(target, "--output", url, auth=NatsAuth(token=token))
        await nc.close()
        with pytest.raises(ConfigError) as info:
            await connect(target, "--output", url, auth=NatsAuth(token="wrong-" + token))
        assert "authentication failed" in str(info.value) and token not in str(info.value)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("cert", "said"),
    [
        (None, "it wants a client certificate (--nats-tls-cert, --nats-tls-key)"),
        (Path("client.pem"), "(--nats-tls-cert): the server rejected the client certificate"),
    ],
)
def test_a_tls_server_dropping_the_client_after_the_handshake_is_an_authentication_failure(cert, said):
    """Under load the server's TLS 1.3 alert may not arrive before the reset: the reset alone says it."""
    from rsigma.nats.auth import NatsAuth
    from rsigma.nats.connection import _failure_message
    from rsigma.nats.names import parse_nats_url

    url = "nats://127.0.0.1:4222/events"
    auth = NatsAuth(tls_cert=cert, tls_key=cert)
    reset = ConnectionResetError("Connection lost")
    message = _failure_message(reset, parse_nats_url(url, "--input"), "--input", url, auth, server_tls=True)
    assert "authentication failed" in message and said in message
    plain = _failure_message(reset, parse_nats_url(url, "--input"), "--input", url, auth, server_tls=False)
    assert "cannot connect" in plain  # no TLS handshake: a server going away, tried again
