"""The frames the supervisor and its matchers exchange over their rings: tagged msgspec Structs.

A batch of events travels as one frame holding the raw payloads (bytes, never decoded or pickled
by the supervisor); its answer is one frame that lists only the events with something to say
(results, or the reason an event is unusable), so the common case of an event without a match costs
nothing on the way back.

To a matcher (`ToMatcher`; the matcher reads them with `decode_to_matcher`):

    tag frame     field         meaning                                                 answer
    --- --------- ------------- ------------------------------------------------------- ----------
      1 Events    batch_id      the request's id                                        Results
                  payloads      the raw events (bytes, as received)
                  skip          None: evaluate every event. Otherwise the batch is sent
                                carefully (a matcher died on it): say Evaluating before
                                each event, and answer each {position: reason} of skip
                                with its dead-letter reason instead of evaluating it
      2 Hits      round_id      the request's id                                        Applied
                  hits          correlation hits it owns (`sharding.encode_hits`)
      3 Export    request_id    the request's id                                        State
      4 Import    snapshot      load correlation state (its shard of a snapshot)        -
      5 Reload    request_id    build a new evaluator beside the running one            Reloaded
      6 Stop      -             exit                                                    -
      7 Swap      request_id    run the new evaluator (its windows kept)                Swapped
      8 Discard   -             drop the new evaluator                                  -

From a matcher (`FromMatcher`; the pool reads them with `decode_from_matcher`):

    tag frame      field           meaning
    --- ---------- --------------- -----------------------------------------------------------------
     10 Ready      pid             the matcher process's id (said once, when its rules compiled)
                   rules           detection rules it compiled
                   correlations    correlation rules it compiled
                   fingerprint     of its rules (the pool stops a matcher whose rules differ)
     15 Evaluating batch_id        (careful batches only) the batch and the position of the event
                   position        it starts evaluating: a death now is blamed on that event
     11 Results    batch_id        the id of the Events frame it answers
                   answers         an Answer per event with something to say (others: nothing)
                   hits            the level-1 correlation hits of the batch, encoded (b"": none)
                   evaluated       events decoded and evaluated (the others were dead-lettered)
                   busy_s          seconds spent evaluating the batch
                   windows         its live correlation windows
                   regex_timeouts  its backtracking regex searches cut off so far
     12 Applied    round_id        the id of the Hits frame it answers
                   answers         an Answer (lines and keys, no reason) per event with correlation
                                   results
                   parent_hits     the hits those results make for parent correlations (b"": none)
                   windows         its live correlation windows
                   evictions       its live windows dropped at --max-state-entries so far
                   trimmed         its window entries dropped at --max-group-entries so far
     13 State      request_id      the id of the Export frame it answers
                   snapshot        its correlation shard (`CorrelationEngine.export_state`)
     14 Reloaded   request_id      the id of the Reload frame it answers
                   error           why the new rules could not be built; None when they were
                   rules           detection rules of the new evaluator (0 on error)
                   correlations    correlation rules of the new evaluator (0 on error)
                   fingerprint     of the new rules ("" on error)
     16 Swapped    request_id      the id of the Swap frame it answers

    Answer (inside Results and Applied: one event of the batch)
                   position        the event's position in its batch
                   lines           its output lines (JSON, newline-terminated)
                   keys            the labels each line is counted by (`RuleKey`), one per line
                   reason          its dead-letter reason (then no lines); None otherwise

Why array-like tagged Structs: on the wire a frame is a MessagePack array whose first element is
its tag (`[1, batch_id, [payload, ...], skip]`), with no field names, so a frame carrying a large
batch is as small as the untyped lists were, and decoding it builds the Struct directly and checks
every field on the way. Each direction has its own tags and its own decoder, so a frame sent the
wrong way, or bytes that are no frame, fail at once with a `FrameError` naming the frames expected.
Fields are positional on the wire: both ends always run this module's version (the pool starts its
matchers from the same code), so a field may be added anywhere as long as both ends change.
"""

