"""The candidate index: per event, find the few rules that can match without evaluating the others.

Each rule is reduced at load time to a *witness*: a small OR of conjunctions of cheap facts
("atoms"), one of which holds on every event the rule matches. Atoms are an exact field value, a
substring of a field, or a substring of any value of the event (keywords). `or` unions the sides'
conjunctions, `and` multiplies them (keeping the most selective atoms), `not` has no witness.

When a conjunction of conjunctions would be too large to multiply out, the smaller side is kept and
the other becomes a "g" atom: one of its conjunctions' rarest atoms must hold.

Per event, one dict lookup and one multi-needle pass (`needles.py`) per indexed field find every
atom that holds, whatever the number of rules; the result for a field value is memoised, since
values such as Image or User repeat from event to event. Each conjunction is registered under its
rarest atom (its anchor) and checked against the atoms found only when that atom is found. Rules
with no witness (only negations, `exists`, numeric ranges) are evaluated on every event.

A witness is a necessary condition only: candidates are then evaluated exactly, so a loose witness
costs speed, never correctness.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import chain, islice
from typing import Any, Final

from rsigma.engine.event import KEYWORD_SEPARATOR, EventView
from rsigma.engine.folding import fold
from rsigma.engine.needles import Finder
from rsigma.engine.numbers import canonical_key, canonical_number, parse_number
from rsigma.engine.regex import required_literal
from rsigma.rules.condition import CondAnd, CondNode, CondNot, CondOr, CondRef, CondSelector, selector_names
from rsigma.rules.model import DetectionGroup, DetectionItem, SigmaRule
from rsigma.rules.values import SigmaRegex, SigmaString

# ("x", field, value): the field has this exact (lower-cased) value;
# ("s", field, needle): the lower-cased field contains the needle;
# ("k", "", needle): some lower-cased value of the event contains the needle;
# ("g", "", members): at least one of the atoms in `members` (a JSON list of atoms) holds.
Atom = tuple[str, str, str]
Conjunction = frozenset[Atom]
Witness = list[Conjunction]  # OR of conjunctions

#: At most this many atoms are kept per conjunction, and conjunctions per witness when AND-ing.
MAX_ATOMS: Final = 3
MAX_CONJUNCTIONS: Final = 64
#: Lowest estimated chance that an exact-value atom holds on an event.
EXACT_P: Final = 0.02
#: Atoms at least this likely to hold (one- and two-character substrings such as "-" or " /", short
#: keywords) are left out of a conjunction that has a rarer plain atom: they seldom exclude a rule,
#: and finding them costs every value ("-" is in nearly every command line). On SigmaHQ: first pass
#: +5 to +9%, the same matches.
COMMON_P: Final = 0.7


@cache
def atom_probability(atom: Atom) -> float:
    """A rough prior: exact values are rare; short substrings are common."""
    kind, _, needle = atom
    if kind == "g":
        return min(1.0, sum(atom_probability(tuple(m)) for m in json.loads(needle)))
    if kind == "x":
        # Short exact values are usually enumerations (levels, flags, well-known ids): common.
        return max(EXACT_P, min(0.5, 1.5 / max(len(needle), 1) ** 1.2))
    p = 2.0 / (len(needle) ** 1.5)
    return min(1.0, p * (3.0 if kind == "k" else 1.0))


@cache
def _common(atom: Atom) -> bool:
    return atom[0] != "g" and atom_probability(atom) >= COMMON_P


def _conj_p(conj: Conjunction) -> float:
    return math.prod(atom_probability(a) for a in conj)


def witness_cost(w: Witness) -> float:
    return sum(_conj_p(c) for c in w)


def _selectivity(atom: Atom) -> tuple[float, Atom]:
    return atom_probability(atom), atom


def _trim(conj: Conjunction) -> Conjunction:
    """The most selective atoms, always with a plain one (the index anchors a conjunction on it), and
    none of the common ones (`COMMON_P`) beside a rarer plain atom."""
    if len(conj) > 1:
        kept = [a for a in conj if not _common(a)]
        if len(kept) < len(conj) and any(a[0] != "g" for a in kept):
            conj = frozenset(kept)
    if len(conj) <= MAX_ATOMS:
        return conj
    ranked = sorted(conj, key=_selectivity)
    kept = ranked[:MAX_ATOMS]
    if all(a[0] == "g" for a in kept):
        kept[-1] = next(a for a in ranked if a[0] != "g")
    return frozenset(kept)


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
        if len(result) * len(other) <= MAX_CONJUNCTIONS:
            result = list(dict.fromkeys(_trim(a | b) for a in result for b in other))
        else:
            # Too many products: require instead that one of `other`'s conjunctions may hold.
            guard = _group(other)
            result = list(dict.fromkeys(_trim(c | {guard}) for c in result))
    return result


def _group(witness: Witness) -> Atom:
    """A "g" atom that holds whenever some conjunction of `witness` holds: any of their rarest atoms."""
    members = {min((a for a in conj if a[0] != "g"), key=_selectivity) for conj in witness}
    return ("g", "", json.dumps(sorted(members)))


def _string_atom(field_name: str | None, value: SigmaString) -> Atom | None:
    """The exact value, or the longest literal run between wildcards (lower-cased: sound for `cased`)."""
    shape = value.simple_shape()
    if shape is not None:
        kind, text = shape
        if kind == "exact" and field_name is not None:
            return ("x", field_name, fold(text))
        needle = fold(text)
        if not needle or KEYWORD_SEPARATOR in needle:
            return None
        return ("k", "", needle) if field_name is None else ("s", field_name, needle)
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


#: Texts longer than this are not memoised (long values such as command lines rarely repeat).
MEMO_MAX_TEXT: Final = 256
#: Memoised texts per indexed field; a full memo drops its older half (clearing it all made the values
#: in use miss together).
MEMO_MAX_ENTRIES: Final = 4096

#: A conjunction beyond its anchor: (rule, the other plain atoms, groups of which one atom each).
Guarded = tuple[int, frozenset[int], tuple[frozenset[int], ...]]
#: An anchor's conjunctions: the rules it alone decides, and the guarded ones.
Trigger = tuple[tuple[int, ...], tuple[Guarded, ...]]
#: What a text holds: its atoms, the rules they decide alone, the conjunctions they anchor.
Entry = tuple[frozenset[int], frozenset[int], tuple[Guarded, ...]]


#: A conjunction as one field sees it, prepared once per field and anchor: (the rule; its atoms in
#: this field, which must all hold; its groups wholly in this field, of which one atom each must hold;
#: its groups reaching other fields; its atoms in other fields; what is left when this field's part
#: holds and no other group is met yet: the rule, or the rule with the other fields' atoms and groups).
Groups = tuple[frozenset[int], ...]
Prepared = tuple[int, frozenset[int], Groups, Groups, frozenset[int], "Guarded | int"]


def _prepare(guarded: Guarded, own: frozenset[int]) -> Prepared:
    rule, plain, groups = guarded
    local = plain & own
    rest = plain - local
    own_groups = tuple(g for g in groups if g <= own)
    other_groups = tuple(g for g in groups if not g <= own)
    left: Guarded | int = (rule, rest, other_groups) if rest or other_groups else rule
    return rule, local, own_groups, other_groups, rest, left


_NOTHING: Final[Entry] = (frozenset(), frozenset(), ())


def forget_older_half(memo: dict[Any, Any]) -> None:
    """Bound a memo: drop its older half (starting over made the values in use miss together)."""
    for key in list(islice(memo, len(memo) // 2)):
        del memo[key]


def _entry(atoms: frozenset[int], triggers: dict[int, Trigger]) -> Entry:
    """The rules and conjunctions `atoms` trigger, left for the whole event to check (keywords)."""
    if not atoms:
        return _NOTHING  # most events: one shared entry
    rules: set[int] = set()
    guarded: list[Guarded] = []
    for atom in atoms:
        trigger = triggers.get(atom)
        if trigger is not None:
            rules.update(trigger[0])
            guarded.extend(trigger[1])
    return atoms, frozenset(rules), tuple(guarded)


class FieldIndex:
    """The atoms of one field: exact values (a dict) and substrings (a finder), with a memo.

    Event fields such as Image, User or Company repeat from event to event, so what a value holds
    (its atoms, and the rules and conjunctions they trigger) is memoised per field, keyed by the value
    as it comes in the event (before folding). A field's texts decide all of its own atoms, so a
    conjunction is resolved as far as they go before it is memoised: most conjunctions name one field
    (Image contains X and ends with Y) and leave nothing to check per event. The keyword index
    (`own` None) cannot: its atoms may hold in any value of the event.
    """

    __slots__ = ("field", "exact", "numeric", "find", "triggers", "own", "memo", "prepared")

    def __init__(
        self,
        field: str,
        exact: dict[str, int],
        find: Finder | None,
        triggers: dict[int, Trigger],
        own: frozenset[int] | None,
    ) -> None:
        self.field = field
        self.exact = exact
        self.numeric = any(parse_number(k) is not None for k in exact)
        self.find = find
        self.triggers = triggers
        self.own = own
        #: By value (a field), or by the atoms found (the keyword index).
        self.memo: dict[str | int | frozenset[int], Entry] = {}
        #: `triggers` as this field sees them (`_prepare`), by anchor, filled as anchors are found.
        self.prepared: dict[int, tuple[tuple[int, ...], tuple[Prepared, ...]]] = {}

    def __getstate__(self) -> tuple[Any, ...]:
        return self.field, self.exact, self.find, self.triggers, self.own

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def entry(self, texts: tuple[str, ...], numbers: bool) -> Entry:
        """What the field's folded texts hold (`numbers`: also compare them as numbers)."""
        exact = self.exact
        find = self.find
        found: set[int] = set()
        for t in texts:
            if exact:
                hit = exact.get(t)
                if hit is not None:
                    found.add(hit)
                if numbers:
                    # "04624" is both a text (for string values) and the number 4624.
                    number = canonical_key(t)
                    if number is not None:
                        hit = exact.get(number)
                        if hit is not None:
                            found.add(hit)
            if find is not None:
                found.update(find(t))
        atoms = frozenset(found)
        if self.own is not None:
            return self._resolved(atoms, self.own)
        # The keyword index searches a text per event, but the atoms found recur (about 120
        # combinations on SigmaHQ's 10,000 Sysmon events): memoised by them.
        entry = self.memo.get(atoms)
        if entry is None:
            if len(self.memo) >= MEMO_MAX_ENTRIES:
                forget_older_half(self.memo)
            entry = self.memo[atoms] = _entry(atoms, self.triggers)
        return entry

    def _resolved(self, atoms: frozenset[int], own: frozenset[int]) -> Entry:
        """The rules and conjunctions `atoms` trigger, resolved as far as this field decides them:
        a conjunction fails if one of its atoms here does not hold, or a group wholly here has none."""
        if not atoms:
            return _NOTHING  # most values: one shared entry
        rules: set[int] = set()
        guarded: list[Guarded] = []
        prepared = self.prepared
        for atom in atoms:
            trigger = prepared.get(atom)
            if trigger is None:
                raw = self.triggers.get(atom)
                if raw is None:
                    continue
                trigger = prepared[atom] = (raw[0], tuple(_prepare(g, own) for g in raw[1]))
            rules.update(trigger[0])
            for rule, local, own_groups, other_groups, rest, left in trigger[1]:
                if local and not local <= atoms:
                    continue
                if own_groups and any(g.isdisjoint(atoms) for g in own_groups):
                    continue
                if other_groups:
                    kept = tuple(g for g in other_groups if g.isdisjoint(atoms))
                    if len(kept) < len(other_groups):
                        left = (rule, rest, kept) if rest or kept else rule
                if type(left) is int:
                    rules.add(left)
                else:
                    guarded.append(left)
        return atoms, frozenset(rules), tuple(guarded)

    def value_entry(self, value: str | int) -> Entry:
        """`entry` of a plain string or int value, memoised (callers look in `memo` first)."""
        if type(value) is str:
            entry = self.entry((fold(value),), self.numeric)
        else:
            entry = self.entry((str(value),), False)  # an int's text is its canonical form
        if type(value) is int or len(value) <= MEMO_MAX_TEXT:
            memo = self.memo
            if len(memo) >= MEMO_MAX_ENTRIES:
                forget_older_half(memo)
            memo[value] = entry
        return entry


