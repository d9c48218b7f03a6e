"""Name the reason for each disagreement: a row of docs/engine.md's differences table, or unexplained.

A disagreement is (event, rule, which engine, ours, theirs). Its class comes from what the rule uses
(keyword `|all`, `windash`, `base64offset`, a wildcard inside `startswith`, `cidr`, a boolean, a
number) and what the event has (a newline, a fold look-alike, a number written as text). Anything
that fits no row is "unexplained": a bug of ours to fix, or a new row to argue for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rsigma.engine.folding import EXTRA_FOLDS
from rsigma.rules.condition import CondAnd, CondNode, CondNot, CondOr, CondRef, CondSelector, selector_names
from rsigma.rules.model import DetectionItem, SigmaRule
from rsigma.rules.values import SigmaString, Wildcard

UNEXPLAINED = "unexplained"
INDEX = "ours: the candidate index dropped a match (bug)"

#: Class -> the docs/engine.md row it stands for.
CLASSES = {
    "rsigma: keyword |all": "keyword `'|all'` lists",
    "rsigma: windash /": "`windash` on a value written with `/`",
    "rsigma: base64offset last character": "`base64offset` when the value's end falls mid-triplet",
    "rsigma: wildcards inside startswith/endswith": "wildcards inside `startswith`/`endswith` values",
    "rsigma: * across newline": "`*` and a newline",
    "rsigma: numeric keywords": "a number in a keyword list",
    "rsigma: keywords skip numbers": "keywords against numeric event values",
    "rsigma: partly flattened keys": "a dotted field against partly flattened keys",
    "rsigma: Unicode classes in regexes": "`\\w`, `\\d`, `\\s` in a regex against non-ASCII text",
    "rsigma: fieldref against a list": "`fieldref` against a list value",
    "rsigma: boolean spellings": "`F: true` against `yes`, `1`",
    "unicode case folding": "Unicode case folding",
    "cidr whitespace": "`cidr` against an address with whitespace",
    "pysigma: ASCII-only LIKE": "Unicode case folding",
    "pysigma: plain values compared case-sensitively": "case of plain values",
    "pysigma: number compared as text": "numbers in strings",
    "pysigma: boolean as 1": "`F: true` against `yes`, `1`",
    "pysigma: cidr as LIKE prefixes": "`cidr` against an address with whitespace",
}


@dataclass(frozen=True, slots=True)
class RuleFeatures:
    keyword_all: bool
    keywords: bool
    numeric_keyword: bool
    windash: bool
    base64offset: bool
    inner_wildcard_anchor: bool
    wildcards: bool
    cidr: bool
    boolean: bool
    number: bool
    regex: bool
    fieldref: bool
    # A selection under `not`: where its item differs, the rule's answer goes the other way.
    negated: bool


def _negated_names(node: CondNode, names: list[str], under_not: bool, out: set[str]) -> None:
    match node:
        case CondRef(name) if under_not:
            out.add(name)
        case CondSelector() if under_not:
            out.update(selector_names(node, names))
        case CondNot(item):
            _negated_names(item, names, not under_not, out)
        case CondAnd(items) | CondOr(items):
            for item in items:
                _negated_names(item, names, under_not, out)


def features(rule: SigmaRule) -> RuleFeatures:
    items = [i for g in rule.detections.values() for i in g.leaves()]
    negated: set[str] = set()
    for condition in rule.conditions:
        _negated_names(condition, list(rule.detections), False, negated)

    def inner_wildcard(i: DetectionItem) -> bool:
        """A wildcard the rule wrote inside a startswith/endswith value (not the one the modifier adds)."""
        for v in i.values:
            if not isinstance(v, SigmaString):
                continue
            if "startswith" in i.modifiers and any(isinstance(p, Wildcard) for p in v.parts[:-1]):
                return True
            if "endswith" in i.modifiers and any(isinstance(p, Wildcard) for p in v.parts[1:]):
                return True
        return False

    return RuleFeatures(
        keyword_all=any(i.field is None and i.match_all for i in items),
        keywords=any(i.field is None for i in items),
        numeric_keyword=_numeric_keyword(_source_document(rule).get("detection")),
        windash=any("windash" in i.modifiers for i in items),
        base64offset=any("base64offset" in i.modifiers for i in items),
        inner_wildcard_anchor=any(inner_wildcard(i) for i in items),
        wildcards=any(isinstance(v, SigmaString) and v.has_wildcards for i in items for v in i.values),
        cidr=any(i.op == "cidr" for i in items),
        boolean=any(isinstance(v, bool) for i in items for v in i.values),
        number=any(isinstance(v, int | float) and not isinstance(v, bool) for i in items for v in i.values),
        regex=any(i.op == "re" for i in items),
        fieldref=any(i.op == "fieldref" for i in items),
        negated=bool(negated),
    )


def _source_document(rule: SigmaRule) -> dict[str, Any]:
    """The YAML document the rule was parsed from (the engine does not keep it: it cost 11 MB on
    SigmaHQ in every process); {} for a rule not read from a file."""
    path, line = rule.location.path, rule.location.line
    if path is None or line is None:
        return {}
    found: dict[str, Any] = {}
    for start, doc in _documents(path):
        if start <= line and isinstance(doc, dict):
            found = doc
    return found


@cache
def _documents(path: Path) -> list[tuple[int, Any]]:
    """Each document of a YAML file with the line it starts on (1-based)."""
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    out: list[tuple[int, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            out.append((node.start_mark.line + 1, loader.construct_document(node)))
    finally:
        loader.dispose()
    return out


def _numeric_keyword(detection: Any) -> bool:
    """A keyword list (a list of scalars under a search identifier) with an unquoted number in it."""
    if not isinstance(detection, dict):
        return False
    for value in detection.values():
        scalars = value if isinstance(value, list) else [value]
        if any(isinstance(v, int | float) and not isinstance(v, bool) for v in scalars):
            return True
        if isinstance(value, dict) and any(k.startswith("|") for k in value):
            inner = [x for v in value.values() for x in (v if isinstance(v, list) else [v])]
            if any(isinstance(v, int | float) and not isinstance(v, bool) for v in inner):
                return True
    return False


def _partly_flat(value: Any) -> bool:
    return isinstance(value, dict) and any("." in k or _partly_flat(v) for k, v in value.items())


_LOOKALIKES = set(EXTRA_FOLDS) | {"\u212a", "\u212b", "\u017f"}
_UNFOLD = str.maketrans({"\u017f": "s", "\u212a": "k", "\u212b": "\u00e5"})


def without_lookalikes(value: Any) -> Any:
    """The event with the generator's look-alikes replaced by the letters they fold to."""
    if isinstance(value, str):
        return value.translate(_UNFOLD)
    if isinstance(value, list):
        return [without_lookalikes(v) for v in value]
    if isinstance(value, dict):
        return {k: without_lookalikes(v) for k, v in value.items()}
    return value


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)


