"""The `?format=` of a findings sink's URL: the native JSON line (`ndjson`, the default) or an OCSF
Detection Finding (`ocsf`); `rsigma/output_format.py` writes them."""

from __future__ import annotations

from typing import Final

from rsigma.errors import ConfigError

FORMATS: Final = ("ndjson", "ocsf")


def split_sink_url(url: str, flag: str) -> tuple[str, str | None]:
    """The URL without its query, and the `format=` it names (None: not given). The query is split
    at the first `?`, then on `&`, as RSigma does; an unknown key, an unknown or empty format, or a
    repeated one is a startup error naming the flag, and so is any format on the DLQ."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    fmt: str | None = None
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key != "format":
            raise ConfigError(f"{flag} {url!r}: unknown query parameter {key!r} (supported: format)")
        if flag == "--dlq":
            raise ConfigError(
                f"{flag} {url!r}: format= is only supported on findings sinks (--output);"
                " dead-letter entries are always JSON lines"
            )
        if fmt is not None:
            raise ConfigError(f"{flag} {url!r}: format= may be specified only once")
        if value not in FORMATS:
            raise ConfigError(f"{flag} {url!r}: unknown sink format {value!r} (supported: ndjson, ocsf)")
        fmt = value
    return base, fmt
