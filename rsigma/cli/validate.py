"""`rsigma rule validate`: every rule file checked, told as text for people or as one JSON document
for CI, both from the same findings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsigma.engine.engine import unresolved_placeholders
from rsigma.evaluator import Evaluator
from rsigma.loading import duplicate_rules
from rsigma.rules import RuleSet, load_rules
from rsigma.rules.loader import hidden_rule_files, rule_files


@dataclass(frozen=True, slots=True)
class Finding:
    """One error or warning: where, and the text the text format prints for it."""

    file: Path | None
    line: int | None
    rule: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": None if self.file is None else str(self.file),
            "line": self.line,
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(slots=True)
class Validation:
    """What `rule validate` found in its paths."""

    ruleset: RuleSet
    evaluator: Evaluator
    files: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def status(self, file: Path) -> str:
        if any(f.file == file for f in self.errors):
            return "error"
        return "warning" if any(f.file == file for f in self.warnings) else "ok"


def validate(paths: list[Path]) -> Validation:
    """Load and compile every rule below `paths`, collecting each failure and warning with its file."""
    ruleset = RuleSet()
    for p in paths:
        ruleset.extend(load_rules(p))
    evaluator = Evaluator(ruleset)
    found = Validation(ruleset, evaluator)
    for p in paths:
        found.files += rule_files(p) if p.exists() else [p]
        found.hidden += hidden_rule_files(p)
    found.errors = [Finding(e.path, e.line, e.rule, str(e)) for e in ruleset.errors + evaluator.errors]
    found.warnings = [
        Finding(rule.location.path, rule.location.line, rule.title, w)
        for rule in ruleset.rules
        for w in unresolved_placeholders(rule)
    ] + [
        Finding(rule.location.path, rule.location.line, rule.title, w) for rule, w in duplicate_rules(ruleset)
    ]
    listed = set(found.files)
    for f in found.errors + found.warnings:
        if f.file is not None and f.file not in listed:
            listed.add(f.file)
            found.files.append(f.file)
    return found


def as_text(found: Validation) -> str:
    """Each error and warning on its line, then how many rules loaded."""
    out = [f"error: {f.message}" for f in found.errors] + [f"warning: {f.message}" for f in found.warnings]
    engine, correlation = found.evaluator.engine, found.evaluator.correlation
    out.append(
        f"{len(engine.rules)} rules, {len(found.ruleset.filters)} filters,"
        f" {len(correlation.correlations)} correlations"
        f" loaded from {found.ruleset.files} files; {len(found.errors)} failed"
    )
    return "\n".join(out)


def as_json(found: Validation) -> str:
    """One JSON document: each file checked with its status, the errors, the warnings, the hidden
    files left out, and the totals."""
    statuses = [found.status(f) for f in found.files]
    document = {
        "files": [{"file": str(f), "status": s} for f, s in zip(found.files, statuses, strict=True)],
        "errors": [f.to_dict() for f in found.errors],
        "warnings": [f.to_dict() for f in found.warnings],
        "skipped": [{"file": str(f), "reason": "hidden"} for f in found.hidden],
        "totals": {
            "files": len(found.files),
            "ok": statuses.count("ok"),
            "with_warnings": statuses.count("warning"),
            "failed": statuses.count("error"),
            "skipped": len(found.hidden),
            "errors": len(found.errors),
            "warnings": len(found.warnings),
            "rules": len(found.evaluator.engine.rules),
            "filters": len(found.ruleset.filters),
            "correlations": len(found.evaluator.correlation.correlations),
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False)
