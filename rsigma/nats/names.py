"""`nats://host:port/subject` URLs and the JetStream resource names derived from their subjects.

Names are derived exactly as RSigma derives them, so a deployment can move between the two: `.`, `>`
and `*` become `-`, trailing `-` are trimmed, and the result gets a prefix (`rsigma-` for the stream,
`rsigma-daemon-` for the durable consumer unless a consumer group names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlparse

from rsigma.errors import ConfigError

DEFAULT_PORT: Final = 4222
STREAM_PREFIX: Final = "rsigma"
CONSUMER_PREFIX: Final = "rsigma-daemon"


@dataclass(frozen=True, slots=True)
class NatsUrl:
    server: str  # nats://host:port, for the client
    subject: str

    @property
    def has_wildcard(self) -> bool:
        return any(token in ("*", ">") for token in self.subject.split("."))


def sanitize(subject: str) -> str:
    return subject.replace(".", "-").replace(">", "-").replace("*", "-").rstrip("-")


def stream_name(subject: str) -> str:
    return f"{STREAM_PREFIX}-{sanitize(subject)}"


def consumer_name(subject: str, group: str | None = None) -> str:
    """The durable consumer: the consumer group verbatim, else derived from the subject."""
    return group if group else f"{CONSUMER_PREFIX}-{sanitize(subject)}"


def parse_nats_url(url: str, flag: str) -> NatsUrl:
    """A `nats://` URL for `flag`; outputs and the DLQ must name a concrete subject (no wildcard)."""
    parsed = urlparse(url)
    if parsed.scheme != "nats" or not parsed.hostname:
        raise ConfigError(f"{flag} {url!r}: expected nats://host:port/subject")
    if parsed.username is not None or parsed.password is not None:
        # Never echo the URL here: it holds a secret.
        raise ConfigError(
            f"{flag}: credentials in a nats:// URL are not used; give them with --nats-user and"
            " --nats-password (or NATS_USER, NATS_PASSWORD), a token, an nkey or a creds file"
        )
    subject = parsed.path.lstrip("/")
    if not subject or any(not token for token in subject.split(".")) or " " in subject:
        raise ConfigError(f"{flag} {url!r}: {subject!r} is not a valid subject")
    try:
        port = parsed.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{flag} {url!r}: the port is not a number") from None
    result = NatsUrl(server=f"nats://{parsed.hostname}:{port}", subject=subject)
    if flag != "--input" and result.has_wildcard:
        raise ConfigError(f"{flag} {url!r}: publishing needs a concrete subject, not a wildcard")
    return result
