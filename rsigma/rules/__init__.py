"""Sigma rules as the specification reads: loading, the rule model, modifiers and conditions."""

from rsigma.rules.loader import RuleSet, load_rules, parse_rules_text
from rsigma.rules.model import DetectionGroup, DetectionItem, LogSource, SigmaFilter, SigmaRule

__all__ = [
    "DetectionGroup",
    "DetectionItem",
    "LogSource",
    "RuleSet",
    "SigmaFilter",
    "SigmaRule",
    "load_rules",
    "parse_rules_text",
]
