"""How the daemon authenticates to NATS, and whether it uses TLS: one frozen object from the flags.

Four authentication methods, one at a time: a `.creds` file (user JWT and nkey seed), a token, a
user and password, or an nkey seed. Any of them combines with a client certificate (mutual TLS), a
private CA to verify the server with, and `--nats-require-tls`. The same settings serve every NATS
connection the daemon opens (input, each output, the dead-letter queue).

Secrets (the token, the password, the seed) appear in no `repr`, log line or error message.
"""

from __future__ import annotations

import ssl
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rsigma.errors import ConfigError

#: Each option's flag and environment variable, for messages.
FLAGS: Final = {
    "creds": ("--nats-creds", "NATS_CREDS"),
    "token": ("--nats-token", "NATS_TOKEN"),
    "user": ("--nats-user", "NATS_USER"),
    "password": ("--nats-password", "NATS_PASSWORD"),
    "nkey_seed": ("--nats-nkey", "NATS_NKEY"),
    "tls_cert": ("--nats-tls-cert", None),
    "tls_key": ("--nats-tls-key", None),
    "tls_ca": ("--nats-tls-ca", None),
}

#: The authentication methods, in the order they win when several are set without going through
#: `nats_auth_from_flags` (which refuses that): creds, token, user and password, nkey.
METHOD_FIELDS: Final = {
    "creds": ("creds",),
    "token": ("token",),
    "user-password": ("user", "password"),
    "nkey": ("nkey_seed",),
}

SECRET_FIELDS: Final = frozenset({"token", "password", "nkey_seed"})


class NatsAuthUsageError(ValueError):
    """The NATS authentication flags do not go together (the CLI reports it as a usage error, exit 2)."""


