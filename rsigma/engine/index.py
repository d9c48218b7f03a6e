"""The candidate index: per event, find the few rules that can match without evaluating the others.

Each rule is reduced at load time to a *witness*: a small OR of conjunctions of cheap facts
("atoms"), one of which holds on every event the rule matches. Atoms are an exact field value, a
substring of a field, or a substring of any value of the event (keywords). `or` unions the sides'
conjunctions, `and` multiplies them (keeping the most selective atoms), `not` has no witness.

Per event, one dict lookup per field value and one multi-needle pass (`needles.py`) per indexed
field find the atoms that hold, whatever the number of rules; each conjunction is registered under its rarest
atom and checked against the found atoms only when that atom is found. Rules with no witness
(only negations, `exists`, numeric ranges) are evaluated on every event.

A witness is a necessary condition only: candidates are then evaluated exactly, so a loose witness
costs speed, never correctness.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from rsigma.engine.event import KEYWORD_SEPARATOR, EventView
from rsigma.engine.folding import fold
from rsigma.engine.needles import Finder, needle_finder
from rsigma.engine.numbers import canonical_key, canonical_number, parse_number
from rsigma.engine.regex import required_literal
from rsigma.rules.condition import CondAnd, CondNode, CondNot, CondOr, CondRef, CondSelector, selector_names
from rsigma.rules.model import DetectionGroup, DetectionItem, SigmaRule
from rsigma.rules.values import SigmaRegex, SigmaString

# ("x", field, value): the field has this exact (lower-cased) value;
# ("s", field, needle): the lower-cased field contains the needle;
# ("k", "", needle): some lower-cased value of the event contains the needle.
Atom = tuple[str, str, str]
Conjunction = frozenset[Atom]
Witness = list[Conjunction]  # OR of conjunctions

#: At most this many atoms are kept per conjunction, and conjunctions per witness when AND-ing.
MAX_ATOMS: Final = 3
MAX_CONJUNCTIONS: Final = 64
#: Lowest estimated chance that an exact-value atom holds on an event.
EXACT_P: Final = 0.02


@cache
def atom_probability(atom: Atom) -> float:
    """A rough prior: exact values are rare; short substrings are common."""
    kind, _, needle = atom
    if kind == "x":
        # Short exact values are usually enumerations (levels, flags, well-known ids): common.
        return max(EXACT_P, min(0.5, 1.5 / max(len(needle), 1) ** 1.2))
    p = 2.0 / (len(needle) ** 1.5)
    return min(1.0, p * (3.0 if kind == "k" else 1.0))


def _conj_p(conj: Conjunction) -> float:
    return math.prod(atom_probability(a) for a in conj)


def witness_cost(w: Witness) -> float:
    return sum(_conj_p(c) for c in w)


def _trim(conj: Conjunction) -> Conjunction:
    if len(conj) <= MAX_ATOMS:
        return conj
    return frozenset(sorted(conj, key=lambda a: (atom_probability(a), a))[:MAX_ATOMS])


def _any(children: list[Witness | None]) -> Witness | None:
    if not children or any(c is None for c in children):
        return None
    return list(dict.fromkeys(c for w in children if w for c in w))


def _all(children: list[Witness | None]) -> Witness | None:
    """AND: multiply the children's conjunctions while that stays small, best children first."""
    options = [c for c in children if c]
    if not options:
        return None
    if len(options) > 1:
        options.sort(key=witness_cost)
    result = options[0]
    for other in options[1:]:
        if len(result) * len(other) > MAX_CONJUNCTIONS:
            continue
        result = list(dict.fromkeys(_trim(a | b) for a in result for b in other))
    return result


def _string_atom(field_name: str | None, value: SigmaString) -> Atom | None:
    """The exact value, or the longest literal run between wildcards (lower-cased: sound for `cased`)."""
    literals: list[str] = []
    run = ""
    for p in value.parts:
        if isinstance(p, str):
            run += p
        else:
            literals.append(run)
            run = ""
    literals.append(run)
    if field_name is not None and len(literals) == 1:
        return ("x", field_name, fold(literals[0]))
    needle = fold(max(literals, key=len))
    if not needle or KEYWORD_SEPARATOR in needle:
        return None
    return ("k", "", needle) if field_name is None else ("s", field_name, needle)