from __future__ import annotations

from typing import Final, get_args

import msgspec
from msgspec import Struct

from rsigma.payloads import RuleKey


class FrameError(ValueError):
    """Bytes that are not a frame of the expected direction."""


class _Frame(Struct, array_like=True, frozen=True, gc=False):
    """Frames hold plain data (never a reference cycle), so the garbage collector need not track them."""


# ---- to a matcher ----------------------------------------------------------------------------


class Events(_Frame, tag=1):
    batch_id: int
    payloads: list[bytes]
    skip: dict[int, str] | None = None  # careful when set: positions to dead-letter, and why


class Hits(_Frame, tag=2):
    round_id: int
    hits: bytes


class Export(_Frame, tag=3):
    request_id: int


class Import(_Frame, tag=4):
    snapshot: bytes


class Reload(_Frame, tag=5):
    request_id: int


class Stop(_Frame, tag=6):
    pass


class Swap(_Frame, tag=7):
    request_id: int


class Discard(_Frame, tag=8):
    pass


ToMatcher = Events | Hits | Export | Import | Reload | Stop | Swap | Discard


# ---- from a matcher --------------------------------------------------------------------------


class Answer(_Frame):
    """One event's answer inside Results or Applied: its result lines and keys, or a dead-letter reason."""

    position: int
    lines: list[bytes] = []
    keys: list[RuleKey] = []
    reason: str | None = None


class Ready(_Frame, tag=10):
    pid: int
    rules: int
    correlations: int
    fingerprint: str


class Results(_Frame, tag=11):
    batch_id: int
    answers: list[Answer]
    hits: bytes
    evaluated: int
    busy_s: float
    windows: int
    regex_timeouts: int
    # With --jq/--jsonpath, the payload position of each hit's slot (see `evaluate_payloads`); empty
    # when the hits carry payload positions themselves.
    origins: list[int] = []


class Applied(_Frame, tag=12):
    round_id: int
    answers: list[Answer]
    parent_hits: bytes
    windows: int
    evictions: int
    trimmed: int


class State(_Frame, tag=13):
    request_id: int
    snapshot: bytes


class Reloaded(_Frame, tag=14):
    request_id: int
    error: str | None
    rules: int
    correlations: int
    fingerprint: str


class Evaluating(_Frame, tag=15):
    batch_id: int
    position: int


class Swapped(_Frame, tag=16):
    request_id: int


FromMatcher = Ready | Evaluating | Results | Applied | State | Reloaded | Swapped

# ---- encoding --------------------------------------------------------------------------------

_encoder: Final = msgspec.msgpack.Encoder()
_to_matcher: Final = msgspec.msgpack.Decoder(ToMatcher)
_from_matcher: Final = msgspec.msgpack.Decoder(FromMatcher)


def encode(frame: ToMatcher | FromMatcher) -> bytes:
    return _encoder.encode(frame)


def decode_to_matcher(data: bytes | memoryview) -> ToMatcher:
    """A frame the supervisor sent (FrameError for anything else)."""
    try:
        return _to_matcher.decode(data)
    except msgspec.DecodeError as e:  # ValidationError included
        raise _error("to a matcher", ToMatcher, data, e) from e


def decode_from_matcher(data: bytes | memoryview) -> FromMatcher:
    """A frame a matcher sent (FrameError for anything else)."""
    try:
        return _from_matcher.decode(data)
    except msgspec.DecodeError as e:
        raise _error("from a matcher", FromMatcher, data, e) from e


def _error(direction: str, union: object, data: bytes | memoryview, error: Exception) -> FrameError:
    expected = ", ".join(f"{cls.__name__} ({cls.__struct_config__.tag})" for cls in get_args(union))
    return FrameError(
        f"not a frame {direction}: {error} (expected one of {expected}); it starts {bytes(data[:40])!r}"
    )
