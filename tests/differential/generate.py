"""Events built from a rule's detection: one the rule should match, and near-misses around it.

The positive event satisfies the rule's first condition by choosing, for each selection the condition
needs, one value per item that meets the item's modifier chain (wildcards filled in, a regex
instantiated, an address inside the network, a number past the bound). Selections under `not` are
left out. Near-misses then change one field of it the way real logs and evasions do: case, Unicode
case-fold look-alikes, a dropped character, whitespace and newlines, the value under another field,
in a list or nested, a number as a string, null, empty. Each event carries a `mutation` tag that the
classifier reads; whether the rule should match a near-miss is for the engines to say.
"""

from __future__ import annotations

import random
import re
import re._constants as _c
import re._parser as _parser
from dataclasses import dataclass
from typing import Any

import re2

from rsigma.rules.condition import CondAnd, CondNode, CondNot, CondOr, CondRef, CondSelector, selector_names
from rsigma.rules.model import DetectionGroup, DetectionItem, SigmaRule
from rsigma.rules.values import QMARK, STAR, Placeholder, SigmaCIDR, SigmaFieldRef, SigmaRegex, SigmaString

#: Field that carries keyword values (keywords search every value of the event).
KEYWORD_FIELD = "Message"
#: Look-alikes RE2's case folding maps onto an ASCII letter.
FOLD_LOOKALIKES = {"s": "\u017f", "k": "\u212a", "K": "\u212a", "S": "\u017f"}
FILLERS = ("", "x", "abc", " q ", "0")


@dataclass(slots=True)
class Case:
    """One generated event, the rule it was built from and how."""

    rule: str  # id, or title when the rule has none (rsigma-bench's key)
    mutation: str
    event: dict[str, Any]


def rule_key(rule: SigmaRule) -> str:
    return rule.id or rule.title


