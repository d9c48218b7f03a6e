"""Errors raised while loading rules, each located at the file, line and rule it came from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rsigma.pickling import pickled_by_fields


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Location:
    """Where a rule or one of its parts was written.

    The file is kept as its text: a `Path` per rule file was a quarter of a cached load's unpickling,
    and the path is only read to report where something is."""

    file: str | None = None
    line: int | None = None

    def __init__(self, path: str | Path | None = None, line: int | None = None) -> None:
        object.__setattr__(self, "file", None if path is None else os.fspath(path))
        object.__setattr__(self, "line", line)

    @property
    def path(self) -> Path | None:
        return None if self.file is None else Path(self.file)

    def __str__(self) -> str:
        if self.file is None:
            return f"line {self.line}" if self.line else "<text>"
        return f"{self.file}:{self.line}" if self.line else self.file


class SigmaError(Exception):
    """Base class for every error a rule file can cause; the message names what was expected."""

    def __init__(self, message: str, *, location: Location | None = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location or Location()
        self.rule = rule

    @property
    def path(self) -> Path | None:
        return self.location.path

    @property
    def line(self) -> int | None:
        return self.location.line

    def located(self, location: Location, rule: str | None = None) -> SigmaError:
        """Return a copy that carries `location` (and the rule title) when it has none yet."""
        loc = self.location
        merged = Location(loc.file or location.file, loc.line or location.line)
        return type(self)(self.message, location=merged, rule=self.rule or rule)

    def __str__(self) -> str:
        rule = f" (rule {self.rule!r})" if self.rule else ""
        return f"{self.location}{rule}: {self.message}"


class SigmaSyntaxError(SigmaError):
    """The file is not valid YAML, or a document is not a mapping."""


class SigmaRuleError(SigmaError):
    """A document is YAML but not a valid Sigma rule (missing or malformed section)."""


class SigmaModifierError(SigmaRuleError):
    """An unknown modifier, an illegal combination, or a value the modifier cannot take."""


class SigmaValueError(SigmaRuleError):
    """A value cannot be used: bad regex, bad CIDR, non-numeric comparison, unresolved placeholder."""


class SigmaConditionError(SigmaRuleError):
    """The condition does not parse or refers to identifiers the detection does not define."""


class ConfigError(Exception):
    """A startup setting is unusable (exit code 3); the message says which and why (sinks, NATS,
    state database, API address)."""
