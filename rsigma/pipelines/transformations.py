"""Transformations of pySigma processing pipelines, one function per `type`, in one registry.

A transformation takes a rule and returns a new one (the rule model is frozen). Detection-item
transformations touch only the items that pass the processing item's detection-item and field-name
conditions, and record the item's id on what they change (`processed_by`), which is what
`processing_item_applied` conditions test.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rsigma.errors import SigmaRuleError
from rsigma.pipelines.conditions import AnyRule, PipelineState
from rsigma.rules.condition import CondAnd, CondNot, CondRef
from rsigma.rules.correlation import CorrelationRule
from rsigma.rules.model import DetectionGroup, DetectionItem, LogSource, SigmaRule
from rsigma.rules.modifiers import build_item
from rsigma.rules.values import STAR, Placeholder, SigmaFieldRef, SigmaString


@dataclass(slots=True)
class ItemContext:
    """The processing item being applied: its id, parameters and item-level conditions."""

    id: str | None
    params: dict[str, Any]
    item_conditions: Callable[[DetectionItem, PipelineState], bool]
    field_conditions: Callable[[str, PipelineState, DetectionItem | None], bool]
    has_field_conditions: bool
    state: PipelineState

    def param(self, key: str, default: Any = dataclasses.MISSING) -> Any:
        if key in self.params:
            return self.params[key]
        if default is dataclasses.MISSING:
            raise SigmaRuleError(f"transformation '{self.params.get('type')}' needs '{key}'")
        return default

    def field_selected(self, name: str, item: DetectionItem | None = None) -> bool:
        return self.field_conditions(name, self.state, item)

    def renamed(self, name: str) -> None:
        """Remember that this item produced the field name (field-name `processing_item_applied`)."""
        if self.id is not None:
            self.state.fields_processed.setdefault(name, set()).add(self.id)

    def mark(self, item: DetectionItem) -> DetectionItem:
        if self.id is None:
            return item
        return dataclasses.replace(item, processed_by=item.processed_by | {self.id})


Transformation = Callable[[AnyRule, ItemContext], AnyRule]
ItemFn = Callable[[DetectionItem], "DetectionItem | DetectionGroup | None"]


def _map_items(rule: AnyRule, ctx: ItemContext, fn: ItemFn) -> AnyRule:
    """Apply `fn` to each selected detection item; None drops the item."""
    if not isinstance(rule, SigmaRule):
        return rule

    def walk(group: DetectionGroup) -> DetectionGroup:
        out: list[DetectionItem | DetectionGroup] = []
        for item in group.items:
            if isinstance(item, DetectionGroup):
                out.append(walk(item))
                continue
            selected = ctx.item_conditions(item, ctx.state) and (
                not ctx.has_field_conditions
                or (item.field is not None and ctx.field_selected(item.field, item))
            )
            if not selected:
                out.append(item)
                continue
            new = fn(item)
            if new is None:
                continue
            out.append(ctx.mark(new) if isinstance(new, DetectionItem) and new != item else new)
        return DetectionGroup(tuple(out), group.any_of)

    detections = {name: walk(g) for name, g in rule.detections.items()}
    return dataclasses.replace(rule, detections=detections)


def _map_field_names(rule: AnyRule, ctx: ItemContext, fn: Callable[[str], list[str]]) -> AnyRule:
    """Rename fields in detection items, the `fields` list, and a correlation's group-by/aliases/field."""
    if isinstance(rule, CorrelationRule):

        def names(values: tuple[str, ...]) -> tuple[str, ...]:
            out: list[str] = []
            for v in values:
                out += fn(v) if ctx.field_selected(v) else [v]
            return tuple(dict.fromkeys(out))

        def one(name: str, what: str) -> str:
            mapped = fn(name) if ctx.field_selected(name) else [name]
            if len(mapped) != 1:
                raise SigmaRuleError(f"{what} {name!r} cannot map to several fields ({', '.join(mapped)})")
            return mapped[0]

        aliases = {a: {r: one(f, "alias field") for r, f in m.items()} for a, m in rule.aliases.items()}
        group_by: list[str] = []
        for g in rule.group_by:
            group_by += [g] if g in rule.aliases else list(names((g,)))
        return dataclasses.replace(
            rule,
            group_by=tuple(dict.fromkeys(group_by)),
            aliases=aliases,
            fields=tuple(one(f, "condition field") for f in rule.fields),
        )

    def item_fn(item: DetectionItem) -> DetectionItem | DetectionGroup | None:
        assert item.field is not None
        mapped = fn(item.field)
        for name in mapped:
            if name != item.field:
                ctx.renamed(name)
        if item.op == "fieldref":  # the referenced fields use the same schema (pySigma maps them too)
            item = dataclasses.replace(item, values=tuple(_ref(v, ctx, fn) for v in item.values))
        if len(mapped) == 1:
            return dataclasses.replace(item, field=mapped[0])
        return DetectionGroup(
            tuple(ctx.mark(dataclasses.replace(item, field=m)) for m in mapped), any_of=True
        )

    rule = _map_items(rule, ctx, lambda i: item_fn(i) if i.field is not None else i)
    assert isinstance(rule, SigmaRule)
    new_fields: list[str] = []
    for f in rule.fields:
        if ctx.field_selected(f):
            mapped = fn(f)
            for name in mapped:
                if name != f:
                    ctx.renamed(name)
            new_fields += mapped
        else:
            new_fields.append(f)
    return dataclasses.replace(rule, fields=tuple(new_fields))


