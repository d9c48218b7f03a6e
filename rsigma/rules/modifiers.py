"""Value modifiers: one registry entry per modifier of the Sigma v2.1 appendix.

Modifiers are applied in the order they are written (pySigma's model): `contains`, `startswith`
and `endswith` add wildcards; encodings rewrite the values; `re`, `cidr`, the comparisons, the time
parts, `exists` and `fieldref` choose the operator. Illegal chains fail at load time with the reason.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from rsigma.errors import SigmaModifierError, SigmaValueError
from rsigma.rules.model import DetectionItem
from rsigma.rules.values import SigmaCIDR, SigmaFieldRef, SigmaRegex, SigmaString

#: Characters `windash` substitutes for one another (hyphen, slash, en dash, em dash, horizontal bar).
WINDASH_CHARS: Final = ("-", "/", "\u2013", "\u2014", "\u2015")
_WINDASH_AT = re.compile(r"\B[-/]\b")
MAX_WINDASH_VARIANTS: Final = 5**6

STRING_OPERATORS: Final = frozenset({"contains", "startswith", "endswith"})
TIME_PARTS: Final = frozenset({"minute", "hour", "day", "week", "month", "year"})
COMPARISONS: Final = frozenset({"gt", "gte", "lt", "lte"})
REGEX_FLAGS: Final = {"i": "i", "ignorecase": "i", "m": "m", "multiline": "m", "s": "s", "dotall": "s"}
ENCODINGS: Final = frozenset(
    {"base64", "base64offset", "wide", "utf16le", "utf16be", "utf16", "windash", "expand"}
)


@dataclass(slots=True)
class _Builder:
    """Mutable state while one item's modifier chain is applied."""

    field: str | None
    values: list[Any]
    modifiers: list[str] = field(default_factory=list)
    op: str = "eq"
    operator_modifier: str | None = None
    match_all: bool = False
    negated: bool = False
    cased: bool = False
    time_part: str | None = None
    regex_flags: set[str] = field(default_factory=set)
    encoded: bool = False

    def fail(self, message: str) -> SigmaModifierError:
        name = "|".join([self.field or "", *self.modifiers])
        return SigmaModifierError(f"{name!r}: {message}")

    def set_operator(self, name: str, op: str) -> None:
        if self.operator_modifier is not None:
            raise self.fail(
                f"'{name}' cannot be combined with '{self.operator_modifier}' (one operator per item)"
            )
        self.operator_modifier = name
        self.op = op

    def strings(self, name: str) -> list[SigmaString]:
        """The values as Sigma strings, for modifiers that only apply to strings."""
        if self.op != "eq":
            raise self.fail(f"'{name}' cannot follow '{self.operator_modifier}'")
        out = []
        for v in self.values:
            if isinstance(v, SigmaString):
                out.append(v)
            elif isinstance(v, str):
                out.append(SigmaString.from_text(v))
            elif isinstance(v, bool) or v is None:
                raise self.fail(f"'{name}' needs string values, got {_yaml_repr(v)}")
            elif isinstance(v, int | float):
                out.append(SigmaString.literal(str(v)))
            else:
                raise self.fail(f"'{name}' needs string values, got {_yaml_repr(v)}")
        return out


def _yaml_repr(v: Any) -> str:
    return "null" if v is None else repr(v)


#: What the string operators make of a value; `build_item` also applies them directly, without a
#: `_Builder`, to the items that are a field with string values and at most one of them.
_STRING_SHAPES: Final[dict[str, Callable[[SigmaString], SigmaString]]] = {
    "contains": SigmaString.with_stars,
    "endswith": SigmaString.with_leading_star,
    "startswith": SigmaString.with_trailing_star,
}


def _string_operator(name: str) -> Callable[[_Builder], None]:
    shape = _STRING_SHAPES[name]

    def apply(b: _Builder) -> None:
        b.set_operator(name, "eq")
        b.values = [shape(s) for s in b.strings(name)]

    return apply


_contains = _string_operator("contains")
_startswith = _string_operator("startswith")
_endswith = _string_operator("endswith")


def _all(b: _Builder) -> None:
    b.match_all = True


def _cased(b: _Builder) -> None:
    b.cased = True


def _neq(b: _Builder) -> None:
    b.negated = True


def _no_wildcards(b: _Builder, name: str, s: SigmaString) -> None:
    if not s.is_plain:
        raise b.fail(f"'{name}' cannot encode a value with wildcards or placeholders: {str(s)!r}")


def _base64(b: _Builder) -> None:
    out = []
    for s in b.strings("base64"):
        _no_wildcards(b, "base64", s)
        out.append(SigmaString.literal(base64.b64encode(s.to_bytes()).decode("ascii")))
    b.values = out
    b.encoded = True


