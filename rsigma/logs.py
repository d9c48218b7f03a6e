"""Logs as JSON lines on stderr (or plain text with --log-format text), with structured fields, at the
level --log-level (or RSIGMA_LOG) sets."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

#: The names --log-level and RSIGMA_LOG take; `warn` as RUST_LOG users write it.
LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "warn": "warning", "error": "error"}

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        when = datetime.fromtimestamp(record.created, UTC)
        line = f"{when:%H:%M:%S} {record.levelname.lower():7} {record.getMessage()}"
        return f"{line} {extra}".rstrip()


def log_level(name: str) -> str:
    """The level a --log-level or RSIGMA_LOG value names (case does not matter); ValueError if none."""
    try:
        return LOG_LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"{name!r}: expected debug, info, warning or error") from None


def setup_logging(fmt: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level(level).upper())
