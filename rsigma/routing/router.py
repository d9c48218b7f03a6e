"""Map events to logsources (product, category, service) with a small YAML routing map.

A routing map has `routes`: each matches event field values and contributes logsource values; all
matching routes add up (so one route can set `product: windows, service: sysmon` for a channel and
another the `category` for an event id). A dimension may take several values (`registry_set` and
the umbrella `registry_event`). `fields` names event fields that carry a dimension directly.

A rule is evaluated on an event unless both name a dimension and the rule's value is not among the
event's (case-insensitive): conflict-based, so a rule or an event silent about a dimension never
excludes anything. An event no route places is evaluated against every rule (and counted).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rsigma.errors import Location, SigmaError, SigmaRuleError, SigmaSyntaxError
from rsigma.fields import MISSING, resolve, text_of
from rsigma.rules.model import LogSource
from rsigma.rules.yaml_documents import iter_documents

DIMENSIONS: Final = ("product", "category", "service")
BUILTIN_DIR: Final = Path(__file__).resolve().parent / "builtin"

#: Distinct placements remembered (events mostly repeat a handful of channel/id combinations).
MAX_CACHED_PLACEMENTS: Final = 4096
#: (dimension, allowed values) pairs, sorted: hashable, so placements cache compiled indexes.
Placement = tuple[tuple[str, frozenset[str]], ...]


@dataclass(frozen=True, slots=True)
class Route:
    match: tuple[tuple[str, frozenset[str]], ...]  # field -> accepted lower-cased texts
    logsource: tuple[tuple[str, frozenset[str]], ...]


class LogsourceRouter:
    """Routes compiled into one hash table per set of matched fields; placements cached by key."""

    def __init__(
        self, routes: list[Route], fields: dict[str, tuple[str, ...]], name: str = "unnamed"
    ) -> None:
        self.routes = routes
        self.fields = fields
        self.name = name
        tables: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {}
        for number, route in enumerate(routes):
            names = tuple(f for f, _ in route.match)
            table = tables.setdefault(names, {})
            for combo in itertools.product(*(sorted(values) for _, values in route.match)):
                table.setdefault(combo, []).append(number)
        self._tables = [(names, table) for names, table in tables.items()]
        self._cache: dict[tuple[Any, ...], Placement | None] = {}

    def place(self, event: dict[str, Any]) -> Placement | None:
        """The event's logsource, or None when nothing in the map applies to it."""
        key: list[Any] = []
        for names, table in self._tables:
            values = []
            for fname in names:
                text = _text(event, fname)
                if text is None:
                    break
                values.append(text)
            else:
                hit = table.get(tuple(values))
                if hit is not None:
                    key.extend(hit)
        for dim, names in self.fields.items():
            for fname in names:
                text = _text(event, fname)
                if text is not None:
                    key.append((dim, text))
        cache_key = tuple(key)
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        if len(self._cache) >= MAX_CACHED_PLACEMENTS:
            self._cache.clear()
        placement = self._cache[cache_key] = self._placement(key)
        return placement

    def _placement(self, key: list[Any]) -> Placement | None:
        found: dict[str, set[str]] = {}
        for part in key:
            if isinstance(part, int):
                for dim, values in self.routes[part].logsource:
                    found.setdefault(dim, set()).update(values)
            else:
                dim, text = part
                found.setdefault(dim, set()).add(text)
        if not found:
            return None
        return tuple(sorted((dim, frozenset(values)) for dim, values in found.items()))


def _text(event: dict[str, Any], fname: str) -> str | None:
    value = event.get(fname, MISSING) if "." not in fname else resolve(event, fname)
    if value is MISSING:
        return None
    text = text_of(value)
    return None if text is None else text.lower()


def compatible(rule: LogSource, placement: Placement) -> bool:
    """False only when the rule and the event both name a dimension and disagree."""
    for dim, values in placement:
        want = getattr(rule, dim)
        if want is not None and want.lower() not in values:
            return False
    return True


def _texts(value: Any, what: str) -> frozenset[str]:
    values = value if isinstance(value, list) else [value]
    out = set()
    for v in values:
        text = text_of(v)
        if text is None:
            raise SigmaRuleError(f"{what}: expected a string or number, got {v!r}")
        out.add(text.lower())
    return frozenset(out)


def parse_router(doc: Any, name: str) -> LogsourceRouter:
    if not isinstance(doc, dict) or not isinstance(doc.get("routes", []), list):
        raise SigmaRuleError("a routing map is a mapping with a 'routes' list")
    routes = []
    for n, spec in enumerate(doc.get("routes") or [], start=1):
        if not isinstance(spec, dict) or not isinstance(spec.get("match"), dict) or not spec["match"]:
            raise SigmaRuleError(f"route {n}: needs 'match' (event field -> value or list of values)")
        logsource = spec.get("logsource")
        if not isinstance(logsource, dict) or not logsource or set(logsource) - set(DIMENSIONS):
            raise SigmaRuleError(f"route {n}: 'logsource' sets {', '.join(DIMENSIONS)} and nothing else")
        routes.append(
            Route(
                match=tuple((str(k), _texts(v, f"route {n} match {k}")) for k, v in spec["match"].items()),
                logsource=tuple(
                    (dim, _texts(v, f"route {n} logsource {dim}")) for dim, v in logsource.items()
                ),
            )
        )
    fields = doc.get("fields") or {}
    if not isinstance(fields, dict) or set(fields) - set(DIMENSIONS):
        raise SigmaRuleError(f"'fields' maps {', '.join(DIMENSIONS)} to event field names")
    return LogsourceRouter(
        routes=routes,
        fields={dim: tuple([v] if isinstance(v, str) else v) for dim, v in fields.items()},
        name=str(doc.get("name", name)),
    )


def merge_routers(routers: list[LogsourceRouter]) -> LogsourceRouter:
    """One router from several maps: routes and direct fields add up."""
    fields: dict[str, tuple[str, ...]] = {}
    for r in routers:
        for dim, names in r.fields.items():
            fields[dim] = tuple(dict.fromkeys((*fields.get(dim, ()), *names)))
    return LogsourceRouter(
        [route for r in routers for route in r.routes], fields, "+".join(r.name for r in routers)
    )


def load_routers(names_or_paths: list[str] | None) -> LogsourceRouter:
    """The given maps merged; with none, every builtin map."""
    return merge_routers([load_router(n) for n in (names_or_paths or builtin_routers())])


def builtin_routers() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yml"))


def load_router(name_or_path: str | Path = "windows") -> LogsourceRouter:
    """A builtin routing map by name, or a routing YAML file."""
    path = Path(name_or_path)
    if not path.exists():
        path = BUILTIN_DIR / f"{name_or_path}.yml"
        if not path.exists():
            builtin = ", ".join(builtin_routers())
            raise SigmaSyntaxError(
                f"no routing map file or builtin map {str(name_or_path)!r} (builtin: {builtin})"
            )
    location = Location(path)
    try:
        docs = [doc for _, doc in iter_documents(path.read_text(encoding="utf-8"))]
        if len(docs) != 1:
            raise SigmaSyntaxError("a routing map file holds exactly one YAML document")
        return parse_router(docs[0], path.stem)
    except SigmaError as e:
        raise e.located(location) from None
    except Exception as e:  # yaml.YAMLError, OSError: a located load error
        raise SigmaSyntaxError(f"cannot load routing map: {e}", location=location) from e
