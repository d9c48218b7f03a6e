"""The frames the supervisor and its matchers exchange over their rings: MessagePack arrays.

A batch of events travels as one frame holding the raw payloads (bytes, never decoded or pickled
by the supervisor); its answer is one frame that lists only the events with something to say
(results, or the reason an event is unusable), so the common case of an event without a match costs
nothing on the way back.

To a matcher:
    [EVENTS, batch_id, [payload, ...]]           evaluate detections; answer RESULTS
    [EVENTS, batch_id, [payload, ...], skip]     the same, carefully (after a matcher died on it): say
                                                 EVALUATING before each event; answer each
                                                 [position, reason] of skip with its reason
    [HITS, round_id, hits]                       apply correlation hits it owns; answer APPLIED
    [EXPORT, request_id]                         answer STATE with its correlation snapshot
    [IMPORT, snapshot]                           load correlation state (its shard of it)
    [RELOAD, request_id]                         build a new evaluator beside the running one; answer
                                                 RELOADED
    [SWAP, request_id]                           run the new evaluator (windows kept); answer SWAPPED
    [DISCARD]                                    drop the new evaluator
    [STOP]                                       exit
From a matcher:
    [READY, pid, rules, correlations, fingerprint]
    [EVALUATING, batch_id, position]             (careful batches only)
    [RESULTS, batch_id, [[position, reason or [line, ...], [key, ...]], ...], hits, evaluated, busy_s,
     windows, regex_timeouts]                   (windows: its live correlation windows; regex_timeouts:
                                                 its backtracking searches cut off so far)
    [APPLIED, round_id, [[origin, [line, ...], [key, ...]], ...], parent_hits, windows]
    [STATE, request_id, snapshot]
    [RELOADED, request_id, error or None, rules, correlations, fingerprint]
    [SWAPPED, request_id]
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

EVENTS: Final = 1
HITS: Final = 2
EXPORT: Final = 3
IMPORT: Final = 4
RELOAD: Final = 5
STOP: Final = 6
SWAP: Final = 7
DISCARD: Final = 8

READY: Final = 10
RESULTS: Final = 11
APPLIED: Final = 12
STATE: Final = 13
RELOADED: Final = 14
EVALUATING: Final = 15
SWAPPED: Final = 16

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode(frame: list[Any]) -> bytes:
    return _encoder.encode(frame)


def decode(data: bytes | memoryview) -> list[Any]:
    frame = _decoder.decode(data)
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], int):
        raise ValueError(f"not a worker frame: {bytes(data[:40])!r}")
    return frame
