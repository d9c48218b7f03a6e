"""Sigma rules as the specification reads: loading, the rule and correlation models, modifiers, conditions."""

from rsigma.rules.correlation import CorrelationRule, Threshold
from rsigma.rules.loader import RuleSet, load_rules, parse_rules_text
from rsigma.rules.model import DetectionGroup, DetectionItem, LogSource, SigmaFilter, SigmaRule

__all__ = [
    "CorrelationRule",
    "DetectionGroup",
    "DetectionItem",
    "LogSource",
    "RuleSet",
    "SigmaFilter",
    "SigmaRule",
    "Threshold",
    "load_rules",
    "parse_rules_text",
]