@dataclass(frozen=True, slots=True, repr=False)
class NatsAuth:
    creds: Path | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    nkey_seed: str | None = None  # a user nkey seed, `SU...`
    tls_cert: Path | None = None  # client certificate (chain), PEM
    tls_key: Path | None = None  # its private key, PEM, not encrypted
    tls_ca: Path | None = None  # verify the server against this CA instead of the system's
    require_tls: bool = False

    @property
    def method(self) -> str:
        """The authentication method in use: creds, token, user-password, nkey, tls-cert or none."""
        if self.creds is not None:
            return "creds"
        if self.token is not None:
            return "token"
        if self.user is not None and self.password is not None:
            return "user-password"
        if self.nkey_seed is not None:
            return "nkey"
        if self.tls_cert is not None:
            return "tls-cert"
        return "none"

    @property
    def method_flag(self) -> str:
        """The flag that chose the method, for messages (`--nats-token`, ...; `none` without one)."""
        return {
            "creds": "--nats-creds",
            "token": "--nats-token",
            "user-password": "--nats-user/--nats-password",
            "nkey": "--nats-nkey",
            "tls-cert": "--nats-tls-cert",
        }.get(self.method, "none")

    @property
    def wants_tls(self) -> bool:
        """Any TLS setting: then TLS is used whenever the server offers it, not only when it demands it."""
        return self.require_tls or self.tls_cert is not None or self.tls_ca is not None

    def __repr__(self) -> str:
        shown = []
        for name in ("creds", "token", "user", "password", "nkey_seed", "tls_cert", "tls_key", "tls_ca"):
            value = getattr(self, name)
            if value is not None:
                shown.append(f"{name}=<redacted>" if name in SECRET_FIELDS else f"{name}={str(value)!r}")
        if self.require_tls:
            shown.append("require_tls=True")
        return f"NatsAuth(method={self.method!r}{''.join(', ' + s for s in shown)})"

    __str__ = __repr__

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect()`; an unreadable file is a `ConfigError` (exit 3)."""
        options: dict[str, Any] = {}
        method = self.method
        if method == "creds":
            assert self.creds is not None
            _check_creds_file(self.creds)
            options["user_credentials"] = str(self.creds)  # re-read at each (re)connect
        elif method == "token":
            options["token"] = self.token
        elif method == "user-password":
            options["user"] = self.user
            options["password"] = self.password
        elif method == "nkey":
            options["nkeys_seed_str"] = self.nkey_seed
        context = self.ssl_context()
        if context is not None:
            options["tls"] = context
        return options

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context when any TLS flag is set (otherwise nats-py's default is used)."""
        if not self.wants_tls:
            return None
        for name in ("tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None:
                _readable(path, FLAGS[name][0])
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(self.tls_ca) if self.tls_ca else None
            )
        except ssl.SSLError as e:
            raise ConfigError(
                f"--nats-tls-ca {self.tls_ca}: not a PEM CA certificate ({e.reason or e})"
            ) from e
        if self.tls_cert is not None and self.tls_key is not None:
            try:
                context.load_cert_chain(str(self.tls_cert), str(self.tls_key), password=_no_password)
            except _EncryptedKey:
                raise ConfigError(
                    f"--nats-tls-key {self.tls_key}: the key is encrypted; give an unencrypted PEM key"
                ) from None
            except ssl.SSLError as e:
                raise ConfigError(
                    f"--nats-tls-cert {self.tls_cert} / --nats-tls-key {self.tls_key}: cannot load the"
                    f" client certificate and key ({e.reason or e}); are they PEM and a matching pair?"
                ) from e
        return context


def nats_auth_from_flags(
    *,
    creds: Path | None = None,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    nkey_seed: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_ca: Path | None = None,
    require_tls: bool = False,
    from_env: Collection[str] = (),
) -> NatsAuth:
    """Check the flags go together and build the settings; `NatsAuthUsageError` if they do not.

    `from_env` names the options whose values came from environment variables, so a message can say
    so (`--nats-token (from NATS_TOKEN)`). Messages name flags, never values.
    """
    values = {
        "creds": creds,
        "token": token,
        "user": user,
        "password": password,
        "nkey_seed": nkey_seed,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_ca": tls_ca,
    }

    def label(name: str) -> str:
        flag, env = FLAGS[name]
        return f"{flag} (from {env})" if name in from_env and env else flag

    for name, value in values.items():
        if value is not None and not str(value).strip():
            raise NatsAuthUsageError(f"{label(name)} is empty")
    given = [
        (method, name)
        for method, names in METHOD_FIELDS.items()
        for name in names
        if values[name] is not None
    ]
    methods = list(dict.fromkeys(method for method, _ in given))
    if len(methods) > 1:
        first = next(name for method, name in given if method == methods[0])
        second = next(name for method, name in given if method == methods[1])
        raise NatsAuthUsageError(
            f"{label(first)} cannot be used with {label(second)}: give one NATS authentication method"
        )
    for one, other in (
        ("user", "password"),
        ("password", "user"),
        ("tls_cert", "tls_key"),
        ("tls_key", "tls_cert"),
    ):
        if values[one] is not None and values[other] is None:
            raise NatsAuthUsageError(f"{label(one)} requires {FLAGS[other][0]}")
    if nkey_seed is not None:
        _check_user_seed(nkey_seed, label("nkey_seed"))
    return NatsAuth(**values, require_tls=require_tls)


def _check_user_seed(seed: str, label: str) -> None:
    """A user nkey seed (`SU...`); the message never repeats the value."""
    import nkeys

    try:
        prefix, _ = nkeys.decode_seed(bytearray(seed.strip().encode("ascii")))
    except (nkeys.NkeysError, ValueError, IndexError):
        raise NatsAuthUsageError(f"{label} is not an nkey seed (expected a user seed, SU...)") from None
    if prefix != nkeys.PREFIX_BYTE_USER:
        raise NatsAuthUsageError(f"{label} is not a user nkey seed (expected SU..., not another kind)")


def _readable(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot read: {e.strerror or e}") from e


def _check_creds_file(path: Path) -> None:
    """A `.creds` file holds a user JWT and a user nkey seed between marker lines."""
    text = _readable(path, "--nats-creds")
    if b"BEGIN NATS USER JWT" not in text or b"BEGIN USER NKEY SEED" not in text:
        raise ConfigError(
            f"--nats-creds {path}: not a NATS credentials file (needs a user JWT and a user nkey seed)"
        )


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    """Called by OpenSSL only for an encrypted key: refuse instead of prompting on the terminal."""
    raise _EncryptedKey
