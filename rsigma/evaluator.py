"""Detections and correlations together: the results one event produces, in output order.

Detections come first (in rule load order), then correlation results (children before parents).
A detection rule that a correlation references is not output on its own unless a referencing
correlation says `generate: true` (Sigma correlation specification, "Generate").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from rsigma.correlation.engine import CorrelationConfig, CorrelationEngine, CorrelationResult
from rsigma.engine import Detection, Engine
from rsigma.errors import SigmaError
from rsigma.routing import LogsourceRouter
from rsigma.rules import RuleSet, parse_rules_text

Result = Detection | CorrelationResult


@dataclass(frozen=True, slots=True)
class RuleSummary:
    """What a process that does not evaluate needs of a loaded rule set: what the daemon's API, logs and
    metrics show, the reload checks, and the correlations' levels and keys for routing their hits.

    The supervisor of a matcher pool keeps only this: its matchers compile and evaluate the rules, and a
    compiled SigmaHQ is about 100 MB that no one in the supervisor would use."""

    rules: tuple[tuple[str, str | None, str | None], ...]  # (title, id, level) in load order
    correlations: int
    fingerprint: str  # `Evaluator.fingerprint`
    levels: tuple[int, ...]  # `CorrelationEngine.levels` and `.keys`
    keys: tuple[str, ...]
    skipped: tuple[str, ...]  # what the loader left out, with why (`Evaluator.skipped`)


class Evaluator:
    """One engine for an event stream: pure apart from the correlation windows it keeps."""

    def __init__(
        self,
        ruleset: RuleSet,
        config: CorrelationConfig | None = None,
        *,
        strict: bool = False,
        router: LogsourceRouter | None = None,
        match_detail: str = "off",
        engine: Engine | None = None,
    ) -> None:
        """`engine`: the rules of `ruleset` already compiled (from the rule cache, say)."""
        if engine is None:
            engine = Engine(ruleset, strict=strict, router=router, match_detail=match_detail)
        self.engine = engine
        self.correlation = CorrelationEngine(
            ruleset.correlations, [r.rule for r in self.engine.rules], config, strict=strict
        )
        self.skipped: list[SigmaError] = []  # what the loader left out (`rsigma.loading`), with why

    @classmethod
    def from_yaml(cls, text: str, config: CorrelationConfig | None = None) -> Evaluator:
        """From YAML text; any invalid document raises its SigmaError."""
        ruleset = parse_rules_text(text)
        if ruleset.errors:
            raise ruleset.errors[0]
        return cls(ruleset, config, strict=True)

    def fingerprint(self) -> str:
        """The rule set's shape: its rules and correlations, in order. Matchers compile the rules
        themselves, and hits name rules and correlations by position, so every process of a pool
        must have the same fingerprint."""
        digest = hashlib.blake2b(digest_size=8)
        for compiled in self.engine.rules:
            digest.update(f"{compiled.rule.id}\0{compiled.rule.title}\n".encode())
        for c in self.correlation.correlations:
            digest.update(f"{c.id}\0{c.name}\0{c.title}\0{c.type}\0{c.rules}\0{c.group_by}\n".encode())
        return digest.hexdigest()

    def summary(self) -> RuleSummary:
        return RuleSummary(
            rules=tuple((c.rule.title, c.rule.id, c.rule.level) for c in self.engine.rules),
            correlations=len(self.correlation.correlations),
            fingerprint=self.fingerprint(),
            levels=tuple(self.correlation.levels),
            keys=tuple(self.correlation.keys),
            skipped=tuple(map(str, self.skipped)),
        )

    @property
    def errors(self) -> list[SigmaError]:
        return self.engine.errors + self.correlation.errors

    def process(self, event: dict[str, Any]) -> list[Result]:
        detections = self.engine.evaluate(event)
        if not detections:
            return []
        if not self.correlation.correlations:
            return list(detections)
        silent = self.correlation.silent_rules
        correlated = self.correlation.process(event, [d.index for d in detections])
        out: list[Result] = [d for d in detections if d.index not in silent]
        out.extend(correlated)
        return out