def _base64offset(b: _Builder) -> None:
    """The three Base64 forms of a value at byte offsets 0, 1 and 2, cut to their stable middle."""
    starts, ends = (0, 2, 3), (None, -3, -2)
    out: list[SigmaString] = []
    for s in b.strings("base64offset"):
        _no_wildcards(b, "base64offset", s)
        raw = s.to_bytes()
        for i in range(3):
            enc = base64.b64encode(b" " * i + raw).decode("ascii")
            out.append(SigmaString.literal(enc[starts[i] : ends[(len(raw) + i) % 3]]))
    b.values = out
    b.encoded = True


def _utf16(codec: str, bom: bytes = b"") -> Callable[[_Builder], None]:
    def encode(b: _Builder) -> None:
        strings = b.strings(codec)
        if any(s.binary for s in strings):
            raise b.fail(f"'{codec}' cannot follow another UTF-16 encoding")
        out = []
        for s in strings:
            enc = s.map_literals(lambda t: t.encode(codec).decode("latin-1"))
            if bom:
                enc = SigmaString((bom.decode("latin-1"), *enc.parts))
            out.append(SigmaString(enc.parts, binary=True))
        b.values = out

    return encode


def _windash(b: _Builder) -> None:
    """pySigma's rule: a `-` or `/` that starts a word may be written with any of the dash characters."""
    out: list[SigmaString] = []
    for s in b.strings("windash"):
        slots: list[list[Any]] = []
        for part in s.parts:
            if not isinstance(part, str):
                slots.append([part])
                continue
            pos = 0
            for m in _WINDASH_AT.finditer(part):
                slots.append([part[pos : m.start()]])
                slots.append(list(WINDASH_CHARS))
                pos = m.end()
            slots.append([part[pos:]])
        variants = 1
        for slot in slots:
            variants *= len(slot)
        if variants > MAX_WINDASH_VARIANTS:
            raise b.fail(f"'windash' would expand {str(s)!r} into {variants} variants")
        for combo in itertools.product(*slots):
            parts: list[Any] = []
            for p in combo:
                if isinstance(p, str):
                    if not p:
                        continue
                    if parts and isinstance(parts[-1], str):
                        parts[-1] += p
                        continue
                parts.append(p)
            out.append(SigmaString(tuple(parts), s.binary))
    b.values = list(dict.fromkeys(out))


def _expand(b: _Builder) -> None:
    b.values = [s.with_placeholders() for s in b.strings("expand")]


def _re(b: _Builder) -> None:
    b.set_operator("re", "re")
    out = []
    for v in b.values:
        if not isinstance(v, str):
            raise b.fail(f"'re' needs a string pattern, got {_yaml_repr(v)}")
        out.append(SigmaRegex(v))
    b.values = out


def _regex_flag(flag: str) -> Callable[[_Builder], None]:
    def apply(b: _Builder) -> None:
        if b.op != "re":
            raise b.fail(f"the regex flag '{b.modifiers[-1]}' needs a preceding 're'")
        b.regex_flags.add(flag)

    return apply


def _cidr(b: _Builder) -> None:
    b.set_operator("cidr", "cidr")
    out = []
    for v in b.values:
        try:
            out.append(SigmaCIDR(ipaddress.ip_network(str(v), strict=False)))
        except ValueError as e:
            raise SigmaValueError(f"{b.field!r}|cidr: {v!r} is not an IPv4 or IPv6 network ({e})") from e
    b.values = out


def _number(b: _Builder, name: str, v: Any) -> int | float:
    if isinstance(v, bool) or v is None:
        raise SigmaValueError(f"{b.field!r}|{name}: expected a number, got {_yaml_repr(v)}")
    if isinstance(v, int | float):
        return v
    try:
        text = str(v).strip()
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError as e:
        raise SigmaValueError(f"{b.field!r}|{name}: expected a number, got {v!r}") from e


def _comparison(name: str) -> Callable[[_Builder], None]:
    def apply(b: _Builder) -> None:
        if b.time_part is not None and b.op == "eq":
            b.op = name  # a time part yields a number, which may then be compared
            b.operator_modifier = name
        else:
            b.set_operator(name, name)
        b.values = [_number(b, name, v) for v in b.values]

    return apply


def _time_part(name: str) -> Callable[[_Builder], None]:
    def apply(b: _Builder) -> None:
        b.set_operator(name, "eq")
        b.time_part = name
        b.values = [_number(b, name, v) for v in b.values]
        if any(not float(v).is_integer() for v in b.values):
            raise SigmaValueError(f"{b.field!r}|{name}: expected whole numbers, got {b.values!r}")
        b.values = [int(v) for v in b.values]

    return apply


