"""Credentials and certificates for nats-servers that demand them: an operator-mode setup with `.creds`
files (JWTs signed with nkeys), and a throwaway PKI (trustme) for TLS and mutual TLS."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys
import trustme


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(issuer: nkeys.KeyPair, subject: nkeys.KeyPair, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (v2): claims about `subject`, signed with the issuer's ed25519 nkey."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject.public_key.decode(),
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{header}.{body}.{b64url(issuer.sign(f'{header}.{body}'.encode()))}"


def keypair(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


@dataclass
class Operator:
    """An operator, its system account and one account with JetStream, as a server configuration."""

    config: str
    account: nkeys.KeyPair

    @classmethod
    def create(cls) -> Operator:
        operator = keypair(nkeys.PREFIX_BYTE_OPERATOR)
        system, account = keypair(nkeys.PREFIX_BYTE_ACCOUNT), keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        no_limit = ("subs", "data", "payload", "imports", "exports", "conn", "leaf")
        jetstream = ("mem_storage", "disk_storage", "streams", "consumer")
        limits = dict.fromkeys(no_limit + jetstream, -1) | {"wildcards": True}
        claims = {"type": "operator", "system_account": system.public_key.decode()}
        operator_jwt = signed_jwt(operator, operator, "test-operator", claims)
        system_jwt = signed_jwt(operator, system, "SYS", {"type": "account"})
        account_jwt = signed_jwt(operator, account, "rsigma", {"type": "account", "limits": limits})
        config = (
            f'operator: "{operator_jwt}"\n'
            f"system_account: {system.public_key.decode()}\n"
            "resolver: MEMORY\n"
            "resolver_preload: {\n"
            f'  {system.public_key.decode()}: "{system_jwt}"\n'
            f'  {account.public_key.decode()}: "{account_jwt}"\n'
            "}\n"
        )
        return cls(config, account)

    def creds(self, path: Path, signer: nkeys.KeyPair | None = None) -> tuple[Path, str]:
        """A user of the account (signed by `signer`, the account by default): the file and its seed."""
        user = keypair(nkeys.PREFIX_BYTE_USER)
        limits = {"subs": -1, "data": -1, "payload": -1}
        user_jwt = signed_jwt(
            signer or self.account, user, "daemon", {"type": "user", "pub": {}, "sub": {}} | limits
        )
        seed = user.seed.decode()
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
        return path, seed


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from another CA
    stranger_key: Path

    def server_tls(self, *, verify: bool) -> str:
        return (
            f'tls {{\n  cert_file: "{self.server_cert}"\n  key_file: "{self.server_key}"\n'
            f'  ca_file: "{self.ca}"\n  verify: {str(verify).lower()}\n}}\n'
        )


def make_pki(d: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed, and a
    client certificate from another CA, as PEM files in the new directory `d`."""
    ca = trustme.CA()
    other_ca = trustme.CA()
    d.mkdir()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("rsigma-daemon")
    stranger = other_ca.issue_cert("rsigma-daemon")
    pki = Pki(*(d / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")),
              d / "stranger.pem", d / "stranger.key")  # fmt: skip
    ca.cert_pem.write_to_path(str(pki.ca))
    for leaf, cert, key in (
        (server, pki.server_cert, pki.server_key),
        (client, pki.client_cert, pki.client_key),
        (stranger, pki.stranger_cert, pki.stranger_key),
    ):
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
    return pki


def tls_client(pki: Pki) -> ssl.SSLContext:
    """A client context trusting the CA and presenting its client certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context