class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # -- positive ------------------------------------------------------------------------------
    def positive(self, rule: SigmaRule) -> dict[str, Any] | None:
        event: dict[str, Any] = {}
        self._pieces: dict[str, list[tuple[int, str]]] = {}
        self._excluded: list[CondNode] = []
        if not rule.conditions or not self._satisfy(rule.conditions[0], rule, event):
            return None
        for name, pieces in self._pieces.items():
            # Prefixes first, suffixes last: a startswith and an endswith on one field both hold.
            event[name] = " ".join(text for _, text in sorted(pieces, key=lambda p: p[0]))
        for node in self._excluded:
            for name in _names(node, rule):
                self._exclude(rule.detections[name], event)
        return event

    def _exclude(self, group: DetectionGroup, event: dict[str, Any]) -> None:
        """Make a selection under `not` false where a missing field would make it true (`F: null`)."""
        for item in group.items:
            if isinstance(item, DetectionGroup):
                self._exclude(item, event)
            elif (
                item.field
                and item.field not in event
                and (None in item.values or (item.op == "exists" and item.values == (False,)))
            ):
                event[item.field] = "rsigma-differential"

    def _satisfy(self, node: CondNode, rule: SigmaRule, event: dict[str, Any]) -> bool:
        match node:
            case CondRef(name):
                return self._group(rule.detections[name], event)
            case CondNot(inner):
                self._excluded.append(inner)  # its fields are left out, or set where null would hold
                return True
            case CondAnd(items):
                return all(self._satisfy(i, rule, event) for i in items)
            case CondOr(items):
                return self._satisfy(self.rng.choice(items), rule, event)
            case CondSelector(quantifier, _):
                names = selector_names(node, rule.detections)
                if not names:
                    return False
                if quantifier == "all":
                    chosen = names
                else:
                    n = 1 if quantifier == "any" else int(quantifier)
                    chosen = self.rng.sample(names, min(n, len(names)))
                return all(self._group(rule.detections[n], event) for n in chosen)
        return False

    def _group(self, group: DetectionGroup, event: dict[str, Any]) -> bool:
        items = [self.rng.choice(group.items)] if group.any_of and group.items else group.items
        ok = True
        for item in items:
            if isinstance(item, DetectionGroup):
                ok = self._group(item, event) and ok
            else:
                ok = self._item(item, event) and ok
        return ok

    def _item(self, item: DetectionItem, event: dict[str, Any]) -> bool:
        name = item.field or KEYWORD_FIELD
        if item.negated:
            event.setdefault(name, "rsigma-differential")
            return True
        if item.op == "exists":
            if item.values[0]:
                event.setdefault(name, "present")
            return True
        values = (
            list(item.values) if item.match_all else [self.rng.choice(item.values)] if item.values else []
        )
        pieces = [self._value(item, v, event) for v in values]
        if any(p is _NOTHING for p in pieces):
            return False
        if len(pieces) == 1 and not isinstance(pieces[0], str):
            if pieces[0] is None:
                event.pop(name, None) if self.rng.random() < 0.5 else event.__setitem__(name, None)
            else:
                event[name] = pieces[0]
            return True
        slots = self._pieces.setdefault(name, [])
        for value, piece in zip(values, pieces, strict=True):
            slots.append((_rank(value), str(piece)))
        return True

    def _value(self, item: DetectionItem, value: Any, event: dict[str, Any]) -> Any:
        if isinstance(value, SigmaString):
            if value.has_placeholders:
                return _NOTHING
            return "".join(self._part(p) for p in value.parts)
        if isinstance(value, SigmaRegex):
            return instantiate_regex(value, self.rng)
        if isinstance(value, SigmaCIDR):
            net = value.network
            return str(net.network_address + min(1, net.num_addresses - 1))
        if isinstance(value, SigmaFieldRef):
            event.setdefault(value.field, "same-value")
            return str(event[value.field])
        if item.time_part is not None:
            return _date_with(item.time_part, int(value))
        if item.op in ("gt", "gte", "lt", "lte"):
            step = {"gt": 1, "gte": 0, "lt": -1, "lte": 0}[item.op]
            return value + step
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            return value
        return _NOTHING

    def _part(self, part: Any) -> str:
        if part is STAR:
            return self.rng.choice(FILLERS)
        if part is QMARK:
            return "q"
        if isinstance(part, Placeholder):
            return ""
        return part

    # -- near-misses ---------------------------------------------------------------------------
    def near_misses(self, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        strings = [k for k, v in event.items() if isinstance(v, str) and v]
        numbers = [k for k, v in event.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        rng = self.rng
        if strings:
            k = rng.choice(strings)
            v = event[k]
            out.append(("upper", {**event, k: v.upper()}))
            out.append(("swapcase", {**event, k: v.swapcase()}))
            folded = "".join(FOLD_LOOKALIKES.get(c, c) if rng.random() < 0.5 else c for c in v)
            if folded == v:
                folded = "".join(FOLD_LOOKALIKES.get(c, c) for c in v)
            if folded != v:
                out.append(("fold", {**event, k: folded}))
            i = rng.randrange(len(v))
            out.append(("drop", {**event, k: v[:i] + v[i + 1 :]}))
            out.append(("space", {**event, k: rng.choice([" " + v, v + " ", v + "\n"])}))
            j = rng.randrange(len(v) + 1)
            out.append(("newline", {**event, k: v[:j] + "\n" + v[j:]}))
            out.append(("moved", {**{x: y for x, y in event.items() if x != k}, "Other" + k: v}))
            out.append(("list", {**event, k: ["unrelated", v]}))
            if "." in k:
                *heads, last = k.split(".")
                inner: dict[str, Any] = {last: v}
                for head in reversed(heads[1:]):
                    inner = {head: inner}
                out.append(("nested", {**{x: y for x, y in event.items() if x != k}, heads[0]: inner}))
                head, _, tail = k.partition(".")
                if "." in tail:
                    out.append(
                        ("nested-partly", {**{x: y for x, y in event.items() if x != k}, head: {tail: v}})
                    )
            else:
                out.append(("nested", {**event, k: {"inner": v}}))
            if v.isascii() and v.strip().lstrip("+-").isdigit():
                out.append(("string-to-number", {**event, k: int(v)}))
            out.append(("null", {**event, k: None}))
            out.append(("empty", {**event, k: ""}))
        if numbers:
            k = rng.choice(numbers)
            v = event[k]
            text = str(int(v)) if float(v).is_integer() else repr(v)
            for variant in (text, " " + text, text + " ", "0" + text, text + ".0", "+" + text):
                out.append(("number-as-string", {**event, k: variant}))
            out.append(("number-fullwidth", {**event, k: text.translate(_FULLWIDTH)}))
        return out


_NOTHING = object()


def _rank(value: Any) -> int:
    """Where a value's text goes when items share a field: 0 a prefix, 2 a suffix, 1 anywhere else."""
    if not isinstance(value, SigmaString):
        return 1
    if value.ends_with_star() and not value.starts_with_star():
        return 0
    if value.starts_with_star() and not value.ends_with_star():
        return 2
    return 1


def _names(node: CondNode, rule: SigmaRule) -> list[str]:
    match node:
        case CondRef(name):
            return [name]
        case CondSelector():
            return selector_names(node, rule.detections)
        case CondNot(inner):
            return _names(inner, rule)
        case CondAnd(items) | CondOr(items):
            return [n for i in items for n in _names(i, rule)]
    return []


_FULLWIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


def _date_with(part: str, value: int) -> str:
    y, mo, d, h, mi = 2024, 3, 14, 12, 30
    if part == "year":
        y = value
    elif part == "month":
        mo = value
    elif part == "day":
        d = value
    elif part == "hour":
        h = value
    elif part == "minute":
        mi = value
    elif part == "week":
        from datetime import date

        iso = date.fromisocalendar(2024, max(1, min(value, 52)), 3)
        mo, d = iso.month, iso.day
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:00Z"


def instantiate_regex(value: SigmaRegex, rng: random.Random) -> Any:
    """A text the regex matches (checked with RE2), or _NOTHING when the simple walk cannot make one."""
    flags = "".join(sorted(value.flags))
    pattern = (f"(?{flags})" if flags else "") + value.pattern
    try:
        parsed = _parser.parse(pattern)
        text = _walk(list(parsed), rng)
        search = re2.compile(pattern).search
    except (re.error, re2.error, _Unsupported, RecursionError, OverflowError):
        return _NOTHING
    return text if search(text) else _NOTHING


class _Unsupported(Exception):
    pass


def _walk(seq: list[Any], rng: random.Random) -> str:
    out: list[str] = []
    for op, arg in seq:
        if op is _c.LITERAL:
            out.append(chr(arg))
        elif op is _c.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is _c.ANY:
            out.append("x")
        elif op is _c.IN:
            out.append(_class_char(arg))
        elif op is _c.BRANCH:
            out.append(_walk(list(rng.choice(arg[1])), rng))
        elif op is _c.SUBPATTERN:
            out.append(_walk(list(arg[3]), rng))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            low, high, body = arg
            count = low if high == low else low + rng.choice([0, 1])
            out.extend(_walk(list(body), rng) for _ in range(count))
        elif op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue
        else:
            raise _Unsupported(str(op))
    return "".join(out)


_CATEGORY_CHARS = {
    _c.CATEGORY_DIGIT: "7",
    _c.CATEGORY_NOT_DIGIT: "x",
    _c.CATEGORY_SPACE: " ",
    _c.CATEGORY_NOT_SPACE: "x",
    _c.CATEGORY_WORD: "w",
    _c.CATEGORY_NOT_WORD: "-",
}


def _class_char(items: list[Any]) -> str:
    negate = any(op is _c.NEGATE for op, _ in items)
    if negate:
        for c in "xQ7_-. ":
            if not _in_class(c, items):
                return c
        raise _Unsupported("negated class")
    for op, arg in items:
        if op is _c.LITERAL:
            return chr(arg)
        if op is _c.RANGE:
            return chr(arg[0])
        if op is _c.CATEGORY:
            return _CATEGORY_CHARS.get(arg, "x")
    raise _Unsupported("class")


def _in_class(c: str, items: list[Any]) -> bool:
    for op, arg in items:
        if op is _c.LITERAL and chr(arg) == c:
            return True
        if op is _c.RANGE and arg[0] <= ord(c) <= arg[1]:
            return True
        if op is _c.CATEGORY:
            probe = {
                _c.CATEGORY_DIGIT: c.isdigit(),
                _c.CATEGORY_NOT_DIGIT: not c.isdigit(),
                _c.CATEGORY_SPACE: c.isspace(),
                _c.CATEGORY_NOT_SPACE: not c.isspace(),
                _c.CATEGORY_WORD: c.isalnum() or c == "_",
                _c.CATEGORY_NOT_WORD: not (c.isalnum() or c == "_"),
            }
            if probe.get(arg, False):
                return True
    return False


def cases_for(rule: SigmaRule, rng: random.Random) -> list[Case]:
    """The positive event for a rule and its near-misses (none when no positive could be built)."""
    gen = Generator(rng)
    event = gen.positive(rule)
    if event is None:
        return []
    key = rule_key(rule)
    return [Case(key, "positive", event)] + [Case(key, tag, e) for tag, e in gen.near_misses(event)]
