"""Processing-item conditions, as pySigma names them: on the rule, on a detection item, on a field name.

Each condition is built once from its YAML mapping and then called with what it tests. Unknown
types and missing parameters are errors naming the condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rsigma.errors import SigmaRuleError
from rsigma.rules.correlation import CorrelationRule
from rsigma.rules.model import DetectionItem, SigmaRule
from rsigma.rules.values import SigmaString


@dataclass(slots=True)
class PipelineState:
    """What one pipeline knows while it processes one rule: `set_state` values and applied item ids."""

    vars: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)  # item ids applied to the current rule
    fields_processed: dict[str, set[str]] = field(default_factory=dict)  # field name -> item ids


AnyRule = SigmaRule | CorrelationRule
RuleCondition = Callable[[AnyRule, PipelineState], bool]
ItemCondition = Callable[[DetectionItem, PipelineState], bool]
FieldCondition = Callable[[str, PipelineState, DetectionItem | None], bool]


def _need(spec: dict[str, Any], key: str, ctype: str) -> Any:
    if key not in spec:
        raise SigmaRuleError(f"condition '{ctype}' needs '{key}'")
    return spec[key]


def _rule_items(rule: AnyRule) -> list[DetectionItem]:
    if isinstance(rule, CorrelationRule):
        return []
    return [i for g in rule.detections.values() for i in g.leaves()]


def _same_value(value: Any, want: Any) -> bool:
    """Typed equality, as pySigma compares: booleans with booleans, numbers with numbers, text with text."""
    if isinstance(want, bool) or isinstance(value, bool):
        return value is want
    if isinstance(want, int | float):
        return isinstance(value, int | float) and value == want
    return isinstance(value, SigmaString) and value.is_plain and value.plain() == str(want)


def _plain_values(item: DetectionItem) -> list[str]:
    return [str(v) for v in item.values if isinstance(v, SigmaString)] + [
        str(v) for v in item.values if isinstance(v, int | float) and not isinstance(v, bool)
    ]


def rule_condition(spec: dict[str, Any]) -> RuleCondition:
    ctype = spec.get("type")
    if ctype == "logsource":
        want = {
            k: str(spec[k]).lower() for k in ("category", "product", "service") if spec.get(k) is not None
        }

        def logsource(rule: AnyRule, _: PipelineState) -> bool:
            if isinstance(rule, CorrelationRule):
                return False
            ls = rule.logsource
            have = {"category": ls.category, "product": ls.product, "service": ls.service}
            return all((have[k] or "").lower() == v for k, v in want.items())

        return logsource
    if ctype == "contains_detection_item":
        fname = _need(spec, "field", ctype)
        value = spec.get("value")

        def contains(rule: AnyRule, _: PipelineState) -> bool:
            return any(
                i.field == fname and (value is None or str(value) in _plain_values(i))
                for i in _rule_items(rule)
            )

        return contains
    if ctype == "contains_field":
        fname = _need(spec, "field", ctype)
        return lambda rule, _: any(i.field == fname for i in _rule_items(rule))
    if ctype == "processing_item_applied":
        pid = _need(spec, "processing_item_id", ctype)
        return lambda rule, st: pid in st.applied or pid in getattr(rule, "processed_by", ())
    if ctype == "processing_state":
        return _state_condition(spec, ctype)
    if ctype == "is_sigma_rule":
        return lambda rule, _: isinstance(rule, SigmaRule)
    if ctype == "is_sigma_correlation_rule":
        return lambda rule, _: isinstance(rule, CorrelationRule)
    if ctype == "rule_attribute":
        attribute = _need(spec, "attribute", ctype)
        value = _need(spec, "value", ctype)
        op = spec.get("op", "eq")
        compare = _compare(op, ctype)

        def attr(rule: AnyRule, _: PipelineState) -> bool:
            have = getattr(rule, attribute, None)
            if have is None and isinstance(rule, SigmaRule):
                have = rule.custom.get(attribute)
            return have is not None and compare(have, value)

        return attr
    if ctype == "tag":
        tag = str(_need(spec, "tag", ctype)).lower()
        return lambda rule, _: any(t.lower() == tag for t in rule.tags)
    raise SigmaRuleError(f"unknown rule condition type {ctype!r}")


def _compare(op: str, ctype: str) -> Callable[[Any, Any], bool]:
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: str(a) == str(b),
        "ne": lambda a, b: str(a) != str(b),
        "lt": lambda a, b: _ordered(a) < _ordered(b),
        "lte": lambda a, b: _ordered(a) <= _ordered(b),
        "gt": lambda a, b: _ordered(a) > _ordered(b),
        "gte": lambda a, b: _ordered(a) >= _ordered(b),
    }
    if op not in ops:
        raise SigmaRuleError(f"condition '{ctype}': unknown op {op!r} (expected {', '.join(ops)})")
    return ops[op]


_LEVELS = ("informational", "low", "medium", "high", "critical")


def _ordered(value: Any) -> Any:
    text = str(value)
    return _LEVELS.index(text) if text in _LEVELS else text


def _state_condition(spec: dict[str, Any], ctype: str) -> Callable[[Any, PipelineState], bool]:
    key = _need(spec, "key", ctype)
    val = _need(spec, "val", ctype)
    compare = _compare(spec.get("op", "eq"), ctype)
    return lambda _, st: key in st.state and compare(st.state[key], val)


def item_condition(spec: dict[str, Any]) -> ItemCondition:
    ctype = spec.get("type")
    if ctype == "match_string":
        pattern = re.compile(_need(spec, "pattern", ctype))
        need_all = spec.get("cond", "any") == "all"
        negate = bool(spec.get("negate", False))

        def match_string(item: DetectionItem, _: PipelineState) -> bool:
            strings = [str(v) for v in item.values if isinstance(v, SigmaString)]
            hits = [pattern.match(s) is not None for s in strings]
            result = bool(hits) and (all(hits) if need_all else any(hits))
            return result != negate

        return match_string
    if ctype == "match_value":
        want = _need(spec, "value", ctype)
        need_all = spec.get("cond", "any") == "all"

        def match_value(item: DetectionItem, _: PipelineState) -> bool:
            hits = [_same_value(v, want) for v in item.values]
            return bool(hits) and (all(hits) if need_all else any(hits))

        return match_value
    if ctype == "contains_wildcard":
        return lambda item, _: any(isinstance(v, SigmaString) and v.has_wildcards for v in item.values)
    if ctype == "is_null":
        negate = bool(spec.get("negate", False))
        return lambda item, _: (any(v is None for v in item.values) and item.op == "eq") != negate
    if ctype == "processing_item_applied":
        pid = _need(spec, "processing_item_id", ctype)
        return lambda item, _: pid in item.processed_by
    if ctype == "processing_state":
        return _state_condition(spec, ctype)
    raise SigmaRuleError(f"unknown detection item condition type {ctype!r}")


def field_condition(spec: dict[str, Any]) -> FieldCondition:
    ctype = spec.get("type")
    if ctype in ("include_fields", "exclude_fields"):
        fields = spec.get("fields")
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list):
            raise SigmaRuleError(f"condition '{ctype}' needs 'fields' (a list of field names)")
        mode = spec.get("mode", spec.get("type_", spec.get("match_type", "plain")))
        if mode in ("re", "regex"):
            patterns = [re.compile(f) for f in fields]

            def matched(name: str) -> bool:
                return any(p.match(name) for p in patterns)  # anchored at the start, as pySigma

        else:
            names = set(fields)
            matched = names.__contains__
        include = ctype == "include_fields"
        return lambda name, _, __: matched(name) == include
    if ctype == "processing_item_applied":
        pid = _need(spec, "processing_item_id", ctype)

        def applied(name: str, st: PipelineState, item: DetectionItem | None) -> bool:
            if item is not None:
                return pid in item.processed_by
            return pid in st.fields_processed.get(name, ())

        return applied
    if ctype == "processing_state":
        check = _state_condition(spec, ctype)
        return lambda name, st, _: check(name, st)
    raise SigmaRuleError(f"unknown field name condition type {ctype!r}")