def _has_number(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    return isinstance(value, int | float | bool)


def classify(
    engine: str,
    mutation: str,
    event: dict[str, Any],
    rule: RuleFeatures,
    ours: bool,
    theirs: bool,
    folds_alike: bool = False,
    regex_sound: bool = False,
) -> str:
    """The class of one disagreement. `folds_alike`: ours answers the same on the event with its
    look-alikes replaced by the ASCII letters they fold to (so the difference is the folding);
    `regex_sound`: each of the rule's regexes answers as RE2 alone does (no prefilter lost a match)."""
    # The differing item made our answer True and theirs False, or, in a selection under `not`, the
    # other way round.
    ours_matched = (ours and not theirs) or (rule.negated and theirs and not ours)
    texts = list(_texts(event))
    newline = any("\n" in t for t in texts)
    lookalike = any(c in _LOOKALIKES for t in texts for c in t)
    non_ascii = any(not t.isascii() for t in texts)
    if engine == "rsigma":
        if rule.keyword_all:
            return "rsigma: keyword |all"
        if rule.windash:
            return "rsigma: windash /"
        if rule.base64offset:
            return "rsigma: base64offset last character"
        if rule.numeric_keyword and ours and not theirs:
            return "rsigma: numeric keywords"
        if rule.keywords and ours and not theirs and _has_number(event):
            return "rsigma: keywords skip numbers"
        if ours and not theirs and any(_partly_flat(v) for v in event.values()):
            return "rsigma: partly flattened keys"
        if rule.fieldref and ours_matched and any(isinstance(v, list) for v in event.values()):
            return "rsigma: fieldref against a list"
        if rule.inner_wildcard_anchor:
            return "rsigma: wildcards inside startswith/endswith"
        if newline and rule.wildcards:
            return "rsigma: * across newline"
        if lookalike and folds_alike:
            return "unicode case folding"
        if rule.regex and regex_sound and non_ascii and not ours and theirs:
            return "rsigma: Unicode classes in regexes"
        if rule.boolean and not ours and theirs:
            return "rsigma: boolean spellings"
        return UNEXPLAINED
    if mutation == "fold" and lookalike and ours_matched:
        return "pysigma: ASCII-only LIKE"
    if mutation in ("upper", "swapcase") and ours_matched:
        return "pysigma: plain values compared case-sensitively"
    if rule.number and mutation.startswith("number") and ours and not theirs:
        return "pysigma: number compared as text"
    if rule.boolean and not ours and theirs:
        return "pysigma: boolean as 1"
    if rule.cidr and not ours and theirs:
        return "pysigma: cidr as LIKE prefixes"
    return UNEXPLAINED
