"""The NATS authentication flags: which go together, what `nats.connect` gets, and no secret in sight.

The model (`nats_auth_from_flags`, `NatsAuth`) is tested directly; the command line through typer's
runner, in process (a usage error exits 2 before anything starts).
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import nkeys
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from rsigma.cli.app import app
from rsigma.daemon.config import DaemonConfig
from rsigma.errors import ConfigError
from rsigma.evaluator import Evaluator
from rsigma.nats.auth import NatsAuth, NatsAuthUsageError, nats_auth_from_flags

TOKEN = "tok-5e3f9a1c"
PASSWORD = "pw-77c2d0e4"
SEED = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER).decode()
ACCOUNT_SEED = nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_ACCOUNT).decode()
SECRETS = (TOKEN, PASSWORD, SEED)


@pytest.fixture(autouse=True)
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NATS_CREDS", "NATS_TOKEN", "NATS_USER", "NATS_PASSWORD", "NATS_NKEY"):
        monkeypatch.delenv(name, raising=False)


# ---- methods and conflicts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, method",
    [
        ({}, "none"),
        ({"creds": Path("a.creds")}, "creds"),
        ({"token": TOKEN}, "token"),
        ({"user": "bob", "password": PASSWORD}, "user-password"),
        ({"nkey_seed": SEED}, "nkey"),
        ({"tls_cert": Path("c.pem"), "tls_key": Path("k.pem")}, "tls-cert"),
        ({"token": TOKEN, "tls_cert": Path("c.pem"), "tls_key": Path("k.pem")}, "token"),
        ({"creds": Path("a.creds"), "tls_ca": Path("ca.pem"), "require_tls": True}, "creds"),
    ],
)
def test_one_method_with_any_tls_settings(flags, method):
    assert nats_auth_from_flags(**flags).method == method


@pytest.mark.parametrize(
    "flags, first, second",
    [
        ({"creds": Path("a.creds"), "token": TOKEN}, "--nats-creds", "--nats-token"),
        ({"creds": Path("a.creds"), "user": "bob", "password": PASSWORD}, "--nats-creds", "--nats-user"),
        ({"creds": Path("a.creds"), "nkey_seed": SEED}, "--nats-creds", "--nats-nkey"),
        ({"token": TOKEN, "user": "bob", "password": PASSWORD}, "--nats-token", "--nats-user"),
        ({"token": TOKEN, "password": PASSWORD}, "--nats-token", "--nats-password"),
        ({"token": TOKEN, "nkey_seed": SEED}, "--nats-token", "--nats-nkey"),
        ({"user": "bob", "password": PASSWORD, "nkey_seed": SEED}, "--nats-user", "--nats-nkey"),
    ],
)
def test_two_methods_conflict_and_both_are_named(flags, first, second):
    with pytest.raises(NatsAuthUsageError) as info:
        nats_auth_from_flags(**flags)
    assert f"{first} cannot be used with {second}" in str(info.value)
    assert not any(s in str(info.value) for s in SECRETS)


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"user": "bob"}, "--nats-user requires --nats-password"),
        ({"password": PASSWORD}, "--nats-password requires --nats-user"),
        ({"tls_cert": Path("c.pem")}, "--nats-tls-cert requires --nats-tls-key"),
        ({"tls_key": Path("k.pem")}, "--nats-tls-key requires --nats-tls-cert"),
        ({"token": ""}, "--nats-token is empty"),
        ({"nkey_seed": "SUnot-a-seed"}, "--nats-nkey is not an nkey seed"),
        ({"nkey_seed": ACCOUNT_SEED}, "--nats-nkey is not a user nkey seed"),
    ],
)
def test_incomplete_or_invalid_flags(flags, message):
    with pytest.raises(NatsAuthUsageError) as info:
        nats_auth_from_flags(**flags)
    assert message in str(info.value)
    assert ACCOUNT_SEED not in str(info.value)


def test_values_from_the_environment_are_said_to_be():
    with pytest.raises(NatsAuthUsageError) as info:
        nats_auth_from_flags(token=TOKEN, nkey_seed=SEED, from_env={"token"})
    assert "--nats-token (from NATS_TOKEN) cannot be used with --nats-nkey" in str(info.value)


# ---- no secret in a repr -------------------------------------------------------------------------


def test_repr_shows_no_secret():
    for auth in (
        NatsAuth(token=TOKEN),
        NatsAuth(user="bob", password=PASSWORD),
        NatsAuth(nkey_seed=SEED, tls_cert=Path("c.pem"), tls_key=Path("k.pem"), require_tls=True),
    ):
        config = DaemonConfig(rules=(), build_evaluator=Evaluator, nats_auth=auth)
        text = repr(auth) + str(auth) + repr(config)
        assert not any(s in text for s in SECRETS), text
        assert f"method={auth.method!r}" in text
    assert "user='bob'" in repr(NatsAuth(user="bob", password=PASSWORD))  # a user name is no secret


# ---- what nats.connect gets -----------------------------------------------------------------------


def test_connect_options_per_method(tmp_path):
    creds = tmp_path / "a.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\nx\n-----BEGIN USER NKEY SEED-----\ny\n")
    assert NatsAuth().connect_options() == {}
    assert NatsAuth(token=TOKEN).connect_options() == {"token": TOKEN}
    assert NatsAuth(user="bob", password=PASSWORD).connect_options() == {"user": "bob", "password": PASSWORD}
    assert NatsAuth(nkey_seed=SEED).connect_options() == {"nkeys_seed_str": SEED}
    assert NatsAuth(creds=creds).connect_options() == {"user_credentials": str(creds)}


def test_creds_file_missing_or_malformed_is_a_config_error(tmp_path):
    missing = tmp_path / "missing.creds"
    with pytest.raises(ConfigError, match=f"--nats-creds {re.escape(str(missing))}: cannot read"):
        NatsAuth(creds=missing).connect_options()
    junk = tmp_path / "junk.creds"
    junk.write_text("not a creds file\n")
    with pytest.raises(ConfigError, match="not a NATS credentials file"):
        NatsAuth(creds=junk).connect_options()


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("rsigma-daemon")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "encrypted_key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    paths["encrypted_key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return paths


def test_tls_context_loads_the_client_certificate_and_the_ca(pems):
    auth = NatsAuth(token=TOKEN, tls_cert=pems["cert"], tls_key=pems["key"], tls_ca=pems["ca"])
    options = auth.connect_options()
    context = options.pop("tls")
    assert options == {"token": TOKEN}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # the given CA replaces the system's
    assert "tls" not in NatsAuth(token=TOKEN).connect_options()  # no TLS flag: nats-py's default
    assert "tls" in NatsAuth(require_tls=True).connect_options()


@pytest.mark.parametrize("which", ["tls_cert", "tls_key", "tls_ca"])
def test_missing_tls_file_is_a_config_error_naming_flag_and_path(pems, tmp_path, which):
    missing = tmp_path / "missing.pem"
    files = {"tls_cert": pems["cert"], "tls_key": pems["key"], "tls_ca": pems["ca"]} | {which: missing}
    flag = "--" + "nats-" + which.replace("_", "-")
    with pytest.raises(ConfigError, match=f"{flag} {re.escape(str(missing))}: cannot read"):
        NatsAuth(**files).connect_options()


def test_unusable_tls_files_are_config_errors(pems):
    with pytest.raises(ConfigError, match="the key is encrypted"):  # and no passphrase prompt
        NatsAuth(tls_cert=pems["cert"], tls_key=pems["encrypted_key"]).connect_options()
    with pytest.raises(ConfigError, match="cannot load the client certificate and key"):
        NatsAuth(tls_cert=pems["cert"], tls_key=pems["ca"]).connect_options()
    with pytest.raises(ConfigError, match="--nats-tls-ca .*not a PEM CA certificate"):
        NatsAuth(tls_ca=pems["key"]).connect_options()


# ---- the command line ------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["engine", "daemon", "-r", "rules.yml", *args], env=env)
    return result.exit_code, " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())  # unwrap the box


@pytest.mark.parametrize(
    "args, env, expected",
    [
        (["--nats-token", TOKEN, "--nats-user", "bob"], {}, "--nats-token cannot be used with --nats-user"),
        (["--nats-creds", "x", "--nats-nkey", SEED], {}, "--nats-creds cannot be used with --nats-nkey"),
        (["--nats-user", "bob"], {}, "--nats-user requires --nats-password"),
        (["--nats-tls-cert", "c.pem"], {}, "--nats-tls-cert requires --nats-tls-key"),
        (["--nats-user", "bob", "--nats-password", PASSWORD], {"NATS_TOKEN": TOKEN},
         "--nats-token (from NATS_TOKEN) cannot be used with --nats-user"),
        (["--nats-nkey", SEED], {"NATS_USER": "bob", "NATS_PASSWORD": PASSWORD},
         "--nats-user (from NATS_USER) cannot be used with --nats-nkey"),
        ([], {"NATS_PASSWORD": PASSWORD}, "--nats-password (from NATS_PASSWORD) requires --nats-user"),
    ],
)  # fmt: skip
def test_conflicting_flags_are_a_usage_error(args, env, expected):
    code, text = run_cli(*args, env=env)
    assert code == 2, text
    assert expected in text
    assert not any(s in text for s in SECRETS), text


def test_flags_reach_the_daemon_config(monkeypatch):
    seen: list[DaemonConfig] = []
    monkeypatch.setattr("rsigma.cli.app.start_daemon", lambda config, fmt: seen.append(config) or 0)
    code, text = run_cli("--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem", "--nats-require-tls",
                         env={"NATS_NKEY": SEED})  # fmt: skip
    assert code == 0, text
    (config,) = seen
    assert config.nats_auth == NatsAuth(
        nkey_seed=SEED, tls_cert=Path("c.pem"), tls_key=Path("k.pem"), require_tls=True
    )


def test_secret_from_the_environment_is_not_in_the_help():
    code, text = run_cli("--help", env={"NATS_TOKEN": TOKEN, "NATS_PASSWORD": PASSWORD, "NATS_NKEY": SEED})
    assert code == 0
    assert "NATS_TOKEN" in text
    assert not any(s in text for s in SECRETS)