def _value_atom(item: DetectionItem, value: object) -> Atom | None:
    if isinstance(value, SigmaString):
        return _string_atom(item.field, value)
    if isinstance(value, SigmaRegex):
        literal = required_literal(value.pattern, value.flags)
        if literal is None:
            return None
        needle = fold(literal[0])
        if KEYWORD_SEPARATOR in needle:
            return None
        return ("k", "", needle) if item.field is None else ("s", item.field, needle)
    if isinstance(value, int | float) and not isinstance(value, bool) and item.field is not None:
        return ("x", item.field, canonical_number(value))
    return None


def item_witness(item: DetectionItem) -> Witness | None:
    if item.negated or item.op not in ("eq", "re") or item.time_part is not None:
        return None
    atoms = [_value_atom(item, v) for v in item.values]
    if item.match_all:
        return _all([[frozenset([a])] if a else None for a in atoms])
    if not atoms or any(a is None for a in atoms):
        return None
    return [frozenset([a]) for a in dict.fromkeys(atoms) if a]


def group_witness(group: DetectionGroup) -> Witness | None:
    children = [item_witness(i) if isinstance(i, DetectionItem) else group_witness(i) for i in group.items]
    return _any(children) if group.any_of else _all(children)


def condition_witness(node: CondNode, sels: dict[str, Witness | None]) -> Witness | None:
    match node:
        case CondRef(name):
            return sels[name]
        case CondNot():
            return None
        case CondAnd(items):
            return _all([condition_witness(i, sels) for i in items])
        case CondOr(items):
            return _any([condition_witness(i, sels) for i in items])
        case CondSelector(quantifier, _):
            children = [sels[n] for n in selector_names(node, sels)]
            return _all(children) if quantifier == "all" else _any(children)
    raise TypeError(f"unknown condition node {node!r}")


def rule_witness(rule: SigmaRule) -> Witness | None:
    sels = {name: group_witness(g) for name, g in rule.detections.items()}
    return _any([condition_witness(c, sels) for c in rule.conditions])


@dataclass(slots=True)
class FieldIndex:
    field: str
    exact: dict[str, int] = field(default_factory=dict)  # value -> anchor atom id
    numeric: bool = False
    find: Finder | None = None  # substring anchors found in a text


