"""The worker frames: each one survives encoding and decoding whole, and each direction's decoder
refuses anything else (bytes that are no frame, a frame of the other direction, a truncated one)."""

from __future__ import annotations

from typing import get_args

import pytest

from workers import protocol
from workers.protocol import (
    Answer,
    Applied,
    Discard,
    Evaluating,
    Events,
    Export,
    FrameError,
    Hits,
    Import,
    Ready,
    Reload,
    Reloaded,
    Results,
    State,
    Stop,
    Swap,
    Swapped,
)

LINE = b'{"rule_title":"Whoami","level":"medium"}\n'

TO_MATCHER = [
    Events(1, [b'{"a": 1}', b"", b"\xff not json"]),
    Events(2, [b"{}"] * 3, skip={}),  # careful, nothing to leave out yet
    Events(3, [b"{}"] * 3, skip={1: "the matcher process died 2 times evaluating this event"}),
    Hits(4, b"\x93encoded hits"),
    Export(5),
    Import(b"\x00snapshot"),
    Reload(6),
    Stop(),
    Swap(7),
    Discard(),
]

FROM_MATCHER = [
    Ready(pid=4242, rules=13, correlations=2, fingerprint="f" * 64),
    Evaluating(batch_id=3, position=2),
    Results(
        batch_id=1,
        answers=[
            Answer(0, [LINE, LINE], [("Whoami", "medium", None), ("Whoami", "medium", None)]),
            Answer(2, reason="event is not valid JSON"),
        ],
        hits=b"\x91hits",
        evaluated=2,
        busy_s=0.0123,
        windows=7,
        regex_timeouts=1,
    ),
    Results(batch_id=2, answers=[], hits=b"", evaluated=0, busy_s=0.0, windows=0, regex_timeouts=0),
    Applied(
        round_id=4,
        answers=[Answer(1, [LINE], [("Many", "high", "event_count")])],
        parent_hits=b"",
        windows=3,
        evictions=2,
        trimmed=5,
    ),
    State(request_id=5, snapshot=b"\x00snapshot"),
    Reloaded(request_id=6, error=None, rules=14, correlations=2, fingerprint="e" * 64),
    Reloaded(request_id=6, error="rules/x.yml: 'title' is missing", rules=0, correlations=0, fingerprint=""),
    Swapped(request_id=7),
]


def test_every_kind_is_covered() -> None:
    assert {type(f) for f in TO_MATCHER} == set(get_args(protocol.ToMatcher))
    assert {type(f) for f in FROM_MATCHER} == set(get_args(protocol.FromMatcher))


@pytest.mark.parametrize("frame", TO_MATCHER, ids=repr)
def test_frames_to_a_matcher_round_trip(frame: protocol.ToMatcher) -> None:
    data = protocol.encode(frame)
    assert protocol.decode_to_matcher(data) == frame
    assert protocol.decode_to_matcher(memoryview(data)) == frame  # as read from a ring


@pytest.mark.parametrize("frame", FROM_MATCHER, ids=repr)
def test_frames_from_a_matcher_round_trip(frame: protocol.FromMatcher) -> None:
    assert protocol.decode_from_matcher(protocol.encode(frame)) == frame


def test_a_frame_is_a_compact_array() -> None:
    """array_like: the tag, then the fields in order, no names."""
    assert protocol.encode(Events(9, [b"x"])) == b"\x94\x01\x09\x91\xc4\x01x\xc0"
    assert protocol.encode(Stop()) == b"\x91\x06"


@pytest.mark.parametrize("frame", FROM_MATCHER, ids=repr)
def test_a_frame_from_a_matcher_is_refused_by_the_matcher(frame: protocol.FromMatcher) -> None:
    with pytest.raises(FrameError, match=r"not a frame to a matcher: .*expected one of Events \(1\), Hits"):
        protocol.decode_to_matcher(protocol.encode(frame))


@pytest.mark.parametrize("frame", TO_MATCHER, ids=repr)
def test_a_frame_to_a_matcher_is_refused_by_the_pool(frame: protocol.ToMatcher) -> None:
    with pytest.raises(FrameError, match=r"not a frame from a matcher: .*expected one of Ready \(10\)"):
        protocol.decode_from_matcher(protocol.encode(frame))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xc1",  # never used in MessagePack
        protocol.encode(Events(1, [b"x"]))[:-3],  # truncated
        protocol.encode([1, "1", [b"x"], None]),  # a batch id that is no int
        protocol.encode([1, 1]),  # too short
        protocol.encode([99, 1]),  # unknown tag
        protocol.encode({"batch_id": 1, "payloads": []}),  # a map, not an array
    ],
)
def test_garbage_is_refused_naming_what_was_expected(data: bytes) -> None:
    with pytest.raises(FrameError, match=r"not a frame to a matcher: .* \(expected one of Events \(1\)"):
        protocol.decode_to_matcher(data)
    with pytest.raises(FrameError, match=r"not a frame from a matcher: .* \(expected one of Ready \(10\)"):
        protocol.decode_from_matcher(data)


def test_frame_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        protocol.decode_to_matcher(b"garbage")
