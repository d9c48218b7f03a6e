"""The three engines compared, each answering "which rules match this event": ours, RSigma, pySigma sqlite.

- ours: `Engine.evaluate` over the whole rule set, and, for the rule an event was built from, the
  compiled rule evaluated without the candidate index (an index that drops a match is our bug).
- RSigma: `../shared/tools/rsigma-bench --dump` over the same rules and an NDJSON file of the events.
- pySigma: `pysigma-backend-sqlite` turns the rule an event was built from into SQL, run on an
  in-memory table with a TEXT column per field (SQL has no lists or objects: such events are skipped).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import re2

from rsigma.engine import Engine
from rsigma.engine.event import EventView
from rsigma.engine.matchers import compile_item
from rsigma.engine.regex import compile_search
from rsigma.rules.model import SigmaRule
from rsigma.rules.values import SigmaRegex
from tests.differential.generate import Case, rule_key

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RSIGMA_BENCH = SHARED / "tools" / "rsigma-bench" / "rsigma-bench"


def ours(engine: Engine, cases: Sequence[Case]) -> tuple[list[set[str]], list[bool | None]]:
    """Matched rule keys per event, and whether the event's own rule matches with no index."""
    by_key = {rule_key(r.rule): r for r in engine.rules}
    matched: list[set[str]] = []
    exact: list[bool | None] = []
    for case in cases:
        matched.append({d.rule_id or d.rule_title for d in engine.evaluate(case.event)})
        own = by_key.get(case.rule)
        exact.append(None if own is None else own.matches(EventView(case.event)))
    return matched, exact


def regex_items_agree_with_re2(rule: SigmaRule, event: dict[str, Any]) -> bool:
    """Whether each `re` item of the rule answers on the event as RE2 alone does (no prefilter)."""
    view = EventView(event)
    for group in rule.detections.values():
        for item in group.leaves():
            if item.op != "re" or item.negated:
                continue
            texts = view.texts(item.field) if item.field else view.raw_leaves()
            answers = [
                any(compile_search(v.pattern, v.flags)(t) for t in texts)
                for v in item.values
                if isinstance(v, SigmaRegex)
            ]
            direct = all(answers) if item.match_all else any(answers)
            if compile_item(item)(view) != direct:
                return False
    return True


def rsigma(rules: Path, cases: Sequence[Case]) -> list[set[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.ndjson"
        dump = Path(tmp) / "dump.json"
        events.write_text("".join(json.dumps(c.event, ensure_ascii=False) + "\n" for c in cases))
        subprocess.run(
            [str(RSIGMA_BENCH), "--rules", str(rules), "--events", str(events), "--dump", str(dump)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return [set(ids) for ids in json.loads(dump.read_text())]


def sqlite_queries(rule_files: Sequence[Path]) -> dict[str, str]:
    """Rule key -> SQL, for the rules pySigma's sqlite backend converts (others are left out)."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    backend = sqliteBackend()
    out: dict[str, str] = {}
    for path in rule_files:
        try:
            collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"))
        except SigmaError:
            continue
        for rule in collection.rules:
            try:
                queries = backend.convert_rule(rule)
            except (SigmaError, NotImplementedError):
                continue
            if len(queries) == 1:
                out[str(rule.id) if rule.id else rule.title] = queries[0]
    return out


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    try:
        return re2.search(pattern, str(value)) is not None
    except re2.error:
        return False


def sqlite_matches(query: str, events: Sequence[dict[str, Any]]) -> list[bool | None]:
    """Whether the query selects each event; None for events SQL cannot hold (lists, objects)."""
    conn = sqlite3.connect(":memory:")
    conn.create_function("REGEXP", 2, _regexp, deterministic=True)
    columns: list[str] = []
    for event in events:
        for k in event:
            if k not in columns:
                columns.append(k)
    usable = [all(not isinstance(v, list | dict) for v in e.values()) for e in events]
    for _ in range(64):
        cols = ", ".join(f'"{c}" TEXT' for c in columns) or '"_" TEXT'
        conn.execute("DROP TABLE IF EXISTS logs")
        conn.execute(f"CREATE TABLE logs (rowid_ INTEGER, {cols})")
        for i, event in enumerate(events):
            if not usable[i]:
                continue
            names = ["rowid_", *event]
            marks = ", ".join("?" * len(names))
            quoted = ", ".join(f'"{n}"' for n in names)
            conn.execute(f"INSERT INTO logs ({quoted}) VALUES ({marks})", [i, *event.values()])
        try:
            rows = {r[0] for r in conn.execute(query.replace("SELECT *", "SELECT rowid_", 1))}
        except sqlite3.OperationalError as e:
            missing = str(e).removeprefix("no such column: ")
            if missing == str(e) or missing in columns:
                return [None] * len(events)
            columns.append(missing)
            continue
        return [(i in rows) if usable[i] else None for i in range(len(events))]
    return [None] * len(events)