def _ref(value: Any, ctx: ItemContext, fn: Callable[[str], list[str]]) -> Any:
    if not isinstance(value, SigmaFieldRef) or not ctx.field_selected(value.field):
        return value
    return SigmaFieldRef(fn(value.field)[0])


def field_name_mapping(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    mapping = ctx.param("mapping")
    if not isinstance(mapping, dict):
        raise SigmaRuleError("field_name_mapping: 'mapping' must map field names to a name or a list")

    def fn(name: str) -> list[str]:
        target = mapping.get(name, name)
        return [str(t) for t in target] if isinstance(target, list) else [str(target)]

    return _map_field_names(rule, ctx, fn)


def field_name_prefix_mapping(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    mapping = ctx.param("mapping")

    def fn(name: str) -> list[str]:
        for prefix, replacement in mapping.items():
            if name.startswith(prefix):
                return [replacement + name[len(prefix) :]]
        return [name]

    return _map_field_names(rule, ctx, fn)


def field_name_prefix(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    prefix = str(ctx.param("prefix"))
    return _map_field_names(rule, ctx, lambda name: [prefix + name])


def field_name_suffix(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    suffix = str(ctx.param("suffix"))
    return _map_field_names(rule, ctx, lambda name: [name + suffix])


def drop_detection_item(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    return _map_items(rule, ctx, lambda item: None)


def add_condition(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """AND a new selection (named `_cond_<n>`, so `them` skips it) onto every condition of the rule."""
    if not isinstance(rule, SigmaRule):
        return rule
    conditions = ctx.param("conditions")
    if not isinstance(conditions, dict) or not conditions:
        raise SigmaRuleError("add_condition: 'conditions' must map fields to values")
    name = f"_cond_{len([n for n in rule.detections if n.startswith('_cond_')]) + 1}"
    group = DetectionGroup(tuple(ctx.mark(build_item(str(k), v)) for k, v in conditions.items()))
    ref = CondNot(CondRef(name)) if ctx.param("negated", False) else CondRef(name)
    return dataclasses.replace(
        rule,
        detections={**rule.detections, name: group},
        conditions=tuple(CondAnd((c, ref)) for c in rule.conditions),
    )


def change_logsource(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    if not isinstance(rule, SigmaRule):
        return rule
    ls = rule.logsource
    changes = {
        k: str(ctx.params[k]) for k in ("category", "product", "service") if ctx.params.get(k) is not None
    }
    return dataclasses.replace(rule, logsource=LogSource(**{**_logsource_dict(ls), **changes}))


def _logsource_dict(ls: LogSource) -> dict[str, Any]:
    return {
        "category": ls.category,
        "product": ls.product,
        "service": ls.service,
        "definition": ls.definition,
        "custom": ls.custom,
    }


def _map_strings(rule: AnyRule, ctx: ItemContext, fn: Callable[[SigmaString], list[SigmaString]]) -> AnyRule:
    def item_fn(item: DetectionItem) -> DetectionItem:
        values: list[Any] = []
        for v in item.values:
            values += fn(v) if isinstance(v, SigmaString) else [v]
        return dataclasses.replace(item, values=tuple(values))

    return _map_items(rule, ctx, item_fn)


def replace_string(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """A regex replacement in the literal text of string values (wildcards are never matched)."""
    regex = re.compile(ctx.param("regex"))
    replacement = str(ctx.param("replacement"))
    return _map_strings(rule, ctx, lambda s: [s.map_literals(lambda t: regex.sub(replacement, t))])


def map_string(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    mapping = ctx.param("mapping")

    def fn(s: SigmaString) -> list[SigmaString]:
        if not s.is_plain or s.plain() not in mapping:
            return [s]
        target = mapping[s.plain()]
        return [SigmaString.from_text(str(t)) for t in (target if isinstance(target, list) else [target])]

    return _map_strings(rule, ctx, fn)


def case_transformation(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    method = ctx.param("method", "lower")
    funcs: dict[str, Callable[[str], str]] = {
        "lower": str.lower,
        "upper": str.upper,
        "snake_case": lambda t: re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", t).lower(),
    }
    if method not in funcs:
        raise SigmaRuleError(f"case: 'method' must be one of {', '.join(funcs)}, got {method!r}")
    return _map_strings(rule, ctx, lambda s: [s.map_literals(funcs[method])])


def value_placeholders(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """Fill `%name%` placeholders from the pipeline's vars; a list var gives one value per element."""
    variables = ctx.state.vars
    include = ctx.params.get("include")
    exclude = ctx.params.get("exclude") or []

    def fn(s: SigmaString) -> list[SigmaString]:
        results = [()]
        for part in s.parts:
            if (
                isinstance(part, Placeholder)
                and part.name in variables
                and (include is None or part.name in include)
                and part.name not in exclude
            ):
                values = variables[part.name]
                options = [str(v) for v in (values if isinstance(values, list) else [values])]
                results = [(*r, o) for r in results for o in options]
            else:
                results = [(*r, part) for r in results]
        return [_join(parts, s.binary) for parts in results]

    return _map_strings(rule, ctx, fn)


def wildcard_placeholders(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    def fn(s: SigmaString) -> list[SigmaString]:
        return [SigmaString(tuple(STAR if isinstance(p, Placeholder) else p for p in s.parts), s.binary)]

    return _map_strings(rule, ctx, fn)


def _join(parts: tuple[Any, ...], binary: bool) -> SigmaString:
    out: list[Any] = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] += p
        elif p != "":
            out.append(p)
    return SigmaString(tuple(out), binary)


def set_state(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    ctx.state.state[ctx.param("key")] = ctx.param("val")
    return rule


def rule_failure(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    raise SigmaRuleError(str(ctx.param("message")))


def detection_item_failure(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    def fail(item: DetectionItem) -> DetectionItem:
        raise SigmaRuleError(f"{item.field or 'keyword'}: {ctx.param('message')}")

    return _map_items(rule, ctx, fail)


def set_custom_attribute(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    return dataclasses.replace(rule, custom={**rule.custom, str(ctx.param("attribute")): ctx.param("value")})


def set_value(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """Replace the values of the selected items (a list gives several values)."""
    raw = ctx.param("value")
    values = tuple(_typed(v) for v in (raw if isinstance(raw, list) else [raw]))
    return _map_items(rule, ctx, lambda item: dataclasses.replace(item, values=values))


def _typed(value: Any) -> Any:
    return SigmaString.from_text(value) if isinstance(value, str) else value


def convert_type(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    target = ctx.param("target_type")
    if target not in ("str", "num", "int", "float"):
        raise SigmaRuleError(f"convert_type: 'target_type' must be str or num, got {target!r}")

    def convert(value: Any) -> Any:
        if target == "str" and isinstance(value, int | float) and not isinstance(value, bool):
            return SigmaString.literal(str(value))
        if target != "str" and isinstance(value, SigmaString) and value.is_plain:
            text = value.plain()
            try:
                return int(text) if text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise SigmaRuleError(f"convert_type: {text!r} is not a number") from None
        return value

    return _map_items(rule, ctx, lambda i: dataclasses.replace(i, values=tuple(convert(v) for v in i.values)))


_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "lowercase": str.lower,
    "upper": str.upper,
    "uppercase": str.upper,
    "title": str.title,
    "snake_case": lambda t: re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", t).lower(),
}


def field_name_transform(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """pySigma takes a Python callable here; YAML names one (lower, upper, title, snake_case)."""
    name = ctx.param("transform_func")
    if name not in _TRANSFORMS:
        raise SigmaRuleError(
            f"field_name_transform: 'transform_func' must be one of {', '.join(_TRANSFORMS)}"
        )
    mapping = ctx.params.get("mapping") or {}
    return _map_field_names(rule, ctx, lambda f: [mapping.get(f, _TRANSFORMS[name](f))])


def hashes_fields(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    """`Hashes: SHA256=...` becomes `FileSHA256: ...` (the algorithms named in `valid_hash_algos`)."""
    algos = [str(a).upper() for a in ctx.param("valid_hash_algos")]
    prefix = str(ctx.param("field_prefix", "File"))
    keep_prefix = not ctx.param("drop_algo_prefix", False)

    def split(item: DetectionItem) -> DetectionItem | DetectionGroup | None:
        if item.field not in ("Hashes", "Hash"):
            return item
        alternatives: list[DetectionItem] = []
        for v in item.values:
            value = v if isinstance(v, SigmaString) else SigmaString.literal(str(v))
            at = next((i for i, p in enumerate(value.parts) if isinstance(p, str)), None)
            head = value.parts[at] if at is not None else ""
            algo, _, digest = str(head).partition("=")
            if at is None or algo.upper() not in algos or not digest:
                raise SigmaRuleError(
                    f"hashes_fields: {str(value)!r} is not <algorithm>=<hash>, known algorithm"
                )
            parts = (*value.parts[:at], digest, *value.parts[at + 1 :])
            name = f"{prefix}{algo.upper()}" if keep_prefix else prefix
            new = dataclasses.replace(item, field=name, values=(SigmaString(parts, value.binary),))
            alternatives.append(new)
        if len(alternatives) == 1:
            return alternatives[0]
        return DetectionGroup(tuple(alternatives), any_of=not item.match_all)

    return _map_items(rule, ctx, split)


def _rule_fields(
    rule: AnyRule, ctx: ItemContext, fn: Callable[[tuple[str, ...]], tuple[str, ...]]
) -> AnyRule:
    if not isinstance(rule, SigmaRule):
        return rule
    return dataclasses.replace(rule, fields=fn(rule.fields))


def add_field(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    extra = ctx.param("field")
    extra = [extra] if isinstance(extra, str) else list(extra)
    return _rule_fields(rule, ctx, lambda fields: tuple(dict.fromkeys((*fields, *extra))))


def remove_field(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    gone = ctx.param("field")
    gone = {gone} if isinstance(gone, str) else set(gone)
    return _rule_fields(rule, ctx, lambda fields: tuple(f for f in fields if f not in gone))


def set_field(rule: AnyRule, ctx: ItemContext) -> AnyRule:
    fields = ctx.param("fields")
    return _rule_fields(rule, ctx, lambda _: tuple([fields] if isinstance(fields, str) else fields))


#: Every supported transformation `type`, by name.
TRANSFORMATIONS: dict[str, Transformation] = {
    "field_name_mapping": field_name_mapping,
    "field_name_prefix_mapping": field_name_prefix_mapping,
    "field_name_prefix": field_name_prefix,
    "field_name_suffix": field_name_suffix,
    "drop_detection_item": drop_detection_item,
    "add_condition": add_condition,
    "change_logsource": change_logsource,
    "replace_string": replace_string,
    "map_string": map_string,
    "case": case_transformation,
    "value_placeholders": value_placeholders,
    "wildcard_placeholders": wildcard_placeholders,
    "set_state": set_state,
    "rule_failure": rule_failure,
    "detection_item_failure": detection_item_failure,
    "set_custom_attribute": set_custom_attribute,
    "set_value": set_value,
    "convert_type": convert_type,
    "field_name_transform": field_name_transform,
    "hashes_fields": hashes_fields,
    "add_field": add_field,
    "remove_field": remove_field,
    "set_field": set_field,
}