@dataclass(slots=True)
class CandidateIndex:
    """Every atom found through hash lookups and finders; conjunctions checked by their anchor.

    `by_key` maps a top-level event key (or dotted prefix) to the field indexes probed when an event
    has it. Each conjunction is registered under its rarest plain atom (its anchor), so an event
    visits only the conjunctions of the atoms it holds, and checks their other atoms against the atoms
    found (a subset test, and one intersection per "g" atom). The index pickles (finders as their
    needles, memos empty), so a rule cache can keep it.
    """

    by_key: dict[str, list[FieldIndex]]
    keywords: FieldIndex | None
    always: frozenset[int]

    @classmethod
    def build(cls, witnesses: Iterable[tuple[int, Witness | None]]) -> CandidateIndex:
        witnesses = list(witnesses)
        # Atoms many rules rely on (\cmd.exe, \powershell.exe) tend to be common in events too.
        # Counted, ranked and numbered once per atom: a rule set has tens of thousands of conjunctions.
        popularity = Counter(chain.from_iterable(chain.from_iterable(w for _, w in witnesses if w)))
        rarity = {a: (a[0] == "g", atom_probability(a) * (1.0 + n / 8.0), a) for a, n in popularity.items()}
        atom_ids: dict[Atom, int] = {a: i for i, a in enumerate(a for a in popularity if a[0] != "g")}

        def atom_id(a: Atom) -> int:
            return atom_ids.setdefault(a, len(atom_ids))

        members: dict[Atom, frozenset[int]] = {}

        def group_ids(a: Atom) -> frozenset[int]:
            ids = members.get(a)
            if ids is None:
                ids = members[a] = frozenset(atom_id(tuple(m)) for m in json.loads(a[2]))
            return ids

        direct: dict[int, list[int]] = defaultdict(list)
        guarded: dict[int, list[Guarded]] = defaultdict(list)
        always: set[int] = set()
        for rule_index, witness in witnesses:
            if witness is None:
                always.add(rule_index)
                continue
            for conj in witness:
                if len(conj) == 1:
                    (anchor,) = conj
                    direct[atom_id(anchor)].append(rule_index)
                    continue
                anchor, *rest = sorted(conj, key=rarity.__getitem__)
                plain = frozenset(atom_ids[a] for a in rest if a[0] != "g")
                groups = tuple(group_ids(a) for a in rest if a[0] == "g")
                guarded[atom_id(anchor)].append((rule_index, plain, groups))
        triggers: dict[int, Trigger] = {
            anchor: (tuple(dict.fromkeys(direct.get(anchor, ()))), tuple(guarded.get(anchor, ())))
            for anchor in direct.keys() | guarded.keys()
        }
        exact: dict[str, dict[str, int]] = defaultdict(dict)
        subs: dict[str, dict[str, int]] = defaultdict(dict)
        keywords: dict[str, int] = {}
        for atom, ident in atom_ids.items():
            kind, field_name, needle = atom
            if kind == "x":
                exact[field_name][needle] = ident
            elif kind == "s":
                subs[field_name][needle] = ident
            else:
                keywords[needle] = ident
        by_key: dict[str, list[FieldIndex]] = defaultdict(list)
        for name in exact.keys() | subs.keys():
            find = Finder(subs[name]) if name in subs else None
            own = frozenset(exact.get(name, {}).values()) | frozenset(subs.get(name, {}).values())
            fi = FieldIndex(name, exact.get(name, {}), find, triggers, own)
            segments = name.split(".")
            for k in range(1, len(segments) + 1):
                by_key[".".join(segments[:k])].append(fi)
        keyword_index = None
        if keywords:
            keyword_index = FieldIndex("", {}, Finder(keywords, prefer_set=True), triggers, None)
        return cls(
            by_key=dict(by_key),
            keywords=keyword_index,
            always=frozenset(always),
        )

    def candidates(self, view: EventView) -> set[int]:
        """Rules whose witness holds on the event, plus the rules that are always evaluated."""
        out = set(self.always)
        found: set[int] = set()
        pending: list[tuple[Guarded, ...]] = []
        by_key = self.by_key
        for key, value in view.data.items():
            indexes = by_key.get(key)
            if indexes is None:
                continue
            for fi in indexes:
                if fi.field == key and (type(value) is str or type(value) is int):
                    entry = fi.memo.get(value)
                    if entry is None:
                        entry = fi.value_entry(value)
                else:
                    texts = view.lowered.get(fi.field)
                    if texts is None:
                        texts = view.lower(fi.field)
                    entry = fi.entry(texts, fi.numeric)
                atoms, rules, guarded = entry
                if atoms:
                    found.update(atoms)
                    if rules:
                        out.update(rules)
                    if guarded:
                        pending.append(guarded)
        if self.keywords is not None:
            atoms, rules, guarded = self.keywords.entry((view.keyword_text(),), False)
            found.update(atoms)
            out.update(rules)
            if guarded:
                pending.append(guarded)
        for guarded in pending:
            for rule, plain, groups in guarded:
                if plain <= found and (not groups or all(not g.isdisjoint(found) for g in groups)):
                    out.add(rule)
        return out
