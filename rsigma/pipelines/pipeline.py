"""pySigma-compatible processing pipelines: loading (builtin names or YAML files) and application.

Pipelines run once per rule at load time, in `priority` order (lower first), before rules are
compiled; evaluation never sees them. Each pipeline keeps its own state (`set_state` values, the
ids of items applied to the rule being processed), as in pySigma.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rsigma.errors import Location, SigmaError, SigmaRuleError, SigmaSyntaxError
from rsigma.pipelines.conditions import (
    AnyRule,
    PipelineState,
    field_condition,
    item_condition,
    rule_condition,
)
from rsigma.pipelines.transformations import TRANSFORMATIONS, ItemContext
from rsigma.rules.condition import CondAnd, CondNode, CondNot, CondOr, CondRef, parse_condition
from rsigma.rules.correlation import CorrelationRule
from rsigma.rules.loader import RuleSet
from rsigma.rules.model import SigmaFilter, SigmaRule
from rsigma.rules.yaml_documents import iter_documents

BUILTIN_DIR: Final = Path(__file__).resolve().parent / "builtin"
_ITEM_KEYS: Final = frozenset(
    {
        "id", "type", "rule_conditions", "rule_cond_op", "rule_cond_not", "rule_cond_expr",
        "detection_item_conditions", "detection_item_cond_op", "detection_item_cond_not",
        "detection_item_cond_expr", "field_name_conditions", "field_name_cond_op", "field_name_cond_not",
        "field_name_cond_expr",
    }
)  # fmt: skip

Check = Callable[..., bool]  # (target, state) or, for field names, (name, state, detection item)


@dataclass(slots=True)
class ProcessingItem:
    id: str | None
    type: str
    params: dict[str, Any]
    rule_check: Check
    item_check: Check
    field_check: Check
    has_field_conditions: bool


@dataclass(slots=True)
class Pipeline:
    name: str
    priority: int
    vars: dict[str, Any]
    items: list[ProcessingItem] = field(default_factory=list)
    source: str = ""

    def apply(self, rule: AnyRule) -> AnyRule:
        """The rule as this pipeline leaves it; errors name the pipeline and the item."""
        state = PipelineState(vars=self.vars)
        state.applied = set(getattr(rule, "processed_by", ()))
        for number, item in enumerate(self.items, start=1):
            if not item.rule_check(rule, state):
                continue
            ctx = ItemContext(
                item.id, item.params, item.item_check, item.field_check, item.has_field_conditions, state
            )
            try:
                rule = TRANSFORMATIONS[item.type](rule, ctx)
            except SigmaError as e:
                where = f"pipeline {self.name!r} item {item.id or number} ({item.type})"
                raise type(e)(f"{where}: {e.message}", location=e.location) from None
            if item.id is not None:
                state.applied.add(item.id)
                if isinstance(rule, SigmaRule | CorrelationRule) and hasattr(rule, "processed_by"):
                    rule = dataclasses.replace(rule, processed_by=frozenset(state.applied))
        return rule


def _combine(
    specs: Any, op: str, negate: bool, expr: str | None, build: Callable[[dict[str, Any]], Check], what: str
) -> Check:
    """A list of conditions AND'ed (or OR'ed with `*_cond_op: or`), or named conditions and an expression."""
    if specs is None:
        return lambda *args: True
    if isinstance(specs, dict):
        named = {str(k): build(v) for k, v in specs.items()}
        if expr is None:
            checks = list(named.values())
        else:
            node = parse_condition(expr)
            check = _expression(node, named, what)
            return (lambda *a: not check(*a)) if negate else check
    elif isinstance(specs, list):
        checks = [build(s) for s in specs]
    else:
        raise SigmaRuleError(f"'{what}' must be a list of conditions or a mapping of named conditions")
    if op not in ("and", "or"):
        raise SigmaRuleError(f"'{what}' operator must be 'and' or 'or', got {op!r}")
    if op == "and":
        combined: Check = lambda *a: all(c(*a) for c in checks)  # noqa: E731
    else:
        combined = lambda *a: any(c(*a) for c in checks)  # noqa: E731
    return (lambda *a: not combined(*a)) if negate else combined


def _expression(node: CondNode, named: dict[str, Check], what: str) -> Check:
    match node:
        case CondRef(name):
            if name not in named:
                raise SigmaRuleError(f"'{what}' expression names unknown condition {name!r}")
            return named[name]
        case CondNot(item):
            inner = _expression(item, named, what)
            return lambda *a: not inner(*a)
        case CondAnd(items):
            parts = [_expression(i, named, what) for i in items]
            return lambda *a: all(p(*a) for p in parts)
        case CondOr(items):
            parts = [_expression(i, named, what) for i in items]
            return lambda *a: any(p(*a) for p in parts)
    raise SigmaRuleError(f"'{what}' expressions support and, or, not and parentheses")


def _item(spec: Any, number: int) -> ProcessingItem:
    if not isinstance(spec, dict):
        raise SigmaRuleError(f"transformation {number} must be a mapping")
    ttype = spec.get("type")
    if ttype not in TRANSFORMATIONS:
        raise SigmaRuleError(
            f"transformation {spec.get('id') or number}: unknown type {ttype!r}"
            f" (supported: {', '.join(sorted(TRANSFORMATIONS))})"
        )

    def checks(prefix: str, build: Callable[[dict[str, Any]], Check]) -> Check:
        return _combine(
            spec.get(f"{prefix}_conditions"),
            spec.get(f"{prefix}_cond_op", "and"),
            bool(spec.get(f"{prefix}_cond_not", False)),
            spec.get(f"{prefix}_cond_expr"),
            build,
            f"{prefix}_conditions",
        )

    try:
        return ProcessingItem(
            id=None if spec.get("id") is None else str(spec["id"]),
            type=ttype,
            params={k: v for k, v in spec.items() if k not in _ITEM_KEYS or k == "type"},
            rule_check=checks("rule", rule_condition),
            item_check=checks("detection_item", item_condition),
            field_check=checks("field_name", field_condition),
            has_field_conditions=spec.get("field_name_conditions") is not None,
        )
    except SigmaError as e:
        raise type(e)(f"transformation {spec.get('id') or number}: {e.message}") from None


def parse_pipeline(doc: Any, source: str) -> Pipeline:
    if not isinstance(doc, dict):
        raise SigmaRuleError("a pipeline must be a mapping with 'transformations'")
    items = doc.get("transformations") or []
    if not isinstance(items, list):
        raise SigmaRuleError("'transformations' must be a list")
    variables = doc.get("vars") or {}
    if not isinstance(variables, dict):
        raise SigmaRuleError("'vars' must be a mapping")
    priority = doc.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise SigmaRuleError(f"'priority' must be an integer, got {priority!r}")
    return Pipeline(
        name=str(doc.get("name", "unnamed")),
        priority=priority,
        vars=variables,
        items=[_item(spec, n) for n, spec in enumerate(items, start=1)],
        source=source,
    )


def builtin_pipelines() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yml"))


def load_pipeline(name_or_path: str | Path) -> Pipeline:
    """A builtin pipeline by name, or a pipeline YAML file; errors name the file and the item."""
    return parse_pipeline_text(*read_pipeline(name_or_path))


def read_pipeline(name_or_path: str | Path) -> tuple[Path, str]:
    """The file a pipeline name or path stands for, and its text (the rule cache's key hashes it)."""
    path = Path(name_or_path)
    if not path.exists():
        builtin = BUILTIN_DIR / f"{name_or_path}.yml"
        if not builtin.exists():
            raise SigmaSyntaxError(
                f"no pipeline file or builtin pipeline {str(name_or_path)!r}"
                f" (builtin: {', '.join(builtin_pipelines())})",
                location=Location(path),
            )
        path = builtin
    try:
        return path, path.read_text(encoding="utf-8")
    except OSError as e:
        raise SigmaSyntaxError(f"cannot read pipeline: {e}", location=Location(path)) from e
    except UnicodeDecodeError as e:
        raise SigmaSyntaxError(f"invalid YAML: {e}", location=Location(path)) from e


def parse_pipeline_text(path: Path, text: str) -> Pipeline:
    """The pipeline in `text`, read from `path` (which errors name)."""
    location = Location(path)
    try:
        docs = [doc for _, doc in iter_documents(text)]
    except Exception as e:  # yaml.YAMLError: report it as a located syntax error
        raise SigmaSyntaxError(f"invalid YAML: {e}", location=location) from e
    if len(docs) != 1:
        raise SigmaSyntaxError("a pipeline file holds exactly one YAML document", location=location)
    try:
        return parse_pipeline(docs[0], str(path))
    except SigmaError as e:
        raise e.located(location) from None


def apply_pipelines(ruleset: RuleSet, pipelines: Iterable[Pipeline]) -> RuleSet:
    """A new RuleSet with every rule, filter and correlation processed; failing rules become errors."""
    ordered = sorted(pipelines, key=lambda p: p.priority)
    out = RuleSet(filters=[], errors=list(ruleset.errors), files=ruleset.files)
    for rule in [*ruleset.rules, *ruleset.correlations]:
        try:
            processed: AnyRule = rule
            for pipeline in ordered:
                processed = pipeline.apply(processed)
        except SigmaError as e:
            out.errors.append(e.located(rule.location, rule.title))
            continue
        (out.rules if isinstance(processed, SigmaRule) else out.correlations).append(processed)  # type: ignore[arg-type]
    for flt in ruleset.filters:
        out.filters.append(_apply_to_filter(flt, ordered))
    return out


def _apply_to_filter(flt: SigmaFilter, pipelines: list[Pipeline]) -> SigmaFilter:
    """Filters share the rules' field names, so detection-item transformations apply to them too."""
    as_rule = SigmaRule(
        title=flt.title, detections=flt.detections, conditions=(flt.condition,), logsource=flt.logsource
    )
    for pipeline in pipelines:
        processed = pipeline.apply(as_rule)
        assert isinstance(processed, SigmaRule)
        as_rule = processed
    return dataclasses.replace(flt, detections=as_rule.detections, condition=as_rule.conditions[0])
