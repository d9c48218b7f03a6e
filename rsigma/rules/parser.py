"""Sigma documents (decoded YAML mappings) to rule objects, with every error naming the part at fault."""

from __future__ import annotations

from typing import Any, Final

from rsigma.errors import Location, SigmaError, SigmaRuleError
from rsigma.rules.condition import CondNode, CondOr, check_references, parse_condition
from rsigma.rules.correlation import CorrelationRule, parse_correlation
from rsigma.rules.model import (
    DetectionGroup,
    DetectionItem,
    LogSource,
    SigmaFilter,
    SigmaRule,
)
from rsigma.rules.modifiers import build_item

#: Top-level attributes the specification defines; anything else is a custom attribute.
RULE_ATTRIBUTES: Final = frozenset(
    {
        "title", "id", "name", "related", "taxonomy", "status", "description", "license", "author",
        "references", "date", "modified", "logsource", "detection", "fields", "falsepositives", "level",
        "tags", "scope",
    }
)  # fmt: skip
LEVELS: Final = frozenset({"informational", "low", "medium", "high", "critical"})
STATUSES: Final = frozenset({"stable", "test", "experimental", "deprecated", "unsupported"})
LOGSOURCE_KEYS: Final = ("category", "product", "service", "definition")


def parse_document(doc: Any, location: Location) -> SigmaRule | SigmaFilter | CorrelationRule:
    """Classify a document by its keys (correlation, filter or rule) and parse it."""
    if not isinstance(doc, dict):
        raise SigmaRuleError(
            f"a rule document must be a mapping, got {type(doc).__name__}", location=location
        )
    title = doc.get("title")
    try:
        if not isinstance(title, str) or not title.strip():
            raise SigmaRuleError("'title' is missing or not a string")
        if "correlation" in doc:
            return parse_correlation(doc, location)
        if "filter" in doc:
            return _parse_filter(doc, title, location)
        return _parse_rule(doc, title, location)
    except SigmaError as e:
        raise e.located(location, title if isinstance(title, str) else None) from None


def _str_or_none(doc: dict[str, Any], key: str) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str | int | float):
        raise SigmaRuleError(f"'{key}' must be a string, got {type(v).__name__}")
    return str(v)


def _str_list(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    v = doc.get(key)
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list):
        raise SigmaRuleError(f"'{key}' must be a list of strings, got {type(v).__name__}")
    return tuple(str(x) for x in v)


def _parse_logsource(doc: dict[str, Any], required: bool) -> LogSource:
    ls = doc.get("logsource")
    if ls is None:
        if required:
            raise SigmaRuleError("'logsource' is missing")
        return LogSource()
    if not isinstance(ls, dict):
        raise SigmaRuleError(f"'logsource' must be a mapping, got {type(ls).__name__}")
    known = {k: (None if ls.get(k) is None else str(ls[k])) for k in LOGSOURCE_KEYS}
    custom = {k: v for k, v in ls.items() if k not in LOGSOURCE_KEYS}
    return LogSource(**known, custom=custom)


def _parse_detections(detection: Any, section: str) -> tuple[dict[str, DetectionGroup], Any]:
    if not isinstance(detection, dict):
        raise SigmaRuleError(f"'{section}' must be a mapping of search identifiers and a condition")
    detections: dict[str, DetectionGroup] = {}
    for name, body in detection.items():
        if name in ("condition", "timeframe"):
            continue
        try:
            detections[str(name)] = _parse_group(body)
        except SigmaError as e:
            raise type(e)(f"{section}.{name}: {e.message}", location=e.location) from None
    return detections, detection.get("condition")


def _parse_group(body: Any) -> DetectionGroup:
    if isinstance(body, dict):
        if not body:
            raise SigmaRuleError("an empty mapping matches nothing")
        return DetectionGroup(tuple(build_item(str(k), v) for k, v in body.items()))
    if isinstance(body, list):
        if not body:
            raise SigmaRuleError("an empty list matches nothing")
        if all(not isinstance(x, dict | list) for x in body):
            return DetectionGroup((build_item("", body),))
        items: list[DetectionItem | DetectionGroup] = []
        for x in body:
            if isinstance(x, list):
                raise SigmaRuleError("a list inside a list of maps is not a valid detection")
            items.append(_parse_group(x) if isinstance(x, dict) else build_item("", x))
        return DetectionGroup(tuple(items), any_of=True)
    if body is None:
        raise SigmaRuleError("a search identifier needs a map, a list or a keyword")
    return DetectionGroup((build_item("", body),))


def _parse_conditions(raw: Any, names: list[str]) -> tuple[CondNode, ...]:
    if raw is None:
        raise SigmaRuleError("'detection.condition' is missing")
    texts = raw if isinstance(raw, list) else [raw]
    if not texts:
        raise SigmaRuleError("'detection.condition' is an empty list")
    out = []
    for text in texts:
        node = parse_condition(text)
        check_references(node, names, text)
        out.append(node)
    return tuple(out)


def _parse_rule(doc: dict[str, Any], title: str, location: Location) -> SigmaRule:
    if "detection" not in doc:
        raise SigmaRuleError("'detection' is missing")
    detections, cond = _parse_detections(doc["detection"], "detection")
    if not detections:
        raise SigmaRuleError("'detection' defines no search identifier")
    conditions = _parse_conditions(cond, list(detections))
    level = _str_or_none(doc, "level")
    if level is not None and level not in LEVELS:
        raise SigmaRuleError(f"'level' must be one of {', '.join(sorted(LEVELS))}, got {level!r}")
    status = _str_or_none(doc, "status")
    if status is not None and status not in STATUSES:
        raise SigmaRuleError(f"'status' must be one of {', '.join(sorted(STATUSES))}, got {status!r}")
    return SigmaRule(
        title=title,
        detections=detections,
        conditions=conditions,
        logsource=_parse_logsource(doc, required=True),
        id=_str_or_none(doc, "id"),
        name=_str_or_none(doc, "name"),
        status=status,
        level=level,
        description=_str_or_none(doc, "description"),
        tags=_str_list(doc, "tags"),
        fields=_str_list(doc, "fields"),
        falsepositives=_str_list(doc, "falsepositives"),
        custom={k: v for k, v in doc.items() if k not in RULE_ATTRIBUTES},
        location=location,
    )


def _parse_filter(doc: dict[str, Any], title: str, location: Location) -> SigmaFilter:
    body = doc["filter"]
    if not isinstance(body, dict):
        raise SigmaRuleError("'filter' must be a mapping with rules, selections and a condition")
    rules = body.get("rules")
    targets: tuple[str, ...] | None
    if rules is None or rules in ("any", "all") or rules == []:
        targets = None
    elif isinstance(rules, str):
        targets = (rules,)
    elif isinstance(rules, list) and all(isinstance(r, str) for r in rules):
        targets = tuple(rules)
    else:
        raise SigmaRuleError("'filter.rules' must be a rule id or name, or a list of them")
    detections, cond = _parse_detections({k: v for k, v in body.items() if k != "rules"}, "filter")
    if not detections:
        raise SigmaRuleError("'filter' defines no search identifier")
    conditions = _parse_conditions(cond, list(detections))
    return SigmaFilter(
        title=title,
        detections=detections,
        condition=conditions[0] if len(conditions) == 1 else CondOr(conditions),
        logsource=_parse_logsource(doc, required=False),
        rules=targets,
        id=_str_or_none(doc, "id"),
        name=_str_or_none(doc, "name"),
        location=location,
    )
