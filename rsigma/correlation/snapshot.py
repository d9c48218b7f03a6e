"""Correlation state snapshots: versioned MessagePack, compact and independent of process layout.

An entry is `[correlation key, group values, times, values, newest time, last alert, kept]`; the
correlation key is its id, else its name, else its title, so a snapshot survives rule reordering
and reloads. `kept` is the window's event evidence, `[[time, id or body], ...]` (empty when its
correlation includes no events; version 1 snapshots, written before event inclusion, have no such
item and read as empty). A snapshot is checked whole before any entry is used: one of an unknown
format version, or with a malformed entry, is refused, never half-read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from rsigma.correlation.state import GroupState

FORMAT: Final = "rsigma-correlation-state"
VERSION: Final = 2
#: The versions this rsigma reads: 1 lacks the kept evidence.
READS: Final = (1, 2)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()

Entry = tuple[str, list[Any], list[float], list[Any], float, float | None, list[Any]]


class SnapshotError(ValueError):
    """The bytes are not a correlation snapshot this version of rsigma can read."""


def encode_snapshot(entries: Iterable[tuple[str, list[Any], GroupState]]) -> bytes:
    return encode_entries(
        [key, group, state.times, state.values, state.newest, state.last_alert, state.kept or []]
        for key, group, state in entries
    )


def encode_entries(entries: Iterable[Entry | list[Any]]) -> bytes:
    """A snapshot of entries as `decode_snapshot` returns them (to split or merge snapshots)."""
    return _encoder.encode({"format": FORMAT, "version": VERSION, "entries": list(entries)})


def decode_snapshot(data: bytes) -> list[Entry]:
    """Every entry, validated before any is used."""
    try:
        doc = _decoder.decode(data)
    except msgspec.DecodeError as e:
        raise SnapshotError(f"not a correlation state snapshot: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError("not a correlation state snapshot (missing format marker)")
    version = doc.get("version")
    if version not in READS:
        raise SnapshotError(
            f"correlation state snapshot has version {version!r};"
            f" this rsigma reads version {' or '.join(map(str, READS))}"
        )
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise SnapshotError("correlation state snapshot has no entry list")
    size = 6 if version == 1 else 7
    return [_entry(n, e, size) for n, e in enumerate(entries)]


def _entry(n: int, entry: Any, size: int) -> Entry:
    if not isinstance(entry, list) or len(entry) != size:
        raise SnapshotError(f"correlation state snapshot entry {n} is malformed")
    key, group, times, values, newest, last_alert, kept = entry if size == 7 else [*entry, []]
    valid = (
        isinstance(key, str)
        and isinstance(group, list)
        and isinstance(times, list)
        and all(_is_number(t) for t in times)
        and isinstance(values, list)
        and len(values) == len(times)
        and _is_number(newest)
        and (last_alert is None or _is_number(last_alert))
        and isinstance(kept, list)
        and all(_is_evidence(item) for item in kept)
    )
    if not valid:
        raise SnapshotError(f"correlation state snapshot entry {n} is malformed")
    return key, group, times, values, newest, last_alert, [tuple(item) for item in kept]


def _is_evidence(item: Any) -> bool:
    """`[time, id or body]`: an id is text or null (`refs`), a body bytes (`full`)."""
    return (
        isinstance(item, list)
        and len(item) == 2
        and _is_number(item[0])
        and (item[1] is None or isinstance(item[1], str | bytes))
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