def _exists(b: _Builder) -> None:
    b.set_operator("exists", "exists")
    out = []
    for v in b.values:
        if isinstance(v, bool):
            out.append(v)
        elif isinstance(v, str) and v.lower() in ("true", "yes", "false", "no"):
            out.append(v.lower() in ("true", "yes"))
        else:
            raise SigmaValueError(f"{b.field!r}|exists: expected true or false, got {_yaml_repr(v)}")
    if len(out) != 1:
        raise SigmaValueError(f"{b.field!r}|exists: expected a single true or false")
    b.values = out


def _fieldref(b: _Builder) -> None:
    b.set_operator("fieldref", "fieldref")
    out = []
    for v in b.values:
        if not isinstance(v, str) or not v or "*" in v:
            raise SigmaValueError(f"{b.field!r}|fieldref: expected a field name without wildcards, got {v!r}")
        out.append(SigmaFieldRef(v))
    b.values = out


#: Every modifier of the specification (plus the long names of the regex flags), by name.
MODIFIERS: Final[dict[str, Callable[[_Builder], None]]] = {
    "contains": _contains,
    "startswith": _startswith,
    "endswith": _endswith,
    "all": _all,
    "cased": _cased,
    "neq": _neq,
    "base64": _base64,
    "base64offset": _base64offset,
    "wide": _utf16("utf-16-le"),
    "utf16le": _utf16("utf-16-le"),
    "utf16be": _utf16("utf-16-be"),
    "utf16": _utf16("utf-16-le", bom=b"\xff\xfe"),
    "windash": _windash,
    "expand": _expand,
    "re": _re,
    "cidr": _cidr,
    "exists": _exists,
    "fieldref": _fieldref,
    **{name: _comparison(name) for name in COMPARISONS},
    **{name: _time_part(name) for name in TIME_PARTS},
    **{name: _regex_flag(flag) for name, flag in REGEX_FLAGS.items()},
}


def build_item(key: str, raw: Any) -> DetectionItem:
    """Turn one `field|mod|mod: value(s)` entry of a detection map into an item."""
    name, bar, mod = key.partition("|")
    # A field with string values, alone or with one string operator: nine in ten of SigmaHQ's items,
    # with nothing to check.
    if name and "|" not in mod and (not bar or mod in _STRING_SHAPES):
        values = raw if type(raw) is list else [raw]
        if all(type(v) is str for v in values):
            strings = map(SigmaString.from_text, values)
            return DetectionItem(
                field=name,
                values=tuple(map(_STRING_SHAPES[mod], strings) if bar else strings),
                modifiers=(mod,) if bar else (),
            )
    name, *mods = key.split("|")
    field_name = name or None
    values = list(raw) if isinstance(raw, list) else [raw]
    for v in values:
        if isinstance(v, dict | list):
            raise SigmaValueError(f"{key!r}: values must be scalars, got a {type(v).__name__}")
    b = _Builder(field_name, values)
    for mod in mods:
        b.modifiers.append(mod)
        fn = MODIFIERS.get(mod)
        if fn is None:
            hint = " (negate in the condition instead)" if mod == "not" else ""
            raise b.fail(f"unknown modifier {mod!r}{hint}")
        fn(b)
    _check_combination(b)
    if field_name is None and b.op == "eq" and b.operator_modifier is None:
        # A keyword matches anywhere in the event (a substring search over its values).
        _contains(b)
        b.operator_modifier = None
    if b.op == "eq":
        b.values = [SigmaString.from_text(v) if isinstance(v, str) else v for v in b.values]
    if b.op == "re":
        b.values = [SigmaRegex(v.pattern, frozenset(b.regex_flags)) for v in b.values]
    return DetectionItem(
        field=field_name,
        values=tuple(b.values),
        op=b.op,
        modifiers=tuple(mods),
        match_all=b.match_all,
        negated=b.negated,
        cased=b.cased,
        time_part=b.time_part,
    )


def _check_combination(b: _Builder) -> None:
    if b.match_all and len(b.values) < 2:
        raise b.fail("'all' needs a list of at least two values")
    if b.cased and b.op not in ("eq", "fieldref"):
        raise b.fail(f"'cased' does not apply to '{b.operator_modifier}' (use the 'i' flag for regexes)")
    if b.negated and b.field is None:
        raise b.fail("'neq' needs a field name (negate a keyword selection in the condition instead)")
    if b.negated and b.op == "exists":
        raise b.fail("'neq' cannot be combined with 'exists' (use exists: false)")
    if b.op == "exists" and len(b.modifiers) > 1:
        raise b.fail("'exists' cannot be combined with other modifiers")
    if b.field is None and b.op not in ("eq", "re"):
        raise b.fail(f"'{b.operator_modifier}' needs a field name")
    encodings = [m for m in b.modifiers if m in ENCODINGS]
    if encodings and b.op != "eq":
        raise b.fail(f"'{encodings[0]}' cannot be combined with '{b.operator_modifier}'")
    if sum(m in ("base64", "base64offset") for m in b.modifiers) > 1:
        raise b.fail("only one of 'base64' and 'base64offset' may be used")
