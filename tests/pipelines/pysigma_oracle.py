"""pySigma as an oracle for rsigma's processing pipelines: one comparable form for a rule from either side.

`normalize_pysigma(rule)` takes a `sigma.rule.SigmaRule` (pySigma 2.x) and `normalize_rsigma(rule)` an
`rsigma.rules.model.SigmaRule`; both return a `Normalized`: the logsource triple and a sorted list of
`(detection name, field name, value strings)` tuples, one per detection item. pySigma is imported lazily,
so this module can be imported where pySigma is not installed.

The normalization:

- Detection names: the selections that `add_condition` creates are named `_cond_<random>` by pySigma and
  `_cond_<n>` by rsigma; both become `_cond_1`, `_cond_2`, ... in the order they were added.
- Groups are flattened: every detection item gives one tuple, whatever map or list it sits in. A group
  with a single member is replaced by that member first.
- One-to-many field mappings: pySigma (and rsigma) replace the item by an OR group of copies that differ
  only in the field name. An OR group whose members are all items with the same values becomes one tuple
  whose field is the sorted set of its field names joined by `|` (`"a.b|c.d"`). The same happens to a
  rule's own list of one-field maps with equal values (`[{A: x}, {B: x}]`), on both sides alike.
- Keywords (items without a field): the field name is `""`. rsigma matches a keyword string as a
  substring and so gives it a `*` at both ends where it has none (a number becomes such a string); the
  pySigma side does the same.
- Values are rendered as text and given as a sorted tuple without duplicates (an item's values are a
  set: OR'ed, or AND'ed with `all`):
  strings with Sigma escaping (`\\`, `\\*`, `\\?` for literal characters; `*`, `?` wildcards; `%name%`
  placeholders); whole numbers as integers (`1.0` is `1`); `true`/`false`; `null`;
  `re:<pattern>` or `re/<flags>:<pattern>`; `cidr:<network>`; `fieldref:<field>`; `exists:true|false`;
  `gt:<n>` (and `gte`, `lt`, `lte`); `<part>:<n>` for the time parts (`hour:5`, `gt:hour:5`).
  Values that a modifier expands (pySigma's `SigmaExpansion` for `windash` and `base64offset`) are
  merged into the item's values.
- Item flags that pipelines do not change (`all`, `cased`, `neq`) are not part of the form.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from rsigma.rules.model import DetectionGroup, DetectionItem
from rsigma.rules.model import SigmaRule as RSigmaRule
from rsigma.rules.values import SigmaCIDR, SigmaFieldRef, SigmaRegex, SigmaString

Item = tuple[str, str, tuple[str, ...]]

_ADDED = re.compile(r"^(?:_cond_|__pipeline_cond_)")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A rule as the oracle compares it: (category, product, service) and the sorted item tuples."""

    logsource: tuple[str | None, str | None, str | None]
    items: list[Item]

    def diff(self, other: Normalized) -> str:
        """What differs, one line per difference, `-` for this side and `+` for the other."""
        lines = []
        if self.logsource != other.logsource:
            lines.append(f"  logsource - {self.logsource}")
            lines.append(f"  logsource + {other.logsource}")
        mine, theirs = list(self.items), list(other.items)
        for it in list(mine):
            if it in theirs:
                mine.remove(it)
                theirs.remove(it)
        lines += [f"  - {it}" for it in mine]
        lines += [f"  + {it}" for it in theirs]
        return "\n".join(lines)


# A tree both sides are converted to: ("group", any_of, children) or ("item", field, values).
_Node = tuple[Any, ...]


def _simplify(node: _Node) -> _Node:
    if node[0] == "item":
        return node
    children = [_simplify(c) for c in node[2]]
    if len(children) == 1:
        return children[0]
    if node[1] and len(children) > 1 and all(c[0] == "item" for c in children):
        values = {c[2] for c in children}
        if len(values) == 1:
            fields = sorted({c[1] for c in children})
            return ("item", "|".join(fields), children[0][2])
    return ("group", node[1], tuple(children))


def _leaves(node: _Node) -> list[tuple[str, tuple[str, ...]]]:
    if node[0] == "item":
        return [(node[1], node[2])]
    out = []
    for child in node[2]:
        out += _leaves(child)
    return out


def _normalize(
    detections: list[tuple[str, _Node]], logsource: tuple[str | None, str | None, str | None]
) -> Normalized:
    items: list[Item] = []
    added = 0
    for name, tree in detections:
        if _ADDED.match(name):
            added += 1
            name = f"_cond_{added}"
        for field, values in _leaves(_simplify(tree)):
            items.append((name, field, values))
    return Normalized(logsource, sorted(items))


def _values(rendered: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(rendered)))


def _number(n: int | float) -> str:
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return str(n)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


# ----------------------------------------------------------------------------------------------- rsigma


