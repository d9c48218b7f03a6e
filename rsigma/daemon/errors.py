"""The daemon's startup error, shared by everything that checks a setting (sinks, NATS, state, API)."""

from __future__ import annotations


class ConfigError(Exception):
    """A startup setting is unusable (exit code 3); the message says which and why."""