@dataclass(slots=True)
class CandidateIndex:
    """Anchor atoms found through hash lookups and automatons; the other atoms checked on demand.

    `by_key` maps a top-level event key (or dotted prefix) to the field indexes probed when an event
    has it. Only anchors (the rarest atom of each conjunction) are in the lookups, so common
    substrings such as `.exe` cost nothing unless a conjunction anchored elsewhere asks for them.
    """

    by_key: dict[str, list[FieldIndex]]
    keywords: Finder | None
    triggers: dict[int, list[tuple[int, tuple[int, ...]]]]  # anchor -> (rule, other atoms)
    atoms: list[Atom]
    always: frozenset[int]

    @classmethod
    def build(cls, witnesses: Iterable[tuple[int, Witness | None]]) -> CandidateIndex:
        witnesses = list(witnesses)
        # Atoms many rules rely on (\cmd.exe, \powershell.exe) tend to be common in events too.
        popularity: dict[Atom, int] = defaultdict(int)
        for _, witness in witnesses:
            for conj in witness or ():
                for a in conj:
                    popularity[a] += 1

        def rarity(a: Atom) -> tuple[float, Atom]:
            return atom_probability(a) * (1.0 + popularity[a] / 8.0), a

        atom_ids: dict[Atom, int] = {}
        anchors: set[Atom] = set()
        triggers: dict[int, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
        always: set[int] = set()
        for rule_index, witness in witnesses:
            if witness is None:
                always.add(rule_index)
                continue
            for conj in witness:
                ordered = sorted(conj, key=rarity) if len(conj) > 1 else list(conj)
                ids = [atom_ids.setdefault(a, len(atom_ids)) for a in ordered]
                anchors.add(ordered[0])
                triggers[ids[0]].append((rule_index, tuple(ids[1:])))
        exact: dict[str, dict[str, int]] = defaultdict(dict)
        subs: dict[str, dict[str, int]] = defaultdict(dict)
        keywords: dict[str, int] = {}
        for atom in anchors:
            kind, field_name, needle = atom
            if kind == "x":
                exact[field_name][needle] = atom_ids[atom]
            elif kind == "s":
                subs[field_name][needle] = atom_ids[atom]
            else:
                keywords[needle] = atom_ids[atom]
        by_key: dict[str, list[FieldIndex]] = defaultdict(list)
        for name in exact.keys() | subs.keys():
            fi = FieldIndex(name, exact.get(name, {}))
            fi.numeric = any(parse_number(k) is not None for k in fi.exact)
            if name in subs:
                fi.find = needle_finder(subs[name])
            segments = name.split(".")
            for k in range(1, len(segments) + 1):
                by_key[".".join(segments[:k])].append(fi)
        atoms = sorted(atom_ids, key=atom_ids.__getitem__)
        return cls(
            by_key=dict(by_key),
            keywords=needle_finder(keywords, prefer_set=True) if keywords else None,
            triggers=dict(triggers),
            atoms=atoms,
            always=frozenset(always),
        )

    def anchors_found(self, view: EventView) -> set[int]:
        """Ids of the anchor atoms that hold on the event."""
        found: set[int] = set()
        add = found.add
        by_key = self.by_key
        lowered = view.lowered
        for key, value in view.data.items():
            indexes = by_key.get(key)
            if indexes is None:
                continue
            for fi in indexes:
                exact = fi.exact
                find = fi.find
                numbers = fi.numeric
                if fi.field == key and type(value) is str:
                    texts = lowered[key] = (fold(value),)
                elif fi.field == key and type(value) is int:
                    texts = lowered[key] = (str(value),)
                    numbers = False  # an int's text is its canonical form
                else:
                    texts = lowered.get(fi.field)
                    if texts is None:
                        texts = view.lower(fi.field)
                for t in texts:
                    if exact:
                        hit = exact.get(t)
                        if hit is not None:
                            add(hit)
                        if numbers:
                            # "04624" is both a text (for string values) and the number 4624.
                            number = canonical_key(t)
                            if number is not None:
                                hit = exact.get(number)
                                if hit is not None:
                                    add(hit)
                    if find is not None:
                        found.update(find(t))
        if self.keywords is not None:
            found.update(self.keywords(view.keyword_text()))
        return found

    def _holds(self, atom_id: int, view: EventView) -> bool:
        """Check a non-anchor atom directly on the event (only asked when its anchor was found)."""
        kind, field_name, needle = self.atoms[atom_id]
        if kind == "k":
            return needle in view.keyword_text()
        texts = view.lowered.get(field_name)
        if texts is None:
            texts = view.lower(field_name)
        if kind == "x":
            return needle in texts or any(canonical_key(t) == needle for t in texts)
        for t in texts:
            if needle in t:
                return True
        return False

    def candidates(self, view: EventView) -> set[int]:
        """Rules whose witness holds on the event, plus the rules that are always evaluated."""
        out = set(self.always)
        triggers = self.triggers
        checked: dict[int, bool] = {}
        holds = self._holds
        for anchor in self.anchors_found(view):
            for rule, rest in triggers[anchor]:
                if not rest:
                    out.add(rule)
                    continue
                for atom in rest:
                    ok = checked.get(atom)
                    if ok is None:
                        ok = checked[atom] = holds(atom, view)
                    if not ok:
                        break
                else:
                    out.add(rule)
        return out
