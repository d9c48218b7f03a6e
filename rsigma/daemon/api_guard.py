"""Which requests the API's mutating endpoints (ingest, reload) refuse, decided from the headers alone.

A web page open in a browser on the daemon's host can send requests to it: a form or `fetch` with a
"simple" content type (`text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`)
reaches the server without a CORS preflight, and the browser cannot read the answer, but the event is
ingested or the reload is done all the same. Browsers say where such a request comes from (`Origin`,
`Sec-Fetch-Site`), and non-browser clients (curl, log shippers) send neither, so a request from another
origin is refused (403); and the mutating endpoints only take content types a browser cannot send
cross-origin without a preflight the API never grants (415). An optional bearer token (401) is for
clients on other hosts.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

#: What POST /api/v1/events takes: NDJSON (or one JSON object).
INGEST_TYPES: Final = frozenset({"application/x-ndjson", "application/json"})
#: What POST /api/v1/reload takes: no body, or JSON (which it ignores).
RELOAD_TYPES: Final = frozenset({"application/json"})

#: `Sec-Fetch-Site` values of requests that come from the API's own origin or from the user directly.
_SAME_ORIGIN_FETCHES: Final = frozenset({"same-origin", "none"})


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    reason: str  # the `reason` label of rsigma_api_requests_refused_total
    headers: Mapping[str, str] = field(default_factory=dict)


def cross_origin(headers: Mapping[str, str]) -> Refusal | None:
    """403 for a request a browser sent from another origin (another site, or another port here)."""
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in _SAME_ORIGIN_FETCHES:
        return Refusal(403, f"cross-origin request refused (Sec-Fetch-Site: {fetch_site})", "cross_origin")
    origin = headers.get("Origin")
    if origin is None:
        return None
    host = headers.get("Host", "")
    if origin == "null" or not host or urlsplit(origin).netloc.lower() != host.lower():
        return Refusal(403, f"cross-origin request refused (Origin: {origin})", "cross_origin")
    return None


def unauthorized(headers: Mapping[str, str], token: str | None) -> Refusal | None:
    """401 unless the request carries `Authorization: Bearer <token>` (when a token is set)."""
    if token is None:
        return None
    scheme, _, presented = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return None
    return Refusal(401, "missing or invalid bearer token", "unauthorized", {"WWW-Authenticate": "Bearer"})


def unsupported_type(
    headers: Mapping[str, str], allowed: frozenset[str], *, body_optional: bool
) -> Refusal | None:
    """415 for a body whose content type is not one of `allowed` (none at all is fine only where the
    endpoint takes no body)."""
    value = headers.get("Content-Type")
    if value is None and body_optional:
        return None
    media_type = (value or "").partition(";")[0].strip().lower()
    if media_type in allowed:
        return None
    expected = " or ".join(sorted(allowed))
    given = f"got {value!r}" if value is not None else "got none"
    return Refusal(415, f"Content-Type must be {expected} ({given})", "unsupported_media_type")
