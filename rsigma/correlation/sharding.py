"""Correlation spread over several engines (a pool of matcher processes), with single-process results.

Each window, that is each (correlation, group), lives in exactly one engine, its *owner*:
`shard_of(correlation key, group, n)`, a stable hash (BLAKE2b of the msgpack encoding of
`[key, group]`, never Python's salted `hash()`), so every process and every restart agrees on it. A
batch of events goes through in rounds:

1. Any engine turns each event's detections into level-1 hits (`CorrelationEngine.hits`): pure, with
   the group key and the value already computed, tagged with the event's position in the batch.
2. Round after round, the pending hits of the lowest correlation *level* present are routed to
   their owners (`route`), and each owner applies its share (`CorrelationEngine.apply`): it returns
   the results to output and the hits the firings feed to parent correlations, which join the
   pending hits. Hits of higher levels wait for their level's round.
3. Results carry their event's position (so the event's acknowledgement can wait for them) and
   their order in a single-process run; `ShardedCorrelation` puts each event's results in that order.

`CorrelationRounds` drives the rounds: `ShardedCorrelation` runs them in process (for tests and as
the reference), the matcher pool over processes, sending hits with `encode_hits`/`decode_hits`.

Why the results are exactly those of one engine running `process()` on each event in turn: a
window's state depends only on the sequence of updates made to it, and an update is the set of one
event's hits for one (correlation, group), applied at once, then the condition, `--suppress` and
`--action reset` checked. One engine makes one update per (event, correlation), events in order.
Here, all hits of a window go to the one engine that owns it; a hit's group key is computed from
the event alone (or, for a chained hit, from the child's group key and the event values the hit
carries), so it is the same whichever engine makes it. A correlation only receives hits from rules
and from correlations of a lower level (`CorrelationEngine.levels`: 1 + its longest chain below),
so when its level's round comes every hit of the batch for it exists, and `apply` sorts them by
event position and makes one update per event: the same sequence of updates. Within an update the
order of hits does not matter (they share the event's time; counts, exact sums, sorted values and
the `temporal_ordered` check, which sorts by time then position, do not depend on arrival order).

Rounds by level rather than by generation are what makes this exact for chains: with "parent hits
go to the next round", a correlation fed both directly by rules and by a child correlation (or by
children of different depths) would get its rule hits for the whole batch in round 1 and its child
hits in round 2, so within a batch an event's child hit would reach the window after the rule hits
of later events. Only order-sensitive cases would notice (`temporal_ordered`, and late hits at a
window's edge deciding what is evicted), but holding hits until their level avoids it for the same
number of rounds (at most the longest chain).

What still differs from one engine:
- `max_state_entries` is per engine: each evicts its own least recently updated windows, so once a
  cap is reached, which windows are evicted differs (give each engine cap / n for the same bound);
- `late`, `evicted` and `trimmed` are counted per engine (sum them);
- with `--timestamp-fallback wallclock`, an event without a time gets the clock of the engine that
  makes its hits;
- a hit or result names its correlation by index: only engines built from the same rules (same
  load order) may exchange them. Routing and snapshots use the stable correlation key, so state
  survives reloads and changes of n (`split_snapshot`, `merge_snapshots`, `import_state(owned=...)`).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec

from rsigma.correlation.engine import CorrelationEngine, CorrelationResult, Hit
from rsigma.correlation.snapshot import Entry, decode_snapshot, encode_entries

__all__ = [
    "CorrelationRounds",
    "ShardedCorrelation",
    "decode_hits",
    "encode_hits",
    "merge_snapshots",
    "next_round",
    "owned_by",
    "route",
    "shard_of",
    "split_snapshot",
]

_encoder = msgspec.msgpack.Encoder()
_hits_decoder = msgspec.msgpack.Decoder(
    list[
        tuple[
            int,
            tuple[Any, ...],
            None | int | float | str | tuple[str, ...],
            float,
            int,
            tuple[int, ...],
            dict[str, Any] | None,
            tuple[str | None, bytes | None] | None,
        ]
    ]
)


# ---- owners -----------------------------------------------------------------------------------


def shard_of(correlation_key: str, group: Sequence[Any], n: int) -> int:
    """The shard (0 .. n-1) owning the window of (correlation key, group values); stable everywhere."""
    if n <= 1:
        return 0
    digest = hashlib.blake2b(_encoder.encode((correlation_key, group)), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def owned_by(shard: int, n: int) -> Callable[[str, list[Any]], bool]:
    """The `owned` filter of `export_state`/`import_state` for one shard of n."""
    return lambda key, group: shard_of(key, group, n) == shard


def route(hits: Iterable[Hit], keys: Sequence[str], n: int) -> list[list[Hit]]:
    """The hits of each owner (order kept); `keys` is `CorrelationEngine.keys`."""
    if n <= 1:
        return [list(hits)]
    out: list[list[Hit]] = [[] for _ in range(n)]
    owners: dict[tuple[int, tuple[Any, ...]], int] = {}
    for hit in hits:
        window = (hit[0], hit[1])
        owner = owners.get(window)
        if owner is None:
            owner = owners[window] = shard_of(keys[hit[0]], hit[1], n)
        out[owner].append(hit)
    return out


def next_round(pending: Sequence[Hit], levels: Sequence[int]) -> tuple[list[Hit], list[Hit]]:
    """Split pending hits into those of the lowest correlation level (to apply now) and the rest.

    `levels` is `CorrelationEngine.levels`. Order is kept on both sides.
    """
    level = min(levels[hit[0]] for hit in pending)
    ready: list[Hit] = []
    held: list[Hit] = []
    for hit in pending:
        (ready if levels[hit[0]] == level else held).append(hit)
    return ready, held


class CorrelationRounds:
    """The round driver: a batch's hits, lowest correlation level first, shared out to their owners.

    Iterating yields one round at a time: `(owner, hits)` for every owner with hits of that round's
    level. The caller applies each share at its owner (`CorrelationEngine.apply`, in process or in a
    matcher) and hands the parent hits those firings made back with `add` before taking the next
    round; iteration ends when no hits are left. Used by the matcher pool and `ShardedCorrelation`.
    """

    def __init__(self, hits: Sequence[Hit], levels: Sequence[int], keys: Sequence[str], n: int) -> None:
        self.pending = list(hits)
        self.levels = levels
        self.keys = keys
        self.n = n

    def __iter__(self) -> Iterator[list[tuple[int, list[Hit]]]]:
        while self.pending:
            ready, self.pending = next_round(self.pending, self.levels)
            yield [(owner, owned) for owner, owned in enumerate(route(ready, self.keys, self.n)) if owned]

    def add(self, parents: Iterable[Hit]) -> None:
        """Hits for parent correlations, made by applying a share: they join a later round."""
        self.pending.extend(parents)


# ---- wire forms -------------------------------------------------------------------------------


def encode_hits(hits: Iterable[Hit]) -> bytes:
    """MessagePack array of hits (each an 8-item array, see `rsigma.correlation.engine.Hit`)."""
    return _encoder.encode(hits if isinstance(hits, list | tuple) else list(hits))


def decode_hits(data: bytes) -> list[Hit]:
    """Hits as tuples again, ready for `CorrelationEngine.apply` (typed, so malformed data raises)."""
    return _hits_decoder.decode(data)


# ---- snapshots --------------------------------------------------------------------------------


def split_snapshot(data: bytes, n: int) -> list[bytes]:
    """One snapshot per shard, each with the windows that shard owns (same format and version).

    Entries keep their relative order (least recently updated first). Windows of correlations the
    current rules no longer have are kept too: `import_state` drops them.
    """
    parts: list[list[Entry]] = [[] for _ in range(max(n, 1))]
    for entry in decode_snapshot(data):
        parts[shard_of(entry[0], entry[1], n)].append(entry)
    return [encode_entries(part) for part in parts]


def merge_snapshots(snapshots: Iterable[bytes]) -> bytes:
    """One snapshot of the windows of several (e.g. every shard's, to store them as one).

    Each snapshot's order is kept, and they are interleaved by newest time, so the least recently
    updated windows stay first (what `max_state_entries` evicts after an import). Shards own
    disjoint windows; should two snapshots hold the same window anyway, the one with the newer hit
    wins (the later snapshot on a tie).
    """
    decoded = [decode_snapshot(data) for data in snapshots]  # every one validated before any use
    best: dict[bytes, tuple[float, int]] = {}
    ids: list[list[bytes]] = []
    for s, entries in enumerate(decoded):
        ids.append([])
        for entry in entries:
            window = _encoder.encode((entry[0], entry[1]))
            ids[s].append(window)
            if window not in best or entry[4] >= best[window][0]:
                best[window] = (entry[4], s)
    kept = [
        [entry for entry, window in zip(entries, ids[s], strict=True) if best[window][1] == s]
        for s, entries in enumerate(decoded)
    ]
    return encode_entries(heapq.merge(*kept, key=_newest))


def _newest(entry: Entry) -> float:
    return entry[4]


# ---- the pool, in-process ---------------------------------------------------------------------


def _result_order(result: CorrelationResult) -> tuple[Any, ...]:
    return result.order


class ShardedCorrelation:
    """Engines (built from the same rules and config) sharing the windows, run round by round.

    Each (correlation, group) lives in `engines[shard_of(key, group, n)]`. Per event, the results
    equal those of one engine's `process()`, in the same order (see the module docstring).
    """

    def __init__(self, engines: Sequence[CorrelationEngine]) -> None:
        if not engines:
            raise ValueError("ShardedCorrelation needs at least one engine")
        self.engines = list(engines)
        self.keys = self.engines[0].keys
        self.levels = self.engines[0].levels
        if any(e.keys != self.keys for e in self.engines):
            raise ValueError("the engines of a ShardedCorrelation must be built from the same rules")
        self.rounds = 0  # rounds run so far (a batch needs one per correlation level it reaches)

    @property
    def late(self) -> int:
        return sum(e.late for e in self.engines)

    @property
    def evicted(self) -> int:
        return sum(e.evicted for e in self.engines)

    @property
    def trimmed(self) -> int:
        return sum(e.trimmed for e in self.engines)

    def process_batch(
        self, items: Sequence[tuple[dict[str, Any], Sequence[int]]]
    ) -> list[list[CorrelationResult]]:
        """The correlation results of each `(event, matched rule indexes)`, in batch order."""
        n = len(self.engines)
        hits: list[Hit] = []
        for position, (event, rule_indexes) in enumerate(items):
            # Any engine can make an event's hits (as any matcher evaluates any event).
            hits += self.engines[position % n].hits(event, rule_indexes, position)
        return self.run(hits, len(items))

    def run(self, hits: list[Hit], batch_size: int) -> list[list[CorrelationResult]]:
        """Apply a batch's level-1 hits round by round; the results per event position."""
        out: list[list[CorrelationResult]] = [[] for _ in range(batch_size)]
        rounds = CorrelationRounds(hits, self.levels, self.keys, len(self.engines))
        for shares in rounds:
            self.rounds += 1
            for owner, owned in shares:
                results, parents = self.engines[owner].apply(owned)
                for result in results:
                    out[result.position].append(result)
                rounds.add(parents)
        for results in out:
            if len(results) > 1:
                results.sort(key=_result_order)
        return out

    def export_state(self) -> bytes:
        """Every engine's windows as one snapshot (the single-engine format)."""
        return merge_snapshots(engine.export_state() for engine in self.engines)

    def import_state(self, data: bytes) -> int:
        """Load a snapshot (of any number of shards), each engine keeping the windows it owns."""
        n = len(self.engines)
        return sum(engine.import_state(data, owned_by(i, n)) for i, engine in enumerate(self.engines))
