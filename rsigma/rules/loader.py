"""Reading rule files: directories, multi-document YAML, legacy collection actions, collected errors.

Loading never stops at the first bad rule: every failure is recorded with its file, line and reason,
so `rule validate` can report a whole rule tree in one pass and the daemon can start on the good rules.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsigma.errors import Location, SigmaError, SigmaSyntaxError
from rsigma.gc_pause import gc_paused
from rsigma.rules.correlation import CorrelationRule
from rsigma.rules.model import SigmaFilter, SigmaRule
from rsigma.rules.parser import parse_document
from rsigma.rules.yaml_documents import iter_documents

log = logging.getLogger(__name__)

RULE_SUFFIXES = (".yml", ".yaml")


@dataclass(slots=True)
class RuleSet:
    """Everything loaded from one or more paths, plus what failed to load."""

    rules: list[SigmaRule] = field(default_factory=list)
    filters: list[SigmaFilter] = field(default_factory=list)
    correlations: list[CorrelationRule] = field(default_factory=list)
    errors: list[SigmaError] = field(default_factory=list)
    files: int = 0

    def extend(self, other: RuleSet) -> None:
        self.rules += other.rules
        self.filters += other.filters
        self.correlations += other.correlations
        self.errors += other.errors
        self.files += other.files


def rule_files(path: Path) -> list[Path]:
    """A file itself, or every *.yml / *.yaml below a directory, in a stable order.

    Hidden files and directories are left out, as `glob` and pySigma leave them out: a Kubernetes
    ConfigMap volume keeps each file twice, in `..<timestamp>/` and behind a symlink beside it."""
    if path.is_dir():
        return [Path(file) for file in _rule_file_names(path)]
    return [path]


def _rule_file_names(path: Path) -> list[str]:
    """`rule_files` as strings: a cached load reads 1,000s of files and needs no Path for them."""
    if path.is_dir():
        return [file for parts, file in _yaml_files(path) if not _hidden(parts)]
    return [str(path)]


def hidden_rule_files(path: Path) -> list[Path]:
    """The *.yml / *.yaml files below a directory that `rule_files` leaves out for being hidden."""
    return [Path(file) for parts, file in _yaml_files(path) if _hidden(parts)] if path.is_dir() else []


def _yaml_files(directory: Path) -> list[tuple[tuple[str, ...], str]]:
    """Each rule file below `directory` with its path's parts below it, sorted as paths sort, as
    `directory.rglob("*")` finds them: symlinks to files are followed, symlinks to directories are not
    descended into. `os.walk` rather than `rglob`: a third of a cached load's time on SigmaHQ."""
    found = []
    for root, _, names in os.walk(directory):
        below = os.path.relpath(root, directory)
        prefix = () if below == "." else tuple(below.split(os.sep))
        for name in names:
            file = os.path.join(root, name)
            if os.path.splitext(name)[1] in RULE_SUFFIXES and os.path.isfile(file):
                found.append(((*prefix, name), file))
    found.sort()
    return found


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") for part in parts)


@dataclass(frozen=True, slots=True)
class RuleSource:
    """One rule file as read (its bytes), or a path that could not be read and why: what `load_rules`
    parses, and what the rule cache's key is made of, so the key and the rules come from one read."""

    path: str
    data: bytes | None
    problem: str | None = None  # why there are no bytes
    counted: bool = True  # a file (it counts in `RuleSet.files`), not a missing path


def read_sources(*paths: str | Path) -> list[RuleSource]:
    """Every rule file below `paths` (`rule_files`), read, in load order."""
    sources = []
    for p in map(Path, paths):
        if not p.exists():
            sources.append(RuleSource(str(p), None, "no such file or directory", counted=False))
            continue
        for file in _rule_file_names(p):
            try:
                with open(file, "rb") as f:
                    sources.append(RuleSource(file, f.read()))
            except OSError as e:
                sources.append(RuleSource(file, None, f"cannot read file: {e}"))
    return sources


def load_rules(*paths: str | Path) -> RuleSet:
    """Load rule files and directories; failures are collected in `RuleSet.errors`, not raised."""
    return parse_sources(read_sources(*paths))


def parse_sources(sources: list[RuleSource]) -> RuleSet:
    """The rules of files read by `read_sources`; failures are collected, not raised."""
    ruleset = RuleSet()
    with gc_paused():
        for source in sources:
            text = None
            problem = source.problem
            if source.data is not None:
                try:
                    text = _universal_newlines(source.data.decode("utf-8"))
                except UnicodeDecodeError as e:
                    problem = f"cannot read file: {e}"
            if text is None:
                ruleset.errors.append(SigmaSyntaxError(problem or "", location=Location(source.path)))
                ruleset.files += source.counted
                continue
            ruleset.extend(parse_rules_text(text, source.path))  # Location keeps the text
    return ruleset


def _universal_newlines(text: str) -> str:
    """The text as `Path.read_text` gives it: CRLF and CR line ends become LF."""
    if "\r" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse_rules_text(text: str, path: str | Path | None = None) -> RuleSet:
    """Parse the YAML documents of one file (or string) into rules, filters and correlations."""
    ruleset = RuleSet(files=1)
    for item in _documents(text, path):
        if isinstance(item, SigmaError):
            ruleset.errors.append(item)
            continue
        doc, location = item
        try:
            parsed = parse_document(doc, location)
        except SigmaError as e:
            ruleset.errors.append(e)
            continue
        if isinstance(parsed, SigmaRule):
            ruleset.rules.append(parsed)
        elif isinstance(parsed, SigmaFilter):
            ruleset.filters.append(parsed)
        else:
            ruleset.correlations.append(parsed)
    return ruleset


def _documents(text: str, path: str | Path | None) -> Iterator[tuple[Any, Location] | SigmaError]:
    """Yield each document with its line, applying the legacy `action: global/reset/repeat` documents."""
    template: dict[str, Any] = {}
    previous: dict[str, Any] | None = None
    try:
        for line, doc in iter_documents(text):
            if doc is None:
                continue
            location = Location(path, line)
            action = doc.get("action") if isinstance(doc, dict) else None
            if action is None:
                if isinstance(doc, dict) and "correlation" not in doc and "filter" not in doc:
                    doc = deep_merge(template, doc)
                previous = doc
                yield doc, location
            elif action == "global":
                template = {k: v for k, v in doc.items() if k != "action"}
            elif action == "reset":
                template = {}
            elif action == "repeat":
                if previous is None:
                    yield SigmaSyntaxError("'action: repeat' without a previous document", location=location)
                    continue
                previous = deep_merge(previous, {k: v for k, v in doc.items() if k != "action"})
                yield previous, location
            else:
                yield SigmaSyntaxError(
                    f"unknown 'action: {action}' (expected global, reset or repeat)", location=location
                )
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        column = f", column {mark.column + 1}" if mark is not None else ""
        yield SigmaSyntaxError(f"invalid YAML{column}: {problem}", location=Location(path, line))


def deep_merge(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; any other value in `doc` replaces the one in `base`."""
    if not base:
        return doc
    out = dict(base)
    for k, v in doc.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
