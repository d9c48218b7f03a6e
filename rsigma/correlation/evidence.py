"""Event inclusion (`--correlation-event-mode`): the evidence a correlation window keeps of its events.

With `full` a window keeps the bodies of its most recent events (at most `--max-correlation-events`
per group), with `refs` their time and id; a firing's result carries them as `events` or
`event_refs`. The evidence is made once per event by whichever process evaluates it, and travels with
the event's hits to the window's owner (`rsigma.correlation.engine.Hit`): an id, and for `full` the
body as compact JSON, deflated (level 1, as RSigma keeps it) when that is smaller. The owner stores
those bytes as they arrived and only reads them back when a result is written.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from rsigma.errors import SigmaRuleError
from rsigma.fields import text_of
from rsigma.rules.correlation import CorrelationRule

#: What a window keeps per event: nothing, a reference (time and id), or the whole body.
NONE, REFS, FULL = 0, 1, 2
MODES: Final = {"none": NONE, "refs": REFS, "full": FULL}
DEFAULT_MAX_CORRELATION_EVENTS: Final = 10
#: The top-level keys an event reference takes its id from, first present wins (RSigma's list).
REF_ID_KEYS: Final = ("id", "_id", "event_id", "EventRecordID", "event.id")

#: An event's evidence on a hit: its id (or None) and, when a correlation above keeps bodies, the body.
Evidence = tuple[str | None, bytes | None]

ATTR_MODE: Final = "rsigma.correlation_event_mode"
ATTR_MAX_EVENTS: Final = "rsigma.max_correlation_events"
ATTR_MAX_ENTRIES: Final = "rsigma.max_group_entries"


@dataclass(frozen=True, slots=True)
class Overrides:
    """A correlation's own settings from its custom attributes; None: the engine-wide flag applies."""

    mode: int | None = None
    max_events: int | None = None
    max_group_entries: int | None = None


def mode_of(name: str) -> int:
    """The mode called `name` (ValueError naming the accepted values otherwise)."""
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"expected none, full or refs, got {name!r}") from None


def overrides(corr: CorrelationRule) -> Overrides:
    """The event-inclusion attributes of a correlation (SigmaRuleError naming the attribute if bad).

    Read at the top level of the rule or, as RSigma's examples write them, under `custom_attributes:`
    (the top level wins). RSigma ignores a value it cannot read; here it is an error.
    """
    custom = dict(corr.custom)
    nested = custom.get("custom_attributes")
    if isinstance(nested, dict):
        custom = {**nested, **custom}
    mode = None
    if ATTR_MODE in custom:
        try:
            mode = mode_of(str(custom[ATTR_MODE]).strip().lower())
        except ValueError as e:
            raise SigmaRuleError(f"{ATTR_MODE}: {e}") from None
    return Overrides(mode, _positive(custom, ATTR_MAX_EVENTS), _positive(custom, ATTR_MAX_ENTRIES))


def _positive(custom: dict[str, Any], name: str) -> int | None:
    if name not in custom:
        return None
    raw = custom[name]
    # Custom attributes often arrive as text (pipelines' set_custom_attribute, RSigma's own examples).
    text = str(raw).strip() if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    if text is None or not text.isdigit() or int(text) < 1:
        raise SigmaRuleError(f"{name}: expected a whole number of at least 1, got {raw!r}")
    return int(text)


def ref_id(event: dict[str, Any]) -> str | None:
    """The event's id for `event_refs`: the first of `REF_ID_KEYS` present (as text), else None."""
    for key in REF_ID_KEYS:
        value = event.get(key)
        if value is not None:
            text = text_of(value)
            return text if text is not None else orjson.dumps(value).decode()
    return None


def pack_body(event: dict[str, Any]) -> bytes:
    """The event as compact JSON, deflated when that is smaller (JSON starts with `{`, deflate never).

    RecursionError for an event nested too deeply to write (orjson writes 254 levels, the standard
    library about 990; events are read up to 1,024).
    """
    try:
        raw = orjson.dumps(event)
    except orjson.JSONEncodeError:
        raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    packed = zlib.compress(raw, 1)
    # orjson's bytes keep its 4 KiB working buffer: a window keeps an exact-size copy instead.
    return packed if len(packed) < len(raw) else bytes(memoryview(raw))


def unpack_body(body: bytes) -> Any:
    """The event a `pack_body` result holds."""
    return orjson.loads(body if body[:1] == b"{" else zlib.decompress(body))


def evidence_of(event: dict[str, Any], mode: int) -> Evidence:
    """What a hit carries for a correlation keeping `mode` (REFS or FULL)."""
    return ref_id(event), pack_body(event) if mode == FULL else None


def epoch_seconds(ts: float) -> float | int:
    """An event time for `event_refs`: whole seconds as an integer (as RSigma writes them)."""
    return int(ts) if ts.is_integer() else ts