def _render_rsigma(item: DetectionItem, v: Any) -> str:
    if isinstance(v, SigmaString):
        text = str(v)
    elif isinstance(v, SigmaRegex):
        flags = "".join(sorted(v.flags))
        text = f"re/{flags}:{v.pattern}" if flags else f"re:{v.pattern}"
    elif isinstance(v, SigmaCIDR):
        text = f"cidr:{v.network}"
    elif isinstance(v, SigmaFieldRef):
        text = f"fieldref:{v.field}"
    elif v is None:
        text = "null"
    elif isinstance(v, bool):
        text = f"exists:{str(v).lower()}" if item.op == "exists" else str(v).lower()
    elif isinstance(v, int | float):
        text = _number(v)
    else:
        text = repr(v)
    if item.time_part is not None:
        text = f"{item.time_part}:{text}"
    if item.op in ("gt", "gte", "lt", "lte"):
        text = f"{item.op}:{text}"
    return text


def _rsigma_node(x: DetectionItem | DetectionGroup) -> _Node:
    if isinstance(x, DetectionGroup):
        return ("group", x.any_of, tuple(_rsigma_node(i) for i in x.items))
    return ("item", x.field or "", _values([_render_rsigma(x, v) for v in x.values]))


def normalize_rsigma(rule: RSigmaRule) -> Normalized:
    ls = rule.logsource
    return _normalize(
        [(name, _rsigma_node(group)) for name, group in rule.detections.items()],
        (ls.category, ls.product, ls.service),
    )


# ---------------------------------------------------------------------------------------------- pySigma


def _pysigma_string(s: Any, keyword: bool = False) -> str:
    from sigma.types import Placeholder, SpecialChars

    parts = list(s.s)
    if keyword:  # rsigma matches a keyword as a substring: it gives the value `*` at both ends
        if not parts or parts[0] != SpecialChars.WILDCARD_MULTI:
            parts.insert(0, SpecialChars.WILDCARD_MULTI)
        if parts[-1] != SpecialChars.WILDCARD_MULTI:
            parts.append(SpecialChars.WILDCARD_MULTI)
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_escape(part))
        elif part == SpecialChars.WILDCARD_MULTI:
            out.append("*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        elif isinstance(part, Placeholder):
            out.append(f"%{part.name}%")
        else:
            out.append(repr(part))
    return "".join(out)


def _pysigma_regex(s: Any) -> str:
    """A regex's SigmaString is parsed without escaping, so its parts give the pattern back as written."""
    from sigma.types import SpecialChars

    return "".join(p if isinstance(p, str) else "*" if p == SpecialChars.WILDCARD_MULTI else "?" for p in s.s)


def _render_pysigma(v: Any, keyword: bool = False) -> list[str]:
    from sigma.types import (
        SigmaBool,
        SigmaCIDRExpression,
        SigmaCompareExpression,
        SigmaExists,
        SigmaExpansion,
        SigmaFieldReference,
        SigmaNull,
        SigmaNumber,
        SigmaQueryExpression,
        SigmaRegularExpression,
        SigmaString,
        SigmaTimestampPart,
    )

    if isinstance(v, SigmaExpansion):
        return [r for x in v.values for r in _render_pysigma(x, keyword)]
    if isinstance(v, SigmaString):
        return [_pysigma_string(v, keyword)]
    if isinstance(v, SigmaRegularExpression):
        flags = "".join(sorted(v.sigma_to_re_flag[f] for f in v.flags))
        pattern = _pysigma_regex(v.regexp)
        return [f"re/{flags}:{pattern}" if flags else f"re:{pattern}"]
    if isinstance(v, SigmaCIDRExpression):
        return [f"cidr:{ipaddress.ip_network(v.cidr, strict=False)}"]
    if isinstance(v, SigmaFieldReference):
        return [f"fieldref:{v.field}"]
    if isinstance(v, SigmaExists):
        return [f"exists:{str(v.exists).lower()}"]
    if isinstance(v, SigmaCompareExpression):
        return [f"{v.op.name.lower()}:{r}" for r in _render_pysigma(v.number)]
    if isinstance(v, SigmaTimestampPart):
        return [f"{v.timestamp_part.name.lower()}:{_number(v.number)}"]
    if isinstance(v, SigmaNumber):
        return [f"*{_number(v.number)}*" if keyword else _number(v.number)]
    if isinstance(v, SigmaBool):
        return [str(v.boolean).lower()]
    if isinstance(v, SigmaNull):
        return ["null"]
    if isinstance(v, SigmaQueryExpression):
        return [f"query:{v.expr}"]
    return [repr(v)]


def _pysigma_node(x: Any) -> _Node:
    from sigma.conditions import ConditionOR
    from sigma.rule import SigmaDetection

    if isinstance(x, SigmaDetection):
        return (
            "group",
            x.item_linking is ConditionOR,
            tuple(_pysigma_node(i) for i in x.detection_items),
        )
    rendered = [r for v in x.value for r in _render_pysigma(v, keyword=x.field is None)]
    return ("item", x.field or "", _values(rendered))


def normalize_pysigma(rule: Any) -> Normalized:
    """The normalized form of a pySigma `SigmaRule` (`pipeline.apply(rule)` changes the rule in place)."""
    ls = rule.logsource
    return _normalize(
        [(name, _pysigma_node(det)) for name, det in rule.detection.detections.items()],
        (ls.category, ls.product, ls.service),
    )
